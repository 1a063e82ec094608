# rivermon — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools/bin
PKGS := ./...
# VERSION is what `rivermon version` prints; empty outside a git checkout,
# and then rivermon says what the Go build info knows, or "dev".
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)

# make install: PREFIX and DESTDIR as usual; BIN is where build puts the programs.
PREFIX ?= /usr/local
DESTDIR ?=
BIN ?= bin

.PHONY: all deps build install test lint check run bench bench-peer bench-cmp fuzz clean

all: build

## deps: install what is missing (Debian packages, influxd 1.8.10, staticcheck)
deps:
	@bash scripts/deps.sh

## build: build rivermon and stationsim into bin/
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/rivermon ./cmd/rivermon
	$(GO) build -o $(BIN)/stationsim ./cmd/stationsim

## install: the built programs into PREFIX/bin, configs into /etc/rivermon (if absent), the systemd unit and its user (after make build; DESTDIR for a staging root)
install:
	@PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" BIN="$(abspath $(BIN))" bash scripts/install.sh

## lint: gofmt, go vet, staticcheck
lint: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)

## test: install what is missing, lint, run every test with the race detector, fuzz each decoder briefly
test: lint
	@bash scripts/fuzz.sh
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

## fuzz: every Fuzz target for FUZZTIME (default 10000x: inputs, not seconds) each
fuzz:
	@bash scripts/fuzz.sh

## check: validate the shipped configuration
check:
	$(GO) run ./cmd/rivermon check -config configs/rivermon.yaml

## run: start Mosquitto, InfluxDB, Alertmanager, rivermon and the 23-station simulator locally
run: deps build
	@bash scripts/run.sh

## bench: micro-benchmarks, the streaming state of 10,000 stations over 8 days with times on the minute, jittered by seconds and by milliseconds (about 13 minutes), then end to end through real Mosquitto, rivermon and InfluxDB (3 runs each)
bench: deps
	$(GO) test -run '^$$' -bench . -skip SoakQCMemory -benchmem ./internal/reading ./internal/quality ./ingest ./ingest/spool ./alerts
	@# One process a case: each reports its own peak resident memory.
	for times in minute seconds millis; do RIVERMON_SOAK_TIMES=$$times $(GO) test -run '^$$' -bench SoakQCMemory -benchtime 1x -timeout 30m ./ingest || exit 1; done
	$(GO) test -run '^$$' -bench 'EndToEnd|Backlog|OutputCatchUp|AlertLatency|Ceilings' -benchtime 1x -count 3 ./cmd/rivermon/app
	@echo "rivermon beside Telegraf: make bench-peer"

## bench-peer: rivermon, Telegraf 1.37 and the bound side by side (builds Telegraf into .tools/bin once: about 12 minutes)
bench-peer: deps
	@go version -m $(TOOLS)/telegraf 2>/dev/null | grep -q 'github.com/influxdata/telegraf[[:space:]]*v1.37.2' || \
		{ echo "building telegraf 1.37.2 into .tools/bin (long)"; GOBIN=$(TOOLS) GOFLAGS=-mod=mod $(GO) install github.com/influxdata/telegraf/cmd/telegraf@v1.37.2; }
	$(GO) test -run '^$$' -bench PeerTelegraf -benchtime 1x -count 3 ./cmd/rivermon/app

## bench-cmp: rivermon's CPU per 1,000 samples, BASE=rev (default: the last release tag) against HEAD=rev (default: the working tree), in one run
BASE ?= $(shell git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null)
bench-cmp: deps
	@[ -n "$(BASE)" ] || { echo "make bench-cmp: no release tag (v*) to compare with: give a revision, e.g. make bench-cmp BASE=main" >&2; exit 1; }
	@bash scripts/benchcmp.sh "$(BASE)" $(if $(HEAD),"$(HEAD)")

clean:
	rm -rf bin var
