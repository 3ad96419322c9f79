# crm-gateway: the two commands a newcomer needs are `make demo` and `make test`.
# Both are idempotent and work on a fresh Debian machine as root.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
TOOLS  := .tools/bin
OPA_VERSION := v1.22.3
REGAL_VERSION := v0.38.1
STAMP  := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
BENCH_STAMP := $(VENV)/.installed-bench
# Line coverage of gateway/ that `make test` requires: a little under the 82% that
# tests/unit + tests/security alone reach (the full suite was not measured with --cov).
COV_MIN ?= 80

.PHONY: demo test lint unit integration e2e rego-test deploy-check bench bench-deps deps tools venv clean help bottlecrm

help:
	@echo "make demo   - install and run the demo CRM behind the gateway (with a local OPA)"
	@echo "make test   - install test dependencies, start real Redis/OPA, run everything"
	@echo "make lint   - ruff, ruff format --check, mypy --strict (gateway and tests), import-linter"
	@echo "make bench  - run the benchmarks in bench/ and write bench/REPORT.md"
	@echo "make unit   - the unit tests only (no Redis, OPA or browser needed)"
	@echo "make integration - integration and contract tests (real Redis and OPA)"
	@echo "make e2e    - end-to-end tests against BottleCRM"
	@echo "make rego-test - opa fmt/check/test with the rego line-coverage gate, Regal lint"
	@echo "make deploy-check - the deployment files checked by real tools (k8s schemas, hadolint, compose-go)"
	@echo "make deps   - system packages for the tests (redis-server, rsyslog, chromium, CJK font, cargo)"
	@echo "make bench-deps - system packages for the benchmarks (wrk, nginx)"
	@echo "make tools  - OPA, Regal and the deployment checkers in .tools/bin"
	@echo "make venv   - the Python virtualenv in .venv"
	@echo "make bottlecrm - BottleCRM's own virtualenv for the e2e tests"
	@echo "make clean  - remove generated files"

# --- installation -----------------------------------------------------------

# Three installs, each what its command needs: the gateway alone (make demo), with the
# test and lint tools (make test and the suites), with the benchmark tools (make bench).
$(VENV)/bin/pip:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "Python >= 3.11 is required (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	@bash scripts/pip-progress.sh $(PIP) install --upgrade pip

# The compiled detectors (native/) are built by the install: a change to their
# sources reinstalls, so the tests never run a stale extension.
NATIVE_SRC := native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)

$(RUN_STAMP): pyproject.toml $(NATIVE_SRC) $(VENV)/bin/pip
	@echo "installing crm-gateway into $(VENV) (first run: a minute or two)"
	@bash scripts/pip-progress.sh $(PIP) install -e .
	@touch $@

$(STAMP): pyproject.toml $(NATIVE_SRC) $(VENV)/bin/pip
	@echo "installing crm-gateway with its test and lint tools into $(VENV) (first run: a few minutes)"
	@bash scripts/pip-progress.sh $(PIP) install -e '.[dev]'
	@touch $@ $(RUN_STAMP)

$(BENCH_STAMP): pyproject.toml $(STAMP)
	@echo "installing the benchmark tools into $(VENV)"
	@bash scripts/pip-progress.sh $(PIP) install -e '.[dev,bench]'
	@touch $@

venv: $(STAMP)

# System packages: redis-server, rsyslog with its GnuTLS driver (the RFC 5425 receiver
# the SIEM tests ship to), chromium with a CJK font (the console's browser test and
# its screenshots) and cargo (the compiled detectors, which the tests compare with the
# Python ones) for tests; nginx and wrk for benchmarks.
deps:
	@missing=""; \
	command -v cargo >/dev/null 2>&1 || missing="$$missing cargo"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/sbin/rsyslogd || missing="$$missing rsyslog"; \
	test -f /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so || missing="$$missing rsyslog-gnutls"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    if command -v systemctl >/dev/null 2>&1; then \
	      systemctl disable --now redis-server >/dev/null 2>&1 || true; \
	      echo "redis-server: system service disabled (the tests start their own)"; \
	    fi; \
	  else \
	    echo "missing:$$missing - install it with your package manager (Debian: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

# Deployment checkers built from deploy/tools (Go, pinned in its go.mod): compose-check
# loads the compose file with compose-go (schema, interpolation, consistency: what
# `docker compose config` does), kustomize-build renders deploy/k8s with the kustomize API.
DEPLOY_TOOLS := $(TOOLS)/compose-check $(TOOLS)/kustomize-build
DEPLOY_TOOLS_SRC := deploy/tools/go.mod deploy/tools/go.sum $(wildcard deploy/tools/*/main.go)

# OPA: on PATH, else cached in .tools/bin, else built with `go install`.
# Regal (the Rego linter) is built from a scratch module: `go install regal@v`
# needs the proxy's version list, which is not served here.
tools: $(TOOLS)/opa $(TOOLS)/regal $(DEPLOY_TOOLS)

$(TOOLS)/opa:
	@mkdir -p $(TOOLS)
	@if command -v opa >/dev/null 2>&1; then \
	  ln -sf "$$(command -v opa)" $(TOOLS)/opa; echo "using opa from PATH: $$(command -v opa)"; \
	elif command -v go >/dev/null 2>&1; then \
	  echo "building OPA $(OPA_VERSION) with go install (first run only, a few minutes)"; \
	  GOBIN="$(CURDIR)/$(TOOLS)" go install github.com/open-policy-agent/opa@$(OPA_VERSION); \
	else \
	  echo "OPA is needed: put 'opa' ($(OPA_VERSION)) on PATH, or install Go so make can build it"; \
	  echo "  see https://www.openpolicyagent.org/docs/latest/#running-opa"; exit 1; \
	fi

$(TOOLS)/regal:
	@mkdir -p $(TOOLS)
	@if command -v regal >/dev/null 2>&1; then \
	  ln -sf "$$(command -v regal)" $(TOOLS)/regal; \
	elif command -v go >/dev/null 2>&1; then \
	  echo "building Regal $(REGAL_VERSION) (first run only, a few minutes; log: .tools/regal-build.log)"; \
	  tmp=$$(mktemp -d) && cd $$tmp && go mod init regalbuild >/dev/null 2>&1 && \
	  { go get github.com/open-policy-agent/regal@$(REGAL_VERSION) && \
	    go build -o "$(CURDIR)/$(TOOLS)/regal" github.com/open-policy-agent/regal; \
	  } > "$(CURDIR)/.tools/regal-build.log" 2>&1 || \
	  { tail -20 "$(CURDIR)/.tools/regal-build.log"; echo "Regal build failed (full log above)"; exit 1; }; \
	  rm -rf $$tmp; \
	else \
	  echo "Regal is needed for the Rego lint: put 'regal' on PATH, or install Go"; exit 1; \
	fi

$(DEPLOY_TOOLS): $(DEPLOY_TOOLS_SRC)
	@mkdir -p $(TOOLS)
	@command -v go >/dev/null 2>&1 || { echo "Go is needed to build $(@F) (deploy/tools)"; exit 1; }
	cd deploy/tools && go build -o "$(CURDIR)/$@" ./$(@F)

# --- the two commands -------------------------------------------------------

demo: $(RUN_STAMP) $(TOOLS)/opa
	$(VENV)/bin/crm-gateway demo

test: deps venv tools bottlecrm
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory rego-test
	$(VENV)/bin/pytest -q -p no:cacheprovider --cov=gateway --cov-report=term:skip-covered \
	  --cov-fail-under=$(COV_MIN) tests

# BottleCRM (PyPI django-crm) in its own Python 3.12 virtualenv, for e2e tests.
bottlecrm:
	bash scripts/bottlecrm-venv.sh

# --- pieces ------------------------------------------------------------------

lint: venv
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

rego-test: tools
	$(TOOLS)/opa fmt --fail --list rego
	$(TOOLS)/opa check --strict --bundle rego --schema rego/schema
	$(TOOLS)/opa test --bundle rego --coverage --format=json > .tools/rego-coverage.json || { $(TOOLS)/opa test --bundle rego -v; exit 1; }
	@$(PY) -c 'import json; c=json.load(open(".tools/rego-coverage.json"))["coverage"]; print(f"rego line coverage: {c:.1f}%"); exit(c < 90)'
	$(TOOLS)/regal lint rego

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: deps venv tools
	$(VENV)/bin/pytest -q tests/integration tests/contract

# The deployment artefacts checked by real tools (also part of `make test`, in
# tests/integration/test_deploy_tools.py): Kubernetes schemas, hadolint, compose-go.
deploy-check: venv tools
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration/test_deploy_tools.py

e2e: venv tools bottlecrm
	$(VENV)/bin/pytest -q tests/e2e

# Benchmark tools: wrk (load), nginx (the plain-proxy baseline), curl, taskset (CPU pinning).
# Same pattern as `deps`: installed with apt-get when running as root, else a clear stop.
bench-deps:
	@missing=""; \
	for pair in wrk:wrk nginx:nginx curl:curl taskset:util-linux; do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || test -x /usr/sbin/$$cmd || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "make bench needs wrk, nginx, curl and taskset; missing packages:$$missing"; \
	    echo "  install them with your package manager (Debian: apt-get install$$missing)"; exit 1; \
	  fi; \
	fi

bench: $(BENCH_STAMP) deps bench-deps tools
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache var
