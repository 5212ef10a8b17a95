# The two commands: `make run` (build, boot the default image) and `make test`.
# Everything is built by cargo; this file only orders the steps and installs what is missing.

CARGO        ?= cargo
KERNEL_TARGET = x86_64-unknown-none
KERNEL_OUT    = target/$(KERNEL_TARGET)/release/guest-kernel
VMM           = target/release/vmm
GUEST         = images/guest.elf
ROOTFS        = images/rootfs.cpio
BUSYBOX       = images/busybox.cpio
RUN_CMDLINE  ?= loglevel=info

# Guest user programs are ordinary static Linux executables: Rust no_std programs (built
# for the host's Linux target, without PIE) and C programs linked with musl.
USER_TARGET   = x86_64-unknown-linux-gnu
USER_OUT      = target/$(USER_TARGET)/release
USER_BINS     = blktest demo ext2test fuzz hello init segv sharetest spin systest timertest ttytest uringrs
C_OUT         = target/guest-c
C_PROGS       = hello-musl static-pie
URING_PROGS   = uring-test uring-bench uring-leak nettest
ROOTFS_DIR    = target/rootfs


.PHONY: all kernel vmm user uring rootfs busybox run run-qemu run-gdb gdb trace run-shell run-shell-qemu test test-smp bench fuzz fuzz-vmm bench-peer deps rust-target clean

all: vmm $(GUEST) $(ROOTFS) $(BUSYBOX)

# The kernel needs the bare-metal target: no SSE and no red zone in ring 0.
rust-target:
	@rustup target list --installed | grep -qx $(KERNEL_TARGET) || rustup target add $(KERNEL_TARGET)

kernel: rust-target
	$(CARGO) guest

$(GUEST): kernel
	@mkdir -p images
	cp $(KERNEL_OUT) $(GUEST)

vmm:
	$(CARGO) build --release -p vmm

user:
	RUSTFLAGS="-C relocation-model=static -C target-feature=+crt-static" \
		$(CARGO) build --release -p guest-user --target $(USER_TARGET)

$(C_OUT)/%: guest-user/c/%.c
	@scripts/install-deps.sh
	@mkdir -p $(C_OUT)
	musl-gcc -static -O2 -Wall -o $@ $< -lpthread

# glibc, as a static-PIE executable (ET_DYN without an interpreter).
$(C_OUT)/static-pie: guest-user/c/static-pie.c
	@mkdir -p $(C_OUT)
	gcc -static-pie -O2 -Wall -o $@ $<

# C programs with liburing (musl, static): the io_uring conformance suite and benchmark.
uring:
	@scripts/install-deps.sh
	$(MAKE) -C guest-user/uring OUT=$(CURDIR)/$(C_OUT)

# The initramfs: /init, and every test program in /bin.
$(ROOTFS): user uring $(addprefix $(C_OUT)/,$(C_PROGS))
	@rm -rf $(ROOTFS_DIR) && mkdir -p $(ROOTFS_DIR)/bin images
	cp $(addprefix $(USER_OUT)/,$(USER_BINS)) $(addprefix $(C_OUT)/,$(C_PROGS) $(URING_PROGS)) $(ROOTFS_DIR)/bin/
	cp $(USER_OUT)/demo $(ROOTFS_DIR)/init
	python3 scripts/mkcpio.py $(ROOTFS) $(ROOTFS_DIR)

rootfs: $(ROOTFS)

# The shell image: Debian's busybox-static with its applet links; /init is busybox.
$(BUSYBOX): scripts/mkbusybox.sh
	@scripts/install-deps.sh
	@mkdir -p images
	scripts/mkbusybox.sh $(BUSYBOX) target/busybox-root

busybox: $(BUSYBOX)

run: all
	$(VMM) run $(GUEST) --initrd $(ROOTFS) --cmdline "$(RUN_CMDLINE)"

run-qemu: all
	@scripts/install-deps.sh
	scripts/qemu.sh $(GUEST) "$(RUN_CMDLINE)" -initrd $(ROOTFS)

# Debugging the kernel: `make run-gdb` boots it under vmm stopped before its first
# instruction, waiting for GDB on GDB_PORT; `make gdb` (another terminal) attaches GDB with
# the kernel's symbols.
GDB_PORT ?= 1234
run-gdb: all
	$(VMM) run $(GUEST) --initrd $(ROOTFS) --cmdline "$(RUN_CMDLINE)" --gdb $(GDB_PORT)

gdb:
	@scripts/install-deps.sh
	gdb $(GUEST) -ex "target remote 127.0.0.1:$(GDB_PORT)"

# A QD32 read workload traced under vmm: a Perfetto timeline in TRACE_OUT (default
# target/trace-qd32.json; docs/DESIGN.md section 3 reads one).
trace: all
	scripts/trace-qd32.sh

# An interactive shell on the console (C-a x quits).
SHELL_CMDLINE ?= init=/bin/sh
run-shell: all
	$(VMM) run $(GUEST) --initrd $(BUSYBOX) --cmdline "$(SHELL_CMDLINE)"

run-shell-qemu: all
	@scripts/install-deps.sh
	QEMU_SERIAL=mon:stdio scripts/qemu.sh $(GUEST) "$(SHELL_CMDLINE)" -initrd $(BUSYBOX)

deps:
	@scripts/install-deps.sh

# Unit tests of the VMM, then host tests that boot the real guest under vmm (KVM) and QEMU
# (TCG), then each VMM fuzz target: its seeds replayed and 10 s of fuzzing.
test: deps all
	scripts/run-tests.sh
	FUZZ_VMM_SECONDS=10 scripts/fuzz-vmm.sh

# The guest suites (systest, uring-test, fuzz, blktest, sharetest, ext2) with 1, 2 and 4
# CPUs under vmm and QEMU TCG (make test: 2 under vmm, 4 under QEMU): longer than CI's budget.
test-smp: deps all
	for n in 1 2 4; do TEST_VMM_VCPUS=$$n TEST_QEMU_SMP=$$n scripts/run-tests.sh --test userspace --test io_uring --test virtio --test ext2 || exit 1; done

# The guest kernel fuzzed from user space under QEMU and vmm (see scripts/fuzz.sh for
# FUZZ_SEED, FUZZ_OPS, FUZZ_VMM_OPS, FUZZ_MS).
fuzz: deps all
	scripts/fuzz.sh

# The VMM's device emulation under libFuzzer, FUZZ_VMM_SECONDS (default 60) per target
# (see scripts/fuzz-vmm.sh and fuzz/). Builds only the fuzz crate: no guest, no images.
fuzz-vmm:
	scripts/fuzz-vmm.sh

bench: deps all
	$(CARGO) run --release -q -p tests --bin bench

# Linux 6.1 (Debian's kernel, downloaded into target/peer) beside our guest under one QEMU
# command with -icount shift=0: instructions per operation (see scripts/bench-peer.sh).
bench-peer: deps all
	scripts/bench-peer.sh

clean:
	$(CARGO) clean
	rm -f $(GUEST) $(ROOTFS) $(BUSYBOX)
