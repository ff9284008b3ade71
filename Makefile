# ferry — run `make` for the list of targets.
SHELL := bash
GO ?= go
BIN ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20s

.DEFAULT_GOAL := help
DIST ?= dist
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64 windows/amd64

.PHONY: help deps bench-scale bench-containerd build release test test-short lint fuzz bench demo clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

deps: ## install the Debian packages demo and tests use (when missing and root)
	@bash testdata/scripts/deps.sh

build: ## build bin/ferry, statically linked (and bin/ferry-seed, the demo's image seeder)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ferry ./cmd/ferry
	$(GO) build -trimpath -o $(BIN)/ferry-seed ./cmd/ferry-seed

release: ## static binaries (CGO_ENABLED=0) for RELEASE_PLATFORMS into DIST (dist/) with SHA256SUMS
	@mkdir -p $(DIST) && rm -f $(DIST)/ferry_*_* $(DIST)/SHA256SUMS
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
	  out=$(DIST)/ferry_$(VERSION)_$${os}_$${arch}$$ext; echo "  $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/ferry; \
	done
	@cd $(DIST) && sha256sum ferry_*_* > SHA256SUMS && echo "  $(DIST)/SHA256SUMS"

test: deps ## run every test: unit (olareg), integration (docker-registry, dockerd), e2e
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-short: ## unit tests only (no external servers)
	$(GO) test -count=1 -short ./...

lint: ## gofmt, go vet, and staticcheck when installed
	@out=$$(gofmt -l . | grep -v '^testdata/' || true); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: skipped"; fi

fuzz: ## run each fuzz test for FUZZTIME
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash testdata/scripts/fuzz.sh

bench: deps ## save, upload, cold no-op re-upload (and serve) of a ~500 MB image beside crane, regctl, skopeo
	bash testdata/scripts/bench.sh
	$(GO) test -run XXX -bench 'Codec|WarmVsCold' -benchtime 1x ./bundle ./cache

bench-containerd: deps ## ferry upload --target containerd beside ferry export + ctr images import of the same ~500 MB image (needs root)
	bash testdata/scripts/bench-containerd.sh

bench-scale: deps ## ferry at mirror scale (SCALE_IMAGES generated images) beside crane and regctl; prints per-image costs
	bash testdata/scripts/bench-scale.sh

demo: deps build ## loopback registries, seed, full + incremental save, upload, verify
	bash testdata/scripts/demo.sh

clean: ## remove build output
	rm -rf $(BIN) .demo .bench dist
