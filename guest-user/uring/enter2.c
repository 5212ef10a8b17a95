/*
 * io_uring_enter flags and EXT_ARG fields of Linux 6.12+: min_wait_usec (a two-phase
 * wait: until min_wait for min_complete CQEs, then, with none at all, until the timeout
 * for any one), IORING_ENTER_ABS_TIMER (the timeout is an absolute CLOCK_MONOTONIC
 * time), IORING_ENTER_NO_IOWAIT, IORING_ENTER_EXT_ARG_REG without a registered wait
 * region (-EFAULT). Feature bits IORING_FEAT_MIN_TIMEOUT and IORING_FEAT_NO_IOWAIT.
 */
#include "ut.h"

#include <time.h>

#define ENTER_ABS_TIMER (1U << 5)
#define ENTER_EXT_ARG_REG (1U << 6)
#define ENTER_NO_IOWAIT (1U << 7)
#define FEAT_MIN_TIMEOUT (1U << 15)
#define FEAT_NO_IOWAIT (1U << 17)

struct getevents_arg {
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t min_wait_usec;
	uint64_t ts;
};

/* io_uring_enter(GETEVENTS | EXT_ARG | extra) for `want` CQEs: -errno or 0; *ms: time taken. */
static int wait_for(struct io_uring *r, unsigned want, long long ts_ns, unsigned min_wait_us, unsigned extra,
		    long long *ms)
{
	struct __kernel_timespec ts = { ts_ns / 1000000000, ts_ns % 1000000000 };
	struct getevents_arg arg = { 0, 0, min_wait_us, ts_ns >= 0 ? (uintptr_t)&ts : 0 };
	long long t0 = ut_now_ms();
	int ret = sys_enter(r->ring_fd, 0, want, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | extra, &arg, sizeof arg);
	*ms = ut_now_ms() - t0;
	return ret < 0 ? -errno : ret;
}

static long long monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int features(void)
{
	/* Both features are reported by setup. */
	CHECK(ut_features & FEAT_MIN_TIMEOUT);
	CHECK(ut_features & FEAT_NO_IOWAIT);
	return UT_OK;
}

static int min_wait_some(void)
{
	/*
	 * Waiting for 2 CQEs with a 2 s timeout and min_wait 30 ms, with one CQE there:
	 * the wait ends once min_wait is over (one CQE is enough then), not at 2 s.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	ut_q_nop(&r, 1, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	long long ms;
	CHECK_RES(wait_for(&r, 2, 2000000000LL, 30000, 0, &ms), 0);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int min_wait_none(void)
{
	/*
	 * With nothing there when min_wait (20 ms) ends, the wait goes on until the timeout
	 * for any one CQE: a 60 ms TIMEOUT's ends it (0), well before the 2 s timeout.
	 * Without a timeout, the end of min_wait is the end: -ETIME.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec t60 = { 0, 60 * 1000 * 1000 };
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_timeout(sqe, &t60, 0, 0);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 1);
	long long ms;
	CHECK_RES(wait_for(&r, 4, 2000000000LL, 20000, 0, &ms), 0);
	if (ms < 45 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 60", ms);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 0));
	CHECK_RES(c.res, -ETIME);
	CHECK_RES(wait_for(&r, 1, -1, 20000, 0, &ms), -ETIME);
	if (ms < 15 || ms > 1500)
		FAIL("min_wait alone took %lld ms, expected about 20", ms);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int abs_timer(void)
{
	/*
	 * ABS_TIMER: the timeout is CLOCK_MONOTONIC's time 30 ms from now (-ETIME then);
	 * one in the past ends the wait at once.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	long long ms;
	CHECK_RES(wait_for(&r, 1, monotonic_ns() + 30000000LL, 0, ENTER_ABS_TIMER, &ms), -ETIME);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	/* (1 ns after the clock's start: past, even in a guest just booted) */
	CHECK_RES(wait_for(&r, 1, 1, 0, ENTER_ABS_TIMER, &ms), -ETIME);
	if (ms > 500)
		FAIL("a past deadline took %lld ms", ms);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int flags(void)
{
	/*
	 * NO_IOWAIT waits as usual. EXT_ARG_REG with no wait region registered: -EFAULT
	 * (-EINVAL when argsz is not struct io_uring_reg_wait's 64). Unknown flags: EINVAL.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	ut_q_nop(&r, 1, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	long long ms;
	CHECK_RES(wait_for(&r, 1, 1000000000LL, 0, ENTER_NO_IOWAIT, &ms), 0);
	uint64_t region_off = 0;
	CHECK_ERR(sys_enter(r.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG,
			    (void *)region_off, 64),
		  EFAULT);
	struct getevents_arg arg = { 0, 0, 0, 0 };
	CHECK_ERR(sys_enter(r.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG, &arg,
			    sizeof arg),
		  EINVAL);
	CHECK_ERR(sys_enter(r.ring_fd, 0, 0, 1U << 8, NULL, 0), EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(enter2, T(features), T(min_wait_some), T(min_wait_none), T(abs_timer), T(flags));
