/* IORING_OP_TIMEOUT (relative, counted, IORING_TIMEOUT_ABS) and IORING_OP_TIMEOUT_REMOVE. */
#include "ut.h"

#include <time.h>

#define MS 1000000LL

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct io_uring_sqe *q_timeout(struct io_uring *r, struct __kernel_timespec *ts,
				      unsigned count, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_timeout(sqe, ts, count, flags);
	sqe->user_data = ud;
	return sqe;
}

static int timeout_relative(void)
{
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * MS };
	q_timeout(&r, &ts, 0, 0, 0x71);
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	long long dt = now_ns() - t0;
	ut_info("20 ms timeout took %lld us", dt / 1000);
	CHECK_EQ(c.user_data, 0x71);
	CHECK_RES(c.res, -ETIME);
	if (dt < 19 * MS || dt > 2000 * MS)
		FAIL("20 ms timeout completed after %lld us", dt / 1000);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int timeout_count(void)
{
	/* count 1: the timeout completes with 0 as soon as one other CQE is posted */
	GATE(IORING_OP_TIMEOUT);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	q_timeout(&r, &ts, 1, 0, 1);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_nop(sqe);
	sqe->user_data = 2;
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	long long dt = now_ns() - t0;
	CHECK_EQ(c[0].user_data, 2);
	CHECK_RES(c[0].res, 0);
	CHECK_EQ(c[1].user_data, 1);
	CHECK_RES(c[1].res, 0);
	if (dt > 2000 * MS)
		FAIL("counted timeout completed after %lld us", dt / 1000);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int timeout_abs(void)
{
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	long long t0 = now_ns(), deadline = t0 + 20 * MS;
	struct __kernel_timespec ts = { .tv_sec = deadline / 1000000000LL,
					.tv_nsec = deadline % 1000000000LL };
	q_timeout(&r, &ts, 0, IORING_TIMEOUT_ABS, 0xab5);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	long long t1 = now_ns();
	ut_info("absolute deadline 20 ms ahead reached after %lld us", (t1 - t0) / 1000);
	CHECK_EQ(c.user_data, 0xab5);
	CHECK_RES(c.res, -ETIME);
	if (t1 < deadline - 1 * MS || t1 - t0 > 2000 * MS)
		FAIL("absolute timeout completed %lld us after submission", (t1 - t0) / 1000);
	/* a deadline in the past expires at once (1 ms ago: the clock may be young, as in a
	 * guest that just booted, so "a second ago" could be negative, which is EINVAL) */
	t0 = now_ns();
	ts.tv_sec = (t0 - 1 * MS) / 1000000000LL;
	ts.tv_nsec = (t0 - 1 * MS) % 1000000000LL;
	q_timeout(&r, &ts, 0, IORING_TIMEOUT_ABS, 0xab6);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_OK(ut_reap(&r, 1, &c));
	CHECK_EQ(c.user_data, 0xab6);
	CHECK_RES(c.res, -ETIME);
	if (now_ns() - t0 > 2000 * MS)
		FAIL("past absolute timeout took %lld us", (now_ns() - t0) / 1000);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_sqe(void)
{
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 1 * MS };
	uint64_t ud;
	/* len must be 1 (one timespec) */
	q_timeout(&r, &ts, 0, 0, 0xb1)->len = 2;
	CHECK_RES(ut_run1(&r, &ud), -EINVAL);
	CHECK_EQ(ud, 0xb1);
	q_timeout(&r, &ts, 0, 0, 0xb2)->len = 0;
	CHECK_RES(ut_run1(&r, &ud), -EINVAL);
	CHECK_EQ(ud, 0xb2);
	/* unknown timeout flags */
	q_timeout(&r, &ts, 0, 0x80000000u, 0xb3);
	CHECK_RES(ut_run1(&r, &ud), -EINVAL);
	CHECK_EQ(ud, 0xb3);
	/* a bad timespec pointer */
	q_timeout(&r, (struct __kernel_timespec *)8, 0, 0, 0xb4);
	CHECK_RES(ut_run1(&r, &ud), -EFAULT);
	CHECK_EQ(ud, 0xb4);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int remove_pending(void)
{
	GATE(IORING_OP_TIMEOUT);
	GATE(IORING_OP_TIMEOUT_REMOVE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct __kernel_timespec ts = { .tv_sec = 10, .tv_nsec = 0 };
	q_timeout(&r, &ts, 0, 0, 0x71);
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout_remove(sqe, 0x71, 0);
	sqe->user_data = 0x72;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	long long dt = now_ns() - t0;
	ut_info("CQE order: 0x%llx then 0x%llx", (unsigned long long)c[0].user_data,
		(unsigned long long)c[1].user_data);
	int rm = 12345, to = 12345;
	for (int i = 0; i < 2; i++) {
		if (c[i].user_data == 0x71)
			to = c[i].res;
		else if (c[i].user_data == 0x72)
			rm = c[i].res;
		else
			FAIL("unexpected CQE user_data 0x%llx", (unsigned long long)c[i].user_data);
	}
	CHECK_RES(rm, 0);
	CHECK_RES(to, -ECANCELED);
	if (dt > 2000 * MS)
		FAIL("removing the timeout took %lld us", dt / 1000);
	/* it is gone now */
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout_remove(sqe, 0x71, 0);
	sqe->user_data = 0x73;
	uint64_t ud = 0;
	CHECK_RES(ut_run1(&r, &ud), -ENOENT);
	CHECK_EQ(ud, 0x73);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int remove_unknown(void)
{
	GATE(IORING_OP_TIMEOUT_REMOVE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout_remove(sqe, 0xdead, 0);
	sqe->user_data = 0x74;
	uint64_t ud = 0;
	CHECK_RES(ut_run1(&r, &ud), -ENOENT);
	CHECK_EQ(ud, 0x74);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(timeout, T(timeout_relative), T(timeout_count), T(timeout_abs), T(bad_sqe),
	  T(remove_pending), T(remove_unknown));
