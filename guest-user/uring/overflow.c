/* CQ overflow with IORING_FEAT_NODROP: nothing lost, order kept, SQ_CQ_OVERFLOW flag. */
#include "ut.h"

static void push_nops(struct rring *r, unsigned n, unsigned *next)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	for (unsigned i = 0; i < n; i++) {
		sqe.user_data = (*next)++;
		rring_push(r, &sqe);
	}
}

static unsigned cq_ready(struct rring *r)
{
	return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

static unsigned sq_flags(struct rring *r)
{
	return __atomic_load_n(r->sq_flags, __ATOMIC_ACQUIRE);
}

static int nodrop_feature(void)
{
	CHECK(ut_features & IORING_FEAT_NODROP);
	return UT_OK;
}

static int overflow_flag_and_order(void)
{
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL)); /* CQ holds 8 */
	CHECK_EQ(*r.cq_entries, 8);
	unsigned next = 0, expect = 0;
	/* 16 NOPs in 4 submissions, nothing reaped */
	for (int b = 0; b < 4; b++) {
		push_nops(&r, 4, &next);
		int ret = sys_enter(r.fd, 4, 0, 0, NULL, 0);
		if (ret != 4) {
			int e = errno;
			rring_exit(&r);
			FAIL("submission %d of 4 NOPs: %d (%s)", b, ret, ut_errname(e));
		}
	}
	CHECK_EQ(cq_ready(&r), 8);
	CHECK(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW);
	CHECK_EQ(*r.cq_overflow, 0); /* nothing dropped */
	/* reap 3, then let the kernel flush: 3 more come in, 5 still wait */
	struct io_uring_cqe c;
	for (int i = 0; i < 3; i++) {
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, expect++);
		CHECK_RES(c.res, 0);
	}
	CHECK(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW);
	CHECK_EQ(sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	CHECK_EQ(cq_ready(&r), 8);
	CHECK(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW);
	for (int i = 0; i < 8; i++) {
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, expect++);
	}
	/* the last 5: the flag clears once the backlog is empty */
	CHECK_EQ(sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	CHECK_EQ(cq_ready(&r), 5);
	CHECK(!(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW));
	while (rring_pop(&r, &c))
		CHECK_EQ(c.user_data, expect++);
	CHECK_EQ(expect, 16);
	CHECK_EQ(*r.cq_overflow, 0);
	rring_exit(&r);
	return UT_OK;
}

static int new_cqes_queue_behind_overflow(void)
{
	/* CQEs posted while overflowed go behind the backlog, not into freed slots */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	unsigned next = 0, expect = 0;
	for (int b = 0; b < 3; b++) { /* 12 CQEs: 8 in the ring, 4 waiting */
		push_nops(&r, 4, &next);
		CHECK_EQ(sys_enter(r.fd, 4, 0, 0, NULL, 0), 4);
	}
	struct io_uring_cqe c;
	for (int i = 0; i < 2; i++) { /* free 2 slots */
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, expect++);
	}
	push_nops(&r, 1, &next); /* ud 12 */
	CHECK_EQ(sys_enter(r.fd, 1, 0, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	unsigned n = 0;
	while (expect < 13) {
		if (!rring_pop(&r, &c)) {
			CHECK_EQ(sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
			CHECK(++n < 10);
			continue;
		}
		CHECK_EQ(c.user_data, expect++);
	}
	CHECK(!(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW));
	CHECK_EQ(cq_ready(&r), 0);
	rring_exit(&r);
	return UT_OK;
}

static int liburing_reaps_all(void)
{
	/* the ordinary liburing loop sees every CQE, in order, after an overflow */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	for (unsigned b = 0; b < 5; b++) {
		for (unsigned i = 0; i < 4; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
			io_uring_prep_nop(sqe);
			sqe->user_data = b * 4 + i;
		}
		CHECK_EQ(io_uring_submit(&r), 4);
	}
	CHECK(io_uring_cq_has_overflow(&r));
	struct io_uring_cqe c[20];
	CHECK_OK(ut_reap(&r, 20, c));
	for (unsigned i = 0; i < 20; i++) {
		CHECK_EQ(c[i].user_data, i);
		CHECK_RES(c[i].res, 0);
	}
	CHECK(!io_uring_cq_has_overflow(&r));
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int close_while_overflowed(void)
{
	/* tearing down a ring with a CQ backlog is fine */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	unsigned next = 0;
	for (int b = 0; b < 3; b++) {
		push_nops(&r, 4, &next);
		CHECK_EQ(sys_enter(r.fd, 4, 0, 0, NULL, 0), 4);
	}
	CHECK(sq_flags(&r) & IORING_SQ_CQ_OVERFLOW);
	rring_exit(&r);
	/* and a fresh ring works */
	struct io_uring u;
	CHECK_OK(ut_ring(&u, 2));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u);
	io_uring_prep_nop(sqe);
	uint64_t ud;
	CHECK_RES(ut_run1(&u, &ud), 0);
	io_uring_queue_exit(&u);
	return UT_OK;
}

UT_FAMILY(overflow, T(nodrop_feature), T(overflow_flag_and_order),
	  T(new_cqes_queue_behind_overflow), T(liburing_reaps_all), T(close_while_overflowed));
