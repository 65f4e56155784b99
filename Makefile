# The commands the README names. CI (.ci/run and .github/workflows/ci.yml) calls the same targets.
#
#   make run        serve POST /contacts, /interactions, /auth/validate and /agents on 127.0.0.1:9000
#                   (PORT=n), sandbox data
#   make test       template + workflow checks, then every Rust test (PostgreSQL's server binaries first)
#   make lint       cargo fmt --check and clippy -D warnings
#   make sam-build  sam build (arm64, cargo-lambda + zig, no Docker), timed
#   make invoke     send one events/*.json file to a running `make run`
#   make talkdesk-config  the JSON that registers a deployment with Talkdesk (STACK=name, STACK_OUTPUTS=file
#                   or BASE_URL=url; LOGO_URL and ICON_URL; CONNECTOR to override BRIDGE_CONNECTOR)
#   make api-fuzz   schemathesis (all checks, API_FUZZ_EXAMPLES per operation) against the local bridge
#   make bench      release build, then BENCHMARKS.md from the real binaries under a local Runtime API
#                   (against the fake Zendesk and a throwaway PostgreSQL)
#   make pgo-profiles  remake pgo/*.profdata, the profiles release builds are optimised with
#   make fuzz       the request/token fuzzer for FUZZ_ITERATIONS inputs (default 1,000,000), release build
#   make faults     the randomized upstream-fault suite alone, with its counts (FAULT_SCHEDULES=n)
#
# Tools come from package registries into the repository, never globally:
#   .venv/         Python: cargo-lambda, ziglang, moto[server], cfn-lint, aws-sam-cli, schemathesis
#                  (.ci/requirements*.txt)
#   .tools/        npm: @action-validator/cli (.tools/package.json + package-lock.json)
# Both are created on first use and reinstalled only when their pin files change.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
TOOLS := .tools
PORT ?= 9000
EVENT ?= events/contacts-initial-sync.json
FUNCTION ?= contacts
SAM_ENV ?= default

# Recipes find the venv's and npm's tools first: sam, cfn-lint, cargo-lambda, zig, moto_server
# (the SSM emulator the integration tests start), action-validator.
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/$(TOOLS)/node_modules/.bin:$(PATH)
# SAM CLI: no telemetry, and dummy credentials plus a region so validation never looks for a
# profile. Nothing in `make test` talks to AWS.
export SAM_CLI_TELEMETRY := 0
check-env = AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing

RUN_STAMP := $(VENV)/.run-tools
ALL_STAMP := $(VENV)/.all-tools
NPM_STAMP := $(TOOLS)/node_modules/.installed

.PHONY: help run invoke test check-template postgres-server lint sam-build venv tools clean-tools bench pgo-profiles fuzz faults \
	api-fuzz talkdesk-config

help:
	@sed -n 's/^#   make /  make /p' $(MAKEFILE_LIST)

# ---------------------------------------------------------------- tool installs (idempotent)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

# Only what `make run` needs, so the first run does not wait for SAM CLI.
$(RUN_STAMP): .ci/requirements-run.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r .ci/requirements-run.txt
	touch $@

$(ALL_STAMP): .ci/requirements.txt .ci/requirements-run.txt | $(VENV)/bin/python
	@start=$$(date +%s); \
	$(VENV)/bin/pip install --quiet -r .ci/requirements.txt; \
	echo "python tools installed in $$(( $$(date +%s) - start )) s"
	touch $(RUN_STAMP) $@

$(NPM_STAMP): $(TOOLS)/package.json $(TOOLS)/package-lock.json
	npm ci --prefix $(TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

venv: $(ALL_STAMP)
tools: $(ALL_STAMP) $(NPM_STAMP)

clean-tools:
	rm -rf $(VENV) $(TOOLS)/node_modules

# ---------------------------------------------------------------- run locally

# cargo lambda watch emulates the Lambda control plane and routes API-Gateway-style paths to the
# real binaries ([workspace.metadata.lambda.watch.router] in Cargo.toml); it rebuilds them when
# the code changes. No AWS account, Docker or network: the sandbox connector is the default.
run: $(RUN_STAMP)
	cargo build --quiet -p contacts -p interactions
	@echo
	@echo "Talkdesk bridge on http://127.0.0.1:$(PORT) (sandbox data). Try, from another terminal:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/contacts -H 'content-type: application/json' -d '{\"auth\":{}}'"
	@echo "  curl -s http://127.0.0.1:$(PORT)/interactions -H 'content-type: application/json' \\"
	@echo "       -d '{\"auth\":{},\"data\":{\"contact_emails\":[\"someone@example.com\"]}}'"
	@echo "  cargo run -p bridge-tests --bin talkdesk-sim -- --base-url http://127.0.0.1:$(PORT)"
	@echo "  make invoke FUNCTION=contacts EVENT=events/contacts-initial-sync.json"
	@echo "Stop with Ctrl-C."
	@echo
	cargo lambda watch -A 127.0.0.1 -P $(PORT)

# A raw API Gateway event to a function served by `make run` (bypasses the HTTP router).
invoke: $(RUN_STAMP)
	cargo lambda invoke $(FUNCTION) --data-file $(EVENT) -A 127.0.0.1 -P $(PORT)

# ---------------------------------------------------------------- checks

check-template: tools
	cfn-lint template.yaml
	$(check-env) sam validate --lint --template template.yaml
	@shopt -s nullglob; files=(.github/workflows/*.yml .github/workflows/*.yaml); \
	test $${#files[@]} -gt 0 || { echo "no workflow files in .github/workflows"; exit 1; }; \
	for f in "$${files[@]}"; do echo "action-validator $$f"; action-validator "$$f"; done

# The PostgreSQL connector's tests start a throwaway server from the Debian `postgresql` package's
# binaries (initdb, pg_ctl; tests/src/postgres.rs). Installed here when missing: as root (CI on Debian)
# with apt-get, without the package's own cluster; else with sudo when it needs no password; else the
# target says what to install. POSTGRES_TEST_URL (a server of your own) skips all this.
postgres-server:
	@if [ -n "$${POSTGRES_TEST_URL:-}" ] || command -v initdb >/dev/null 2>&1 \
	    || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  exit 0; \
	fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; \
	else echo "The PostgreSQL tests need initdb and pg_ctl: install the postgresql package (sudo apt-get install postgresql) or set POSTGRES_TEST_URL."; exit 1; fi; \
	command -v apt-get >/dev/null 2>&1 || { echo "initdb is missing and apt-get is not available: install PostgreSQL's server binaries or set POSTGRES_TEST_URL."; exit 1; }; \
	echo "installing the postgresql package for the PostgreSQL tests"; \
	$$sudo mkdir -p /etc/postgresql-common; \
	[ -e /etc/postgresql-common/createcluster.conf ] \
	  || echo "create_main_cluster = false" | $$sudo tee /etc/postgresql-common/createcluster.conf >/dev/null; \
	$$sudo apt-get update -qq; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

test: check-template postgres-server
	@if cargo nextest --version >/dev/null 2>&1; then \
	  cargo test --workspace --doc; \
	  cargo nextest run --workspace; \
	else \
	  cargo test --workspace; \
	fi
	$(MAKE) --no-print-directory api-fuzz

# schemathesis, a schema-driven fuzzer, with all its checks: every request openapi.yaml calls valid is
# answered as described, every one it calls invalid is refused, nothing is a 5xx. Against the real
# handlers served on 127.0.0.1 by `local-bridge` (the sandbox, as `make run` serves it), for a bounded
# number of examples per operation. Offsets and checkpoints are opaque: the hooks in
# tests/schemathesis/hooks.py send the real ones the schema's examples give (forged tokens are the
# token fuzzer's and the conformance kit's business).
API_FUZZ_EXAMPLES ?= 100
API_FUZZ_PORT ?= 9311
api-fuzz: $(ALL_STAMP)
	cargo build --quiet -p bridge-tests --bin local-bridge
	@target="$${CARGO_TARGET_DIR:-target}"; log="$$target/local-bridge.log"; \
	env -u AWS_LAMBDA_FUNCTION_NAME -u BRIDGE_SSM_PREFIX BRIDGE_CONNECTOR=sandbox \
	  "$$target/debug/local-bridge" --port $(API_FUZZ_PORT) >"$$log" 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true' EXIT; \
	for _ in $$(seq 1 100); do \
	  (exec 3<>/dev/tcp/127.0.0.1/$(API_FUZZ_PORT)) 2>/dev/null && break; \
	  kill -0 $$pid 2>/dev/null || { cat "$$log"; exit 1; }; sleep 0.1; \
	done; \
	start=$$(date +%s); \
	SCHEMATHESIS_HOOKS=tests/api_fuzz/hooks.py schemathesis run openapi.yaml \
	  --url http://127.0.0.1:$(API_FUZZ_PORT) --checks all --max-examples $(API_FUZZ_EXAMPLES) \
	  --seed 20261202 --generation-database none --no-color; \
	echo "api fuzzing took $$(( $$(date +%s) - start )) s"

# The registration document for a deployment, printed to stdout (README, "Connect Talkdesk").
talkdesk-config:
	@args=(--logo-url "$(LOGO_URL)" --icon-url "$(ICON_URL)"); \
	if [ -n "$(BASE_URL)" ]; then args+=(--base-url "$(BASE_URL)"); \
	elif [ -n "$(STACK_OUTPUTS)" ]; then args+=(--stack-outputs "$(STACK_OUTPUTS)"); \
	elif [ -n "$(STACK)" ]; then \
	  outputs=$$(mktemp); trap 'rm -f "$$outputs"' EXIT; \
	  aws cloudformation describe-stacks --stack-name "$(STACK)" --output json >"$$outputs"; \
	  args+=(--stack-outputs "$$outputs"); \
	else echo "give STACK=<stack name>, STACK_OUTPUTS=<describe-stacks JSON file> or BASE_URL=<https://...>" >&2; exit 2; fi; \
	if [ -n "$(CONNECTOR)" ]; then args+=(--connector "$(CONNECTOR)"); fi; \
	cargo run --quiet -p bridge-tests --bin talkdesk-config -- "$${args[@]}" $(TALKDESK_CONFIG_FLAGS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# ---------------------------------------------------------------- build for AWS

# Profile-guided optimisation (pgo/README.md): release builds of contacts and interactions use
# pgo/<target>.profdata when it is there; `make pgo-profiles` remakes both profiles.
HOST_TARGET := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
pgo-use = $(if $(wildcard pgo/$(1).profdata),-Cprofile-use=$(CURDIR)/pgo/$(1).profdata)

# Both arm64 bootstrap files into .aws-sam/build, with cargo-lambda cross-compiling through zig
# (no Docker). Options (parallel; no SAM cache, see the comment there) come from samconfig.toml.
# Optimised with pgo/aarch64-unknown-linux-gnu.profdata. RUSTFLAGS replaces the rustflags
# cargo-lambda gives cargo (`--config build.rustflags`, the Graviton CPU), so it names that CPU again.
sam-build: venv
	@rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
	  || rustup target add aarch64-unknown-linux-gnu
	@start=$$(date +%s); \
	RUSTFLAGS="-Ctarget-cpu=neoverse-n1 $(call pgo-use,aarch64-unknown-linux-gnu)" sam build --config-env $(SAM_ENV); \
	echo "sam build took $$(( $$(date +%s) - start )) s"
	@file .aws-sam/build/ContactsFunction/bootstrap .aws-sam/build/InteractionsFunction/bootstrap 2>/dev/null \
	  || ls -l .aws-sam/build/ContactsFunction/bootstrap .aws-sam/build/InteractionsFunction/bootstrap

# ---------------------------------------------------------------- benchmarks, fuzzing, faults

FUZZ_ITERATIONS ?= 1000000

# moto_server (from the venv) gives the SSM-prefetch cold-init figures; without it they are skipped.
# moto_server (for the SSM-prefetch cold starts) comes from the venv.
bench: $(ALL_STAMP) postgres-server
	RUSTFLAGS="$(call pgo-use,$(HOST_TARGET))" \
	  cargo build --release --target $(HOST_TARGET) --bin contacts --bin interactions
	cargo build --release -p bridge-tests --bin bench --bin hello-lambda
	target/release/bench --out BENCHMARKS.md --bin-dir target/$(HOST_TARGET)/release \
	  --hello target/release/hello-lambda $(if $(call pgo-use,$(HOST_TARGET)),--pgo pgo/$(HOST_TARGET).profdata)

# Remakes pgo/*.profdata from the quick bench run through instrumented builds (pgo/README.md: when).
pgo-profiles: $(ALL_STAMP) postgres-server
	pgo/train

fuzz:
	FUZZ_ITERATIONS=$(FUZZ_ITERATIONS) cargo test --release -p bridge-tests --test fuzz -- --nocapture

faults:
	cargo test -p bridge-tests --test faults -- --nocapture
