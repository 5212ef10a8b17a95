/*
 * IORING_SETUP_SQE_MIXED (Linux 6.19): 64-byte SQE slots, and the 128-byte ops (NOP128,
 * URING_CMD128) in two consecutive ones, counted as two submitted; one in the SQE
 * array's last slot, or without its second slot in the batch, is -EINVAL and takes one.
 * IORING_SETUP_SQ_REWIND (Linux 7.0, needs NO_SQARRAY, not with SQPOLL): every
 * submission takes its SQEs from slot 0 on; the SQ head and tail stay 0. Both are newer
 * than the host's Linux: there setup is EINVAL, and the tests say unsupported.
 */
#include "ut.h"

#include <fcntl.h>

#define SETUP_NO_SQARRAY (1U << 16)
#define SETUP_SQE_MIXED (1U << 19)
#define SETUP_SQ_REWIND (1U << 20)
#define OP_NOP128 63
#define OP_URING_CMD128 64

static int ring(struct rring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	int ret = rring_init(r, entries, &p);
	return ret == -EINVAL ? UT_UNSUP : ret;
}

/* Slot `i` holds a NOP (a NOP128 with `big`, taking slots i and i + 1). */
static void put(struct rring *r, unsigned i, uint64_t ud, int big)
{
	r->sqes[i] = ut_nop_sqe(ud, 0);
	if (big) {
		r->sqes[i].opcode = OP_NOP128;
		memset(&r->sqes[i + 1], 0xee, sizeof r->sqes[i + 1]); /* the big SQE's second half */
	}
}

/* Publish the SQ tail `tail` (rings with a head and tail) and submit `n` slots. */
static int submit(struct rring *r, unsigned tail, unsigned n, int expect)
{
	if (tail)
		__atomic_store_n(r->sq_tail, tail, __ATOMIC_RELEASE);
	CHECK_EQ(sys_enter(r->fd, n, 0, 0, NULL, 0), expect);
	return UT_OK;
}

/* The next CQE has user_data `ud` and result `res`. */
static int cqe(struct rring *r, uint64_t ud, int res)
{
	struct io_uring_cqe c;
	RRING_POP_UD(r, ud, &c);
	CHECK_RES(c.res, res);
	return UT_OK;
}

static int mixed(void)
{
	/*
	 * NOP, NOP128 (slots 1-2), NOP: 4 slots submitted, 3 CQEs; the SQ head moves by 4.
	 * With the SQ index array the same (the entry after a big one is skipped).
	 */
	for (int array = 0; array < 2; array++) {
		struct rring r;
		TRY(ring(&r, 8, SETUP_SQE_MIXED | (array ? 0 : SETUP_NO_SQARRAY)));
		put(&r, 0, 1, 0);
		put(&r, 1, 2, 1);
		put(&r, 3, 3, 0);
		if (array)
			for (unsigned i = 0; i < 4; i++)
				r.sq_array[i] = i == 2 ? 99 : i; /* never read */
		TRY(submit(&r, 4, 4, 4));
		CHECK_EQ(*r.sq_head, 4);
		TRY(cqe(&r, 1, 0));
		TRY(cqe(&r, 2, 0));
		TRY(cqe(&r, 3, 0));
		CHECK_EQ(*r.sq_dropped, 0);
		rring_exit(&r);
	}
	return UT_OK;
}

static int edges(void)
{
	/*
	 * A NOP128 in the last slot of the SQE array: -EINVAL, one slot (and, as any
	 * failed SQE, the end of the batch). One whose second slot is not in the batch
	 * (to_submit 1): -EINVAL. URING_CMD128 takes two slots
	 * too (a plain file has no commands: -EOPNOTSUPP).
	 */
	struct rring r;
	TRY(ring(&r, 4, SETUP_SQE_MIXED | SETUP_NO_SQARRAY));
	for (unsigned i = 0; i < 3; i++)
		put(&r, i, 10 + i, 0);
	TRY(submit(&r, 3, 3, 3));
	for (unsigned i = 0; i < 3; i++)
		TRY(cqe(&r, 10 + i, 0));
	put(&r, 3, 20, 1); /* slot 3 of 4: its half would be past the end */
	put(&r, 0, 21, 0);
	TRY(submit(&r, 5, 2, 1)); /* a failed SQE ends the batch */
	TRY(cqe(&r, 20, -EINVAL));
	CHECK_EQ(*r.sq_head, 4);
	TRY(submit(&r, 0, 1, 1));
	TRY(cqe(&r, 21, 0));
	CHECK_EQ(*r.sq_head, 5);
	put(&r, 1, 22, 1);
	TRY(submit(&r, 7, 1, 1)); /* only one slot asked for */
	TRY(cqe(&r, 22, -EINVAL));
	CHECK_EQ(*r.sq_head, 6);
	/* slot 2 (head 6): a NOP128 over slots 2-3, submitted whole */
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	put(&r, 2, 23, 1);
	r.sqes[2].opcode = OP_URING_CMD128;
	r.sqes[2].fd = f;
	TRY(submit(&r, 8, 2, 2));
	TRY(cqe(&r, 23, -EOPNOTSUPP));
	CHECK_EQ(*r.sq_head, 8);
	rring_exit(&r);
	return UT_OK;
}

static int mixed_setup(void)
{
	/* With SQE128: EINVAL. One SQ entry cannot hold a big SQE: EOVERFLOW. */
	struct rring r;
	TRY(ring(&r, 4, SETUP_SQE_MIXED));
	rring_exit(&r);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_SQE_MIXED | IORING_SETUP_SQE128;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	memset(&p, 0, sizeof p);
	p.flags = SETUP_SQE_MIXED;
	CHECK_ERR(sys_setup(1, &p), EOVERFLOW);
	return UT_OK;
}

static int rewind_nops(void)
{
	/*
	 * Each submission starts at slot 0: 3 NOPs, then 2 other NOPs in the same slots;
	 * head and tail stay 0. Asking for more than the SQ holds submits the whole SQ.
	 */
	struct rring r;
	TRY(ring(&r, 4, SETUP_SQ_REWIND | SETUP_NO_SQARRAY));
	for (unsigned i = 0; i < 3; i++)
		put(&r, i, 30 + i, 0);
	TRY(submit(&r, 0, 3, 3));
	for (unsigned i = 0; i < 3; i++)
		TRY(cqe(&r, 30 + i, 0));
	put(&r, 0, 40, 0);
	put(&r, 1, 41, 0);
	TRY(submit(&r, 0, 2, 2));
	TRY(cqe(&r, 40, 0));
	TRY(cqe(&r, 41, 0));
	CHECK_EQ(*r.sq_head, 0);
	CHECK_EQ(*r.sq_tail, 0);
	for (unsigned i = 0; i < 4; i++)
		put(&r, i, 50 + i, 0);
	TRY(submit(&r, 0, 9, 4));
	for (unsigned i = 0; i < 4; i++)
		TRY(cqe(&r, 50 + i, 0));
	rring_exit(&r);
	return UT_OK;
}

static int rewind_setup(void)
{
	/* SQ_REWIND needs NO_SQARRAY and excludes SQPOLL (EINVAL); with SQE_MIXED it works. */
	struct rring r;
	TRY(ring(&r, 4, SETUP_SQ_REWIND | SETUP_NO_SQARRAY));
	rring_exit(&r);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_SQ_REWIND;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	memset(&p, 0, sizeof p);
	p.flags = SETUP_SQ_REWIND | SETUP_NO_SQARRAY | IORING_SETUP_SQPOLL;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	int ret = ring(&r, 4, SETUP_SQ_REWIND | SETUP_NO_SQARRAY | SETUP_SQE_MIXED);
	CHECK_OK(ret);
	put(&r, 0, 60, 1);
	put(&r, 2, 61, 0);
	TRY(submit(&r, 0, 3, 3));
	TRY(cqe(&r, 60, 0));
	TRY(cqe(&r, 61, 0));
	rring_exit(&r);
	return UT_OK;
}

UT_FAMILY(sqemixed, T(mixed), T(edges), T(mixed_setup), T(rewind_nops), T(rewind_setup));
