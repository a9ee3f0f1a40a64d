.PHONY: install test coverage lint bench bench-quick

install:
	python3 -m venv .venv && .venv/bin/pip install -e '.[local,dev]'

test:
	.venv/bin/pytest

coverage:
	.venv/bin/pytest --cov=docingest --cov-branch --cov-report=term

lint:
	.venv/bin/ruff check src tests bench

bench:
	.venv/bin/python -m bench

bench-quick:
	.venv/bin/python -m bench --quick
