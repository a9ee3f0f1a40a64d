"""Property-based fuzzing of every operation in ``/openapi.json`` with a valid token: no 5xx,
for valid (positive) and invalid (negative) inputs alike.

Runs each operation's schemathesis strategy under hypothesis directly (the schemathesis
pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from docingest.settings import Settings
from tests.e2e.client import token
from tests.e2e.conftest import SECRET

pytestmark = pytest.mark.e2e
EXAMPLES = 40


def test_no_server_errors(api: tuple[str, Settings]) -> None:
    base, _ = api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    headers = {"authorization": f"Bearer {token(SECRET, 'fuzzer', ttl_seconds=3600)}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: list[str] = []
    statuses: dict[int, int] = {}
    cases = [(op, mode) for op in operations for mode in GenerationMode]
    for operation, mode in cases:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            response = case.call(base_url=base, headers=headers, timeout=30)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Unsatisfiable:  # no input of this operation can be invalid (no parameters)
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert 422 in statuses and any(200 <= s < 300 for s in statuses), statuses  # invalid and valid inputs
    print("schemathesis statuses:", dict(sorted(statuses.items())))
