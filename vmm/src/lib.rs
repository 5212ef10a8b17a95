//! `vmm`: a KVM micro-VMM that boots a PVH ELF kernel.
//!
//! `main.rs` parses the command line into a [`VmConfig`]; [`vm::run`] builds the VM
//! (`boot` loads the kernel, `cpuid` describes the vCPUs' topology and `mptable` lists
//! them for the guest, `devices` emulate the
//! console (`console` feeds it stdin, `console_out` writes its output to stdout), the exit
//! port, the RTC and the virtio-mmio disks and shares) and runs it.

pub mod boot;
pub mod config;
pub mod console;
pub mod console_out;
pub mod cpuid;
pub mod devices;
pub mod gdb;
pub mod mptable;
pub mod seccomp;
pub mod trace;
pub mod vm;

pub use config::VmConfig;
