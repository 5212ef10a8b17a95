/*
 * Timeout flags of Linux 5.16+ and 6.4+: IORING_TIMEOUT_ETIME_SUCCESS (-ETIME does not
 * fail the link chain) and IORING_TIMEOUT_MULTISHOT (a repeating relative timeout:
 * -ETIME with IORING_CQE_F_MORE at the end of each period, sqe->off periods, 0 for
 * "until removed"; the last CQE has no F_MORE).
 */
#include "ut.h"

#define TIMEOUT_ETIME_SUCCESS (1U << 5)
#define TIMEOUT_MULTISHOT (1U << 6)

static struct io_uring_sqe *q_timeout(struct io_uring *r, struct __kernel_timespec *ts, unsigned count,
				      unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_timeout(sqe, ts, count, flags);
	sqe->user_data = ud;
	return sqe;
}

static int periods(void)
{
	/*
	 * MULTISHOT with off 3: three CQEs -ETIME about one period apart, F_MORE on the
	 * first two; then nothing more.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { 0, 20 * 1000 * 1000 };
	q_timeout(&r, &ts, 3, TIMEOUT_MULTISHOT, 1);
	long long t0 = ut_now_ms();
	CHECK_EQ(io_uring_submit(&r), 1);
	for (int i = 0; i < 3; i++)
		EXPECT_CQE(&r, 1, -ETIME, i < 2, NULL);
	long long took = ut_now_ms() - t0;
	if (took < 55)
		FAIL("three 20 ms periods took %lld ms", took);
	ut_sleep_ms(50);
	struct io_uring_cqe *cqe;
	CHECK(io_uring_peek_cqe(&r, &cqe) != 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int forever(void)
{
	/* MULTISHOT with off 0 repeats until TIMEOUT_REMOVE ends it with -ECANCELED. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { 0, 10 * 1000 * 1000 };
	q_timeout(&r, &ts, 0, TIMEOUT_MULTISHOT, 2);
	CHECK_EQ(io_uring_submit(&r), 1);
	for (int i = 0; i < 4; i++)
		EXPECT_CQE(&r, 2, -ETIME, 1, NULL);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_timeout_remove(sqe, 2, 0);
	sqe->user_data = 3;
	CHECK_EQ(io_uring_submit(&r), 1);
	/* a period may have ended between the last reap and the removal */
	struct io_uring_cqe c;
	int seen_remove = 0, seen_end = 0;
	for (int i = 0; i < 4 && !(seen_remove && seen_end); i++) {
		CHECK_OK(ut_wait_cqe_ms(&r, &c, 2000));
		if (c.user_data == 3) {
			CHECK_RES(c.res, 0);
			seen_remove = 1;
		} else if (c.res == -ECANCELED) {
			CHECK(!(c.flags & IORING_CQE_F_MORE));
			seen_end = 1;
		} else {
			CHECK_RES(c.res, -ETIME);
			CHECK(c.flags & IORING_CQE_F_MORE);
		}
	}
	CHECK(seen_remove && seen_end);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_flags(void)
{
	/* MULTISHOT with ABS, and unknown flags: EINVAL. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { 0, 1000 };
	q_timeout(&r, &ts, 0, TIMEOUT_MULTISHOT | IORING_TIMEOUT_ABS, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	q_timeout(&r, &ts, 0, 1U << 7, 5);
	CHECK_RES(ut_run_ud(&r, 5), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int etime_success(void)
{
	/*
	 * A timeout that expires fails its chain (the linked NOP: -ECANCELED); with
	 * ETIME_SUCCESS its -ETIME does not (the NOP runs: 0).
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { 0, 5 * 1000 * 1000 };
	for (int pass = 0; pass < 2; pass++) {
		unsigned flags = pass ? TIMEOUT_ETIME_SUCCESS : 0;
		q_timeout(&r, &ts, 0, flags, 10)->flags |= IOSQE_IO_LINK;
		ut_q_nop(&r, 11, 0);
		CHECK_EQ(io_uring_submit(&r), 2);
		EXPECT_CQE(&r, 10, -ETIME, 0, NULL);
		EXPECT_CQE(&r, 11, pass ? 0 : -ECANCELED, 0, NULL);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(mtimeout, T(periods), T(forever), T(bad_flags), T(etime_success));
