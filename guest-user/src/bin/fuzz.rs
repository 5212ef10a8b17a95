//! A syzkaller-style fuzzer for the kernel's system calls and io_uring, run from user
//! space in disposable children.
//!
//! `fuzz [--seed S] [--ops N] [--per-child C] [--ms T] [--first K] [--trace] [--dir D]`
//! (the old form `fuzz ROUNDS CALLS SEED` still works). `--dir D` puts the two files
//! the children open in D (default /tmp): an ext2 root or a 9p share puts their page
//! caches under fire; the programs a seed makes do not depend on it. `--first K` starts at child K (replaying
//! one child of a run); `--trace` prints each child and each operation before it runs
//! (to the console, so the last line before a hang names the operation). Each child runs C operations generated from its own seed, derived
//! from S and its number, so a seed replays the same programs. An operation is drawn
//! from a table of weighted kinds that build on what earlier ones made: files, pipes,
//! eventfds, memfds, AF_UNIX socket pairs, TCP connections and UDP sockets over
//! loopback in a descriptor pool; io_uring rings with random setup flags, mapped and fed SQEs of every opcode with fields from the pool, valid buffers and
//! hostile values; io_uring_register and io_uring_enter with random arguments; the
//! rings' shared indices corrupted, by the child and by a second thread racing it;
//! ring memory unmapped mid-flight; fork with rings alive; and raw system calls with
//! hostile arguments. The parent (init) gives each child T ms, then kills it; a child
//! that does not die after SIGKILL is a hang, reported with its seed (exit 2). At the
//! end the parent checks that files and io_uring still work and prints `fuzz: kernel ok`.
//! A kernel panic or a VMM error ends the VM; the seed printed first replays it.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use ulib::uapi::*;
use ulib::uring::{self, Params, Ring};
use ulib::{Args, nr, println, sys};

ulib::entry!(main);

/// Syscalls a child must not make: signals could reach the parent (init), fork and
/// clone could multiply children faster than the parent reaps them (the fuzzer forks
/// on purpose, with limits), and setsid/setpgid would take a child out of reach.
const DENIED: [usize; 14] = [56, 57, 58, 62, 200, 234, 435, 109, 112, 129, 297, 424, 434, 169];

/// Descriptors and rings a child keeps at most.
const MAX_FDS: usize = 32;
const MAX_RINGS: usize = 4;
/// The child's valid buffer (what SQE addresses and register arguments point into).
const BUF_LEN: usize = 64 * 1024;

/// xorshift64*, seeded through splitmix64 so that nearby seeds give unrelated streams.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(splitmix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// True with probability `n`/256.
    fn chance(&mut self, n: u64) -> bool {
        self.next() & 255 < n
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A ring the child set up and mapped: its fd, the SQ/CQ mapping, the SQEs, the offsets.
#[derive(Clone, Copy)]
struct RingMap {
    fd: i32,
    ring: usize,
    ring_len: usize,
    sqes: usize,
    sqe_size: usize,
    p: Params,
}

impl RingMap {
    fn word(&self, offset: u32) -> usize {
        self.ring + offset as usize
    }
}

struct World {
    rng: Rng,
    /// Print each operation before it runs.
    trace: bool,
    fds: [i32; MAX_FDS],
    nfds: usize,
    rings: [Option<RingMap>; MAX_RINGS],
    buf: usize,
    /// A thread corrupting ring words: (its handle, the stop flag it polls).
    racer: Option<ulib::thread::JoinHandle>,
    forks: u32,
}

/// Values that tend to find bugs, or `buf` pointers, or a descriptor from the pool.
fn hostile(w: &mut World) -> usize {
    let buf = w.buf;
    match w.rng.below(18) {
        0 => 0,
        1 => 1,
        2 => usize::MAX,
        3 => w.rng.below(8) as usize,
        4 => 4096,
        5 => 0x7fff_ffff,
        6 => 0xffff_8000_0000_0000, // the kernel's direct map
        7 => 0xffff_ffff_8010_0000, // kernel text
        8 => 0x8000_0000_0000_0000, // non-canonical
        9 => 0x10,                  // unmapped, low
        10 | 11 => buf + w.rng.below(BUF_LEN as u64 - 256) as usize,
        12 => buf + BUF_LEN - 8, // crossing the end of the buffer
        13 => (-100i64) as usize, // AT_FDCWD
        14 | 15 => pick_fd(w) as usize,
        16 => 1 << 40,
        _ => w.rng.next() as usize,
    }
}

fn pick_fd(w: &mut World) -> i32 {
    if w.nfds == 0 || w.rng.chance(16) {
        return w.rng.below(40) as i32 - 2;
    }
    w.fds[w.rng.below(w.nfds as u64) as usize]
}

fn add_fd(w: &mut World, fd: i32) {
    if w.nfds < MAX_FDS {
        w.fds[w.nfds] = fd;
        w.nfds += 1;
    } else {
        let _ = sys::close(fd);
    }
}

/// Writes `v` at `addr`, an address inside one of the child's own mappings (a ring, its
/// SQEs, the buffer); one that went away faults and kills the child, which is allowed.
fn poke<T>(addr: usize, v: T) {
    // SAFETY: as the doc says: the child's own memory, or a fault that ends it.
    unsafe { write_volatile(addr as *mut T, v) }
}

/// Reads the u32 at `addr` (as `poke`).
fn peek(addr: usize) -> u32 {
    // SAFETY: as `poke`.
    unsafe { read_volatile(addr as *const u32) }
}

fn call(nr: usize, a: [usize; 6]) -> isize {
    // SAFETY: deliberately hostile; the child is disposable, and the pointers it means
    // to be valid point into its own buffer.
    unsafe { sys::syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]) }
}

/// Fills the buffer with random bytes, and sometimes with plausible iovecs (pointing
/// back into the buffer) or descriptors from the pool at its start.
fn scramble_buf(w: &mut World) {
    let words = BUF_LEN / 8;
    let n = 1 + w.rng.below(64) as usize;
    for _ in 0..n {
        let i = w.rng.below(words as u64) as usize;
        let v = w.rng.next();
        // SAFETY: inside the child's own buffer.
        unsafe { write_volatile((w.buf as *mut u64).add(i), v) };
    }
    match w.rng.below(4) {
        0 => {
            for i in 0..8 {
                let base = w.buf as u64 + 4096 + w.rng.below(BUF_LEN as u64 / 2);
                let len = w.rng.below(8192);
                // SAFETY: the first 128 bytes of the buffer.
                unsafe {
                    write_volatile((w.buf as *mut u64).add(2 * i), base);
                    write_volatile((w.buf as *mut u64).add(2 * i + 1), len);
                }
            }
        }
        1 => {
            for i in 0..16 {
                let fd = pick_fd(w);
                // SAFETY: the first 64 bytes of the buffer.
                unsafe { write_volatile((w.buf as *mut i32).add(i), fd) };
            }
        }
        _ => {}
    }
}

fn op_raw_syscall(w: &mut World) {
    let nr = w.rng.below(470) as usize;
    if DENIED.contains(&nr) {
        return;
    }
    let a: [usize; 6] = core::array::from_fn(|_| hostile(w));
    if w.trace {
        ulib::eprintln!("fuzz:   syscall {nr} ({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x})", a[0], a[1], a[2], a[3], a[4], a[5]);
    }
    let _ = call(nr, a);
}

/// The files the children open (`--dir`), NUL-terminated: set once by `main` before any
/// child exists, read only after.
struct Files(core::cell::UnsafeCell<[[u8; 128]; 2]>);

// SAFETY: written only by `main` before any child or thread starts; read only after.
unsafe impl Sync for Files {}

static FILES: Files = Files(core::cell::UnsafeCell::new([[0; 128]; 2]));

fn file_name(k: usize) -> &'static [u8] {
    // SAFETY: no one writes `FILES` any more (see `Files`).
    unsafe { &(*FILES.0.get())[k] }
}

fn op_make_fd(w: &mut World) {
    let r = match w.rng.below(9) {
        0 | 1 => {
            let name: &[u8] = match w.rng.below(3) {
                0 => file_name(0),
                1 => file_name(1),
                _ => b"/dev/null\0",
            };
            let flags = [O_RDWR | O_CREAT, O_RDONLY, O_WRONLY | O_CREAT | 0o2000, O_RDWR | 0o4000][w.rng.below(4) as usize];
            call(nr::OPENAT, [(-100i64) as usize, name.as_ptr() as usize, flags as usize, 0o644, 0, 0])
        }
        2 => {
            let mut p = [0i32; 2];
            let flags = [0, 0o4000, 0o2000000][w.rng.below(3) as usize];
            if call(nr::PIPE2, [p.as_mut_ptr() as usize, flags, 0, 0, 0, 0]) == 0 {
                add_fd(w, p[0]);
                p[1] as isize
            } else {
                -1
            }
        }
        3 => call(nr::EVENTFD2, [w.rng.below(4) as usize, [0, 0o4000, 1][w.rng.below(3) as usize], 0, 0, 0, 0]),
        4 => call(nr::MEMFD_CREATE, [c"fz".as_ptr() as usize, w.rng.below(8) as usize, 0, 0, 0, 0]),
        5 => call(nr::DUP, [pick_fd(w) as usize, 0, 0, 0, 0, 0]),
        7 => inet_pair(w),
        8 => {
            // A UDP socket on 127.0.0.1 or ::1, maybe bound.
            let v6 = w.rng.chance(2);
            let fd = call(nr::SOCKET, [if v6 { 10 } else { 2 }, 2 | [0, 0o4000][w.rng.below(2) as usize], 0, 0, 0, 0]);
            if fd >= 0 && w.rng.chance(2) {
                let a = loopback(v6);
                call(nr::BIND, [fd as usize, a.as_ptr() as usize, if v6 { 28 } else { 16 }, 0, 0, 0]);
            }
            fd
        }
        _ => {
            // An AF_UNIX pair: stream, datagram or seqpacket, maybe nonblocking.
            let mut p = [0i32; 2];
            let kind = [1usize, 2, 5][w.rng.below(3) as usize] | [0, 0o4000][w.rng.below(2) as usize];
            if call(nr::SOCKETPAIR, [1, kind, 0, p.as_mut_ptr() as usize, 0, 0]) == 0 {
                add_fd(w, p[0]);
                p[1] as isize
            } else {
                -1
            }
        }
    };
    if r >= 0 {
        add_fd(w, r as i32);
    }
}

/// sockaddr_in 127.0.0.1:0 or sockaddr_in6 [::1]:0.
fn loopback(v6: bool) -> [u8; 28] {
    let mut a = [0u8; 28];
    if v6 {
        a[0] = 10;
        a[23] = 1;
    } else {
        a[0] = 2;
        a[4..8].copy_from_slice(&[127, 0, 0, 1]);
    }
    a
}

/// A TCP connection over loopback: its listener and both ends join the pool (the client
/// end is returned); some steps may fail, which is fine.
fn inet_pair(w: &mut World) -> isize {
    let v6 = w.rng.chance(2);
    let (family, len) = if v6 { (10, 28) } else { (2, 16) };
    let l = call(nr::SOCKET, [family, 1, 0, 0, 0, 0]);
    if l < 0 {
        return -1;
    }
    let mut a = loopback(v6);
    let mut alen: u32 = len as u32;
    call(nr::BIND, [l as usize, a.as_ptr() as usize, len, 0, 0, 0]);
    call(nr::LISTEN, [l as usize, w.rng.below(8) as usize, 0, 0, 0, 0]);
    call(nr::GETSOCKNAME, [l as usize, a.as_mut_ptr() as usize, &raw mut alen as usize, 0, 0, 0]);
    let c = call(nr::SOCKET, [family, 1 | 0o4000, 0, 0, 0, 0]);
    if c >= 0 {
        call(nr::CONNECT, [c as usize, a.as_ptr() as usize, len, 0, 0, 0]);
        let s = call(nr::ACCEPT4, [l as usize, 0, 0, 0o4000, 0, 0]);
        if s >= 0 {
            add_fd(w, s as i32);
        }
    }
    add_fd(w, l as i32);
    c
}

/// io_uring_setup with random entries and flags, then the mappings.
fn op_setup_ring(w: &mut World) {
    let Some(slot) = (0..MAX_RINGS).find(|&i| w.rings[i].is_none()) else {
        return op_close_ring(w);
    };
    let flags = if w.rng.chance(32) { w.rng.next() as u32 } else { (w.rng.next() as u32) & ((1 << 20) - 1) & !0x4000 };
    let mut p = Params { flags, ..Params::default() };
    if w.rng.chance(160) {
        p.flags &= 0x3f00 | 8 | 16; // mostly the common ones
    }
    p.sq_thread_idle = w.rng.below(50) as u32;
    p.cq_entries = w.rng.below(1024) as u32;
    p.wq_fd = pick_fd(w) as u32;
    let entries = if w.rng.chance(16) { hostile(w) } else { 1 << w.rng.below(8) };
    let fd = call(nr::IO_URING_SETUP, [entries, &raw mut p as usize, 0, 0, 0, 0]);
    if fd < 0 {
        return;
    }
    let fd = fd as i32;
    let sqe_size = if p.flags & 1024 != 0 { 128 } else { 64 };
    let cqe_size = if p.flags & 2048 != 0 { 32 } else { 16 };
    let sq_len = p.sq_off[6] as usize + p.sq_entries as usize * 4;
    let cq_len = p.cq_off[5] as usize + p.cq_entries as usize * cqe_size;
    let ring_len = sq_len.max(cq_len);
    let sqes_len = p.sq_entries as usize * sqe_size;
    // SAFETY: new shared mappings of the ring; not MAP_FIXED.
    let ring = unsafe { sys::mmap(0, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) };
    // SAFETY: as above.
    let sqes = unsafe { sys::mmap(0, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x1000_0000) };
    match (ring, sqes) {
        (Ok(ring), Ok(sqes)) => w.rings[slot] = Some(RingMap { fd, ring, ring_len, sqes, sqe_size, p }),
        _ => add_fd(w, fd), // NO_MMAP and friends: the fd alone still makes calls
    }
}

fn pick_ring(w: &mut World) -> Option<RingMap> {
    let live = (0..MAX_RINGS).filter(|&i| w.rings[i].is_some()).count();
    if live == 0 {
        return None;
    }
    let n = w.rng.below(live as u64) as usize;
    (0..MAX_RINGS).filter_map(|i| w.rings[i]).nth(n)
}

/// Writes 1..8 random SQEs at the SQ tail, publishes them and enters.
fn op_submit(w: &mut World) {
    let Some(r) = pick_ring(w) else { return op_setup_ring(w) };
    let entries = r.p.sq_entries.max(1);
    let no_array = r.p.flags & 0x10000 != 0;
    // The words and slots lie inside the ring's own mappings, at the offsets the kernel
    // gave; the kernel treats them as hostile.
    let tail = peek(r.word(r.p.sq_off[1]));
    let n = 1 + w.rng.below(8) as u32;
    for k in 0..n {
        let t = tail.wrapping_add(k);
        let slot = (t & (entries - 1)) as usize;
        let sqe = r.sqes + slot * r.sqe_size;
        for i in 0..r.sqe_size / 8 {
            let v = if w.rng.chance(40) { w.rng.next() } else { 0 };
            poke(sqe + 8 * i, v);
        }
        let opcode = if w.rng.chance(8) { w.rng.next() as u8 } else { w.rng.below(64) as u8 };
        let flags = if w.rng.chance(64) { w.rng.next() as u8 } else { 0 };
        let fd = pick_fd(w);
        let (off, addr) = (if w.rng.chance(128) { w.rng.below(1 << 20) } else { hostile(w) as u64 }, hostile(w) as u64);
        let len = if w.rng.chance(128) { w.rng.below(8192) as u32 } else { hostile(w) as u32 };
        let op_flags = if w.rng.chance(128) { 0 } else { w.rng.next() as u32 };
        poke(sqe, opcode);
        poke(sqe + 1, flags);
        poke(sqe + 4, fd);
        poke(sqe + 8, off);
        poke(sqe + 16, addr);
        poke(sqe + 24, len);
        poke(sqe + 28, op_flags);
        poke(sqe + 32, w.rng.next());
        if w.rng.chance(128) {
            poke(sqe + 40, w.rng.below(4) as u16); // buf_index / group
        }
        if w.trace {
            ulib::eprintln!("fuzz:   sqe op {opcode} flags {flags:#x} fd {fd} off {off:#x} addr {addr:#x} len {len:#x} op_flags {op_flags:#x} ring flags {:#x}", r.p.flags);
        }
        if !no_array {
            let index = if w.rng.chance(16) { w.rng.next() as u32 } else { slot as u32 };
            poke(r.word(r.p.sq_off[6]) + 4 * slot, index);
        }
    }
    scramble_buf(w);
    poke(r.word(r.p.sq_off[1]), tail.wrapping_add(n));
    let wait = if w.rng.chance(12) { 1 } else { 0 };
    let flags = if w.rng.chance(32) { w.rng.below(64) as usize } else { usize::from(wait == 1) };
    if w.trace {
        ulib::eprintln!("fuzz:   enter {n} wait {wait} flags {flags:#x}");
    }
    let _ = call(nr::IO_URING_ENTER, [r.fd as usize, n as usize, wait, flags, 0, 0]);
}

/// Consumes the CQ, or sets its head to anything.
fn op_reap(w: &mut World) {
    let Some(r) = pick_ring(w) else { return };
    let v = if w.rng.chance(64) {
        w.rng.next() as u32
    } else {
        // SAFETY: the CQ tail word of the ring's mapping.
        unsafe { read_volatile(r.word(r.p.cq_off[1]) as *const u32) }
    };
    // SAFETY: the CQ head word of the ring's mapping.
    unsafe { write_volatile(r.word(r.p.cq_off[0]) as *mut u32, v) };
}

/// A random word of a ring's shared area gets a random value.
fn op_corrupt(w: &mut World) {
    let Some(r) = pick_ring(w) else { return };
    corrupt_once(&mut w.rng, &r);
}

fn corrupt_once(rng: &mut Rng, r: &RingMap) {
    let offsets = [r.p.sq_off[0], r.p.sq_off[1], r.p.sq_off[4], r.p.sq_off[5], r.p.cq_off[0], r.p.cq_off[1], r.p.cq_off[4], r.p.cq_off[6]];
    let off = if rng.chance(200) { offsets[rng.below(8) as usize] as usize } else { (rng.below(r.ring_len as u64) & !3) as usize };
    if off + 4 <= r.ring_len {
        // SAFETY: inside the ring mapping (the racing thread's mapping may be gone:
        // then the write faults and kills the child, which is allowed).
        unsafe { write_volatile((r.ring + off) as *mut u32, rng.next() as u32) };
    }
}

/// A second thread scribbles on a ring's words while this one submits.
fn op_race(w: &mut World) {
    if w.racer.is_some() {
        return;
    }
    let Some(r) = pick_ring(w) else { return };
    let seed = w.rng.next();
    let rounds = 50 + w.rng.below(500);
    w.racer = ulib::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        for i in 0..rounds {
            corrupt_once(&mut rng, &r);
            if i % 8 == 0 {
                let _ = call(nr::SCHED_YIELD, [0; 6]);
            }
        }
        0
    })
    .ok();
}

/// Unmaps part or all of a ring's memory, then keeps using the ring's fd.
fn op_unmap(w: &mut World) {
    let Some(i) = (0..MAX_RINGS).find(|&i| w.rings[i].is_some()) else { return };
    // A racing thread may still touch the mapping: wait for it first.
    if let Some(h) = w.racer.take() {
        let _ = h.join();
    }
    let r = w.rings[i].take().expect("checked");
    let (addr, len) = if w.rng.chance(128) { (r.sqes, 4096) } else { (r.ring, r.ring_len) };
    // SAFETY: the ring's own mappings; nothing else refers to them now.
    let _ = unsafe { sys::munmap(addr, len) };
    let _ = call(nr::IO_URING_ENTER, [r.fd as usize, 1, 0, 0, 0, 0]);
    add_fd(w, r.fd);
}

fn op_register(w: &mut World) {
    let fd = match pick_ring(w) {
        Some(r) if w.rng.chance(200) => r.fd,
        _ => pick_fd(w),
    };
    scramble_buf(w);
    let opcode = if w.rng.chance(16) { w.rng.next() as usize } else { w.rng.below(40) as usize };
    let arg = if w.rng.chance(200) { w.buf } else { hostile(w) };
    let nr_args = if w.rng.chance(180) { w.rng.below(8) as usize } else { hostile(w) };
    let _ = call(nr::IO_URING_REGISTER, [fd as usize, opcode, arg, nr_args, 0, 0]);
}

fn op_enter(w: &mut World) {
    let fd = match pick_ring(w) {
        Some(r) if w.rng.chance(220) => r.fd,
        _ => pick_fd(w),
    };
    // EXT_ARG (8) with a short timeout in the buffer, so a wait ends.
    let flags = w.rng.below(128) as usize;
    // SAFETY: the first 32 bytes of the buffer: a getevents_arg, then a 1 ms timespec.
    unsafe {
        let b = w.buf as *mut u64;
        write_volatile(b, 0);
        write_volatile(b.add(1), 8);
        write_volatile(b.add(2), w.buf as u64 + 32);
        write_volatile(b.add(3), 0);
        write_volatile(b.add(4), 0);
        write_volatile(b.add(5), 1_000_000);
    }
    let arg = if flags & 8 != 0 && w.rng.chance(200) { w.buf } else { hostile(w) };
    let _ = call(nr::IO_URING_ENTER, [fd as usize, w.rng.below(4) as usize, w.rng.below(2) as usize, flags, arg, if w.rng.chance(200) { 24 } else { hostile(w) }]);
}

fn op_close(w: &mut World) {
    if w.nfds == 0 {
        return;
    }
    let i = w.rng.below(w.nfds as u64) as usize;
    let _ = sys::close(w.fds[i]);
    w.nfds -= 1;
    w.fds[i] = w.fds[w.nfds];
}

fn op_close_ring(w: &mut World) {
    let Some(i) = (0..MAX_RINGS).find(|&i| w.rings[i].is_some()) else { return };
    if let Some(h) = w.racer.take() {
        let _ = h.join();
    }
    let r = w.rings[i].take().expect("checked");
    let _ = sys::close(r.fd);
    // The mappings stay: the ring lives on until they go (as on Linux).
    if w.rng.chance(128) {
        // SAFETY: the ring's own mappings, no longer referred to.
        let _ = unsafe { sys::munmap(r.ring, r.ring_len) };
    }
}

/// fork with the rings alive: the child runs a few operations of its own and exits; it
/// dies with its parent (PDEATHSIG), and is killed if it takes too long.
fn op_fork(w: &mut World) {
    if w.forks >= 4 {
        return;
    }
    w.forks += 1;
    let seed = w.rng.next();
    if let Some(h) = w.racer.take() {
        let _ = h.join();
    }
    match sys::fork() {
        Ok(0) => {
            let _ = call(nr::PRCTL, [1, 9, 0, 0, 0, 0]); // PR_SET_PDEATHSIG, SIGKILL
            w.rng = Rng::new(seed);
            w.forks = 4;
            for _ in 0..20 {
                step(w);
            }
            sys::exit_group(0)
        }
        Ok(pid) => {
            let pid = pid as i32;
            for _ in 0..10 {
                if sys::wait4(pid, None, WNOHANG).unwrap_or(0) != 0 {
                    return;
                }
                let _ = sys::nanosleep(&Timespec { tv_sec: 0, tv_nsec: 2_000_000 }, None);
            }
            let _ = sys::kill(pid, 9);
            let _ = sys::wait4(pid, None, 0);
        }
        Err(_) => {}
    }
}

/// An operation kind: its weight, its name (for --trace) and its generator.
type Kind = (u64, &'static str, fn(&mut World));

const KINDS: [Kind; 12] = [
    (15, "raw", op_raw_syscall),
    (10, "make_fd", op_make_fd),
    (8, "setup", op_setup_ring),
    (30, "submit", op_submit),
    (5, "reap", op_reap),
    (8, "register", op_register),
    (6, "enter", op_enter),
    (4, "corrupt", op_corrupt),
    (2, "race", op_race),
    (2, "unmap", op_unmap),
    (4, "close", op_close),
    (2, "fork", op_fork),
];

/// One operation, drawn by weight.
fn step(w: &mut World) {
    let total: u64 = KINDS.iter().map(|k| k.0).sum();
    let mut pick = w.rng.below(total);
    for (weight, name, op) in KINDS {
        if pick < weight {
            if w.trace {
                let state = w.rng.0;
                ulib::eprintln!("fuzz: op {name} (rng {state:#x})");
            }
            return op(w);
        }
        pick -= weight;
    }
}

fn child(seed: u64, ops: u64, trace: bool) -> ! {
    // A group of its own: a kill(0, ...) its corrupted memory may make stays in it.
    let _ = sys::setpgid(0, 0);
    // Output goes nowhere: random writes must not reach the console (with --trace the
    // trace goes to a copy of stderr kept at fd 99... which the child may close).
    if trace {
        let _ = sys::dup2(2, 99);
    }
    if let Ok(null) = sys::open(c"/dev/null", O_RDWR, 0) {
        for fd in 0..3 {
            let _ = sys::dup2(null as i32, fd);
        }
    }
    if trace {
        let _ = sys::dup2(99, 2);
    }
    // SAFETY: a fresh private mapping.
    let Ok(buf) = (unsafe { sys::mmap(0, BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) }) else {
        sys::exit_group(99)
    };
    let mut w = World { rng: Rng::new(seed), trace, fds: [-1; MAX_FDS], nfds: 0, rings: [None; MAX_RINGS], buf, racer: None, forks: 0 };
    for _ in 0..ops {
        step(&mut w);
    }
    sys::exit_group(0)
}

struct Config<'a> {
    /// Where the children's files are.
    dir: &'a str,
    seed: u64,
    ops: u64,
    per_child: u64,
    ms: u64,
    first: u64,
    trace: bool,
}

fn parse<'a>(args: &'a Args) -> Option<Config<'a>> {
    let mut c = Config { dir: "/tmp", seed: 0x5eed, ops: 1000, per_child: 50, ms: 200, first: 0, trace: false };
    let mut positional = [None; 3];
    let mut npos = 0;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok());
        match a {
            "--seed" => c.seed = value()?,
            "--ops" => c.ops = value()?,
            "--per-child" => c.per_child = value()?.max(1),
            "--ms" => c.ms = value()?.max(1),
            "--first" => c.first = value()?,
            "--trace" => c.trace = true,
            "--dir" => c.dir = it.next()?,
            n if npos < 3 => {
                positional[npos] = Some(n.parse::<u64>().ok()?);
                npos += 1;
            }
            _ => return None,
        }
    }
    // The old form: ROUNDS CALLS SEED.
    if let [Some(rounds), calls, seed] = positional {
        c.per_child = calls.unwrap_or(50).max(1);
        c.ops = rounds * c.per_child;
        c.seed = seed.unwrap_or(c.seed);
    }
    Some(c)
}

fn main(args: &Args) -> i32 {
    let Some(c) = parse(args) else {
        println!("usage: fuzz [--seed S] [--ops N] [--per-child C] [--ms T] [--first K] [--trace] [--dir D] | fuzz ROUNDS CALLS SEED");
        return 2;
    };
    for (k, name) in ["fuzz-a", "fuzz-b"].iter().enumerate() {
        let path = [c.dir.as_bytes(), b"/", name.as_bytes()];
        let len: usize = path.iter().map(|p| p.len()).sum();
        if len >= 128 {
            println!("fuzz: --dir {}: too long", c.dir);
            return 2;
        }
        // SAFETY: no child or thread exists yet; `FILES` is only read after this.
        let file = unsafe { &mut (*FILES.0.get())[k] };
        let mut at = 0;
        for part in path {
            file[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
    }
    println!("fuzz: seed {} ops {} per-child {} ms {}", c.seed, c.ops, c.per_child, c.ms);
    let children = c.ops.div_ceil(c.per_child);
    let (mut killed, mut crashed) = (0u64, 0u64);
    for n in c.first..children {
        let child_seed = splitmix(c.seed ^ splitmix(n));
        if c.trace {
            println!("fuzz: child {n}");
        }
        let pid = match sys::fork() {
            Ok(0) => child(child_seed, c.per_child, c.trace),
            Ok(pid) => pid as i32,
            Err(e) => {
                println!("fuzz: fork failed: {e} (seed {}, child {n})", c.seed);
                return 1;
            }
        };
        let mut status = 0;
        let mut done = false;
        let polls = c.ms.div_ceil(5);
        for _ in 0..polls {
            if sys::wait4(pid, Some(&mut status), WNOHANG).unwrap_or(0) == pid as usize {
                done = true;
                break;
            }
            let _ = sys::nanosleep(&Timespec { tv_sec: 0, tv_nsec: 5_000_000 }, None);
        }
        if !done {
            killed += 1;
            let _ = sys::kill(pid, 9);
            // A child that SIGKILL cannot end within 10 s is stuck in the kernel.
            let mut gone = false;
            for _ in 0..1000 {
                if sys::wait4(pid, Some(&mut status), WNOHANG).unwrap_or(0) == pid as usize {
                    gone = true;
                    break;
                }
                let _ = sys::nanosleep(&Timespec { tv_sec: 0, tv_nsec: 10_000_000 }, None);
            }
            if !gone {
                println!("fuzz: HANG: child {n} (pid {pid}) survived SIGKILL for 10 s; replay with --seed {} --ops {} --per-child {}", c.seed, c.ops, c.per_child);
                return 2;
            }
        } else if status & 0x7f != 0 {
            crashed += 1; // killed by a signal of its own making (SIGSEGV, ...): allowed
        }
        // Orphaned grandchildren come to init: reap them.
        while sys::wait4(-1, None, WNOHANG).unwrap_or(0) > 0 {}
        if (n + 1) % 1000 == 0 {
            println!("fuzz: {} of {children} children", n + 1);
        }
    }
    println!("fuzz: seed {}: {} ops in {children} children; {killed} killed after {} ms, {crashed} ended by a signal", c.seed, children * c.per_child, c.ms);
    match check() {
        Ok(()) => {
            println!("fuzz: kernel ok");
            0
        }
        Err((what, e)) => {
            println!("fuzz: after fuzzing, {what} failed: {e}");
            1
        }
    }
}

/// The kernel still does its job: a file round trip and an io_uring NOP.
fn check() -> Result<(), (&'static str, ulib::Errno)> {
    let fd = sys::open(c"/tmp/fuzz-check", O_CREAT | O_RDWR, 0o600).map_err(|e| ("open", e))? as i32;
    sys::pwrite64(fd, b"alive", 0).map_err(|e| ("pwrite", e))?;
    let mut back = [0u8; 5];
    sys::pread64(fd, &mut back, 0).map_err(|e| ("pread", e))?;
    if &back != b"alive" {
        return Err(("read back", ulib::Errno::EIO));
    }
    let mut ring = Ring::new(4).map_err(|e| ("io_uring_setup", e))?;
    let sqe = ring.get_sqe().ok_or(("get_sqe", ulib::Errno::EBUSY))?;
    sqe.opcode = uring::IORING_OP_NOP;
    sqe.user_data = 7;
    ring.submit_and_wait(1).map_err(|e| ("io_uring_enter", e))?;
    let cqe = ring.wait_cqe().map_err(|e| ("wait", e))?;
    if cqe.user_data != 7 || cqe.res != 0 {
        return Err(("NOP", ulib::Errno::EIO));
    }
    Ok(())
}
