# SPE — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.spe-installed

.PHONY: venv system-deps test test-pure test-unit test-helm test-k8s bench clean images demo stop

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
	$(PY) -m tools.images

# What the tests need from the host (Docker engine started, Chromium, iptables, PostgreSQL,
# configurable-http-proxy): installed and started if absent, in one line each (idempotent).
system-deps:
	@bash scripts/system-deps.sh

# tests/k8s needs a real cluster (make test-k8s); everything else runs here.
test: venv system-deps
	$(PY) -m pytest -ra --ignore=tests/k8s $(PYTEST_ARGS)

# The pure tier: everything that needs neither a Docker engine nor Chromium (test markers).
test-pure: venv
	$(PY) -m pytest -ra -m "not docker and not browser" --ignore=tests/k8s $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -ra tests/unit $(PYTEST_ARGS)

# Helm chart: lint, render, kubernetes-validate, checkov (tools cached in ~/.cache/spe/bin).
test-helm: venv
	$(PY) -m pytest -ra tests/helm $(PYTEST_ARGS)

# Real single-node Kubernetes v1.20.2 built from Debian's source package (first build 7-15 min,
# cached in ~/.cache/spe/k8s-1.20.2), started and stopped by the tests; the hub and workspace
# images of this tree are built (cached by input hash) and imported into its containerd.
test-k8s: venv system-deps
	$(PY) -m pytest -ra tests/k8s $(PYTEST_ARGS)

bench: venv
	@mkdir -p bench/results
	$(PY) -m bench.run

demo: venv
	@PY=$(PY) bash scripts/demo.sh

stop:
	@test -x $(PY) && SPE_HOME=$${SPE_HOME:-$(CURDIR)/.spe} $(PY) -m hub.cli hub stop || true

clean:
	rm -rf .spe build *.egg-info
