# The two commands: `make run` (build, boot the default image) and `make test`.
# Everything is built by cargo; this file only orders the steps and installs what is missing.

CARGO        ?= cargo
KERNEL_TARGET = x86_64-unknown-none
KERNEL_OUT    = target/$(KERNEL_TARGET)/release/guest-kernel
VMM           = target/release/vmm
GUEST         = images/guest.elf
RUN_CMDLINE  ?= loglevel=info test=timer

.PHONY: all kernel vmm run run-qemu test bench deps rust-target clean FORCE

all: vmm $(GUEST)

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

run: all
	$(VMM) run $(GUEST) --cmdline "$(RUN_CMDLINE)"

run-qemu: $(GUEST)
	@scripts/install-deps.sh
	scripts/qemu.sh $(GUEST) "$(RUN_CMDLINE)"

deps:
	@scripts/install-deps.sh

# Unit tests of the VMM, then host tests that boot the real guest under vmm (KVM) and QEMU (TCG).
test: deps all
	scripts/run-tests.sh

bench: deps all
	$(CARGO) run --release -q -p tests --bin boot-bench

clean:
	$(CARGO) clean
	rm -f $(GUEST)
