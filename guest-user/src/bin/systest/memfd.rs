//! memfd_create and file seals: an anonymous file that reads, writes and maps like any
//! other, named in /proc/self/fd; seals (F_ADD_SEALS, F_GET_SEALS) that stop shrinking,
//! growing and writing, a write seal refused while a shared mapping exists, and the
//! argument errors.

use ulib::sys::{self, syscall2, syscall3};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    memfd_reads_writes_and_is_named,
    memfd_without_allow_sealing_is_sealed_shut,
    seals_stop_shrinking_growing_and_writing,
    write_seal_waits_for_shared_mappings_to_go,
    noexec_seal_and_bad_arguments,
];

const MFD_CLOEXEC: usize = 1;
const MFD_ALLOW_SEALING: usize = 2;
const MFD_NOEXEC_SEAL: usize = 8;
const MFD_EXEC: usize = 0x10;
const F_ADD_SEALS: i32 = 1033;
const F_GET_SEALS: i32 = 1034;
const F_SEAL_SEAL: usize = 1;
const F_SEAL_SHRINK: usize = 2;
const F_SEAL_GROW: usize = 4;
const F_SEAL_WRITE: usize = 8;
const F_SEAL_EXEC: usize = 0x20;

fn memfd(name: &core::ffi::CStr, flags: usize) -> ulib::errno::Result {
    // SAFETY: the kernel reads the name.
    sys::ret(unsafe { syscall2(nr::MEMFD_CREATE, name.as_ptr() as usize, flags) })
}

fn seals(fd: i32) -> ulib::errno::Result {
    sys::fcntl(fd, F_GET_SEALS, 0)
}

fn add_seals(fd: i32, s: usize) -> ulib::errno::Result {
    // SAFETY: no memory is passed.
    sys::ret(unsafe { syscall3(nr::FCNTL, fd as usize, F_ADD_SEALS as usize, s) })
}

fn memfd_reads_writes_and_is_named() -> TestResult {
    let fd = check_ok!(memfd(c"scratch", MFD_CLOEXEC)) as i32;
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(sys::write(fd, b"hello"), Ok(5));
    let mut buf = [0u8; 8];
    check_eq!(sys::pread64(fd, &mut buf, 0), Ok(5));
    check_eq!(&buf[..5], b"hello");
    let mut st = Stat::default();
    check_eq!(sys::fstat(fd, &mut st), Ok(0));
    check_eq!((st.st_size, st.st_mode & 0o170000), (5, 0o100000));
    check_eq!(sys::ftruncate(fd, 4096), Ok(0));
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = check_ok!(unsafe { sys::mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) });
    // SAFETY: the page just mapped writable.
    unsafe { (m as *mut u8).write_volatile(b'J') };
    check_eq!(sys::pread64(fd, &mut buf, 0), Ok(8));
    check_eq!(&buf[..5], b"Jello");
    unmap(m, 4096)?;
    let link = Path::from_fmt(format_args!("/proc/self/fd/{fd}"));
    let mut name = [0u8; 64];
    let n = check_ok!(sys::readlink(link.as_cstr(), &mut name));
    check_eq!(&name[..n], b"/memfd:scratch (deleted)");
    // No seals by default, and none may be added.
    check_eq!(seals(fd), Ok(F_SEAL_SEAL));
    check_ok!(sys::close(fd));
    Ok(())
}

fn memfd_without_allow_sealing_is_sealed_shut() -> TestResult {
    let fd = check_ok!(memfd(c"shut", 0)) as i32;
    check_err!(add_seals(fd, F_SEAL_WRITE), EPERM);
    check_ok!(sys::close(fd));
    // Seals on another kind of file: EINVAL.
    let path = make_file("memfd-plain", b"x")?;
    let f = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_err!(seals(f), EINVAL);
    check_err!(add_seals(f, F_SEAL_WRITE), EINVAL);
    check_ok!(sys::close(f));
    Ok(())
}

fn seals_stop_shrinking_growing_and_writing() -> TestResult {
    let fd = check_ok!(memfd(c"sealed", MFD_ALLOW_SEALING)) as i32;
    check_eq!(seals(fd), Ok(0));
    check_eq!(sys::write(fd, b"0123456789"), Ok(10));
    check_eq!(add_seals(fd, F_SEAL_SHRINK), Ok(0));
    check_err!(sys::ftruncate(fd, 5), EPERM);
    check_eq!(sys::ftruncate(fd, 20), Ok(0));
    check_eq!(add_seals(fd, F_SEAL_GROW), Ok(0));
    check_err!(sys::ftruncate(fd, 30), EPERM);
    check_err!(sys::pwrite64(fd, b"x", 20), EPERM);
    check_eq!(sys::pwrite64(fd, b"x", 0), Ok(1));
    check_eq!(add_seals(fd, F_SEAL_WRITE), Ok(0));
    check_err!(sys::pwrite64(fd, b"y", 0), EPERM);
    // A write-sealed file maps shared only read-only, and stays so.
    // SAFETY: not MAP_FIXED; refused or read-only.
    check_err!(unsafe { sys::mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) }, EPERM);
    // SAFETY: as above.
    let m = check_ok!(unsafe { sys::mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0) });
    // SAFETY: the mapping just made.
    check_err!(unsafe { sys::mprotect(m, 4096, PROT_READ | PROT_WRITE) }, EACCES);
    unmap(m, 4096)?;
    check_eq!(add_seals(fd, F_SEAL_SEAL), Ok(0));
    check_err!(add_seals(fd, F_SEAL_EXEC), EPERM);
    check_eq!(seals(fd), Ok(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
    check_ok!(sys::close(fd));
    Ok(())
}

fn write_seal_waits_for_shared_mappings_to_go() -> TestResult {
    let fd = check_ok!(memfd(c"mapped", MFD_ALLOW_SEALING)) as i32;
    check_eq!(sys::ftruncate(fd, 4096), Ok(0));
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = check_ok!(unsafe { sys::mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) });
    check_err!(add_seals(fd, F_SEAL_WRITE), EBUSY);
    unmap(m, 4096)?;
    check_eq!(add_seals(fd, F_SEAL_WRITE), Ok(0));
    check_ok!(sys::close(fd));
    Ok(())
}

fn noexec_seal_and_bad_arguments() -> TestResult {
    let fd = check_ok!(memfd(c"noexec", MFD_NOEXEC_SEAL)) as i32;
    let mut st = Stat::default();
    check_eq!(sys::fstat(fd, &mut st), Ok(0));
    check_eq!(st.st_mode & 0o777, 0o666);
    check!(check_ok!(seals(fd)) & F_SEAL_EXEC != 0, "no F_SEAL_EXEC");
    check_ok!(sys::close(fd));
    check_err!(memfd(c"both", MFD_EXEC | MFD_NOEXEC_SEAL), EINVAL);
    check_err!(memfd(c"bad", 0x1000), EINVAL);
    let long = [b'n'; 300];
    let mut name = [0u8; 301];
    name[..300].copy_from_slice(&long);
    let cname = core::ffi::CStr::from_bytes_with_nul(&name).unwrap_or(c"");
    check_err!(memfd(cname, 0), EINVAL);
    // SAFETY: the kernel must refuse the unmapped name.
    check_err!(sys::ret(unsafe { syscall2(nr::MEMFD_CREATE, UNMAPPED_ADDR, 0) }), EFAULT);
    Ok(())
}
