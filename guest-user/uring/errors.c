/* Hostile rings: bad SQ indices, unknown opcodes and flags, garbage SQEs. */
#include "ut.h"

#include <time.h>

static unsigned cq_ready(struct rring *r)
{
	return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

static struct io_uring_sqe nop_sqe(uint64_t ud)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_NOP;
	sqe.user_data = ud;
	return sqe;
}

/* Submit one SQE on a fresh raw ring; return the CQE res, user_data checked. */
static int one_sqe(const struct io_uring_sqe *sqe, int *res)
{
	struct rring r;
	CHECK_OK(rring_init(&r, 2, NULL));
	rring_push(&r, sqe);
	int ret = sys_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	int e = errno;
	struct io_uring_cqe c;
	int got = rring_pop(&r, &c);
	rring_exit(&r);
	if (ret != 1)
		FAIL("enter returned %d (%s)", ret, ut_errname(e));
	CHECK(got);
	CHECK(c.user_data == sqe->user_data);
	*res = c.res;
	return UT_OK;
}

static int sq_index_out_of_range(void)
{
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	r.sqes[0] = nop_sqe(1);
	r.sqes[2] = nop_sqe(3);
	r.sq_array[0] = 0;
	r.sq_array[1] = 7; /* >= sq_entries */
	r.sq_array[2] = 2;
	__atomic_store_n(r.sq_tail, 3, __ATOMIC_RELEASE);
	int total = 0, first = -2;
	for (int i = 0; i < 4 && __atomic_load_n(r.sq_head, __ATOMIC_ACQUIRE) != 3; i++) {
		int ret = sys_enter(r.fd, 3 - *r.sq_head, 0, 0, NULL, 0);
		if (first == -2)
			first = ret;
		CHECK_OK(ret);
		total += ret;
	}
	ut_info("first enter returned %d, sq head %u, dropped %u", first, *r.sq_head,
		*r.sq_dropped);
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(*r.sq_dropped, 1);
	CHECK_EQ(total, 2);
	struct io_uring_cqe c[4];
	int n = 0;
	while (n < 4 && rring_pop(&r, &c[n]))
		n++;
	CHECK_EQ(n, 2);
	CHECK_EQ(c[0].user_data, 1);
	CHECK_EQ(c[1].user_data, 3);
	CHECK_RES(c[0].res, 0);
	CHECK_RES(c[1].res, 0);
	/* a huge index too */
	r.sqes[3] = nop_sqe(4);
	r.sq_array[3] = 0xffffffffu;
	__atomic_store_n(r.sq_tail, 4, __ATOMIC_RELEASE);
	sys_enter(r.fd, 1, 0, 0, NULL, 0);
	CHECK_EQ(*r.sq_head, 4);
	CHECK_EQ(*r.sq_dropped, 2);
	CHECK_EQ(cq_ready(&r), 0);
	rring_exit(&r);
	return UT_OK;
}

static int unknown_opcode(void)
{
	static const int ops[] = { 250, 255 };
	for (int i = 0; i < 2; i++) {
		struct io_uring_sqe sqe = nop_sqe(0x1000 + i);
		sqe.opcode = (uint8_t)ops[i];
		int res;
		TRY(one_sqe(&sqe, &res));
		CHECK_RES(res, -EINVAL);
	}
	return UT_OK;
}

static int unknown_sqe_flag(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring_sqe sqe = nop_sqe(0x77);
	sqe.flags = 1u << 7;
	int res;
	TRY(one_sqe(&sqe, &res));
	CHECK_RES(res, -EINVAL);
	sqe.flags = (1u << 7) | IOSQE_IO_DRAIN;
	TRY(one_sqe(&sqe, &res));
	CHECK_RES(res, -EINVAL);
	return UT_OK;
}

static int unsupported_by_probe(void)
{
	/* every opcode the probe calls unsupported completes with -EINVAL */
	int last = ut_probe_last_op();
	int n = 0;
	for (int op = 0; op < 256; op++) {
		if (ut_op_supported(op))
			continue;
		if (op > last + 1 && op != 255)
			continue; /* beyond the table: two samples are enough */
		struct io_uring_sqe sqe = nop_sqe(0x2000 + op);
		sqe.opcode = (uint8_t)op;
		sqe.fd = -1;
		int res;
		TRY(one_sqe(&sqe, &res));
		if (res != -EINVAL)
			FAIL("opcode %d (unsupported) completed with %d (%s), expected -EINVAL", op,
			     res, ut_resname(res));
		n++;
	}
	ut_info("%d unsupported opcodes checked (last_op %d)", n, last);
	CHECK(n >= 2);
	return UT_OK;
}

static int init_error_stops_batch(void)
{
	/*
	 * An SQE that fails before it is issued (unknown opcode) completes with -EINVAL and
	 * ends that io_uring_enter's batch: the call returns the count up to and including
	 * it, and later SQEs stay queued for the next enter.
	 */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	struct io_uring_sqe bad = nop_sqe(1);
	bad.opcode = 250;
	rring_push(&r, &bad);
	struct io_uring_sqe s2 = nop_sqe(2), s3 = nop_sqe(3);
	rring_push(&r, &s2);
	rring_push(&r, &s3);
	int ret = sys_enter(r.fd, 3, 0, 0, NULL, 0);
	unsigned head = *r.sq_head;
	CHECK_EQ(ret, 1);
	CHECK_EQ(head, 1);
	CHECK_EQ(sys_enter(r.fd, 2, 0, 0, NULL, 0), 2);
	struct io_uring_cqe c;
	int res[4] = { 0 };
	for (int i = 0; i < 3; i++) {
		CHECK(rring_pop(&r, &c));
		CHECK_EQ(c.user_data, i + 1);
		res[i + 1] = c.res;
	}
	CHECK_RES(res[1], -EINVAL);
	CHECK_RES(res[2], 0);
	CHECK_RES(res[3], 0);
	rring_exit(&r);
	return UT_OK;
}

static int sq_tail_far_ahead(void)
{
	/* a tail more than sq_entries ahead of head: at most sq_entries are taken */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	for (unsigned i = 0; i < 4; i++) {
		r.sqes[i] = nop_sqe(i);
		r.sq_array[i] = i;
	}
	__atomic_store_n(r.sq_tail, 1000, __ATOMIC_RELEASE);
	int ret = sys_enter(r.fd, 1000, 0, 0, NULL, 0);
	unsigned head = *r.sq_head;
	/* put the tail back where the kernel's head is */
	__atomic_store_n(r.sq_tail, head, __ATOMIC_RELEASE);
	CHECK_EQ(ret, 4);
	CHECK_EQ(head, 4);
	CHECK_EQ(cq_ready(&r), 4);
	struct io_uring_cqe c;
	while (rring_pop(&r, &c))
		;
	struct io_uring_sqe s = nop_sqe(99);
	rring_push(&r, &s);
	CHECK_EQ(sys_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	CHECK(rring_pop(&r, &c));
	CHECK_EQ(c.user_data, 99);
	rring_exit(&r);
	return UT_OK;
}

static int cq_head_garbage(void)
{
	/* user space claims to have consumed CQEs that do not exist: nothing is lost */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	unsigned tail = *r.cq_tail;
	__atomic_store_n(r.cq_head, tail + 100, __ATOMIC_RELEASE);
	struct io_uring_sqe s = nop_sqe(5);
	rring_push(&r, &s);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	/* restore a sane head and collect */
	__atomic_store_n(r.cq_head, tail, __ATOMIC_RELEASE);
	struct io_uring_cqe c;
	int found = 0;
	for (int i = 0; i < 4 && !found; i++) {
		CHECK_OK(sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0));
		while (rring_pop(&r, &c))
			if (c.user_data == 5 && c.res == 0)
				found = 1;
	}
	CHECK(found);
	rring_exit(&r);
	return UT_OK;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int garbage_sqes(void)
{
	/* 64 SQEs of random bytes: errors come back in CQEs; the ring still works */
	struct rring r;
	CHECK_OK(rring_init(&r, 64, NULL));
	uint64_t uds[64];
	rng = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 64; i++) {
		struct io_uring_sqe sqe;
		uint64_t *w = (uint64_t *)&sqe;
		for (int k = 0; k < 8; k++)
			w[k] = next_rand();
		uds[i] = sqe.user_data;
		rring_push(&r, &sqe);
	}
	int enters = 0, submitted = 0;
	while (*r.sq_head != *r.sq_tail && enters < 200) {
		int ret = sys_enter(r.fd, *r.sq_tail - *r.sq_head, 0, 0, NULL, 0);
		enters++;
		if (ret < 0) {
			int e = errno;
			if (e == EAGAIN || e == EBUSY || e == EINTR)
				continue;
			FAIL("enter: %s", ut_errname(e));
		}
		submitted += ret;
	}
	CHECK_EQ(*r.sq_head, *r.sq_tail);
	/* collect CQEs until nothing more comes for a while */
	int ncqe = 0, nerr = 0, idle = 0;
	for (int round = 0; round < 200 && idle < 3; round++) {
		struct io_uring_cqe c;
		int got = 0;
		while (rring_pop(&r, &c)) {
			got++;
			ncqe++;
			if (c.res < 0)
				nerr++;
			int known = 0;
			for (int i = 0; i < 64; i++)
				known |= c.user_data == uds[i];
			if (!known)
				FAIL("CQE with unknown user_data 0x%llx res %d",
				     (unsigned long long)c.user_data, c.res);
		}
		if (got) {
			idle = 0;
			continue;
		}
		idle++;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		sys_enter(r.fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
	}
	ut_info("%d enters, %d submitted, %d CQEs (%d errors), %u dropped", enters, submitted,
		ncqe, nerr, *r.sq_dropped);
	CHECK(ncqe > 0);
	CHECK(nerr > 0);
	/* the ring still works */
	struct io_uring_sqe s = nop_sqe(0x600d);
	rring_push(&r, &s);
	int ret = sys_enter(r.fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	CHECK_EQ(ret, 1);
	struct io_uring_cqe c;
	int found = 0;
	while (rring_pop(&r, &c))
		if (c.user_data == 0x600d) {
			CHECK_RES(c.res, 0);
			found = 1;
		}
	CHECK(found);
	rring_exit(&r);
	return UT_OK;
}

UT_FAMILY(errors, T(sq_index_out_of_range), T(unknown_opcode), T(unknown_sqe_flag),
	  T(unsupported_by_probe), T(init_error_stops_batch), T(sq_tail_far_ahead),
	  T(cq_head_garbage), T(garbage_sqes));
