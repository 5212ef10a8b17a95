/* IORING_OP_NOP: user_data echo, batches, CQE order. */
#include "ut.h"

static int user_data(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	static const uint64_t uds[] = { 0, 1, 0xdeadbeefcafef00dull, ~0ull };
	for (int i = 0; i < 4; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_nop(sqe);
		sqe->user_data = uds[i];
	}
	CHECK_EQ(io_uring_submit(&r), 4);
	struct io_uring_cqe c[4];
	CHECK_OK(ut_reap(&r, 4, c));
	io_uring_queue_exit(&r);
	for (int i = 0; i < 4; i++) {
		CHECK(c[i].user_data == uds[i]);
		CHECK_RES(c[i].res, 0);
		CHECK_EQ(c[i].flags, 0);
	}
	return UT_OK;
}

static int batches(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 32));
	for (unsigned n = 1; n <= 32; n++) {
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
			CHECK(sqe != NULL);
			io_uring_prep_nop(sqe);
			sqe->user_data = n * 1000 + i;
		}
		int ret = io_uring_submit_and_wait(&r, n);
		if (ret != (int)n) {
			io_uring_queue_exit(&r);
			FAIL("batch of %u: submit returned %d", n, ret);
		}
		CHECK_EQ(io_uring_cq_ready(&r), n);
		struct io_uring_cqe c[32];
		CHECK_OK(ut_reap(&r, n, c));
		for (unsigned i = 0; i < n; i++) {
			if (c[i].user_data != n * 1000 + i || c[i].res != 0) {
				io_uring_queue_exit(&r);
				FAIL("batch of %u: CQE %u has user_data %llu res %d", n, i,
				     (unsigned long long)c[i].user_data, c[i].res);
			}
		}
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cqe_order(void)
{
	/* three submissions without reaping: 24 CQEs in submission order */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8)); /* CQ holds 16: reap after the second batch */
	unsigned next = 0;
	struct io_uring_cqe c[24];
	unsigned got = 0;
	for (int b = 0; b < 3; b++) {
		for (int i = 0; i < 8; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
			io_uring_prep_nop(sqe);
			sqe->user_data = next++;
		}
		CHECK_EQ(io_uring_submit(&r), 8);
		if (b == 1) {
			CHECK_EQ(io_uring_cq_ready(&r), 16);
			CHECK_OK(ut_reap(&r, 16, c));
			got = 16;
		}
	}
	CHECK_OK(ut_reap(&r, 8, c + got));
	io_uring_queue_exit(&r);
	for (unsigned i = 0; i < 24; i++)
		CHECK_EQ(c[i].user_data, i);
	return UT_OK;
}

static int sq_head_advances(void)
{
	/* the kernel consumes SQEs: head == tail after submit; CQ tail counts CQEs */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	for (int i = 0; i < 3; i++) {
		sqe.user_data = 100 + i;
		rring_push(&r, &sqe);
	}
	int ret = sys_enter(r.fd, 3, 0, 0, NULL, 0);
	unsigned head = __atomic_load_n(r.sq_head, __ATOMIC_ACQUIRE);
	unsigned cqt = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE);
	struct io_uring_cqe c[3];
	int n = 0;
	while (n < 3 && rring_pop(&r, &c[n]))
		n++;
	rring_exit(&r);
	CHECK_EQ(ret, 3);
	CHECK_EQ(head, 3);
	CHECK_EQ(cqt, 3);
	CHECK_EQ(n, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(c[i].user_data, 100 + i);
		CHECK_RES(c[i].res, 0);
	}
	return UT_OK;
}

static int submit_and_wait(void)
{
	/* io_uring_enter(to_submit=4, min_complete=4, GETEVENTS): all 4 CQEs are there */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	for (int i = 0; i < 4; i++) {
		sqe.user_data = i;
		rring_push(&r, &sqe);
	}
	int ret = sys_enter(r.fd, 4, 4, IORING_ENTER_GETEVENTS, NULL, 0);
	unsigned ready = __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE) - *r.cq_head;
	rring_exit(&r);
	CHECK_EQ(ret, 4);
	CHECK_EQ(ready, 4);
	return UT_OK;
}

static int ring_wraps(void)
{
	/* 40 NOPs one at a time through a 2-entry ring: indices wrap many times */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 2, NULL));
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	for (unsigned i = 0; i < 40; i++) {
		sqe.user_data = i;
		rring_push(&r, &sqe);
		int ret = sys_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		struct io_uring_cqe c = { 0 };
		int got = rring_pop(&r, &c);
		if (ret != 1 || !got || c.user_data != i || c.res != 0) {
			rring_exit(&r);
			FAIL("NOP %u: enter %d, got %d, user_data %llu, res %d", i, ret, got,
			     (unsigned long long)c.user_data, c.res);
		}
	}
	rring_exit(&r);
	return UT_OK;
}

UT_FAMILY(nop, T(user_data), T(batches), T(cqe_order), T(sq_head_advances),
	  T(submit_and_wait), T(ring_wraps));
