"""The mocks driven by the official SDKs, as a user drives the real services.

OpenAI's ``openai`` SDK against ``docingest mock openai``: every input form the API accepts
(a string, strings, token ids, lists of token ids), both encodings, and each refusal with
OpenAI's status, error class, type, param and code. LlamaCloud's ``llama-cloud`` SDK
(Parse API v2) against ``docingest mock llamaparse``: a PDF and a Markdown file parsed, every
``expand`` value answered with its typed model, the tiers' outputs, a 429 honoured (counted
in the mock's ``/_mock/stats`` ledger), failed and cancelled jobs raised. Both mocks run as
real processes on loopback.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpe_openai
import httpx
import llama_cloud
import numpy as np
import openai
import pytest

from docingest.testing.mocks.openai import mock_vector
from tests.mockservers import MockServer

DOCS = Path(__file__).resolve().parents[2] / "examples" / "docs"
MD = DOCS / "md" / "state-machine.md"
PDF = DOCS / "pdf" / "state-machine.pdf"
MODEL = "text-embedding-3-small"
INPUT_INVALID = (
    "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
)
#: The files whose presigned downloads ``*_content_metadata`` describes (Parse API v2).
CONTENT_METADATA_NAMES = (
    "text",
    "text_full",
    "markdown",
    "markdown_full",
    "items",
    "metadata",
    "forms",
    "raw_words",
    "xlsx",
    "output_pdf",
)
EVERY_EXPAND = [
    "text",
    "text_full",
    "markdown",
    "markdown_full",
    "items",
    "metadata",
    "forms",
    "job_metadata",
    "usage",
    "images_content_metadata",
    *[f"{name}_content_metadata" for name in CONTENT_METADATA_NAMES],
]


@pytest.fixture(scope="module")
def oa_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    with MockServer("openai", log_dir=tmp_path_factory.mktemp("oa")) as mock:
        yield mock


@pytest.fixture(scope="module")
def lp_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    with MockServer("llamaparse", "--job-seconds", "0.3", log_dir=tmp_path_factory.mktemp("lp")) as mock:
        yield mock


def _oa(mock: MockServer, **kw: Any) -> Any:
    return openai.OpenAI(api_key="sk-test", base_url=f"{mock.url}/v1", max_retries=0, **kw)


def _lc(mock: MockServer, **kw: Any) -> Any:
    return llama_cloud.LlamaCloud(api_key="llx-test", base_url=mock.url, **kw)


def _tokens(text: str) -> list[int]:
    return list(bpe_openai.get_encoding("cl100k_base").encode_ordinary(text))


# --- OpenAI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [None, "float", "base64"])
def test_every_input_form_gets_the_vector_of_its_text(oa_mock: MockServer, encoding: str | None) -> None:
    """A text given as a string, in a list, as token ids or as a list of token-id lists gets the
    same vector (the text's), through the SDK's default (base64, decoded by the SDK), float
    and base64 encodings; usage counts the cl100k tokens."""
    client = _oa(oa_mock)
    texts = ["hello world", "Die Straße ist naß — 東京"]
    extra: dict[str, Any] = {} if encoding is None else {"encoding_format": encoding}
    forms: list[Any] = [
        texts[0],
        texts,
        _tokens(texts[0]),
        [_tokens(t) for t in texts],
    ]
    want = [mock_vector(t, 64) for t in texts]
    for form in forms:
        reply = client.embeddings.create(input=form, model=MODEL, dimensions=64, **extra)
        got = []
        for d in reply.data:
            emb = d.embedding
            if isinstance(emb, str):  # asked for base64 explicitly: the SDK hands the string back
                emb = np.frombuffer(base64.b64decode(emb), dtype="<f4")
            got.append(np.asarray(emb, dtype=np.float32))
        n = 1 if isinstance(form, str) or isinstance(form[0], int) else 2
        assert [d.index for d in reply.data] == list(range(n))
        assert all(len(g) == 64 for g in got)
        assert np.allclose(np.stack(got), np.stack(want[:n]), atol=1e-6), form
        assert reply.usage.prompt_tokens == sum(len(_tokens(t)) for t in texts[:n])
    native = client.embeddings.create(input="hello", model="text-embedding-3-large", **extra)
    assert len(native.data[0].embedding) in (3072, 4 * -(-4 * 3072 // 3))  # floats, or base64 chars


def _refusal(**kw: Any) -> dict[str, Any]:
    return {"input": "hi", "model": MODEL, **kw}


REFUSALS = [
    # (request, status, SDK error, message start, type, param, code)
    (
        _refusal(model="text-embedding-ada-002", dimensions=256),
        400,
        "BadRequestError",
        "This model does not support specifying dimensions.",
        "invalid_request_error",
        None,
        None,
    ),
    (
        _refusal(dimensions=0),
        400,
        "BadRequestError",
        "Invalid 'dimensions': integer below minimum value",
        "invalid_request_error",
        "dimensions",
        "integer_below_min_value",
    ),
    (
        _refusal(dimensions=-3),
        400,
        "BadRequestError",
        "Invalid 'dimensions': integer below minimum value",
        "invalid_request_error",
        "dimensions",
        "integer_below_min_value",
    ),
    (
        _refusal(dimensions=4000),
        400,
        "BadRequestError",
        "Invalid 'dimensions': integer above maximum value. Expected a value <= 1536",
        "invalid_request_error",
        "dimensions",
        "integer_above_max_value",
    ),
    (
        _refusal(model="text-embedding-3-large", dimensions=3073),
        400,
        "BadRequestError",
        "Invalid 'dimensions': integer above maximum value. Expected a value <= 3072",
        "invalid_request_error",
        "dimensions",
        "integer_above_max_value",
    ),
    (
        _refusal(dimensions=1.5),
        400,
        "BadRequestError",
        "Invalid type for 'dimensions': expected an integer",
        "invalid_request_error",
        "dimensions",
        "invalid_type",
    ),
    (
        _refusal(encoding_format="bogus"),
        400,
        "BadRequestError",
        "Invalid value for 'encoding_format' = bogus.",
        "invalid_request_error",
        None,
        None,
    ),
    (_refusal(input=""), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=[]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=["a", ""]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=[[]]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=[[1], []]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=["a", 1]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (
        _refusal(input=["a"] * 2049),
        400,
        "BadRequestError",
        INPUT_INVALID,
        "invalid_request_error",
        None,
        None,
    ),
    (_refusal(input=[100256]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (_refusal(input=[[5], [-1]]), 400, "BadRequestError", INPUT_INVALID, "invalid_request_error", None, None),
    (
        _refusal(input=[1] * 8193),
        400,
        "BadRequestError",
        "This model's maximum context length is 8192 tokens, however you requested 8193 tokens",
        "invalid_request_error",
        None,
        None,
    ),
    (
        _refusal(input=[[1] * 8000] * 38),
        400,
        "BadRequestError",
        "Requested 304000 tokens, max 300000 tokens per request",
        "max_tokens_per_request",
        None,
        "max_tokens_per_request",
    ),
    (
        _refusal(model="text-embedding-4-tiny"),
        404,
        "NotFoundError",
        "The model `text-embedding-4-tiny` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
    ),
]


@pytest.mark.parametrize(
    ("request_", "status", "error", "message", "type_", "param", "code"),
    REFUSALS,
    ids=[f"{i}-{r[3][:30]}" for i, r in enumerate(REFUSALS)],
)
def test_refusals_carry_openais_status_and_error_body(
    oa_mock: MockServer,
    request_: dict[str, Any],
    status: int,
    error: str,
    message: str,
    type_: str,
    param: str | None,
    code: str | None,
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        _oa(oa_mock).embeddings.create(**request_)
    exc = caught.value
    assert type(exc).__name__ == error and exc.status_code == status
    assert exc.body["message"].startswith(message)
    assert (exc.body["type"], exc.body["param"], exc.body["code"]) == (type_, param, code)
    assert exc.type == type_ and exc.param == param and exc.code == code


def test_unknown_parameter_and_missing_key_are_refused(oa_mock: MockServer) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        _oa(oa_mock).embeddings.create(input="hi", model=MODEL, extra_body={"truncate": True})
    assert unknown.value.body["message"] == "Unrecognized request argument supplied: truncate"
    reply = httpx.post(f"{oa_mock.url}/v1/embeddings", json={"input": "hi", "model": MODEL})
    assert reply.status_code == 401
    assert reply.json()["error"]["message"].startswith("You didn't provide an API key.")


def test_a_body_nested_past_the_json_parsers_depth_is_openais_400(oa_mock: MockServer) -> None:
    """Not a 500 (which the SDK would retry): the 400 of any body that is not JSON."""
    deep = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b', "model": "text-embedding-3-small"}'
    reply = httpx.post(
        f"{oa_mock.url}/v1/embeddings",
        content=deep,
        headers={"Authorization": "Bearer sk-test", "content-type": "application/json"},
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"] == "We could not parse the JSON body of your request."


@pytest.mark.parametrize("openai_knob", [("--dimensions", "16")], ids=["dimensions-16"])
def test_dimensions_knob_forces_the_length_but_hides_no_wrong_request(
    tmp_path: Path, openai_knob: tuple[str, ...]
) -> None:
    """``--dimensions 16``: a valid request gets 16-float vectors whatever it asked (the fault
    the knob is for); a request OpenAI refuses is still refused."""
    with MockServer("openai", *openai_knob, log_dir=tmp_path) as mock:
        client = _oa(mock)
        ok = client.embeddings.create(input="hi", model=MODEL, dimensions=384, encoding_format="float")
        assert len(ok.data[0].embedding) == 16
        with pytest.raises(openai.BadRequestError) as ada:
            client.embeddings.create(input="hi", model="text-embedding-ada-002", dimensions=384)
        with pytest.raises(openai.BadRequestError) as big:
            client.embeddings.create(input="hi", model=MODEL, dimensions=4000)
        assert ada.value.body["message"] == "This model does not support specifying dimensions."
        assert big.value.code == "integer_above_max_value"
        assert mock.stats()["by_status"] == {"200": 1, "400": 2}


REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def test_mock_openai_does_not_start_without_bpe_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install without ``bpe-openai`` (``.[local]`` only): ``docingest mock openai`` exits 2
    with ``dependency_missing`` naming the extra, and serves nothing (no approximate counts,
    no token-id refusals); with the package it reaches ``serve``."""
    from typer.testing import CliRunner

    from docingest.cli.main import app
    from docingest.testing.mocks import common

    served: list[Any] = []
    monkeypatch.setattr(common, "serve", lambda *args: served.append(args))
    started = CliRunner().invoke(app, ["mock", "openai", "--port", "0"])
    assert started.exit_code == 0 and len(served) == 1, started.output
    monkeypatch.setitem(sys.modules, "bpe_openai", None)  # `import bpe_openai` raises ImportError
    refused = CliRunner().invoke(app, ["mock", "openai", "--port", "0"])
    assert refused.exit_code == 2 and len(served) == 1, refused.output
    assert "error: dependency_missing: the OpenAI mock needs the bpe-openai package" in refused.output
    assert "pip install 'docingest[mock]'" in refused.output


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("GET", "/v1/embeddings"), ("PUT", "/v1/embeddings"), ("POST", "/v1/chat/x")],
)
def test_unknown_paths_and_methods_answer_openais_invalid_url(
    oa_mock: MockServer, method: str, path: str
) -> None:
    reply = httpx.request(method, f"{oa_mock.url}{path}", headers={"Authorization": "Bearer sk-test"})
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "message": f"Invalid URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert REQUEST_ID.fullmatch(reply.headers["x-request-id"])


def test_the_sdk_reads_not_found_and_request_ids(oa_mock: MockServer) -> None:
    """``models.list()`` raises ``NotFoundError`` with OpenAI's message; every reply carries
    its own ``x-request-id`` (``req_`` + 32 hex), which the SDK exposes as ``_request_id``
    and ``request_id``."""
    client = _oa(oa_mock)
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.list()
    assert missing.value.status_code == 404
    assert missing.value.message == "Error code: 404 - Invalid URL (GET /v1/models)"
    assert missing.value.body == {
        "message": "Invalid URL (GET /v1/models)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert missing.value.request_id is not None and REQUEST_ID.fullmatch(missing.value.request_id)
    raw = client.embeddings.with_raw_response.create(input="hi", model=MODEL)
    assert REQUEST_ID.fullmatch(raw.headers["x-request-id"])
    assert raw.parse()._request_id == raw.headers["x-request-id"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(input="", model=MODEL)
    ids = {
        raw.headers["x-request-id"],
        missing.value.request_id,
        refused.value.request_id,
        httpx.get(f"{oa_mock.url}/health").headers["x-request-id"],
        httpx.post(f"{oa_mock.url}/v1/embeddings", json={}).headers["x-request-id"],  # the 401
    }
    assert len(ids) == 5 and all(REQUEST_ID.fullmatch(i or "") for i in ids)


def test_faults_carry_a_request_id_too(tmp_path: Path) -> None:
    with (
        MockServer("openai", "--error-rate", "1", log_dir=tmp_path) as mock,
        pytest.raises(openai.InternalServerError) as failed,
    ):
        _oa(mock).embeddings.create(input="hi", model=MODEL)
    assert failed.value.request_id is not None and REQUEST_ID.fullmatch(failed.value.request_id)


# --- LlamaParse ------------------------------------------------------------------------------


def _pdf_pages(path: Path) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return len(pdf)
    finally:
        pdf.close()


@pytest.mark.parametrize("path", [MD, PDF], ids=["markdown", "pdf"])
def test_parse_answers_every_expand_value_with_its_typed_model(lp_mock: MockServer, path: Path) -> None:
    from llama_cloud.types.parsing_get_response import (
        Forms,
        ImagesContentMetadata,
        Items,
        ItemsPageStructuredResultPage,
        Markdown,
        MarkdownPageMarkdownResultPage,
        Metadata,
        ResultContentMetadata,
        Text,
    )

    client = _lc(lp_mock)
    result = client.parsing.parse(
        upload_file=path,
        tier="cost_effective",
        version="latest",
        expand=EVERY_EXPAND,
        polling_interval=0.1,
        backoff="constant",
    )
    pages = _pdf_pages(path) if path.suffix == ".pdf" else 1
    assert result.job.status == "COMPLETED" and result.job.error_message is None
    assert result.job.usage is not None and result.job.usage.credits == 3.0 * pages
    assert isinstance(result.text, Text) and [p.page_number for p in result.text.pages] == list(
        range(1, pages + 1)
    )
    assert isinstance(result.markdown, Markdown) and len(result.markdown.pages) == pages
    assert all(isinstance(p, MarkdownPageMarkdownResultPage) for p in result.markdown.pages)
    assert isinstance(result.items, Items) and len(result.items.pages) == pages
    assert all(isinstance(p, ItemsPageStructuredResultPage) for p in result.items.pages)
    assert isinstance(result.metadata, Metadata) and len(result.metadata.pages) == pages
    assert isinstance(result.forms, Forms) and len(result.forms.pages) == pages
    assert isinstance(result.images_content_metadata, ImagesContentMetadata)
    assert result.images_content_metadata.total_count == 0
    assert isinstance(result.job_metadata, dict) and result.job_metadata["job_pages"] == pages
    # The content is the file's: its title is the first heading, in every form.
    title = "The state machine and its guarantees"
    assert isinstance(result.markdown_full, str) and isinstance(result.text_full, str)
    assert title in result.markdown_full and title in result.text_full
    assert "# " in result.markdown_full and "# " not in result.text_full.splitlines()[0]
    headings = [i for i in result.items.pages[0].items if i.type == "heading"]
    assert any(h.value == title and h.level == 1 and h.md == f"# {title}" for h in headings)
    kinds = {item.type for page in result.items.pages for item in page.items}
    assert {"heading", "text"} <= kinds
    assert result.markdown_full == "\n\n".join(p.markdown for p in result.markdown.pages)
    assert result.text_full == "\n\n".join(p.text for p in result.text.pages)
    # Presigned downloads: each file there, and its bytes are the inline content's.
    meta = result.result_content_metadata
    assert meta is not None and set(meta) == set(CONTENT_METADATA_NAMES)
    assert all(isinstance(m, ResultContentMetadata) for m in meta.values())
    assert meta["xlsx"].exists is False and meta["xlsx"].presigned_url is None
    assert meta["output_pdf"].exists is (path.suffix == ".pdf")

    def download(name: str) -> bytes:
        url = meta[name].presigned_url
        assert url is not None and meta[name].exists
        body = httpx.get(url).content
        assert len(body) == meta[name].size_bytes
        return body

    assert download("markdown_full").decode() == result.markdown_full
    assert download("text_full").decode() == result.text_full
    assert json.loads(download("items")) == result.items.model_dump(mode="json", exclude_none=True)
    if path.suffix == ".pdf":
        assert download("output_pdf") == path.read_bytes()
    # Each value alone answers its own field and no other.
    fields = {
        "text": "text",
        "text_full": "text_full",
        "markdown": "markdown",
        "markdown_full": "markdown_full",
        "items": "items",
        "metadata": "metadata",
        "forms": "forms",
        "job_metadata": "job_metadata",
        "images_content_metadata": "images_content_metadata",
    }
    for value, name in fields.items():
        alone = client.parsing.get(result.job.id, expand=[value])
        present = {f for f in fields.values() if getattr(alone, f) is not None}
        assert present == {name}, value
        assert alone.result_content_metadata is None and alone.job.usage is None
    assert client.parsing.get(result.job.id, expand=["usage"]).job.usage.credits == 3.0 * pages


def test_fast_tier_has_text_but_no_markdown(lp_mock: MockServer) -> None:
    client = _lc(lp_mock, max_retries=0)
    result = client.parsing.parse(
        upload_file=PDF,
        tier="fast",
        version="latest",
        expand=["text", "text_full", "metadata"],
        polling_interval=0.1,
        backoff="constant",
    )
    assert result.job.tier == "fast" and result.text is not None and result.text_full
    assert "The state machine and its guarantees" in result.text.pages[0].text
    for value in (
        "markdown",
        "markdown_full",
        "items",
        "markdown_content_metadata",
        "items_content_metadata",
    ):
        with pytest.raises(llama_cloud.BadRequestError) as refused:
            client.parsing.get(result.job.id, expand=[value])
        assert refused.value.status_code == 400
        assert refused.value.body == {"detail": "Markdown expansion is not available for FAST tier jobs."}


def test_bad_uploads_are_refused(lp_mock: MockServer, tmp_path: Path) -> None:
    client = _lc(lp_mock, max_retries=0)
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(llama_cloud.BadRequestError) as no_bytes:
        client.parsing.create(upload_file=empty, tier="fast", version="latest")
    assert no_bytes.value.body == {"detail": "Uploaded file is empty."}
    with pytest.raises(llama_cloud.UnprocessableEntityError) as tier:
        client.parsing.create(upload_file=MD, tier="premium", version="latest")
    assert tier.value.body["detail"][0]["loc"] == ["tier"]
    assert tier.value.body["detail"][0]["msg"].startswith("Unsupported tier: premium.")
    with pytest.raises(llama_cloud.NotFoundError) as unknown:
        client.parsing.get("pjb-nope")
    assert unknown.value.body == {"detail": "Parse job not found"}
    v1 = httpx.get(f"{lp_mock.url}/api/v1/parsing/job/x", headers={"Authorization": "Bearer k"})
    assert v1.status_code == 404 and "Parse API v2 only" in v1.json()["detail"]


def test_a_429_is_honoured_by_the_sdk(tmp_path: Path) -> None:
    """A third of the requests answered 429 with ``Retry-After: 1.5``: the SDK retries each after
    the 1.5 s asked (its own backoff would retry after 0.5 s), and the parse completes."""
    flags = ("--job-seconds", "0.3", "--rate-limit-rate", "0.34", "--retry-after", "1.5", "--seed", "7")
    with MockServer("llamaparse", *flags, log_dir=tmp_path) as mock:
        result = _lc(mock).parsing.parse(
            upload_file=MD,
            tier="cost_effective",
            version="latest",
            expand=["markdown"],
            polling_interval=0.1,
            backoff="constant",
        )
        stats = mock.stats()
    assert result.job.status == "COMPLETED" and result.markdown is not None
    requests = sorted(stats["requests"], key=lambda r: r["t"])
    assert stats["by_status"].get("429", 0) >= 1
    assert stats["violations"] == [] and stats["global_violations"] == []
    for prev, nxt in itertools.pairwise(requests):
        if prev["status"] == 429:
            assert nxt["t"] - prev["answered"] >= 1.5 - 0.05


@pytest.mark.parametrize(
    ("flags", "status"),
    [(("--fail-rate", "1"), "FAILED"), (("--cancel-rate", "1"), "CANCELLED")],
    ids=["failed", "cancelled"],
)
def test_a_failed_job_raises_the_sdks_failure(tmp_path: Path, flags: tuple[str, ...], status: str) -> None:
    with MockServer("llamaparse", "--job-seconds", "0.2", *flags, log_dir=tmp_path) as mock:
        client = _lc(mock)
        with pytest.raises(llama_cloud.PollingError) as failed:
            client.parsing.parse(
                upload_file=MD,
                tier="cost_effective",
                version="latest",
                expand=["markdown"],
                polling_interval=0.1,
                backoff="constant",
            )
    assert f"failed with status: {status}" in str(failed.value)


def test_an_unreadable_file_ends_failed(lp_mock: MockServer, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    with pytest.raises(llama_cloud.PollingError) as failed:
        _lc(lp_mock).parsing.parse(
            upload_file=junk,
            tier="cost_effective",
            version="latest",
            expand=["markdown"],
            polling_interval=0.1,
            backoff="constant",
        )
    assert "FAILED" in str(failed.value) and "UNSUPPORTED_FILE_TYPE" in str(failed.value)


def test_our_client_reads_text_on_the_fast_tier(lp_mock: MockServer) -> None:
    """The fast tier has no markdown: our client asks ``expand=text`` for it and keeps each
    page's text with its page number."""
    import time

    from docingest.providers.parsing.llamaparse import LlamaParseClient

    client = LlamaParseClient(base_url=lp_mock.url, api_key="llx-test", tier="fast")
    try:
        job = client.submit(PDF, filename="state-machine.pdf", mime="application/pdf")
        deadline = time.monotonic() + 30
        while (polled := client.poll(job))[0] != "COMPLETED" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.close()
    status, error, doc = polled
    assert status == "COMPLETED" and error is None and doc is not None
    assert len(doc.pages) == _pdf_pages(PDF) and "The state machine and its guarantees" in doc.markdown


NOT_SERVED_MESSAGE = (
    "is not implemented by docingest's LlamaParse mock: it serves POST /api/v2/parse/upload and "
    "GET /api/v2/parse/{job_id} of LlamaParse's Parse API v2."
)


def test_sdk_calls_the_mock_does_not_serve_say_so(lp_mock: MockServer) -> None:
    """Each ``llama-cloud`` parse call the mock does not serve raises ``NotFoundError`` (404,
    not retried) whose ``detail`` names the call, even on a job that exists; other paths and
    methods name themselves."""
    client = _lc(lp_mock, max_retries=0)
    job = client.parsing.create(upload_file=MD, tier="fast", version="latest")
    calls: dict[str, Any] = {
        "parsing.list (GET /api/v2/parse)": lambda: client.parsing.list(),
        "parsing.list_versions (GET /api/v2/parse/versions)": lambda: client.parsing.list_versions(),
        "parsing.cancel (POST /api/v2/parse/{job_id}/cancel)": lambda: client.parsing.cancel(job.id),
        "parsing.delete (DELETE /api/v2/parse/{job_id})": lambda: client.parsing.delete(job.id),
        "parsing.create without a file (POST /api/v2/parse, file_id or source_url)": lambda: (
            client.parsing.create(tier="fast", version="latest", source_url="https://example.com/a.pdf")
        ),
    }
    for call, run in calls.items():
        with pytest.raises(llama_cloud.NotFoundError) as refused:
            run()
        assert refused.value.status_code == 404
        assert refused.value.body == {"detail": f"{call} {NOT_SERVED_MESSAGE}"}, call
    with pytest.raises(llama_cloud.NotFoundError) as no_file:
        client.parsing.create(tier="fast", version="latest", file_id="dfl-1")
    assert no_file.value.body["detail"].startswith("parsing.create without a file")
    for method, path in (("PATCH", f"/api/v2/parse/{job.id}"), ("GET", "/api/v2/files")):
        reply = httpx.request(method, f"{lp_mock.url}{path}", headers={"Authorization": "Bearer k"})
        assert reply.status_code == 404
        assert reply.json() == {"detail": f"{method} {path} {NOT_SERVED_MESSAGE}"}
    assert client.parsing.get(job.id).job.id == job.id  # the job is still there, untouched


@pytest.mark.parametrize(
    ("expand", "bad"),
    [(["text,,markdown_full"], [""]), (["text", " , "], ["", ""]), (["text", "bogus"], ["bogus"])],
    ids=["empty-in-commas", "blank-items", "unknown"],
)
def test_an_empty_or_unknown_expand_value_is_refused_422(
    lp_mock: MockServer, expand: list[str], bad: list[str]
) -> None:
    """Through the SDK (which drops an empty string from a query list itself, so ``[""]`` reaches
    no server) and over raw HTTP (``expand=``, ``expand=text&expand=``): an empty value is
    refused 422 in FastAPI's shape, as an unknown one is."""
    client = _lc(lp_mock, max_retries=0)
    job = client.parsing.create(upload_file=MD, tier="cost_effective", version="latest")
    with pytest.raises(llama_cloud.UnprocessableEntityError) as refused:
        client.parsing.get(job.id, expand=expand)
    details = refused.value.body["detail"]
    assert [(d["type"], d["loc"][:2], d["input"]) for d in details] == [
        ("enum", ["query", "expand"], b) for b in bad
    ]
    assert all("'markdown'" in d["msg"] and "'text'" in d["msg"] for d in details)
    for query in ("expand=", "expand=text&expand="):
        raw = httpx.get(f"{lp_mock.url}/api/v2/parse/{job.id}?{query}", headers={"Authorization": "Bearer k"})
        assert raw.status_code == 422, query
        assert [(d["type"], d["input"]) for d in raw.json()["detail"]] == [("enum", "")]
