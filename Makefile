# Firebreak — the verbs a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
EVENT ?= events/guardduty-ssh-brute-force.json
POLICY ?= events/policy.toml
FUZZ_SECONDS ?= 60
VENV := .venv
# The Python tools, pinned: the local AWS emulator, the Lambda build/run
# tool and the template linter (jsonschema validates the record schema).
PY_TOOLS := moto[server]==5.2.5 cargo-lambda==1.9.2 cfn-lint==1.58.0 jsonschema==4.26.0 awscli==1.46.3
FN ?= firebreak-guardduty
FUNCTIONS := firebreak-alarm firebreak-guardduty firebreak-manual firebreak-expirer
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: help test lint venv fmt plan bench fuzz demo build watch invoke deploy clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test: lint venv ## format check, clippy (warnings denied), every test (the AWS ones against a local emulator)
	$(CARGO) test --workspace --all-targets --locked

venv: ## the project's Python venv with the pinned tools (once; again when PY_TOOLS changes)
	@if [ "$$(cat $(VENV)/.installed 2>/dev/null)" != "$(PY_TOOLS)" ]; then \
	  echo "installing $(PY_TOOLS) into $(VENV)"; \
	  python3 -m venv $(VENV) && \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check $(foreach t,$(PY_TOOLS),'$(t)') && \
	  echo "$(PY_TOOLS)" > $(VENV)/.installed; \
	fi

lint: venv ## cargo fmt --check, clippy -D warnings, the core stays pure, cfn-lint on template.yaml
	$(CARGO) fmt --all -- --check
	$(VENV)/bin/cfn-lint template.yaml
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@# The core must not depend on tokio, an AWS SDK or the Lambda runtime.
	@if $(CARGO) tree -p firebreak-core -e normal --prefix none --locked | grep -E '^(tokio|aws-sdk-|aws-config|lambda_runtime|hyper) '; then \
	  echo "crates/core must stay pure: the dependencies above do not belong in it"; exit 1; fi

fmt: ## format the code
	$(CARGO) fmt --all

plan: ## print the plan for EVENT under POLICY, e.g. make plan EVENT=events/alarm-failed-login.json
	$(CARGO) run --quiet -p firebreak-cli -- plan --pretty --policy $(POLICY) $(EVENT)

demo: venv ## the main job on an embedded default: local AWS, a seeded account, the functions, the outcome
	$(CARGO) build --workspace --all-targets --locked
	$(TARGET_DIR)/debug/firebreak-demo

build: venv ## Lambda bundles: cargo lambda build --release --arm64 (target/lambda/<function>/bootstrap)
	$(VENV)/bin/cargo-lambda lambda build --release --arm64 $(foreach f,$(FUNCTIONS),--bin $(f))

watch: venv ## serve the functions locally on 127.0.0.1:9000 (cargo lambda watch)
	$(VENV)/bin/cargo-lambda lambda watch --invoke-address 127.0.0.1 --invoke-port 9000

invoke: venv ## send EVENT to FN under `make watch`, e.g. make invoke FN=firebreak-alarm EVENT=events/alarm-failed-login.json
	$(VENV)/bin/cargo-lambda lambda invoke --invoke-address 127.0.0.1 --invoke-port 9000 --data-file $(EVENT) $(FN)

deploy: ## deploy with AWS SAM (needs the sam CLI: pip install aws-sam-cli)
	sam build --beta-features && sam deploy --guided

bench: ## criterion benchmark of parse → classify → plan
	$(CARGO) bench -p firebreak-core --bench plan

fuzz: ## fuzz the parser for FUZZ_SECONDS (needs cargo-fuzz; see README)
	cd crates/core/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run plan_event -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536

clean:
	$(CARGO) clean
