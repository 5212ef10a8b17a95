/* IOSQE_IO_LINK, IOSQE_IO_HARDLINK, IOSQE_IO_DRAIN, IOSQE_CQE_SKIP_SUCCESS. */
#include "ut.h"

#include <fcntl.h>

static struct io_uring_sqe *q_rw(struct io_uring *r, int op, int fd, const void *buf,
				 unsigned len, uint64_t off, uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_rw(op, sqe, fd, buf, len, off);
	sqe->flags = (uint8_t)flags;
	sqe->user_data = ud;
	return sqe;
}

/* Reap n CQEs and index their res by user_data (1..n); check each ud appears once. */
static int reap_by_ud(struct io_uring *r, unsigned n, int *res, uint64_t *order)
{
	struct io_uring_cqe c[16];
	int ret = ut_reap(r, n, c);
	if (ret < 0)
		return ut_fail(__FILE__, __LINE__, "reap: %s", ut_errname(-ret));
	for (unsigned i = 1; i <= n; i++)
		res[i] = 12345;
	for (unsigned i = 0; i < n; i++) {
		uint64_t ud = c[i].user_data;
		if (ud < 1 || ud > n || res[ud] != 12345)
			return ut_fail(__FILE__, __LINE__, "unexpected CQE user_data %llu",
				       (unsigned long long)ud);
		res[ud] = c[i].res;
		if (order)
			order[i] = ud;
	}
	return UT_OK;
}

static int chain_order(void)
{
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	char b[8] = { 0 };
	q_rw(&r, IORING_OP_WRITE, fd, "a", 1, (uint64_t)-1, 1, IOSQE_IO_LINK);
	q_rw(&r, IORING_OP_WRITE, fd, "bb", 2, (uint64_t)-1, 2, IOSQE_IO_LINK);
	q_rw(&r, IORING_OP_WRITE, fd, "c", 1, (uint64_t)-1, 3, IOSQE_IO_LINK);
	q_rw(&r, IORING_OP_READ, fd, b, 8, 0, 4, 0);
	CHECK_EQ(io_uring_submit(&r), 4);
	int res[5];
	uint64_t order[4];
	TRY(reap_by_ud(&r, 4, res, order));
	CHECK_RES(res[1], 1);
	CHECK_RES(res[2], 2);
	CHECK_RES(res[3], 1);
	CHECK_RES(res[4], 4);
	CHECK(memcmp(b, "abbc", 4) == 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(order[i], i + 1);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int link_waits_for_pipe(void)
{
	/* the second link member does not start before the first (a pipe read) ends */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	char b[8] = { 0 };
	q_rw(&r, IORING_OP_READ, p[0], b, 2, 0, 1, IOSQE_IO_LINK); /* exactly 2: a short read would break the link */
	q_rw(&r, IORING_OP_WRITE, fd, "after", 5, 0, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 0);
	CHECK_EQ(write(p[1], "go", 2), 2);
	int res[3];
	uint64_t order[2];
	TRY(reap_by_ud(&r, 2, res, order));
	CHECK_RES(res[1], 2);
	CHECK_RES(res[2], 5);
	CHECK_EQ(order[0], 1);
	CHECK_EQ(lseek(fd, 0, SEEK_END), 5);
	close(p[0]);
	close(p[1]);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int failure_cancels_rest(void)
{
	GATE(IORING_OP_NOP);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	char b[8];
	ut_q_nop(&r, 1, IOSQE_IO_LINK);
	q_rw(&r, IORING_OP_READ, 1000, b, 8, 0, 2, IOSQE_IO_LINK);
	ut_q_nop(&r, 3, IOSQE_IO_LINK);
	ut_q_nop(&r, 4, 0); /* last member */
	ut_q_nop(&r, 5, 0); /* not in the chain */
	CHECK_EQ(io_uring_submit(&r), 5);
	int res[6];
	uint64_t order[5];
	TRY(reap_by_ud(&r, 5, res, order));
	CHECK_RES(res[1], 0);
	CHECK_RES(res[2], -EBADF);
	CHECK_RES(res[3], -ECANCELED);
	CHECK_RES(res[4], -ECANCELED);
	CHECK_RES(res[5], 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int init_failure_cancels_head(void)
{
	/*
	 * A member that fails at submission (unknown opcode) fails the whole chain:
	 * the head never runs and completes with -ECANCELED, like the members after it.
	 */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	ut_q_nop(&r, 1, IOSQE_IO_LINK);
	struct io_uring_sqe *sqe = ut_q_nop(&r, 2, IOSQE_IO_LINK);
	sqe->opcode = 250;
	ut_q_nop(&r, 3, 0);
	ut_q_nop(&r, 4, 0);
	CHECK_EQ(io_uring_submit(&r), 4);
	int res[5];
	TRY(reap_by_ud(&r, 4, res, NULL));
	CHECK_RES(res[1], -ECANCELED);
	CHECK_RES(res[2], -EINVAL);
	CHECK_RES(res[3], -ECANCELED);
	CHECK_RES(res[4], 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int hardlink_continues(void)
{
	GATE(IORING_OP_NOP);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	char b[8];
	ut_q_nop(&r, 1, IOSQE_IO_HARDLINK);
	q_rw(&r, IORING_OP_READ, 1000, b, 8, 0, 2, IOSQE_IO_HARDLINK);
	ut_q_nop(&r, 3, IOSQE_IO_HARDLINK);
	ut_q_nop(&r, 4, 0);
	CHECK_EQ(io_uring_submit(&r), 4);
	int res[5];
	uint64_t order[4];
	TRY(reap_by_ud(&r, 4, res, order));
	CHECK_RES(res[1], 0);
	CHECK_RES(res[2], -EBADF);
	CHECK_RES(res[3], 0);
	CHECK_RES(res[4], 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(order[i], i + 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int short_read_breaks_link(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	char b[100];
	/* a full read keeps the chain going */
	q_rw(&r, IORING_OP_READ, fd, b, 10, 0, 1, IOSQE_IO_LINK);
	ut_q_nop(&r, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	int res[3];
	TRY(reap_by_ud(&r, 2, res, NULL));
	CHECK_RES(res[1], 10);
	CHECK_RES(res[2], 0);
	/* a short one breaks it */
	q_rw(&r, IORING_OP_READ, fd, b, 100, 0, 1, IOSQE_IO_LINK);
	ut_q_nop(&r, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	TRY(reap_by_ud(&r, 2, res, NULL));
	CHECK_RES(res[1], 10);
	CHECK_RES(res[2], -ECANCELED);
	/* a hard link does not care */
	q_rw(&r, IORING_OP_READ, fd, b, 100, 0, 1, IOSQE_IO_HARDLINK);
	ut_q_nop(&r, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	TRY(reap_by_ud(&r, 2, res, NULL));
	CHECK_RES(res[1], 10);
	CHECK_RES(res[2], 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int link_at_end_of_submit(void)
{
	/* a LINK flag on the last SQE of a submission: the chain just ends there */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	ut_q_nop(&r, 1, IOSQE_IO_LINK);
	CHECK_EQ(io_uring_submit(&r), 1);
	int res[2];
	TRY(reap_by_ud(&r, 1, res, NULL));
	CHECK_RES(res[1], 0);
	/* and the next submission is not part of it */
	ut_q_nop(&r, 1, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	TRY(reap_by_ud(&r, 1, res, NULL));
	CHECK_RES(res[1], 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int drain(void)
{
	/* a drained NOP waits for an earlier pending pipe read; later SQEs wait for it */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char b[8];
	q_rw(&r, IORING_OP_READ, p[0], b, 8, 0, 1, 0);
	ut_q_nop(&r, 2, IOSQE_IO_DRAIN);
	ut_q_nop(&r, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(write(p[1], "x", 1), 1);
	int res[4];
	uint64_t order[3];
	TRY(reap_by_ud(&r, 3, res, order));
	CHECK_RES(res[1], 1);
	CHECK_RES(res[2], 0);
	CHECK_RES(res[3], 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(order[i], i + 1);
	/* with nothing in flight, a drained request runs at once */
	ut_q_nop(&r, 1, IOSQE_IO_DRAIN);
	CHECK_EQ(io_uring_submit(&r), 1);
	TRY(reap_by_ud(&r, 1, res, NULL));
	CHECK_RES(res[1], 0);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cqe_skip_success(void)
{
	GATE(IORING_OP_NOP);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	if (!(ut_features & IORING_FEAT_CQE_SKIP)) {
		/* not supported: the flag is an unknown SQE flag */
		ut_q_nop(&r, 1, IOSQE_CQE_SKIP_SUCCESS);
		uint64_t ud;
		CHECK_RES(ut_run1(&r, &ud), -EINVAL);
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	char b[8];
	ut_q_nop(&r, 1, IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r, 2, 0);
	q_rw(&r, IORING_OP_READ, 1000, b, 8, 0, 3, IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r, 4, IOSQE_CQE_SKIP_SUCCESS);
	CHECK_EQ(io_uring_submit(&r), 4);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	CHECK_EQ(c[0].user_data, 2);
	CHECK_RES(c[0].res, 0);
	CHECK_EQ(c[1].user_data, 3);
	CHECK_RES(c[1].res, -EBADF);
	/* nothing else arrives: a NOP after it is the very next CQE */
	ut_q_nop(&r, 9, 0);
	CHECK_EQ(io_uring_submit_and_wait(&r, 1), 1);
	CHECK_EQ(io_uring_cq_ready(&r), 1);
	CHECK_OK(ut_reap(&r, 1, c));
	CHECK_EQ(c[0].user_data, 9);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(link, T(chain_order), T(link_waits_for_pipe), T(failure_cancels_rest),
	  T(init_failure_cancels_head), T(hardlink_continues), T(short_read_breaks_link),
	  T(link_at_end_of_submit), T(drain), T(cqe_skip_success));
