/*
 * IORING_OP_SPLICE and IORING_OP_TEE, and the splice(2)/tee(2) system calls they mirror.
 *
 * SPLICE moves up to len bytes from splice_fd_in to sqe->fd; one side must be a pipe.
 * splice_off_in and off are offsets on the two sides, -1 meaning "none: use (and move)
 * the file position". splice_flags takes SPLICE_F_MOVE/NONBLOCK/MORE/GIFT, and
 * SPLICE_F_FD_IN_FIXED (1U << 31) to make splice_fd_in a registered-file slot. TEE
 * duplicates up to len bytes from one pipe into another without consuming them; its
 * splice_off_in and off must be 0. Linux runs both in an io-wq worker (they are always
 * forced async) and never arms a poll for them: an empty or full pipe is waited on in the
 * worker, or, with O_NONBLOCK or SPLICE_F_NONBLOCK, ends the request with -EAGAIN.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/stat.h>

#ifndef SPLICE_F_MOVE
#define SPLICE_F_MOVE 1
#define SPLICE_F_NONBLOCK 2
#define SPLICE_F_MORE 4
#define SPLICE_F_GIFT 8
#endif
#define F_IN_FIXED (1U << 31) /* SPLICE_F_FD_IN_FIXED */

/* The pipes' default capacity on Linux: 16 pages. */
#define PIPE_CAP 65536

static unsigned char src[100000], got[100000 + 1];

/* A file under ut_dir (opened `flags`) holding `n` bytes of src, pattern `seed`; pos 0. */
static int mkfile(const char *tag, int flags, size_t n, unsigned seed)
{
	char path[256];
	int fd = ut_tmpfile(tag, O_RDWR, path);
	if (fd < 0)
		return fd;
	ut_pattern(src, sizeof src, seed);
	if (n && write(fd, src, n) != (ssize_t)n) {
		close(fd);
		return -EIO;
	}
	if (flags != O_RDWR) { /* reopen with the access mode asked for */
		close(fd);
		fd = open(path, flags | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	lseek(fd, 0, SEEK_SET);
	return fd;
}

static long long pos(int fd)
{
	return (long long)lseek(fd, 0, SEEK_CUR);
}

/* Read what a pipe holds now (at most n bytes) without waiting: the count, or -errno. */
static ssize_t drain(int fd, void *buf, size_t n)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	size_t done = 0;
	ssize_t ret = 0;
	while (done < n) {
		ssize_t k = read(fd, (char *)buf + done, n - done);
		if (k < 0) {
			if (errno != EAGAIN)
				ret = -errno;
			break;
		}
		if (k == 0)
			break;
		done += (size_t)k;
	}
	fcntl(fd, F_SETFL, fl);
	return ret < 0 ? ret : (ssize_t)done;
}

/* The pipe read end `fd` holds exactly the `n` bytes at `want`, which are consumed. */
static int pipe_holds(int fd, const void *want, size_t n, const char *file, int line)
{
	ssize_t k = drain(fd, got, n + 1);
	if (k != (ssize_t)n)
		return ut_fail(file, line, "pipe holds %zd bytes, expected %zu", k, n);
	if (n && memcmp(got, want, n))
		return ut_fail(file, line, "pipe holds the wrong bytes");
	return UT_OK;
}
#define PIPE_HOLDS(fd, want, n) TRY(pipe_holds((fd), (want), (n), __FILE__, __LINE__))

/* The file `fd` holds the `n` bytes at `want` at offset `off` (pread: no position change). */
static int file_holds(int fd, long long off, const void *want, size_t n, const char *file,
		      int line)
{
	ssize_t k = pread(fd, got, n, off);
	if (k != (ssize_t)n)
		return ut_fail(file, line, "pread at %lld: %zd, expected %zu", off, k, n);
	if (memcmp(got, want, n))
		return ut_fail(file, line, "file holds the wrong bytes at %lld", off);
	return UT_OK;
}
#define FILE_HOLDS(fd, off, want, n) TRY(file_holds((fd), (off), (want), (n), __FILE__, __LINE__))

static struct io_uring_sqe *q_splice(struct io_uring *r, int in, int64_t off_in, int out,
				     int64_t off_out, unsigned len, unsigned flags)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_splice(sqe, in, off_in, out, off_out, len, flags);
	sqe->user_data = 0x5b;
	return sqe;
}

static struct io_uring_sqe *q_tee(struct io_uring *r, int in, int out, unsigned len,
				  unsigned flags)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_tee(sqe, in, out, len, flags);
	sqe->user_data = 0x5b;
	return sqe;
}

/* Submit the queued SQE and return its res (within 5 s; a stray user_data is -9999). */
static int run(struct io_uring *r)
{
	uint64_t ud = 0;
	int res = ut_run1_ms(r, &ud, 5000);
	if (res > -10000 && ud != 0x5b)
		return -9999;
	return res;
}

static long sys_splice(int in, int64_t *off_in, int out, int64_t *off_out, size_t len,
		       unsigned flags)
{
	return syscall(__NR_splice, in, off_in, out, off_out, len, flags);
}

static long sys_tee(int in, int out, size_t len, unsigned flags)
{
	return syscall(__NR_tee, in, out, len, flags);
}

/* A ring of 4, a file from mkfile(tag, O_RDWR, n, seed) and a pipe. */
static int ring_file_pipe(struct io_uring *r, int *fd, const char *tag, size_t n, unsigned seed,
			  int p[2])
{
	CHECK_OK(ut_ring(r, 4));
	*fd = mkfile(tag, O_RDWR, n, seed);
	CHECK_OK(*fd);
	CHECK_OK(pipe(p));
	return UT_OK;
}

static void close_file_pipe(struct io_uring *r, int fd, int p[2])
{
	close(p[0]);
	close(p[1]);
	close(fd);
	io_uring_queue_exit(r);
}

static int two_pipes(int a[2], int b[2])
{
	CHECK_OK(pipe(a));
	CHECK_OK(pipe(b));
	return UT_OK;
}

static void close_pipes(int a[2], int b[2])
{
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* ---- io_uring SPLICE ------------------------------------------------------- */

static int file_to_pipe_off(void)
{
	/*
	 * file -> pipe with splice_off_in 100 and off -1: res 300, the pipe gets file bytes
	 * 100..399, and the file position (7) does not move
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "src", 1000, 1, p));
	CHECK_EQ(lseek(fd, 7, SEEK_SET), 7);
	q_splice(&r, fd, 100, p[1], -1, 300, 0);
	CHECK_RES(run(&r), 300);
	PIPE_HOLDS(p[0], src + 100, 300);
	CHECK_EQ(pos(fd), 7);
	/* offset 0 is an offset too, not "none" */
	q_splice(&r, fd, 0, p[1], -1, 5, 0);
	CHECK_RES(run(&r), 5);
	PIPE_HOLDS(p[0], src, 5);
	CHECK_EQ(pos(fd), 7);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int file_to_pipe_pos(void)
{
	/* splice_off_in -1: reads at the file position and advances it by res */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "src", 1000, 2, p));
	CHECK_EQ(lseek(fd, 50, SEEK_SET), 50);
	q_splice(&r, fd, -1, p[1], -1, 200, 0);
	CHECK_RES(run(&r), 200);
	PIPE_HOLDS(p[0], src + 50, 200);
	CHECK_EQ(pos(fd), 250);
	q_splice(&r, fd, -1, p[1], -1, 200, 0);
	CHECK_RES(run(&r), 200);
	PIPE_HOLDS(p[0], src + 250, 200);
	CHECK_EQ(pos(fd), 450);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int pipe_to_file_off(void)
{
	/*
	 * pipe -> file at off 10: res 256, written at 10 (the file grows to 266), the pipe
	 * is emptied and the file position (0) does not move
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "dst", 0, 3, p));
	CHECK_EQ(write(p[1], src, 256), 256);
	q_splice(&r, p[0], -1, fd, 10, 256, 0);
	CHECK_RES(run(&r), 256);
	FILE_HOLDS(fd, 10, src, 256);
	struct stat st;
	CHECK_OK(fstat(fd, &st));
	CHECK_EQ(st.st_size, 266);
	CHECK_EQ(pos(fd), 0);
	PIPE_HOLDS(p[0], src, 0);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int pipe_to_file_pos(void)
{
	/* off -1: writes at the file position (5) and advances it by res */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "dst", 0, 4, p));
	CHECK_EQ(lseek(fd, 5, SEEK_SET), 5);
	CHECK_EQ(write(p[1], src, 100), 100);
	q_splice(&r, p[0], -1, fd, -1, 100, 0);
	CHECK_RES(run(&r), 100);
	CHECK_EQ(pos(fd), 105);
	CHECK_EQ(write(p[1], src + 100, 30), 30);
	q_splice(&r, p[0], -1, fd, -1, 30, 0);
	CHECK_RES(run(&r), 30);
	CHECK_EQ(pos(fd), 135);
	FILE_HOLDS(fd, 5, src, 130);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int pipe_to_pipe(void)
{
	/* pipe -> pipe moves bytes: len 40 of 100 -> 40, the source keeps the other 60 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int a[2], b[2];
	TRY(two_pipes(a, b));
	ut_pattern(src, 100, 5);
	CHECK_EQ(write(a[1], src, 100), 100);
	q_splice(&r, a[0], -1, b[1], -1, 40, 0);
	CHECK_RES(run(&r), 40);
	PIPE_HOLDS(b[0], src, 40);
	q_splice(&r, a[0], -1, b[1], -1, 60, SPLICE_F_MOVE | SPLICE_F_MORE);
	CHECK_RES(run(&r), 60);
	PIPE_HOLDS(b[0], src + 40, 60);
	PIPE_HOLDS(a[0], src, 0);
	close_pipes(a, b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int short_count(void)
{
	/*
	 * len beyond the data: file -> pipe stops at EOF (100 bytes: res 100; from 60:
	 * res 40); pipe -> pipe and pipe -> file return what the pipe holds (30) without
	 * waiting for more, although the write end is open
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("src", O_RDWR, 100, 6);
	CHECK_OK(fd);
	int out = mkfile("dst", O_RDWR, 0, 6);
	CHECK_OK(out);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	q_splice(&r, fd, 0, a[1], -1, 4096, 0);
	CHECK_RES(run(&r), 100);
	PIPE_HOLDS(a[0], src, 100);
	q_splice(&r, fd, 60, a[1], -1, 4096, 0);
	CHECK_RES(run(&r), 40);
	PIPE_HOLDS(a[0], src + 60, 40);
	CHECK_EQ(write(a[1], src, 30), 30);
	q_splice(&r, a[0], -1, b[1], -1, 1000, 0);
	CHECK_RES(run(&r), 30);
	PIPE_HOLDS(b[0], src, 30);
	CHECK_EQ(write(a[1], src, 30), 30);
	q_splice(&r, a[0], -1, out, 0, 1000, 0);
	CHECK_RES(run(&r), 30);
	FILE_HOLDS(out, 0, src, 30);
	close_pipes(a, b);
	close(fd);
	close(out);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int file_eof(void)
{
	/*
	 * reading a file at or past EOF gives res 0 (explicit offset 100 or 5000 of a
	 * 100-byte file, the position at EOF, an empty file); nothing enters the pipe
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("src", O_RDWR, 100, 7);
	CHECK_OK(fd);
	int empty = mkfile("empty", O_RDWR, 0, 7);
	CHECK_OK(empty);
	int p[2];
	CHECK_OK(pipe(p));
	q_splice(&r, fd, 100, p[1], -1, 10, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, fd, 5000, p[1], -1, 10, 0);
	CHECK_RES(run(&r), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 100);
	q_splice(&r, fd, -1, p[1], -1, 10, 0);
	CHECK_RES(run(&r), 0);
	CHECK_EQ(pos(fd), 100);
	q_splice(&r, empty, -1, p[1], -1, 10, 0);
	CHECK_RES(run(&r), 0);
	CHECK_EQ(pos(empty), 0);
	PIPE_HOLDS(p[0], src, 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	close(empty);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int empty_pipe_nonblock(void)
{
	/*
	 * An empty pipe as the source, with O_NONBLOCK on it or SPLICE_F_NONBLOCK in
	 * splice_flags: -EAGAIN at once (no poll is armed, unlike READ), to a pipe or to a
	 * file. O_NONBLOCK on the destination pipe counts too for pipe -> pipe. An empty pipe
	 * whose write end is closed: 0.
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int out = mkfile("dst", O_RDWR, 0, 8);
	CHECK_OK(out);
	int nb[2], bl[2], dst[2], nbdst[2];
	CHECK_OK(pipe2(nb, O_NONBLOCK));
	CHECK_OK(pipe(bl));
	CHECK_OK(pipe(dst));
	CHECK_OK(pipe2(nbdst, O_NONBLOCK));
	q_splice(&r, nb[0], -1, dst[1], -1, 10, 0);
	CHECK_RES(run(&r), -EAGAIN);
	q_splice(&r, nb[0], -1, out, -1, 10, 0);
	CHECK_RES(run(&r), -EAGAIN);
	q_splice(&r, bl[0], -1, dst[1], -1, 10, SPLICE_F_NONBLOCK);
	CHECK_RES(run(&r), -EAGAIN);
	q_splice(&r, bl[0], -1, out, 0, 10, SPLICE_F_NONBLOCK);
	CHECK_RES(run(&r), -EAGAIN);
	q_splice(&r, bl[0], -1, nbdst[1], -1, 10, 0);
	CHECK_RES(run(&r), -EAGAIN);
	CHECK_EQ(pos(out), 0);
	/* no writer left: end of file */
	close(bl[1]);
	q_splice(&r, bl[0], -1, dst[1], -1, 10, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, bl[0], -1, out, -1, 10, 0);
	CHECK_RES(run(&r), 0);
	close(nb[0]);
	close(nb[1]);
	close(bl[0]);
	for (int i = 0; i < 2; i++) {
		close(dst[i]);
		close(nbdst[i]);
	}
	close(out);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int empty_pipe_waits(void)
{
	/*
	 * Blocking pipes and no SPLICE_F_NONBLOCK: SPLICE from an empty pipe waits (no CQE
	 * after 50 ms) until a write, then completes with what was written (5), to a pipe
	 * and to a file
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int out = mkfile("dst", O_RDWR, 0, 9);
	CHECK_OK(out);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	struct io_uring_cqe cqe;
	for (int k = 0; k < 2; k++) {
		q_splice(&r, a[0], -1, k ? out : b[1], -1, 100, 0);
		CHECK_EQ(io_uring_submit(&r), 1);
		CHECK_EQ(ut_wait_cqe_ms(&r, &cqe, 50), -ETIME);
		CHECK_EQ(write(a[1], "hello", 5), 5);
		WAIT_UD(&r, 0x5b, 5000, &cqe);
		CHECK_RES(cqe.res, 5);
		if (k)
			FILE_HOLDS(out, 0, "hello", 5);
		else
			PIPE_HOLDS(b[0], "hello", 5);
	}
	CHECK_EQ(pos(out), 5);
	/* and a waiting splice ends with 0 when the last writer goes */
	q_splice(&r, a[0], -1, b[1], -1, 100, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_EQ(ut_wait_cqe_ms(&r, &cqe, 50), -ETIME);
	close(a[1]);
	WAIT_UD(&r, 0x5b, 5000, &cqe);
	CHECK_RES(cqe.res, 0);
	close(a[0]);
	close(b[0]);
	close(b[1]);
	close(out);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int full_pipe(void)
{
	/*
	 * file -> pipe fills at most the pipe's free space: 100000 bytes into an empty
	 * 64 KiB pipe give res 65536. Into the full pipe: -EAGAIN with SPLICE_F_NONBLOCK or
	 * an O_NONBLOCK pipe; otherwise the request waits until a reader makes room.
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "src", sizeof src, 10, p));
	q_splice(&r, fd, 0, p[1], -1, sizeof src, 0);
	CHECK_RES(run(&r), PIPE_CAP);
	q_splice(&r, fd, 0, p[1], -1, 1000, SPLICE_F_NONBLOCK);
	CHECK_RES(run(&r), -EAGAIN);
	int fl = fcntl(p[1], F_GETFL);
	CHECK_OK(fcntl(p[1], F_SETFL, fl | O_NONBLOCK));
	q_splice(&r, fd, 0, p[1], -1, 1000, 0);
	CHECK_RES(run(&r), -EAGAIN);
	CHECK_OK(fcntl(p[1], F_SETFL, fl));
	q_splice(&r, fd, PIPE_CAP, p[1], -1, 1000, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cqe;
	CHECK_EQ(ut_wait_cqe_ms(&r, &cqe, 50), -ETIME);
	/* exactly the first fill: the waiting request may refill the pipe meanwhile */
	CHECK_EQ(drain(p[0], got, PIPE_CAP), PIPE_CAP);
	CHECK(!memcmp(got, src, PIPE_CAP));
	WAIT_UD(&r, 0x5b, 5000, &cqe);
	CHECK_RES(cqe.res, 1000);
	PIPE_HOLDS(p[0], src + PIPE_CAP, 1000);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int espipe(void)
{
	/* an offset (anything but -1, 0 included) on a pipe side: -ESPIPE */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("file", O_RDWR, 100, 11);
	CHECK_OK(fd);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	CHECK_EQ(write(a[1], src, 10), 10);
	q_splice(&r, fd, 0, a[1], 0, 10, 0);
	CHECK_RES(run(&r), -ESPIPE);
	q_splice(&r, a[0], 0, fd, 0, 10, 0);
	CHECK_RES(run(&r), -ESPIPE);
	q_splice(&r, a[0], 0, b[1], -1, 10, 0);
	CHECK_RES(run(&r), -ESPIPE);
	q_splice(&r, a[0], -1, b[1], 5, 10, 0);
	CHECK_RES(run(&r), -ESPIPE);
	/* nothing moved */
	PIPE_HOLDS(a[0], src, 10);
	PIPE_HOLDS(b[0], src, 0);
	close_pipes(a, b);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int no_pipe(void)
{
	/*
	 * neither side a pipe: -EINVAL (the same file on both sides too); also -EINVAL:
	 * pipe -> O_APPEND file, and a negative file offset other than -1
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("a", O_RDWR, 100, 12);
	CHECK_OK(fd);
	int fd2 = mkfile("b", O_RDWR, 0, 12);
	CHECK_OK(fd2);
	int app = mkfile("c", O_WRONLY | O_APPEND, 0, 12);
	CHECK_OK(app);
	int p[2];
	CHECK_OK(pipe(p));
	q_splice(&r, fd, 0, fd2, 0, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_splice(&r, fd, -1, fd2, -1, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_splice(&r, fd, 0, fd, 50, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	CHECK_EQ(write(p[1], src, 10), 10);
	q_splice(&r, p[0], -1, app, -1, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_splice(&r, fd, -2, p[1], -1, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_splice(&r, p[0], -1, fd2, -5, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	PIPE_HOLDS(p[0], src, 10);
	CHECK_EQ(pos(fd), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	close(fd2);
	close(app);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_fd(void)
{
	/*
	 * -EBADF: an unopened descriptor on either side; a source not open for reading
	 * (a pipe's write end, an O_WRONLY file); a destination not open for writing (a
	 * pipe's read end, an O_RDONLY file)
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int ro = mkfile("ro", O_RDONLY, 100, 13);
	CHECK_OK(ro);
	int wo = mkfile("wo", O_WRONLY, 0, 13);
	CHECK_OK(wo);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], src, 10), 10);
	int bad = 1000;
	q_splice(&r, bad, -1, p[1], -1, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, p[0], -1, bad, -1, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, -1, -1, p[1], -1, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, p[1], -1, wo, 0, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, wo, 0, p[1], -1, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, ro, 0, p[0], -1, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, p[0], -1, ro, 0, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	PIPE_HOLDS(p[0], src, 10);
	close(p[0]);
	close(p[1]);
	close(ro);
	close(wo);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_in(void)
{
	/*
	 * SPLICE_F_FD_IN_FIXED: splice_fd_in is a slot of the registered file table (and
	 * sqe->fd one too with IOSQE_FIXED_FILE). A slot past the table, an empty slot, or no
	 * table at all: -EBADF. The position of a fixed file moves as a normal one's does.
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "src", 1000, 14, p));
	q_splice(&r, 0, 0, p[1], -1, 10, F_IN_FIXED);
	CHECK_RES(run(&r), -EBADF);
	int table[4] = { fd, -1, p[1], p[0] };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	q_splice(&r, 0, 20, p[1], -1, 100, F_IN_FIXED);
	CHECK_RES(run(&r), 100);
	PIPE_HOLDS(p[0], src + 20, 100);
	q_splice(&r, 0, -1, p[1], -1, 100, F_IN_FIXED);
	CHECK_RES(run(&r), 100);
	PIPE_HOLDS(p[0], src, 100);
	CHECK_EQ(pos(fd), 100);
	/* both sides fixed */
	struct io_uring_sqe *sqe = q_splice(&r, 0, 300, 2, -1, 50, F_IN_FIXED);
	sqe->flags |= IOSQE_FIXED_FILE;
	CHECK_RES(run(&r), 50);
	PIPE_HOLDS(p[0], src + 300, 50);
	/* the read end through a slot, into a file given by its descriptor */
	CHECK_EQ(write(p[1], src, 8), 8);
	q_splice(&r, 3, -1, fd, 900, 8, F_IN_FIXED);
	CHECK_RES(run(&r), 8);
	FILE_HOLDS(fd, 900, src, 8);
	q_splice(&r, 1, 0, p[1], -1, 10, F_IN_FIXED);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, 4, 0, p[1], -1, 10, F_IN_FIXED);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, 1000, 0, p[1], -1, 10, F_IN_FIXED);
	CHECK_RES(run(&r), -EBADF);
	/* without the flag, splice_fd_in is a descriptor again */
	q_splice(&r, fd, 0, p[1], -1, 4, 0);
	CHECK_RES(run(&r), 4);
	PIPE_HOLDS(p[0], src, 4);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int bad_flags(void)
{
	/*
	 * splice_flags outside SPLICE_F_MOVE|NONBLOCK|MORE|GIFT|FD_IN_FIXED: -EINVAL, even
	 * with len 0 (checked when the SQE is read); the four known flags are accepted
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	int fd, p[2];
	TRY(ring_file_pipe(&r, &fd, "src", 100, 15, p));
	static const unsigned bad[] = { 0x10, 0x100, 1U << 30, 0x7fffffff };
	for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
		q_splice(&r, fd, 0, p[1], -1, 10, bad[k]);
		int res = run(&r);
		if (res != -EINVAL)
			FAIL("splice_flags 0x%x: %d (%s), expected -EINVAL", bad[k], res,
			     ut_resname(res));
	}
	q_splice(&r, fd, 0, p[1], -1, 0, 0x10);
	CHECK_RES(run(&r), -EINVAL);
	PIPE_HOLDS(p[0], src, 0);
	q_splice(&r, fd, 0, p[1], -1, 10,
		 SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT);
	CHECK_RES(run(&r), 10);
	PIPE_HOLDS(p[0], src, 10);
	close_file_pipe(&r, fd, p);
	return UT_OK;
}

static int len_zero(void)
{
	/*
	 * len 0: res 0 without looking at the two files beyond fetching them: an empty
	 * blocking pipe does not wait, neither side a pipe, an offset on a pipe side. The
	 * descriptors are still fetched: a bad one is -EBADF.
	 */
	GATE(IORING_OP_SPLICE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("src", O_RDWR, 100, 16);
	CHECK_OK(fd);
	int fd2 = mkfile("dst", O_RDWR, 0, 16);
	CHECK_OK(fd2);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	q_splice(&r, fd, 0, a[1], -1, 0, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, a[0], -1, b[1], -1, 0, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, fd, 0, fd2, 0, 0, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, a[0], 3, b[1], -1, 0, 0);
	CHECK_RES(run(&r), 0);
	q_splice(&r, 1000, -1, b[1], -1, 0, 0);
	CHECK_RES(run(&r), -EBADF);
	q_splice(&r, a[0], -1, 1000, -1, 0, 0);
	CHECK_RES(run(&r), -EBADF);
	PIPE_HOLDS(a[0], src, 0);
	CHECK_EQ(pos(fd), 0);
	close_pipes(a, b);
	close(fd);
	close(fd2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- io_uring TEE ---------------------------------------------------------- */

static int tee_dup(void)
{
	/*
	 * TEE copies without consuming: len 40 of 100 -> 40 into the second pipe, the first
	 * still holds all 100; len beyond the data -> what is there (100)
	 */
	GATE(IORING_OP_TEE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int a[2], b[2];
	TRY(two_pipes(a, b));
	ut_pattern(src, 100, 17);
	CHECK_EQ(write(a[1], src, 100), 100);
	q_tee(&r, a[0], b[1], 40, 0);
	CHECK_RES(run(&r), 40);
	PIPE_HOLDS(b[0], src, 40);
	q_tee(&r, a[0], b[1], 1000, 0);
	CHECK_RES(run(&r), 100);
	PIPE_HOLDS(b[0], src, 100);
	PIPE_HOLDS(a[0], src, 100);
	/* len 0: 0 */
	q_tee(&r, a[0], b[1], 0, 0);
	CHECK_RES(run(&r), 0);
	close_pipes(a, b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int tee_empty(void)
{
	/*
	 * TEE from an empty pipe: -EAGAIN with O_NONBLOCK (on either pipe) or
	 * SPLICE_F_NONBLOCK; otherwise it waits for a write (no CQE after 50 ms), then
	 * duplicates it; 0 once the write end is closed
	 */
	GATE(IORING_OP_TEE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int a[2], b[2], nb[2];
	CHECK_OK(pipe(a));
	CHECK_OK(pipe(b));
	CHECK_OK(pipe2(nb, O_NONBLOCK));
	q_tee(&r, a[0], b[1], 10, SPLICE_F_NONBLOCK);
	CHECK_RES(run(&r), -EAGAIN);
	q_tee(&r, nb[0], b[1], 10, 0);
	CHECK_RES(run(&r), -EAGAIN);
	q_tee(&r, a[0], nb[1], 10, 0);
	CHECK_RES(run(&r), -EAGAIN);
	q_tee(&r, a[0], b[1], 10, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cqe;
	CHECK_EQ(ut_wait_cqe_ms(&r, &cqe, 50), -ETIME);
	CHECK_EQ(write(a[1], "tee", 3), 3);
	WAIT_UD(&r, 0x5b, 5000, &cqe);
	CHECK_RES(cqe.res, 3);
	PIPE_HOLDS(b[0], "tee", 3);
	PIPE_HOLDS(a[0], "tee", 3);
	close(a[1]);
	q_tee(&r, a[0], b[1], 10, 0);
	CHECK_RES(run(&r), 0);
	close(a[0]);
	for (int i = 0; i < 2; i++) {
		close(b[i]);
		close(nb[i]);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int tee_bad(void)
{
	/*
	 * TEE: a regular file on either side -> -EINVAL; the two ends of one pipe -> -EINVAL;
	 * splice_off_in or off not 0 -> -EINVAL; unknown splice_flags -> -EINVAL; an unopened
	 * descriptor or a wrong-way pipe end -> -EBADF; SPLICE_F_FD_IN_FIXED takes a slot
	 */
	GATE(IORING_OP_TEE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = mkfile("file", O_RDWR, 100, 18);
	CHECK_OK(fd);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	CHECK_EQ(write(a[1], src, 10), 10);
	q_tee(&r, fd, b[1], 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_tee(&r, a[0], fd, 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	q_tee(&r, a[0], a[1], 10, 0);
	CHECK_RES(run(&r), -EINVAL);
	struct io_uring_sqe *sqe = q_tee(&r, a[0], b[1], 10, 0);
	sqe->off = 1;
	CHECK_RES(run(&r), -EINVAL);
	sqe = q_tee(&r, a[0], b[1], 10, 0);
	sqe->splice_off_in = (uint64_t)-1;
	CHECK_RES(run(&r), -EINVAL);
	q_tee(&r, a[0], b[1], 10, 0x10);
	CHECK_RES(run(&r), -EINVAL);
	q_tee(&r, 1000, b[1], 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_tee(&r, a[0], 1000, 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_tee(&r, a[1], b[1], 10, 0);
	CHECK_RES(run(&r), -EBADF);
	q_tee(&r, a[0], b[0], 10, 0);
	CHECK_RES(run(&r), -EBADF);
	PIPE_HOLDS(b[0], src, 0);
	int table[2] = { a[0], -1 };
	CHECK_OK(io_uring_register_files(&r, table, 2));
	q_tee(&r, 0, b[1], 10, F_IN_FIXED);
	CHECK_RES(run(&r), 10);
	PIPE_HOLDS(b[0], src, 10);
	q_tee(&r, 1, b[1], 10, F_IN_FIXED);
	CHECK_RES(run(&r), -EBADF);
	PIPE_HOLDS(a[0], src, 10);
	close_pipes(a, b);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- splice(2) and tee(2) --------------------------------------------------- */

static int sys_file_pipe(void)
{
	/*
	 * splice(2) file -> pipe with *off_in 100: 300 bytes, *off_in becomes 400 (written
	 * back), the file position (7) stays; off_in NULL: reads at the position and moves
	 * it; past EOF: 0; len beyond EOF: short
	 */
	int fd = mkfile("src", O_RDWR, 1000, 19);
	CHECK_OK(fd);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(lseek(fd, 7, SEEK_SET), 7);
	int64_t off = 100;
	CHECK_EQ(sys_splice(fd, &off, p[1], NULL, 300, 0), 300);
	CHECK_EQ(off, 400);
	CHECK_EQ(pos(fd), 7);
	PIPE_HOLDS(p[0], src + 100, 300);
	CHECK_EQ(sys_splice(fd, NULL, p[1], NULL, 200, 0), 200);
	CHECK_EQ(pos(fd), 207);
	PIPE_HOLDS(p[0], src + 7, 200);
	off = 900;
	CHECK_EQ(sys_splice(fd, &off, p[1], NULL, 4096, 0), 100);
	CHECK_EQ(off, 1000);
	PIPE_HOLDS(p[0], src + 900, 100);
	CHECK_EQ(sys_splice(fd, &off, p[1], NULL, 4096, 0), 0);
	CHECK_EQ(off, 1000);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 1000);
	CHECK_EQ(sys_splice(fd, NULL, p[1], NULL, 10, 0), 0);
	CHECK_EQ(pos(fd), 1000);
	close(p[0]);
	close(p[1]);
	close(fd);
	return UT_OK;
}

static int sys_pipe_file(void)
{
	/*
	 * splice(2) pipe -> file at *off_out 10: written there, *off_out becomes 10 + n, the
	 * position stays; off_out NULL: at the position, which moves; pipe -> pipe moves
	 * bytes and returns what the pipe holds when len is larger
	 */
	int fd = mkfile("dst", O_RDWR, 0, 20);
	CHECK_OK(fd);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	CHECK_EQ(write(a[1], src, 256), 256);
	int64_t off = 10;
	CHECK_EQ(sys_splice(a[0], NULL, fd, &off, 256, 0), 256);
	CHECK_EQ(off, 266);
	CHECK_EQ(pos(fd), 0);
	FILE_HOLDS(fd, 10, src, 256);
	CHECK_EQ(lseek(fd, 300, SEEK_SET), 300);
	CHECK_EQ(write(a[1], src, 50), 50);
	CHECK_EQ(sys_splice(a[0], NULL, fd, NULL, 1000, 0), 50);
	CHECK_EQ(pos(fd), 350);
	FILE_HOLDS(fd, 300, src, 50);
	CHECK_EQ(write(a[1], src, 30), 30);
	CHECK_EQ(sys_splice(a[0], NULL, b[1], NULL, 1000, 0), 30);
	PIPE_HOLDS(b[0], src, 30);
	PIPE_HOLDS(a[0], src, 0);
	close_pipes(a, b);
	close(fd);
	return UT_OK;
}

static int sys_blocking(void)
{
	/*
	 * splice(2) from an empty pipe: EAGAIN with O_NONBLOCK or SPLICE_F_NONBLOCK; without,
	 * it blocks until a writer (a thread, 50 ms later) writes, and returns that count;
	 * 0 once there is no writer
	 */
	int a[2], b[2], nb[2];
	CHECK_OK(pipe(a));
	CHECK_OK(pipe(b));
	CHECK_OK(pipe2(nb, O_NONBLOCK));
	CHECK_ERR(sys_splice(nb[0], NULL, b[1], NULL, 10, 0), EAGAIN);
	CHECK_ERR(sys_splice(a[0], NULL, b[1], NULL, 10, SPLICE_F_NONBLOCK), EAGAIN);
	CHECK_ERR(sys_splice(a[0], NULL, nb[1], NULL, 10, 0), EAGAIN);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, a[1], "later", 5, 50));
	long long t0 = ut_now_ms();
	long n = sys_splice(a[0], NULL, b[1], NULL, 100, 0);
	long long dt = ut_now_ms() - t0;
	CHECK_EQ(ut_writer_join(&w), 5);
	CHECK_EQ(n, 5);
	CHECK(dt >= 30);
	PIPE_HOLDS(b[0], "later", 5);
	close(a[1]);
	CHECK_EQ(sys_splice(a[0], NULL, b[1], NULL, 100, 0), 0);
	close(a[0]);
	for (int i = 0; i < 2; i++) {
		close(b[i]);
		close(nb[i]);
	}
	return UT_OK;
}

static int sys_errors(void)
{
	/*
	 * splice(2): an offset pointer on a pipe side -> ESPIPE; neither side a pipe ->
	 * EINVAL; unopened or wrong-way descriptors -> EBADF; flags outside SPLICE_F_ALL
	 * (SPLICE_F_FD_IN_FIXED included: io_uring only) -> EINVAL; len 0 -> 0 before
	 * anything else is looked at (bad flags and bad descriptors too)
	 */
	int fd = mkfile("a", O_RDWR, 100, 21);
	CHECK_OK(fd);
	int fd2 = mkfile("b", O_RDWR, 0, 21);
	CHECK_OK(fd2);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	CHECK_EQ(write(a[1], src, 10), 10);
	int64_t off = 0;
	CHECK_ERR(sys_splice(a[0], &off, b[1], NULL, 10, 0), ESPIPE);
	CHECK_ERR(sys_splice(a[0], NULL, b[1], &off, 10, 0), ESPIPE);
	CHECK_ERR(sys_splice(fd, &off, a[1], &off, 10, 0), ESPIPE);
	CHECK_ERR(sys_splice(fd, &off, fd2, &off, 10, 0), EINVAL);
	CHECK_ERR(sys_splice(fd, NULL, fd2, NULL, 10, 0), EINVAL);
	off = -2;
	CHECK_ERR(sys_splice(fd, &off, b[1], NULL, 10, 0), EINVAL);
	CHECK_ERR(sys_splice(1000, NULL, b[1], NULL, 10, 0), EBADF);
	CHECK_ERR(sys_splice(a[0], NULL, 1000, NULL, 10, 0), EBADF);
	CHECK_ERR(sys_splice(a[1], NULL, b[1], NULL, 10, 0), EBADF);
	CHECK_ERR(sys_splice(a[0], NULL, b[0], NULL, 10, 0), EBADF);
	CHECK_ERR(sys_splice(a[0], NULL, b[1], NULL, 10, 0x10), EINVAL);
	CHECK_ERR(sys_splice(a[0], NULL, b[1], NULL, 10, F_IN_FIXED), EINVAL);
	CHECK_EQ(sys_splice(a[0], NULL, b[1], NULL, 0, 0), 0);
	CHECK_EQ(sys_splice(1000, NULL, 1001, NULL, 0, 0x10), 0);
	CHECK_EQ(sys_splice(fd, NULL, fd2, NULL, 0, 0), 0);
	PIPE_HOLDS(b[0], src, 0);
	PIPE_HOLDS(a[0], src, 10);
	close_pipes(a, b);
	close(fd);
	close(fd2);
	return UT_OK;
}

static int sys_tee_cases(void)
{
	/*
	 * tee(2): duplicates without consuming (short when len is larger); a file on either
	 * side or one pipe's two ends -> EINVAL; EBADF for bad descriptors; EAGAIN from an
	 * empty pipe with SPLICE_F_NONBLOCK; 0 with no writer. Unknown flags -> EINVAL even
	 * with len 0 (tee checks flags first); len 0 otherwise -> 0 before the descriptors.
	 */
	int fd = mkfile("file", O_RDWR, 100, 22);
	CHECK_OK(fd);
	int a[2], b[2];
	TRY(two_pipes(a, b));
	CHECK_ERR(sys_tee(a[0], b[1], 10, SPLICE_F_NONBLOCK), EAGAIN);
	ut_pattern(src, 100, 22);
	CHECK_EQ(write(a[1], src, 100), 100);
	CHECK_EQ(sys_tee(a[0], b[1], 40, 0), 40);
	PIPE_HOLDS(b[0], src, 40);
	CHECK_EQ(sys_tee(a[0], b[1], 1000, 0), 100);
	PIPE_HOLDS(b[0], src, 100);
	CHECK_ERR(sys_tee(fd, b[1], 10, 0), EINVAL);
	CHECK_ERR(sys_tee(a[0], fd, 10, 0), EINVAL);
	CHECK_ERR(sys_tee(a[0], a[1], 10, 0), EINVAL);
	CHECK_ERR(sys_tee(1000, b[1], 10, 0), EBADF);
	CHECK_ERR(sys_tee(a[0], 1000, 10, 0), EBADF);
	CHECK_ERR(sys_tee(a[1], b[1], 10, 0), EBADF);
	CHECK_ERR(sys_tee(a[0], b[1], 10, 0x10), EINVAL);
	CHECK_ERR(sys_tee(a[0], b[1], 0, 0x10), EINVAL);
	CHECK_EQ(sys_tee(a[0], b[1], 0, 0), 0);
	CHECK_EQ(sys_tee(1000, 1001, 0, 0), 0);
	PIPE_HOLDS(b[0], src, 0);
	PIPE_HOLDS(a[0], src, 100);
	close(a[1]);
	CHECK_EQ(sys_tee(a[0], b[1], 10, 0), 0);
	close(a[0]);
	close(b[0]);
	close(b[1]);
	close(fd);
	return UT_OK;
}

UT_FAMILY(splice, T(file_to_pipe_off), T(file_to_pipe_pos), T(pipe_to_file_off),
	  T(pipe_to_file_pos), T(pipe_to_pipe), T(short_count), T(file_eof),
	  T(empty_pipe_nonblock), T(empty_pipe_waits), T(full_pipe), T(espipe), T(no_pipe),
	  T(bad_fd), T(fixed_in), T(bad_flags), T(len_zero), T(tee_dup), T(tee_empty),
	  T(tee_bad), T(sys_file_pipe), T(sys_pipe_file), T(sys_blocking), T(sys_errors),
	  T(sys_tee_cases));
