# Every target works inside a virtual environment at .venv/ (created on first use).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Run the whole test suite (the command CI runs).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=30 --doctest-modules tests converse_jax

## Run the main job on the embedded default data.
demo: $(STAMP)
	$(PY) -m converse_jax.cli.demo

clean:
	rm -rf $(VENV) .pytest_cache
