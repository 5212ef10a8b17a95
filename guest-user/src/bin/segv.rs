//! Writes to address 0x10, which is never mapped: the kernel must kill it with SIGSEGV
//! (a shell reports status 139 = 128 + 11).
#![no_std]
#![no_main]

use ulib::{Args, println};

ulib::entry!(main);

fn main(_: &Args) -> i32 {
    println!("segv: writing to address 0x10");
    // SAFETY: not safe at all: this store must fault, and the process dies with it.
    unsafe { core::ptr::write_volatile(0x10 as *mut u8, 1) };
    println!("segv: still alive after the write");
    1
}
