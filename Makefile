# The two commands a newcomer needs: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Use uv from PATH, or bootstrap it from PyPI into the user's site-packages.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		{ echo "installing uv from PyPI"; python3 -m pip install --quiet --user uv; }

.PHONY: install
install: uv ## Install the locked dependencies into .venv
	@# Compiled at install: every process the suite starts (xdist workers, the CLI and
	@# schemathesis subprocesses) would otherwise compile the same sources again, about 2.5 s
	@# of CPU each here when bytecode writing is off (PYTHONDONTWRITEBYTECODE).
	@$(UV) sync --frozen --compile-bytecode --quiet
	@mkdir -p var

.PHONY: migrate
migrate: install ## Apply database migrations (DATABASE_URL, SQLite under var/ by default)
	@$(UV) run saas database upgrade --no-prompt

.PHONY: seed
seed: install ## Insert the demo organizations and users (idempotent)
	@$(UV) run saas seed

.PHONY: run
run: migrate seed ## Install, migrate, seed, and start the app (:8000) and the dev IdP (:8001)
	@$(UV) run saas dev

.PHONY: test
test: install ## Run every test: unit, SQL on SQLite and PostgreSQL, HTTP, browser
	@# Bytecode (and pytest's rewritten test modules) written once and reused by every worker
	@# and subprocess, even where the environment turns writing off.
	@env -u PYTHONDONTWRITEBYTECODE $(UV) run python -m compileall -q -j 0 saas tests bench
	@env -u PYTHONDONTWRITEBYTECODE $(UV) run pytest $(PYTEST_ARGS)

.PHONY: bench
bench: install ## Benchmark the app under wrk on a 100k-member tenant (PostgreSQL + Redis, ~4 min)
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk (Debian)"; apt-get install -y wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y wrk >/dev/null; }; }
	@$(UV) run python -m bench.run $(BENCH_ARGS)

.PHONY: bench-scim
bench-scim: install ## A directory's first SCIM push: 10,000 people and a group of all (~10 min)
	@$(UV) run python -m bench.scim_push $(BENCH_SCIM_ARGS)

.PHONY: lint
lint: install ## ruff and mypy
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy
	@$(UV) run lint-imports --no-logo

.PHONY: fmt
fmt: install ## Format and auto-fix
	@$(UV) run ruff format .
	@$(UV) run ruff check --fix .
