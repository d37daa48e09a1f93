# mdctl — make targets. `make test` installs what the tests need on a fresh
# Debian machine (as root) and runs them; `make run` serves on the embedded store.
GO        ?= go
BIN       ?= bin/mdctl
PREFIX    ?= /usr/local
# Three passes of 5 s runs: medians that survive a noisy minute (bench/README.md).
BENCHFLAGS ?= -passes 3 -duration 5s
DATA_DIR  ?= $(abspath .mdctl-data)
TEST_DEBS  = iptables iproute2 xorriso mtools util-linux dnsmasq-base isc-dhcp-client curl tmux python3 wrk haproxy
BENCH_DEBS = wrk haproxy
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    = -X main.version=$(VERSION)

.PHONY: build test test-deps bench lint completions install run clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mdctl

# Installs Debian packages only when one is missing, so a warm machine pays nothing.
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	tools/cloudinit/setup
	$(GO) mod download

test: test-deps lint
	$(GO) test -count=1 -timeout 20m ./...

bench: build
	@missing=""; for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	dpkg -s python3-nova >/dev/null 2>&1 || nova=1; \
	if [ -n "$$missing$$nova" ]; then export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; \
	  [ -z "$$missing" ] || apt-get install -y -qq $$missing >/dev/null; \
	  [ -z "$$nova" ] || apt-get install -y -qq --no-install-recommends python3-nova >/dev/null; fi
	$(MAKE) --no-print-directory test-deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./bench/cmd/mdbench -mdctl $(abspath $(BIN)) $(BENCHFLAGS)

STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

completions:
	$(GO) generate ./completions

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/mdctl
	install -D -m 0644 completions/mdctl.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mdctl
	install -D -m 0644 completions/mdctl.zsh $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_mdctl
	install -D -m 0644 completions/mdctl.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/mdctl.fish

# Seeds the example topology into a local data dir and serves it.
run: build
	$(BIN) --data-dir $(DATA_DIR) apply -f examples/topology.yaml
	$(BIN) --data-dir $(DATA_DIR) serve

clean:
	rm -rf bin $(DATA_DIR)
