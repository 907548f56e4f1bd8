# BearID: `make demo` runs the main job end to end; `make test` runs the test suite.
# Both create or refresh the project virtualenv (.venv) first, with nothing else to do.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo
EXTRAS ?= train,data,dev

.PHONY: all venv test test-all demo clean-demo

all: test

# torch is pinned to 2.13.0 in pyproject.toml: a CPU wheel is on disk on our machines.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest -m "not slow"

test-all: venv
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/bearid synth $(DEMO)/world --bears 12 --photos 240 --seed 7 --messy \
		--contact-sheet $(DEMO)/contact_sheet.png
	$(BIN)/bearid validate $(DEMO)/world/_truth/faces.xml

clean-demo:
	rm -rf $(DEMO)
