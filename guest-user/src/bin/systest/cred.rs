//! Credentials: the set*id calls' rules for who may become whom, supplementary groups,
//! capabilities (capget, capset, what a change of uid does to them, setfsuid), and the
//! file systems honouring them: mode bits for owner, group and others, search permission
//! on every directory, sticky directories, chown and chmod rules, set-ID bits cleared by
//! chown and by an unprivileged write, access(2) with the real ids, exec permission,
//! kill's uid check, mount and setpriority needing capabilities. Each test that changes
//! ids does so in a child. Runs as root, on the host as in the guest.

use core::ffi::c_char;
use core::ptr;

use ulib::sys::{self, syscall1, syscall5};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    setresuid_to_a_user_drops_every_capability,
    a_saved_root_uid_can_come_back,
    setuid_and_setreuid_rules_without_privilege,
    setgroups_sorts_and_getgroups_reports,
    setfsuid_switches_file_access_only,
    mode_bits_by_owner_group_and_others,
    directories_need_search_and_write,
    sticky_directories_keep_others_files,
    chown_and_chmod_rules,
    chown_and_unprivileged_writes_clear_set_id_bits,
    access_checks_with_the_real_ids,
    exec_needs_execute_permission,
    capget_and_capset,
    kill_needs_a_matching_uid,
    mount_and_nice_need_capabilities,
    proc_status_shows_the_ids,
    sync_and_syncfs,
];

const USER: u32 = 1000;
const GROUP: u32 = 100;
const KEEP: usize = usize::MAX; // -1: leave the id as it is

const CAP_CHOWN: u32 = 0;
const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_KILL: u32 = 5;
const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SYS_ADMIN: u32 = 21;
const VERSION_3: u32 = 0x2008_0522;

fn call(nr: usize, a: [usize; 5]) -> ulib::errno::Result {
    // SAFETY: every call here passes integers, or pointers to live buffers the kernel
    // reads or writes within their sizes.
    sys::ret(unsafe { syscall5(nr, a[0], a[1], a[2], a[3], a[4]) })
}

fn setresuid(r: usize, e: usize, s: usize) -> ulib::errno::Result {
    call(nr::SETRESUID, [r, e, s, 0, 0])
}

fn setresgid(r: usize, e: usize, s: usize) -> ulib::errno::Result {
    call(nr::SETRESGID, [r, e, s, 0, 0])
}

fn getresuid() -> (u32, u32, u32) {
    let mut ids = [u32::MAX; 3];
    let p = ids.as_mut_ptr() as usize;
    let _ = call(nr::GETRESUID, [p, p + 4, p + 8, 0, 0]);
    (ids[0], ids[1], ids[2])
}

fn setgroups(groups: &[u32]) -> ulib::errno::Result {
    call(nr::SETGROUPS, [groups.len(), groups.as_ptr() as usize, 0, 0, 0])
}

/// Becomes `uid`/`gid` with supplementary `groups` for good (real, effective, saved).
fn become_user(uid: u32, gid: u32, groups: &[u32]) -> TestResult {
    check_eq!(setgroups(groups), Ok(0));
    check_eq!(setresgid(gid as usize, gid as usize, gid as usize), Ok(0));
    check_eq!(setresuid(uid as usize, uid as usize, uid as usize), Ok(0));
    Ok(())
}

/// (effective, permitted, inheritable) of thread `pid` (0: the caller).
fn capget(pid: i32) -> Result<(u64, u64, u64), Failure> {
    let mut hdr = [VERSION_3, pid as u32];
    let mut data = [0u32; 6];
    check_eq!(call(nr::CAPGET, [hdr.as_mut_ptr() as usize, data.as_mut_ptr() as usize, 0, 0, 0]), Ok(0));
    let join = |i: usize| u64::from(data[i]) | u64::from(data[i + 3]) << 32;
    Ok((join(0), join(1), join(2)))
}

fn capset(e: u64, p: u64, i: u64) -> ulib::errno::Result {
    let mut hdr = [VERSION_3, 0];
    let data = [e as u32, p as u32, i as u32, (e >> 32) as u32, (p >> 32) as u32, (i >> 32) as u32];
    call(nr::CAPSET, [hdr.as_mut_ptr() as usize, data.as_ptr() as usize, 0, 0, 0])
}

fn bit(cap: u32) -> u64 {
    1 << cap
}

fn path_in(dir: &Path, name: &str) -> Path {
    Path::from_fmt(format_args!("{dir}/{name}"))
}

fn chown(p: &Path, uid: usize, gid: usize) -> ulib::errno::Result {
    call(nr::CHOWN, [p.as_cstr().as_ptr() as usize, uid, gid, 0, 0])
}

fn chmod(p: &Path, mode: u32) -> ulib::errno::Result {
    call(nr::CHMOD, [p.as_cstr().as_ptr() as usize, mode as usize, 0, 0, 0])
}

fn stat_of(p: &Path) -> Result<Stat, Failure> {
    let mut st = Stat::default();
    check_eq!(sys::stat(p.as_cstr(), &mut st), Ok(0));
    Ok(st)
}

/// A fresh directory `name` in the scratch directory with `mode`, owned by `uid`/`gid`.
fn dir_as(name: &str, mode: u32, uid: u32, gid: u32) -> Result<Path, Failure> {
    let p = scratch(name);
    check_eq!(sys::mkdir(p.as_cstr(), 0o700), Ok(0));
    check_eq!(chown(&p, uid as usize, gid as usize), Ok(0));
    check_eq!(chmod(&p, mode), Ok(0));
    Ok(p)
}

/// A file `name` in `dir` holding "data", with `mode`, owned by `uid`/`gid`.
fn file_as(dir: &Path, name: &str, mode: u32, uid: u32, gid: u32) -> Result<Path, Failure> {
    let p = path_in(dir, name);
    let fd = check_ok!(sys::open(p.as_cstr(), O_CREAT | O_WRONLY | O_TRUNC, 0o600)) as i32;
    check_eq!(sys::write(fd, b"data"), Ok(4));
    check_ok!(sys::close(fd));
    check_eq!(chown(&p, uid as usize, gid as usize), Ok(0));
    check_eq!(chmod(&p, mode), Ok(0));
    Ok(p)
}

/// Opens `p` with `flags` and closes it again: the open's result.
fn try_open(p: &Path, flags: i32) -> ulib::errno::Result {
    let fd = sys::open(p.as_cstr(), flags, 0o644)?;
    let _ = sys::close(fd as i32);
    Ok(0)
}

fn setresuid_to_a_user_drops_every_capability() -> TestResult {
    check_eq!(getresuid(), (0, 0, 0));
    let (e, p, _) = capget(0)?;
    let wanted = bit(CAP_CHOWN) | bit(CAP_DAC_OVERRIDE) | bit(CAP_KILL) | bit(CAP_SETGID) | bit(CAP_SETUID) | bit(CAP_SYS_ADMIN);
    check!(e & wanted == wanted && p & wanted == wanted, "root's capabilities {e:#x} {p:#x}");
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        check_eq!(getresuid(), (USER, USER, USER));
        // SAFETY: no memory is passed.
        check_eq!(sys::ret(unsafe { syscall1(nr::GETUID, 0) }), Ok(USER as usize));
        // SAFETY: as above.
        check_eq!(sys::ret(unsafe { syscall1(nr::GETEGID, 0) }), Ok(GROUP as usize));
        check_eq!(capget(0)?, (0, 0, 0));
        check_err!(setresuid(0, 0, 0), EPERM);
        check_err!(setresuid(KEEP, 0, KEEP), EPERM);
        check_err!(setgroups(&[]), EPERM);
        Ok(())
    })
}

fn a_saved_root_uid_can_come_back() -> TestResult {
    let dir = dir_as("cred-saved", 0o755, 0, 0)?;
    let secret = file_as(&dir, "secret", 0o600, 0, 0)?;
    in_child(|| {
        // The saved uid stays 0: the permitted set stays, the effective one goes.
        check_eq!(setresuid(USER as usize, USER as usize, 0), Ok(0));
        let (e, p, _) = capget(0)?;
        check!(e == 0 && p & bit(CAP_SETUID) != 0, "caps after seteuid {e:#x} {p:#x}");
        check_err!(try_open(&secret, O_RDONLY), EACCES);
        check_eq!(setresuid(KEEP, 0, KEEP), Ok(0));
        check_eq!(getresuid(), (USER, 0, 0));
        let (e2, p2, _) = capget(0)?;
        check_eq!(e2, p2);
        check_eq!(try_open(&secret, O_RDONLY), Ok(0));
        Ok(())
    })
}

fn setuid_and_setreuid_rules_without_privilege() -> TestResult {
    in_child(|| {
        check_eq!(setresuid(1000, 2000, 3000), Ok(0));
        // setuid: the effective uid to the real or saved one only.
        check_eq!(call(nr::SETUID, [3000, 0, 0, 0, 0]), Ok(0));
        check_eq!(getresuid(), (1000, 3000, 3000));
        check_eq!(call(nr::SETUID, [1000, 0, 0, 0, 0]), Ok(0));
        check_eq!(getresuid(), (1000, 1000, 3000));
        check_err!(call(nr::SETUID, [4000, 0, 0, 0, 0]), EPERM);
        check_err!(call(nr::SETUID, [KEEP, 0, 0, 0, 0]), EINVAL);
        // setreuid: the saved uid follows a new effective uid other than the real one.
        check_eq!(call(nr::SETREUID, [KEEP, 3000, 0, 0, 0]), Ok(0));
        check_eq!(getresuid(), (1000, 3000, 3000));
        check_eq!(call(nr::SETREUID, [3000, 1000, 0, 0, 0]), Ok(0));
        check_eq!(getresuid(), (3000, 1000, 1000));
        check_err!(call(nr::SETREUID, [2000, KEEP, 0, 0, 0]), EPERM);
        check_err!(setresuid(KEEP, 2000, KEEP), EPERM);
        Ok(())
    })
}

fn setgroups_sorts_and_getgroups_reports() -> TestResult {
    in_child(|| {
        check_eq!(setgroups(&[7, 3, 5]), Ok(0));
        check_eq!(call(nr::GETGROUPS, [0, 0, 0, 0, 0]), Ok(3));
        let mut got = [0u32; 4];
        check_eq!(call(nr::GETGROUPS, [4, got.as_mut_ptr() as usize, 0, 0, 0]), Ok(3));
        check_eq!(&got[..3], &[3, 5, 7]);
        check_err!(call(nr::GETGROUPS, [2, got.as_mut_ptr() as usize, 0, 0, 0]), EINVAL);
        check_err!(call(nr::GETGROUPS, [usize::MAX, got.as_mut_ptr() as usize, 0, 0, 0]), EINVAL);
        check_err!(call(nr::SETGROUPS, [65537, got.as_ptr() as usize, 0, 0, 0]), EINVAL);
        check_err!(call(nr::SETGROUPS, [1, UNMAPPED_ADDR, 0, 0, 0]), EFAULT);
        check_eq!(setgroups(&[]), Ok(0));
        check_eq!(call(nr::GETGROUPS, [0, 0, 0, 0, 0]), Ok(0));
        Ok(())
    })
}

fn setfsuid_switches_file_access_only() -> TestResult {
    let dir = dir_as("cred-fsuid", 0o755, 0, 0)?;
    let secret = file_as(&dir, "secret", 0o600, 0, 0)?;
    in_child(|| {
        check_eq!(call(nr::SETFSUID, [USER as usize, 0, 0, 0, 0]), Ok(0));
        // An invalid id only asks: the old value comes back.
        check_eq!(call(nr::SETFSUID, [KEEP, 0, 0, 0, 0]), Ok(USER as usize));
        check_eq!(getresuid(), (0, 0, 0));
        check_err!(try_open(&secret, O_RDONLY), EACCES);
        let (e, _, _) = capget(0)?;
        check!(e & bit(CAP_DAC_OVERRIDE) == 0 && e & bit(CAP_SETUID) != 0, "caps with fsuid 1000: {e:#x}");
        check_eq!(call(nr::SETFSUID, [0, 0, 0, 0, 0]), Ok(USER as usize));
        check_eq!(try_open(&secret, O_RDONLY), Ok(0));
        Ok(())
    })
}

fn mode_bits_by_owner_group_and_others() -> TestResult {
    let dir = dir_as("cred-modes", 0o755, 0, 0)?;
    let owner = file_as(&dir, "owner", 0o600, USER, 0)?;
    let group = file_as(&dir, "group", 0o060, 0, GROUP)?;
    let supplementary = file_as(&dir, "supp", 0o040, 0, 200)?;
    let other = file_as(&dir, "other", 0o006, 0, 0)?;
    // The owner's class decides for the owner, even when others may do more.
    let owner_denied = file_as(&dir, "owner-denied", 0o066, USER, 0)?;
    let group_denied = file_as(&dir, "group-denied", 0o406, 0, GROUP)?;
    in_child(|| {
        become_user(USER, GROUP, &[200])?;
        check_eq!(try_open(&owner, O_RDWR), Ok(0));
        check_eq!(try_open(&group, O_RDWR), Ok(0));
        check_eq!(try_open(&supplementary, O_RDONLY), Ok(0));
        check_err!(try_open(&supplementary, O_WRONLY), EACCES);
        check_eq!(try_open(&other, O_RDWR), Ok(0));
        check_err!(try_open(&owner_denied, O_RDONLY), EACCES);
        check_err!(try_open(&group_denied, O_RDONLY), EACCES);
        // O_TRUNC needs write permission even with O_RDONLY.
        check_err!(try_open(&supplementary, O_RDONLY | O_TRUNC), EACCES);
        check_eq!(stat_of(&owner)?.st_uid, USER);
        Ok(())
    })
}

fn directories_need_search_and_write() -> TestResult {
    let dir = dir_as("cred-dirs", 0o777, 0, 0)?;
    let closed = path_in(&dir, "closed");
    check_eq!(sys::mkdir(closed.as_cstr(), 0o700), Ok(0));
    let hidden = file_as(&closed, "f", 0o644, 0, 0)?;
    let ro = path_in(&dir, "ro");
    check_eq!(sys::mkdir(ro.as_cstr(), 0o755), Ok(0));
    let kept = file_as(&ro, "kept", 0o666, USER, GROUP)?;
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        let mut st = Stat::default();
        check_err!(sys::stat(hidden.as_cstr(), &mut st), EACCES);
        check_err!(try_open(&hidden, O_RDONLY), EACCES);
        check_err!(try_open(&closed, O_RDONLY | O_DIRECTORY), EACCES);
        check_err!(try_open(&path_in(&ro, "new"), O_CREAT | O_WRONLY), EACCES);
        check_err!(sys::mkdir(path_in(&ro, "d").as_cstr(), 0o755), EACCES);
        check_err!(sys::unlink(kept.as_cstr()), EACCES);
        check_err!(sys::rename(kept.as_cstr(), path_in(&dir, "moved").as_cstr()), EACCES);
        // The file itself is writable: only its directory is not.
        check_eq!(try_open(&kept, O_WRONLY), Ok(0));
        // A file made in a writable directory is the maker's.
        let mine = path_in(&dir, "mine");
        check_eq!(try_open(&mine, O_CREAT | O_WRONLY), Ok(0));
        let st = stat_of(&mine)?;
        check_eq!((st.st_uid, st.st_gid), (USER, GROUP));
        check_eq!(sys::mkdir(path_in(&dir, "mydir").as_cstr(), 0o755), Ok(0));
        check_eq!(stat_of(&path_in(&dir, "mydir"))?.st_uid, USER);
        Ok(())
    })
}

fn sticky_directories_keep_others_files() -> TestResult {
    let dir = dir_as("cred-sticky", 0o1777, 0, 0)?;
    let theirs = file_as(&dir, "theirs", 0o666, 0, 0)?;
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        let mine = path_in(&dir, "mine");
        check_eq!(try_open(&mine, O_CREAT | O_WRONLY), Ok(0));
        check_err!(sys::unlink(theirs.as_cstr()), EPERM);
        check_err!(sys::rename(theirs.as_cstr(), path_in(&dir, "x").as_cstr()), EPERM);
        // Replacing someone else's file by rename is a removal too.
        check_err!(sys::rename(mine.as_cstr(), theirs.as_cstr()), EPERM);
        check_eq!(try_open(&theirs, O_WRONLY), Ok(0));
        check_eq!(sys::unlink(mine.as_cstr()), Ok(0));
        Ok(())
    })?;
    check_eq!(sys::unlink(theirs.as_cstr()), Ok(0));
    Ok(())
}

fn chown_and_chmod_rules() -> TestResult {
    let dir = dir_as("cred-chown", 0o755, 0, 0)?;
    let mine = file_as(&dir, "mine", 0o644, USER, GROUP)?;
    let roots = file_as(&dir, "roots", 0o644, 0, 0)?;
    let link = path_in(&dir, "link");
    check_eq!(sys::symlink(c"mine", link.as_cstr()), Ok(0));
    // lchown changes the link, not its target.
    check_eq!(call(nr::LCHOWN, [link.as_cstr().as_ptr() as usize, 42, 43, 0, 0]), Ok(0));
    let mut st = Stat::default();
    check_eq!(sys::lstat(link.as_cstr(), &mut st), Ok(0));
    check_eq!((st.st_uid, st.st_gid), (42, 43));
    check_eq!(stat_of(&mine)?.st_uid, USER);
    in_child(|| {
        become_user(USER, GROUP, &[200])?;
        check_err!(chown(&mine, 0, KEEP), EPERM);
        check_err!(chown(&mine, KEEP, 300), EPERM);
        check_eq!(chown(&mine, KEEP, 200), Ok(0));
        check_eq!(chown(&mine, USER as usize, KEEP), Ok(0)); // its own uid: no change
        check_eq!(stat_of(&mine)?.st_gid, 200);
        check_err!(chown(&roots, KEEP, 200), EPERM);
        let fd = check_ok!(sys::open(mine.as_cstr(), O_RDONLY, 0)) as i32;
        check_eq!(call(nr::FCHOWN, [fd as usize, KEEP, GROUP as usize, 0, 0]), Ok(0));
        check_ok!(sys::close(fd));
        // chmod: the owner only; a group the caller is not in loses set-group-ID.
        check_err!(chmod(&roots, 0o666), EPERM);
        check_eq!(chown(&mine, KEEP, 200), Ok(0));
        Ok(())
    })?;
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        check_eq!(chmod(&mine, 0o2755), Ok(0)); // group 200: not the caller's
        check_eq!(stat_of(&mine)?.st_mode & 0o7777, 0o755);
        Ok(())
    })?;
    // fchownat on the descriptor itself (AT_EMPTY_PATH).
    let fd = check_ok!(sys::open(mine.as_cstr(), O_RDONLY, 0)) as i32;
    check_eq!(call(nr::FCHOWNAT, [fd as usize, c"".as_ptr() as usize, 7, 8, 0x1000]), Ok(0));
    check_ok!(sys::close(fd));
    let st = stat_of(&mine)?;
    check_eq!((st.st_uid, st.st_gid), (7, 8));
    check_err!(call(nr::FCHOWNAT, [AT_FDCWD as usize, mine.as_cstr().as_ptr() as usize, 7, 8, 0x4]), EINVAL);
    Ok(())
}

const AT_FDCWD: i32 = -100;

fn chown_and_unprivileged_writes_clear_set_id_bits() -> TestResult {
    let dir = dir_as("cred-setid", 0o755, 0, 0)?;
    let f = file_as(&dir, "f", 0o6775, USER, GROUP)?;
    check_eq!(stat_of(&f)?.st_mode & 0o7777, 0o6775);
    // root (CAP_FSETID) writes: the bits stay.
    let fd = check_ok!(sys::open(f.as_cstr(), O_WRONLY, 0)) as i32;
    check_eq!(sys::write(fd, b"x"), Ok(1));
    check_ok!(sys::close(fd));
    check_eq!(stat_of(&f)?.st_mode & 0o7777, 0o6775);
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        let fd = check_ok!(sys::open(f.as_cstr(), O_WRONLY, 0)) as i32;
        check_eq!(sys::write(fd, b"y"), Ok(1));
        check_ok!(sys::close(fd));
        check_eq!(stat_of(&f)?.st_mode & 0o7777, 0o0775);
        Ok(())
    })?;
    // chown clears set-user-ID, and set-group-ID with group execute, even for root.
    check_eq!(chmod(&f, 0o6755), Ok(0));
    check_eq!(chown(&f, 0, 0), Ok(0));
    check_eq!(stat_of(&f)?.st_mode & 0o7777, 0o0755);
    check_eq!(chmod(&f, 0o2745), Ok(0)); // no group execute: set-group-ID is a lock mark
    check_eq!(chown(&f, USER as usize, KEEP), Ok(0));
    check_eq!(stat_of(&f)?.st_mode & 0o7777, 0o2745);
    Ok(())
}

fn access_checks_with_the_real_ids() -> TestResult {
    let dir = dir_as("cred-access", 0o755, 0, 0)?;
    let secret = file_as(&dir, "secret", 0o600, 0, 0)?;
    let path = secret.as_cstr().as_ptr() as usize;
    in_child(|| {
        check_eq!(setresuid(USER as usize, 0, 0), Ok(0));
        check_err!(call(nr::ACCESS, [path, 4, 0, 0, 0]), EACCES);
        check_eq!(call(nr::ACCESS, [path, 0, 0, 0, 0]), Ok(0)); // F_OK: it exists
        const AT_EACCESS: usize = 0x200;
        check_eq!(call(nr::FACCESSAT2, [AT_FDCWD as usize, path, 4, AT_EACCESS, 0]), Ok(0));
        check_eq!(try_open(&secret, O_RDWR), Ok(0));
        check_err!(call(nr::FACCESSAT2, [AT_FDCWD as usize, path, 4, 0x1, 0]), EINVAL);
        Ok(())
    })
}

/// Copies the `--exec` program to `dest`.
fn copy_exec(dest: &Path) -> TestResult {
    let src = Path::from_fmt(format_args!("{}", exec_path()));
    let from = check_ok!(sys::open(src.as_cstr(), O_RDONLY, 0)) as i32;
    let to = check_ok!(sys::open(dest.as_cstr(), O_CREAT | O_WRONLY | O_TRUNC, 0o700)) as i32;
    let mut buf = [0u8; 4096];
    loop {
        let n = check_ok!(sys::read(from, &mut buf));
        if n == 0 {
            break;
        }
        check_eq!(sys::write(to, &buf[..n]), Ok(n));
    }
    check_ok!(sys::close(from));
    check_ok!(sys::close(to));
    Ok(())
}

fn exec_needs_execute_permission() -> TestResult {
    let dir = dir_as("cred-exec", 0o755, 0, 0)?;
    let private = path_in(&dir, "private");
    copy_exec(&private)?;
    check_eq!(chmod(&private, 0o700), Ok(0));
    let public = path_in(&dir, "public");
    copy_exec(&public)?;
    check_eq!(chmod(&public, 0o755), Ok(0));
    let null = check_ok!(sys::open(c"/dev/null", O_WRONLY, 0)) as i32;
    let run_as_user = |prog: &Path| {
        run_child(|| {
            if become_user(USER, GROUP, &[]).is_err() {
                return 120;
            }
            let argv = [c"hello".as_ptr(), c"9".as_ptr(), ptr::null()];
            let envp: [*const c_char; 1] = [ptr::null()];
            let _ = sys::dup2(null, 1);
            match sys::execve(prog.as_cstr(), &argv, &envp) {
                Err(ulib::Errno::EACCES) => 13,
                _ => 127,
            }
        })
    };
    check_eq!(run_as_user(&private)?.exit_code(), Some(13));
    check_eq!(run_as_user(&public)?.exit_code(), Some(9));
    check_ok!(sys::close(null));
    Ok(())
}

fn capget_and_capset() -> TestResult {
    // An unknown version: version 3 is written back; with no data pointer that is a
    // successful probe.
    let mut hdr = [0u32, 0];
    check_eq!(call(nr::CAPGET, [hdr.as_mut_ptr() as usize, 0, 0, 0, 0]), Ok(0));
    check_eq!(hdr[0], VERSION_3);
    let mut hdr = [1u32, 0];
    let mut data = [0u32; 6];
    check_err!(call(nr::CAPGET, [hdr.as_mut_ptr() as usize, data.as_mut_ptr() as usize, 0, 0, 0]), EINVAL);
    check_eq!(hdr[0], VERSION_3);
    let mut hdr = [VERSION_3, u32::MAX];
    check_err!(call(nr::CAPGET, [hdr.as_mut_ptr() as usize, data.as_mut_ptr() as usize, 0, 0, 0]), EINVAL);
    let mut hdr = [VERSION_3, 0x3fff_fff0];
    check_err!(call(nr::CAPGET, [hdr.as_mut_ptr() as usize, data.as_mut_ptr() as usize, 0, 0, 0]), ESRCH);
    // Another thread's sets cannot be set (whether or not it exists).
    let mut hdr = [VERSION_3, 0x3fff_fff0];
    check_err!(call(nr::CAPSET, [hdr.as_mut_ptr() as usize, data.as_ptr() as usize, 0, 0, 0]), EPERM);
    let dir = dir_as("cred-caps", 0o755, 0, 0)?;
    let locked = file_as(&dir, "locked", 0o000, 0, 0)?;
    check_eq!(try_open(&locked, O_RDONLY), Ok(0)); // root reads mode 0000
    in_child(|| {
        let (e, p, i) = capget(0)?;
        let dac = bit(CAP_DAC_OVERRIDE) | bit(CAP_DAC_READ_SEARCH);
        check_eq!(capset(e & !dac, p, i), Ok(0));
        check_eq!(capget(0)?.0, e & !dac);
        check_err!(try_open(&locked, O_RDONLY), EACCES);
        check_eq!(capset(e, p, i), Ok(0)); // back from the permitted set
        check_eq!(try_open(&locked, O_RDONLY), Ok(0));
        // The permitted set only shrinks; effective stays within it.
        check_eq!(capset(e & !dac, p & !dac, i), Ok(0));
        check_err!(capset(e, p & !dac, i), EPERM);
        check_err!(capset(e & !dac, p, i), EPERM);
        check_err!(try_open(&locked, O_RDONLY), EACCES);
        Ok(())
    })
}

fn kill_needs_a_matching_uid() -> TestResult {
    // A root child that waits to be killed.
    let root_child = fork_child(|| {
        sleep_ms(20_000);
        0
    })?;
    let user_child = fork_child(|| {
        if become_user(USER, GROUP, &[]).is_err() {
            return 120;
        }
        sleep_ms(20_000);
        0
    })?;
    let _reapers = (Reaper(root_child), Reaper(user_child));
    sleep_ms(50);
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        check_err!(sys::kill(root_child, 0), EPERM);
        check_err!(sys::kill(root_child, SIGTERM), EPERM);
        // SIGCONT is allowed within the session.
        check_eq!(sys::kill(root_child, SIGCONT), Ok(0));
        check_eq!(sys::kill(user_child, 0), Ok(0));
        check_err!(sys::kill(1, 0), EPERM);
        Ok(())
    })?;
    for pid in [root_child, user_child] {
        check_eq!(sys::kill(pid, SIGKILL), Ok(0));
        check_eq!(wait_child(pid)?.term_signal(), Some(SIGKILL));
    }
    Ok(())
}

fn mount_and_nice_need_capabilities() -> TestResult {
    let dir = dir_as("cred-mount", 0o777, 0, 0)?;
    in_child(|| {
        become_user(USER, GROUP, &[])?;
        let d = dir.as_cstr().as_ptr() as usize;
        check_err!(call(nr::MOUNT, [c"none".as_ptr() as usize, d, c"tmpfs".as_ptr() as usize, 0, 0]), EPERM);
        check_err!(call(nr::UMOUNT2, [d, 0, 0, 0, 0]), EPERM);
        // A user may raise its nice value, not lower it (getpriority gives 20 - nice).
        let nice = 20 - check_ok!(call(nr::GETPRIORITY, [0, 0, 0, 0, 0])) as i32;
        check!(nice < 19, "nice {nice}");
        check_eq!(call(nr::SETPRIORITY, [0, 0, (nice + 1) as usize, 0, 0]), Ok(0));
        check_err!(call(nr::SETPRIORITY, [0, 0, nice as usize, 0, 0]), EACCES);
        check_err!(call(nr::SETPRIORITY, [0, 1, 10, 0, 0]), EPERM); // init is root's
        Ok(())
    })
}

fn proc_status_shows_the_ids() -> TestResult {
    in_child(|| {
        check_eq!(setgroups(&[300, 200]), Ok(0));
        check_eq!(setresgid(100, 101, 102), Ok(0));
        check_eq!(setresuid(1000, 1001, 1002), Ok(0));
        let fd = check_ok!(sys::open(c"/proc/self/status", O_RDONLY, 0)) as i32;
        let mut buf = [0u8; 4096];
        let mut n = 0;
        loop {
            let got = check_ok!(sys::read(fd, &mut buf[n..]));
            n += got;
            if got == 0 || n == buf.len() {
                break;
            }
        }
        check_ok!(sys::close(fd));
        let text = core::str::from_utf8(&buf[..n]).unwrap_or("");
        let line = |key: &str| text.lines().find(|l| l.starts_with(key)).unwrap_or("").trim_end();
        check_eq!(line("Uid:"), "Uid:\t1000\t1001\t1002\t1001");
        check_eq!(line("Gid:"), "Gid:\t100\t101\t102\t101");
        check_eq!(line("Groups:"), "Groups:\t200 300");
        check_eq!(line("CapEff:"), "CapEff:\t0000000000000000");
        check_eq!(line("CapPrm:"), "CapPrm:\t0000000000000000");
        Ok(())
    })
}

fn sync_and_syncfs() -> TestResult {
    // SAFETY: no memory is passed.
    check_eq!(sys::ret(unsafe { syscall1(nr::SYNC, 0) }), Ok(0));
    let f = make_file("cred-sync", b"durable")?;
    let fd = check_ok!(sys::open(f.as_cstr(), O_RDONLY, 0)) as i32;
    // SAFETY: as above.
    check_eq!(sys::ret(unsafe { syscall1(nr::SYNCFS, fd as usize) }), Ok(0));
    check_ok!(sys::close(fd));
    // SAFETY: as above.
    check_err!(sys::ret(unsafe { syscall1(nr::SYNCFS, 9999) }), EBADF);
    // fsync of a directory is allowed (and flushes its entries where that means something).
    let dir = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_eq!(sys::fsync(dir), Ok(0));
    check_ok!(sys::close(dir));
    Ok(())
}
