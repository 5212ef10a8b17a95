#![doc = include_str!("../README.md")]
#![no_std]

pub mod errno;
pub mod io;
pub mod mem;
pub mod nr;
pub mod rt;
pub mod syscall;
pub mod test;
pub mod thread;
pub mod uapi;
pub mod uring;

pub use errno::Errno;
pub use rt::Args;

/// The syscall wrappers under a short name: `sys::open(...)`.
pub use syscall as sys;
