//! File operations on a 9p share whose effects the host checks afterwards.
//! `sharetest DIR`: prints DIR/hostfile, writes DIR/from-guest.txt and fsyncs it, makes
//! DIR/newdir, renames DIR/old.txt to DIR/newdir/moved.txt, removes DIR/doomed, lists
//! DIR, reads its statfs, leaves a file open for the exit to close, and prints
//! `sharetest: ok`.
#![no_std]
#![no_main]

use ulib::uapi::{O_CREAT, O_DIRECTORY, O_RDONLY, O_TRUNC, O_WRONLY};
use ulib::{Args, Errno, println, sys};

ulib::entry!(main);

struct Path([u8; 256]);

impl Path {
    fn new(dir: &str, name: &str) -> Self {
        let mut p = [0u8; 256];
        let n = dir.len();
        p[..n].copy_from_slice(dir.as_bytes());
        p[n] = b'/';
        p[n + 1..n + 1 + name.len()].copy_from_slice(name.as_bytes());
        Self(p)
    }
    fn c(&self) -> &core::ffi::CStr {
        core::ffi::CStr::from_bytes_until_nul(&self.0).expect("NUL-terminated")
    }
}

fn main(args: &Args) -> i32 {
    let dir = args.iter().nth(1).unwrap_or("/mnt/share");
    match run(dir) {
        Ok(()) => {
            println!("sharetest: ok");
            0
        }
        Err((what, e)) => {
            println!("sharetest: {what}: {e}");
            1
        }
    }
}

fn run(dir: &str) -> Result<(), (&'static str, Errno)> {
    let fd = sys::open(Path::new(dir, "hostfile").c(), O_RDONLY, 0).map_err(|e| ("open hostfile", e))? as i32;
    let mut buf = [0u8; 64];
    let n = sys::read(fd, &mut buf).map_err(|e| ("read hostfile", e))?;
    println!("sharetest: hostfile says {:?}", core::str::from_utf8(&buf[..n]).unwrap_or("?"));
    sys::close(fd).map_err(|e| ("close", e))?;

    let fd = sys::open(Path::new(dir, "from-guest.txt").c(), O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        .map_err(|e| ("create", e))? as i32;
    sys::write(fd, b"written in the guest\n").map_err(|e| ("write", e))?;
    sys::fsync(fd).map_err(|e| ("fsync", e))?;
    sys::close(fd).map_err(|e| ("close", e))?;

    sys::mkdir(Path::new(dir, "newdir").c(), 0o755).map_err(|e| ("mkdir", e))?;
    sys::rename(Path::new(dir, "old.txt").c(), Path::new(dir, "newdir/moved.txt").c()).map_err(|e| ("rename", e))?;
    sys::unlink(Path::new(dir, "doomed").c()).map_err(|e| ("unlink", e))?;

    let fd = sys::open(Path::new(dir, ".").c(), O_RDONLY | O_DIRECTORY, 0).map_err(|e| ("opendir", e))? as i32;
    let mut dents = [0u8; 2048];
    let n = sys::getdents64(fd, &mut dents).map_err(|e| ("getdents64", e))?;
    let mut at = 0;
    while at < n {
        let reclen = u16::from_le_bytes([dents[at + 16], dents[at + 17]]) as usize;
        let name = &dents[at + 19..at + reclen];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        println!("sharetest: entry {}", core::str::from_utf8(&name[..end]).unwrap_or("?"));
        at += reclen;
    }
    sys::close(fd).map_err(|e| ("close dir", e))?;

    let mut st = [0u64; 15];
    let dir_path = Path::new(dir, ".");
    // SAFETY: a NUL-terminated path and a 120-byte buffer for `struct statfs`.
    let r = unsafe { sys::syscall2(137, dir_path.c().as_ptr() as usize, st.as_mut_ptr() as usize) };
    sys::ret(r).map_err(|e| ("statfs", e))?;
    if st[1] == 0 || st[8] == 0 {
        return Err(("statfs: zero block size or name length", Errno::EIO));
    }
    println!("sharetest: statfs ok (type {:#x}, block size {}, name length {})", st[0], st[1], st[8]);

    // Left open on purpose: the exit closes it (the kernel's clunk must not wait).
    sys::open(Path::new(dir, "from-guest.txt").c(), O_RDONLY, 0).map_err(|e| ("reopen", e))?;
    Ok(())
}
