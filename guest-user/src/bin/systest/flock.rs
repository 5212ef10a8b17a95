//! flock: advisory locks held by open file descriptions: exclusive against everyone
//! else, shared with other shared holders, shared by dup'ed descriptors, let go by
//! LOCK_UN or the last close, and waited for without LOCK_NB.

use ulib::sys::{self, syscall2};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    exclusive_lock_excludes_other_opens,
    shared_locks_coexist_but_exclude_exclusive,
    dup_shares_the_lock_and_last_close_drops_it,
    a_blocking_lock_waits_for_the_holder,
    bad_operations_are_einval_and_bad_fds_ebadf,
];

const LOCK_SH: usize = 1;
const LOCK_EX: usize = 2;
const LOCK_NB: usize = 4;
const LOCK_UN: usize = 8;

fn flock(fd: i32, op: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall2(nr::FLOCK, fd as usize, op) })
}

/// `n` separate opens (open file descriptions) of one scratch file.
fn opens<const N: usize>(name: &str) -> Result<[i32; N], Failure> {
    let path = make_file(name, b"locked")?;
    let mut fds = [-1; N];
    for fd in &mut fds {
        *fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    }
    Ok(fds)
}

fn close_all(fds: &[i32]) -> TestResult {
    for &fd in fds {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn exclusive_lock_excludes_other_opens() -> TestResult {
    let [a, b] = opens::<2>("flock-ex")?;
    check_eq!(flock(a, LOCK_EX), Ok(0));
    check_eq!(flock(a, LOCK_EX | LOCK_NB), Ok(0)); // again, by its holder
    check_err!(flock(b, LOCK_EX | LOCK_NB), EAGAIN);
    check_err!(flock(b, LOCK_SH | LOCK_NB), EAGAIN);
    check_eq!(flock(a, LOCK_UN), Ok(0));
    check_eq!(flock(b, LOCK_EX | LOCK_NB), Ok(0));
    check_eq!(flock(b, LOCK_UN), Ok(0));
    check_eq!(flock(b, LOCK_UN), Ok(0)); // nothing held: fine
    close_all(&[a, b])
}

fn shared_locks_coexist_but_exclude_exclusive() -> TestResult {
    let [a, b, c] = opens::<3>("flock-sh")?;
    check_eq!(flock(a, LOCK_SH), Ok(0));
    check_eq!(flock(b, LOCK_SH | LOCK_NB), Ok(0));
    check_err!(flock(c, LOCK_EX | LOCK_NB), EAGAIN);
    // A holder cannot upgrade while the other shares.
    check_err!(flock(a, LOCK_EX | LOCK_NB), EAGAIN);
    check_eq!(flock(b, LOCK_UN), Ok(0));
    check_eq!(flock(c, LOCK_EX | LOCK_NB), Ok(0));
    close_all(&[a, b, c])
}

fn dup_shares_the_lock_and_last_close_drops_it() -> TestResult {
    let [a, b] = opens::<2>("flock-dup")?;
    let a2 = check_ok!(sys::dup(a)) as i32;
    check_eq!(flock(a, LOCK_EX), Ok(0));
    // The dup is the same description: its LOCK_UN lets go.
    check_eq!(flock(a2, LOCK_UN), Ok(0));
    check_eq!(flock(b, LOCK_EX | LOCK_NB), Ok(0));
    check_eq!(flock(b, LOCK_UN), Ok(0));
    check_eq!(flock(a2, LOCK_EX), Ok(0));
    // Closing one of two descriptors keeps it; closing the last drops it.
    check_ok!(sys::close(a));
    check_err!(flock(b, LOCK_EX | LOCK_NB), EAGAIN);
    check_ok!(sys::close(a2));
    check_eq!(flock(b, LOCK_EX | LOCK_NB), Ok(0));
    close_all(&[b])
}

fn a_blocking_lock_waits_for_the_holder() -> TestResult {
    // The child locks through its own open and lets go 50 ms after saying so.
    let [fd, theirs] = opens::<2>("flock-wait")?;
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let (r, w) = (p[0], p[1]);
    let pid = fork_child(move || {
        if flock(theirs, LOCK_EX) != Ok(0) {
            return 1;
        }
        let said = now_ns();
        if sys::write(w, &said.to_ne_bytes()) != Ok(8) {
            return 2;
        }
        sleep_ms(50);
        status_if(flock(theirs, LOCK_UN), Ok(0))
    })?;
    check_ok!(sys::close(theirs));
    let mut said = [0u8; 8];
    check_eq!(sys::read(r, &mut said), Ok(8));
    check_eq!(flock(fd, LOCK_EX), Ok(0));
    let waited = now_ns() - i64::from_ne_bytes(said);
    check!(waited >= 40_000_000, "granted {waited} ns after the child took it");
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    close_all(&[fd, r, w])
}

fn bad_operations_are_einval_and_bad_fds_ebadf() -> TestResult {
    let [a] = opens::<1>("flock-bad")?;
    check_err!(flock(a, 0), EINVAL);
    check_err!(flock(a, LOCK_NB), EINVAL);
    check_err!(flock(a, 16), EINVAL);
    check_err!(flock(lowest_free_fd(3), LOCK_EX), EBADF);
    close_all(&[a])
}
