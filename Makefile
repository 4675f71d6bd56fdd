# auditstream developer tasks. `make help` lists them.
#
# Every module listed in go.work is built, linted and tested; the list is read
# from `go list -m`, so a new module only needs adding to go.work. Every
# services/<name>/main.go is built into bin/<name>.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go

# Tools are installed per repository, into a git-ignored directory.
TOOLS_BIN := $(CURDIR)/.tools/bin

# Pinned tool versions (staticcheck v0.8.2 is release 2026.2.2).
STATICCHECK_VERSION           := v0.8.2
PROTOC_GEN_GO_VERSION         := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
AZURITE_VERSION               := 3.37.0
HELM_VERSION                  := v3.22.0

# Package patterns of every workspace module: ./proto/... ./services/ingest/...
LIST_PACKAGES := $(GO) list -m -f '{{.Dir}}/...' | sed 's|^$(CURDIR)/|./|'
LIST_MODULE_DIRS := $(GO) list -m -f '{{.Dir}}' | sed 's|^$(CURDIR)/|./|'

SERVICES := $(patsubst services/%/main.go,%,$(wildcard services/*/main.go))

TEST_FLAGS ?= -count=1 -timeout 20m
# The race detector multiplies CPU time by about 5 and memory by 5 to 10.
RACE_FLAGS ?= -race -count=1 -timeout 30m
# Extra flags for `make run`, e.g. make run DEVSTACK_FLAGS='--data-dir /tmp/as'.
DEVSTACK_FLAGS ?=

# go_install installs $(2)@$(3) as $(TOOLS_BIN)/$(1) unless that version is
# already there.
define go_install
	@if [[ -x "$(TOOLS_BIN)/$(1)" && "$$(cat "$(TOOLS_BIN)/.$(1).version" 2>/dev/null)" == "$(3)" ]]; then \
		:; \
	else \
		echo "installing $(1) $(3) into .tools/bin"; \
		GOBIN="$(TOOLS_BIN)" $(GO) install "$(2)@$(3)"; \
		echo "$(3)" > "$(TOOLS_BIN)/.$(1).version"; \
	fi
endef

.PHONY: help build run test test-race fuzz tools azurite chromium lint proto proto-tools bench chaos fmt clean chart-test images

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build every service into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do \
		echo "$(GO) build -o bin/$$s ./services/$$s"; \
		$(GO) build -o "bin/$$s" "./services/$$s"; \
	done

run: build ## build, then run the whole pipeline locally (embedded Kafka + services)
	exec ./bin/devstack $(DEVSTACK_FLAGS)

test: tools chart-test ## run every module's tests
	@pkgs=$$($(LIST_PACKAGES) | grep -v '^./services/deploytest/'); \
	echo "$(GO) test $(TEST_FLAGS)" $$pkgs; \
	$(GO) test $(TEST_FLAGS) $$pkgs

# Every module's tests again under the race detector, the deployment tests
# included (they start helm and read files, and are quick).
test-race: tools ## run every module's tests under the race detector
	@pkgs=$$($(LIST_PACKAGES)); \
	echo "$(GO) test $(RACE_FLAGS)" $$pkgs; \
	$(GO) test $(RACE_FLAGS) $$pkgs

# Every fuzz target of every module, each for FUZZTIME (.ci/fuzz): the
# default keeps the whole pass at about 3-4 minutes on 2 cores. FUZZ, a
# regular expression, keeps the targets whose "package-dir Name" matches,
# e.g. make fuzz FUZZ=ddfake FUZZTIME=2m.
FUZZTIME ?= 6s
FUZZ ?= .
fuzz: ## run every fuzz target for FUZZTIME each (default 6s)
	GO="$(GO)" FUZZTIME="$(FUZZTIME)" FUZZ="$(FUZZ)" ./.ci/fuzz

tools: azurite chromium ## install the tools tests and lint need into .tools/bin
	@mkdir -p "$(TOOLS_BIN)"
	$(call go_install,staticcheck,honnef.co/go/tools/cmd/staticcheck,$(STATICCHECK_VERSION))
	$(call go_install,helm,helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

# The chart: helm lint and helm template with every ci/*-values.yaml, then the
# Go tests of services/deploytest (chart, docker-compose.yml, Dockerfile),
# which `make test` runs here rather than twice. A helm built with go install
# renders for Kubernetes 1.20 unless told otherwise.
CHART := charts/auditstream
HELM_KUBE_VERSION := 1.31.0
chart-test: tools ## lint and render the Helm chart, then the deployment tests
	@for f in $(CHART)/ci/*-values.yaml; do \
		echo "helm lint --strict and helm template -f $$f"; \
		"$(TOOLS_BIN)/helm" lint --strict --quiet --kube-version $(HELM_KUBE_VERSION) $(CHART) -f "$$f"; \
		"$(TOOLS_BIN)/helm" template auditstream $(CHART) --kube-version $(HELM_KUBE_VERSION) -f "$$f" > /dev/null; \
	done
	$(GO) test $(TEST_FLAGS) ./services/deploytest/...

# One image per service (not devstack) from the one Dockerfile, tagged
# $(IMAGE_PREFIX)/<service>:$(VERSION).
IMAGE_SERVICES := $(filter-out devstack,$(SERVICES))
IMAGE_PREFIX ?= auditstream
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
images: ## build the container images with docker build (needs a Docker engine)
	@command -v docker >/dev/null 2>&1 || { echo "make images: docker not found; building the images needs a Docker engine (docker build --build-arg SERVICE=<name> .)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine answers (docker info failed); start one or point DOCKER_HOST at one" >&2; exit 1; }
	@for s in $(IMAGE_SERVICES); do \
		echo "docker build --build-arg SERVICE=$$s --build-arg VERSION=$(VERSION) -t $(IMAGE_PREFIX)/$$s:$(VERSION) ."; \
		docker build --build-arg SERVICE="$$s" --build-arg VERSION="$(VERSION)" -t "$(IMAGE_PREFIX)/$$s:$(VERSION)" .; \
	done

# Azurite, the Azure Blob emulator the archive's Azure tests start, is an npm
# package; it goes into .tools/azurite (installs nodejs and npm from Debian if
# missing).
AZURITE_DIR := $(CURDIR)/.tools/azurite
azurite:
	@if [[ -x "$(AZURITE_DIR)/node_modules/.bin/azurite-blob" && "$$(cat "$(AZURITE_DIR)/.version" 2>/dev/null)" == "$(AZURITE_VERSION)" ]]; then \
		:; \
	else \
		if ! command -v npm >/dev/null; then \
			sudo=""; [[ "$$(id -u)" == 0 ]] || sudo=sudo; \
			echo "npm not found: installing Debian's nodejs and npm"; \
			$$sudo apt-get install -y nodejs npm || { $$sudo apt-get update && $$sudo apt-get install -y nodejs npm; }; \
		fi; \
		echo "installing azurite $(AZURITE_VERSION) into .tools/azurite"; \
		mkdir -p "$(AZURITE_DIR)"; \
		npm install --prefix "$(AZURITE_DIR)" --save-exact --no-audit --no-fund --loglevel=error "azurite@$(AZURITE_VERSION)"; \
		echo "$(AZURITE_VERSION)" > "$(AZURITE_DIR)/.version"; \
	fi

# Debian's chromium, the headless browser the destinations console's tests
# drive (services/destinations-api/internal/console); installed with apt-get
# when missing.
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		sudo=""; [[ "$$(id -u)" == 0 ]] || sudo=sudo; \
		echo "chromium not found: installing Debian's chromium ($${sudo:+sudo }apt-get install -y chromium)"; \
		$$sudo apt-get install -y -qq chromium || { $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; }; \
	fi

lint: tools ## gofmt check, go vet and staticcheck on every module
	@dirs=$$($(LIST_MODULE_DIRS)); \
	unformatted=$$(gofmt -l $$dirs); \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt: these files need formatting (run make fmt):"; echo "$$unformatted"; exit 1; \
	fi
	@pkgs=$$($(LIST_PACKAGES)); \
	echo "$(GO) vet" $$pkgs; \
	$(GO) vet $$pkgs; \
	echo "staticcheck" $$pkgs; \
	"$(TOOLS_BIN)/staticcheck" $$pkgs

proto-tools:
	@mkdir -p "$(TOOLS_BIN)"
	$(call go_install,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION))
	$(call go_install,protoc-gen-connect-go,connectrpc.com/connect/cmd/protoc-gen-connect-go,$(PROTOC_GEN_CONNECT_GO_VERSION))

proto: proto-tools ## regenerate the Go code of proto/ (installs protoc if missing)
	@if ! command -v protoc >/dev/null; then \
		sudo=""; [[ "$$(id -u)" == 0 ]] || sudo=sudo; \
		echo "protoc not found: installing Debian's protobuf-compiler ($${sudo:+sudo }apt-get install -y protobuf-compiler)"; \
		$$sudo apt-get install -y protobuf-compiler || { $$sudo apt-get update && $$sudo apt-get install -y protobuf-compiler; }; \
	fi
	PATH="$(TOOLS_BIN):$$PATH" ./proto/gen.sh

BENCH_FLAGS ?= -benchtime=3s -count=3
DATADOG_BENCH_PKG := ./services/datadog-forwarder/internal/forwarder
DATADOG_BENCH_OUT := $(CURDIR)/bin/bench-datadog.out
EVENTBRIDGE_BENCH_PKG := ./services/eventbridge-forwarder/internal/forwarder
EVENTBRIDGE_BENCH_OUT := $(CURDIR)/bin/bench-eventbridge.out
OTLP_BENCH_PKG := ./services/otlp-forwarder/internal/forwarder
OTLP_BENCH_OUT := $(CURDIR)/bin/bench-otlp.out
# OTLP_BENCH_EVENTS=50000 runs the OTLP forwarder's passes shorter (the
# memory verdict then judges a 50 MB backlog).
OTLP_BENCH_EVENTS ?= 500000
ARCHIVER_BENCH_PKG := ./services/archiver/internal/archiver
ARCHIVER_BENCH_OUT := $(CURDIR)/bin/bench-archiver.out

bench: ## throughput, latency and peak memory of each service as ratios against the raw franz-go ceiling on the same broker
	@mkdir -p bin
	$(GO) build -o bin/benchreport ./services/testsupport/benchutil/cmd/benchreport
	@echo "== ingest: POST /v1/events (1 KB events) vs raw franz-go produce"
	$(GO) test -run '^$$' -bench 'RawProduceCeiling|IngestBatch' $(BENCH_FLAGS) ./services/ingest/internal/ingest/ 2>&1 | \
		bin/benchreport -ceiling RawProduceCeiling -candidate IngestBatch -metric events/s -target 0.5
	@echo "== datadog forwarder: raw consume ceiling, encode-only, intake-only, full forwarder into the intake fake, latency at 1k events/s"
	$(GO) test -run '^$$' -bench 'Datadog(ConsumeCeiling|EncodeOnly|IntakeOnly|Forwarder|ForwarderCPUSplit)$$' -benchtime 500000x -count 3 -benchmem $(DATADOG_BENCH_PKG) | tee $(DATADOG_BENCH_OUT)
	$(GO) test -run '^$$' -bench 'DatadogEndToEndLatency$$' -benchtime 1x -count 3 -benchmem $(DATADOG_BENCH_PKG) | tee -a $(DATADOG_BENCH_OUT)
	AUDITSTREAM_BENCH_OUTPUT=$(DATADOG_BENCH_OUT) $(GO) test -tags benchreport -count=1 -run '^TestDatadogBenchReport$$' -v $(DATADOG_BENCH_PKG)
	@echo "== eventbridge forwarder: raw consume ceiling, entry-only, encode-only and bus-only, full forwarder into the EventBridge fake, latency at 1k events/s"
	$(GO) test -run '^$$' -bench 'EventBridge(ConsumeCeiling|EntryOnly|EncodeOnly|BusOnly|Forwarder|ForwarderCPUSplit)$$' -benchtime 500000x -count 3 -benchmem $(EVENTBRIDGE_BENCH_PKG) | tee $(EVENTBRIDGE_BENCH_OUT)
	$(GO) test -run '^$$' -bench 'EventBridgeEndToEndLatency$$' -benchtime 1x -count 3 -benchmem $(EVENTBRIDGE_BENCH_PKG) | tee -a $(EVENTBRIDGE_BENCH_OUT)
	AUDITSTREAM_BENCH_OUTPUT=$(EVENTBRIDGE_BENCH_OUT) $(GO) test -tags benchreport -count=1 -run '^TestEventBridgeBenchReport$$' -v $(EVENTBRIDGE_BENCH_PKG)
	@echo "== otlp forwarder: raw consume ceiling, encode-only and WriteBatch-only, full forwarder into the OTLP fake, latency at 1k events/s"
	$(GO) test -run '^$$' -bench 'OTLP(ConsumeCeiling|EncodeOnly|WriteBatchOnly|Forwarder|ForwarderCPUSplit)$$' -benchtime $(OTLP_BENCH_EVENTS)x -count 3 -benchmem $(OTLP_BENCH_PKG) | tee $(OTLP_BENCH_OUT)
	$(GO) test -run '^$$' -bench 'OTLPEndToEndLatency$$' -benchtime 1x -count 3 -benchmem $(OTLP_BENCH_PKG) | tee -a $(OTLP_BENCH_OUT)
	AUDITSTREAM_BENCH_OUTPUT=$(OTLP_BENCH_OUT) $(GO) test -tags benchreport -count=1 -run '^TestOTLPBenchReport$$' -v $(OTLP_BENCH_PKG)
	@echo "== archiver: raw consume ceiling, one day of 1 KB events archived into a local directory and into gofakes3 (target 150k events/s)"
	$(GO) test -run '^$$' -bench 'Archive(ConsumeCeiling|Local|S3)$$' -benchtime 200000x -count 3 $(ARCHIVER_BENCH_PKG) | tee $(ARCHIVER_BENCH_OUT) | \
		bin/benchreport -ceiling ArchiveConsumeCeiling -candidate ArchiveLocal -metric events/s -target 0 -min 150000
	bin/benchreport -quiet -ceiling ArchiveConsumeCeiling -candidate ArchiveS3 -metric events/s -target 0 -min 150000 < $(ARCHIVER_BENCH_OUT)
	@echo "== archiver: a day of 2 GB of JSON over 10,000 accounts; live heap above the broker's (target under 300 MB)"
	$(GO) test -run '^$$' -bench 'ArchiveLargeDay$$' -benchtime 1x -timeout 30m $(ARCHIVER_BENCH_PKG)
	@echo "== destinations: a consumer's start-up with 25,000 and 100,000 accounts in the destinations topic (target: ready in under 10 s, memory by accounts, not records), against a bare read of the same records"
	$(GO) test -run '^$$' -bench 'DestinationsStartup' -benchtime 1x -timeout 30m ./services/internal/destinations/
	@echo "== destinations API: from the PUT that turns streaming on to the account's first event at Datadog, through the real forwarder (p50/p99)"
	$(GO) test -run '^$$' -bench 'Propagation$$' -benchtime 50x ./services/destinations-api/internal/api/

# The chaos test (docs/chaos.md): the real binaries of `make build` as
# processes, under load, while replicas are killed, the sinks storm and the
# broker restarts; then an independent check of what the fakes received and
# the archive holds. Short by default (CI); CHAOS_DURATION=30m before a
# release. CHAOS_RATE, CHAOS_ACCOUNTS, CHAOS_KILL_EVERY, CHAOS_STORM_HOLD,
# CHAOS_DRAIN_TIMEOUT, CHAOS_DIR and CHAOS_KEEP tune it.
chaos: build ## kill replicas, storm the sinks, restart the broker under load, then check every event (CHAOS_DURATION=30m before a release)
	$(GO) build -o bin/chaos ./services/chaostest/cmd/chaos
	./bin/chaos --bin-dir bin

# gofmt on the module directories: `go fmt` does not take workspace patterns.
fmt: ## gofmt every module
	@dirs=$$($(LIST_MODULE_DIRS)); \
	echo "gofmt -l -w" $$dirs; \
	gofmt -l -w $$dirs

clean: ## remove bin/ (the dev broker's data in .data/ is kept: rm -rf .data to reset it)
	rm -rf bin
