//! System calls: the raw `syscall0..6` and one typed wrapper per syscall.
//!
//! The x86-64 convention: number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`;
//! the `syscall` instruction overwrites `rcx` (return address) and `r11` (saved RFLAGS);
//! the result comes back in `rax`, `-4095..=-1` meaning `-errno`.
//!
//! The wrappers mirror the syscalls one to one (same arguments, out-parameters as `&mut`)
//! and return [`Result`]: the non-negative `rax`, or the [`Errno`]. They are safe where the
//! kernel can only touch memory the arguments lend it. To pass the kernel a bad pointer on
//! purpose, call `syscallN` directly.

use core::arch::{asm, naked_asm};
use core::ffi::{CStr, c_char};
use core::ptr;
use core::sync::atomic::AtomicU32;

use crate::errno::{Errno, Result};
use crate::nr;
use crate::uapi::*;

/// A syscall with six arguments: the one `syscall` instruction the library issues.
///
/// # Safety
/// The arguments must be valid for syscall `nr`: memory it reads or writes through them
/// must be the caller's to lend for that use.
#[inline(always)]
pub unsafe fn syscall6(
    nr: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
    a6: usize,
) -> isize {
    let ret: isize;
    // SAFETY: `syscall` changes rax, rcx, r11 and the memory the caller lent the kernel
    // (the caller's obligation); it does not touch our stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

// Fewer arguments: the kernel ignores the registers a syscall does not take, so these
// pass zeros through `syscall6`. Same safety contract.

/// A syscall without arguments.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall0(nr: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, 0, 0, 0, 0, 0, 0) }
}

/// A syscall with one argument.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall1(nr: usize, a1: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, a1, 0, 0, 0, 0, 0) }
}

/// A syscall with two arguments.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall2(nr: usize, a1: usize, a2: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, a1, a2, 0, 0, 0, 0) }
}

/// A syscall with three arguments.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(nr: usize, a1: usize, a2: usize, a3: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, a1, a2, a3, 0, 0, 0) }
}

/// A syscall with four arguments.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall4(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, a1, a2, a3, a4, 0, 0) }
}

/// A syscall with five arguments.
///
/// # Safety
/// As [`syscall6`].
#[inline(always)]
pub unsafe fn syscall5(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> isize {
    // SAFETY: the caller's obligation.
    unsafe { syscall6(nr, a1, a2, a3, a4, a5, 0) }
}

/// Converts a raw return value: shorthand for [`Errno::from_ret`].
#[inline]
pub fn ret(raw: isize) -> Result {
    Errno::from_ret(raw)
}

/// An optional `&T` as the pointer the kernel expects (NULL for `None`).
fn opt<T>(p: Option<&T>) -> usize {
    p.map_or(0, |r| r as *const T as usize)
}

/// An optional `&mut T` as the pointer the kernel expects (NULL for `None`).
fn opt_mut<T>(p: Option<&mut T>) -> usize {
    p.map_or(0, |r| r as *mut T as usize)
}

fn path(p: &CStr) -> usize {
    p.as_ptr() as usize
}

// ---- read and write -------------------------------------------------------------------

/// read(2).
pub fn read(fd: i32, buf: &mut [u8]) -> Result {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    ret(unsafe { syscall3(nr::READ, fd as usize, buf.as_mut_ptr() as usize, buf.len()) })
}

/// write(2).
pub fn write(fd: i32, buf: &[u8]) -> Result {
    // SAFETY: the kernel only reads buf.
    ret(unsafe { syscall3(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// readv(2).
pub fn readv(fd: i32, iov: &mut [IoVecMut<'_>]) -> Result {
    // SAFETY: each IoVecMut lends one writable buffer; the array itself is only read.
    ret(unsafe { syscall3(nr::READV, fd as usize, iov.as_mut_ptr() as usize, iov.len()) })
}

/// writev(2).
pub fn writev(fd: i32, iov: &[IoVec<'_>]) -> Result {
    // SAFETY: the kernel only reads the array and the buffers it describes.
    ret(unsafe { syscall3(nr::WRITEV, fd as usize, iov.as_ptr() as usize, iov.len()) })
}

/// preadv2(2) (preadv when `flags` is 0 and `offset` is not -1): read at `offset`, or at
/// the file position when it is -1, with RWF_* `flags`.
pub fn preadv2(fd: i32, iov: &mut [IoVecMut<'_>], offset: i64, flags: i32) -> Result {
    // SAFETY: each IoVecMut lends one writable buffer; the array itself is only read.
    ret(unsafe {
        syscall6(nr::PREADV2, fd as usize, iov.as_mut_ptr() as usize, iov.len(), offset as usize, 0, flags as usize)
    })
}

/// pwritev2(2), as [`preadv2`].
pub fn pwritev2(fd: i32, iov: &[IoVec<'_>], offset: i64, flags: i32) -> Result {
    // SAFETY: the kernel only reads the array and the buffers it describes.
    ret(unsafe { syscall6(nr::PWRITEV2, fd as usize, iov.as_ptr() as usize, iov.len(), offset as usize, 0, flags as usize) })
}

/// sendfile(2); `offset` (if any) is read and advanced by the kernel.
pub fn sendfile(out_fd: i32, in_fd: i32, offset: Option<&mut i64>, count: usize) -> Result {
    // SAFETY: the kernel reads and writes `offset` only.
    ret(unsafe { syscall4(nr::SENDFILE, out_fd as usize, in_fd as usize, opt_mut(offset), count) })
}

/// copy_file_range(2); the offsets (if any) are read and advanced by the kernel.
pub fn copy_file_range(
    fd_in: i32,
    off_in: Option<&mut i64>,
    fd_out: i32,
    off_out: Option<&mut i64>,
    len: usize,
    flags: u32,
) -> Result {
    // SAFETY: the kernel reads and writes the offsets only.
    ret(unsafe {
        syscall6(nr::COPY_FILE_RANGE, fd_in as usize, opt_mut(off_in), fd_out as usize, opt_mut(off_out), len, flags as usize)
    })
}

/// pread64(2): read at `offset` without moving the file offset.
pub fn pread64(fd: i32, buf: &mut [u8], offset: i64) -> Result {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    ret(unsafe {
        syscall4(
            nr::PREAD64,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            offset as usize,
        )
    })
}

/// pwrite64(2): write at `offset` without moving the file offset.
pub fn pwrite64(fd: i32, buf: &[u8], offset: i64) -> Result {
    // SAFETY: the kernel only reads buf.
    ret(unsafe {
        syscall4(
            nr::PWRITE64,
            fd as usize,
            buf.as_ptr() as usize,
            buf.len(),
            offset as usize,
        )
    })
}

/// lseek(2): returns the new offset.
pub fn lseek(fd: i32, offset: i64, whence: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall3(nr::LSEEK, fd as usize, offset as usize, whence as usize) })
}

// ---- file descriptors -----------------------------------------------------------------

/// open(2): returns the new fd.
pub fn open(p: &CStr, flags: i32, mode: u32) -> Result {
    // SAFETY: the kernel only reads the NUL-terminated path.
    ret(unsafe { syscall3(nr::OPEN, path(p), flags as usize, mode as usize) })
}

/// openat(2): like open, relative paths start at `dirfd` (or the cwd for [`AT_FDCWD`]).
pub fn openat(dirfd: i32, p: &CStr, flags: i32, mode: u32) -> Result {
    // SAFETY: the kernel only reads the NUL-terminated path.
    ret(unsafe {
        syscall4(
            nr::OPENAT,
            dirfd as usize,
            path(p),
            flags as usize,
            mode as usize,
        )
    })
}

/// close(2).
pub fn close(fd: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::CLOSE, fd as usize) })
}

/// dup(2): the lowest free fd, sharing `fd`'s open file.
pub fn dup(fd: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::DUP, fd as usize) })
}

/// dup2(2).
pub fn dup2(oldfd: i32, newfd: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::DUP2, oldfd as usize, newfd as usize) })
}

/// dup3(2): dup2 with flags (only `O_CLOEXEC`).
pub fn dup3(oldfd: i32, newfd: i32, flags: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall3(nr::DUP3, oldfd as usize, newfd as usize, flags as usize) })
}

/// fcntl(2) with an integer argument (`F_DUPFD`, `F_GETFD`, `F_SETFD`, `F_GETFL`, `F_SETFL`).
pub fn fcntl(fd: i32, cmd: i32, arg: usize) -> Result {
    // SAFETY: the commands above take no pointer.
    ret(unsafe { syscall3(nr::FCNTL, fd as usize, cmd as usize, arg) })
}

/// ioctl(2).
///
/// # Safety
/// `arg` must be what `request` expects: for a request that writes through a pointer,
/// memory of the right size that the caller owns.
pub unsafe fn ioctl(fd: i32, request: usize, arg: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall3(nr::IOCTL, fd as usize, request, arg) })
}

/// pipe(2): `fds[0]` is the read end, `fds[1]` the write end.
pub fn pipe(fds: &mut [i32; 2]) -> Result {
    // SAFETY: the kernel writes two ints into fds.
    ret(unsafe { syscall1(nr::PIPE, fds.as_mut_ptr() as usize) })
}

/// pipe2(2): pipe with `O_CLOEXEC`, `O_NONBLOCK`.
pub fn pipe2(fds: &mut [i32; 2], flags: i32) -> Result {
    // SAFETY: the kernel writes two ints into fds.
    ret(unsafe { syscall2(nr::PIPE2, fds.as_mut_ptr() as usize, flags as usize) })
}

/// eventfd2(2): a counter readable and writable as 8-byte integers.
pub fn eventfd2(initval: u32, flags: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::EVENTFD2, initval as usize, flags as usize) })
}

// ---- file metadata --------------------------------------------------------------------

/// stat(2).
pub fn stat(p: &CStr, st: &mut Stat) -> Result {
    // SAFETY: the kernel reads the path and writes one Stat.
    ret(unsafe { syscall2(nr::STAT, path(p), st as *mut Stat as usize) })
}

/// fstat(2).
pub fn fstat(fd: i32, st: &mut Stat) -> Result {
    // SAFETY: the kernel writes one Stat.
    ret(unsafe { syscall2(nr::FSTAT, fd as usize, st as *mut Stat as usize) })
}

/// lstat(2): stat that does not follow a final symlink.
pub fn lstat(p: &CStr, st: &mut Stat) -> Result {
    // SAFETY: the kernel reads the path and writes one Stat.
    ret(unsafe { syscall2(nr::LSTAT, path(p), st as *mut Stat as usize) })
}

/// newfstatat(2) (`fstatat` in libc).
pub fn newfstatat(dirfd: i32, p: &CStr, st: &mut Stat, flags: i32) -> Result {
    // SAFETY: the kernel reads the path and writes one Stat.
    ret(unsafe {
        syscall4(
            nr::NEWFSTATAT,
            dirfd as usize,
            path(p),
            st as *mut Stat as usize,
            flags as usize,
        )
    })
}

/// statx(2).
pub fn statx(dirfd: i32, p: &CStr, flags: i32, mask: u32, stx: &mut Statx) -> Result {
    // SAFETY: the kernel reads the path and writes one Statx.
    ret(unsafe {
        syscall5(
            nr::STATX,
            dirfd as usize,
            path(p),
            flags as usize,
            mask as usize,
            stx as *mut Statx as usize,
        )
    })
}

/// getdents64(2): fills `buf` with `linux_dirent64` records; returns the bytes used
/// (0 at the end of the directory). Decode with [`dirents`].
pub fn getdents64(fd: i32, buf: &mut [u8]) -> Result {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    ret(unsafe {
        syscall3(
            nr::GETDENTS64,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
        )
    })
}

/// ftruncate(2).
pub fn ftruncate(fd: i32, length: i64) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::FTRUNCATE, fd as usize, length as usize) })
}

/// fsync(2).
pub fn fsync(fd: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::FSYNC, fd as usize) })
}

/// fdatasync(2).
pub fn fdatasync(fd: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::FDATASYNC, fd as usize) })
}

/// umask(2): sets the file-creation mask; returns the old one.
pub fn umask(mask: u32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::UMASK, mask as usize) })
}

// ---- directories and names ------------------------------------------------------------

/// mkdir(2).
pub fn mkdir(p: &CStr, mode: u32) -> Result {
    // SAFETY: the kernel only reads the path.
    ret(unsafe { syscall2(nr::MKDIR, path(p), mode as usize) })
}

/// mkdirat(2).
pub fn mkdirat(dirfd: i32, p: &CStr, mode: u32) -> Result {
    // SAFETY: the kernel only reads the path.
    ret(unsafe { syscall3(nr::MKDIRAT, dirfd as usize, path(p), mode as usize) })
}

/// rmdir(2).
pub fn rmdir(p: &CStr) -> Result {
    // SAFETY: the kernel only reads the path.
    ret(unsafe { syscall1(nr::RMDIR, path(p)) })
}

/// unlink(2).
pub fn unlink(p: &CStr) -> Result {
    // SAFETY: the kernel only reads the path.
    ret(unsafe { syscall1(nr::UNLINK, path(p)) })
}

/// unlinkat(2): unlink, or rmdir with [`AT_REMOVEDIR`].
pub fn unlinkat(dirfd: i32, p: &CStr, flags: i32) -> Result {
    // SAFETY: the kernel only reads the path.
    ret(unsafe { syscall3(nr::UNLINKAT, dirfd as usize, path(p), flags as usize) })
}

/// rename(2).
pub fn rename(old: &CStr, new: &CStr) -> Result {
    // SAFETY: the kernel only reads the paths.
    ret(unsafe { syscall2(nr::RENAME, path(old), path(new)) })
}

/// renameat(2).
pub fn renameat(olddirfd: i32, old: &CStr, newdirfd: i32, new: &CStr) -> Result {
    // SAFETY: the kernel only reads the paths.
    ret(unsafe {
        syscall4(
            nr::RENAMEAT,
            olddirfd as usize,
            path(old),
            newdirfd as usize,
            path(new),
        )
    })
}

/// symlink(2): creates `linkpath` pointing at `target`.
pub fn symlink(target: &CStr, linkpath: &CStr) -> Result {
    // SAFETY: the kernel only reads the paths.
    ret(unsafe { syscall2(nr::SYMLINK, path(target), path(linkpath)) })
}

/// readlink(2): the target, not NUL-terminated; returns its length.
pub fn readlink(p: &CStr, buf: &mut [u8]) -> Result {
    // SAFETY: the kernel reads the path and writes at most buf.len() bytes.
    ret(unsafe { syscall3(nr::READLINK, path(p), buf.as_mut_ptr() as usize, buf.len()) })
}

// ---- memory ---------------------------------------------------------------------------

/// mmap(2): returns the address of the mapping.
///
/// # Safety
/// With `MAP_FIXED` the new mapping replaces whatever was at `addr`: that memory must not
/// be in use.
pub unsafe fn mmap(
    addr: usize,
    len: usize,
    prot: usize,
    flags: usize,
    fd: i32,
    offset: i64,
) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe {
        syscall6(
            nr::MMAP,
            addr,
            len,
            prot,
            flags,
            fd as usize,
            offset as usize,
        )
    })
}

/// munmap(2).
///
/// # Safety
/// Nothing may use the range afterwards.
pub unsafe fn munmap(addr: usize, len: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall2(nr::MUNMAP, addr, len) })
}

/// mprotect(2).
///
/// # Safety
/// Code that uses the range must not need more access than `prot` grants.
pub unsafe fn mprotect(addr: usize, len: usize, prot: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall3(nr::MPROTECT, addr, len, prot) })
}

/// madvise(2).
///
/// # Safety
/// `MADV_DONTNEED` discards the contents of private mappings: nothing may rely on them.
pub unsafe fn madvise(addr: usize, len: usize, advice: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall3(nr::MADVISE, addr, len, advice) })
}

/// brk(2): asks for the program break at `addr` (0 to query). The raw syscall never
/// fails: it returns the new break, or the old one if it refused.
///
/// # Safety
/// Lowering the break unmaps memory: nothing may use it afterwards.
pub unsafe fn brk(addr: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall1(nr::BRK, addr) })
}

// ---- processes and threads ------------------------------------------------------------

/// exit(2): ends the calling thread only.
pub fn exit(status: i32) -> ! {
    // SAFETY: no memory is passed; the thread does not come back.
    unsafe { syscall1(nr::EXIT, status as usize) };
    unreachable!("exit returned")
}

/// exit_group(2): ends every thread of the process.
pub fn exit_group(status: i32) -> ! {
    // SAFETY: no memory is passed; the process does not come back.
    unsafe { syscall1(nr::EXIT_GROUP, status as usize) };
    unreachable!("exit_group returned")
}

macro_rules! id_syscall {
    ($($name:ident => $nr:ident,)*) => {$(
        #[doc = concat!(stringify!($name), "(2).")]
        pub fn $name() -> Result {
            // SAFETY: no memory is passed.
            ret(unsafe { syscall0(nr::$nr) })
        }
    )*};
}

id_syscall! {
    getpid => GETPID,
    gettid => GETTID,
    getppid => GETPPID,
    getuid => GETUID,
    geteuid => GETEUID,
    getgid => GETGID,
    getegid => GETEGID,
    sched_yield => SCHED_YIELD,
}

/// setpgid(2).
pub fn setpgid(pid: i32, pgid: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::SETPGID, pid as usize, pgid as usize) })
}

/// fork(2): returns 0 in the child and the child's pid in the parent.
pub fn fork() -> Result {
    // SAFETY: the child runs on a copy of our memory, so both sides may continue here.
    ret(unsafe { syscall0(nr::FORK) })
}

/// vfork(2), returning the raw `rax` (convert with [`ret`]).
///
/// The child borrows the parent's memory *and stack* until it calls `execve` or `_exit`,
/// while the parent waits. This function therefore keeps its return address in a
/// register across the syscall (as libc does): the child's own calls reuse the stack
/// slot that held it.
///
/// # Safety
/// In the child, the caller may only call `execve` or `exit_group`/`exit`, and must not
/// return from the function that called `vfork`.
#[unsafe(naked)]
pub unsafe extern "C" fn vfork() -> isize {
    naked_asm!("pop rdx", "mov eax, {nr}", "syscall", "push rdx", "ret", nr = const nr::VFORK)
}

/// clone(2), x86-64 argument order: flags, new stack, parent_tid, child_tid, tls.
///
/// # Safety
/// With a new stack (`stack != 0`) the child cannot return into Rust code: use
/// [`crate::thread::spawn`]. With `CLONE_VM` and no new stack, both would share one stack.
/// The tid pointers must stay valid for as long as the kernel may write them.
pub unsafe fn clone(
    flags: u64,
    stack: usize,
    ptid: *mut u32,
    ctid: *mut u32,
    tls: usize,
) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe {
        syscall5(
            nr::CLONE,
            flags as usize,
            stack,
            ptid as usize,
            ctid as usize,
            tls,
        )
    })
}

/// execve(2): `argv` and `envp` are arrays of C strings ending in a null pointer.
pub fn execve(p: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Result {
    assert!(argv.last() == Some(&ptr::null()) && envp.last() == Some(&ptr::null()));
    // SAFETY: the kernel only reads the path and the two null-terminated arrays.
    ret(unsafe {
        syscall3(
            nr::EXECVE,
            path(p),
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
        )
    })
}

/// wait4(2) without rusage: returns the pid that changed state (0 with `WNOHANG` if none).
pub fn wait4(pid: i32, status: Option<&mut i32>, options: i32) -> Result {
    // SAFETY: the kernel writes at most one int into status.
    ret(unsafe {
        syscall4(
            nr::WAIT4,
            pid as usize,
            opt_mut(status),
            options as usize,
            0,
        )
    })
}

/// set_tid_address(2): returns the caller's tid.
///
/// # Safety
/// When the thread exits, the kernel writes 0 to `tidptr` (and futex-wakes it): it must
/// stay valid until then.
pub unsafe fn set_tid_address(tidptr: *mut u32) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall1(nr::SET_TID_ADDRESS, tidptr as usize) })
}

/// arch_prctl(2): `ARCH_SET_FS`/`ARCH_SET_GS` take a value, `ARCH_GET_*` a `*mut u64`.
///
/// # Safety
/// Setting FS changes what thread-local storage means for code that uses it; a get
/// writes 8 bytes at `addr`.
pub unsafe fn arch_prctl(code: usize, addr: usize) -> Result {
    // SAFETY: the caller's obligation.
    ret(unsafe { syscall2(nr::ARCH_PRCTL, code, addr) })
}

/// `waitid(idtype, id, infop, options, NULL)`.
pub fn waitid(idtype: i32, id: i32, infop: Option<&mut Siginfo>, options: i32) -> Result {
    // SAFETY: the kernel writes at most one siginfo_t into infop.
    ret(unsafe { syscall5(nr::WAITID, idtype as usize, id as usize, opt_mut(infop), options as usize, 0) })
}

/// `futex_waitv(waiters, nr, flags, timeout, clockid)`: the index of a woken futex.
pub fn futex_waitv(waiters: &[FutexWaitv], flags: u32, timeout: Option<&Timespec>, clockid: i32) -> Result {
    // SAFETY: the kernel reads the array and the timeout, and reads the words the entries
    // name, whatever addresses they hold (it writes only the node word of a FUTEX2_NUMA
    // entry, which the caller then owns).
    ret(unsafe {
        syscall5(
            nr::FUTEX_WAITV,
            waiters.as_ptr() as usize,
            waiters.len(),
            flags as usize,
            opt(timeout),
            clockid as usize,
        )
    })
}

/// futex2's `futex_wake(uaddr, mask, nr, flags)`; `uaddr` may be any address (the
/// kernel only names the futex with it). Not for FUTEX2_NUMA, which writes the node word.
pub fn futex2_wake(uaddr: usize, mask: u64, nr: i32, flags: u32) -> Result {
    // SAFETY: without FUTEX2_NUMA no memory is written; the kernel checks the address.
    ret(unsafe { syscall4(nr::FUTEX_WAKE, uaddr, mask as usize, nr as usize, flags as usize) })
}

/// futex2's `futex_wait(uaddr, val, mask, flags, timeout, clockid)`. Not for
/// FUTEX2_NUMA, which writes the node word.
pub fn futex2_wait(uaddr: usize, val: u64, mask: u64, flags: u32, timeout: Option<&Timespec>, clockid: i32) -> Result {
    // SAFETY: the kernel reads the word (checking the address) and the timeout.
    ret(unsafe {
        syscall6(nr::FUTEX_WAIT, uaddr, val as usize, mask as usize, flags as usize, opt(timeout), clockid as usize)
    })
}

/// futex(2) with `uaddr2 = val3 = 0`: enough for `FUTEX_WAIT` and `FUTEX_WAKE`.
pub fn futex(uaddr: &AtomicU32, op: i32, val: u32, timeout: Option<&Timespec>) -> Result {
    // SAFETY: the kernel reads (or compares) the word and reads the timeout.
    ret(unsafe {
        syscall6(
            nr::FUTEX,
            uaddr.as_ptr() as usize,
            op as usize,
            val as usize,
            opt(timeout),
            0,
            0,
        )
    })
}

/// Sleeps while `*uaddr == val` (until a wake, a signal or the relative `timeout`).
pub fn futex_wait(uaddr: &AtomicU32, val: u32, timeout: Option<&Timespec>) -> Result {
    futex(uaddr, FUTEX_WAIT, val, timeout)
}

/// Wakes up to `n` waiters on `uaddr`; returns how many woke.
pub fn futex_wake(uaddr: &AtomicU32, n: u32) -> Result {
    futex(uaddr, FUTEX_WAKE, n, None)
}

// ---- signals --------------------------------------------------------------------------

/// rt_sigaction(2) with the kernel's 8-byte signal set.
///
/// # Safety
/// A handler runs between any two instructions of the thread it interrupts: it must only
/// touch atomics or memory nothing else uses. With `SA_RESTORER`, `restorer` must be
/// [`restore_rt`].
pub unsafe fn rt_sigaction(
    sig: i32,
    act: Option<&SigAction>,
    old: Option<&mut SigAction>,
) -> Result {
    // SAFETY: the caller's obligation for the handler; the kernel reads act, writes old.
    ret(unsafe { syscall4(nr::RT_SIGACTION, sig as usize, opt(act), opt_mut(old), 8) })
}

/// The restorer of [`SigAction`]: the handler returns here, which calls `rt_sigreturn`.
///
/// # Safety
/// Only the kernel's signal frame may return into this.
#[unsafe(naked)]
pub unsafe extern "C" fn restore_rt() -> ! {
    naked_asm!("mov eax, {nr}", "syscall", "ud2", nr = const nr::RT_SIGRETURN)
}

/// rt_sigprocmask(2) with the kernel's 8-byte signal set.
pub fn rt_sigprocmask(how: i32, set: Option<&u64>, old: Option<&mut u64>) -> Result {
    // SAFETY: the kernel reads set and writes old.
    ret(unsafe { syscall4(nr::RT_SIGPROCMASK, how as usize, opt(set), opt_mut(old), 8) })
}

/// sigaltstack(2).
///
/// # Safety
/// The kernel writes signal frames into the new stack: the memory must stay reserved
/// for it while it is installed.
pub unsafe fn sigaltstack(ss: Option<&SigStack>, old: Option<&mut SigStack>) -> Result {
    // SAFETY: the caller's obligation for the stack; the kernel reads ss, writes old.
    ret(unsafe { syscall2(nr::SIGALTSTACK, opt(ss), opt_mut(old)) })
}

/// poll(2).
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> Result {
    // SAFETY: the kernel reads and writes `fds` only.
    ret(unsafe { syscall3(nr::POLL, fds.as_mut_ptr() as usize, fds.len(), timeout_ms as usize) })
}

/// ppoll(2) with the kernel's 8-byte signal set; the kernel writes the time left back
/// into `timeout`.
pub fn ppoll(fds: &mut [PollFd], timeout: Option<&mut Timespec>, mask: Option<&u64>) -> Result {
    // SAFETY: the kernel reads and writes `fds` and `timeout`, reads `mask`.
    ret(unsafe { syscall5(nr::PPOLL, fds.as_mut_ptr() as usize, fds.len(), opt_mut(timeout), opt(mask), 8) })
}

/// select(2); the kernel writes the ready fds back into the sets and the time left into
/// `timeout`.
pub fn select(
    nfds: i32,
    read: Option<&mut FdSet>,
    write: Option<&mut FdSet>,
    except: Option<&mut FdSet>,
    timeout: Option<&mut Timeval>,
) -> Result {
    // SAFETY: the kernel reads and writes the sets and the timeout only.
    ret(unsafe {
        syscall5(nr::SELECT, nfds as usize, opt_mut(read), opt_mut(write), opt_mut(except), opt_mut(timeout))
    })
}

/// timerfd_create(2).
pub fn timerfd_create(clock: i32, flags: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::TIMERFD_CREATE, clock as usize, flags as usize) })
}

/// timerfd_settime(2).
pub fn timerfd_settime(fd: i32, flags: i32, new: &Itimerspec, old: Option<&mut Itimerspec>) -> Result {
    // SAFETY: the kernel reads `new` and writes `old`.
    ret(unsafe { syscall4(nr::TIMERFD_SETTIME, fd as usize, flags as usize, new as *const _ as usize, opt_mut(old)) })
}

/// timerfd_gettime(2).
pub fn timerfd_gettime(fd: i32, cur: &mut Itimerspec) -> Result {
    // SAFETY: the kernel writes `cur`.
    ret(unsafe { syscall2(nr::TIMERFD_GETTIME, fd as usize, cur as *mut _ as usize) })
}

/// kill(2).
pub fn kill(pid: i32, sig: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall2(nr::KILL, pid as usize, sig as usize) })
}

/// tgkill(2): signals one thread.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall3(nr::TGKILL, tgid as usize, tid as usize, sig as usize) })
}

/// rt_sigpending(2): the blocked signals that are pending.
pub fn rt_sigpending(set: &mut u64) -> Result {
    // SAFETY: the kernel writes 8 bytes into set.
    ret(unsafe { syscall2(nr::RT_SIGPENDING, set as *mut u64 as usize, 8) })
}

/// rt_sigsuspend(2): waits under `mask` for a signal (always `EINTR`).
pub fn rt_sigsuspend(mask: &u64) -> Result {
    // SAFETY: the kernel reads mask.
    ret(unsafe { syscall2(nr::RT_SIGSUSPEND, mask as *const u64 as usize, 8) })
}

/// rt_sigtimedwait(2): takes a pending signal of `set`; returns its number.
pub fn rt_sigtimedwait(set: &u64, info: Option<&mut Siginfo>, timeout: Option<&Timespec>) -> Result {
    // SAFETY: the kernel reads set and timeout, writes one siginfo_t into info.
    ret(unsafe { syscall4(nr::RT_SIGTIMEDWAIT, set as *const u64 as usize, opt_mut(info), opt(timeout), 8) })
}

/// rt_sigqueueinfo(2): sends `sig` to process `pid` with `info`.
pub fn rt_sigqueueinfo(pid: i32, sig: i32, info: &Siginfo) -> Result {
    // SAFETY: the kernel reads info.
    ret(unsafe { syscall3(nr::RT_SIGQUEUEINFO, pid as usize, sig as usize, info as *const Siginfo as usize) })
}

/// rt_tgsigqueueinfo(2): sends `sig` to thread `tid` of `tgid` with `info`.
pub fn rt_tgsigqueueinfo(tgid: i32, tid: i32, sig: i32, info: &Siginfo) -> Result {
    // SAFETY: the kernel reads info.
    ret(unsafe { syscall4(nr::RT_TGSIGQUEUEINFO, tgid as usize, tid as usize, sig as usize, info as *const Siginfo as usize) })
}

/// signalfd4(2): a new signalfd (`fd` -1) or a new mask for signalfd `fd`.
pub fn signalfd4(fd: i32, mask: &u64, flags: i32) -> Result {
    // SAFETY: the kernel reads mask.
    ret(unsafe { syscall4(nr::SIGNALFD4, fd as usize, mask as *const u64 as usize, 8, flags as usize) })
}

/// signalfd(2): signalfd4 without flags.
pub fn signalfd(fd: i32, mask: &u64) -> Result {
    // SAFETY: the kernel reads mask.
    ret(unsafe { syscall3(nr::SIGNALFD, fd as usize, mask as *const u64 as usize, 8) })
}

/// pause(2): sleeps until a signal is delivered (always `EINTR`).
pub fn pause() -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall0(nr::PAUSE) })
}

// ---- time -----------------------------------------------------------------------------

/// setitimer(2).
pub fn setitimer(which: i32, new: Option<&Itimerval>, old: Option<&mut Itimerval>) -> Result {
    // SAFETY: the kernel reads new and writes old.
    ret(unsafe { syscall3(nr::SETITIMER, which as usize, opt(new), opt_mut(old)) })
}

/// getitimer(2).
pub fn getitimer(which: i32, cur: &mut Itimerval) -> Result {
    // SAFETY: the kernel writes cur.
    ret(unsafe { syscall2(nr::GETITIMER, which as usize, cur as *mut Itimerval as usize) })
}

/// alarm(2): the seconds the previous alarm had left.
pub fn alarm(seconds: u32) -> Result {
    // SAFETY: no memory is passed.
    ret(unsafe { syscall1(nr::ALARM, seconds as usize) })
}

/// clock_gettime(2).
pub fn clock_gettime(clock: i32, ts: &mut Timespec) -> Result {
    // SAFETY: the kernel writes one Timespec.
    ret(unsafe {
        syscall2(
            nr::CLOCK_GETTIME,
            clock as usize,
            ts as *mut Timespec as usize,
        )
    })
}

/// clock_getres(2).
pub fn clock_getres(clock: i32, ts: Option<&mut Timespec>) -> Result {
    // SAFETY: the kernel writes at most one Timespec.
    ret(unsafe { syscall2(nr::CLOCK_GETRES, clock as usize, opt_mut(ts)) })
}

/// gettimeofday(2) (the obsolete timezone argument is passed as NULL).
pub fn gettimeofday(tv: Option<&mut Timeval>) -> Result {
    // SAFETY: the kernel writes at most one Timeval.
    ret(unsafe { syscall2(nr::GETTIMEOFDAY, opt_mut(tv), 0) })
}

/// nanosleep(2).
pub fn nanosleep(req: &Timespec, rem: Option<&mut Timespec>) -> Result {
    // SAFETY: the kernel reads req and writes at most one Timespec into rem.
    ret(unsafe { syscall2(nr::NANOSLEEP, req as *const Timespec as usize, opt_mut(rem)) })
}

/// clock_nanosleep(2). The raw syscall returns `-errno` like the others (the libc
/// function returns the positive error instead).
pub fn clock_nanosleep(
    clock: i32,
    flags: i32,
    req: &Timespec,
    rem: Option<&mut Timespec>,
) -> Result {
    // SAFETY: the kernel reads req and writes at most one Timespec into rem.
    ret(unsafe {
        syscall4(
            nr::CLOCK_NANOSLEEP,
            clock as usize,
            flags as usize,
            req as *const Timespec as usize,
            opt_mut(rem),
        )
    })
}

// ---- system ---------------------------------------------------------------------------

/// uname(2).
pub fn uname(buf: &mut Utsname) -> Result {
    // SAFETY: the kernel writes one Utsname.
    ret(unsafe { syscall1(nr::UNAME, buf as *mut Utsname as usize) })
}

/// getrandom(2): returns how many bytes it wrote.
pub fn getrandom(buf: &mut [u8], flags: u32) -> Result {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    ret(unsafe {
        syscall3(
            nr::GETRANDOM,
            buf.as_mut_ptr() as usize,
            buf.len(),
            flags as usize,
        )
    })
}

/// prlimit64(2): reads and/or sets a resource limit of process `pid` (0: the caller).
pub fn prlimit64(
    pid: i32,
    resource: i32,
    new: Option<&Rlimit>,
    old: Option<&mut Rlimit>,
) -> Result {
    // SAFETY: the kernel reads new and writes old.
    ret(unsafe {
        syscall4(
            nr::PRLIMIT64,
            pid as usize,
            resource as usize,
            opt(new),
            opt_mut(old),
        )
    })
}

/// sched_setaffinity(2) with a mask of the first 64 CPUs.
pub fn sched_setaffinity(pid: i32, mask: u64) -> Result {
    // SAFETY: the kernel reads 8 bytes of `mask`.
    ret(unsafe { syscall3(nr::SCHED_SETAFFINITY, pid as usize, 8, &raw const mask as usize) })
}

/// sched_getaffinity(2). The raw syscall returns the size of the kernel's CPU mask in
/// bytes (the libc function returns 0).
pub fn sched_getaffinity(pid: i32, mask: &mut [u8]) -> Result {
    // SAFETY: the kernel writes at most mask.len() bytes into mask.
    ret(unsafe {
        syscall3(
            nr::SCHED_GETAFFINITY,
            pid as usize,
            mask.len(),
            mask.as_mut_ptr() as usize,
        )
    })
}
