# Slardar in Go. `make demo` runs the talk's environment; `make test` runs every test.
# Both install what they need (scripts/install-deps.sh) on a fresh Debian machine.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/slardar-go/slardar/pkg/version.Version=$(VERSION)
BINARIES := slardar-proxy mysql-proxy slardarctl sni-router store-sync

prefix  ?= /usr/local
bindir  ?= $(prefix)/bin
mandir  ?= $(prefix)/share/man
datadir ?= $(prefix)/share
unitdir ?= $(prefix)/lib/systemd/system
sysconfdir ?= /etc
OUT     ?= bin# where build puts the binaries (and install takes them from)

FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./pkg/admin:FuzzParseLine ./pkg/admin:FuzzReadReply ./pkg/admin:FuzzServer \
	./pkg/checkups:FuzzParseStatusLine ./pkg/checkups:FuzzReadRESP ./pkg/checkups:FuzzPutJSON \
	./pkg/script:FuzzReceive ./pkg/script:FuzzStage ./pkg/sni:FuzzReadHello ./pkg/reconcile:FuzzParseSnapshot \
	./pkg/mysql/wire:FuzzReadPayload ./pkg/mysql/wire:FuzzRelay ./pkg/mysql/wire:FuzzStateEntries ./pkg/mysql/wire:FuzzCompressed ./pkg/mysql/front:FuzzParseResponse \
	./pkg/mysql/sqlclass:FuzzClassify ./pkg/mysql/sqlclass:FuzzDigest ./pkg/mysql/rules:FuzzParse ./pkg/mysql/session:FuzzParseGTIDs

.PHONY: all build deps deps-all test conformance stress vet docs docs-check demo bench fuzz install clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(OUT)/ $(addprefix ./cmd/,$(BINARIES))

# MariaDB, etcd, sysbench from Debian; Consul built once from its Go module and cached.
deps-all:
	scripts/install-deps.sh

deps:
	scripts/install-deps.sh --no-consul

test: deps-all build vet docs-check
	$(GO) test -race -timeout 20m -count=1 ./...
	$(GO) run ./internal/cmd/conformance -v

# A client library's own tests and the server's own (mysql-test-run) directly and through
# mysql-proxy (internal/cmd/conformance).
conformance: deps build
	$(GO) run ./internal/cmd/conformance -v

# Tests that fail by chance: the whole suite, ROUNDS times, under load (see scripts/stress.sh).
ROUNDS ?= 10
stress: deps-all
	scripts/stress.sh -n $(ROUNDS)

# staticcheck at a pinned version, from the Go module proxy (cached after the first run).
STATICCHECK_VERSION ?= v0.8.2

vet:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }

docs:
	$(GO) run ./internal/cmd/gen-docs

# The committed man pages and completions must match the commands.
docs-check: docs
	@git diff --exit-code -- man completions || { echo 'man/ or completions/ is stale: run make docs and commit'; exit 1; }

# Built, then run (not go run, which exits 1 when Ctrl-C ends the demo).
demo: deps build
	$(GO) build -o bin/demo ./internal/cmd/demo
	bin/demo

bench: build
	scripts/install-deps.sh --no-consul --bench
	bench/run.sh
	bench/run.sh -scripts
	bench/run.sh -tls
	bench/run.sh -sync
	bench/run.sh -mysql
	bench/run.sh -mysql -consistency

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

install: build
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 \
		$(DESTDIR)$(datadir)/bash-completion/completions $(DESTDIR)$(datadir)/zsh/site-functions \
		$(DESTDIR)$(datadir)/fish/vendor_completions.d
	install -m 0755 $(addprefix $(OUT)/,$(BINARIES)) $(DESTDIR)$(bindir)/
	install -m 0644 man/*.1 $(DESTDIR)$(mandir)/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(mandir)/man5/
	install -m 0644 completions/bash/* $(DESTDIR)$(datadir)/bash-completion/completions/
	install -m 0644 completions/zsh/* $(DESTDIR)$(datadir)/zsh/site-functions/
	install -m 0644 completions/fish/* $(DESTDIR)$(datadir)/fish/vendor_completions.d/
	install -d $(DESTDIR)$(unitdir) $(DESTDIR)$(datadir)/slardar
	for u in deploy/systemd/*.service; do \
		sed -e 's|/usr/local/bin/|$(bindir)/|g' -e 's|/etc/slardar/|$(sysconfdir)/slardar/|g' $$u > $(DESTDIR)$(unitdir)/$$(basename $$u) && chmod 0644 $(DESTDIR)$(unitdir)/$$(basename $$u); \
	done
	@# The configs the units name, from examples/: installed once, never over an operator's own.
	install -d $(DESTDIR)$(sysconfdir)/slardar/lua
	for f in slardar.yaml mysql-proxy.yaml sni-router.yaml store-sync.yaml mysql-users.yaml lua/script.content3351.lua lua/script.preread3131.lua; do \
		mode=0644; [ $$f = mysql-users.yaml ] && mode=0600; \
		[ -e $(DESTDIR)$(sysconfdir)/slardar/$$f ] || install -m $$mode examples/$$f $(DESTDIR)$(sysconfdir)/slardar/$$f; \
	done
	install -m 0644 deploy/grafana/slardar.json deploy/prometheus/slardar-rules.yml $(DESTDIR)$(datadir)/slardar/

clean:
	rm -rf bin bench/out
