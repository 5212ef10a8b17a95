//! What tools read from /proc and /sys: /proc/self/fd links, /proc/self/fdinfo (an
//! io_uring's rings as Linux prints them), /proc/cpuinfo and the CPU list in
//! /sys/devices/system/cpu.

use ulib::sys::{self, syscall2};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    fd_links_name_the_files_open,
    fdinfo_shows_position_and_flags,
    fdinfo_of_an_io_uring_shows_its_rings,
    cpuinfo_and_online_cpus,
    maps_name_the_program_stack_and_vdso,
];

/// The contents of a (small) file at `path`.
fn read_text(path: &Path) -> Result<([u8; 4096], usize), Failure> {
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        let got = check_ok!(sys::read(fd, &mut buf[n..]));
        if got == 0 || n + got == buf.len() {
            n += got;
            break;
        }
        n += got;
    }
    check_ok!(sys::close(fd));
    Ok((buf, n))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn fd_links_name_the_files_open() -> TestResult {
    let path = make_file("procfs-fd", b"x")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let link = Path::from_fmt(format_args!("/proc/self/fd/{fd}"));
    let mut buf = [0u8; 256];
    let n = check_ok!(sys::readlink(link.as_cstr(), &mut buf));
    check_eq!(&buf[..n], path.as_str().as_bytes());
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let link = Path::from_fmt(format_args!("/proc/self/fd/{}", p[0]));
    let n = check_ok!(sys::readlink(link.as_cstr(), &mut buf));
    check!(buf[..n].starts_with(b"pipe:["), "pipe link {:?}", core::str::from_utf8(&buf[..n]));
    // The directory lists them.
    let dir = check_ok!(sys::open(c"/proc/self/fd", O_RDONLY | O_DIRECTORY, 0)) as i32;
    let mut ents = [0u8; 4096];
    let got = check_ok!(sys::getdents64(dir, &mut ents));
    let name = Path::from_fmt(format_args!("{fd}"));
    check!(contains(&ents[..got], name.as_str().as_bytes()), "fd {fd} not listed");
    for f in [fd, p[0], p[1], dir] {
        check_ok!(sys::close(f));
    }
    let closed = Path::from_fmt(format_args!("/proc/self/fd/{fd}"));
    check_err!(sys::readlink(closed.as_cstr(), &mut buf), ENOENT);
    Ok(())
}

fn fdinfo_shows_position_and_flags() -> TestResult {
    let path = make_file("procfs-fdinfo", b"0123456789")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_ok!(sys::lseek(fd, 3, SEEK_SET));
    let (text, n) = read_text(&Path::from_fmt(format_args!("/proc/self/fdinfo/{fd}")))?;
    let text = &text[..n];
    check!(text.starts_with(b"pos:\t3\nflags:\t"), "{:?}", core::str::from_utf8(text));
    check!(contains(text, b"\nino:\t"), "{:?}", core::str::from_utf8(text));
    check_ok!(sys::close(fd));
    Ok(())
}

fn fdinfo_of_an_io_uring_shows_its_rings() -> TestResult {
    // A 4-entry ring (8 CQEs): Linux's lines and values before any submission.
    let mut params = [0u8; 120];
    // SAFETY: the kernel reads and writes the 120-byte io_uring_params.
    let fd = check_ok!(sys::ret(unsafe { syscall2(nr::IO_URING_SETUP, 4, params.as_mut_ptr() as usize) })) as i32;
    let (text, n) = read_text(&Path::from_fmt(format_args!("/proc/self/fdinfo/{fd}")))?;
    let text = &text[..n];
    let want: &[u8] = b"SqMask:\t0x3\nSqHead:\t0\nSqTail:\t0\nCachedSqHead:\t0\nCqMask:\t0x7\nCqHead:\t0\nCqTail:\t0\nCachedCqTail:\t0\nSQEs:\t0\nCQEs:\t0\nSqThread:\t-1\nSqThreadCpu:\t-1\nSqTotalTime:\t0\nSqWorkTime:\t0\nUserFiles:\t0\nUserBufs:\t0\nPollList:\nCqOverflowList:\n";
    check!(contains(text, want), "{:?}", core::str::from_utf8(text));
    check_ok!(sys::close(fd));
    Ok(())
}

fn cpuinfo_and_online_cpus() -> TestResult {
    let (text, n) = read_text(&Path::from_fmt(format_args!("/proc/cpuinfo")))?;
    let text = &text[..n];
    check!(text.starts_with(b"processor\t: 0\n"), "{:?}", core::str::from_utf8(&text[..n.min(64)]));
    check!(contains(text, b"\nmodel name\t: "), "no model name");
    let (online, n) = read_text(&Path::from_fmt(format_args!("/sys/devices/system/cpu/online")))?;
    check!(n >= 2 && online[0] == b'0' && online[n - 1] == b'\n', "online {:?}", core::str::from_utf8(&online[..n]));
    Ok(())
}

fn maps_name_the_program_stack_and_vdso() -> TestResult {
    let mut exe = [0u8; 256];
    let n = check_ok!(sys::readlink(c"/proc/self/exe", &mut exe));
    let (text, len) = read_text(&Path::from_fmt(format_args!("/proc/self/maps")))?;
    let text = &text[..len];
    check!(contains(text, &exe[..n]), "the program's path is not in its maps");
    check!(contains(text, b"r-xp"), "no executable private mapping");
    for name in [&b"[stack]"[..], b"[vdso]"] {
        check!(contains(text, name), "{:?} missing", core::str::from_utf8(name));
    }
    // A file mapping is named by its path.
    let path = make_file("procfs-mapped", b"mapped")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    // SAFETY: not MAP_FIXED: the kernel picks the address.
    let m = check_ok!(unsafe { sys::mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0) });
    let (text, len) = read_text(&Path::from_fmt(format_args!("/proc/self/maps")))?;
    check!(contains(&text[..len], path.as_str().as_bytes()), "the mapped file is not named");
    unmap(m, 4096)?;
    check_ok!(sys::close(fd));
    Ok(())
}
