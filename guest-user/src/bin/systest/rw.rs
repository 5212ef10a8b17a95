//! More reads and writes: preadv, pwritev, preadv2 and pwritev2 (RWF_* flags), pwrite on
//! an O_APPEND file, sendfile, copy_file_range, and the advice calls fadvise64 and
//! readahead (arguments only: their effect is not visible).

use ulib::sys::{self, syscall3, syscall4};
use ulib::uapi::*;
use ulib::{check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    preadv_reads_at_the_offset_and_keeps_the_position,
    pwritev_writes_at_the_offset_and_keeps_the_position,
    preadv_on_a_pipe_is_espipe_and_negative_offset_einval,
    preadv2_at_minus_one_uses_and_moves_the_position,
    pwritev2_append_and_noappend,
    pwrite_on_an_o_append_file_appends,
    rwf_unknown_or_atomic_read_is_eopnotsupp,
    rwf_nowait_on_an_empty_pipe_is_eagain,
    rwf_dsync_write_lands,
    sendfile_reads_at_the_offset_and_advances_it,
    sendfile_without_offset_moves_the_input_position,
    sendfile_bad_ends_are_ebadf_or_einval,
    copy_file_range_copies_up_to_the_end,
    copy_file_range_refuses_overlap_flags_and_non_files,
    fadvise64_checks_advice_length_and_pipes,
    readahead_wants_a_readable_regular_file,
    vmsplice_moves_user_memory_through_a_pipe,
];

/// A scratch file holding `data`, opened with `flags`.
fn file_with(name: &str, data: &[u8], flags: i32) -> Result<i32, Failure> {
    let path = make_file(name, data)?;
    Ok(check_ok!(sys::open(path.as_cstr(), flags, 0)) as i32)
}

/// The whole content of `fd` (up to 64 bytes), read with pread.
fn content(fd: i32) -> Result<([u8; 64], usize), Failure> {
    let mut buf = [0u8; 64];
    let n = check_ok!(sys::pread64(fd, &mut buf, 0));
    Ok((buf, n))
}

macro_rules! check_content {
    ($fd:expr, $want:expr) => {{
        let (buf, n) = content($fd)?;
        check_eq!(&buf[..n], &$want[..]);
    }};
}

fn position(fd: i32) -> Result<usize, Failure> {
    Ok(check_ok!(sys::lseek(fd, 0, SEEK_CUR)))
}

fn preadv_reads_at_the_offset_and_keeps_the_position() -> TestResult {
    let fd = file_with("preadv", b"0123456789", O_RDONLY)?;
    check_ok!(sys::lseek(fd, 2, SEEK_SET));
    let (mut a, mut b) = ([0u8; 3], [0u8; 4]);
    let mut iov = [IoVecMut::new(&mut a), IoVecMut::new(&mut b)];
    // SAFETY: the iovecs lend two buffers the kernel may write.
    let n = sys::ret(unsafe { syscall4(nr::PREADV, fd as usize, iov.as_mut_ptr() as usize, 2, 1) });
    check_eq!(n, Ok(7));
    check_eq!((&a, &b), (b"123", b"4567"));
    check_eq!(position(fd)?, 2);
    // At the end: a short read, then nothing.
    let mut iov = [IoVecMut::new(&mut a), IoVecMut::new(&mut b)];
    check_eq!(sys::preadv2(fd, &mut iov, 8, 0), Ok(2));
    let mut iov = [IoVecMut::new(&mut a)];
    check_eq!(sys::preadv2(fd, &mut iov, 10, 0), Ok(0));
    check_ok!(sys::close(fd));
    Ok(())
}

fn pwritev_writes_at_the_offset_and_keeps_the_position() -> TestResult {
    let fd = file_with("pwritev", b"0123456789", O_RDWR)?;
    let iov = [IoVec::new(b"ab"), IoVec::new(b"cde")];
    // SAFETY: the kernel reads the iovecs and their buffers only.
    let n = sys::ret(unsafe { syscall4(nr::PWRITEV, fd as usize, iov.as_ptr() as usize, 2, 7) });
    check_eq!(n, Ok(5));
    check_content!(fd, b"0123456abcde");
    check_eq!(position(fd)?, 0);
    check_ok!(sys::close(fd));
    Ok(())
}

fn preadv_on_a_pipe_is_espipe_and_negative_offset_einval() -> TestResult {
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let mut a = [0u8; 4];
    let mut iov = [IoVecMut::new(&mut a)];
    check_err!(sys::preadv2(p[0], &mut iov, 0, 0), ESPIPE);
    let fd = file_with("negative", b"data", O_RDONLY)?;
    let mut iov = [IoVecMut::new(&mut a)];
    check_err!(sys::preadv2(fd, &mut iov, -2, 0), EINVAL);
    for f in [fd, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn preadv2_at_minus_one_uses_and_moves_the_position() -> TestResult {
    let fd = file_with("minus-one", b"abcdef", O_RDWR)?;
    check_ok!(sys::lseek(fd, 1, SEEK_SET));
    let mut a = [0u8; 3];
    let mut iov = [IoVecMut::new(&mut a)];
    check_eq!(sys::preadv2(fd, &mut iov, -1, 0), Ok(3));
    check_eq!(&a, b"bcd");
    check_eq!(position(fd)?, 4);
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"XY")], -1, 0), Ok(2));
    check_content!(fd, b"abcdXY");
    check_eq!(position(fd)?, 6);
    check_ok!(sys::close(fd));
    Ok(())
}

fn pwritev2_append_and_noappend() -> TestResult {
    // RWF_APPEND writes at the end whatever the offset; on an O_APPEND file,
    // RWF_NOAPPEND writes at the offset; both at once are EINVAL.
    let fd = file_with("append", b"0123", O_RDWR)?;
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"ab")], 0, RWF_APPEND), Ok(2));
    check_content!(fd, b"0123ab");
    check_err!(sys::pwritev2(fd, &[IoVec::new(b"x")], 0, RWF_APPEND | RWF_NOAPPEND), EINVAL);
    check_ok!(sys::close(fd));
    let fd = file_with("o-append", b"0123", O_RDWR | O_APPEND)?;
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"cd")], 1, 0), Ok(2));
    check_content!(fd, b"0123cd");
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"Z")], 1, RWF_NOAPPEND), Ok(1));
    check_content!(fd, b"0Z23cd");
    check_ok!(sys::close(fd));
    Ok(())
}

fn pwrite_on_an_o_append_file_appends() -> TestResult {
    // Linux's documented quirk: pwrite ignores the offset of an O_APPEND file.
    let fd = file_with("pwrite-append", b"0123", O_RDWR | O_APPEND)?;
    // SAFETY: the kernel reads 2 bytes of the buffer.
    let n = sys::ret(unsafe { syscall4(nr::PWRITE64, fd as usize, b"ab".as_ptr() as usize, 2, 0) });
    check_eq!(n, Ok(2));
    check_content!(fd, b"0123ab");
    check_ok!(sys::close(fd));
    Ok(())
}

fn rwf_unknown_or_atomic_read_is_eopnotsupp() -> TestResult {
    let fd = file_with("flags", b"data", O_RDWR)?;
    let mut a = [0u8; 4];
    let mut iov = [IoVecMut::new(&mut a)];
    check_err!(sys::preadv2(fd, &mut iov, 0, 0x1000), EOPNOTSUPP);
    let mut iov = [IoVecMut::new(&mut a)];
    check_err!(sys::preadv2(fd, &mut iov, 0, RWF_ATOMIC), EOPNOTSUPP);
    // RWF_HIPRI is a hint a plain file ignores.
    let mut iov = [IoVecMut::new(&mut a)];
    check_eq!(sys::preadv2(fd, &mut iov, 0, RWF_HIPRI), Ok(4));
    check_ok!(sys::close(fd));
    Ok(())
}

fn rwf_nowait_on_an_empty_pipe_is_eagain() -> TestResult {
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let mut a = [0u8; 4];
    let mut iov = [IoVecMut::new(&mut a)];
    check_err!(sys::preadv2(p[0], &mut iov, -1, RWF_NOWAIT), EAGAIN);
    check_eq!(sys::write(p[1], b"hi"), Ok(2));
    let mut iov = [IoVecMut::new(&mut a)];
    check_eq!(sys::preadv2(p[0], &mut iov, -1, RWF_NOWAIT), Ok(2));
    check_eq!(&a[..2], b"hi");
    // A file whose data is at hand reads at once.
    let fd = file_with("nowait", b"cached", O_RDONLY)?;
    let mut iov = [IoVecMut::new(&mut a)];
    check_eq!(sys::preadv2(fd, &mut iov, 0, RWF_NOWAIT), Ok(4));
    for f in [fd, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn rwf_dsync_write_lands() -> TestResult {
    let fd = file_with("dsync", b"", O_RDWR)?;
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"durable")], 0, RWF_DSYNC), Ok(7));
    check_eq!(sys::pwritev2(fd, &[IoVec::new(b"!")], 7, RWF_SYNC), Ok(1));
    check_content!(fd, b"durable!");
    check_ok!(sys::close(fd));
    Ok(())
}

fn sendfile_reads_at_the_offset_and_advances_it() -> TestResult {
    let fin = file_with("sf-in", b"0123456789", O_RDONLY)?;
    let fout = file_with("sf-out", b"", O_RDWR)?;
    let mut off = 2i64;
    check_eq!(sys::sendfile(fout, fin, Some(&mut off), 5), Ok(5));
    check_eq!(off, 7);
    check_eq!(position(fin)?, 0);
    check_content!(fout, b"23456");
    // Past the end: what is left, then nothing.
    check_eq!(sys::sendfile(fout, fin, Some(&mut off), 100), Ok(3));
    check_eq!(sys::sendfile(fout, fin, Some(&mut off), 100), Ok(0));
    check_content!(fout, b"23456789");
    // Into a pipe.
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let mut off = 0i64;
    check_eq!(sys::sendfile(p[1], fin, Some(&mut off), 4), Ok(4));
    let mut buf = [0u8; 8];
    check_eq!(sys::read(p[0], &mut buf), Ok(4));
    check_eq!(&buf[..4], b"0123");
    for f in [fin, fout, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn sendfile_without_offset_moves_the_input_position() -> TestResult {
    let fin = file_with("sf-pos-in", b"abcdef", O_RDONLY)?;
    let fout = file_with("sf-pos-out", b"", O_RDWR)?;
    check_ok!(sys::lseek(fin, 1, SEEK_SET));
    check_eq!(sys::sendfile(fout, fin, None, 3), Ok(3));
    check_eq!(position(fin)?, 4);
    check_eq!(position(fout)?, 3);
    check_content!(fout, b"bcd");
    check_ok!(sys::close(fin));
    check_ok!(sys::close(fout));
    Ok(())
}

fn sendfile_bad_ends_are_ebadf_or_einval() -> TestResult {
    let fin = file_with("sf-bad-in", b"abc", O_RDONLY)?;
    let wronly = file_with("sf-bad-wronly", b"abc", O_WRONLY)?;
    let append = file_with("sf-bad-append", b"", O_WRONLY | O_APPEND)?;
    // Reading from a write-only file, writing to a read-only one.
    check_err!(sys::sendfile(wronly, wronly, None, 1), EBADF);
    check_err!(sys::sendfile(fin, fin, None, 1), EBADF);
    check_err!(sys::sendfile(append, fin, None, 1), EINVAL);
    let free = lowest_free_fd(3);
    check_err!(sys::sendfile(wronly, free, None, 1), EBADF);
    for f in [fin, wronly, append] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn copy_file_range_copies_up_to_the_end() -> TestResult {
    let fin = file_with("cfr-in", b"0123456789", O_RDONLY)?;
    let fout = file_with("cfr-out", b"abcdef", O_RDWR)?;
    let (mut oi, mut oo) = (3i64, 2i64);
    check_eq!(sys::copy_file_range(fin, Some(&mut oi), fout, Some(&mut oo), 4, 0), Ok(4));
    check_eq!((oi, oo), (7, 6));
    check_content!(fout, b"ab3456");
    check_eq!(sys::copy_file_range(fin, Some(&mut oi), fout, Some(&mut oo), 100, 0), Ok(3));
    check_content!(fout, b"ab3456789");
    check_eq!(sys::copy_file_range(fin, Some(&mut oi), fout, Some(&mut oo), 100, 0), Ok(0));
    // Without offsets: the file positions, moved.
    check_ok!(sys::lseek(fin, 8, SEEK_SET));
    check_ok!(sys::lseek(fout, 0, SEEK_SET));
    check_eq!(sys::copy_file_range(fin, None, fout, None, 5, 0), Ok(2));
    check_eq!((position(fin)?, position(fout)?), (10, 2));
    check_content!(fout, b"893456789");
    check_ok!(sys::close(fin));
    check_ok!(sys::close(fout));
    Ok(())
}

fn copy_file_range_refuses_overlap_flags_and_non_files() -> TestResult {
    let f = file_with("cfr-self", b"0123456789", O_RDWR)?;
    let (mut a, mut b) = (0i64, 2i64);
    check_err!(sys::copy_file_range(f, Some(&mut a), f, Some(&mut b), 4, 0), EINVAL);
    // Apart, within one file, is fine.
    let (mut a, mut b) = (0i64, 6i64);
    check_eq!(sys::copy_file_range(f, Some(&mut a), f, Some(&mut b), 4, 0), Ok(4));
    check_content!(f, b"0123450123");
    let (mut a, mut b) = (0i64, 6i64);
    check_err!(sys::copy_file_range(f, Some(&mut a), f, Some(&mut b), 1, 1), EINVAL);
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    check_err!(sys::copy_file_range(p[0], None, f, None, 1, 0), EINVAL);
    let dir = check_ok!(sys::open(util_dir()?.as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_err!(sys::copy_file_range(dir, None, f, None, 1, 0), EISDIR);
    let ro = file_with("cfr-ro", b"x", O_RDONLY)?;
    check_err!(sys::copy_file_range(f, None, ro, None, 1, 0), EBADF);
    let app = file_with("cfr-append", b"x", O_WRONLY | O_APPEND)?;
    check_err!(sys::copy_file_range(f, None, app, None, 1, 0), EBADF);
    for fd in [f, p[0], p[1], dir, ro, app] {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

/// The scratch directory.
fn util_dir() -> Result<Path, Failure> {
    Ok(Path::from_fmt(format_args!("{}", work_dir())))
}

fn fadvise64_checks_advice_length_and_pipes() -> TestResult {
    let fd = file_with("fadvise", b"data", O_RDONLY)?;
    let fadvise = |fd: i32, len: i64, advice: usize| {
        // SAFETY: no memory is passed.
        sys::ret(unsafe { syscall4(nr::FADVISE64, fd as usize, 0, len as usize, advice) })
    };
    for advice in 0..=5 {
        check_eq!(fadvise(fd, 4, advice), Ok(0));
    }
    check_err!(fadvise(fd, 4, 6), EINVAL);
    check_err!(fadvise(fd, -1, 0), EINVAL);
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    check_err!(fadvise(p[0], 4, 0), ESPIPE);
    check_err!(fadvise(lowest_free_fd(3), 4, 0), EBADF);
    for f in [fd, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn readahead_wants_a_readable_regular_file() -> TestResult {
    let readahead = |fd: i32| {
        // SAFETY: no memory is passed.
        sys::ret(unsafe { syscall3(nr::READAHEAD, fd as usize, 0, 4096) })
    };
    let fd = file_with("readahead", b"data", O_RDONLY)?;
    check_eq!(readahead(fd), Ok(0));
    let wr = file_with("readahead-wr", b"data", O_WRONLY)?;
    check_err!(readahead(wr), EBADF);
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    check_err!(readahead(p[0]), EINVAL);
    for f in [fd, wr, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}

fn vmsplice_moves_user_memory_through_a_pipe() -> TestResult {
    const SPLICE_F_NONBLOCK: usize = 2;
    let mut p = [-1; 2];
    check_eq!(sys::pipe(&mut p), Ok(0));
    let iov = [IoVec::new(b"gift"), IoVec::new(b"ed")];
    // SAFETY: the kernel reads the iovecs and their buffers.
    let n = sys::ret(unsafe { syscall4(nr::VMSPLICE, p[1] as usize, iov.as_ptr() as usize, 2, 0) });
    check_eq!(n, Ok(6));
    let (mut a, mut b) = ([0u8; 3], [0u8; 3]);
    let mut out = [IoVecMut::new(&mut a), IoVecMut::new(&mut b)];
    // SAFETY: the kernel writes into the two buffers.
    let n = sys::ret(unsafe { syscall4(nr::VMSPLICE, p[0] as usize, out.as_mut_ptr() as usize, 2, 0) });
    check_eq!(n, Ok(6));
    check_eq!((&a, &b), (b"gif", b"ted"));
    // Empty, nonblocking: EAGAIN. Not a pipe: EBADF. Unknown flags: EINVAL.
    let mut out = [IoVecMut::new(&mut a)];
    // SAFETY: as above.
    let r = sys::ret(unsafe { syscall4(nr::VMSPLICE, p[0] as usize, out.as_mut_ptr() as usize, 1, SPLICE_F_NONBLOCK) });
    check_err!(r, EAGAIN);
    let fd = file_with("vmsplice", b"x", O_RDWR)?;
    // SAFETY: refused before any memory is touched.
    check_err!(sys::ret(unsafe { syscall4(nr::VMSPLICE, fd as usize, iov.as_ptr() as usize, 1, 0) }), EBADF);
    // SAFETY: as above.
    check_err!(sys::ret(unsafe { syscall4(nr::VMSPLICE, p[1] as usize, iov.as_ptr() as usize, 1, 0x100) }), EINVAL);
    for f in [fd, p[0], p[1]] {
        check_ok!(sys::close(f));
    }
    Ok(())
}
