# agentplane: every command a person runs. `make dev` and `make test` work on a fresh
# clone with nothing but Python 3.11+: they create .venv and install on first use.
# `make dev` installs only what the server needs; the test and lint targets add the
# dev tools (a stamp file each, so a later `make test` adds them to a `make dev` venv).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCAL_STAMP := $(VENV)/.installed-local
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install-local install dev test unit integration e2e lint format typecheck cfn-lint bench build check-build deploy invoke openapi clean

help: ## list the targets
	@grep -E '^[A-Za-z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	@echo "==> creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agentplane needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

$(LOCAL_STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing agentplane and what the local server needs into $(VENV)"
	$(BIN)/python -m pip install --progress-bar off -e '.[local]'
	@touch $(LOCAL_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing agentplane with its dev tools (tests, ruff, mypy, cfn-lint) into $(VENV)"
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]'
	@touch $(STAMP) $(LOCAL_STAMP)

install-local: $(LOCAL_STAMP) ## create .venv and install agentplane with what `make dev` needs

install: $(STAMP) ## create .venv and install agentplane with its dev tools (tests, lint, types)

dev: install-local ## embedded PostgreSQL + migrations + demo data + every route on http://127.0.0.1:8000 (PORT=8001 for another)
	$(BIN)/agentplane dev --port $(PORT)

test: install lint typecheck ## lint, type-check and run every test (starts its own PostgreSQL)
	$(BIN)/pytest $(PYTEST_ARGS)

unit: install ## only the tests that need no database
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: install ## only the tests against a real PostgreSQL
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

e2e: install ## only the end-to-end tests (real processes)
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

lint: install cfn-lint ## ruff lint and format check, cfn-lint, sam validate --lint (if installed)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy (strict) over the layer
	$(BIN)/mypy

cfn-lint: install ## lint the SAM template (and `sam validate --lint` if the SAM CLI is installed)
	$(BIN)/cfn-lint template.yaml
	@# The SAM CLI is slow to install, so lint only uses it when `make build` (or
	@# `make $(SAM_VENV)/bin/sam`) has put it there. Needs neither credentials nor network.
	@if [ -x $(SAM_VENV)/bin/sam ]; then \
	  echo "$(SAM_VENV)/bin/sam validate --lint --region us-east-1"; \
	  SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint --region us-east-1 --template template.yaml; \
	else \
	  echo "sam validate skipped: no SAM CLI in $(SAM_VENV) (run 'make $(SAM_VENV)/bin/sam' to install it)"; \
	fi

bench: install ## benchmarks: prints a table, writes JSON to bench/results/
	$(BIN)/python -m bench

# The SAM CLI lives in its own venv: its pinned dependencies are not ours.
SAM_VENV ?= .venv-sam

$(SAM_VENV)/bin/sam:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli

build: $(SAM_VENV)/bin/sam ## sam build of every function and the layer (no container; needs a python3.12)
	@py312="$$(python3.12 -c 'import sys; print(sys.executable)' 2>/dev/null \
	  || ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)"; \
	test -n "$$py312" || { echo "make build: no python3.12 found (the Lambda runtime); install one" >&2; exit 2; }; \
	echo "building with $$py312"; \
	PATH="$$(dirname "$$py312"):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build --cached --parallel
	@$(MAKE) --no-print-directory check-build

# The functions run on arm64 (template.yaml): a compiled module built for another machine
# imports nowhere there. `file` names what each one was built for.
BUILD_DIR ?= .aws-sam/build

check-build: ## fail unless every .so that `make build` left in .aws-sam/build is ARM aarch64
	@test -d $(BUILD_DIR) || { echo "check-build: no $(BUILD_DIR); run 'make build' first" >&2; exit 2; }
	@found="$$(find $(BUILD_DIR) -type f \( -name '*.so' -o -name '*.so.*' \) -exec file {} +)"; \
	test -n "$$found" || { echo "check-build: no .so files under $(BUILD_DIR)" >&2; exit 1; }; \
	wrong="$$(printf '%s\n' "$$found" | grep -v ': *ELF 64-bit LSB .*ARM aarch64' || true)"; \
	if [ -n "$$wrong" ]; then \
	  echo "check-build: built for another architecture than arm64 (aarch64):" >&2; \
	  printf '%s\n' "$$wrong" >&2; exit 1; \
	fi; \
	echo "check-build: $$(printf '%s\n' "$$found" | wc -l | tr -d ' ') .so files under $(BUILD_DIR), all ELF 64-bit ARM aarch64"
	@# A botocore in the layer shadows the runtime's; only with its boto3 beside it is the
	@# pair one release (layers/core/requirements.txt).
	@layer=$(BUILD_DIR)/CoreLayer/python; \
	if ls -d $$layer/botocore-*.dist-info >/dev/null 2>&1 && ! ls -d $$layer/boto3-*.dist-info >/dev/null 2>&1; then \
	  echo "check-build: $$layer has botocore without boto3: it would run with the Lambda runtime's boto3" >&2; exit 1; \
	fi; \
	echo "check-build: the layer ships" $$(cd $$layer && ls -d boto3-*.dist-info botocore-*.dist-info 2>/dev/null | sed 's/.dist-info//')

# `make deploy ENV=dev|prod`: build, migrate that stage's database, then deploy. Migrations
# run first, so the new code never serves an old schema; the code still running meanwhile
# must cope with the new one (expand, then contract: docs/runbook.md).
ENV ?= dev
ifneq ($(filter deploy,$(MAKECMDGOALS)),)
  ifeq ($(filter dev prod,$(ENV)),)
    $(error make deploy: ENV must be dev or prod (samconfig.toml's environments), not '$(ENV)')
  endif
endif
# The migrator's credentials (the schema owner), never the app's: a URL in
# AGENTPLANE_MIGRATE_DATABASE_URL wins, else this Secrets Manager secret.
MIGRATE_SECRET_NAME ?= agentplane/$(ENV)/migrate-database-url
# The region of samconfig.toml's stacks, where that secret lives.
DEPLOY_REGION ?= us-east-1
MIGRATE := AGENTPLANE_MIGRATE_DATABASE_SECRET_NAME="$(MIGRATE_SECRET_NAME)" \
  AWS_DEFAULT_REGION="$(DEPLOY_REGION)" $(BIN)/agentplane db migrate

# The dev install: the migrate step's secret is read with boto3, and the build and its
# checks run the same tools as `make test`.
deploy: install ## build, migrate ENV's database as the migrator (dry-run list first), sam deploy --config-env ENV (ENV=dev|prod)
	@test -x $(SAM_VENV)/bin/sam || { echo "make deploy: no SAM CLI in $(SAM_VENV); install it with 'make $(SAM_VENV)/bin/sam'" >&2; exit 2; }
	$(MAKE) --no-print-directory build
	@echo "==> migrations pending on $(ENV)"
	$(MIGRATE) --dry-run
	@echo "==> applying them"
	$(MIGRATE)
	@echo "==> deploying $(ENV)"
	SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam deploy --config-env $(ENV)

invoke: install-local ## run a handler in-process on an event: make invoke FN=api EVENT=events/api_get_health.json
	$(BIN)/python -m agentplane.invoke $(FN) $(EVENT)

openapi: install-local ## regenerate docs/openapi.json from the app
	$(BIN)/agentplane openapi --output docs/openapi.json

clean: ## remove the venv, caches and the local database
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .agentplane
