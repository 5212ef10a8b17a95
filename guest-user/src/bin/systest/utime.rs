//! File timestamps: set at creation, moved by writes and directory changes, and set by
//! utimensat (given times, UTIME_NOW, UTIME_OMIT, through a descriptor, on a symlink
//! itself) and utimes; the errors.

use ulib::sys::{self, syscall2, syscall4};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    a_new_file_has_the_current_times,
    utimensat_sets_the_times_given,
    writing_moves_mtime_and_ctime,
    utime_omit_keeps_and_utime_now_sets,
    null_times_mean_now_and_a_null_path_the_fd,
    nofollow_sets_the_symlink_itself,
    creating_an_entry_moves_the_directorys_mtime,
    utimes_takes_microseconds,
    bad_times_flags_and_paths,
];

const NOW: i64 = (1 << 30) - 1;
const OMIT: i64 = (1 << 30) - 2;
const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: usize = 0x100;

fn utimensat(dirfd: i32, path: Option<&Path>, times: Option<&[Timespec; 2]>, flags: usize) -> ulib::errno::Result {
    let p = path.map_or(0, |p| p.as_cstr().as_ptr() as usize);
    let t = times.map_or(0, |t| t.as_ptr() as usize);
    // SAFETY: the kernel reads the path and the two timespecs.
    sys::ret(unsafe { syscall4(nr::UTIMENSAT, dirfd as usize, p, t, flags) })
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: nsec }
}

fn stat_of(path: &Path) -> Result<Stat, Failure> {
    let mut st = Stat::default();
    check_eq!(sys::lstat(path.as_cstr(), &mut st), Ok(0));
    Ok(st)
}

fn realtime() -> Timespec {
    let mut t = Timespec::default();
    let _ = sys::clock_gettime(CLOCK_REALTIME, &mut t);
    t
}

/// Whether `sec` is within a few seconds of `now`.
fn near(sec: i64, now: &Timespec) -> bool {
    (sec - now.tv_sec).abs() <= 5
}

fn a_new_file_has_the_current_times() -> TestResult {
    let now = realtime();
    let path = make_file("utime-new", b"x")?;
    let st = stat_of(&path)?;
    check!(near(st.st_mtime, &now) && near(st.st_ctime, &now) && near(st.st_atime, &now), "times {st:?} at {now:?}");
    Ok(())
}

fn utimensat_sets_the_times_given() -> TestResult {
    let path = make_file("utime-set", b"x")?;
    let now = realtime();
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(1000, 5), ts(2000, 7)]), 0), Ok(0));
    let st = stat_of(&path)?;
    check_eq!((st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec), (1000, 5, 2000, 7));
    // Setting times is a change: ctime is now.
    check!(near(st.st_ctime, &now), "ctime {}", st.st_ctime);
    Ok(())
}

fn writing_moves_mtime_and_ctime() -> TestResult {
    let path = make_file("utime-write", b"x")?;
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(1000, 0), ts(1000, 0)]), 0), Ok(0));
    let fd = check_ok!(sys::open(path.as_cstr(), O_WRONLY, 0)) as i32;
    check_eq!(sys::write(fd, b"more"), Ok(4));
    check_ok!(sys::close(fd));
    let (st, now) = (stat_of(&path)?, realtime());
    check!(near(st.st_mtime, &now) && near(st.st_ctime, &now), "after a write: {st:?}");
    check_eq!(st.st_atime, 1000);
    Ok(())
}

fn utime_omit_keeps_and_utime_now_sets() -> TestResult {
    let path = make_file("utime-omit", b"x")?;
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(1000, 0), ts(2000, 0)]), 0), Ok(0));
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(0, OMIT), ts(0, NOW)]), 0), Ok(0));
    let (st, now) = (stat_of(&path)?, realtime());
    check_eq!(st.st_atime, 1000);
    check!(near(st.st_mtime, &now), "mtime {}", st.st_mtime);
    // Both omitted: nothing happens, successfully.
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(5, OMIT), ts(5, OMIT)]), 0), Ok(0));
    Ok(())
}

fn null_times_mean_now_and_a_null_path_the_fd() -> TestResult {
    let path = make_file("utime-null", b"x")?;
    check_eq!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(1000, 0), ts(1000, 0)]), 0), Ok(0));
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_eq!(utimensat(fd, None, Some(&[ts(3000, 0), ts(4000, 0)]), 0), Ok(0));
    let st = stat_of(&path)?;
    check_eq!((st.st_atime, st.st_mtime), (3000, 4000));
    check_eq!(utimensat(fd, None, None, 0), Ok(0));
    let (st, now) = (stat_of(&path)?, realtime());
    check!(near(st.st_atime, &now) && near(st.st_mtime, &now), "{st:?}");
    check_ok!(sys::close(fd));
    Ok(())
}

fn nofollow_sets_the_symlink_itself() -> TestResult {
    let target = make_file("utime-target", b"x")?;
    let link = scratch("utime-link");
    let _ = sys::unlink(link.as_cstr());
    check_eq!(sys::symlink(target.as_cstr(), link.as_cstr()), Ok(0));
    check_eq!(utimensat(AT_FDCWD, Some(&target), Some(&[ts(1000, 0), ts(1000, 0)]), 0), Ok(0));
    check_eq!(utimensat(AT_FDCWD, Some(&link), Some(&[ts(7000, 0), ts(8000, 0)]), AT_SYMLINK_NOFOLLOW), Ok(0));
    check_eq!(stat_of(&link)?.st_mtime, 8000);
    check_eq!(stat_of(&target)?.st_mtime, 1000);
    // Following the link sets the target.
    check_eq!(utimensat(AT_FDCWD, Some(&link), Some(&[ts(9000, 0), ts(9000, 0)]), 0), Ok(0));
    check_eq!(stat_of(&target)?.st_mtime, 9000);
    check_ok!(sys::unlink(link.as_cstr()));
    Ok(())
}

fn creating_an_entry_moves_the_directorys_mtime() -> TestResult {
    let dir = scratch("utime-dir");
    let _ = sys::mkdir(dir.as_cstr(), 0o755);
    check_eq!(utimensat(AT_FDCWD, Some(&dir), Some(&[ts(1000, 0), ts(1000, 0)]), 0), Ok(0));
    let child = Path::from_fmt(format_args!("{}/entry", scratch("utime-dir")));
    let fd = check_ok!(sys::open(child.as_cstr(), O_CREAT | O_WRONLY, 0o644)) as i32;
    check_ok!(sys::close(fd));
    let (st, now) = (stat_of(&dir)?, realtime());
    check!(near(st.st_mtime, &now), "directory mtime {}", st.st_mtime);
    check_ok!(sys::unlink(child.as_cstr()));
    Ok(())
}

fn utimes_takes_microseconds() -> TestResult {
    let path = make_file("utimes", b"x")?;
    let tv = [Timeval { tv_sec: 1234, tv_usec: 5 }, Timeval { tv_sec: 5678, tv_usec: 9 }];
    // SAFETY: the kernel reads the path and the two timevals.
    let r = sys::ret(unsafe { syscall2(nr::UTIMES, path.as_cstr().as_ptr() as usize, tv.as_ptr() as usize) });
    check_eq!(r, Ok(0));
    let st = stat_of(&path)?;
    check_eq!((st.st_atime, st.st_atime_nsec, st.st_mtime, st.st_mtime_nsec), (1234, 5000, 5678, 9000));
    Ok(())
}

fn bad_times_flags_and_paths() -> TestResult {
    let path = make_file("utime-bad", b"x")?;
    check_err!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(0, 1_000_000_000), ts(0, 0)]), 0), EINVAL);
    check_err!(utimensat(AT_FDCWD, Some(&path), Some(&[ts(0, -1), ts(0, 0)]), 0), EINVAL);
    check_err!(utimensat(AT_FDCWD, Some(&path), None, 0x8000), EINVAL);
    let missing = scratch("utime-missing");
    check_err!(utimensat(AT_FDCWD, Some(&missing), None, 0), ENOENT);
    check_err!(utimensat(lowest_free_fd(3), None, None, 0), EBADF);
    Ok(())
}
