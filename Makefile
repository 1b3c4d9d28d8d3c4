# SkyEye data toolkit. `make install` is idempotent; `make demo` and `make test` install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-out

.PHONY: install demo test clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[train,deepspeed,eval,review,dev]"
	touch $@

# Label Studio pins its own SDK, so it lives in its own venv (review tests start it on 127.0.0.1).
.venv-labelstudio/.installed: scripts/labelstudio.sh
	bash scripts/labelstudio.sh install
	touch $@

# LLaMA-Factory 0.9.5 pins datasets<=4.0, transformers<=5.6, trl<=0.24: its export test runs it in its own venv
# (tests/interop/requirements-llamafactory.txt; llamafactory and torchaudio --no-deps).
# torch and torchvision are not installed a second time (their CUDA build is ~5.5 GB, and a second copy
# filled CI's disk): a .pth puts the project venv's site-packages *after* this venv's own, so every pinned
# package installed here wins, and pip sees the project's torch 2.14.1 / torchvision 0.29.1 as installed.
.venv-interop/.installed: tests/interop/requirements-llamafactory.txt $(VENV)/.installed
	rm -rf .venv-interop
	$(PYTHON) -m venv .venv-interop
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
		> "$$(.venv-interop/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/skyeye-project-site.pth"
	.venv-interop/bin/pip install --quiet -r tests/interop/requirements-llamafactory.txt
	.venv-interop/bin/pip install --quiet --no-deps "llamafactory==0.9.5" "torchaudio==2.11.1"
	touch $@

# The review browser tests drive Debian's Chromium (tests/browser): installed here when running as root
# (CI), and only when missing; elsewhere the suite skips with the reason (it fails under CI=true).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium/chromedriver missing (apt-get install chromium chromium-driver as root): browser tests will skip"; fi

install: $(VENV)/.installed .venv-labelstudio/.installed .venv-interop/.installed browser

demo: install
	bash scripts/demo.sh $(DEMO)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO) .pytest_cache
