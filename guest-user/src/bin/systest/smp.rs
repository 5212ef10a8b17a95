//! Several CPUs: affinity (sched_setaffinity moves the caller, getcpu says where it
//! runs), and threads pinned one per CPU sharing futexes and a pipe at once. On one CPU
//! the tests still run (each pins to the only CPU); their point is the N-CPU case.

use core::sync::atomic::{AtomicU32, Ordering::SeqCst};

use ulib::sys::{self, syscall3};
use ulib::{check, check_eq, check_err, check_ok, nr, thread};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    setaffinity_moves_the_caller_to_each_cpu,
    setaffinity_without_an_online_cpu_is_einval,
    affinity_is_per_thread_and_inherited,
    pinned_threads_count_under_a_futex_lock,
    pinned_threads_pass_bytes_through_a_pipe,
];

fn getaffinity() -> Result<u64, Failure> {
    let mut mask = [0u8; 8];
    check_eq!(sys::sched_getaffinity(0, &mut mask), Ok(8));
    Ok(u64::from_le_bytes(mask))
}

fn getcpu() -> Result<u32, Failure> {
    let mut cpu = u32::MAX;
    // SAFETY: the kernel writes one u32 to `cpu`.
    check_ok!(sys::ret(unsafe { syscall3(nr::GETCPU, &raw mut cpu as usize, 0, 0) }));
    Ok(cpu)
}

/// The online CPUs (the caller's mask at start: nobody narrowed it), at most 64.
fn cpus() -> Result<u64, Failure> {
    getaffinity()
}

fn setaffinity_moves_the_caller_to_each_cpu() -> TestResult {
    let all = cpus()?;
    for cpu in (0..64).filter(|c| all & (1 << c) != 0) {
        check_eq!(sys::sched_setaffinity(0, 1 << cpu), Ok(0));
        check_eq!(getcpu()?, cpu);
        check_eq!(getaffinity()?, 1 << cpu);
    }
    check_eq!(sys::sched_setaffinity(0, all), Ok(0));
    check_eq!(getaffinity()?, all);
    Ok(())
}

fn setaffinity_without_an_online_cpu_is_einval() -> TestResult {
    let all = cpus()?;
    check!(all & (1 << 63) == 0, "CPU 63 is online");
    check_err!(sys::sched_setaffinity(0, 1 << 63), EINVAL);
    check_err!(sys::sched_setaffinity(0, 0), EINVAL);
    check_eq!(getaffinity()?, all);
    Ok(())
}

fn affinity_is_per_thread_and_inherited() -> TestResult {
    let all = cpus()?;
    let last = 63 - all.leading_zeros();
    check_eq!(sys::sched_setaffinity(0, 1 << last), Ok(0));
    // A thread starts with its creator's mask and may change its own alone.
    let t = check_ok!(thread::spawn(move || {
        let mut mask = [0u8; 8];
        if sys::sched_getaffinity(0, &mut mask) != Ok(8) || u64::from_le_bytes(mask) != 1 << last {
            return 1;
        }
        if sys::sched_setaffinity(0, all) != Ok(0) {
            return 2;
        }
        0
    }));
    let r = t.join();
    let mine = getaffinity()?;
    check_eq!(sys::sched_setaffinity(0, all), Ok(0));
    check_eq!(r, 0);
    check_eq!(mine, 1 << last);
    Ok(())
}

const ROUNDS: u32 = 2_000;

/// A futex lock word: 0 free, 1 taken, 2 taken with waiters (Drepper's mutex).
fn lock(word: &AtomicU32) {
    if word.compare_exchange(0, 1, SeqCst, SeqCst).is_ok() {
        return;
    }
    while word.swap(2, SeqCst) != 0 {
        let _ = sys::futex_wait(word, 2, None);
    }
}

fn unlock(word: &AtomicU32) {
    if word.swap(0, SeqCst) == 2 {
        let _ = sys::futex_wake(word, 1);
    }
}

/// One thread per online CPU, each pinned there, runs `f(cpu)`; all results must be 0.
fn on_every_cpu(f: fn(u32, usize) -> i32, arg: usize) -> TestResult {
    let all = cpus()?;
    let mut handles = [const { None }; 64];
    for cpu in (0..64u32).filter(|c| all & (1 << c) != 0) {
        handles[cpu as usize] = Some(check_ok!(thread::spawn(move || {
            if sys::sched_setaffinity(0, 1 << cpu) != Ok(0) {
                return 100;
            }
            f(cpu, arg)
        })));
    }
    for (cpu, h) in handles.into_iter().enumerate() {
        if let Some(h) = h {
            check_eq!((cpu, h.join()), (cpu, 0));
        }
    }
    Ok(())
}

fn pinned_threads_count_under_a_futex_lock() -> TestResult {
    // Shared by the threads: [lock word, counter, CPUs seen], leaked for their lifetime.
    static STATE: [AtomicU32; 3] = [const { AtomicU32::new(0) }; 3];
    for s in &STATE {
        s.store(0, SeqCst);
    }
    fn body(cpu: u32, _: usize) -> i32 {
        for _ in 0..ROUNDS {
            lock(&STATE[0]);
            // Not atomic on purpose: only the lock keeps increments from being lost.
            let v = STATE[1].load(SeqCst);
            STATE[1].store(v + 1, SeqCst);
            unlock(&STATE[0]);
        }
        let mut here = u32::MAX;
        // SAFETY: the kernel writes one u32.
        let _ = unsafe { syscall3(nr::GETCPU, &raw mut here as usize, 0, 0) };
        STATE[2].fetch_or(1 << (here % 32), SeqCst);
        if here == cpu { 0 } else { 1 }
    }
    on_every_cpu(body, 0)?;
    let n = cpus()?.count_ones();
    check_eq!(STATE[1].load(SeqCst), n * ROUNDS);
    check_eq!(STATE[2].load(SeqCst).count_ones(), n.min(32));
    Ok(())
}

fn pinned_threads_pass_bytes_through_a_pipe() -> TestResult {
    // Every thread writes its bytes into one pipe and reads as many back: with a pipe
    // smaller than the total, readers and writers on different CPUs wait for each other.
    // The sum of what was read must be the sum of what was written.
    static SUM_IN: AtomicU32 = AtomicU32::new(0);
    static SUM_OUT: AtomicU32 = AtomicU32::new(0);
    SUM_IN.store(0, SeqCst);
    SUM_OUT.store(0, SeqCst);
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    fn body(cpu: u32, fds: usize) -> i32 {
        let (r, w) = ((fds & 0xffff) as i32, (fds >> 16) as i32);
        let chunk = [cpu as u8 + 1; 512];
        let mut got = [0u8; 512];
        for _ in 0..100 {
            if sys::write(w, &chunk) != Ok(512) {
                return 1;
            }
            SUM_IN.fetch_add(512 * (cpu + 1), SeqCst);
            match sys::read(r, &mut got) {
                Ok(n) if n > 0 => {
                    SUM_OUT.fetch_add(got[..n].iter().map(|&b| u32::from(b)).sum::<u32>(), SeqCst);
                }
                _ => return 2,
            }
        }
        0
    }
    let r = on_every_cpu(body, (p[0] as usize) | (p[1] as usize) << 16);
    // Whatever is left in the pipe counts too.
    check_ok!(sys::close(p[1]));
    let mut rest = [0u8; 4096];
    loop {
        let n = check_ok!(sys::read(p[0], &mut rest));
        if n == 0 {
            break;
        }
        SUM_OUT.fetch_add(rest[..n].iter().map(|&b| u32::from(b)).sum::<u32>(), SeqCst);
    }
    check_ok!(sys::close(p[0]));
    r?;
    check_eq!(SUM_OUT.load(SeqCst), SUM_IN.load(SeqCst));
    Ok(())
}
