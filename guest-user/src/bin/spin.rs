//! Burns CPU without syscalls, for preemption tests: forever, or with `argv[1]` = N for
//! N million iterations, then exits 0.
#![no_std]
#![no_main]

use core::hint::black_box;
use ulib::Args;

ulib::entry!(main);

fn main(args: &Args) -> i32 {
    match args.str(1).and_then(|s| s.parse::<u64>().ok()) {
        Some(n) => {
            for i in 0..n.saturating_mul(1_000_000) {
                black_box(i);
            }
            0
        }
        None => loop {
            black_box(0);
        },
    }
}
