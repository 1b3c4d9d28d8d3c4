# SkyEye data toolkit. `make install` is idempotent; `make demo` and `make test` install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-out

.PHONY: install demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[train,eval,review,dev]"
	touch $@

# Label Studio pins its own SDK, so it lives in its own venv (review tests start it on 127.0.0.1).
.venv-labelstudio/.installed: scripts/labelstudio.sh
	bash scripts/labelstudio.sh install
	touch $@

install: $(VENV)/.installed .venv-labelstudio/.installed

demo: install
	bash scripts/demo.sh $(DEMO)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO) .pytest_cache
