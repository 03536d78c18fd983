# Firebreak — the verbs a user types. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
EVENT ?= events/guardduty-ssh-brute-force.json
POLICY ?= events/policy.toml
FUZZ_SECONDS ?= 60

.PHONY: help test lint fmt plan bench fuzz demo clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test: lint ## format check, clippy (warnings denied), every test
	$(CARGO) test --workspace --all-targets --locked

lint: ## cargo fmt --check, clippy -D warnings, and the core stays pure
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@# The core must not depend on tokio, an AWS SDK or the Lambda runtime.
	@if $(CARGO) tree -p firebreak-core -e normal --prefix none --locked | grep -E '^(tokio|aws-sdk-|aws-config|lambda_runtime|hyper) '; then \
	  echo "crates/core must stay pure: the dependencies above do not belong in it"; exit 1; fi

fmt: ## format the code
	$(CARGO) fmt --all

plan: ## print the plan for EVENT under POLICY, e.g. make plan EVENT=events/alarm-failed-login.json
	$(CARGO) run --quiet -p firebreak-cli -- plan --pretty --policy $(POLICY) $(EVENT)

demo: ## plan every sample event and print what Firebreak would do (no AWS touched)
	@$(CARGO) build --quiet -p firebreak-cli
	@for f in events/*.json; do \
	  echo "== $$f"; \
	  $(CARGO) run --quiet -p firebreak-cli -- plan --text --policy $(POLICY) "$$f" || exit 1; \
	done

bench: ## criterion benchmark of parse → classify → plan
	$(CARGO) bench -p firebreak-core --bench plan

fuzz: ## fuzz the parser for FUZZ_SECONDS (needs cargo-fuzz; see README)
	cd crates/core/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run plan_event -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536

clean:
	$(CARGO) clean
