/*
 * IORING_REGISTER_RESIZE_RINGS (Linux 6.13): a DEFER_TASKRUN ring gets new SQ and CQ
 * rings of other sizes (params as for setup: sq_entries, CQSIZE's cq_entries, CLAMP).
 * What user space has not consumed moves along at the same free-running indices: the
 * SQEs between SQ head and tail and the CQEs between CQ head and tail, with the heads,
 * tails, flags and counters; the SQ index array does not. If they do not fit, EOVERFLOW
 * and the old rings stay. The new rings are mapped afresh at the usual offsets (or, with
 * NO_MMAP, are the program's memory named in the params).
 */
#include "ut.h"

#include <sys/mman.h>

#define REG_RESIZE 33
#define SETUP_NO_MMAP (1U << 14)
#define SETUP_NO_SQARRAY (1U << 16)

static int defer_ring(struct rring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | flags;
	return rring_init(r, entries, &p);
}

static void resize_params(struct io_uring_params *p, unsigned sq, unsigned cq)
{
	memset(p, 0, sizeof *p);
	p->sq_entries = sq;
	if (cq) {
		p->flags = IORING_SETUP_CQSIZE;
		p->cq_entries = cq;
	}
}

/* Resizes r to (sq, cq: 0 for twice sq) and maps the new rings; 0 or -errno. */
static int resize(struct rring *r, unsigned sq, unsigned cq)
{
	struct io_uring_params p;
	resize_params(&p, sq, cq);
	if (sys_register(r->fd, REG_RESIZE, &p, 1) < 0)
		return -errno;
	rring_unmap(r);
	r->p.sq_entries = p.sq_entries;
	r->p.cq_entries = p.cq_entries;
	/* the SQ index array follows the CQEs, 64-aligned (as setup reports it) */
	if (r->p.sq_off.array)
		r->p.sq_off.array = (p.cq_off.cqes + p.cq_entries * 16 + 63) & ~63u;
	return rring_map(r);
}

/* Queues `n` NOPs (user_data from `ud`) without entering. */
static void push_nops(struct rring *r, unsigned n, uint64_t ud)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe sqe = ut_nop_sqe(ud + i, 0);
		rring_push(r, &sqe);
	}
}

/* Submits what is queued and waits for `n` CQEs. */
static int submit_wait(struct rring *r, unsigned to_submit, unsigned n)
{
	CHECK_EQ(sys_enter(r->fd, to_submit, n, IORING_ENTER_GETEVENTS, NULL, 0), (int)to_submit);
	return UT_OK;
}

/* The next `n` CQEs must be NOPs with user_data from `ud` on (and, with `last`, no more). */
static int pop(struct rring *r, unsigned n, uint64_t ud, int last)
{
	struct io_uring_cqe c;
	for (unsigned i = 0; i < n; i++) {
		RRING_POP_UD(r, ud + i, &c);
		CHECK_RES(c.res, 0);
	}
	if (last)
		CHECK_EQ(rring_pop(r, &c), 0);
	return UT_OK;
}

#define pop_nops(r, n, ud) pop((r), (n), (ud), 1)

static int errors(void)
{
	/*
	 * Only DEFER_TASKRUN rings (EINVAL); arg and nr_args 1 (EINVAL), readable (EFAULT);
	 * flags other than CQSIZE and CLAMP, sizes that setup refuses: EINVAL.
	 */
	struct rring r;
	struct io_uring_params p;
	CHECK_OK(rring_init(&r, 4, NULL));
	resize_params(&p, 8, 0);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	rring_exit(&r);
	CHECK_OK(defer_ring(&r, 4, 0));
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, NULL, 1), EINVAL);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 0), EINVAL);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 2), EINVAL);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, (void *)8, 1), EFAULT);
	unsigned bad_flags[] = { IORING_SETUP_SQPOLL, SETUP_NO_SQARRAY, IORING_SETUP_DEFER_TASKRUN,
				 IORING_SETUP_IOPOLL, 1U << 30 };
	for (unsigned i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
		resize_params(&p, 8, 0);
		p.flags = bad_flags[i];
		CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	}
	resize_params(&p, 0, 0);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	resize_params(&p, 40000, 0);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	resize_params(&p, 8, 0);
	p.flags = IORING_SETUP_CQSIZE; /* cq_entries 0 */
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	resize_params(&p, 8, 4); /* fewer CQEs than SQEs */
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	resize_params(&p, 8, 70000);
	CHECK_ERR(sys_register(r.fd, REG_RESIZE, &p, 1), EINVAL);
	/* the ring still works */
	push_nops(&r, 2, 1);
	TRY(submit_wait(&r, 2, 2));
	TRY(pop_nops(&r, 2, 1));
	rring_exit(&r);
	return UT_OK;
}

static int params(void)
{
	/*
	 * The sizes come back rounded as setup rounds them (twice sq_entries for the CQ
	 * without CQSIZE; CLAMP caps), with the ring offsets but not the SQ array's (its
	 * offset follows the CQEs, 64-aligned) nor the features; the new sizes are in the
	 * rings' own entry counts and masks.
	 */
	struct rring r;
	CHECK_OK(defer_ring(&r, 4, 0));
	struct io_uring_params p;
	resize_params(&p, 5, 0);
	p.sq_off.array = 12345; /* left as it is, as are the features */
	p.features = 0x55;
	CHECK_OK(sys_register(r.fd, REG_RESIZE, &p, 1));
	CHECK_EQ(p.sq_entries, 8);
	CHECK_EQ(p.cq_entries, 16);
	CHECK_EQ(p.flags, 0); /* only NO_SQARRAY, SQE128, CQE32, NO_MMAP, CQE_MIXED carry over */
	CHECK_EQ(p.sq_off.head, r.p.sq_off.head);
	CHECK_EQ(p.sq_off.tail, r.p.sq_off.tail);
	CHECK_EQ(p.cq_off.cqes, r.p.cq_off.cqes);
	CHECK_EQ(p.cq_off.overflow, r.p.cq_off.overflow);
	CHECK_EQ(p.sq_off.array, 12345);
	CHECK_EQ(p.features, 0x55);
	resize_params(&p, 5, 33);
	CHECK_OK(sys_register(r.fd, REG_RESIZE, &p, 1));
	CHECK_EQ(p.sq_entries, 8);
	CHECK_EQ(p.cq_entries, 64);
	CHECK_EQ(p.flags, IORING_SETUP_CQSIZE);
	resize_params(&p, 2, 70000);
	p.flags |= IORING_SETUP_CLAMP;
	CHECK_OK(sys_register(r.fd, REG_RESIZE, &p, 1));
	CHECK_EQ(p.sq_entries, 2);
	CHECK_EQ(p.cq_entries, 65536);
	rring_exit(&r);
	CHECK_OK(defer_ring(&r, 4, 0));
	CHECK_OK(resize(&r, 16, 64));
	CHECK_EQ(*r.sq_entries, 16);
	CHECK_EQ(*r.sq_mask, 15);
	CHECK_EQ(*r.cq_entries, 64);
	CHECK_EQ(*r.cq_mask, 63);
	rring_exit(&r);
	return UT_OK;
}

static int grow(void)
{
	/*
	 * 3 CQEs not yet reaped and 2 SQEs not yet submitted (NO_SQARRAY: SQ slots in
	 * order) move to rings 4 times larger, at the same indices; the pending SQEs are
	 * submitted from there, and 16 NOPs then fit at once.
	 */
	struct rring r;
	CHECK_OK(defer_ring(&r, 4, SETUP_NO_SQARRAY));
	push_nops(&r, 3, 10);
	TRY(submit_wait(&r, 3, 3));
	push_nops(&r, 2, 20);
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(*r.sq_tail, 5);
	CHECK_OK(resize(&r, 16, 0));
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(*r.sq_tail, 5);
	CHECK_EQ(*r.cq_head, 0);
	CHECK_EQ(*r.cq_tail, 3);
	CHECK_EQ(*r.cq_entries, 32);
	TRY(submit_wait(&r, 2, 5));
	TRY(pop(&r, 3, 10, 0));
	TRY(pop_nops(&r, 2, 20));
	push_nops(&r, 16, 100);
	TRY(submit_wait(&r, 16, 16));
	TRY(pop_nops(&r, 16, 100));
	rring_exit(&r);
	return UT_OK;
}

static int wrapped(void)
{
	/*
	 * Pending CQEs that wrap around the end of the old CQ keep their order: indices
	 * are free-running, so entry i goes to slot i & new_mask.
	 */
	struct rring r;
	CHECK_OK(defer_ring(&r, 4, 0));
	for (unsigned round = 0; round < 3; round++) {
		push_nops(&r, 4, round * 4);
		TRY(submit_wait(&r, 4, 4));
		TRY(pop_nops(&r, 4, round * 4));
	}
	/* heads at 12; 6 CQEs pending, in slots 4..7 and 0..1 of the 8 */
	push_nops(&r, 3, 50);
	TRY(submit_wait(&r, 3, 3));
	push_nops(&r, 3, 53);
	TRY(submit_wait(&r, 3, 3));
	CHECK_EQ(*r.cq_tail, 18);
	CHECK_OK(resize(&r, 8, 0));
	CHECK_EQ(*r.cq_head, 12);
	CHECK_EQ(*r.cq_tail, 18);
	CHECK_EQ(*r.sq_head, 18);
	TRY(pop_nops(&r, 6, 50));
	push_nops(&r, 8, 60);
	TRY(submit_wait(&r, 8, 8));
	TRY(pop_nops(&r, 8, 60));
	rring_exit(&r);
	return UT_OK;
}

static int overflow(void)
{
	/*
	 * Shrinking below what is pending is EOVERFLOW, CQEs or SQEs, and leaves the old
	 * rings in place (still mapped, still used); once consumed, the resize goes.
	 */
	struct rring r;
	CHECK_OK(defer_ring(&r, 8, SETUP_NO_SQARRAY));
	push_nops(&r, 8, 0);
	TRY(submit_wait(&r, 8, 8));
	push_nops(&r, 4, 8);
	TRY(submit_wait(&r, 4, 4));
	/* 12 CQEs pending: not into 8 */
	CHECK_EQ(resize(&r, 4, 0), -EOVERFLOW);
	TRY(pop_nops(&r, 12, 0));
	/* 6 SQEs pending: not into 4 */
	push_nops(&r, 6, 30);
	CHECK_EQ(resize(&r, 4, 0), -EOVERFLOW);
	TRY(submit_wait(&r, 6, 6));
	TRY(pop_nops(&r, 6, 30));
	CHECK_OK(resize(&r, 4, 0));
	CHECK_EQ(*r.cq_entries, 8);
	push_nops(&r, 4, 40);
	TRY(submit_wait(&r, 4, 4));
	TRY(pop_nops(&r, 4, 40));
	rring_exit(&r);
	return UT_OK;
}

static int sq_array(void)
{
	/*
	 * With an SQ index array, pending SQEs move but the array does not: the new array
	 * is zeroed, so both pending entries name SQE 0 (Linux's behaviour; fill the array
	 * again after a resize).
	 */
	struct rring r;
	CHECK_OK(defer_ring(&r, 4, 0));
	push_nops(&r, 2, 70);
	CHECK_OK(resize(&r, 8, 0));
	CHECK_EQ(r.sq_array[0], 0);
	CHECK_EQ(r.sq_array[1], 0);
	TRY(submit_wait(&r, 2, 2));
	struct io_uring_cqe c;
	RRING_POP_UD(&r, 70, &c);
	RRING_POP_UD(&r, 70, &c);
	rring_exit(&r);
	return UT_OK;
}

static int nommap(void)
{
	/*
	 * NO_MMAP: the new rings are the program's memory at cq_off.user_addr (rings) and
	 * sq_off.user_addr (SQEs); a null address is EFAULT.
	 */
	size_t sz = 4 * 4096;
	char *mem = mmap(NULL, 4 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(mem != MAP_FAILED);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | SETUP_NO_MMAP;
	p.cq_off.resv2 = (uintptr_t)mem;
	p.sq_off.resv2 = (uintptr_t)mem + sz;
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	struct io_uring_params q;
	resize_params(&q, 16, 0);
	CHECK_ERR(sys_register(fd, REG_RESIZE, &q, 1), EFAULT);
	resize_params(&q, 16, 0);
	q.cq_off.resv2 = (uintptr_t)mem + 2 * sz;
	q.sq_off.resv2 = (uintptr_t)mem + 3 * sz;
	CHECK_OK(sys_register(fd, REG_RESIZE, &q, 1));
	CHECK_EQ(q.cq_off.resv2, (uintptr_t)mem + 2 * sz);
	char *rings = mem + 2 * sz;
	struct io_uring_sqe *sqes = (struct io_uring_sqe *)(mem + 3 * sz);
	CHECK_EQ(*(unsigned *)(rings + p.sq_off.ring_entries), 16);
	unsigned *sq_tail = (unsigned *)(rings + p.sq_off.tail);
	unsigned *array = (unsigned *)(rings + ((p.cq_off.cqes + 32 * 16 + 63) & ~63u));
	for (unsigned i = 0; i < 10; i++) {
		sqes[i] = ut_nop_sqe(200 + i, 0);
		array[i] = i;
	}
	__atomic_store_n(sq_tail, 10, __ATOMIC_RELEASE);
	CHECK_EQ(sys_enter(fd, 10, 10, IORING_ENTER_GETEVENTS, NULL, 0), 10);
	CHECK_EQ(*(unsigned *)(rings + p.cq_off.tail), 10);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(rings + p.cq_off.cqes);
	for (unsigned i = 0; i < 10; i++)
		CHECK_EQ(cqes[i].user_data, 200 + i);
	close(fd);
	munmap(mem, 4 * sz);
	return UT_OK;
}

UT_FAMILY(resize, T(errors), T(params), T(grow), T(wrapped), T(overflow), T(sq_array), T(nommap));
