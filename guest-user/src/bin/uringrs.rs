//! The `ulib::uring::opcode` builders against the running kernel: one test per op family.
//!
//! ```text
//! uringrs [DIR]
//! ```
//!
//! Files go in `DIR/uringrs-PID` (default `/tmp`), removed again at the end. Prints
//! `uringrs NAME ... ok` or `uringrs NAME ... FAILED: why` per test, then
//! `uringrs: N passed, M failed`; the exit status is M. Every test passes on host Linux.
#![no_std]
#![no_main]
// A Failure is its message, formatted on the stack (there is no allocator).
#![allow(clippy::result_large_err)]

use core::ffi::CStr;
use core::sync::atomic::AtomicU32;

use ulib::io::StackStr;
use ulib::test::{Failure, TestResult};
use ulib::uapi::*;
use ulib::uring::opcode::{self, Entry};
use ulib::uring::types::{EpollEvent, Fd, Fixed, Flags, FutexWaitv, Iovec, OpenHow, Timespec};
use ulib::uring::{Cqe, Ring};
use ulib::{Args, check, check_eq, check_ok, fail, print, println, sys};

ulib::entry!(main);

const ENOENT: i32 = 2;
const EBADF: i32 = 9;
const EAGAIN: i32 = 11;
const EFAULT: i32 = 14;
const ETIME: i32 = 62;
const EBADFD: i32 = 77;
const ECANCELED: i32 = 125;
const POLLIN: u32 = 1;
const EPOLLIN: u32 = 1;
const EPOLL_CTL_ADD: i32 = 1;
const NR_EPOLL_CREATE1: usize = 291;
const POSIX_FADV_SEQUENTIAL: i32 = 2;

/// The scratch directory the tests work in.
struct Ctx {
    dir: StackStr<200>,
}

impl Ctx {
    /// `DIR/name`, NUL-terminated.
    fn path(&self, name: &str) -> StackStr<256> {
        StackStr::from_fmt(format_args!("{}/{name}", self.dir.as_str()))
    }
}

type Test = (&'static str, fn(&Ctx) -> TestResult);

const TESTS: &[Test] = &[
    ("probe", probe),
    ("nop", nop),
    ("write_read", write_read),
    ("readv_writev", readv_writev),
    ("fixed_buffers", fixed_buffers),
    ("sync_size_ops", sync_size_ops),
    ("fixed_files", fixed_files),
    ("path_ops", path_ops),
    ("timeout", timeout),
    ("link_timeout", link_timeout),
    ("poll", poll),
    ("async_cancel", async_cancel),
    ("pipe", pipe),
    ("splice_tee", splice_tee),
    ("provide_buffers", provide_buffers),
    ("read_multishot", read_multishot),
    ("msg_ring", msg_ring),
    ("futex", futex),
    ("waitid", waitid),
    ("epoll", epoll),
    ("xattr", xattr),
    ("advise", advise),
];

fn main(args: &Args) -> i32 {
    let base = args.iter().nth(1).unwrap_or("/tmp");
    let pid = sys::getpid().unwrap_or(0);
    let ctx = Ctx { dir: StackStr::from_fmt(format_args!("{base}/uringrs-{pid}")) };
    if let Err(e) = sys::mkdir(ctx.dir.as_cstr(), 0o755) {
        println!("uringrs: mkdir {}: {e}", ctx.dir.as_str());
        return 1;
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        print!("uringrs {name} ... ");
        match test(&ctx) {
            Ok(()) => {
                passed += 1;
                print!("ok\n");
            }
            Err(why) => {
                failed += 1;
                print!("FAILED: {}\n", why.message());
            }
        }
    }
    if let Err(e) = sys::rmdir(ctx.dir.as_cstr()) {
        println!("uringrs: rmdir {}: {e} (a test left files behind)", ctx.dir.as_str());
        failed += 1;
    }
    println!("uringrs: {passed} passed, {failed} failed");
    failed
}

fn ring(entries: u32) -> Result<Ring, Failure> {
    Ok(check_ok!(Ring::new(entries)))
}

/// Pushes `entries`, submits them and reaps `N` CQEs.
fn run<const N: usize>(ring: &mut Ring, entries: &[Entry]) -> Result<[Cqe; N], Failure> {
    for e in entries {
        check!(ring.push(e), "SQ full");
    }
    check_ok!(ring.submit());
    reap(ring)
}

/// Waits for `N` CQEs.
fn reap<const N: usize>(ring: &mut Ring) -> Result<[Cqe; N], Failure> {
    let mut cqes = [Cqe::default(); N];
    for c in &mut cqes {
        *c = check_ok!(ring.wait_cqe());
    }
    Ok(cqes)
}

/// The CQE carrying `user_data`.
fn by_ud(cqes: &[Cqe], user_data: u64) -> Result<Cqe, Failure> {
    match cqes.iter().find(|c| c.user_data == user_data) {
        Some(c) => Ok(*c),
        None => fail!("no CQE with user_data {user_data} in {cqes:?}"),
    }
}

/// One op, its result.
fn res(ring: &mut Ring, entry: Entry) -> Result<i32, Failure> {
    let [c] = run::<1>(ring, &[entry])?;
    Ok(c.res)
}

fn ptr(p: &CStr) -> *const u8 {
    p.as_ptr().cast()
}

/// Creates `DIR/name` (read-write, truncated) with plain syscalls.
fn create(ctx: &Ctx, name: &str) -> Result<i32, Failure> {
    let p = ctx.path(name);
    Ok(check_ok!(sys::open(p.as_cstr(), O_CREAT | O_RDWR | O_TRUNC, 0o644)) as i32)
}

fn remove(ctx: &Ctx, name: &str) -> TestResult {
    check_ok!(sys::unlink(ctx.path(name).as_cstr()));
    Ok(())
}

fn pipe_fds() -> Result<[i32; 2], Failure> {
    let mut fds = [0; 2];
    check_ok!(sys::pipe(&mut fds));
    Ok(fds)
}

fn close_all(fds: &[i32]) -> TestResult {
    for &fd in fds {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn size_of_file(ctx: &Ctx, name: &str) -> Result<u64, Failure> {
    let mut stx = Statx::default();
    check_ok!(sys::statx(AT_FDCWD, ctx.path(name).as_cstr(), 0, STATX_SIZE, &mut stx));
    Ok(stx.stx_size)
}

/// Every builder's opcode is one the kernel says it implements.
fn probe(_: &Ctx) -> TestResult {
    use opcode::*;
    let r = ring(2)?;
    let p = check_ok!(r.probe());
    let codes = [
        Nop::CODE, Readv::CODE, Writev::CODE, Fsync::CODE, ReadFixed::CODE, WriteFixed::CODE, PollAdd::CODE,
        PollRemove::CODE, SyncFileRange::CODE, Timeout::CODE, TimeoutRemove::CODE, AsyncCancel::CODE,
        LinkTimeout::CODE, Fallocate::CODE, OpenAt::CODE, Close::CODE, FilesUpdate::CODE, Statx::CODE, Read::CODE,
        Write::CODE, Fadvise::CODE, Madvise::CODE, OpenAt2::CODE, EpollCtl::CODE, Splice::CODE,
        ProvideBuffers::CODE, RemoveBuffers::CODE, Tee::CODE, RenameAt::CODE, UnlinkAt::CODE, MkDirAt::CODE,
        SymlinkAt::CODE, LinkAt::CODE, MsgRingData::CODE, FSetXattr::CODE, SetXattr::CODE, FGetXattr::CODE,
        GetXattr::CODE, ReadMulti::CODE, WaitId::CODE, FutexWait::CODE, FutexWake::CODE, FutexWaitV::CODE,
        FixedFdInstall::CODE, Ftruncate::CODE, EpollWait::CODE, ReadvFixed::CODE, WritevFixed::CODE, Pipe::CODE,
    ];
    check_eq!(codes.len(), 49);
    for code in codes {
        check!(p.is_supported(code), "opcode {code} not supported");
    }
    // One entry per opcode the kernel knows, none beyond.
    check_eq!(usize::from(p.ops_len), usize::from(p.last_op) + 1);
    check!(!p.is_supported(200), "opcode 200");
    Ok(())
}

fn nop(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let [c] = run::<1>(&mut r, &[opcode::Nop::new().build().user_data(42)])?;
    check_eq!((c.user_data, c.res, c.flags), (42, 0, 0));
    let inject = opcode::Nop::new().nop_flags(opcode::NOP_INJECT_RESULT).result(-22).build();
    check_eq!(res(&mut r, inject)?, -22);
    // A batch bigger than one submit call: user_data comes back unchanged.
    let batch: [Entry; 6] = core::array::from_fn(|i| opcode::Nop::new().build().user_data(100 + i as u64));
    let cqes = run::<6>(&mut r, &batch)?;
    check_eq!(cqes.iter().map(|c| c.user_data).sum::<u64>(), 615);
    Ok(())
}

fn write_read(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let p = ctx.path("rw");
    let open = opcode::OpenAt::new(AT_FDCWD, ptr(p.as_cstr())).flags(O_CREAT | O_RDWR | O_TRUNC).mode(0o600);
    let fd = res(&mut r, open.build())?;
    check!(fd >= 0, "OPENAT: {fd}");
    let text = b"hello uring";
    let mut back = [0u8; 32];
    // WRITE linked to READ: the read sees what the write put there.
    let cqes = run::<2>(&mut r, &[
        opcode::Write::new(Fd(fd), text.as_ptr(), text.len() as u32).offset(4).build().user_data(1).flags(Flags::IO_LINK),
        opcode::Read::new(Fd(fd), back.as_mut_ptr(), back.len() as u32).offset(0).build().user_data(2),
    ])?;
    check_eq!(by_ud(&cqes, 1)?.res, 11);
    check_eq!(by_ud(&cqes, 2)?.res, 15);
    check_eq!(&back[..15], b"\0\0\0\0hello uring");
    // Offset -1: the file position, which the reads and writes above did not move.
    check_eq!(res(&mut r, opcode::Read::new(Fd(fd), back.as_mut_ptr(), 5).offset(u64::MAX).build())?, 5);
    check_eq!(check_ok!(sys::lseek(fd, 0, SEEK_CUR)), 5);
    check_eq!(res(&mut r, opcode::Close::new(Fd(fd)).build())?, 0);
    check_eq!(res(&mut r, opcode::Close::new(Fd(fd)).build())?, -EBADF);
    remove(ctx, "rw")
}

fn readv_writev(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let fd = create(ctx, "vec")?;
    let (mut a, mut b) = (*b"vector ", *b"io works");
    let iov = [Iovec::from_slice(&mut a), Iovec::from_slice(&mut b)];
    check_eq!(res(&mut r, opcode::Writev::new(Fd(fd), iov.as_ptr(), 2).offset(0).build())?, 15);
    let (mut x, mut y) = ([0u8; 3], [0u8; 20]);
    let iov = [Iovec::from_slice(&mut x), Iovec::from_slice(&mut y)];
    check_eq!(res(&mut r, opcode::Readv::new(Fd(fd), iov.as_ptr(), 2).offset(1).build())?, 14);
    check_eq!(&x, b"ect");
    check_eq!(&y[..11], b"or io works");
    close_all(&[fd])?;
    remove(ctx, "vec")
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

fn fixed_buffers(ctx: &Ctx) -> TestResult {
    let mut page = Page([0; 4096]);
    let base = page.0.as_mut_ptr();
    let mut r = ring(8)?;
    let fd = create(ctx, "fixedbuf")?;
    // SAFETY: `page` is declared before `r`, so it outlives the ring and its registration.
    check_ok!(unsafe { r.register_buffers(&[Iovec { base, len: 4096 }]) });
    for (i, b) in page.0[..64].iter_mut().enumerate() {
        *b = i as u8;
    }
    check_eq!(res(&mut r, opcode::WriteFixed::new(Fd(fd), base, 64, 0).offset(0).build())?, 64);
    // SAFETY: an address inside the registered page.
    let upper = unsafe { base.add(2048) };
    check_eq!(res(&mut r, opcode::ReadFixed::new(Fd(fd), upper, 64, 0).offset(0).build())?, 64);
    check!(page.0[2048..2112].iter().enumerate().all(|(i, &b)| b == i as u8), "READ_FIXED data");
    // The vectored forms: two iovecs inside the same registered buffer.
    // SAFETY: addresses inside the registered page.
    let iov = [Iovec { base, len: 10 }, Iovec { base: unsafe { base.add(100) }, len: 6 }];
    check_eq!(res(&mut r, opcode::WritevFixed::new(Fd(fd), iov.as_ptr(), 2, 0).offset(64).build())?, 16);
    // SAFETY: as above.
    let iov = [Iovec { base: unsafe { base.add(3000) }, len: 16 }];
    check_eq!(res(&mut r, opcode::ReadvFixed::new(Fd(fd), iov.as_ptr(), 1, 0).offset(64).build())?, 16);
    check_eq!(&page.0[3000..3010], &page.0[..10]);
    check_eq!(&page.0[3010..3016], &page.0[100..106]);
    // A buffer index that is not registered.
    check_eq!(res(&mut r, opcode::ReadFixed::new(Fd(fd), base, 64, 3).build())?, -EFAULT);
    close_all(&[fd])?;
    remove(ctx, "fixedbuf")
}

fn sync_size_ops(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let fd = create(ctx, "sync")?;
    let data = [7u8; 100];
    check_eq!(res(&mut r, opcode::Write::new(Fd(fd), data.as_ptr(), 100).build())?, 100);
    check_eq!(res(&mut r, opcode::Fsync::new(Fd(fd)).build())?, 0);
    check_eq!(res(&mut r, opcode::Fsync::new(Fd(fd)).flags(opcode::FSYNC_DATASYNC).build())?, 0);
    check_eq!(res(&mut r, opcode::SyncFileRange::new(Fd(fd), 100).build())?, 0);
    check_eq!(res(&mut r, opcode::Fallocate::new(Fd(fd), 8192).build())?, 0);
    check_eq!(size_of_file(ctx, "sync")?, 8192);
    check_eq!(res(&mut r, opcode::Ftruncate::new(Fd(fd), 300).build())?, 0);
    // STATX through the ring sees the new size.
    let p = ctx.path("sync");
    let mut stx = Statx::default();
    let statx = opcode::Statx::new(AT_FDCWD, ptr(p.as_cstr()), (&raw mut stx).cast()).mask(STATX_SIZE | STATX_TYPE);
    check_eq!(res(&mut r, statx.build())?, 0);
    check_eq!(stx.stx_size, 300);
    check_eq!(u32::from(stx.stx_mode) & S_IFMT, S_IFREG);
    check_eq!(res(&mut r, opcode::Ftruncate::new(Fd(-1), 0).build())?, -EBADF);
    close_all(&[fd])?;
    remove(ctx, "sync")
}

fn fixed_files(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    check_ok!(r.register_files(&[-1, -1, -1, -1]));
    let p = ctx.path("fixed");
    // OPENAT2 straight into slot 1 (file_index 2): no fd is made, the result is 0.
    let how = OpenHow { flags: (O_CREAT | O_RDWR) as u64, mode: 0o600, resolve: 0 };
    check_eq!(res(&mut r, opcode::OpenAt2::new(AT_FDCWD, ptr(p.as_cstr()), &how).file_index(2).build())?, 0);
    let text = b"through a fixed file";
    check_eq!(res(&mut r, opcode::Write::new(Fixed(1), text.as_ptr(), text.len() as u32).build())?, 20);
    let mut back = [0u8; 32];
    check_eq!(res(&mut r, opcode::Read::new(Fixed(1), back.as_mut_ptr(), 32).build())?, 20);
    check_eq!(&back[..20], text);
    // FIXED_FD_INSTALL: the same file as an ordinary fd.
    let fd = res(&mut r, opcode::FixedFdInstall::new(Fixed(1)).build())?;
    check!(fd >= 0, "FIXED_FD_INSTALL: {fd}");
    check_eq!(check_ok!(sys::pread64(fd, &mut back[..7], 8)), 7);
    check_eq!(&back[..7], b"a fixed");
    // OPENAT with ALLOC takes a free slot and returns its index.
    let open = opcode::OpenAt::new(AT_FDCWD, ptr(p.as_cstr())).flags(O_RDONLY).file_index(opcode::FILE_INDEX_ALLOC);
    let slot = res(&mut r, open.build())?;
    check!(slot == 0 || slot == 2, "ALLOC slot {slot}");
    check_eq!(res(&mut r, opcode::Read::new(Fixed(slot as u32), back.as_mut_ptr(), 7).offset(0).build())?, 7);
    check_eq!(&back[..7], b"through");
    check_eq!(res(&mut r, opcode::Close::new(Fixed(slot as u32)).build())?, 0);
    // FILES_UPDATE puts an fd in slot 3.
    check_eq!(res(&mut r, opcode::FilesUpdate::new(&fd, 1).offset(3).build())?, 1);
    check_eq!(res(&mut r, opcode::Read::new(Fixed(3), back.as_mut_ptr(), 4).offset(0).build())?, 4);
    // CLOSE of a fixed slot empties it.
    check_eq!(res(&mut r, opcode::Close::new(Fixed(1)).build())?, 0);
    check_eq!(res(&mut r, opcode::Read::new(Fixed(1), back.as_mut_ptr(), 4).build())?, -EBADF);
    check_eq!(res(&mut r, opcode::Close::new(Fixed(1)).build())?, -EBADF);
    close_all(&[fd])?;
    remove(ctx, "fixed")
}

fn path_ops(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let (d, f, s, h, h2) = (ctx.path("d"), ctx.path("d/f"), ctx.path("d/s"), ctx.path("d/h"), ctx.path("d/h2"));
    check_eq!(res(&mut r, opcode::MkDirAt::new(AT_FDCWD, ptr(d.as_cstr())).mode(0o755).build())?, 0);
    let mut stx = Statx::default();
    check_ok!(sys::statx(AT_FDCWD, d.as_cstr(), 0, STATX_TYPE, &mut stx));
    check_eq!(u32::from(stx.stx_mode) & S_IFMT, S_IFDIR);
    check_eq!(res(&mut r, opcode::MkDirAt::new(AT_FDCWD, ptr(d.as_cstr())).build())?, -17); // EEXIST
    let dirfd = check_ok!(sys::open(d.as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    // Relative to a directory fd.
    let fd = res(&mut r, opcode::OpenAt::new(dirfd, c"f".as_ptr().cast()).flags(O_CREAT | O_WRONLY).mode(0o644).build())?;
    check!(fd >= 0, "OPENAT in dirfd: {fd}");
    close_all(&[fd])?;
    check_eq!(res(&mut r, opcode::SymlinkAt::new(AT_FDCWD, c"f".as_ptr().cast(), ptr(s.as_cstr())).build())?, 0);
    let mut link = [0u8; 16];
    check_eq!(check_ok!(sys::readlink(s.as_cstr(), &mut link)), 1);
    check_eq!(link[0], b'f');
    check_eq!(res(&mut r, opcode::LinkAt::new(AT_FDCWD, ptr(f.as_cstr()), AT_FDCWD, ptr(h.as_cstr())).build())?, 0);
    check_ok!(sys::statx(AT_FDCWD, f.as_cstr(), 0, STATX_BASIC_STATS, &mut stx));
    check_eq!(stx.stx_nlink, 2);
    check_eq!(res(&mut r, opcode::RenameAt::new(dirfd, c"h".as_ptr().cast(), dirfd, c"h2".as_ptr().cast()).build())?, 0);
    check!(sys::statx(AT_FDCWD, h.as_cstr(), 0, STATX_TYPE, &mut stx).is_err(), "old name still there");
    check_ok!(sys::statx(AT_FDCWD, h2.as_cstr(), 0, STATX_TYPE, &mut stx));
    // Removing a non-empty directory fails; emptied, it goes.
    let rmdir = opcode::UnlinkAt::new(AT_FDCWD, ptr(d.as_cstr())).flags(AT_REMOVEDIR);
    check_eq!(res(&mut r, rmdir.build())?, -39); // ENOTEMPTY
    for p in [&f, &s, &h2] {
        check_eq!(res(&mut r, opcode::UnlinkAt::new(AT_FDCWD, ptr(p.as_cstr())).build())?, 0);
    }
    check_eq!(res(&mut r, opcode::UnlinkAt::new(AT_FDCWD, ptr(f.as_cstr())).build())?, -ENOENT);
    close_all(&[dirfd])?;
    check_eq!(res(&mut r, rmdir.build())?, 0);
    Ok(())
}

fn timeout(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let short = Timespec::from_millis(20);
    check_eq!(res(&mut r, opcode::Timeout::new(&short).build())?, -ETIME);
    // A count of 1: the NOP's completion ends the timeout, with 0.
    let long = Timespec::new(10, 0);
    let cqes = run::<2>(&mut r, &[opcode::Timeout::new(&long).count(1).build().user_data(1), opcode::Nop::new().build().user_data(2)])?;
    check_eq!((by_ud(&cqes, 1)?.res, by_ud(&cqes, 2)?.res), (0, 0));
    // TIMEOUT_REMOVE cancels a pending timeout.
    check!(r.push(&opcode::Timeout::new(&long).build().user_data(3)));
    check_ok!(r.submit());
    let cqes = run::<2>(&mut r, &[opcode::TimeoutRemove::new(3).build().user_data(4)])?;
    check_eq!((by_ud(&cqes, 3)?.res, by_ud(&cqes, 4)?.res), (-ECANCELED, 0));
    check_eq!(res(&mut r, opcode::TimeoutRemove::new(3).build())?, -ENOENT);
    // An update restarts a pending timeout with a new time.
    check!(r.push(&opcode::Timeout::new(&long).build().user_data(5)));
    check_ok!(r.submit());
    let cqes = run::<2>(&mut r, &[opcode::TimeoutRemove::new(5).update(Some(&short)).build().user_data(6)])?;
    check_eq!((by_ud(&cqes, 5)?.res, by_ud(&cqes, 6)?.res), (-ETIME, 0));
    // Multishot: three expiries, F_MORE on all but the last.
    let tick = Timespec::from_millis(2);
    let multi = opcode::Timeout::new(&tick).count(3).flags(opcode::TIMEOUT_MULTISHOT);
    let cqes = run::<3>(&mut r, &[multi.build().user_data(7)])?;
    let seen = cqes.map(|c| (c.user_data, c.res, c.more()));
    check_eq!(seen, [(7, -ETIME, true), (7, -ETIME, true), (7, -ETIME, false)]);
    Ok(())
}

fn link_timeout(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let [rd, wr] = pipe_fds()?;
    let mut buf = [0u8; 8];
    let ts = Timespec::from_millis(20);
    // A read of an empty pipe, cut short by its linked timeout.
    let cqes = run::<2>(&mut r, &[
        opcode::Read::new(Fd(rd), buf.as_mut_ptr(), 8).build().user_data(1).flags(Flags::IO_LINK),
        opcode::LinkTimeout::new(&ts).build().user_data(2),
    ])?;
    check_eq!((by_ud(&cqes, 1)?.res, by_ud(&cqes, 2)?.res), (-ECANCELED, -ETIME));
    // A read that completes in time cancels the timeout.
    check_ok!(sys::write(wr, b"in time"));
    let ts = Timespec::new(10, 0);
    let cqes = run::<2>(&mut r, &[
        opcode::Read::new(Fd(rd), buf.as_mut_ptr(), 8).build().user_data(3).flags(Flags::IO_LINK),
        opcode::LinkTimeout::new(&ts).build().user_data(4),
    ])?;
    check_eq!((by_ud(&cqes, 3)?.res, by_ud(&cqes, 4)?.res), (7, -ECANCELED));
    close_all(&[rd, wr])
}

fn poll(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let [rd, wr] = pipe_fds()?;
    check!(r.push(&opcode::PollAdd::new(Fd(rd), POLLIN).build().user_data(1)));
    check_ok!(r.submit());
    check!(r.peek_cqe().is_none(), "POLL_ADD completed on an empty pipe");
    check_ok!(sys::write(wr, b"x"));
    let [c] = reap::<1>(&mut r)?;
    check_eq!((c.user_data, c.res as u32 & POLLIN), (1, POLLIN));
    let mut b = [0u8; 1];
    check_ok!(sys::read(rd, &mut b));
    // POLL_REMOVE cancels a pending poll.
    check!(r.push(&opcode::PollAdd::new(Fd(rd), POLLIN).build().user_data(2)));
    check_ok!(r.submit());
    let cqes = run::<2>(&mut r, &[opcode::PollRemove::new(2).build().user_data(3)])?;
    check_eq!((by_ud(&cqes, 2)?.res, by_ud(&cqes, 3)?.res), (-ECANCELED, 0));
    // An update gives a pending poll a new user_data; it goes on waiting.
    check!(r.push(&opcode::PollAdd::new(Fd(rd), POLLIN).build().user_data(10)));
    check_ok!(r.submit());
    check_eq!(res(&mut r, opcode::PollRemove::new(10).new_user_data(Some(11)).build().user_data(12))?, 0);
    check_ok!(sys::write(wr, b"u"));
    let [c] = reap::<1>(&mut r)?;
    check_eq!((c.user_data, c.res as u32 & POLLIN), (11, POLLIN));
    check_ok!(sys::read(rd, &mut b));
    // Multishot: one CQE per wakeup, with F_MORE, until removed.
    check!(r.push(&opcode::PollAdd::new(Fd(rd), POLLIN).multi(true).build().user_data(4)));
    check_ok!(r.submit());
    check_ok!(sys::write(wr, b"y"));
    let [c] = reap::<1>(&mut r)?;
    check!(c.user_data == 4 && c.more(), "multishot poll CQE: {c:?}");
    let cqes = run::<2>(&mut r, &[opcode::PollRemove::new(4).build().user_data(5)])?;
    check_eq!(by_ud(&cqes, 5)?.res, 0);
    check!(!by_ud(&cqes, 4)?.more(), "the last CQE of a removed multishot poll has F_MORE");
    close_all(&[rd, wr])
}

fn async_cancel(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let [rd, wr] = pipe_fds()?;
    let mut buf = [0u8; 8];
    check!(r.push(&opcode::Read::new(Fd(rd), buf.as_mut_ptr(), 8).build().user_data(1)));
    check_ok!(r.submit());
    let cqes = run::<2>(&mut r, &[opcode::AsyncCancel::new(1).build().user_data(2)])?;
    check_eq!((by_ud(&cqes, 1)?.res, by_ud(&cqes, 2)?.res), (-ECANCELED, 0));
    check_eq!(res(&mut r, opcode::AsyncCancel::new(1).build())?, -ENOENT);
    // By fd: two reads on the same pipe, both cancelled with CANCEL_FD | CANCEL_ALL.
    for ud in [3, 4] {
        check!(r.push(&opcode::Read::new(Fd(rd), buf.as_mut_ptr(), 8).build().user_data(ud)));
    }
    check_ok!(r.submit());
    let cancel = opcode::AsyncCancel::new(0).flags(opcode::ASYNC_CANCEL_FD | opcode::ASYNC_CANCEL_ALL).fd(rd);
    let cqes = run::<3>(&mut r, &[cancel.build().user_data(5)])?;
    check_eq!((by_ud(&cqes, 3)?.res, by_ud(&cqes, 4)?.res, by_ud(&cqes, 5)?.res), (-ECANCELED, -ECANCELED, 2));
    close_all(&[rd, wr])
}

fn pipe(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let mut fds = [-1i32; 2];
    check_eq!(res(&mut r, opcode::Pipe::new(fds.as_mut_ptr()).build())?, 0);
    check!(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1], "fds {fds:?}");
    check_eq!(check_ok!(sys::write(fds[1], b"piped")), 5);
    let mut b = [0u8; 8];
    check_eq!(check_ok!(sys::read(fds[0], &mut b)), 5);
    check_eq!(&b[..5], b"piped");
    close_all(&fds)?;
    // Both ends into the fixed table: slots 0 and 1 (file_index 1), indices stored.
    check_ok!(r.register_files(&[-1, -1]));
    let mut slots = [-1i32; 2];
    check_eq!(res(&mut r, opcode::Pipe::new(slots.as_mut_ptr()).file_index(1).build())?, 0);
    check_eq!(slots, [0, 1]);
    let text = b"fixed pipe";
    check_eq!(res(&mut r, opcode::Write::new(Fixed(1), text.as_ptr(), 10).build())?, 10);
    check_eq!(res(&mut r, opcode::Read::new(Fixed(0), b.as_mut_ptr(), 8).build())?, 8);
    check_eq!(&b, b"fixed pi");
    Ok(())
}

fn splice_tee(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let ([a0, a1], [b0, b1]) = (pipe_fds()?, pipe_fds()?);
    let fd = create(ctx, "splice")?;
    check_ok!(sys::write(a1, b"splice+tee"));
    // TEE copies without consuming; SPLICE then moves the same bytes into the file.
    check_eq!(res(&mut r, opcode::Tee::new(Fd(a0), Fd(b1), 64).build())?, 10);
    check_eq!(res(&mut r, opcode::Splice::new(Fd(a0), u64::MAX, Fd(fd), 3, 64).build())?, 10);
    let mut back = [0u8; 16];
    check_eq!(check_ok!(sys::read(b0, &mut back)), 10);
    check_eq!(&back[..10], b"splice+tee");
    check_eq!(check_ok!(sys::pread64(fd, &mut back, 0)), 13);
    check_eq!(&back[..13], b"\0\0\0splice+tee");
    // From the file back into a pipe, at an offset.
    check_eq!(res(&mut r, opcode::Splice::new(Fd(fd), 9, Fd(b1), u64::MAX, 4).build())?, 4);
    check_eq!(check_ok!(sys::read(b0, &mut back)), 4);
    check_eq!(&back[..4], b"+tee");
    close_all(&[a0, a1, b0, b1, fd])?;
    remove(ctx, "splice")
}

fn provide_buffers(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let fd = create(ctx, "pbuf")?;
    check_ok!(sys::write(fd, b"0123456789abcdefghijklmnopqrstuv"));
    let mut pool = [0u8; 64];
    check_eq!(res(&mut r, opcode::ProvideBuffers::new(pool.as_mut_ptr(), 16, 4, 7, 10).build())?, 0);
    let read = opcode::Read::new(Fd(fd), core::ptr::null_mut(), 16).offset(8).buf_group(7);
    let [c] = run::<1>(&mut r, &[read.build().flags(Flags::BUFFER_SELECT)])?;
    check_eq!(c.res, 16);
    let Some(bid) = c.buffer_id() else { fail!("no buffer in {c:?}") };
    check!((10..14).contains(&bid), "buffer id {bid}");
    let at = usize::from(bid - 10) * 16;
    check_eq!(&pool[at..at + 16], b"89abcdefghijklmn");
    // READV with a selected buffer: one iovec, whose length the kernel reads.
    let sel = [Iovec { base: core::ptr::null_mut(), len: 16 }];
    let readv = opcode::Readv::new(Fd(fd), sel.as_ptr(), 1).offset(0).buf_group(7);
    let [c] = run::<1>(&mut r, &[readv.build().flags(Flags::BUFFER_SELECT)])?;
    check!(c.res == 16 && c.buffer_id().is_some_and(|b| b != bid), "READV: {c:?}");
    check_eq!(res(&mut r, opcode::RemoveBuffers::new(8, 7).build())?, 2);
    let [c] = run::<1>(&mut r, &[read.build().flags(Flags::BUFFER_SELECT)])?;
    check_eq!(c.res, -105); // ENOBUFS
    check_eq!(res(&mut r, opcode::RemoveBuffers::new(1, 99).build())?, -ENOENT);
    close_all(&[fd])?;
    remove(ctx, "pbuf")
}

fn read_multishot(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let [rd, wr] = pipe_fds()?;
    let mut pool = [0u8; 64];
    check_eq!(res(&mut r, opcode::ProvideBuffers::new(pool.as_mut_ptr(), 16, 4, 3, 0).build())?, 0);
    check!(r.push(&opcode::ReadMulti::new(Fd(rd), 0, 3).build().user_data(9)));
    check_ok!(r.submit());
    let mut seen = 0u32;
    for text in [&b"one"[..], b"second"] {
        check_ok!(sys::write(wr, text));
        let [c] = reap::<1>(&mut r)?;
        check!(c.user_data == 9 && c.more(), "CQE {c:?}");
        check_eq!(c.res, text.len() as i32);
        let Some(bid) = c.buffer_id() else { fail!("no buffer in {c:?}") };
        check!(bid < 4 && seen & (1 << bid) == 0, "buffer {bid} again");
        seen |= 1 << bid;
        let at = usize::from(bid) * 16;
        check_eq!(&pool[at..at + text.len()], text);
    }
    // End of file ends it: a last CQE without F_MORE.
    close_all(&[wr])?;
    let [c] = reap::<1>(&mut r)?;
    check!(c.user_data == 9 && c.res == 0 && !c.more(), "EOF CQE {c:?}");
    close_all(&[rd])
}

fn msg_ring(_: &Ctx) -> TestResult {
    let (mut a, mut b) = (ring(8)?, ring(8)?);
    check_eq!(res(&mut a, opcode::MsgRingData::new(Fd(b.fd), 42, 0x77).build().user_data(1))?, 0);
    let c = check_ok!(b.wait_cqe());
    check_eq!((c.user_data, c.res), (0x77, 42));
    // FLAGS_PASS: the target CQE's flags come from the sender; CQE_SKIP: no CQE here.
    let msg = opcode::MsgRingData::new(Fd(b.fd), -5, 0x78).flags(opcode::MSG_RING_FLAGS_PASS).cqe_flags(0x40);
    check_eq!(res(&mut a, msg.build())?, 0);
    let c = check_ok!(b.wait_cqe());
    check_eq!((c.user_data, c.res, c.flags), (0x78, -5, 0x40));
    // Sending a fixed file: our slot 0 lands in b's slot 1.
    let [rd, wr] = pipe_fds()?;
    check_ok!(a.register_files(&[wr]));
    check_ok!(b.register_files(&[-1, -1]));
    check_eq!(res(&mut a, opcode::MsgRingSendFd::new(Fd(b.fd), 0, 2).user_data(0x79).build())?, 0);
    let c = check_ok!(b.wait_cqe());
    check_eq!((c.user_data, c.res), (0x79, 0));
    check_eq!(res(&mut b, opcode::Write::new(Fixed(1), b"sent".as_ptr(), 4).build())?, 4);
    let mut back = [0u8; 4];
    check_eq!(check_ok!(sys::read(rd, &mut back)), 4);
    check_eq!(&back, b"sent");
    check_eq!(res(&mut a, opcode::MsgRingData::new(Fd(rd), 0, 0).build())?, -EBADFD);
    close_all(&[rd, wr])
}

fn futex(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let word = AtomicU32::new(5);
    let addr: *const u32 = word.as_ptr();
    let flags = FUTEX2_SIZE_U32 | FUTEX2_PRIVATE;
    let mask = u64::from(FUTEX_BITSET_MATCH_ANY);
    check_eq!(res(&mut r, opcode::FutexWait::new(addr, 4, mask, flags).build())?, -EAGAIN);
    check_eq!(res(&mut r, opcode::FutexWake::new(addr, 1, mask, flags).build())?, 0);
    // A waiter parked in the ring, woken by a FUTEX_WAKE from the same ring.
    check!(r.push(&opcode::FutexWait::new(addr, 5, mask, flags).build().user_data(1)));
    check_ok!(r.submit());
    check!(r.peek_cqe().is_none(), "FUTEX_WAIT did not wait");
    let cqes = run::<2>(&mut r, &[opcode::FutexWake::new(addr, 10, mask, flags).build().user_data(2)])?;
    check_eq!((by_ud(&cqes, 1)?.res, by_ud(&cqes, 2)?.res), (0, 1));
    // FUTEX_WAITV: the second entry does not match, so it fails at once.
    let other = AtomicU32::new(1);
    let v = [
        FutexWaitv { val: 5, uaddr: addr as u64, flags, reserved: 0 },
        FutexWaitv { val: 2, uaddr: other.as_ptr() as u64, flags, reserved: 0 },
    ];
    check_eq!(res(&mut r, opcode::FutexWaitV::new(v.as_ptr(), 2).build())?, -EAGAIN);
    // Both match: it waits, and a wake on the second says index 1.
    let v = [v[0], FutexWaitv { val: 1, ..v[1] }];
    check!(r.push(&opcode::FutexWaitV::new(v.as_ptr(), 2).build().user_data(3)));
    check_ok!(r.submit());
    let cqes = run::<2>(&mut r, &[opcode::FutexWake::new(other.as_ptr(), 1, mask, flags).build().user_data(4)])?;
    check_eq!((by_ud(&cqes, 3)?.res, by_ud(&cqes, 4)?.res), (1, 1));
    Ok(())
}

fn waitid(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let pid = check_ok!(sys::fork());
    if pid == 0 {
        sys::exit(3);
    }
    let mut info = Siginfo([0; 128]);
    let wait = opcode::WaitId::new(P_PID, pid as i32, WEXITED).infop(info.0.as_mut_ptr());
    check_eq!(res(&mut r, wait.build())?, 0);
    let word = |at: usize| i32::from_ne_bytes([info.0[at], info.0[at + 1], info.0[at + 2], info.0[at + 3]]);
    // si_signo, si_code, si_pid, si_status.
    check_eq!((word(0), word(8), word(16), word(24)), (SIGCHLD, CLD_EXITED, pid as i32, 3));
    check_eq!(res(&mut r, opcode::WaitId::new(P_PID, pid as i32, WEXITED).build())?, -10); // ECHILD
    Ok(())
}

fn epoll(_: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    // SAFETY: epoll_create1(0) takes no pointers.
    let epfd = check_ok!(sys::ret(unsafe { sys::syscall1(NR_EPOLL_CREATE1, 0) })) as i32;
    let [rd, wr] = pipe_fds()?;
    let ev = EpollEvent { events: EPOLLIN, data: 0xabc };
    check_eq!(res(&mut r, opcode::EpollCtl::new(epfd, rd, EPOLL_CTL_ADD, &ev).build())?, 0);
    check_eq!(res(&mut r, opcode::EpollCtl::new(epfd, rd, EPOLL_CTL_ADD, &ev).build())?, -17); // EEXIST
    let mut events = [EpollEvent::default(); 4];
    // EPOLL_WAIT waits until the pipe is readable.
    check!(r.push(&opcode::EpollWait::new(Fd(epfd), events.as_mut_ptr(), 4).build().user_data(1)));
    check_ok!(r.submit());
    check!(r.peek_cqe().is_none(), "EPOLL_WAIT did not wait");
    check_ok!(sys::write(wr, b"e"));
    let [c] = reap::<1>(&mut r)?;
    check_eq!(c.res, 1);
    let (mask, data) = (events[0].events, events[0].data);
    check_eq!((mask & EPOLLIN, data), (EPOLLIN, 0xabc));
    close_all(&[rd, wr, epfd])
}

fn xattr(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let fd = create(ctx, "xattr")?;
    let p = ctx.path("xattr");
    let name = c"user.uringrs";
    let set = opcode::FSetXattr::new(Fd(fd), ptr(name), b"v1".as_ptr(), 2);
    check_eq!(res(&mut r, set.build())?, 0);
    let mut value = [0u8; 16];
    check_eq!(res(&mut r, opcode::FGetXattr::new(Fd(fd), ptr(name), value.as_mut_ptr(), 16).build())?, 2);
    check_eq!(&value[..2], b"v1");
    let set = opcode::SetXattr::new(ptr(name), b"v22".as_ptr(), ptr(p.as_cstr()), 3);
    check_eq!(res(&mut r, set.build())?, 0);
    let get = opcode::GetXattr::new(ptr(name), value.as_mut_ptr(), ptr(p.as_cstr()), 16);
    check_eq!(res(&mut r, get.build())?, 3);
    check_eq!(&value[..3], b"v22");
    // XATTR_CREATE on an existing name; a name that is not there.
    check_eq!(res(&mut r, set.flags(1).build())?, -17); // EEXIST
    let missing = opcode::FGetXattr::new(Fd(fd), c"user.none".as_ptr().cast(), value.as_mut_ptr(), 16);
    check_eq!(res(&mut r, missing.build())?, -61); // ENODATA
    close_all(&[fd])?;
    remove(ctx, "xattr")
}

fn advise(ctx: &Ctx) -> TestResult {
    let mut r = ring(8)?;
    let fd = create(ctx, "advise")?;
    check_eq!(res(&mut r, opcode::Fadvise::new(Fd(fd), 4096, POSIX_FADV_SEQUENTIAL).build())?, 0);
    check_eq!(res(&mut r, opcode::Fadvise::new(Fd(-1), 0, 0).build())?, -EBADF);
    let page = Page([1; 4096]);
    check_eq!(res(&mut r, opcode::Madvise::new(page.0.as_ptr(), 4096, MADV_NORMAL as i32).build())?, 0);
    check_eq!(res(&mut r, opcode::Madvise::new(page.0.as_ptr(), 4096, 12345).build())?, -22); // EINVAL
    close_all(&[fd])?;
    remove(ctx, "advise")
}
