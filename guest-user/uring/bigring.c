/*
 * Big SQEs and CQEs (Linux 5.19): IORING_SETUP_SQE128 (128-byte SQEs; ops read the
 * first 64 bytes) and IORING_SETUP_CQE32 (32-byte CQEs whose two extra words are zero
 * unless the op fills them: NOP with IORING_NOP_CQE32, 6.18, copies off and addr there;
 * on a ring with 16-byte CQEs that flag is -EINVAL).
 */
#include "ut.h"

#define NOP_CQE32 (1U << 5)

static int ring_with(struct io_uring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	return io_uring_queue_init_params(entries, r, &p);
}

static int sqe128(void)
{
	/*
	 * 100 NOPs through a 16-entry SQE128 ring, each SQE's second half filled with junk
	 * that no NOP reads: every CQE comes back, in order.
	 */
	struct io_uring r;
	int ret = ring_with(&r, 16, IORING_SETUP_SQE128);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	for (unsigned done = 0; done < 100;) {
		unsigned n = 100 - done < 16 ? 100 - done : 16;
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
			CHECK(sqe != NULL);
			io_uring_prep_nop(sqe);
			memset((char *)sqe + 64, 0xa5, 64);
			sqe->user_data = done + i;
		}
		struct io_uring_cqe c[16];
		CHECK_EQ(io_uring_submit(&r), n);
		CHECK_OK(ut_reap(&r, n, c));
		for (unsigned i = 0; i < n; i++) {
			CHECK_EQ(c[i].user_data, done + i);
			CHECK_RES(c[i].res, 0);
		}
		done += n;
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* The next CQE of a CQE32 ring: user_data, res, and its two extra words. */
static int big_cqe(struct io_uring *r, uint64_t ud, int res, uint64_t x0, uint64_t x1)
{
	struct io_uring_cqe *c;
	CHECK_OK(io_uring_wait_cqe(r, &c));
	CHECK_EQ(c->user_data, ud);
	CHECK_RES(c->res, res);
	CHECK_EQ(c->big_cqe[0], x0);
	CHECK_EQ(c->big_cqe[1], x1);
	io_uring_cqe_seen(r, c);
	return UT_OK;
}

static int cqe32(void)
{
	/*
	 * On a CQE32 ring, plain CQEs have zero extra words (even in slots an earlier CQE
	 * filled); NOP_CQE32 (if this kernel knows it) puts off and addr there. CQEs that
	 * overflowed keep theirs.
	 */
	struct io_uring r;
	int ret = ring_with(&r, 4, IORING_SETUP_CQE32);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_nop(sqe);
	sqe->rw_flags = NOP_CQE32;
	sqe->off = 0x1111;
	sqe->addr = 0x2222;
	sqe->user_data = 1;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe *c;
	CHECK_OK(io_uring_wait_cqe(&r, &c));
	int known = c->res == 0;
	if (!known)
		CHECK_RES(c->res, -EINVAL); /* before 6.18: no NOP_CQE32 */
	else
		CHECK(c->big_cqe[0] == 0x1111 && c->big_cqe[1] == 0x2222);
	io_uring_cqe_seen(&r, c);
	/* 12 CQEs into an 8-entry CQ: 4 overflow; the slots are reused */
	for (int i = 0; i < 12; i++) {
		sqe = io_uring_get_sqe(&r);
		if (!sqe) {
			CHECK_EQ(io_uring_submit(&r), 4);
			sqe = io_uring_get_sqe(&r);
		}
		io_uring_prep_nop(sqe);
		if (known && i % 2) {
			sqe->rw_flags = NOP_CQE32;
			sqe->off = 100 + i;
			sqe->addr = 200 + i;
		}
		sqe->user_data = 10 + i;
	}
	CHECK_EQ(io_uring_submit(&r), 4);
	for (int i = 0; i < 12; i++) {
		int big = known && i % 2;
		TRY(big_cqe(&r, 10 + i, 0, big ? 100 + i : 0, big ? 200 + i : 0));
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int nop_cqe32_small_ring(void)
{
	/* NOP_CQE32 on a ring with 16-byte CQEs: -EINVAL. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_nop(sqe);
	sqe->rw_flags = NOP_CQE32;
	sqe->user_data = 1;
	CHECK_RES(ut_run_ud(&r, 1), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(bigring, T(sqe128), T(cqe32), T(nop_cqe32_small_ring));
