# vxn: an OCI runtime that runs every container as its own Xen guest.
#
#   make            build out/vxn, out/guestinit and the guest initramfs
#   make test       every test: vet, unit tests (-race), bounded fuzzing,
#                   then the e2e suite on real Xen inside QEMU
#   make conformance  the OCI validation suite, vxn against runc, on real Xen
#   make unit       only the tests that need no Xen
#   make e2e        only the e2e suite (boots Xen 4.17 in QEMU)
#   make engines    podman, Docker and containerd on vxn, on real Xen in QEMU
#   make demo       run a busybox container on real Xen (in QEMU here)
#   make bench      vxn against runc and bare Xen, one table (BENCH_N runs)
#   make install    install vxn and the guest image under PREFIX

GO        ?= go
OUT       ?= out
PREFIX    ?= /usr/local
FUZZTIME  ?= 30s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# guestinit is PID 1 in the guest: static, with libxenvchan linked in.
GUEST_LDFLAGS := -linkmode external -extldflags "-static"
GUEST_TAGS    := netgo,osusergo

GOFILES := $(shell find . -name '*.go' -not -path './out/*') go.mod go.sum

.PHONY: all build guest test unit fuzz e2e engines demo bench install clean

all: build guest

build: $(OUT)/vxn

$(OUT)/vxn: $(GOFILES)
	$(GO) build -ldflags '$(LDFLAGS)' -o $@ .

$(OUT)/guestinit: $(GOFILES)
	CGO_ENABLED=1 $(GO) build -tags $(GUEST_TAGS) -ldflags '$(GUEST_LDFLAGS)' -o $@ ./guestinit

guest: $(OUT)/initramfs.img

$(OUT)/initramfs.img: $(OUT)/guestinit
	$(GO) run ./guestinit/mkinitramfs -init $(OUT)/guestinit -o $@

test: unit e2e engines

unit: $(OUT)/guestinit
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	VXN_TEST_GUESTINIT=$(abspath $(OUT)/guestinit) $(GO) test -race -count=1 ./...
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./runtime/agent

e2e: build guest
	$(GO) test -c -o $(OUT)/e2e.test ./tests/e2e
	$(GO) run ./tests/xenvm -results $(OUT)/e2e-results -- $(OUT)/e2e.test -test.v -test.timeout 40m \
		-vxn $(abspath $(OUT)/vxn) -initramfs $(abspath $(OUT)/initramfs.img)

# The engine suite (tests/engines): run one test with
# make engines ENGINES_FLAGS='-test.run TestPodmanExec'
ENGINES_FLAGS ?=
engines: build guest
	$(GO) test -c -o $(OUT)/engines.test ./tests/engines
	$(GO) run ./tests/xenvm -results $(OUT)/engines-results -- $(OUT)/engines.test -test.v -test.timeout 30m \
		-vxn $(abspath $(OUT)/vxn) -initramfs $(abspath $(OUT)/initramfs.img) $(ENGINES_FLAGS)

demo: build guest
	$(GO) run ./tests/xenvm -results $(OUT)/demo-results -- sh tests/demo.sh $(abspath $(OUT)/vxn)

# bench: tests/bench in dom0 (issue 6). The machine gets 6 GiB, 4 of them
# dom0's, so that the 1 GiB rootfs tree and its image fit in dom0's tmpfs.
# xsave=0: see libxl/e2e_test.go (TCG and XSAVE mix up vector registers).
# More flags (go run ./tests/bench -h): make bench BENCH_FLAGS='-rootfs-mib 10'
BENCH_N     ?= 20
BENCH_FLAGS ?=
bench: build guest $(OUT)/echoguest
	$(GO) build -o $(OUT)/bench ./tests/bench
	$(GO) run ./tests/xenvm -m 6144 -dom0-mem 4096M -xen-args xsave=0 -timeout 180m -results $(OUT)/bench-results -- \
		$(abspath $(OUT)/bench) -n $(BENCH_N) -vxn $(abspath $(OUT)/vxn) -initramfs $(abspath $(OUT)/initramfs.img) \
		-echoguest $(abspath $(OUT)/echoguest) $(BENCH_FLAGS)

# The echo guest (raw vchan figure of the bench, Xen e2e tests): static.
$(OUT)/echoguest: $(GOFILES)
	CGO_ENABLED=1 $(GO) build -ldflags '$(GUEST_LDFLAGS)' -o $@ ./libxl/vchan/testdata/echoguest

install: build guest
	install -D -m 0755 $(OUT)/vxn $(DESTDIR)$(PREFIX)/bin/vxn
	install -D -m 0644 $(OUT)/initramfs.img $(DESTDIR)$(PREFIX)/lib/vxn/initramfs.img

clean:
	rm -rf $(OUT)

# conformance: the runtime-tools validation suite (tests/conformance, a Go
# module of its own) against vxn and runc, in a Xen dom0 inside QEMU. The
# harness and the suite are built on the host (dom0 has no network).
# Extra harness flags: make conformance CONFORMANCE_FLAGS='-only ^kill'
# A DomU boot takes ~15s under QEMU's emulation and linux_cgroups_network
# alone makes 32 containers: hence the longer per-program deadline here.
CONFORMANCE_TIMEOUT ?= 600s
# A hung run must not outlive a CI job.
CONFORMANCE_VM_TIMEOUT ?= 80m
.PHONY: conformance
conformance: build guest
	cd tests/conformance && $(GO) build -o $(abspath $(OUT))/conformance ./cmd/conformance
	$(OUT)/conformance -build-only -suite $(abspath $(OUT))/conformance-suite
	$(GO) run ./tests/xenvm -timeout $(CONFORMANCE_VM_TIMEOUT) -results $(OUT)/conformance-results -- $(abspath $(OUT))/conformance \
		-suite $(abspath $(OUT))/conformance-suite -results $(abspath $(OUT))/conformance-results \
		-vxn $(abspath $(OUT)/vxn) -initramfs $(abspath $(OUT)/initramfs.img) -timeout $(CONFORMANCE_TIMEOUT) $(CONFORMANCE_FLAGS)
