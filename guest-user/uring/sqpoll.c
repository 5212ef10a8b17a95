/*
 * IORING_SETUP_SQPOLL: a kernel poller consumes the SQ, so SQEs are submitted by
 * publishing the tail alone; after sq_thread_idle ms of nothing it sets
 * IORING_SQ_NEED_WAKEUP, and io_uring_enter(IORING_ENTER_SQ_WAKEUP) wakes it.
 */
#include "ut.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sqpoll_ring(struct io_uring *r, unsigned idle_ms)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL;
	p.sq_thread_idle = idle_ms;
	return io_uring_queue_init_params(8, r, &p);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* SQEs are submitted by the poller: the program only publishes the tail, and calls
 * io_uring_enter solely to wake the poller when it asks (IORING_SQ_NEED_WAKEUP), as the
 * protocol says; it never passes SQEs to enter. */
static int submit_without_enter(void)
{
	struct io_uring r;
	CHECK_OK(sqpoll_ring(&r, 2000));
	for (int i = 0; i < 4; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_nop(sqe);
		sqe->user_data = 100 + i;
	}
	/* Publish the tail by hand (not io_uring_submit, which may enter). */
	io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
	r.sq.sqe_head = r.sq.sqe_tail;
	unsigned seen = 0, wakeups = 0;
	for (int spins = 0; spins < 3000 && seen < 4; spins++) {
		/* The tail store before the flags load (pairs with the poller's fence). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (IO_URING_READ_ONCE(*r.sq.kflags) & IORING_SQ_NEED_WAKEUP) {
			CHECK_OK(sys_enter(r.ring_fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0) < 0 ? -errno : 0);
			wakeups++;
		}
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&r, &cqe) == 0) {
			CHECK_EQ(cqe->user_data, 100 + seen);
			CHECK_RES(cqe->res, 0);
			io_uring_cqe_seen(&r, cqe);
			seen++;
		}
		sleep_ms(1);
	}
	if (wakeups)
		ut_info("the poller asked to be woken %u times", wakeups);
	CHECK_EQ(seen, 4);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* Idle: NEED_WAKEUP appears; liburing's submit wakes the poller and work goes on. */
static int need_wakeup_then_wake(void)
{
	struct io_uring r;
	CHECK_OK(sqpoll_ring(&r, 20));
	sleep_ms(200);
	CHECK(IO_URING_READ_ONCE(*r.sq.kflags) & IORING_SQ_NEED_WAKEUP);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "poll", 4), 4);
	char buf[8] = { 0 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, p[0], buf, 4, 0);
	sqe->user_data = 7;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	CHECK_EQ(c.user_data, 7);
	CHECK_RES(c.res, 4);
	CHECK(memcmp(buf, "poll", 4) == 0);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* SQ_AFF needs SQPOLL; a CPU the machine does not have is refused. */
static int sq_aff_rules(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQ_AFF;
	CHECK_EQ(sys_setup(4, &p), -1);
	CHECK_EQ(errno, EINVAL);
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
	p.sq_thread_cpu = 4096;
	CHECK_EQ(sys_setup(4, &p), -1);
	CHECK_EQ(errno, EINVAL);
	return UT_OK;
}

/* Closing the ring ends the poller: a new one can be made and used at once. */
static int close_and_reopen(void)
{
	for (int round = 0; round < 3; round++) {
		struct io_uring r;
		CHECK_OK(sqpoll_ring(&r, 10));
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_nop(sqe);
		sqe->user_data = round;
		CHECK_EQ(io_uring_submit(&r), 1);
		struct io_uring_cqe c;
		CHECK_OK(ut_reap(&r, 1, &c));
		CHECK_EQ(c.user_data, (unsigned)round);
		io_uring_queue_exit(&r);
	}
	return UT_OK;
}

/* While the poller waits out its idle time, timers and devices still get the CPU: a
 * 10 ms timeout completes in about 10 ms, not after sq_thread_idle. */
static int poller_does_not_starve_timers(void)
{
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	CHECK_OK(sqpoll_ring(&r, 3000));
	struct __kernel_timespec ts = { 0, 10 * 1000000 };
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	clock_gettime(CLOCK_MONOTONIC, &b);
	long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	CHECK_RES(c.res, -ETIME);
	if (ms > 1500)
		FAIL("a 10 ms timeout took %ld ms", ms);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* Two pollers waiting out their idle time yield to each other, and still timers fire:
 * a 20 ms sleep of the program takes about 20 ms (found by the fuzzer: two pollers
 * kept the CPU between them with interrupts off). */
static int two_pollers_do_not_starve_timers(void)
{
	struct io_uring r1, r2;
	CHECK_OK(sqpoll_ring(&r1, 5000));
	CHECK_OK(sqpoll_ring(&r2, 5000));
	/* A NOP on each: both pollers are awake and busy-wait their idle time. */
	io_uring_prep_nop(io_uring_get_sqe(&r1));
	io_uring_prep_nop(io_uring_get_sqe(&r2));
	CHECK_EQ(io_uring_submit(&r1), 1);
	CHECK_EQ(io_uring_submit(&r2), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r1, 1, &c));
	CHECK_OK(ut_reap(&r2, 1, &c));
	long long start = ut_now_ms();
	sleep_ms(20);
	long long took = ut_now_ms() - start;
	ut_info("a 20 ms sleep took %lld ms", took);
	if (took > 1500)
		FAIL("a 20 ms sleep took %lld ms beside two pollers", took);
	io_uring_queue_exit(&r1);
	io_uring_queue_exit(&r2);
	return UT_OK;
}

UT_FAMILY(sqpoll, T(poller_does_not_starve_timers), T(two_pollers_do_not_starve_timers), T(submit_without_enter), T(need_wakeup_then_wake), T(sq_aff_rules), T(close_and_reopen));
