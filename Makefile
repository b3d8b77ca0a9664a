# Small, honest targets. `make test` works on a fresh Debian 12 machine: it
# installs its prerequisites first (scripts/deps.sh).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO ?= go
MODULE := github.com/ddmq-go/carrera
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION)

# Every directory under cmd/ is a binary: bin/pproxy, bin/cproxy, ...
CMDS := $(patsubst cmd/%/,%,$(wildcard cmd/*/))

# Packages tested without the race detector (import paths or patterns), e.g.
# the packages that start rocketmq-client-go consumers (known races inside the
# client). Everything else runs with -race.
NORACE_PKGS ?= ./internal/testbroker/rocketmq
TEST_FLAGS ?= -shuffle=on -count=1 -timeout 20m
FUZZTIME ?= 10s

THRIFT_VERSION := 0.17.0
THRIFT_GEN := go:package_prefix=$(MODULE)/gen-go/,skip_remote
IDL := idl/producerProxy.thrift idl/consumerProxy.thrift

.PHONY: all
all: build

.PHONY: deps
deps:
	scripts/deps.sh

# Regenerates gen-go/carrera from idl/. Needs the 0.17 compiler: another
# version produces a diff against the checked-in code.
.PHONY: generate
generate:
	@scripts/thrift-gen.sh "$(THRIFT_VERSION)" "$(THRIFT_GEN)" gen-go $(IDL)

# Fails when gen-go/ is not what `make generate` would produce.
.PHONY: check-generate
check-generate:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	scripts/thrift-gen.sh "$(THRIFT_VERSION)" "$(THRIFT_GEN)" "$$tmp" $(IDL); \
	if ! diff -r "$$tmp/carrera" gen-go/carrera; then \
		echo "gen-go/ is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi; \
	echo "gen-go/ is up to date"

.PHONY: build
build: $(addprefix bin/,$(CMDS))

# FORCE: the go build cache decides what is stale.
bin/%: FORCE
	$(GO) build -ldflags "$(LDFLAGS)" -o $@ ./cmd/$*

.PHONY: FORCE
FORCE:

.PHONY: vet
vet:
	$(GO) vet ./...
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l cmd internal) || exit 1; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi

.PHONY: test
test: deps check-generate vet
	@norace=""; rc=0; \
	if [ -n "$(strip $(NORACE_PKGS))" ]; then norace=$$($(GO) list $(NORACE_PKGS)) || exit 1; fi; \
	race=$$($(GO) list ./... | grep -vxF -f <(printf '%s\n' $$norace)); \
	echo "go test -race $(TEST_FLAGS) <$$(wc -w <<<"$$race") packages>"; \
	$(GO) test -race $(TEST_FLAGS) $$race || rc=1; \
	if [ -n "$$norace" ]; then \
		echo "go test $(TEST_FLAGS) (no -race): $$norace"; \
		$(GO) test $(TEST_FLAGS) $$norace || rc=1; \
	fi; \
	exit $$rc

# Runs every Fuzz target for FUZZTIME (default 10s) each.
.PHONY: fuzz-short
fuzz-short:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz-short.sh

# Local stack: ZooKeeper + kfakeserver (dev-only Kafka) + pproxy + cproxy on
# 127.0.0.1; 5 messages sent through pproxy, read back from the broker and
# pulled through cproxy. Stays up until `make demo-stop`.
.PHONY: demo
demo:
	scripts/demo.sh

.PHONY: demo-stop
demo-stop:
	scripts/demo-stop.sh

# pproxy vs direct sarama in one run: starts its own ZooKeeper, dev broker and
# pproxy processes, prints msgs/s, p50/p99, ratios, peak RSS and target verdicts.
# e.g. make bench-produce BENCH_ARGS='-duration 10s -pin'
BENCH_ARGS ?=
.PHONY: bench-produce
bench-produce:
	$(GO) run ./cmd/benchproduce $(BENCH_ARGS)

# e.g. make bench-consume BENCH_ARGS='-duration 3s -prefill 100000'
.PHONY: bench-consume
bench-consume:
	$(GO) run ./cmd/benchconsume $(BENCH_ARGS)

# Delay service: through-proxy and direct ingest rate, store size, RSS vs
# pending, fire lateness. e.g. make bench-delay BENCH_ARGS='-n 200000 -direct-n 200000 -spread 1m'
.PHONY: bench-delay
bench-delay:
	$(GO) run ./cmd/benchdelay $(BENCH_ARGS)

.PHONY: lint
lint:
	@if command -v golangci-lint >/dev/null 2>&1; then \
		echo golangci-lint run ./...; golangci-lint run ./...; \
	else \
		echo "golangci-lint not installed; running go vet only" >&2; \
		echo "  (install: go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0)" >&2; \
		$(GO) vet ./...; \
	fi

.PHONY: clean
clean:
	rm -rf bin output
