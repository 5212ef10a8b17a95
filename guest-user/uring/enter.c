/* io_uring_enter: GETEVENTS, min_complete, EXT_ARG timeouts, flags, bad fds. */
#include "ut.h"

#include <fcntl.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void push_nop(struct rring *r, uint64_t ud)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	sqe.user_data = ud;
	rring_push(r, &sqe);
}

static unsigned cq_ready(struct rring *r)
{
	return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

static int getevents_min_complete(void)
{
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 8, NULL));
	for (int i = 0; i < 4; i++)
		push_nop(&r, i);
	/* submit without waiting */
	CHECK_EQ(sys_enter(r.fd, 4, 0, 0, NULL, 0), 4);
	CHECK_EQ(cq_ready(&r), 4);
	/* 4 are there: waiting for 4 returns at once, and submits nothing */
	CHECK_EQ(sys_enter(r.fd, 0, 4, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	/* submit 2 more and wait for 6 in total: min_complete counts what is in the CQ */
	push_nop(&r, 4);
	push_nop(&r, 5);
	CHECK_EQ(sys_enter(r.fd, 2, 6, IORING_ENTER_GETEVENTS, NULL, 0), 2);
	CHECK_EQ(cq_ready(&r), 6);
	struct io_uring_cqe c;
	for (unsigned i = 0; i < 6; i++) {
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, i);
	}
	/* without GETEVENTS, min_complete is ignored */
	CHECK_EQ(sys_enter(r.fd, 0, 1, 0, NULL, 0), 0);
	rring_exit(&r);
	return UT_OK;
}

static int getevents_waits_for_pipe(void)
{
	/* min_complete 1 with a pending pipe read: returns once the data is written */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_WRITE);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char b[4];
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_READ;
	sqe.fd = p[0];
	sqe.addr = (uint64_t)(uintptr_t)b;
	sqe.len = 4;
	sqe.user_data = 1;
	rring_push(&r, &sqe);
	/* the write goes through the ring too, in a second enter that waits for both */
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_WRITE;
	sqe.fd = p[1];
	sqe.addr = (uint64_t)(uintptr_t) "ping";
	sqe.len = 4;
	sqe.user_data = 2;
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	CHECK_EQ(cq_ready(&r), 0);
	rring_push(&r, &sqe);
	CHECK_EQ(sys_enter(r.fd, 1, 2, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	CHECK_EQ(cq_ready(&r), 2);
	int res[3] = { 0 };
	struct io_uring_cqe c;
	while (rring_pop(&r, &c))
		if (c.user_data == 1 || c.user_data == 2)
			res[c.user_data] = c.res;
	CHECK_RES(res[1], 4);
	CHECK_RES(res[2], 4);
	CHECK(memcmp(b, "ping", 4) == 0);
	close(p[0]);
	close(p[1]);
	rring_exit(&r);
	return UT_OK;
}

static int ext_arg_timeout(void)
{
	GATE(IORING_OP_NOP);
	if (!(ut_features & IORING_FEAT_EXT_ARG))
		FAIL("no IORING_FEAT_EXT_ARG (features 0x%x)", ut_features);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	struct __kernel_timespec ts = { 0, 20 * 1000 * 1000 };
	struct io_uring_getevents_arg arg;
	memset(&arg, 0, sizeof arg);
	arg.ts = (uint64_t)(uintptr_t)&ts;
	uint64_t t0 = now_ns();
	int ret = sys_enter(r.fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			    sizeof arg);
	int e = errno;
	uint64_t dt = now_ns() - t0;
	if (ret != -1 || e != ETIME) {
		rring_exit(&r);
		FAIL("enter returned %d (%s), expected ETIME", ret, ut_errname(e));
	}
	/* it did wait (allow a coarse clock) */
	if (dt < 10 * 1000 * 1000) {
		rring_exit(&r);
		FAIL("a 20 ms timeout returned after %llu ns", (unsigned long long)dt);
	}
	/*
	 * One CQE ready, two wanted: Linux waits out the timeout, then returns 0, not
	 * -ETIME, because the CQ is not empty (io_cqring_wait's last line).
	 */
	push_nop(&r, 1);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	t0 = now_ns();
	ret = sys_enter(r.fd, 0, 2, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			sizeof arg);
	dt = now_ns() - t0;
	CHECK_EQ(ret, 0);
	CHECK(dt >= 10 * 1000 * 1000);
	CHECK_EQ(cq_ready(&r), 1);
	/* one wanted: returns 0 at once */
	CHECK_EQ(sys_enter(r.fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			   sizeof arg),
		 0);
	/* EXT_ARG with no timeout pointer and a completion to wait for */
	struct io_uring_cqe c;
	CHECK(rring_pop(&r, &c));
	memset(&arg, 0, sizeof arg);
	push_nop(&r, 2);
	CHECK_EQ(sys_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
			   sizeof arg),
		 1);
	CHECK(rring_pop(&r, &c));
	CHECK_EQ(c.user_data, 2);
	rring_exit(&r);
	return UT_OK;
}

static int ext_arg_bad(void)
{
	if (!(ut_features & IORING_FEAT_EXT_ARG))
		FAIL("no IORING_FEAT_EXT_ARG (features 0x%x)", ut_features);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	struct io_uring_getevents_arg arg;
	memset(&arg, 0, sizeof arg);
	unsigned fl = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	CHECK_ERR(sys_enter(r.fd, 0, 0, fl, &arg, 8), EINVAL);
	CHECK_ERR(sys_enter(r.fd, 0, 0, fl, &arg, sizeof arg + 8), EINVAL);
	CHECK_ERR(sys_enter(r.fd, 0, 0, fl, (void *)8, sizeof arg), EFAULT);
	arg.ts = 8; /* unreadable timespec */
	CHECK_ERR(sys_enter(r.fd, 0, 0, fl, &arg, sizeof arg), EFAULT);
	rring_exit(&r);
	return UT_OK;
}

static int bad_flags(void)
{
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	CHECK_ERR(sys_enter(r.fd, 0, 0, 1u << 30, NULL, 0), EINVAL);
	CHECK_ERR(sys_enter(r.fd, 0, 0, 1u << 31, NULL, 0), EINVAL);
	CHECK_ERR(sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS | (1u << 20), NULL, 0), EINVAL);
	rring_exit(&r);
	return UT_OK;
}

static int not_a_ring(void)
{
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int ret = sys_enter(p[0], 0, 0, 0, NULL, 0);
	int e = errno;
	close(p[0]);
	close(p[1]);
	CHECK_EQ(ret, -1);
	CHECK_EQ(e, EOPNOTSUPP);
	CHECK_ERR(sys_enter(999, 0, 0, 0, NULL, 0), EBADF);
	CHECK_ERR(sys_enter(999, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), EBADF);
	return UT_OK;
}

static int to_submit_clamped(void)
{
	/* to_submit larger than what is queued: only what is queued is submitted */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 8, NULL));
	CHECK_EQ(sys_enter(r.fd, 8, 0, 0, NULL, 0), 0);
	push_nop(&r, 1);
	push_nop(&r, 2);
	CHECK_EQ(sys_enter(r.fd, 8, 0, 0, NULL, 0), 2);
	CHECK_EQ(*r.sq_head, 2);
	/* to_submit smaller than what is queued: the rest stays in the SQ */
	for (int i = 0; i < 3; i++)
		push_nop(&r, 3 + i);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(sys_enter(r.fd, 100, 0, 0, NULL, 0), 2);
	CHECK_EQ(*r.sq_head, 5);
	CHECK_EQ(cq_ready(&r), 5);
	struct io_uring_cqe c;
	for (unsigned i = 1; i <= 5; i++) {
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, i);
	}
	rring_exit(&r);
	return UT_OK;
}

UT_FAMILY(enter, T(getevents_min_complete), T(getevents_waits_for_pipe), T(ext_arg_timeout),
	  T(ext_arg_bad), T(bad_flags), T(not_a_ring), T(to_submit_clamped));
