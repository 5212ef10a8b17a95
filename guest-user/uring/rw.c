/* READ, WRITE, READV, WRITEV, READ_FIXED, WRITE_FIXED on files and pipes. */
#include "ut.h"

#include <fcntl.h>
#include <sys/uio.h>

#define KADDR ((void *)0xffff800000000000ull) /* a kernel address */

/* One request: returns its CQE res (or < -10000 if submission itself failed). */
static int rw1(struct io_uring *r, int op, int fd, const void *addr, unsigned len,
	       uint64_t off, unsigned sqe_flags, int buf_index)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_rw(op, sqe, fd, addr, len, off);
	sqe->flags = (uint8_t)sqe_flags;
	sqe->buf_index = (uint16_t)buf_index;
	sqe->user_data = 0x5eed;
	uint64_t ud = 0;
	int res = ut_run1(r, &ud);
	if (res > -10000 && ud != 0x5eed)
		return -9999;
	return res;
}

static char wbuf[8192] __attribute__((aligned(4096)));
static char rbuf[8192] __attribute__((aligned(4096)));

static int write_read_offset(void)
{
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	ut_pattern(wbuf, 4096, 1);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, wbuf, 4096, 0, 0, 0), 4096);
	ut_pattern(wbuf + 4096, 4096, 2);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, wbuf + 4096, 4096, 12288, 0, 0), 4096);
	/* the file is 16 KiB with a hole at 4096..12288 */
	CHECK_EQ(lseek(fd, 0, SEEK_END), 16384);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 16384);
	memset(rbuf, 0xaa, sizeof rbuf);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 4096, 12288, 0, 0), 4096);
	CHECK(memcmp(rbuf, wbuf + 4096, 4096) == 0);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 4096, 0, 0, 0), 4096);
	CHECK(memcmp(rbuf, wbuf, 4096) == 0);
	/* the hole reads as zeroes; an unaligned offset and length work */
	memset(rbuf, 0xaa, sizeof rbuf);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 1000, 4000, 0, 0), 1000);
	CHECK(memcmp(rbuf, wbuf + 4000, 96) == 0);
	for (int i = 96; i < 1000; i++)
		if (rbuf[i] != 0)
			FAIL("hole byte %d is 0x%02x", 4000 + i, (unsigned char)rbuf[i]);
	/* what a plain pread sees agrees */
	CHECK_EQ(pread(fd, rbuf, 4096, 12288), 4096);
	CHECK(memcmp(rbuf, wbuf + 4096, 4096) == 0);
	/* explicit offsets leave the file position alone */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 16384);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int readv_writev(void)
{
	GATE(IORING_OP_WRITEV);
	GATE(IORING_OP_READV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	ut_pattern(wbuf, 600, 3);
	struct iovec w[3] = { { wbuf, 100 }, { wbuf + 100, 200 }, { wbuf + 300, 300 } };
	CHECK_RES(rw1(&r, IORING_OP_WRITEV, fd, w, 3, 10, 0, 0), 600);
	memset(rbuf, 0, sizeof rbuf);
	struct iovec v[2] = { { rbuf, 250 }, { rbuf + 1000, 350 } };
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, v, 2, 10, 0, 0), 600);
	CHECK(memcmp(rbuf, wbuf, 250) == 0);
	CHECK(memcmp(rbuf + 1000, wbuf + 250, 350) == 0);
	/* the first 10 bytes are a hole */
	CHECK_EQ(pread(fd, rbuf, 10, 0), 10);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(rbuf[i], 0);
	/* a zero-length iovec in the middle is skipped */
	struct iovec z[3] = { { rbuf, 5 }, { rbuf + 100, 0 }, { rbuf + 5, 5 } };
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, z, 3, 10, 0, 0), 10);
	CHECK(memcmp(rbuf, wbuf, 10) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int current_position(void)
{
	/* off = -1: use and advance the file position, like read(2)/write(2) */
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_READ);
	GATE(IORING_OP_READV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, "abc", 3, (uint64_t)-1, 0, 0), 3);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 3);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, "defgh", 5, (uint64_t)-1, 0, 0), 5);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	CHECK_EQ(lseek(fd, 1, SEEK_SET), 1);
	char b[16] = { 0 };
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, b, 4, (uint64_t)-1, 0, 0), 4);
	CHECK(memcmp(b, "bcde", 4) == 0);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 5);
	struct iovec v[2] = { { b, 1 }, { b + 8, 8 } };
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, v, 2, (uint64_t)-1, 0, 0), 3);
	CHECK(b[0] == 'f' && b[8] == 'g' && b[9] == 'h');
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	/* at EOF: 0, the position stays */
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, b, 4, (uint64_t)-1, 0, 0), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	/* explicit offset 0 does not move it */
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, b, 2, 0, 0, 0), 2);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 8);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int short_read_eof(void)
{
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	ut_pattern(wbuf, 100, 4);
	CHECK_EQ(pwrite(fd, wbuf, 100, 0), 100);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 4096, 50, 0, 0), 50);
	CHECK(memcmp(rbuf, wbuf + 50, 50) == 0);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 4096, 100, 0, 0), 0);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 4096, 1 << 20, 0, 0), 0);
	/* zero length */
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 0, 0, 0, 0), 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_fd(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_READV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct iovec v = { rbuf, 16 };
	CHECK_RES(rw1(&r, IORING_OP_READ, 1000, rbuf, 16, 0, 0, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READ, -1, rbuf, 16, 0, 0, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, 1000, wbuf, 16, 0, 0, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READV, 1000, &v, 1, 0, 0, 0), -EBADF);
	/* a closed descriptor */
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	close(fd);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, rbuf, 16, 0, 0, 0), -EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_buffer(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_READV);
	GATE(IORING_OP_WRITEV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	ut_pattern(wbuf, 4096, 5);
	CHECK_EQ(pwrite(fd, wbuf, 4096, 0), 4096);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, (void *)8, 4096, 0, 0, 0), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_READ, fd, KADDR, 4096, 0, 0, 0), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, (void *)8, 4096, 0, 0, 0), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, fd, KADDR, 4096, 0, 0, 0), -EFAULT);
	/* the iovec array itself is unreadable, or points nowhere */
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, (void *)8, 1, 0, 0, 0), -EFAULT);
	struct iovec v = { (void *)8, 4096 };
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, &v, 1, 0, 0, 0), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_WRITEV, fd, &v, 1, 0, 0, 0), -EFAULT);
	/* the file is unchanged */
	CHECK_EQ(pread(fd, rbuf, 8192, 0), 4096);
	CHECK(memcmp(rbuf, wbuf, 4096) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int too_many_iovecs(void)
{
	GATE(IORING_OP_READV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	static struct iovec v[1025];
	for (int i = 0; i < 1025; i++)
		v[i] = (struct iovec){ rbuf, 1 };
	CHECK_RES(rw1(&r, IORING_OP_READV, fd, v, 1025, 0, 0, 0), -EINVAL);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int wrong_mode(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	char path[256];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	close(fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK_OK(ro);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, ro, "x", 1, 0, 0, 0), -EBADF);
	close(ro);
	int wo = open(path, O_WRONLY | O_CLOEXEC);
	CHECK_OK(wo);
	CHECK_RES(rw1(&r, IORING_OP_READ, wo, rbuf, 10, 0, 0, 0), -EBADF);
	close(wo);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(rw1(&r, IORING_OP_WRITE, p[0], "x", 1, 0, 0, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READ, p[1], rbuf, 1, 0, 0, 0), -EBADF);
	close(p[0]);
	close(p[1]);
	/* nothing was written */
	int fd2 = open(path, O_RDONLY | O_CLOEXEC);
	CHECK_OK(fd2);
	CHECK_EQ(read(fd2, rbuf, 100), 10);
	close(fd2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pipe_read_waits(void)
{
	/* a read submitted before the data exists completes after the write */
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char b[32] = { 0 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, p[0], b, sizeof b, 0);
	sqe->user_data = 42;
	/* io_uring_enter returns at once: the read is pending, no CQE */
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe *cqe;
	CHECK_EQ(io_uring_peek_cqe(&r, &cqe), -EAGAIN);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	/* a GETEVENTS with min_complete 0 does not wait either */
	CHECK_EQ(sys_enter(r.ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(write(p[1], "hello pipe", 10), 10);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	CHECK_EQ(c.user_data, 42);
	CHECK_RES(c.res, 10);
	CHECK(memcmp(b, "hello pipe", 10) == 0);
	/* data already there: completes with what is available */
	CHECK_EQ(write(p[1], "abc", 3), 3);
	CHECK_RES(rw1(&r, IORING_OP_READ, p[0], b, sizeof b, 0, 0, 0), 3);
	CHECK(memcmp(b, "abc", 3) == 0);
	/* write end closed, pipe empty: EOF */
	close(p[1]);
	CHECK_RES(rw1(&r, IORING_OP_READ, p[0], b, sizeof b, 0, 0, 0), 0);
	close(p[0]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pipe_read_then_close(void)
{
	/* a pending pipe read completes with 0 when the last writer goes away */
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char b[8];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, p[0], b, sizeof b, 0);
	sqe->user_data = 7;
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	close(p[1]);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	CHECK_EQ(c.user_data, 7);
	CHECK_RES(c.res, 0);
	close(p[0]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pipe_write(void)
{
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_WRITEV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(rw1(&r, IORING_OP_WRITE, p[1], "to the pipe", 11, 0, 0, 0), 11);
	struct iovec v[2] = { { "vec", 3 }, { "tor", 3 } };
	CHECK_RES(rw1(&r, IORING_OP_WRITEV, p[1], v, 2, 0, 0, 0), 6);
	char b[32] = { 0 };
	CHECK_EQ(read(p[0], b, sizeof b), 17);
	CHECK(memcmp(b, "to the pipevector", 17) == 0);
	/* reader gone: -EPIPE in the CQE (SIGPIPE is ignored by the runner) */
	close(p[0]);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, p[1], "x", 1, 0, 0, 0), -EPIPE);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_buffers(void)
{
	GATE(IORING_OP_WRITE_FIXED);
	GATE(IORING_OP_READ_FIXED);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	struct iovec bufs[2] = { { wbuf, 8192 }, { rbuf, 8192 } };
	CHECK_OK(io_uring_register_buffers(&r, bufs, 2));
	ut_pattern(wbuf, 8192, 6);
	CHECK_RES(rw1(&r, IORING_OP_WRITE_FIXED, fd, wbuf, 8192, 0, 0, 0), 8192);
	/* a piece from the middle of a registered buffer */
	CHECK_RES(rw1(&r, IORING_OP_WRITE_FIXED, fd, wbuf + 100, 50, 10000, 0, 0), 50);
	memset(rbuf, 0, 8192);
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf + 4096, 4096, 4096, 0, 1), 4096);
	CHECK(memcmp(rbuf + 4096, wbuf + 4096, 4096) == 0);
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf, 100, 9990, 0, 1), 60);
	CHECK(memcmp(rbuf + 10, wbuf + 100, 50) == 0);
	CHECK_EQ(pread(fd, rbuf, 8192, 0), 8192);
	CHECK(memcmp(rbuf, wbuf, 8192) == 0);
	CHECK_OK(io_uring_unregister_buffers(&r));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_buffer_bounds(void)
{
	GATE(IORING_OP_READ_FIXED);
	GATE(IORING_OP_WRITE_FIXED);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(pwrite(fd, wbuf, 8192, 0), 8192);
	/* no buffers registered at all */
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf, 16, 0, 0, 0), -EFAULT);
	struct iovec buf = { rbuf + 4096, 4096 };
	CHECK_OK(io_uring_register_buffers(&r, &buf, 1));
	/* runs past the end */
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf + 8192 - 100, 4096, 0, 0, 0), -EFAULT);
	/* starts before it */
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf, 4096, 0, 0, 0), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_WRITE_FIXED, fd, rbuf + 4095, 2, 0, 0, 0), -EFAULT);
	/* index not registered */
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf + 4096, 16, 0, 0, 1), -EFAULT);
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf + 4096, 16, 0, 0, 500), -EFAULT);
	/* exactly the buffer works */
	CHECK_RES(rw1(&r, IORING_OP_READ_FIXED, fd, rbuf + 4096, 4096, 0, 0, 0), 4096);
	CHECK_OK(io_uring_unregister_buffers(&r));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_files(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	int files[3] = { -1, fd, -1 };
	CHECK_OK(io_uring_register_files(&r, files, 3));
	/* the table holds its own reference: closing the fd does not matter */
	close(fd);
	CHECK_RES(rw1(&r, IORING_OP_WRITE, 1, "fixed", 5, 0, IOSQE_FIXED_FILE, 0), 5);
	char b[8] = { 0 };
	CHECK_RES(rw1(&r, IORING_OP_READ, 1, b, 8, 0, IOSQE_FIXED_FILE, 0), 5);
	CHECK(memcmp(b, "fixed", 5) == 0);
	/* sparse slots and out-of-range indices */
	CHECK_RES(rw1(&r, IORING_OP_READ, 0, b, 8, 0, IOSQE_FIXED_FILE, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READ, 2, b, 8, 0, IOSQE_FIXED_FILE, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READ, 3, b, 8, 0, IOSQE_FIXED_FILE, 0), -EBADF);
	CHECK_RES(rw1(&r, IORING_OP_READ, 1000, b, 8, 0, IOSQE_FIXED_FILE, 0), -EBADF);
	CHECK_OK(io_uring_unregister_files(&r));
	/* after unregistering, index 1 means nothing */
	CHECK_RES(rw1(&r, IORING_OP_READ, 1, b, 8, 0, IOSQE_FIXED_FILE, 0), -EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(rw, T(write_read_offset), T(readv_writev), T(current_position),
	  T(short_read_eof), T(bad_fd), T(bad_buffer), T(too_many_iovecs), T(wrong_mode),
	  T(pipe_read_waits), T(pipe_read_then_close), T(pipe_write), T(fixed_buffers),
	  T(fixed_buffer_bounds), T(fixed_files));
