//! The default init of the demo image: says who it is and what it was given.
#![no_std]
#![no_main]

use ulib::{Args, println, sys};

ulib::entry!(main);

fn main(args: &Args) -> i32 {
    match sys::getpid() {
        Ok(pid) => println!("init: running as pid {pid}"),
        Err(e) => println!("init: running, but getpid failed: {e}"),
    }
    for (i, arg) in args.iter().enumerate() {
        println!("init: argv[{i}] = {arg}");
    }
    0
}
