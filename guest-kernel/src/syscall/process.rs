//! Process syscalls: ids, process groups, clone/fork/vfork, execve, exit, wait4 and
//! waitid, TLS, yielding.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::Ctx;
use crate::errno::*;
use crate::mm::uaccess;
use crate::mm::USER_END;
use crate::task::{self, current_process, exec, exit, sched, signal, with_mm, CloneArgs};
use crate::task::{CLONE_PARENT_SETTID, CLONE_SETTLS, CLONE_THREAD, CLONE_VFORK, CLONE_VM};

pub fn getpid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(current_process().pid))
}

pub fn gettid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(sched::current().tid))
}

pub fn getppid(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(current_process().ppid.load(Ordering::Relaxed)))
}

pub fn sched_yield(_: &mut Ctx) -> KResult<u64> {
    sched::yield_now();
    Ok(0)
}

pub fn set_tid_address(c: &mut Ctx) -> KResult<u64> {
    let me = sched::current();
    me.clear_child_tid.store(c.a[0], Ordering::Relaxed);
    Ok(u64::from(me.tid))
}

pub fn arch_prctl(c: &mut Ctx) -> KResult<u64> {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    let me = sched::current();
    match c.a[0] {
        ARCH_SET_FS => {
            if c.a[1] >= USER_END {
                return Err(EPERM);
            }
            me.fs_base.store(c.a[1], Ordering::Relaxed);
            crate::arch::switch::set_fs_base(c.a[1]);
            Ok(0)
        }
        ARCH_GET_FS => task::write_user(c.a[1], &me.fs_base.load(Ordering::Relaxed)).map(|()| 0),
        ARCH_SET_GS | ARCH_GET_GS => Err(EINVAL),
        _ => Err(EINVAL),
    }
}

fn do_clone(c: &mut Ctx, flags: u64, stack: u64, parent_tid: u64, child_tid: u64, tls: u64) -> KResult<u64> {
    const CSIGNAL: u64 = 0xff;
    const CLONE_SIGHAND: u64 = 0x800;
    if flags & CLONE_THREAD != 0 && (flags & CLONE_SIGHAND == 0 || flags & CLONE_VM == 0) {
        return Err(EINVAL);
    }
    if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
        return Err(EINVAL);
    }
    if flags & CSIGNAL > u64::from(signal::NSIG) {
        return Err(EINVAL);
    }
    if flags & CLONE_SETTLS != 0 && tls >= USER_END {
        return Err(EPERM);
    }
    let args = CloneArgs {
        flags,
        stack,
        tls: (flags & CLONE_SETTLS != 0).then_some(tls),
        child_tid,
        parent_tid,
    };
    let (tid, child) = task::clone_current(c.frame, &args)?;
    if flags & CLONE_VFORK != 0
        && let Some(child) = child {
            // The parent waits until the child execs or exits, as vfork promises.
            let _ = child.vfork_done.wait_until(None, || child.vfork_released.load(Ordering::Relaxed));
        }
    Ok(u64::from(tid))
}

pub fn clone(c: &mut Ctx) -> KResult<u64> {
    let [flags, stack, parent_tid, child_tid, tls, _] = c.a;
    // CLONE_PIDFD: the pidfd goes where parent_tid points (so not with
    // CLONE_PARENT_SETTID), and not for a thread.
    if flags & CLONE_PIDFD == 0 {
        return do_clone(c, flags, stack, parent_tid, child_tid, tls);
    }
    if flags & (CLONE_THREAD | CLONE_PARENT_SETTID) != 0 {
        return Err(EINVAL);
    }
    let tid = do_clone(c, flags & !CLONE_PIDFD, stack, 0, child_tid, tls)?;
    if let Some(child) = task::find_process(tid as u32) {
        let fd = install_pidfd(child, false)?;
        task::write_user(parent_tid, &(fd as i32))?;
    }
    Ok(tid)
}

pub fn fork(c: &mut Ctx) -> KResult<u64> {
    do_clone(c, u64::from(signal::SIGCHLD), 0, 0, 0, 0)
}

pub fn vfork(c: &mut Ctx) -> KResult<u64> {
    // The child borrows the parent's address space (and stack) until it execs or exits;
    // the parent sleeps meanwhile.
    do_clone(c, CLONE_VM | CLONE_VFORK | u64::from(signal::SIGCHLD), 0, 0, 0, 0)
}

/// Reads a NULL-terminated array of string pointers (argv, envp).
fn read_string_array(addr: u64) -> KResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    let mut total = 0;
    for i in 0.. {
        let ptr: u64 = task::read_user(addr + i * 8)?;
        if ptr == 0 {
            break;
        }
        let s = with_mm(|mm| uaccess::read_cstring(mm, ptr, 128 * 1024))?;
        total += s.len() + 1;
        if total > 128 * 1024 || i > 4096 {
            return Err(E2BIG);
        }
        out.push(s);
    }
    Ok(out)
}

pub fn execve(c: &mut Ctx) -> KResult<u64> {
    let path = with_mm(|mm| uaccess::read_path(mm, c.a[0]))?;
    let argv = read_string_array(c.a[1])?;
    let envp = read_string_array(c.a[2])?;
    let argv_refs: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let envp_refs: Vec<&[u8]> = envp.iter().map(Vec::as_slice).collect();
    let process = current_process();
    let cwd = process.cwd.lock().clone();
    let image = exec::load(&path, &cwd, &argv_refs, &envp_refs)?;
    // Point of no return: the other threads and the old image go, and with them every
    // io_uring request this task submitted (Linux: begin_new_exec's io_uring_task_cancel).
    if process.thread_count() > 1 {
        process.kill_other_threads();
    }
    crate::io_uring::tctx::task_cancel(&sched::current());
    let new = Arc::new(crate::sync::SpinLock::new(image.mm));
    new.lock().pt.activate();
    if let Some(old) = process.set_mm(new) {
        let files = old.lock().files_in(0, crate::mm::USER_END);
        drop(old);
        super::mm::writeback(files);
    }
    let closed = process.files.lock().close_on_exec();
    drop(closed);
    for a in process.sigactions.lock().iter_mut() {
        if a.handler != signal::SIG_IGN {
            *a = signal::SigAction::default();
        }
    }
    let me = sched::current();
    me.attrs.set_comm(image.name.as_bytes());
    process.attrs.exec();
    // A program that changes ids is not dumpable and loses the parent-death signal (as
    // Linux's commit_creds).
    if image.secure || image.cred.euid != image.cred.uid || image.cred.egid != image.cred.gid {
        process.attrs.dumpable.store(0, Ordering::Relaxed);
        process.attrs.pdeath_signal.store(0, Ordering::Relaxed);
    }
    crate::task::cred::commit(image.cred);
    *process.name.lock() = image.name;
    me.fs_base.store(0, Ordering::Relaxed);
    crate::arch::switch::set_fs_base(0);
    // SAFETY: the running task owns its FPU area; fresh state for the new program.
    unsafe { *me.fpu.get() = crate::arch::switch::FpuState::initial() };
    // SAFETY: as above.
    unsafe { (*me.fpu.get()).restore() };
    process.vfork_released.store(true, Ordering::Relaxed);
    process.vfork_done.wake_all();
    *c.frame = image.frame;
    Ok(0)
}

pub fn exit(c: &mut Ctx) -> KResult<u64> {
    task::exit_thread((c.int(0) & 0xff) << 8)
}

pub fn exit_group(c: &mut Ctx) -> KResult<u64> {
    let status = (c.int(0) & 0xff) << 8;
    current_process().begin_exit(status);
    task::exit_thread(status)
}

pub fn wait4(c: &mut Ctx) -> KResult<u64> {
    const VALID: u32 = exit::WNOHANG | exit::WSTOPPED | exit::WCONTINUED | exit::WNOTHREAD | exit::WALL | exit::WCLONE;
    let (pid, status_addr, options, rusage) = (c.int(0), c.a[1], c.a[2] as u32, c.a[3]);
    if options & !VALID != 0 {
        return Err(EINVAL);
    }
    let wo = exit::wait4_opts(pid, options)?;
    let Some(info) = exit::do_wait(&wo)? else { return Ok(0) };
    if status_addr != 0 {
        task::write_user(status_addr, &info.wstatus)?;
    }
    if rusage != 0 {
        write_rusage(rusage, info.cpu_ns)?;
    }
    Ok(u64::from(info.pid))
}

/// `waitid(idtype, id, infop, options, rusage)`. As Linux, the siginfo is written even
/// when nothing was found (zeroes) or the wait failed.
pub fn waitid(c: &mut Ctx) -> KResult<u64> {
    let (which, upid, infop, options, rusage) = (c.a[0] as u32, c.int(1), c.a[2], c.a[3] as u32, c.a[4]);
    let result = exit::waitid_prepare(which, upid, options).and_then(|wo| match exit::do_wait(&wo) {
        Ok(None) if wo.eagain => Err(EAGAIN),
        r => r,
    });
    let (signo, info) = match &result {
        Ok(Some(info)) => {
            if rusage != 0 {
                write_rusage(rusage, info.cpu_ns)?;
            }
            (signal::SIGCHLD as i32, *info)
        }
        _ => (0, exit::ChildInfo::default()),
    };
    if infop != 0 {
        exit::write_info(infop, signo, &info)?;
    }
    result.map(|_| 0)
}

/// `setpgid(pid, pgid)`: the caller or one of its children joins (or makes) a group.
pub fn setpgid(c: &mut Ctx) -> KResult<u64> {
    let (pid, pgid) = (c.int(0), c.int(1));
    if pgid < 0 {
        return Err(EINVAL);
    }
    let me = current_process();
    let target = if pid == 0 || pid as u32 == me.pid {
        Arc::clone(&me)
    } else {
        me.children.lock().iter().find(|ch| ch.pid as i32 == pid).cloned().ok_or(ESRCH)?
    };
    let pgid = if pgid == 0 { target.pid } else { pgid as u32 };
    // Joining a group that exists (a process of it), unless making its own.
    if pgid != target.pid && !task::all_processes().iter().any(|p| p.pgid.load(Ordering::Relaxed) == pgid) {
        return Err(EPERM);
    }
    target.pgid.store(pgid, Ordering::Relaxed);
    Ok(0)
}

/// `getpgid(pid)` (0: the caller).
pub fn getpgid(c: &mut Ctx) -> KResult<u64> {
    let pid = c.int(0);
    let p = if pid == 0 { current_process() } else { task::find_process(pid as u32).ok_or(ESRCH)? };
    Ok(u64::from(p.pgid.load(Ordering::Relaxed)))
}

pub fn getpgrp(_: &mut Ctx) -> KResult<u64> {
    Ok(u64::from(current_process().pgid.load(Ordering::Relaxed)))
}

/// `setsid()`: the caller leads a new session and group, without a controlling
/// terminal; EPERM when a group with its pid exists (it leads one already).
pub fn setsid(_: &mut Ctx) -> KResult<u64> {
    let me = current_process();
    if task::all_processes().iter().any(|p| p.pgid.load(Ordering::Relaxed) == me.pid) {
        return Err(EPERM);
    }
    me.pgid.store(me.pid, Ordering::Relaxed);
    me.sid.store(me.pid, Ordering::Relaxed);
    Ok(u64::from(me.pid))
}

/// `getsid(pid)` (0: the caller).
pub fn getsid(c: &mut Ctx) -> KResult<u64> {
    let pid = c.int(0);
    let p = if pid == 0 { current_process() } else { task::find_process(pid as u32).ok_or(ESRCH)? };
    Ok(u64::from(p.sid.load(Ordering::Relaxed)))
}

// --- pidfds and clone3 ---

const CLONE_PIDFD: u64 = 0x1000;
/// PIDFD_NONBLOCK is O_NONBLOCK; PIDFD_THREAD (O_EXCL) pidfds name a thread, which this
/// kernel does not offer (EINVAL).
const PIDFD_NONBLOCK: u64 = crate::fs::file::O_NONBLOCK as u64;

/// A new pidfd for `process` in the caller's table (always close-on-exec, as Linux).
fn install_pidfd(process: Arc<task::Process>, nonblock: bool) -> KResult<u64> {
    use crate::fs::file::{O_NONBLOCK, O_RDWR};
    let flags = O_RDWR | if nonblock { O_NONBLOCK } else { 0 };
    let f = crate::fs::OpenFile::new(crate::fs::pidfd::new(process), flags, alloc::string::String::from("anon_inode:[pidfd]"));
    super::fs::install(f, true)
}

pub fn pidfd_open(c: &mut Ctx) -> KResult<u64> {
    let (pid, flags) = (c.int(0), c.a[1]);
    if flags & !PIDFD_NONBLOCK != 0 || pid <= 0 {
        return Err(EINVAL);
    }
    let process = task::find_process(pid as u32).ok_or(ESRCH)?;
    install_pidfd(process, flags != 0)
}

/// pidfd_send_signal(pidfd, sig, info, flags): to the process (flags 0 or
/// PIDFD_SIGNAL_THREAD_GROUP) or its process group (PIDFD_SIGNAL_PROCESS_GROUP). With
/// `info`, its si_signo must be `sig`. A process that has exited is ESRCH.
pub fn pidfd_send_signal(c: &mut Ctx) -> KResult<u64> {
    const PIDFD_SIGNAL_THREAD_GROUP: u64 = 1 << 1;
    const PIDFD_SIGNAL_PROCESS_GROUP: u64 = 1 << 2;
    let (sig, info, flags) = (c.a[1] as u32, c.a[2], c.a[3]);
    if flags & !(PIDFD_SIGNAL_THREAD_GROUP | PIDFD_SIGNAL_PROCESS_GROUP) != 0 || flags.count_ones() > 1 {
        return Err(EINVAL);
    }
    let file = super::fs::file(c.int(0))?;
    let process = crate::fs::pidfd::process_of(&file).ok_or(EBADF)?;
    if sig > signal::NSIG {
        return Err(EINVAL);
    }
    if info != 0 {
        let signo: i32 = task::read_user(info)?;
        if signo != sig as i32 {
            return Err(EINVAL);
        }
    }
    if process.zombie.lock().is_some() {
        return Err(ESRCH);
    }
    if flags & PIDFD_SIGNAL_PROCESS_GROUP != 0 {
        return super::signal::send_group(process.pgid.load(Ordering::Relaxed), sig);
    }
    signal::may_send(&process, None, sig)?;
    if sig != 0 {
        signal::send(&process, sig);
    }
    Ok(0)
}

/// clone3(args, size): `struct clone_args` (64 bytes in its first version, 88 now; what
/// lies past the fields known here must be zero, E2BIG). The exit signal is a field of
/// its own, the stack is given by base and size, and CLONE_PIDFD puts a pidfd at
/// `pidfd`. set_tid (choosing the child's pid) and CLONE_INTO_CGROUP are not offered.
pub fn clone3(c: &mut Ctx) -> KResult<u64> {
    const VER0: u64 = 64;
    let (addr, size) = (c.a[0], c.a[1]);
    if size < VER0 {
        return Err(EINVAL);
    }
    if size > crate::mm::PAGE_SIZE {
        return Err(E2BIG);
    }
    let mut raw = alloc::vec![0u8; size as usize];
    task::copy_from_user(&mut raw, addr)?;
    let word = |i: usize| raw.get(i * 8..i * 8 + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    if raw.len() > 88 && raw[88..].iter().any(|&b| b != 0) {
        return Err(E2BIG);
    }
    let [flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls] = core::array::from_fn(word);
    let (set_tid_size, cgroup_flag) = (word(9), flags & (1 << 33));
    const CSIGNAL: u64 = 0xff;
    const CLONE_DETACHED: u64 = 0x400000;
    if flags & (CSIGNAL | CLONE_DETACHED) != 0 || exit_signal > u64::from(signal::NSIG) || set_tid_size != 0 || cgroup_flag != 0 {
        return Err(EINVAL);
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(EINVAL);
    }
    if flags & CLONE_PIDFD != 0 && flags & CLONE_THREAD != 0 {
        return Err(EINVAL);
    }
    let top = if stack == 0 { 0 } else { stack.checked_add(stack_size).ok_or(EINVAL)? };
    let tid = do_clone(c, (flags & !CLONE_PIDFD) | exit_signal, top, parent_tid, child_tid, tls)?;
    if flags & CLONE_PIDFD != 0
        && let Some(child) = task::find_process(tid as u32)
    {
        let fd = install_pidfd(child, false)?;
        task::write_user(pidfd, &(fd as i32))?;
    }
    Ok(tid)
}

// --- resource usage ---

/// Writes a `struct rusage` (144 bytes) holding `cpu_ns` of CPU time. The kernel does not
/// split CPU time into user and system time: all of it is reported as ru_utime. The
/// other fields (memory, faults, I/O counts) are not kept: 0.
fn write_rusage(addr: u64, cpu_ns: u64) -> KResult<()> {
    let mut words = [0u64; 18];
    words[0] = cpu_ns / 1_000_000_000;
    words[1] = cpu_ns % 1_000_000_000 / 1000;
    task::write_user(addr, &words)
}

/// getrusage(who, usage): RUSAGE_SELF (the process), RUSAGE_CHILDREN (the reaped
/// children, and theirs), RUSAGE_THREAD (the caller).
pub fn getrusage(c: &mut Ctx) -> KResult<u64> {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let me = sched::current();
    let cpu = match c.int(0) {
        RUSAGE_SELF => sched::process_cpu_ns(&me.process),
        RUSAGE_CHILDREN => me.process.attrs.reaped_cpu_ns.load(Ordering::Relaxed),
        RUSAGE_THREAD => sched::task_cpu_ns(&me),
        _ => return Err(EINVAL),
    };
    write_rusage(c.a[1], cpu).map(|()| 0)
}

/// times(buf): the process's and its reaped children's CPU time in clock ticks (100 a
/// second; all of it as user time, see `write_rusage`); returns the ticks since boot.
pub fn times(c: &mut Ctx) -> KResult<u64> {
    const NS_PER_TICK: u64 = 10_000_000;
    if c.a[0] != 0 {
        let p = current_process();
        let (own, children) = (sched::process_cpu_ns(&p), p.attrs.reaped_cpu_ns.load(Ordering::Relaxed));
        task::write_user(c.a[0], &[own / NS_PER_TICK, 0, children / NS_PER_TICK, 0])?;
    }
    Ok(crate::time::monotonic_ns() / NS_PER_TICK)
}
