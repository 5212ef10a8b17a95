//! Files and file descriptors: open/openat, read/write and their vector and positional
//! forms, lseek, the stat family, getdents64, mkdir/rmdir/unlink/rename, ftruncate,
//! fsync, dup, fcntl, ioctl, close.

use ulib::io::StackStr;
use ulib::sys::{self, syscall2, syscall3};
use ulib::uapi::*;
use ulib::{check, check_eq, check_err, check_ok, fail, nr};

use crate::util::*;

pub const TESTS: &[Test] = tests![
    write_then_read_back,
    read_far_past_the_end_of_an_unwritten_file,
    open_missing_file_is_enoent,
    open_creat_excl_on_existing_file_is_eexist,
    open_directory_for_writing_is_eisdir,
    open_o_directory_on_file_is_enotdir,
    open_path_through_a_file_is_enotdir,
    open_name_longer_than_255_is_enametoolong,
    open_bad_path_pointer_is_efault,
    open_o_append_writes_at_end,
    open_o_trunc_empties_file,
    open_beyond_rlimit_nofile_is_emfile,
    openat_resolves_relative_to_dirfd,
    openat_absolute_path_ignores_dirfd,
    openat_bad_dirfd_is_ebadf,
    openat_dirfd_of_a_file_is_enotdir,
    read_and_write_bad_fd_is_ebadf,
    read_write_only_fd_is_ebadf,
    write_read_only_fd_is_ebadf,
    read_directory_is_eisdir,
    read_into_bad_pointer_is_efault,
    write_from_bad_pointer_is_efault,
    readv_writev_scatter_and_gather,
    writev_more_than_1024_iovecs_is_einval,
    readv_bad_iovec_pointer_is_efault,
    pread_pwrite_leave_file_offset_alone,
    pread_negative_offset_is_einval,
    lseek_set_cur_end,
    lseek_past_end_then_write_leaves_zeros,
    lseek_to_negative_offset_is_einval,
    lseek_bad_whence_is_einval,
    stat_reports_type_size_and_mode,
    fstat_agrees_with_stat,
    lstat_does_not_follow_symlink,
    stat_missing_or_empty_path_is_enoent,
    stat_bad_buffer_pointer_is_efault,
    fstat_of_dev_null_is_char_device,
    newfstatat_empty_path_stats_the_fd,
    newfstatat_resolves_relative_to_dirfd,
    statx_reports_size_and_mode,
    statx_reserved_mask_bit_is_einval,
    getdents64_lists_entries_with_types,
    getdents64_on_a_file_is_enotdir,
    getdents64_buffer_too_small_is_einval,
    mkdir_creates_a_directory,
    mkdir_existing_is_eexist,
    mkdir_missing_parent_is_enoent,
    mkdirat_resolves_relative_to_dirfd,
    rmdir_non_empty_directory_is_enotempty,
    rmdir_of_a_file_is_enotdir,
    rmdir_of_dot_is_einval,
    unlink_of_a_directory_is_eisdir,
    unlink_missing_is_enoent,
    unlinkat_removedir_removes_directory,
    unlinkat_bad_flags_is_einval,
    unlinked_open_file_stays_readable,
    rename_replaces_existing_target,
    rename_missing_source_is_enoent,
    rename_directory_over_file_is_enotdir,
    rename_file_over_directory_is_eisdir,
    rename_directory_into_itself_is_einval,
    renameat_moves_between_directories,
    ftruncate_grows_with_zeros_and_shrinks,
    a_file_may_be_larger_than_64_mib,
    ftruncate_read_only_fd_is_einval,
    ftruncate_negative_length_is_einval,
    fsync_and_fdatasync_on_a_file_succeed,
    fsync_bad_fd_is_ebadf,
    dup_returns_lowest_free_fd,
    dup_shares_the_file_offset,
    dup2_onto_itself_returns_fd,
    dup2_replaces_an_open_fd,
    dup2_bad_oldfd_is_ebadf,
    dup3_same_fd_is_einval,
    dup3_bad_flags_is_einval,
    dup3_cloexec_sets_fd_flag,
    fcntl_dupfd_returns_lowest_fd_at_or_above_arg,
    fcntl_setfd_and_getfd_cloexec,
    fcntl_getfl_reports_access_mode_and_append,
    fcntl_unknown_command_is_einval,
    ioctl_tiocgwinsz_on_a_file_is_enotty,
    ioctl_fionread_on_a_file_counts_bytes_left,
    ioctl_bad_fd_is_ebadf,
    close_twice_is_ebadf,
];

fn write_then_read_back() -> TestResult {
    let path = scratch("rw");
    let fd = check_ok!(sys::open(path.as_cstr(), O_CREAT | O_RDWR | O_TRUNC, 0o644)) as i32;
    check_eq!(sys::write(fd, b"hello"), Ok(5));
    check_eq!(sys::lseek(fd, 0, SEEK_SET), Ok(0));
    let mut buf = [0u8; 16];
    check_eq!(sys::read(fd, &mut buf), Ok(5));
    check_eq!(&buf[..5], b"hello");
    check_eq!(sys::read(fd, &mut buf), Ok(0)); // end of file
    check_eq!(sys::read(fd, &mut []), Ok(0));
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_missing_file_is_enoent() -> TestResult {
    check_err!(sys::open(scratch("missing").as_cstr(), O_RDONLY, 0), ENOENT);
    check_err!(
        sys::open(scratch("missing/file").as_cstr(), O_CREAT | O_WRONLY, 0o644),
        ENOENT
    );
    Ok(())
}

fn open_creat_excl_on_existing_file_is_eexist() -> TestResult {
    let path = make_file("excl", b"")?;
    check_err!(
        sys::open(path.as_cstr(), O_CREAT | O_EXCL | O_WRONLY, 0o644),
        EEXIST
    );
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_directory_for_writing_is_eisdir() -> TestResult {
    check_err!(sys::open(work_dir().as_cstr(), O_WRONLY, 0), EISDIR);
    check_err!(sys::open(work_dir().as_cstr(), O_RDWR, 0), EISDIR);
    let fd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY, 0)) as i32;
    check_ok!(sys::close(fd));
    Ok(())
}

fn open_o_directory_on_file_is_enotdir() -> TestResult {
    let path = make_file("odir", b"")?;
    check_err!(
        sys::open(path.as_cstr(), O_RDONLY | O_DIRECTORY, 0),
        ENOTDIR
    );
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_path_through_a_file_is_enotdir() -> TestResult {
    let path = make_file("notdir", b"")?;
    check_err!(
        sys::open(scratch("notdir/x").as_cstr(), O_RDONLY, 0),
        ENOTDIR
    );
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_name_longer_than_255_is_enametoolong() -> TestResult {
    let name = [b'a'; 256];
    let name = core::str::from_utf8(&name).unwrap_or("");
    let path = StackStr::<512>::from_fmt(format_args!("{}/{name}", work_dir()));
    check_err!(
        sys::open(path.as_cstr(), O_CREAT | O_WRONLY, 0o644),
        ENAMETOOLONG
    );
    // 255 bytes is the longest name allowed: this one is merely missing.
    check_err!(
        sys::open(scratch(&name[..255]).as_cstr(), O_RDONLY, 0),
        ENOENT
    );
    Ok(())
}

fn open_bad_path_pointer_is_efault() -> TestResult {
    for addr in [UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must reject the path pointer; none of our memory is touched.
        let ret = sys::ret(unsafe { syscall3(nr::OPEN, addr, O_RDONLY as usize, 0) });
        check_err!(ret, EFAULT);
    }
    Ok(())
}

fn open_o_append_writes_at_end() -> TestResult {
    let path = make_file("append", b"ab")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_WRONLY | O_APPEND, 0)) as i32;
    check_eq!(sys::lseek(fd, 0, SEEK_SET), Ok(0));
    check_eq!(sys::write(fd, b"cd"), Ok(2)); // goes to the end all the same
    check_eq!(sys::lseek(fd, 0, SEEK_CUR), Ok(4));
    check_ok!(sys::close(fd));
    let mut st = Stat::default();
    check_ok!(sys::stat(path.as_cstr(), &mut st));
    check_eq!(st.st_size, 4);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_o_trunc_empties_file() -> TestResult {
    let path = make_file("trunc", b"data")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_WRONLY | O_TRUNC, 0)) as i32;
    let mut st = Stat::default();
    check_ok!(sys::fstat(fd, &mut st));
    check_eq!(st.st_size, 0);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn open_beyond_rlimit_nofile_is_emfile() -> TestResult {
    // In a child, so the limit and the open fds die with it.
    let status = run_child(|| {
        let limit = Rlimit {
            rlim_cur: 8,
            rlim_max: 8,
        };
        if sys::prlimit64(0, RLIMIT_NOFILE, Some(&limit), None).is_err() {
            return 2;
        }
        // fds 0..=2 are open; 3..=7 (closed first, whatever we inherited) fit under the
        // limit, fd 8 would not.
        for fd in 3..8 {
            let _ = sys::close(fd);
        }
        for fd in 3..8 {
            if sys::open(c"/dev/null", O_RDONLY, 0) != Ok(fd) {
                return 3;
            }
        }
        if sys::open(c"/dev/null", O_RDONLY, 0) != Err(ulib::Errno::EMFILE) {
            return 4;
        }
        // dup2 to an fd at or above the limit is EBADF, not EMFILE.
        status_if(sys::dup2(0, 8), Err(ulib::Errno::EBADF))
    })?;
    check_eq!(status.exit_code(), Some(0));
    Ok(())
}

fn openat_resolves_relative_to_dirfd() -> TestResult {
    let dirfd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    let fd = check_ok!(sys::openat(dirfd, c"at-file", O_CREAT | O_WRONLY, 0o644)) as i32;
    check_ok!(sys::close(fd));
    let mut st = Stat::default();
    check_ok!(sys::stat(scratch("at-file").as_cstr(), &mut st));
    check_ok!(sys::unlinkat(dirfd, c"at-file", 0));
    check_ok!(sys::close(dirfd));
    Ok(())
}

fn openat_absolute_path_ignores_dirfd() -> TestResult {
    let fd = check_ok!(sys::openat(999, c"/dev/null", O_RDONLY, 0)) as i32;
    check_ok!(sys::close(fd));
    Ok(())
}

fn openat_bad_dirfd_is_ebadf() -> TestResult {
    check_err!(sys::openat(999, c"x", O_RDONLY, 0), EBADF);
    Ok(())
}

fn openat_dirfd_of_a_file_is_enotdir() -> TestResult {
    let path = make_file("at-notdir", b"")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_err!(sys::openat(fd, c"x", O_RDONLY, 0), ENOTDIR);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn read_and_write_bad_fd_is_ebadf() -> TestResult {
    let mut buf = [0u8; 4];
    for fd in [-1, 999] {
        check_err!(sys::read(fd, &mut buf), EBADF);
        check_err!(sys::write(fd, b"x"), EBADF);
    }
    Ok(())
}

fn read_write_only_fd_is_ebadf() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_WRONLY, 0)) as i32;
    check_err!(sys::read(fd, &mut [0u8; 4]), EBADF);
    check_ok!(sys::close(fd));
    Ok(())
}

fn write_read_only_fd_is_ebadf() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check_err!(sys::write(fd, b"x"), EBADF);
    check_ok!(sys::close(fd));
    Ok(())
}

fn read_directory_is_eisdir() -> TestResult {
    let fd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_err!(sys::read(fd, &mut [0u8; 16]), EISDIR);
    check_ok!(sys::close(fd));
    Ok(())
}

fn read_into_bad_pointer_is_efault() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/zero", O_RDONLY, 0)) as i32;
    for addr in [UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse to write at addr; none of our memory is touched.
        let ret = sys::ret(unsafe { syscall3(nr::READ, fd as usize, addr, 8) });
        check_err!(ret, EFAULT);
    }
    check_ok!(sys::close(fd));
    Ok(())
}

fn write_from_bad_pointer_is_efault() -> TestResult {
    let path = scratch("efault");
    let fd = check_ok!(sys::open(
        path.as_cstr(),
        O_CREAT | O_WRONLY | O_TRUNC,
        0o644
    )) as i32;
    for addr in [UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse to read at addr; none of our memory is touched.
        let ret = sys::ret(unsafe { syscall3(nr::WRITE, fd as usize, addr, 8) });
        check_err!(ret, EFAULT);
    }
    let mut st = Stat::default();
    check_ok!(sys::fstat(fd, &mut st));
    check_eq!(st.st_size, 0);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn readv_writev_scatter_and_gather() -> TestResult {
    let path = scratch("vec");
    let fd = check_ok!(sys::open(path.as_cstr(), O_CREAT | O_RDWR | O_TRUNC, 0o644)) as i32;
    let iov = [IoVec::new(b"hel"), IoVec::new(b""), IoVec::new(b"lo world")];
    check_eq!(sys::writev(fd, &iov), Ok(11));
    check_eq!(sys::lseek(fd, 0, SEEK_SET), Ok(0));
    let (mut a, mut b) = ([0u8; 5], [0u8; 10]);
    let mut iov = [IoVecMut::new(&mut a), IoVecMut::new(&mut b)];
    check_eq!(sys::readv(fd, &mut iov), Ok(11));
    check_eq!(&a, b"hello");
    check_eq!(&b[..6], b" world");
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn writev_more_than_1024_iovecs_is_einval() -> TestResult {
    let iov = [IoVec::new(b"x")];
    // SAFETY: the count is refused before the kernel reads the (too short) array.
    let ret = sys::ret(unsafe { syscall3(nr::WRITEV, 1, iov.as_ptr() as usize, 1025) });
    check_err!(ret, EINVAL);
    // SAFETY: as above; -1 is a huge unsigned count.
    let ret = sys::ret(unsafe { syscall3(nr::WRITEV, 1, iov.as_ptr() as usize, usize::MAX) });
    check_err!(ret, EINVAL);
    Ok(())
}

fn readv_bad_iovec_pointer_is_efault() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/zero", O_RDONLY, 0)) as i32;
    // SAFETY: the kernel must refuse to read the iovec array at address 1.
    let ret = sys::ret(unsafe { syscall3(nr::READV, fd as usize, UNMAPPED_ADDR, 1) });
    check_err!(ret, EFAULT);
    check_ok!(sys::close(fd));
    Ok(())
}

fn pread_pwrite_leave_file_offset_alone() -> TestResult {
    let path = make_file("pos", b"0123456789")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::lseek(fd, 2, SEEK_SET), Ok(2));
    check_eq!(sys::pwrite64(fd, b"ab", 6), Ok(2));
    let mut buf = [0u8; 4];
    check_eq!(sys::pread64(fd, &mut buf, 5), Ok(4));
    check_eq!(&buf, b"5ab8");
    check_eq!(sys::pread64(fd, &mut buf, 100), Ok(0)); // past the end
    check_eq!(sys::lseek(fd, 0, SEEK_CUR), Ok(2));
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

/// Far past the end of a file that nobody wrote since boot (in our guest: an initramfs
/// file, still the archive's bytes): nothing to read, no error.
fn read_far_past_the_end_of_an_unwritten_file() -> TestResult {
    let exec = Path::from_fmt(format_args!("{}", exec_path()));
    let fd = check_ok!(sys::open(exec.as_cstr(), O_RDONLY, 0)) as i32;
    let mut buf = [0u8; 4];
    check_eq!(sys::pread64(fd, &mut buf, 1 << 30), Ok(0));
    check_eq!(sys::lseek(fd, 1 << 30, SEEK_SET), Ok(1 << 30));
    check_eq!(sys::read(fd, &mut buf), Ok(0));
    check_ok!(sys::close(fd));
    Ok(())
}

fn pread_negative_offset_is_einval() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/zero", O_RDONLY, 0)) as i32;
    check_err!(sys::pread64(fd, &mut [0u8; 4], -1), EINVAL);
    check_ok!(sys::close(fd));
    Ok(())
}

fn lseek_set_cur_end() -> TestResult {
    let path = make_file("seek", b"0123456789")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_eq!(sys::lseek(fd, -2, SEEK_END), Ok(8));
    check_eq!(sys::lseek(fd, -3, SEEK_CUR), Ok(5));
    let mut buf = [0u8; 2];
    check_eq!(sys::read(fd, &mut buf), Ok(2));
    check_eq!(&buf, b"56");
    check_eq!(sys::lseek(fd, 0, SEEK_CUR), Ok(7));
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn lseek_past_end_then_write_leaves_zeros() -> TestResult {
    let path = make_file("hole", b"ab")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::lseek(fd, 6, SEEK_SET), Ok(6));
    check_eq!(sys::read(fd, &mut [0u8; 4]), Ok(0));
    check_eq!(sys::write(fd, b"z"), Ok(1));
    let mut buf = [0xffu8; 8];
    check_eq!(sys::pread64(fd, &mut buf, 0), Ok(7));
    check_eq!(&buf[..7], b"ab\0\0\0\0z");
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn lseek_to_negative_offset_is_einval() -> TestResult {
    let path = make_file("negseek", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_err!(sys::lseek(fd, -1, SEEK_SET), EINVAL);
    check_err!(sys::lseek(fd, -4, SEEK_END), EINVAL);
    check_eq!(sys::lseek(fd, 0, SEEK_CUR), Ok(0)); // unchanged
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn lseek_bad_whence_is_einval() -> TestResult {
    let fd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY, 0)) as i32;
    check_err!(sys::lseek(fd, 0, 5), EINVAL);
    check_ok!(sys::close(fd));
    Ok(())
}

fn stat_reports_type_size_and_mode() -> TestResult {
    let path = make_file("stat", b"12345")?;
    let mut st = Stat::default();
    check_eq!(sys::stat(path.as_cstr(), &mut st), Ok(0));
    check_eq!(st.st_mode & S_IFMT, S_IFREG);
    check_eq!(st.st_mode & 0o777, 0o644); // main set umask 022
    check_eq!(st.st_size, 5);
    check_eq!(st.st_nlink, 1);
    check!(st.st_ino != 0);
    check_ok!(sys::stat(work_dir().as_cstr(), &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFDIR);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn fstat_agrees_with_stat() -> TestResult {
    let path = make_file("fstat", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let (mut a, mut b) = (Stat::default(), Stat::default());
    check_ok!(sys::stat(path.as_cstr(), &mut a));
    check_ok!(sys::fstat(fd, &mut b));
    check_eq!(
        (b.st_dev, b.st_ino, b.st_mode, b.st_size),
        (a.st_dev, a.st_ino, a.st_mode, a.st_size)
    );
    check_ok!(sys::close(fd));
    check_err!(sys::fstat(fd, &mut b), EBADF);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn lstat_does_not_follow_symlink() -> TestResult {
    let target = make_file("link-target", b"abc")?;
    let link = scratch("link");
    check_ok!(sys::symlink(target.as_cstr(), link.as_cstr()));
    let mut st = Stat::default();
    check_ok!(sys::lstat(link.as_cstr(), &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFLNK);
    check_eq!(st.st_size, target.as_bytes().len() as i64); // a symlink's size is its text's
    check_ok!(sys::stat(link.as_cstr(), &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFREG);
    let mut buf = [0u8; 256];
    let n = check_ok!(sys::readlink(link.as_cstr(), &mut buf));
    check_eq!(&buf[..n], target.as_bytes());
    check_ok!(sys::unlink(link.as_cstr()));
    check_ok!(sys::unlink(target.as_cstr()));
    Ok(())
}

fn stat_missing_or_empty_path_is_enoent() -> TestResult {
    let mut st = Stat::default();
    check_err!(sys::stat(scratch("missing").as_cstr(), &mut st), ENOENT);
    check_err!(sys::stat(c"", &mut st), ENOENT);
    Ok(())
}

fn stat_bad_buffer_pointer_is_efault() -> TestResult {
    // SAFETY: the kernel must refuse to write the stat buffer at address 1.
    let ret =
        sys::ret(unsafe { syscall2(nr::STAT, c"/dev/null".as_ptr() as usize, UNMAPPED_ADDR) });
    check_err!(ret, EFAULT);
    Ok(())
}

fn fstat_of_dev_null_is_char_device() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDWR, 0)) as i32;
    let mut st = Stat::default();
    check_ok!(sys::fstat(fd, &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFCHR);
    check_eq!(st.st_rdev, (1 << 8) | 3); // major 1, minor 3
    check_ok!(sys::close(fd));
    Ok(())
}

fn newfstatat_empty_path_stats_the_fd() -> TestResult {
    let path = make_file("empty-path", b"xyz")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let mut st = Stat::default();
    check_ok!(sys::newfstatat(fd, c"", &mut st, AT_EMPTY_PATH));
    check_eq!(st.st_size, 3);
    check_err!(sys::newfstatat(fd, c"", &mut st, 0), ENOENT); // "" needs AT_EMPTY_PATH
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn newfstatat_resolves_relative_to_dirfd() -> TestResult {
    let path = make_file("fstatat", b"1234")?;
    let dirfd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    let mut st = Stat::default();
    check_ok!(sys::newfstatat(dirfd, c"fstatat", &mut st, 0));
    check_eq!(st.st_size, 4);
    check_err!(
        sys::newfstatat(dirfd, c"fstatat", &mut st, 0x4000_0000),
        EINVAL
    ); // unknown flag
    check_ok!(sys::close(dirfd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn statx_reports_size_and_mode() -> TestResult {
    let path = make_file("statx", b"123456")?;
    let mut stx = Statx::default();
    check_ok!(sys::statx(
        AT_FDCWD,
        path.as_cstr(),
        0,
        STATX_BASIC_STATS,
        &mut stx
    ));
    check!(
        stx.stx_mask & (STATX_TYPE | STATX_MODE | STATX_SIZE)
            == STATX_TYPE | STATX_MODE | STATX_SIZE
    );
    check_eq!(stx.stx_size, 6);
    check_eq!(stx.stx_mode as u32 & S_IFMT, S_IFREG);
    check_eq!(stx.stx_mode & 0o777, 0o644);
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn statx_reserved_mask_bit_is_einval() -> TestResult {
    let mut stx = Statx::default();
    check_err!(
        sys::statx(AT_FDCWD, c"/dev/null", 0, 0x8000_0000, &mut stx),
        EINVAL
    );
    Ok(())
}

fn getdents64_lists_entries_with_types() -> TestResult {
    let dir = scratch("dents");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    let file = make_file("dents/file", b"")?;
    let sub = scratch("dents/sub");
    check_ok!(sys::mkdir(sub.as_cstr(), 0o755));
    let fd = check_ok!(sys::open(dir.as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    let mut buf = [0u8; 1024];
    let n = check_ok!(sys::getdents64(fd, &mut buf));
    let mut seen = 0;
    for d in dirents(&buf[..n]) {
        let expected = match d.name.to_bytes() {
            b"." | b".." | b"sub" => DT_DIR,
            b"file" => DT_REG,
            _ => fail!("unexpected entry {:?}", d.name),
        };
        check_eq!(d.kind, expected);
        check!(d.ino != 0);
        seen += 1;
    }
    check_eq!(seen, 4);
    check_eq!(sys::getdents64(fd, &mut buf), Ok(0)); // the end
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(file.as_cstr()));
    check_ok!(sys::rmdir(sub.as_cstr()));
    check_ok!(sys::rmdir(dir.as_cstr()));
    Ok(())
}

fn getdents64_on_a_file_is_enotdir() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check_err!(sys::getdents64(fd, &mut [0u8; 256]), ENOTDIR);
    check_ok!(sys::close(fd));
    check_err!(sys::getdents64(fd, &mut [0u8; 256]), EBADF);
    Ok(())
}

fn getdents64_buffer_too_small_is_einval() -> TestResult {
    let fd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_err!(sys::getdents64(fd, &mut [0u8; 8]), EINVAL); // not even one record fits
    check_ok!(sys::close(fd));
    Ok(())
}

fn mkdir_creates_a_directory() -> TestResult {
    let dir = scratch("newdir");
    check_eq!(sys::mkdir(dir.as_cstr(), 0o750), Ok(0));
    let mut st = Stat::default();
    check_ok!(sys::stat(dir.as_cstr(), &mut st));
    check_eq!(st.st_mode & S_IFMT, S_IFDIR);
    check_eq!(st.st_mode & 0o777, 0o750);
    check_ok!(sys::rmdir(dir.as_cstr()));
    Ok(())
}

fn mkdir_existing_is_eexist() -> TestResult {
    check_err!(sys::mkdir(work_dir().as_cstr(), 0o755), EEXIST);
    let file = make_file("mkdir-file", b"")?;
    check_err!(sys::mkdir(file.as_cstr(), 0o755), EEXIST); // whatever the existing type
    check_ok!(sys::unlink(file.as_cstr()));
    Ok(())
}

fn mkdir_missing_parent_is_enoent() -> TestResult {
    check_err!(
        sys::mkdir(scratch("no/such/parent").as_cstr(), 0o755),
        ENOENT
    );
    Ok(())
}

fn mkdirat_resolves_relative_to_dirfd() -> TestResult {
    let dirfd = check_ok!(sys::open(work_dir().as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_ok!(sys::mkdirat(dirfd, c"at-dir", 0o755));
    check_err!(sys::mkdirat(dirfd, c"at-dir", 0o755), EEXIST);
    check_ok!(sys::unlinkat(dirfd, c"at-dir", AT_REMOVEDIR));
    check_ok!(sys::close(dirfd));
    Ok(())
}

fn rmdir_non_empty_directory_is_enotempty() -> TestResult {
    let dir = scratch("full");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    let file = make_file("full/f", b"")?;
    check_err!(sys::rmdir(dir.as_cstr()), ENOTEMPTY);
    check_ok!(sys::unlink(file.as_cstr()));
    check_ok!(sys::rmdir(dir.as_cstr()));
    check_err!(sys::rmdir(dir.as_cstr()), ENOENT);
    Ok(())
}

fn rmdir_of_a_file_is_enotdir() -> TestResult {
    let file = make_file("rmdir-file", b"")?;
    check_err!(sys::rmdir(file.as_cstr()), ENOTDIR);
    check_ok!(sys::unlink(file.as_cstr()));
    Ok(())
}

fn rmdir_of_dot_is_einval() -> TestResult {
    check_err!(sys::rmdir(scratch(".").as_cstr()), EINVAL);
    Ok(())
}

fn unlink_of_a_directory_is_eisdir() -> TestResult {
    // Linux answers EISDIR (POSIX allows EPERM).
    let dir = scratch("unlink-dir");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    check_err!(sys::unlink(dir.as_cstr()), EISDIR);
    check_ok!(sys::rmdir(dir.as_cstr()));
    Ok(())
}

fn unlink_missing_is_enoent() -> TestResult {
    check_err!(sys::unlink(scratch("missing").as_cstr()), ENOENT);
    Ok(())
}

fn unlinkat_removedir_removes_directory() -> TestResult {
    let dir = scratch("unlinkat-dir");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    check_err!(sys::unlinkat(AT_FDCWD, dir.as_cstr(), 0), EISDIR);
    check_ok!(sys::unlinkat(AT_FDCWD, dir.as_cstr(), AT_REMOVEDIR));
    let file = make_file("unlinkat-file", b"")?;
    check_err!(
        sys::unlinkat(AT_FDCWD, file.as_cstr(), AT_REMOVEDIR),
        ENOTDIR
    );
    check_ok!(sys::unlinkat(AT_FDCWD, file.as_cstr(), 0));
    Ok(())
}

fn unlinkat_bad_flags_is_einval() -> TestResult {
    check_err!(sys::unlinkat(AT_FDCWD, scratch("x").as_cstr(), 0x1), EINVAL);
    Ok(())
}

fn unlinked_open_file_stays_readable() -> TestResult {
    let path = make_file("orphan", b"still here")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_ok!(sys::unlink(path.as_cstr()));
    let mut st = Stat::default();
    check_err!(sys::stat(path.as_cstr(), &mut st), ENOENT);
    check_ok!(sys::fstat(fd, &mut st));
    check_eq!(st.st_nlink, 0);
    let mut buf = [0u8; 16];
    check_eq!(sys::read(fd, &mut buf), Ok(10));
    check_eq!(&buf[..10], b"still here");
    check_ok!(sys::close(fd));
    Ok(())
}

fn rename_replaces_existing_target() -> TestResult {
    let a = make_file("ren-a", b"new")?;
    let b = make_file("ren-b", b"old!")?;
    check_eq!(sys::rename(a.as_cstr(), b.as_cstr()), Ok(0));
    let mut st = Stat::default();
    check_err!(sys::stat(a.as_cstr(), &mut st), ENOENT);
    check_ok!(sys::stat(b.as_cstr(), &mut st));
    check_eq!(st.st_size, 3);
    check_ok!(sys::unlink(b.as_cstr()));
    Ok(())
}

fn rename_missing_source_is_enoent() -> TestResult {
    check_err!(
        sys::rename(scratch("missing").as_cstr(), scratch("x").as_cstr()),
        ENOENT
    );
    Ok(())
}

fn rename_directory_over_file_is_enotdir() -> TestResult {
    let dir = scratch("ren-dir");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    let file = make_file("ren-file", b"")?;
    check_err!(sys::rename(dir.as_cstr(), file.as_cstr()), ENOTDIR);
    check_ok!(sys::rmdir(dir.as_cstr()));
    check_ok!(sys::unlink(file.as_cstr()));
    Ok(())
}

fn rename_file_over_directory_is_eisdir() -> TestResult {
    let dir = scratch("ren-dir2");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    let file = make_file("ren-file2", b"")?;
    check_err!(sys::rename(file.as_cstr(), dir.as_cstr()), EISDIR);
    check_ok!(sys::rmdir(dir.as_cstr()));
    check_ok!(sys::unlink(file.as_cstr()));
    Ok(())
}

fn rename_directory_into_itself_is_einval() -> TestResult {
    let dir = scratch("ren-self");
    check_ok!(sys::mkdir(dir.as_cstr(), 0o755));
    check_err!(
        sys::rename(dir.as_cstr(), scratch("ren-self/inner").as_cstr()),
        EINVAL
    );
    check_ok!(sys::rmdir(dir.as_cstr()));
    Ok(())
}

fn renameat_moves_between_directories() -> TestResult {
    let (d1, d2) = (scratch("ren-d1"), scratch("ren-d2"));
    check_ok!(sys::mkdir(d1.as_cstr(), 0o755));
    check_ok!(sys::mkdir(d2.as_cstr(), 0o755));
    let file = make_file("ren-d1/f", b"x")?;
    let fd1 = check_ok!(sys::open(d1.as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    let fd2 = check_ok!(sys::open(d2.as_cstr(), O_RDONLY | O_DIRECTORY, 0)) as i32;
    check_ok!(sys::renameat(fd1, c"f", fd2, c"g"));
    let mut st = Stat::default();
    check_err!(sys::stat(file.as_cstr(), &mut st), ENOENT);
    check_ok!(sys::newfstatat(fd2, c"g", &mut st, 0));
    check_ok!(sys::unlinkat(fd2, c"g", 0));
    check_ok!(sys::close(fd1));
    check_ok!(sys::close(fd2));
    check_ok!(sys::rmdir(d1.as_cstr()));
    check_ok!(sys::rmdir(d2.as_cstr()));
    Ok(())
}

fn a_file_may_be_larger_than_64_mib() -> TestResult {
    // A sparse 100 MiB file with a MiB written near its end (the RAM file system's size
    // limit follows the guest's memory, as tmpfs's does).
    const MIB: usize = 1 << 20;
    let path = make_file("large", b"")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::ftruncate(fd, 100 * MIB as i64), Ok(0));
    let chunk = [0x5au8; 4096];
    for i in 0..256 {
        check_eq!(sys::pwrite64(fd, &chunk, (90 * MIB + i * 4096) as i64), Ok(4096));
    }
    let mut st = Stat::default();
    check_eq!(sys::fstat(fd, &mut st), Ok(0));
    check_eq!(st.st_size, 100 * MIB as i64);
    let mut b = [0u8; 2];
    check_eq!(sys::pread64(fd, &mut b, (91 * MIB - 1) as i64), Ok(2));
    check_eq!(b, [0x5a, 0]);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn ftruncate_grows_with_zeros_and_shrinks() -> TestResult {
    let path = make_file("ftrunc", b"abcdef")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::ftruncate(fd, 3), Ok(0));
    check_eq!(sys::ftruncate(fd, 5), Ok(0));
    let mut buf = [0xffu8; 8];
    check_eq!(sys::pread64(fd, &mut buf, 0), Ok(5));
    check_eq!(&buf[..5], b"abc\0\0");
    check_eq!(sys::lseek(fd, 0, SEEK_CUR), Ok(0)); // the offset does not move
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn ftruncate_read_only_fd_is_einval() -> TestResult {
    // EINVAL, not EBADF: the fd is valid, it just is not open for writing.
    let path = make_file("ftrunc-ro", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_err!(sys::ftruncate(fd, 0), EINVAL);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn ftruncate_negative_length_is_einval() -> TestResult {
    let path = make_file("ftrunc-neg", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_err!(sys::ftruncate(fd, -1), EINVAL);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn fsync_and_fdatasync_on_a_file_succeed() -> TestResult {
    let path = make_file("sync", b"abc")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDWR, 0)) as i32;
    check_eq!(sys::fsync(fd), Ok(0));
    check_eq!(sys::fdatasync(fd), Ok(0));
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn fsync_bad_fd_is_ebadf() -> TestResult {
    check_err!(sys::fsync(999), EBADF);
    check_err!(sys::fdatasync(-1), EBADF);
    Ok(())
}

fn dup_returns_lowest_free_fd() -> TestResult {
    let lowest = lowest_free_fd(0);
    let a = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check_eq!(a, lowest); // open too takes the lowest
    let b = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check!(b > a);
    check_ok!(sys::close(a));
    check_eq!(sys::dup(b), Ok(a as usize)); // a is free again, and lowest
    check_ok!(sys::close(a));
    check_ok!(sys::close(b));
    check_err!(sys::dup(b), EBADF);
    Ok(())
}

fn dup_shares_the_file_offset() -> TestResult {
    let path = make_file("dup", b"0123456789")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    let copy = check_ok!(sys::dup(fd)) as i32;
    check_eq!(sys::lseek(fd, 4, SEEK_SET), Ok(4));
    check_eq!(sys::lseek(copy, 0, SEEK_CUR), Ok(4));
    check_ok!(sys::close(fd));
    check_ok!(sys::close(copy));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn dup2_onto_itself_returns_fd() -> TestResult {
    check_eq!(sys::dup2(1, 1), Ok(1));
    check_err!(sys::dup2(999, 999), EBADF); // but only if it is open
    Ok(())
}

fn dup2_replaces_an_open_fd() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/zero", O_RDONLY, 0)) as i32;
    let target = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check_eq!(sys::dup2(fd, target), Ok(target as usize));
    let mut buf = [1u8; 4];
    check_eq!(sys::read(target, &mut buf), Ok(4)); // /dev/zero now, not /dev/null (0 bytes)
    check_eq!(buf, [0; 4]);
    check_ok!(sys::close(fd));
    check_ok!(sys::close(target));
    Ok(())
}

fn dup2_bad_oldfd_is_ebadf() -> TestResult {
    check_err!(sys::dup2(999, 100), EBADF);
    check_err!(sys::dup2(-1, 100), EBADF);
    Ok(())
}

fn dup3_same_fd_is_einval() -> TestResult {
    check_err!(sys::dup3(1, 1, 0), EINVAL); // unlike dup2
    Ok(())
}

fn dup3_bad_flags_is_einval() -> TestResult {
    check_err!(sys::dup3(1, 100, O_NONBLOCK), EINVAL);
    Ok(())
}

fn dup3_cloexec_sets_fd_flag() -> TestResult {
    let a = lowest_free_fd(100);
    check_eq!(sys::dup3(1, a, O_CLOEXEC), Ok(a as usize));
    check_eq!(sys::fcntl(a, F_GETFD, 0), Ok(FD_CLOEXEC));
    let b = lowest_free_fd(a + 1);
    check_eq!(sys::dup2(1, b), Ok(b as usize));
    check_eq!(sys::fcntl(b, F_GETFD, 0), Ok(0)); // dup2 never sets it
    check_ok!(sys::close(a));
    check_ok!(sys::close(b));
    Ok(())
}

fn fcntl_dupfd_returns_lowest_fd_at_or_above_arg() -> TestResult {
    let mut fds = [0; 3];
    for (i, cmd) in [F_DUPFD, F_DUPFD, F_DUPFD_CLOEXEC].into_iter().enumerate() {
        fds[i] = lowest_free_fd(50);
        check_eq!(sys::fcntl(1, cmd, 50), Ok(fds[i] as usize));
    }
    check_eq!(sys::fcntl(fds[1], F_GETFD, 0), Ok(0));
    check_eq!(sys::fcntl(fds[2], F_GETFD, 0), Ok(FD_CLOEXEC));
    for fd in fds {
        check_ok!(sys::close(fd));
    }
    Ok(())
}

fn fcntl_setfd_and_getfd_cloexec() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDONLY | O_CLOEXEC, 0)) as i32;
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC));
    check_eq!(sys::fcntl(fd, F_SETFD, 0), Ok(0));
    check_eq!(sys::fcntl(fd, F_GETFD, 0), Ok(0));
    check_ok!(sys::close(fd));
    check_err!(sys::fcntl(fd, F_GETFD, 0), EBADF);
    Ok(())
}

fn fcntl_getfl_reports_access_mode_and_append() -> TestResult {
    let path = make_file("getfl", b"")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_WRONLY | O_APPEND, 0)) as i32;
    let fl = check_ok!(sys::fcntl(fd, F_GETFL, 0)) as i32;
    check_eq!(fl & 3, O_WRONLY);
    check_eq!(fl & O_APPEND, O_APPEND);
    check_eq!(sys::fcntl(fd, F_SETFL, 0), Ok(0)); // clears O_APPEND; cannot change the access mode
    let fl = check_ok!(sys::fcntl(fd, F_GETFL, 0)) as i32;
    check_eq!(fl & (3 | O_APPEND), O_WRONLY);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn fcntl_unknown_command_is_einval() -> TestResult {
    check_err!(sys::fcntl(1, 9999, 0), EINVAL);
    Ok(())
}

fn ioctl_tiocgwinsz_on_a_file_is_enotty() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    let mut ws = WinSize::default();
    check_err!(
        // SAFETY: TIOCGWINSZ writes at most one WinSize.
        unsafe { sys::ioctl(fd, TIOCGWINSZ, &raw mut ws as usize) },
        ENOTTY
    );
    let path = make_file("ioctl", b"")?;
    let file = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_err!(
        // SAFETY: as above.
        unsafe { sys::ioctl(file, TIOCGWINSZ, &raw mut ws as usize) },
        ENOTTY
    );
    check_ok!(sys::close(file));
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn ioctl_fionread_on_a_file_counts_bytes_left() -> TestResult {
    let path = make_file("fionread", b"0123456789")?;
    let fd = check_ok!(sys::open(path.as_cstr(), O_RDONLY, 0)) as i32;
    check_eq!(sys::lseek(fd, 3, SEEK_SET), Ok(3));
    let mut n: i32 = -1;
    check_eq!(
        // SAFETY: FIONREAD writes one int.
        unsafe { sys::ioctl(fd, FIONREAD, &raw mut n as usize) },
        Ok(0)
    );
    check_eq!(n, 7);
    check_ok!(sys::close(fd));
    check_ok!(sys::unlink(path.as_cstr()));
    Ok(())
}

fn ioctl_bad_fd_is_ebadf() -> TestResult {
    let mut ws = WinSize::default();
    check_err!(
        // SAFETY: TIOCGWINSZ writes at most one WinSize.
        unsafe { sys::ioctl(999, TIOCGWINSZ, &raw mut ws as usize) },
        EBADF
    );
    Ok(())
}

fn close_twice_is_ebadf() -> TestResult {
    let fd = check_ok!(sys::open(c"/dev/null", O_RDONLY, 0)) as i32;
    check_eq!(sys::close(fd), Ok(0));
    check_err!(sys::close(fd), EBADF);
    check_err!(sys::close(-1), EBADF);
    Ok(())
}
