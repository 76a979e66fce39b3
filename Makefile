# raftkv: build, test and run the cluster. See README.md.
GO      ?= go
BIN     ?= raftkv
# Simulator seeds per run of `make test` (each seed is a full randomized fault schedule).
SIM_SEEDS ?= 1000

.PHONY: all build test test-unit test-sim test-cluster vet check-core clean bench chromium \
	image certs run test-docker test-deploy k8s-manifests test_stop1 test_stop2 test_disconnect1 test_disconnect2 test_disconnect_reconnect \
	test_replace test_grow_shrink test_rolling_restart

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) .

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# The consensus core must stay a pure state machine: it imports nothing of
# ours and no package that reaches the clock, the network, the disk,
# randomness or concurrency, and starts no goroutine. The imports come from
# `go list` (the compiler's view: any import syntax, any file that builds);
# they are the direct ones, since fmt itself imports os and sync.
CORE_FORBIDDEN = ^(raftkv/|net$$|net/|os$$|os/|time$$|sync$$|sync/|math/rand|crypto/rand|syscall|io/fs|io/ioutil|unsafe|runtime|log$$|log/)
check-core:
	@imports=$$($(GO) list -f '{{join .Imports "\n"}}' ./src/raft) || exit 1; \
	bad=$$(printf '%s\n' "$$imports" | grep -E '$(CORE_FORBIDDEN)' || true); \
	if [ -n "$$bad" ]; then echo "src/raft must do no I/O and use no clock, randomness or concurrency; it imports:"; echo "$$bad"; exit 1; fi; \
	gos=$$(grep -nE '(^|[^A-Za-z0-9_.])go[[:space:]]+(func[[:space:]]*\(|[A-Za-z_][A-Za-z0-9_.]*\()' $$($(GO) list -f '{{range .GoFiles}}{{$$.Dir}}/{{.}} {{end}}' ./src/raft) || true); \
	if [ -n "$$gos" ]; then echo "src/raft must start no goroutine:"; echo "$$gos"; exit 1; fi; \
	echo "check-core: src/raft imports only $$(printf '%s ' $$imports)"

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

test: vet check-core chromium test-unit test-sim test-cluster test-deploy test-docker

# The Helm chart (deploy/helm/raftkv) and its renders (deploy/k8s/): helm
# lint, a fresh render equal to the committed one, strict decoding into the
# Kubernetes API types, the StatefulSet's invariants, and the real binary run
# with the pod's arguments. Its own module (deploy/test/go.mod) keeps helm
# and k8s.io out of raftkv's; helm is built from its Go module (go tool helm).
test-deploy:
	cd deploy/test && $(GO) test -count=1 ./...

# Render the chart again into deploy/k8s/ (after changing the chart).
k8s-manifests:
	cd deploy/test && $(GO) test -count=1 -run '^TestManifests$$' ./... -update

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
	$(GO) run ./src/bench/benchrun --binary ./$(BIN) --plot bench-results/latency.png $(BENCH_ARGS)

# ---- Docker: the image, `make run` and the fault-injection experiments (docs/docker.md) ----
# No base image can be pulled here: the image is FROM scratch with the static
# binary built above. The compose tool is `docker compose` or `docker-compose`,
# whichever exists (override: COMPOSE=...).
IMAGE   ?= raftkv:latest
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
# Does a Docker engine answer?
DOCKER_UP = docker info >/dev/null 2>&1
# `make run` lasts RAFT_DURATION seconds.
RAFT_DURATION ?= 30
export RAFT_COMPOSE = $(COMPOSE)
# The compose project and network prefix, one per checkout (docs/docker.md).
RAFT_PREFIX ?= raftkv-$(shell printf '%s' '$(CURDIR)' | cksum | cut -c1-6)
export RAFT_PREFIX
export RAFT_UID := $(shell id -u)
export RAFT_GID := $(shell id -g)
EXPERIMENTS = TestStop1|TestStop2|TestDisconnect1|TestDisconnect2|TestDisconnectReconnect|TestReplace|TestGrowShrink|TestRollingRestart
# The experiments' knobs (see src/dockertest): EXP_SECONDS (outage, default 12),
# EXP_INTERVAL (clients' RAFT_INTERVAL, default 200ms), EXP_WARMUP, EXP_TIMEOUT,
# EXP_STALL (test_replace's leaderless window, default 5 election timeouts).
DOCKER_GO_TEST = RAFT_DOCKER_TESTS=1 $(GO) test -count=1 -v -timeout 15m ./src/dockertest -run

# The cluster CA, r0..r4's certificates (r3, r4: test_grow_shrink) and a token per role (admin,
# read-write, read-only: certs/ROLE.token, hashes in certs/tokens.json) for
# `make run` and the Docker experiments, made once by the just-built binary
# into the git-ignored certs/ (docker-compose.yaml mounts it at /certs).
# `rm -rf certs` for new ones.
CERTS_DIR ?= certs
certs: build
	@test -f $(CERTS_DIR)/ca.pem || ./$(BIN) certs init --dir $(CERTS_DIR)
	@for n in r0 r1 r2 r3 r4; do \
	  test -f $(CERTS_DIR)/$$n.pem || ./$(BIN) certs node $$n --dir $(CERTS_DIR) --host $$n,127.0.0.1,localhost || exit 1; \
	done
	@for r in admin read-write read-only; do \
	  test -f $(CERTS_DIR)/$$r.token || ./$(BIN) certs token $$r --role $$r --dir $(CERTS_DIR) --force || exit 1; \
	done

image: build certs
	docker build -q -t $(IMAGE) . >/dev/null
	@echo "built image $(IMAGE) (FROM scratch + ./$(BIN))"

# 3 nodes + 2 clients for RAFT_DURATION seconds, then the state-machine
# comparison. Without a Docker engine: the same cluster as local processes.
run: build certs
	@if $(DOCKER_UP); then $(MAKE) --no-print-directory image; fi
	RAFT_DURATION=$(RAFT_DURATION) $(GO) run ./src/dockertest/cmd/run --binary ./$(BIN)

test_stop1: image
	$(DOCKER_GO_TEST) '^TestStop1$$'
test_stop2: image
	$(DOCKER_GO_TEST) '^TestStop2$$'
test_disconnect1: image
	$(DOCKER_GO_TEST) '^TestDisconnect1$$'
test_disconnect2: image
	$(DOCKER_GO_TEST) '^TestDisconnect2$$'
test_disconnect_reconnect: image
	$(DOCKER_GO_TEST) '^TestDisconnectReconnect$$'
# Membership (issue 13): a wiped follower rejoins, a wiped holder of recent
# writes loses nothing; 3 -> 5 -> 3 voters; a rolling restart fails no write.
test_replace: image
	$(DOCKER_GO_TEST) '^TestReplace$$'
test_grow_shrink: image
	$(DOCKER_GO_TEST) '^TestGrowShrink$$'
test_rolling_restart: image
	$(DOCKER_GO_TEST) '^TestRollingRestart$$'

# All eight experiments (the last step of `make test`). Where no Docker engine
# answers they are skipped, loudly; with RAFT_REQUIRE_DOCKER=1 (CI) that fails.
test-docker:
	@if ! $(DOCKER_UP) || [ -z "$(COMPOSE)" ]; then \
	  why="no Docker engine answers (docker info failed)"; \
	  if $(DOCKER_UP); then why="neither 'docker compose' nor 'docker-compose' is installed"; fi; \
	  echo; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!!  THE DOCKER FAULT-INJECTION EXPERIMENTS WERE NOT RUN:"; \
	  echo "!!  $$why."; \
	  echo "!!  test_stop1 test_stop2 test_disconnect1 test_disconnect2"; \
	  echo "!!  test_disconnect_reconnect test_replace test_grow_shrink"; \
	  echo "!!  test_rolling_restart: SKIPPED"; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  if [ "$(RAFT_REQUIRE_DOCKER)" = 1 ]; then echo "RAFT_REQUIRE_DOCKER=1: failing"; exit 1; fi; \
	  exit 0; \
	fi; \
	$(MAKE) --no-print-directory image && $(DOCKER_GO_TEST) '^($(EXPERIMENTS))$$'

clean:
	-@if [ -n "$(COMPOSE)" ] && $(DOCKER_UP); then $(COMPOSE) -p $(RAFT_PREFIX) --profile grow down --remove-orphans -t 5 >/dev/null 2>&1; fi
	rm -f $(BIN)
	find persistence -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
