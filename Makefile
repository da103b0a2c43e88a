# uring-socket-proxyd — `make` lists the targets.
GO      ?= go
BIN     := bin/uring-socket-proxyd
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=
LISTEN  ?= 127.0.0.1:8000
TARGET  ?= 127.0.0.1:8080
ARGS    ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Packages whose concurrency the race detector must see.
ENGINE_PKGS := ./forward/... ./fallback/... ./ring/...

.PHONY: help build test vet unit race e2e run install deps bench bench-quick clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/uring-socket-proxyd
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/uring-socket-proxyd

test: deps vet unit race ## everything CI runs: vet, unit and end-to-end tests, race detector, benchmarks once
	@echo "make test: all passed"

deps: ## install the Debian packages the tests use (systemd, curl, socat) if missing
	@./.ci/deps

vet: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: build ## unit and end-to-end tests (the binary is started by socket activation), benchmarks run once
	URING_PROXY_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 ./...
	URING_PROXY_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -run '^$$' -bench . -benchtime=1x ./...

race: ## the race detector over the engine packages
	$(GO) test -count=1 -race $(ENGINE_PKGS)

e2e: ## only the end-to-end tests of the binary
	$(GO) test -count=1 ./cmd/...

run: deps build ## run the proxy on LISTEN (default 127.0.0.1:8000) in front of TARGET (default 127.0.0.1:8080)
	systemd-socket-activate -l $(LISTEN) $(BIN) $(ARGS) $(TARGET)

install: build ## install the binary to $(DESTDIR)$(BINDIR) and the man page to $(DESTDIR)$(MANDIR)/man8
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/uring-socket-proxyd
	install -D -m 0644 doc/uring-socket-proxyd.8 $(DESTDIR)$(MANDIR)/man8/uring-socket-proxyd.8

bench: build ## side-by-side benchmark with systemd-socket-proxyd and a direct connection (< 10 min)
	$(GO) run ./bench/cmd/proxybench -bin $(BIN) -json bench/results/latest.json -svg bench/results/latest.svg -md bench/results/latest.md

bench-quick: build ## a shorter benchmark (< 2 min)
	$(GO) run ./bench/cmd/proxybench -quick -bin $(BIN) -json bench/results/quick.json -svg bench/results/quick.svg

clean: ## remove build output
	rm -rf bin
