# Makefile for orgs. `make` (or `make help`) lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BENCHTIME ?= 1s
SOAK_DURATION ?= 10m
SOAK_TIMEOUT ?= 1h
GOFILES = find . -name '*.go' -not -path './.tmp/*' -not -path './bin/*' -print0

.PHONY: help run test bench build lint db db-stop clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## run the whole system locally (Postgres, NATS, api, mailer, reminder)
	scripts/run.sh

test: ## vet, gofmt check and every test, with a throwaway Postgres (what CI runs)
	scripts/test.sh

bench: ## run the benchmarks (BENCHTIME=1s) against the test database
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(scripts/pg.sh start)}" \
		go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

.PHONY: bench-e2e
bench-e2e: ## the whole system under the load tool, flow by flow (BENCH_ARGS="-d 20s -c 8 invite-64")
	scripts/bench-e2e.sh $(BENCH_ARGS)

.PHONY: soak
soak: ## the fault soak: load and faults for SOAK_DURATION (10m), then its checks and table
	TEST_DATABASE_URL="$${TEST_DATABASE_URL:-$$(scripts/pg.sh start)}" SOAK_DURATION=$(SOAK_DURATION) \
		go test -count=1 -run '^TestSoak$$' -v -timeout $(SOAK_TIMEOUT) ./internal/soak/

build: ## build every command into bin/
	go build -o bin/ ./cmd/...

lint: ## go vet, staticcheck and a gofmt check
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	@files=$$($(GOFILES) | xargs -0 -r gofmt -l); \
		if [ -n "$$files" ]; then echo "these files need gofmt -w:"; echo "$$files"; exit 1; fi

db: ## start the local Postgres cluster (.tmp/pg) and print its URL
	scripts/pg.sh start

db-stop: ## stop the local Postgres cluster
	scripts/pg.sh stop

clean: ## stop Postgres, remove .tmp/ and bin/
	scripts/pg.sh remove
	rm -rf .tmp bin
