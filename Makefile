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
# The template scanners, pinned, in a venv of their own: checkov pins
# boto3==1.35.49, which would take moto's botocore back from 1.44 to 1.35 and
# which the newest SAM CLI does not accept (1.148.0 is the newest that does).
SCAN_VENV := .venv-scan
SCAN_TOOLS := checkov==3.3.30 aws-sam-cli==1.148.0
TEMPLATES := template.yaml template-member.yaml template-region.yaml
FN ?= firebreak-guardduty
FUNCTIONS := firebreak-alarm firebreak-guardduty firebreak-manual firebreak-release firebreak-expirer
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# What the tests build: every binary, and every test and bench harness of a
# target that has `test`/`bench` set (the one-line function mains opt out).
# Not `--all-targets`: it ignores those flags and would link a harness of the
# whole AWS SDK per function. Both sets include the dev-dependencies, so
# features resolve the same way and the SDK is compiled once for `make test`,
# `make demo` and the end-to-end tests.
TARGETS := --workspace --bins --tests --benches --locked
TEST_TARGETS := --workspace --tests --benches --locked
# Clippy in the same compile as the tests. `cargo clippy` runs cargo with
# clippy's driver as RUSTC_WORKSPACE_WRAPPER, arguments in CLIPPY_ARGS, for a
# `cargo check`; doing that for the test build lints the workspace's own
# crates (warnings denied) while the dependencies are compiled once, by
# rustc. A separate `cargo clippy` checks the whole AWS SDK a second time:
# ~30 minutes on 2 cores, a third of CI.
CLIPPY_DRIVER = $(shell rustc --print sysroot)/bin/clippy-driver
WITH_CLIPPY = RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

.PHONY: help test test-build lint style venv venv-scan fmt plan firebreak golden bench bench-core bench-roundtrips bench-versus bench-coldstart fuzz demo build watch invoke deploy clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

test: ## format check, cfn-lint, clippy (warnings denied), every test (the AWS ones against a local emulator)
	$(CARGO) fmt --all -- --check
	@# The venvs' first install (minutes of downloads) overlaps the build.
	@$(MAKE) --no-print-directory -j3 venv venv-scan test-build
	@$(MAKE) --no-print-directory style
	$(WITH_CLIPPY) $(CARGO) test $(TEST_TARGETS)

test-build: ## the one debug build every local verb uses, with clippy (warnings denied) on our crates
	@test -x $(CLIPPY_DRIVER) || { echo "clippy is not installed: rustup component add clippy"; exit 1; }
	@# Not echoed: `make plan` and `make firebreak` keep stdout for their output.
	@$(WITH_CLIPPY) $(CARGO) build $(TARGETS)

venv: ## the project's Python venv with the pinned tools (once; again when PY_TOOLS changes)
	@if [ "$$(cat $(VENV)/.installed 2>/dev/null)" != "$(PY_TOOLS)" ]; then \
	  echo "installing $(PY_TOOLS) into $(VENV)"; \
	  python3 -m venv $(VENV) && \
	  $(VENV)/bin/pip install --quiet --disable-pip-version-check $(foreach t,$(PY_TOOLS),'$(t)') && \
	  echo "$(PY_TOOLS)" > $(VENV)/.installed; \
	fi

venv-scan: ## the template scanners' venv (checkov, the SAM CLI), pinned like venv
	@if [ "$$(cat $(SCAN_VENV)/.installed 2>/dev/null)" != "$(SCAN_TOOLS)" ]; then \
	  echo "installing $(SCAN_TOOLS) into $(SCAN_VENV)"; \
	  python3 -m venv $(SCAN_VENV) && \
	  $(SCAN_VENV)/bin/pip install --quiet --disable-pip-version-check $(foreach t,$(SCAN_TOOLS),'$(t)') && \
	  echo "$(SCAN_TOOLS)" > $(SCAN_VENV)/.installed; \
	fi

lint: style test-build ## the static checks alone: style, then clippy (warnings denied) in the shared build

style: venv venv-scan ## cargo fmt --check; cfn-lint, sam validate --lint, checkov and the review's checks on the templates; the core stays pure
	$(CARGO) fmt --all -- --check
	$(VENV)/bin/cfn-lint $(TEMPLATES)
	@# Offline; the SAM translator wants a region for its pseudo-parameters.
	for t in $(TEMPLATES); do AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-eu-west-1} SAM_CLI_TELEMETRY=0 $(SCAN_VENV)/bin/sam validate --lint --template-file $$t || exit 1; done
	@# Any finding fails; accepted ones are skipped in the resource's Metadata, with the reason.
	$(SCAN_VENV)/bin/checkov --framework cloudformation --skip-download --quiet --compact $(foreach t,$(TEMPLATES),--file $(t))
	$(VENV)/bin/python3 tests/templates/check_templates.py .
	@# No module cycle; in crates/aws, actions/ and bucket/ name no use case.
	python3 tests/layering/check_layering.py .
	@# The core must not depend on tokio, an AWS SDK or the Lambda runtime.
	@if $(CARGO) tree -p firebreak-core -e normal --prefix none --locked | grep -E '^(tokio|aws-sdk-|aws-config|lambda_runtime|hyper) '; then \
	  echo "crates/core must stay pure: the dependencies above do not belong in it"; exit 1; fi

fmt: ## format the code
	$(CARGO) fmt --all

# Every verb below runs what `make test-build` built: one compile of the AWS
# SDK and of our crates for `make test`, `make demo` and all of these (a
# `cargo run -p …` or `cargo lambda watch` would resolve other features and
# compile the SDK again; tests/commands.rs fails if a verb or the README
# does that). The clippy wrapper is passed on to the programs that build.
FIREBREAK := $(TARGET_DIR)/debug/firebreak

plan: test-build ## print the plan for EVENT under POLICY, e.g. make plan EVENT=events/alarm-failed-login.json
	@$(FIREBREAK) plan --pretty --policy $(POLICY) $(EVENT)

firebreak: test-build ## the firebreak CLI, e.g. make firebreak ARGS='incidents list --since 24h' (or run $(TARGET_DIR)/debug/firebreak)
	@$(FIREBREAK) $(ARGS)

golden: ## rewrite events/plans/ from the current planner (review the diff like code)
	UPDATE_GOLDEN=1 $(WITH_CLIPPY) $(CARGO) test $(TEST_TARGETS) -- every_event_matches_its_golden_plan

demo: ## the main job on an embedded default: local AWS, a seeded account, the functions, the outcome
	@# The venv's first install overlaps the build, as in `make test`.
	@$(MAKE) --no-print-directory -j2 venv test-build
	$(WITH_CLIPPY) $(TARGET_DIR)/debug/firebreak-demo

build: venv ## Lambda bundles: cargo lambda build --release --arm64 (target/lambda/<function>/bootstrap)
	$(VENV)/bin/cargo-lambda lambda build --release --arm64 $(foreach f,$(FUNCTIONS),--bin $(f))

watch: ## serve the functions on 127.0.0.1:9000 against the AWS your environment names (Ctrl-C stops; run again after a change)
	@$(MAKE) --no-print-directory -j2 venv test-build
	$(TARGET_DIR)/debug/firebreak-serve --port 9000

invoke: venv ## send EVENT to FN under `make watch`, e.g. make invoke FN=firebreak-alarm EVENT=events/alarm-failed-login.json
	$(VENV)/bin/cargo-lambda lambda invoke --invoke-address 127.0.0.1 --invoke-port 9000 --data-file $(EVENT) $(FN)

deploy: ## deploy with AWS SAM (needs the sam CLI: pip install aws-sam-cli)
	sam build --beta-features && sam deploy --guided

bench: bench-core bench-roundtrips bench-versus bench-coldstart ## every benchmark (BENCHMARKS.md has the method and the figures)

bench-core: ## criterion: parse → classify → plan, events per second on one core
	$(CARGO) bench -p firebreak-core --bench plan

bench-roundtrips: venv test-build ## time to containment in AWS round trips (every call held 100 ms by a proxy)
	$(WITH_CLIPPY) $(TARGET_DIR)/debug/firebreak-roundtrips --runs 5 --json $(TARGET_DIR)/bench-roundtrips.json

bench-versus: venv ## Firebreak's release binary side by side with the Python baseline, whole process
	$(CARGO) build --release --locked -p firebreak-cli -p firebreak-guardduty -p firebreak-alarm -p firebreak-manual -p firebreak-release -p firebreak-expirer
	@$(MAKE) --no-print-directory test-build
	$(WITH_CLIPPY) $(TARGET_DIR)/debug/firebreak-versus --runs 5 --json $(TARGET_DIR)/bench-versus.json

bench-coldstart: venv ## each function's release binary: exec to ready and to first answer, size, peak memory
	$(CARGO) build --release --locked -p firebreak-cli -p firebreak-guardduty -p firebreak-alarm -p firebreak-manual -p firebreak-release -p firebreak-expirer
	@$(MAKE) --no-print-directory test-build
	$(WITH_CLIPPY) $(TARGET_DIR)/debug/firebreak-coldstart --runs 5 --json $(TARGET_DIR)/bench-coldstart.json

fuzz: ## fuzz the parser for FUZZ_SECONDS (needs cargo-fuzz; see README)
	cd crates/core/fuzz && mkdir -p corpus/plan_event && RUSTC_BOOTSTRAP=1 cargo fuzz run plan_event corpus/plan_event ../../../events ../../../events/invalid -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536

clean:
	$(CARGO) clean
