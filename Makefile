# raftkv: build, test and run the cluster. See README.md.
GO      ?= go
BIN     ?= raftkv
# Simulator seeds per run of `make test` (each seed is a full randomized fault schedule).
SIM_SEEDS ?= 1000

.PHONY: all build test test-unit test-sim test-cluster vet check-core clean bench chromium

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# The consensus core must stay a pure state machine: no I/O, clock or goroutines.
check-core:
	@bad=$$(grep -lE '^\s*"(net|os|time|math/rand|sync)"|^\s*go func|\bgo [a-zA-Z_.]+\(' $$(ls src/raft/*.go | grep -v _test.go) || true); \
	if [ -n "$$bad" ]; then echo "src/raft must do no I/O and start no goroutines: $$bad"; exit 1; fi

# Unit tests of every package but the real-process cluster tests.
test-unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /src/localcluster)

# Real `raftkv node` processes on 127.0.0.1: kills, pauses, restarts,
# InstallSnapshot, bad input, and a porcupine-checked history
# (RAFTKV_LIN_SECONDS, default 20).
test-cluster:
	$(GO) test -race -count=1 -timeout 15m ./src/localcluster

# The simulator again without the race detector (it is single-goroutine) and with many seeds.
test-sim:
	$(GO) test -count=1 ./src/raft/simtest -seeds=$(SIM_SEEDS)

test: vet check-core chromium test-unit test-sim test-cluster

# Headless Chromium for the dashboard test (src/dashboard), from Debian where
# missing. Without it the test skips loudly, or fails when CI=true or
# RAFT_REQUIRE_CHROMIUM=1.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium for the dashboard test (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true; \
	fi; \
	command -v chromium >/dev/null 2>&1 || echo "!!!!!!!! chromium is not installed and could not be: the dashboard browser test will be SKIPPED (install it: apt-get install -y chromium) !!!!!!!!"

# A local 3-node cluster (real processes, fsync on) in a temporary folder,
# the benchmark workloads with 256-byte values, then teardown.
# BENCH_ARGS="--duration 10s" for longer runs, "--only get" for some.
bench: build
	$(GO) run ./src/bench/benchrun --binary ./$(BIN) $(BENCH_ARGS)

clean:
	rm -f $(BIN)
	find persistence -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
