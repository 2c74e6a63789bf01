# `make run`: the app on its embedded defaults. `make test`: the test suite. Both set up .venv first.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: a looser requirement pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# a trained CNN (25 MB checkpoint, MIT) for the quality tests; --no-deps: it pins old numpy/librosa
	$(BIN)/pip install -q --no-deps aisfx
	touch $@

.PHONY: install run test
install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/audiofind serve

test: $(BIN)/.installed
	$(BIN)/python -m pytest
