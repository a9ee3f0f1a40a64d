.PHONY: install test coverage lint format typecheck check bench bench-quick

install:
	python3 -m venv .venv && .venv/bin/pip install -e '.[local,dev]'

test:
	.venv/bin/pytest

coverage:
	.venv/bin/pytest --cov=docingest --cov-branch --cov-report=term

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench

format:
	.venv/bin/ruff format src tests bench
	.venv/bin/ruff check --fix src tests bench

typecheck:
	.venv/bin/mypy

# What CI checks before the tests.
check: lint typecheck

bench:
	.venv/bin/python -m bench

bench-quick:
	.venv/bin/python -m bench --quick
