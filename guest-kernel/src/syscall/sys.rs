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
