//! The three io_uring syscalls; the implementation is in `crate::io_uring`.

use super::Ctx;
use crate::errno::KResult;
use crate::io_uring;

pub fn setup(c: &mut Ctx) -> KResult<u64> {
    io_uring::setup(c.a[0] as u32, c.a[1])
}

pub fn enter(c: &mut Ctx) -> KResult<u64> {
    io_uring::enter(c.int(0), c.a[1] as u32, c.a[2] as u32, c.a[3] as u32, c.a[4], c.a[5])
}

pub fn register(c: &mut Ctx) -> KResult<u64> {
    io_uring::register(c.int(0), c.a[1] as u32, c.a[2], c.a[3] as u32)
}
