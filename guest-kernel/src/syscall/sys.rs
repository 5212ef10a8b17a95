//! System information and limits: uname, getrandom, rlimits, CPU affinity.

use super::Ctx;
use crate::errno::*;
use crate::fs::IoBuf;
use crate::task;

pub fn uname(c: &mut Ctx) -> KResult<u64> {
    let mut buf = [0u8; 6 * 65];
    let fields: [&[u8]; 6] = [b"Linux", b"guest", b"6.1.0-uring-vmm", b"#1 SMP", b"x86_64", b"(none)"];
    for (i, f) in fields.iter().enumerate() {
        buf[i * 65..i * 65 + f.len()].copy_from_slice(f);
    }
    task::copy_to_user(c.a[0], &buf).map(|()| 0)
}

pub fn getrandom(c: &mut Ctx) -> KResult<u64> {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    let (addr, len, flags) = (c.a[0], c.a[1] as usize, c.a[2]);
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 || flags & (GRND_RANDOM | GRND_INSECURE) == (GRND_RANDOM | GRND_INSECURE) {
        return Err(EINVAL);
    }
    let len = len.min(0x1ff_ffff);
    let mut chunk = [0u8; 256];
    let mut done = 0;
    let mut buf = IoBuf::User { addr, len };
    while done < len {
        let n = (len - done).min(chunk.len());
        crate::random::fill(&mut chunk[..n]);
        buf.put(done, &chunk[..n])?;
        done += n;
    }
    Ok(len as u64)
}

const RLIM_INFINITY: u64 = u64::MAX;
const RLIMIT_STACK: u64 = 3;
const RLIMIT_NOFILE: u64 = 7;
const RLIMIT_MEMLOCK: u64 = 8;
const RLIM_NLIMITS: u64 = 16;

fn limit(resource: u64) -> [u64; 2] {
    match resource {
        RLIMIT_STACK => [8 << 20, RLIM_INFINITY],
        RLIMIT_NOFILE => {
            let soft = task::current_process().files.lock().limit() as u64;
            [soft, crate::fs::file::FD_LIMIT as u64]
        }
        RLIMIT_MEMLOCK => *task::current_process().memlock.lock(),
        _ => [RLIM_INFINITY, RLIM_INFINITY],
    }
}

pub fn getrlimit(c: &mut Ctx) -> KResult<u64> {
    if c.a[0] >= RLIM_NLIMITS {
        return Err(EINVAL);
    }
    task::write_user(c.a[1], &limit(c.a[0])).map(|()| 0)
}

/// Limits are fixed except RLIMIT_NOFILE's soft limit and RLIMIT_MEMLOCK (io_uring's
/// registered buffers); setting another one is accepted when it does not exceed the hard
/// limit, and has no further effect.
pub fn prlimit64(c: &mut Ctx) -> KResult<u64> {
    let (pid, resource, new, old) = (c.int(0), c.a[1], c.a[2], c.a[3]);
    if resource >= RLIM_NLIMITS {
        return Err(EINVAL);
    }
    if pid != 0 && task::find_process(pid as u32).is_none() {
        return Err(ESRCH);
    }
    if new != 0 {
        let [soft, hard]: [u64; 2] = task::read_user(new)?;
        if soft > hard || hard > limit(resource)[1] {
            return Err(if soft > hard { EINVAL } else { EPERM });
        }
        let old_value = limit(resource);
        if resource == RLIMIT_NOFILE {
            task::current_process().files.lock().set_limit(soft as usize);
        }
        if resource == RLIMIT_MEMLOCK {
            *task::current_process().memlock.lock() = [soft, hard];
        }
        if old != 0 {
            task::write_user(old, &old_value)?;
        }
        return Ok(0);
    }
    if old != 0 {
        task::write_user(old, &limit(resource))?;
    }
    Ok(0)
}

pub fn sched_getaffinity(c: &mut Ctx) -> KResult<u64> {
    let (pid, len, mask) = (c.int(0), c.a[1], c.a[2]);
    if pid < 0 || (pid != 0 && task::find_process(pid as u32).is_none() && task::find_task(pid as u32).is_none()) {
        return Err(ESRCH);
    }
    if len < 8 || len % 8 != 0 {
        return Err(EINVAL);
    }
    task::write_user(mask, &1u64).map(|()| 8)
}

pub fn set_robust_list(c: &mut Ctx) -> KResult<u64> {
    if c.a[1] != 24 {
        return Err(EINVAL);
    }
    Ok(0)
}

/// sysinfo: uptime, memory (in bytes: mem_unit 1), no swap, the number of tasks. The
/// load averages are 0: the kernel keeps none.
pub fn sysinfo(c: &mut Ctx) -> KResult<u64> {
    let (total, free) = crate::mm::frame::stats();
    let page = crate::mm::PAGE_SIZE;
    let procs = task::all_processes().iter().map(|p| p.thread_count()).sum::<usize>().min(usize::from(u16::MAX)) as u64;
    let mut words = [0u64; 14];
    // Seconds, rounded up as Linux does.
    words[0] = crate::time::monotonic_ns().div_ceil(1_000_000_000);
    words[4] = total * page;
    words[5] = free * page;
    words[10] = procs;
    words[13] = 1; // mem_unit
    task::write_user(c.a[0], &words).map(|()| 0)
}

const MEMBARRIER_CMD_QUERY: u64 = 0;
const MEMBARRIER_CMD_GLOBAL: u64 = 1 << 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: u64 = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: u64 = 1 << 2;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: u64 = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: u64 = 1 << 4;
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 1 << 5;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: u64 = 1 << 6;
const MEMBARRIER_CMD_GET_REGISTRATIONS: u64 = 1 << 9;
/// What QUERY reports: everything but the rseq commands (there is no rseq).
const MEMBARRIER_SUPPORTED: u64 = MEMBARRIER_CMD_GLOBAL
    | MEMBARRIER_CMD_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_GET_REGISTRATIONS;

/// membarrier(cmd, flags, cpu_id). On one CPU every other thread is off the CPU, and a
/// context switch is a full barrier (and serializes the core): the barrier itself is a
/// fence on the caller's side. The private commands need their registration (EPERM).
pub fn membarrier(c: &mut Ctx) -> KResult<u64> {
    use crate::task::attrs::{MEMBARRIER_GLOBAL_EXPEDITED, MEMBARRIER_PRIVATE_EXPEDITED, MEMBARRIER_SYNC_CORE};
    use core::sync::atomic::Ordering::{Relaxed, SeqCst};
    let (cmd, flags) = (c.a[0] as u32 as u64, c.a[1] as u32);
    if flags != 0 {
        return Err(EINVAL);
    }
    let regs = &task::current_process().attrs.membarrier;
    let registered = |bit: u32| -> KResult<u64> {
        if regs.load(Relaxed) & bit == 0 {
            return Err(EPERM);
        }
        core::sync::atomic::fence(SeqCst);
        Ok(0)
    };
    match cmd {
        MEMBARRIER_CMD_QUERY => Ok(MEMBARRIER_SUPPORTED),
        MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_GLOBAL_EXPEDITED => {
            core::sync::atomic::fence(SeqCst);
            Ok(0)
        }
        MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED => {
            regs.fetch_or(MEMBARRIER_GLOBAL_EXPEDITED, Relaxed);
            Ok(0)
        }
        MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED => {
            regs.fetch_or(MEMBARRIER_PRIVATE_EXPEDITED, Relaxed);
            Ok(0)
        }
        MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
            regs.fetch_or(MEMBARRIER_SYNC_CORE, Relaxed);
            Ok(0)
        }
        MEMBARRIER_CMD_PRIVATE_EXPEDITED => registered(MEMBARRIER_PRIVATE_EXPEDITED),
        MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE => registered(MEMBARRIER_SYNC_CORE),
        MEMBARRIER_CMD_GET_REGISTRATIONS => {
            let r = regs.load(Relaxed);
            let mut out = 0;
            for (bit, cmd) in [
                (MEMBARRIER_GLOBAL_EXPEDITED, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED),
                (MEMBARRIER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED),
                (MEMBARRIER_SYNC_CORE, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE),
            ] {
                if r & bit != 0 {
                    out |= cmd;
                }
            }
            Ok(out)
        }
        _ => Err(EINVAL),
    }
}
