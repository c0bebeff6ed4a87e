# Every target works inside a virtual environment at .venv/ (created on first use).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test demo docs check dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,docs,dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the whole test suite (the command CI runs).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=30 --doctest-modules tests converse_jax

## Run the main job on the embedded default data.
demo: $(STAMP)
	$(PY) -m converse_jax.cli.demo

## Build the documentation site into docs/_build/html (warnings are errors, as in CI).
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

## Lint, format and type checks (configured in pyproject.toml).
check: $(STAMP)
	$(VENV)/bin/ruff check converse_jax tests benchmarks examples configs train.py docs/conf.py
	$(VENV)/bin/ruff format --check converse_jax tests benchmarks examples configs train.py docs/conf.py
	$(VENV)/bin/mypy

## The sdist and wheel in dist/, checked as the package index would.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

clean:
	rm -rf $(VENV) .pytest_cache docs/_build docs/_autosummary dist
