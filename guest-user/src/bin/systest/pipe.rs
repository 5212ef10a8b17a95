//! Pipes and eventfds: data and EOF, SIGPIPE/EPIPE, non-blocking mode, what a pipe
//! refuses (seeking, the wrong end), and both used between processes.

use ulib::sys::{self, syscall1};
use ulib::uapi::*;
use ulib::{Errno, check, check_eq, check_err, check_ok, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    pipe_write_then_read,
    pipe_partial_read_leaves_the_rest,
    pipe_read_after_writer_closed_is_eof,
    pipe_write_without_reader_raises_sigpipe,
    pipe_write_without_reader_is_epipe_when_sigpipe_ignored,
    pipe_nonblocking_read_when_empty_is_eagain,
    pipe_nonblocking_write_when_full_is_eagain,
    pipe_lseek_and_pread_are_espipe,
    pipe_wrong_end_is_ebadf,
    pipe_fstat_is_fifo,
    pipe_fionread_counts_buffered_bytes,
    pipe2_cloexec_and_nonblock_set_flags,
    pipe2_unknown_flag_is_einval,
    pipe_bad_pointer_is_efault,
    pipe_carries_data_between_processes,
    pipe_read_blocks_until_the_child_writes,
    eventfd_writes_add_and_a_read_takes_all,
    eventfd_semaphore_read_takes_one,
    eventfd_nonblocking_read_at_zero_is_eagain,
    eventfd_short_buffer_is_einval,
    eventfd_write_of_all_ones_is_einval,
    eventfd_unknown_flag_is_einval,
    eventfd_wakes_a_reader_in_another_process,
];

/// A new pipe: (read end, write end).
fn new_pipe(flags: i32) -> Result<(i32, i32), Failure> {
    let mut fds = [-1; 2];
    check_eq!(sys::pipe2(&mut fds, flags), Ok(0));
    Ok((fds[0], fds[1]))
}

fn close_all(fds: &[i32]) -> TestResult {
    for &fd in fds {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn pipe_write_then_read() -> TestResult {
    let mut fds = [-1; 2];
    check_eq!(sys::pipe(&mut fds), Ok(0));
    check_eq!(sys::write(fds[1], b"ping"), Ok(4));
    let mut buf = [0u8; 8];
    check_eq!(sys::read(fds[0], &mut buf), Ok(4)); // what is there, not the 8 we asked for
    check_eq!(&buf[..4], b"ping");
    close_all(&fds)
}

fn pipe_partial_read_leaves_the_rest() -> TestResult {
    let (r, w) = new_pipe(0)?;
    check_eq!(sys::write(w, b"0123456789"), Ok(10));
    let mut buf = [0u8; 4];
    check_eq!(sys::read(r, &mut buf), Ok(4));
    check_eq!(&buf, b"0123");
    let mut buf = [0u8; 16];
    check_eq!(sys::read(r, &mut buf), Ok(6));
    check_eq!(&buf[..6], b"456789");
    close_all(&[r, w])
}

fn pipe_read_after_writer_closed_is_eof() -> TestResult {
    let (r, w) = new_pipe(0)?;
    check_eq!(sys::write(w, b"x"), Ok(1));
    check_ok!(sys::close(w));
    let mut buf = [0u8; 4];
    check_eq!(sys::read(r, &mut buf), Ok(1)); // the data first...
    check_eq!(sys::read(r, &mut buf), Ok(0)); // ...then end of file
    close_all(&[r])
}

fn pipe_write_without_reader_raises_sigpipe() -> TestResult {
    let status = run_child(|| {
        let mut fds = [-1; 2];
        let _ = sys::pipe(&mut fds);
        let _ = sys::close(fds[0]);
        let _ = sys::write(fds[1], b"x"); // SIGPIPE's default action ends the child here
        0
    })?;
    check_eq!(status.term_signal(), Some(SIGPIPE));
    Ok(())
}

fn pipe_write_without_reader_is_epipe_when_sigpipe_ignored() -> TestResult {
    let status = run_child(|| {
        let ignore = SigAction {
            handler: SIG_IGN,
            ..SigAction::default()
        };
        // SAFETY: SIG_IGN runs no code.
        if unsafe { sys::rt_sigaction(SIGPIPE, Some(&ignore), None) }.is_err() {
            return 2;
        }
        let mut fds = [-1; 2];
        let _ = sys::pipe(&mut fds);
        let _ = sys::close(fds[0]);
        status_if(sys::write(fds[1], b"x"), Err(Errno::EPIPE))
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn pipe_nonblocking_read_when_empty_is_eagain() -> TestResult {
    let (r, w) = new_pipe(O_NONBLOCK)?;
    check_err!(sys::read(r, &mut [0u8; 4]), EAGAIN);
    close_all(&[r, w])
}

fn pipe_nonblocking_write_when_full_is_eagain() -> TestResult {
    // Writes of at most PIPE_BUF (4096) bytes are atomic: all or nothing.
    let (r, w) = new_pipe(O_NONBLOCK)?;
    let chunk = [0x5au8; 4096];
    let mut total = 0;
    loop {
        match sys::write(w, &chunk) {
            Ok(n) => {
                check_eq!(n, chunk.len());
                total += n;
                check!(total <= 1 << 20, "1 MiB and still not full");
            }
            Err(e) => {
                check_eq!(e, Errno::EAGAIN);
                break;
            }
        }
    }
    check!(total >= 4096, "a pipe holds at least one page, got {total}");
    close_all(&[r, w])
}

fn pipe_lseek_and_pread_are_espipe() -> TestResult {
    let (r, w) = new_pipe(0)?;
    check_err!(sys::lseek(r, 0, SEEK_SET), ESPIPE);
    check_err!(sys::lseek(w, 0, SEEK_CUR), ESPIPE);
    check_err!(sys::pread64(r, &mut [0u8; 1], 0), ESPIPE);
    check_err!(sys::pwrite64(w, b"x", 0), ESPIPE);
    close_all(&[r, w])
}

fn pipe_wrong_end_is_ebadf() -> TestResult {
    let (r, w) = new_pipe(0)?;
    check_err!(sys::write(r, b"x"), EBADF);
    check_err!(sys::read(w, &mut [0u8; 1]), EBADF);
    close_all(&[r, w])
}

fn pipe_fstat_is_fifo() -> TestResult {
    let (r, w) = new_pipe(0)?;
    let mut st = Stat::default();
    check_ok!(sys::fstat(r, &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFIFO);
    check_ok!(sys::fstat(w, &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFIFO);
    close_all(&[r, w])
}

fn pipe_fionread_counts_buffered_bytes() -> TestResult {
    let (r, w) = new_pipe(0)?;
    check_ok!(sys::write(w, b"12345"));
    let mut n: i32 = -1;
    check_eq!(
        // SAFETY: FIONREAD writes one int.
        unsafe { sys::ioctl(r, FIONREAD, &raw mut n as usize) },
        Ok(0)
    );
    check_eq!(n, 5);
    close_all(&[r, w])
}

fn pipe2_cloexec_and_nonblock_set_flags() -> TestResult {
    let (r, w) = new_pipe(O_CLOEXEC | O_NONBLOCK)?;
    for fd in [r, w] {
        check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
        let fl = check_ok!(sys::fcntl(fd, F_GETFL, 0)) as i32;
        check_eq!(fl & O_NONBLOCK, O_NONBLOCK);
    }
    check_eq!(
        sys::fcntl(r, F_GETFL, 0).map(|f| f as i32 & 3),
        Ok(O_RDONLY)
    );
    check_eq!(
        sys::fcntl(w, F_GETFL, 0).map(|f| f as i32 & 3),
        Ok(O_WRONLY)
    );
    close_all(&[r, w])
}

fn pipe2_unknown_flag_is_einval() -> TestResult {
    let mut fds = [-1; 2];
    check_err!(sys::pipe2(&mut fds, O_APPEND), EINVAL);
    check_eq!(fds, [-1, -1]); // nothing written
    Ok(())
}

fn pipe_bad_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse to store the two fds at address 1 (and close them).
    let ret = sys::ret(unsafe { syscall1(nr::PIPE, UNMAPPED_ADDR) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn pipe_carries_data_between_processes() -> TestResult {
    let (r, w) = new_pipe(0)?;
    let pid = fork_child(|| {
        let _ = sys::close(r);
        status_if(sys::write(w, b"from the child"), Ok(14))
    })?;
    check_ok!(sys::close(w));
    let mut buf = [0u8; 32];
    let mut len = 0;
    loop {
        match check_ok!(sys::read(r, &mut buf[len..])) {
            0 => break, // the child exited: no writer left
            n => len += n,
        }
    }
    check_eq!(&buf[..len], b"from the child");
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    close_all(&[r])
}

fn pipe_read_blocks_until_the_child_writes() -> TestResult {
    let (r, w) = new_pipe(0)?;
    let start = now_ns();
    let pid = fork_child(|| {
        sleep_ms(20);
        status_if(sys::write(w, b"late"), Ok(4))
    })?;
    let mut buf = [0u8; 8];
    check_eq!(sys::read(r, &mut buf), Ok(4));
    check!(
        now_ns() - start >= 20_000_000,
        "read returned before the child wrote"
    );
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    close_all(&[r, w])
}

/// Reads an eventfd's 8-byte counter.
fn efd_read(fd: i32) -> ulib::errno::Result<u64> {
    let mut buf = [0u8; 8];
    sys::read(fd, &mut buf).map(|_| u64::from_ne_bytes(buf))
}

/// Adds to an eventfd's counter.
fn efd_write(fd: i32, value: u64) -> ulib::errno::Result {
    sys::write(fd, &value.to_ne_bytes())
}

fn eventfd_writes_add_and_a_read_takes_all() -> TestResult {
    let fd = check_ok!(sys::eventfd2(2, EFD_NONBLOCK)) as i32;
    check_eq!(efd_write(fd, 3), Ok(8));
    check_eq!(efd_write(fd, 4), Ok(8));
    check_eq!(efd_read(fd), Ok(9)); // 2 + 3 + 4
    check_err!(efd_read(fd), EAGAIN); // reset to 0
    close_all(&[fd])
}

fn eventfd_semaphore_read_takes_one() -> TestResult {
    let fd = check_ok!(sys::eventfd2(2, EFD_SEMAPHORE | EFD_NONBLOCK)) as i32;
    check_eq!(efd_read(fd), Ok(1));
    check_eq!(efd_read(fd), Ok(1));
    check_err!(efd_read(fd), EAGAIN);
    close_all(&[fd])
}

fn eventfd_nonblocking_read_at_zero_is_eagain() -> TestResult {
    let fd = check_ok!(sys::eventfd2(0, EFD_NONBLOCK)) as i32;
    check_err!(efd_read(fd), EAGAIN);
    close_all(&[fd])
}

fn eventfd_short_buffer_is_einval() -> TestResult {
    let fd = check_ok!(sys::eventfd2(1, 0)) as i32;
    check_err!(sys::read(fd, &mut [0u8; 4]), EINVAL);
    check_err!(sys::write(fd, &[1u8; 4]), EINVAL);
    check_eq!(sys::read(fd, &mut [0u8; 16]), Ok(8)); // longer is fine: 8 bytes come back
    close_all(&[fd])
}

fn eventfd_write_of_all_ones_is_einval() -> TestResult {
    let fd = check_ok!(sys::eventfd2(0, 0)) as i32;
    check_err!(efd_write(fd, u64::MAX), EINVAL); // the counter's maximum is 2^64 - 2
    close_all(&[fd])
}

fn eventfd_unknown_flag_is_einval() -> TestResult {
    check_err!(sys::eventfd2(0, O_APPEND), EINVAL);
    Ok(())
}

fn eventfd_wakes_a_reader_in_another_process() -> TestResult {
    let fd = check_ok!(sys::eventfd2(0, 0)) as i32;
    let pid = fork_child(|| {
        sleep_ms(10);
        status_if(efd_write(fd, 7), Ok(8))
    })?;
    check_eq!(efd_read(fd), Ok(7)); // blocks until the child's write
    check_eq!(wait_child(pid)?.exit_code(), Some(0));
    close_all(&[fd])
}
