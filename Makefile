# Federator developer targets. `make help` lists them.
CARGO ?= cargo

.PHONY: help build test lint fmt crds demo

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build every crate (debug)
	$(CARGO) build --workspace

test: ## Run the whole test suite (the command CI runs)
	$(CARGO) test --workspace --locked

lint: ## Formatting and clippy, as CI checks them
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate crds/ from the Rust API types
	$(CARGO) run --quiet -p federator -- crd --output-dir crds

demo: ## The local demo on kube-sim (no Docker needed)
	./scripts/demo.sh
