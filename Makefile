# Federator developer targets. `make help` lists them.
CARGO ?= cargo
# kind: number of clusters of multi-up, and the image built and loaded into them.
NUM_CLUSTERS ?= 3
IMAGE ?= federator:dev

.PHONY: help build test lint fmt crds demo bench image multi-up single-up multi-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## Build every crate (debug)
	$(CARGO) build --workspace

test: ## Run the whole test suite (the command CI runs)
	$(CARGO) test --workspace --locked

lint: ## Formatting and clippy, as CI checks them
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

crds: ## Regenerate crds/ and docs/crd-reference.md from the Rust API types
	$(CARGO) run --quiet -p federator -- crd --output-dir crds --reference docs/crd-reference.md

demo: ## The local demo on kube-sim (no Docker needed)
	./scripts/demo.sh

bench: ## Fan-out benchmark on kube-sim against the floor: 1, 10, 50, 100 regions (FANOUT_REGIONS, FANOUT_RUNS, FANOUT_CHANGES, FANOUT_STEADY_SECONDS)
	$(CARGO) bench -p federator --bench fanout

image: ## Build the container image IMAGE (default federator:dev; needs Docker)
	docker build -t $(IMAGE) .

multi-up: ## kind: NUM_CLUSTERS clusters (default 3), control plane in federator-0, a cluster spanning all until Ready
	NUM_CLUSTERS=$(NUM_CLUSTERS) IMAGE=$(IMAGE) ./kind/up.sh

single-up: ## kind: one cluster with the control plane and a single-region Cassandra cluster until Ready
	NUM_CLUSTERS=1 IMAGE=$(IMAGE) ./kind/up.sh

multi-down: ## kind: delete the clusters of multi-up / single-up
	./kind/down.sh
