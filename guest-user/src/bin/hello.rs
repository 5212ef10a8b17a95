//! Prints a greeting and its argv; exits with `argv[1]` if that is a number, else 0.
#![no_std]
#![no_main]

use ulib::{Args, println};

ulib::entry!(main);

fn main(args: &Args) -> i32 {
    println!("hello from user space");
    for (i, arg) in args.iter().enumerate() {
        println!("argv[{i}] = {arg}");
    }
    args.str(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}
