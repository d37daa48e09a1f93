# mdctl — make targets. `make test` installs what the tests need on a fresh
# Debian machine (as root) and runs them; `make run` serves the example topology.
# Go by absolute path when it is not on PATH: sudo's secure_path drops /usr/local/go/bin.
GO        ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests and mdbench run go themselves (go build, go run): the same one, found the same way.
ifneq ($(filter /%,$(GO)),)
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)
endif
BIN       ?= bin/mdctl
PREFIX    ?= /usr/local
UNITDIR   ?= $(PREFIX)/lib/systemd/system
# Three passes of 5 s runs: medians that survive a noisy minute (bench/README.md).
BENCHFLAGS ?= -passes 3 -duration 5s
# Empty: mdctl's own default (MDCTL_DATA_DIR, else /var/lib/mdctl as root), so `make run`
# and the README's tour share one world.
DATA_DIR  ?=
# Debian packages, one a line. tools/cloudinit/setup installs cloud-init's readers' own.
TEST_DEBS  = \
	curl \
	debootstrap \
	dnsmasq-base \
	e2fsprogs \
	haproxy \
	iproute2 \
	iptables \
	isc-dhcp-client \
	mtools \
	postgresql \
	python3 \
	qemu-system-x86 \
	qemu-utils \
	systemd \
	tmux \
	util-linux \
	wrk \
	xorriso
BENCH_DEBS = \
	haproxy \
	python3-nova \
	wrk
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS    = -X main.buildVersion=$(VERSION)

# apt_install installs those of the Debian packages $(1) that are missing, so a warm
# machine pays nothing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: build test test-deps bench lint fuzz completions install run clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mdctl

test-deps:
	$(call apt_install,$(TEST_DEBS))
	tools/cloudinit/setup
	@# The VM tests' Debian image: built once per recipe (minutes), cached in /var/cache/mdctl.
	internal/testimage/build.sh >/dev/null
	$(GO) mod download

test: test-deps lint fuzz
	$(GO) test -count=1 -timeout 20m ./...

# Every fuzz target (func Fuzz… in a _test.go), found by grep so a new one
# runs without an edit here, for FUZZTIME each: a short CI pass (1-2 minutes
# in all, most of it building) on top of their seed corpora, which plain
# `go test` runs. Longer: make fuzz FUZZTIME=10m.
# A failing input is saved under the package's testdata/fuzz for the fix.
FUZZTIME ?= 1s
fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$(dirname $$f) $$t"; \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$(dirname $$f) 2>&1) || { echo "$$out"; exit 1; }; \
	  done; \
	done

bench: build
	$(call apt_install,$(BENCH_DEBS))
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
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|^ExecStart=/usr/local/bin/mdctl |ExecStart=$(PREFIX)/bin/mdctl |' dist/systemd/mdctl.service > $(DESTDIR)$(UNITDIR)/mdctl.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/mdctl.service
	install -m 0644 dist/systemd/mdctl-api.socket dist/systemd/mdctl-agent.socket $(DESTDIR)$(UNITDIR)/

# Seeds the example topology into the data dir and serves it (as root: namespaces, iptables).
run: build
	$(BIN) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) apply -f examples/topology.yaml
	$(BIN) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) serve

# The build's outputs; the data dir is the operator's (mdctl cleanup, then remove it).
clean:
	rm -rf bin
