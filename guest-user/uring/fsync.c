/* IORING_OP_FSYNC, with and without IORING_FSYNC_DATASYNC. */
#include "ut.h"

#include <fcntl.h>

static int fsync1(struct io_uring *r, int fd, unsigned fsync_flags, uint64_t addr,
		  uint64_t off, unsigned len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_fsync(sqe, fd, fsync_flags);
	sqe->addr = addr;
	sqe->off = off;
	sqe->len = len;
	sqe->user_data = 0xf5;
	uint64_t ud = 0;
	int res = ut_run1(r, &ud);
	if (res > -10000 && ud != 0xf5)
		return -9999;
	return res;
}

static int fsync_file(void)
{
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "durable", 7), 7);
	CHECK_RES(fsync1(&r, fd, 0, 0, 0, 0), 0);
	/* nothing dirty: still 0 */
	CHECK_RES(fsync1(&r, fd, 0, 0, 0, 0), 0);
	/* a range (off, len) */
	CHECK_EQ(pwrite(fd, "more", 4, 4096), 4);
	CHECK_RES(fsync1(&r, fd, 0, 0, 4096, 4), 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int datasync(void)
{
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "data", 4), 4);
	CHECK_RES(fsync1(&r, fd, IORING_FSYNC_DATASYNC, 0, 0, 0), 0);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int bad_flags(void)
{
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_RES(fsync1(&r, fd, 2, 0, 0, 0), -EINVAL);
	CHECK_RES(fsync1(&r, fd, 0x80000000u, 0, 0, 0), -EINVAL);
	CHECK_RES(fsync1(&r, fd, IORING_FSYNC_DATASYNC | 4, 0, 0, 0), -EINVAL);
	/* reserved SQE field: addr must be 0 */
	CHECK_RES(fsync1(&r, fd, 0, 1, 0, 0), -EINVAL);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int not_syncable(void)
{
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(fsync1(&r, p[0], 0, 0, 0, 0), -EINVAL);
	CHECK_RES(fsync1(&r, p[1], IORING_FSYNC_DATASYNC, 0, 0, 0), -EINVAL);
	close(p[0]);
	close(p[1]);
	CHECK_RES(fsync1(&r, 1000, 0, 0, 0, 0), -EBADF);
	CHECK_RES(fsync1(&r, -1, 0, 0, 0, 0), -EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int readonly_fd(void)
{
	/* fsync(2) works on an O_RDONLY descriptor of a regular file; so does FSYNC */
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	char path[256];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	close(fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK_OK(ro);
	CHECK_RES(fsync1(&r, ro, 0, 0, 0, 0), 0);
	close(ro);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(fsync, T(fsync_file), T(datasync), T(bad_flags), T(not_syncable),
	  T(readonly_fd));
