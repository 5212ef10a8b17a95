/*
 * IORING_SETUP_CQE_MIXED (Linux 6.18): 16-byte CQE slots, and 32-byte CQEs where an op
 * asks (NOP with IORING_NOP_CQE32): those carry IORING_CQE_F_32 and take two slots; one
 * that would wrap past the ring's end is preceded by a filler CQE with IORING_CQE_F_SKIP
 * in the last slot. With CQE32: EINVAL.
 */
#include "ut.h"

#define SETUP_CQE_MIXED (1U << 18)
#define NOP_CQE32 (1U << 5)
#define CQE_F_SKIP (1U << 5)
#define CQE_F_32 (1U << 15)

static int mixed_ring(struct io_uring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_CQE_MIXED;
	return io_uring_queue_init_params(4, r, &p);
}

/* Submits one NOP (a big one with `big`) and waits until the CQ tail moved. */
static int nop(struct io_uring *r, uint64_t ud, int big)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_nop(sqe);
	if (big) {
		sqe->rw_flags = NOP_CQE32;
		sqe->off = ud + 1000;
		sqe->addr = ud + 2000;
	}
	sqe->user_data = ud;
	CHECK_EQ(io_uring_submit_and_wait(r, 1), 1);
	return UT_OK;
}

/* The slot at index `i` (masked) of the CQ. */
static struct io_uring_cqe *slot(struct io_uring *r, unsigned i)
{
	return (struct io_uring_cqe *)((char *)r->cq.cqes + (i & *r->cq.kring_mask) * 16);
}

static int sizes(void)
{
	/*
	 * A small NOP takes one slot; a big one two, with F_32 and its extra words (off,
	 * addr); at the last slot, a F_SKIP filler comes first.
	 */
	struct io_uring r;
	int ret = mixed_ring(&r);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	CHECK_EQ(*r.cq.kring_entries, 8);
	unsigned head = *r.cq.khead;
	TRY(nop(&r, 1, 0));
	CHECK_EQ(*r.cq.ktail - head, 1);
	CHECK_EQ(slot(&r, head)->user_data, 1);
	CHECK_EQ(slot(&r, head)->flags, 0);
	TRY(nop(&r, 2, 1));
	CHECK_EQ(*r.cq.ktail - head, 3);
	struct io_uring_cqe *c = slot(&r, head + 1);
	CHECK_EQ(c->user_data, 2);
	CHECK_RES(c->res, 0);
	CHECK_EQ(c->flags, CQE_F_32);
	CHECK_EQ(c->big_cqe[0], 1002);
	CHECK_EQ(c->big_cqe[1], 2002);
	io_uring_cq_advance(&r, 3);
	/* small NOPs up to the last slot (index 7), then a big one */
	head = *r.cq.khead;
	for (unsigned i = 0; (head + i) % 8 != 7; i++)
		TRY(nop(&r, 10 + i, 0));
	io_uring_cq_advance(&r, *r.cq.ktail - *r.cq.khead);
	head = *r.cq.khead;
	CHECK_EQ(head % 8, 7);
	TRY(nop(&r, 3, 1));
	CHECK_EQ(*r.cq.ktail - head, 3);
	CHECK_EQ(slot(&r, head)->flags, CQE_F_SKIP);
	CHECK_EQ(slot(&r, head + 1)->user_data, 3);
	CHECK_EQ(slot(&r, head + 1)->flags, CQE_F_32);
	CHECK_EQ(slot(&r, head + 1)->big_cqe[0], 1003);
	io_uring_cq_advance(&r, 3);
	io_uring_queue_exit(&r);
	/* not with 32-byte CQEs everywhere */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_CQE_MIXED | IORING_SETUP_CQE32;
	CHECK_RES(io_uring_queue_init_params(4, &r, &p), -EINVAL);
	return UT_OK;
}

UT_FAMILY(cqemixed, T(sizes));
