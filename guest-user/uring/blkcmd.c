/*
 * IORING_OP_URING_CMD with BLOCK_URING_CMD_DISCARD (Linux 6.12) and the BLKDISCARD ioctl:
 * byte ranges of a block device deallocated (our VMM punches a hole in the image: the
 * range then reads as zeros). Files without commands are -EOPNOTSUPP. The disk tests need
 * `--disk BLOCKDEV` (a scratch device: they write to it).
 */
#include "ut.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#define OP_URING_CMD 46
#define CMD_DISCARD 0x1200 /* _IO(0x12, 0) */
#ifndef BLKDISCARD
#define BLKDISCARD 0x1277
#endif

static struct io_uring_sqe *q_cmd(struct io_uring *r, int fd, unsigned cmd_op, uint64_t start, uint64_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_URING_CMD;
	sqe->fd = fd;
	sqe->off = cmd_op; /* cmd_op, __pad1 = 0 */
	sqe->addr = start;
	sqe->addr3 = len;
	sqe->user_data = ud;
	return sqe;
}

static int no_commands(void)
{
	/* A regular file has no commands: -EOPNOTSUPP; a non-zero __pad1: -EINVAL. */
	GATE(OP_URING_CMD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	q_cmd(&r, f, CMD_DISCARD, 0, 512, 1);
	CHECK_RES(ut_run_ud(&r, 1), -EOPNOTSUPP);
	q_cmd(&r, f, CMD_DISCARD, 0, 512, 2)->off |= 1ULL << 32;
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* Fills bytes [0, 64 KiB) of the disk with 0x5a; then the 4 KiB at `at` must read as `v`. */
static int fill(int fd)
{
	char *b = malloc(65536);
	memset(b, 0x5a, 65536);
	int ok = pwrite(fd, b, 65536, 0) == 65536 && fsync(fd) == 0;
	free(b);
	return ok ? 0 : -1;
}

static int reads_as(int fd, off_t at, int v)
{
	char b[4096];
	if (pread(fd, b, sizeof b, at) != sizeof b)
		return 0;
	for (size_t i = 0; i < sizeof b; i++)
		if (b[i] != (char)v)
			return 0;
	return 1;
}

static int discard_cmd(void)
{
	/*
	 * URING_CMD discard of [4 KiB, 12 KiB): res 0, the range reads as zeros, the rest
	 * as written. Unknown cmd_op, unaligned or out-of-range bytes, len or rw_flags set:
	 * -EINVAL; a read-only descriptor: -EBADF.
	 */
	GATE(OP_URING_CMD);
	if (!ut_disk)
		return UT_UNSUP;
	int fd = open(ut_disk, O_RDWR);
	CHECK_OK(fd);
	CHECK_OK(fill(fd));
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	q_cmd(&r, fd, CMD_DISCARD, 4096, 8192, 1);
	CHECK_RES(ut_run_ud(&r, 1), 0);
	CHECK(reads_as(fd, 0, 0x5a));
	CHECK(reads_as(fd, 4096, 0) && reads_as(fd, 8192, 0));
	CHECK(reads_as(fd, 12288, 0x5a));
	q_cmd(&r, fd, 0x1234, 0, 4096, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	q_cmd(&r, fd, CMD_DISCARD, 100, 4096, 3);
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	off_t size = lseek(fd, 0, SEEK_END);
	q_cmd(&r, fd, CMD_DISCARD, (uint64_t)size - 4096, 8192, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	q_cmd(&r, fd, CMD_DISCARD, 0, 4096, 5)->len = 1;
	CHECK_RES(ut_run_ud(&r, 5), -EINVAL);
	q_cmd(&r, fd, CMD_DISCARD, 0, 4096, 6)->rw_flags = 1;
	CHECK_RES(ut_run_ud(&r, 6), -EINVAL);
	int ro = open(ut_disk, O_RDONLY);
	CHECK_OK(ro);
	q_cmd(&r, ro, CMD_DISCARD, 0, 4096, 7);
	CHECK_RES(ut_run_ud(&r, 7), -EBADF);
	close(ro);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int blkdiscard(void)
{
	/*
	 * BLKDISCARD {start, len}: the range reads as zeros. Unaligned, empty or beyond the
	 * end: EINVAL; a read-only descriptor: EBADF.
	 */
	if (!ut_disk)
		return UT_UNSUP;
	int fd = open(ut_disk, O_RDWR);
	CHECK_OK(fd);
	CHECK_OK(fill(fd));
	uint64_t range[2] = { 16384, 4096 };
	CHECK_OK(ioctl(fd, BLKDISCARD, range));
	CHECK(reads_as(fd, 16384, 0) && reads_as(fd, 12288, 0x5a) && reads_as(fd, 20480, 0x5a));
	uint64_t bad[][2] = { { 1, 4096 }, { 0, 100 }, { 0, 0 }, { 1ULL << 40, 4096 } };
	for (unsigned i = 0; i < 4; i++)
		CHECK_ERR(ioctl(fd, BLKDISCARD, bad[i]), EINVAL);
	int ro = open(ut_disk, O_RDONLY);
	CHECK_OK(ro);
	CHECK_ERR(ioctl(ro, BLKDISCARD, range), EBADF);
	close(ro);
	close(fd);
	return UT_OK;
}

UT_FAMILY(blkcmd, T(no_commands), T(discard_cmd), T(blkdiscard));
