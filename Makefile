# SPE — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.spe-installed

.PHONY: venv test test-unit bench clean images

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing SPE and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(PY) -m pip install -q --upgrade pip >$(VENV)/install.log 2>&1
	@$(PY) -m pip install -e '.[test,postgres]' >>$(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

# Workspace images (base from a registry or debootstrap, then spe/workspace:<input hash> and
# :latest); rebuilt only when their inputs change. Options: docs/operator-images.md.
images: venv
	$(PY) -m hub.images

test: venv
	$(PY) -m pytest -ra $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -ra tests/unit $(PYTEST_ARGS)

bench: venv
	@mkdir -p bench/results
	$(PY) -m bench.run

clean:
	rm -rf .spe build *.egg-info
