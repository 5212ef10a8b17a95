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

use crate::task::rlimit::{RLIMIT_CPU, RLIMIT_NOFILE, RLIM_NLIMITS};

/// `resource`'s limits in `p` (RLIMIT_NOFILE's soft one is the descriptor table's).
fn limit(p: &task::Process, resource: usize) -> [u64; 2] {
    let [soft, hard] = p.rlimits.get(resource);
    match resource {
        RLIMIT_NOFILE => [p.files.lock().limit() as u64, hard],
        _ => [soft, hard],
    }
}

pub fn getrlimit(c: &mut Ctx) -> KResult<u64> {
    let resource = usize::try_from(c.a[0]).ok().filter(|&r| r < RLIM_NLIMITS).ok_or(EINVAL)?;
    task::write_user(c.a[1], &limit(&task::current_process(), resource)).map(|()| 0)
}

pub fn setrlimit(c: &mut Ctx) -> KResult<u64> {
    let resource = usize::try_from(c.a[0]).ok().filter(|&r| r < RLIM_NLIMITS).ok_or(EINVAL)?;
    let new: [u64; 2] = task::read_user(c.a[1])?;
    set_limit(&task::current_process(), resource, new)
}

/// Sets `resource` of `p` as Linux's do_prlimit: EINVAL when soft exceeds hard, EPERM
/// for a hard limit raised without CAP_SYS_RESOURCE (or RLIMIT_NOFILE's past the table's
/// size, Linux's nr_open, 1024 here).
fn set_limit(p: &task::Process, resource: usize, [soft, hard]: [u64; 2]) -> KResult<u64> {
    if soft > hard {
        return Err(EINVAL);
    }
    if resource == RLIMIT_NOFILE && hard > crate::fs::file::FD_LIMIT as u64 {
        return Err(EPERM);
    }
    if hard > limit(p, resource)[1] && !task::cred::capable(task::cred::CAP_SYS_RESOURCE) {
        return Err(EPERM);
    }
    p.rlimits.set(resource, [soft, hard]);
    match resource {
        RLIMIT_NOFILE => p.files.lock().set_limit(soft as usize),
        RLIMIT_CPU => task::itimer::set_cpu_limit(p, [soft, hard]),
        _ => {}
    }
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)`: another process's limits too, for a caller whose
/// ids are all the target's (or with CAP_SYS_RESOURCE).
pub fn prlimit64(c: &mut Ctx) -> KResult<u64> {
    let (pid, new, old) = (c.int(0), c.a[2], c.a[3]);
    let resource = usize::try_from(c.a[1]).ok().filter(|&r| r < RLIM_NLIMITS).ok_or(EINVAL)?;
    let new = if new != 0 { Some(task::read_user::<[u64; 2]>(new)?) } else { None };
    let p = match pid {
        ..0 => return Err(ESRCH),
        0 => task::current_process(),
        pid => task::find_process(pid as u32).or_else(|| task::find_task(pid as u32).map(|t| t.process.clone())).ok_or(ESRCH)?,
    };
    if !core::ptr::eq(&*p, &*task::current_process()) {
        let me = task::cred::current();
        let them = p.threads().first().map_or_else(task::cred::Cred::root, |t| t.cred.lock().clone());
        let same = [them.uid, them.euid, them.suid].iter().all(|&u| u == me.uid) && [them.gid, them.egid, them.sgid].iter().all(|&g| g == me.gid);
        if !same && !me.capable(task::cred::CAP_SYS_RESOURCE) {
            return Err(EPERM);
        }
    }
    let before = limit(&p, resource);
    if let Some(new) = new {
        set_limit(&p, resource, new)?;
    }
    if old != 0 {
        task::write_user(old, &before)?;
    }
    Ok(0)
}

/// The thread `pid` names for the affinity calls (0: the caller).
fn affinity_target(pid: i32) -> KResult<alloc::sync::Arc<task::Task>> {
    match pid {
        0 => Ok(crate::task::sched::current()),
        p if p > 0 => task::find_task(p as u32).ok_or(ESRCH),
        _ => Err(ESRCH),
    }
}

/// `sched_getaffinity(pid, len, mask)`: the CPUs the thread may run on, as one 64-bit
/// word (the kernel's cpumask size: Linux returns that many bytes).
pub fn sched_getaffinity(c: &mut Ctx) -> KResult<u64> {
    let (pid, len, mask) = (c.int(0), c.a[1], c.a[2]);
    let t = affinity_target(pid)?;
    if len < 8 || len % 8 != 0 {
        return Err(EINVAL);
    }
    let cpus = t.affinity.load(core::sync::atomic::Ordering::Relaxed) & crate::arch::smp::online_mask();
    task::write_user(mask, &cpus).map(|()| 8)
}

/// `sched_setaffinity(pid, len, mask)`: bits past the first 64 are ignored, CPUs that
/// are not online dropped; none left is -EINVAL. A caller no longer allowed where it runs
/// moves at once.
pub fn sched_setaffinity(c: &mut Ctx) -> KResult<u64> {
    let (pid, len, mask) = (c.int(0), c.a[1] as usize, c.a[2]);
    let t = affinity_target(pid)?;
    let mut bytes = [0u8; 8];
    let n = len.min(8);
    task::copy_from_user(&mut bytes[..n], mask)?;
    let cpus = u64::from_le_bytes(bytes) & crate::arch::smp::online_mask();
    if cpus == 0 {
        return Err(EINVAL);
    }
    t.affinity.store(cpus, core::sync::atomic::Ordering::Relaxed);
    if cpus & (1 << crate::arch::cpu::index()) == 0 && alloc::sync::Arc::ptr_eq(&t, &crate::task::sched::current()) {
        // Back in the queue, where only an allowed CPU takes it (an idle one is kicked).
        crate::task::sched::schedule();
    }
    Ok(0)
}

/// `getcpu(cpu, node, cache)`: the CPU the caller runs on, and node 0.
pub fn getcpu(c: &mut Ctx) -> KResult<u64> {
    let (cpu, node) = (c.a[0], c.a[1]);
    if cpu != 0 {
        task::write_user(cpu, &(crate::arch::cpu::index() as u32))?;
    }
    if node != 0 {
        task::write_user(node, &0u32)?;
    }
    Ok(0)
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
