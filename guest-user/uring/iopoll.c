/*
 * IORING_SETUP_IOPOLL: completions of O_DIRECT block-device reads and writes are found by
 * polling (io_uring_enter with GETEVENTS, or the SQ poller), not by interrupt. Opcodes
 * without IOPOLL support are -EINVAL; files that cannot be polled (pipes, buffered
 * files, disks without poll queues such as Linux's loop devices) -EOPNOTSUPP. The disk
 * tests need `--disk BLOCKDEV` (a scratch device with poll queues: they write to it) and
 * are unsupported without one.
 */
#include "ut.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#define IORING_SETUP_HYBRID_IOPOLL_ (1U << 17)

static int iopoll_ring(struct io_uring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_IOPOLL | flags;
	p.sq_thread_idle = 100;
	return io_uring_queue_init_params(entries, r, &p);
}

static int opcodes(void)
{
	/*
	 * NOP completes; POLL_ADD, TIMEOUT and OPENAT are -EINVAL; READ of a pipe or of a
	 * file opened without O_DIRECT is -EOPNOTSUPP.
	 */
	struct io_uring r;
	CHECK_OK(iopoll_ring(&r, 8, 0));
	ut_q_nop(&r, 1, 0);
	CHECK_RES(ut_run_ud(&r, 1), 0);
	int p[2];
	CHECK_OK(pipe(p));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, p[0], POLLIN);
	sqe->user_data = 2;
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	struct __kernel_timespec ts = { 0, 1000 };
	sqe = ut_sqe(&r);
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	sqe->user_data = 3;
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	sqe = ut_sqe(&r);
	io_uring_prep_openat(sqe, AT_FDCWD, "/", O_RDONLY, 0);
	sqe->user_data = 4;
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	char b[8];
	CHECK_EQ(write(p[1], "x", 1), 1);
	sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, p[0], b, sizeof b, 0);
	sqe->user_data = 5;
	CHECK_RES(ut_run_ud(&r, 5), -EOPNOTSUPP);
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "data", 4, 0), 4);
	sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, f, b, sizeof b, 0);
	sqe->user_data = 6;
	CHECK_RES(ut_run_ud(&r, 6), -EOPNOTSUPP);
	close(f);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* The scratch disk opened O_DIRECT (`flags` more), or UT_UNSUP without one. */
static int open_disk(int flags)
{
	if (!ut_disk)
		return -1;
	return open(ut_disk, O_RDWR | O_DIRECT | flags);
}

static int disk_rw(void)
{
	/*
	 * 16 4 KiB O_DIRECT writes then 16 reads of the same blocks, queued 8 at a time: each
	 * CQE is 4096 and every block reads back as written. A CQE is only posted when
	 * GETEVENTS reaps it.
	 */
	int fd = open_disk(0);
	if (fd < 0)
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(iopoll_ring(&r, 8, 0));
	char *buf = NULL;
	CHECK_OK(posix_memalign((void **)&buf, 4096, 16 * 4096));
	for (int i = 0; i < 16; i++)
		ut_pattern(buf + i * 4096, 4096, 100 + i);
	for (int pass = 0; pass < 2; pass++) {
		if (pass)
			memset(buf, 0, 16 * 4096);
		for (int batch = 0; batch < 2; batch++) {
			for (int i = 0; i < 8; i++) {
				int blk = batch * 8 + i;
				struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
				if (pass)
					io_uring_prep_read(sqe, fd, buf + blk * 4096, 4096, (uint64_t)blk * 4096);
				else
					io_uring_prep_write(sqe, fd, buf + blk * 4096, 4096, (uint64_t)blk * 4096);
				sqe->user_data = blk;
			}
			CHECK_EQ(io_uring_submit(&r), 8);
			struct io_uring_cqe c[8];
			CHECK_OK(ut_reap(&r, 8, c));
			if (c[0].res == -EOPNOTSUPP) { /* no poll queues */
				free(buf);
				io_uring_queue_exit(&r);
				close(fd);
				return UT_UNSUP;
			}
			for (int i = 0; i < 8; i++)
				CHECK_RES(c[i].res, 4096);
		}
	}
	char *want = malloc(4096);
	for (int i = 0; i < 16; i++) {
		ut_pattern(want, 4096, 100 + i);
		if (memcmp(want, buf + i * 4096, 4096))
			FAIL("block %d reads back wrong", i);
	}
	free(want);
	/*
	 * Nothing is posted until GETEVENTS reaps it (submitted by hand: liburing's submit
	 * adds GETEVENTS on IOPOLL rings).
	 */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, fd, buf, 4096, 0);
	sqe->user_data = 99;
	io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
	CHECK_EQ(sys_enter(r.ring_fd, 1, 0, 0, NULL, 0), 1);
	ut_sleep_ms(50);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(sys_enter(r.ring_fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	struct io_uring_cqe *cqe;
	CHECK_OK(io_uring_peek_cqe(&r, &cqe));
	CHECK_EQ(cqe->user_data, 99);
	CHECK_RES(cqe->res, 4096);
	io_uring_cqe_seen(&r, cqe);
	free(buf);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int disk_sqpoll(void)
{
	/* IOPOLL with SQPOLL: the poller submits and reaps; no enter is needed. */
	int fd = open_disk(0);
	if (fd < 0)
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(iopoll_ring(&r, 8, IORING_SETUP_SQPOLL));
	char *buf = NULL;
	CHECK_OK(posix_memalign((void **)&buf, 4096, 4 * 4096));
	for (int i = 0; i < 4; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_read(sqe, fd, buf + i * 4096, 4096, (uint64_t)i * 4096);
		sqe->user_data = i;
	}
	CHECK_EQ(io_uring_submit(&r), 4);
	struct io_uring_cqe c[4];
	CHECK_OK(ut_reap(&r, 4, c));
	if (c[0].res == -EOPNOTSUPP) { /* no poll queues */
		free(buf);
		io_uring_queue_exit(&r);
		close(fd);
		return UT_UNSUP;
	}
	for (int i = 0; i < 4; i++)
		CHECK_RES(c[i].res, 4096);
	free(buf);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int disk_buffered(void)
{
	/* The disk opened without O_DIRECT: -EOPNOTSUPP. */
	if (!ut_disk)
		return UT_UNSUP;
	int fd = open(ut_disk, O_RDONLY);
	CHECK_OK(fd);
	struct io_uring r;
	CHECK_OK(iopoll_ring(&r, 8, 0));
	char b[512];
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, fd, b, sizeof b, 0);
	sqe->user_data = 1;
	CHECK_RES(ut_run_ud(&r, 1), -EOPNOTSUPP);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

static int hybrid(void)
{
	/*
	 * HYBRID_IOPOLL needs IOPOLL (EINVAL alone); on a disk its reads complete as with
	 * IOPOLL (a wait sleeps part of the expected time, then polls).
	 */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_HYBRID_IOPOLL_;
	struct io_uring r;
	CHECK_RES(io_uring_queue_init_params(4, &r, &p), -EINVAL);
	int fd = open_disk(0);
	if (fd < 0)
		return UT_UNSUP;
	CHECK_OK(iopoll_ring(&r, 8, IORING_SETUP_HYBRID_IOPOLL_));
	char *buf = NULL;
	CHECK_OK(posix_memalign((void **)&buf, 4096, 4096));
	for (int i = 0; i < 8; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_read(sqe, fd, buf, 4096, (uint64_t)i * 4096);
		sqe->user_data = i;
		CHECK_EQ(io_uring_submit(&r), 1);
		struct io_uring_cqe c;
		CHECK_OK(ut_reap(&r, 1, &c));
		if (c.res == -EOPNOTSUPP) {
			free(buf);
			io_uring_queue_exit(&r);
			close(fd);
			return UT_UNSUP;
		}
		CHECK_RES(c.res, 4096);
	}
	free(buf);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

UT_FAMILY(iopoll, T(opcodes), T(disk_rw), T(disk_sqpoll), T(disk_buffered), T(hybrid));
