/* io_uring_setup: argument validation, sizes, features, offsets, mmap. */
#include "ut.h"

#include <fcntl.h>
#include <sys/mman.h>

static int setup_ok(unsigned entries, struct io_uring_params *p, unsigned *sq,
		    unsigned *cq)
{
	int fd = sys_setup(entries, p);
	if (fd < 0)
		return -errno;
	*sq = p->sq_entries;
	*cq = p->cq_entries;
	close(fd);
	return 0;
}

static int entries_zero(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	CHECK_ERR(sys_setup(0, &p), EINVAL);
	return UT_OK;
}

static int round_pow2(void)
{
	static const unsigned in[] = { 1, 2, 3, 5, 8, 100, 129 };
	static const unsigned want[] = { 1, 2, 4, 8, 8, 128, 256 };
	for (unsigned i = 0; i < sizeof in / sizeof in[0]; i++) {
		struct io_uring_params p;
		unsigned sq = 0, cq = 0;
		memset(&p, 0, sizeof p);
		CHECK_OK(setup_ok(in[i], &p, &sq, &cq));
		CHECK_EQ(sq, want[i]);
		CHECK_EQ(cq, 2 * want[i]);
	}
	return UT_OK;
}

static int too_many(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	CHECK_ERR(sys_setup(32769, &p), EINVAL);
	memset(&p, 0, sizeof p);
	CHECK_ERR(sys_setup(0x80000000u, &p), EINVAL);
	return UT_OK;
}

static int clamp(void)
{
	struct io_uring_params p;
	unsigned sq = 0, cq = 0;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP;
	CHECK_OK(setup_ok(100000, &p, &sq, &cq));
	CHECK_EQ(sq, 32768);
	CHECK_EQ(cq, 65536);
	/* CLAMP also bounds CQSIZE */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP | IORING_SETUP_CQSIZE;
	p.cq_entries = 1u << 20;
	CHECK_OK(setup_ok(4, &p, &sq, &cq));
	CHECK_EQ(sq, 4);
	CHECK_EQ(cq, 65536);
	/* CLAMP does not rescue 0 */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CLAMP;
	CHECK_ERR(sys_setup(0, &p), EINVAL);
	return UT_OK;
}

static int cqsize(void)
{
	struct io_uring_params p;
	unsigned sq = 0, cq = 0;
	/* cq_entries 0 */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	/* smaller than the SQ (after rounding) */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 3; /* rounds to 4 < 8 */
	CHECK_ERR(sys_setup(8, &p), EINVAL);
	/* rounded up before the comparison: 5 -> 8 == 8 is fine */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 5;
	CHECK_OK(setup_ok(8, &p, &sq, &cq));
	CHECK_EQ(sq, 8);
	CHECK_EQ(cq, 8);
	/* equal to the SQ */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 4;
	CHECK_OK(setup_ok(4, &p, &sq, &cq));
	CHECK_EQ(cq, 4);
	/* larger, rounded */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 100;
	CHECK_OK(setup_ok(4, &p, &sq, &cq));
	CHECK_EQ(sq, 4);
	CHECK_EQ(cq, 128);
	/* more than 65536 without CLAMP */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 65537;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	return UT_OK;
}

static int resv_nonzero(void)
{
	for (int i = 0; i < 3; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.resv[i] = 1;
		CHECK_ERR(sys_setup(4, &p), EINVAL);
	}
	return UT_OK;
}

static int unknown_flags(void)
{
	static const unsigned bits[] = { 1u << 31, 1u << 30, 1u << 25 };
	for (int i = 0; i < 3; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = bits[i];
		CHECK_ERR(sys_setup(4, &p), EINVAL);
	}
	return UT_OK;
}

static int bad_params_ptr(void)
{
	CHECK_ERR(sys_setup(4, NULL), EFAULT);
	CHECK_ERR(sys_setup(4, (struct io_uring_params *)8), EFAULT);
	CHECK_ERR(sys_setup(4, (struct io_uring_params *)0xffff800000000000ull), EFAULT);
	/* params straddling the end of a readable page (the next one is PROT_NONE) */
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	memset(m, 0, 8192);
	CHECK_OK(mprotect(m + 4096, 4096, PROT_NONE));
	int r = sys_setup(4, (struct io_uring_params *)(m + 4096 - 16));
	int e = errno;
	munmap(m, 8192);
	if (r >= 0)
		close(r);
	CHECK_EQ(r, -1);
	CHECK_EQ(e, EFAULT);
	return UT_OK;
}

static int features(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	close(fd);
	ut_info("features=0x%x", p.features);
	CHECK(p.features & IORING_FEAT_SINGLE_MMAP);
	CHECK(p.features & IORING_FEAT_NODROP);
	return UT_OK;
}

static int offsets(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(8, &p);
	CHECK_OK(fd);
	close(fd);
	const struct io_sqring_offsets *s = &p.sq_off;
	const struct io_cqring_offsets *c = &p.cq_off;
	ut_info("sq_entries=%u cq_entries=%u", p.sq_entries, p.cq_entries);
	ut_info("sq_off head=%u tail=%u ring_mask=%u ring_entries=%u flags=%u dropped=%u array=%u",
		s->head, s->tail, s->ring_mask, s->ring_entries, s->flags, s->dropped, s->array);
	ut_info("cq_off head=%u tail=%u ring_mask=%u ring_entries=%u overflow=%u cqes=%u flags=%u",
		c->head, c->tail, c->ring_mask, c->ring_entries, c->overflow, c->cqes, c->flags);
	CHECK_EQ(s->resv1, 0);
	CHECK_EQ(s->resv2, 0);
	CHECK_EQ(c->resv1, 0);
	CHECK_EQ(c->resv2, 0);
	/* every u32 field 4-aligned, the CQE array 16-aligned */
	unsigned f[] = { s->head, s->tail, s->ring_mask, s->ring_entries, s->flags,
			 s->dropped, s->array, c->head, c->tail, c->ring_mask,
			 c->ring_entries, c->overflow, c->flags };
	unsigned n = sizeof f / sizeof f[0];
	for (unsigned i = 0; i < n; i++)
		CHECK_EQ(f[i] % 4, 0);
	CHECK_EQ(c->cqes % 16, 0);
	/* the SQ ring's scalar fields are distinct, so are the CQ ring's (7 and 6) */
	for (unsigned i = 0; i < 7; i++)
		for (unsigned j = i + 1; j < 7; j++)
			if (f[i] == f[j])
				FAIL("sq_off fields %u and %u are both %u", i, j, f[i]);
	unsigned cf[] = { c->head, c->tail, c->ring_mask, c->ring_entries, c->overflow,
			  c->flags };
	for (unsigned i = 0; i < 6; i++) {
		for (unsigned j = i + 1; j < 6; j++)
			if (cf[i] == cf[j])
				FAIL("cq_off fields %u and %u are both %u", i, j, cf[i]);
		/* scalars lie before the CQE array, not inside it */
		if (cf[i] + 4 > c->cqes && cf[i] < c->cqes + p.cq_entries * 16)
			FAIL("cq_off field %u (%u) overlaps the CQEs at %u", i, cf[i], c->cqes);
	}
	/* the SQ array does not overlap SQ scalars */
	for (unsigned i = 0; i < 6; i++)
		if (f[i] + 4 > s->array && f[i] < s->array + p.sq_entries * 4)
			FAIL("sq_off field %u (%u) overlaps the SQ array at %u", i, f[i], s->array);
	/* with SINGLE_MMAP both rings live in one mapping: no SQ scalar may sit in the CQEs */
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		for (unsigned i = 0; i < 7; i++)
			if (f[i] + 4 > c->cqes && f[i] < c->cqes + p.cq_entries * 16)
				FAIL("sq_off field %u (%u) overlaps the CQEs", i, f[i]);
		for (unsigned i = 0; i < 6; i++)
			if (cf[i] + 4 > s->array && cf[i] < s->array + p.sq_entries * 4)
				FAIL("cq_off field %u (%u) overlaps the SQ array", i, cf[i]);
	}
	/* everything within a sane size */
	CHECK(s->array < 1u << 20);
	CHECK(c->cqes < 1u << 20);
	return UT_OK;
}

static int ring_values(void)
{
	struct rring r;
	CHECK_OK(rring_init(&r, 8, NULL));
	unsigned v[8] = { *r.sq_head, *r.sq_tail, *r.sq_mask, *r.sq_entries, *r.cq_head,
			  *r.cq_tail, *r.cq_mask, *r.cq_entries };
	unsigned fl = *r.sq_flags, dr = *r.sq_dropped, ov = *r.cq_overflow;
	rring_exit(&r);
	CHECK_EQ(v[0], 0);
	CHECK_EQ(v[1], 0);
	CHECK_EQ(v[2], 7);
	CHECK_EQ(v[3], 8);
	CHECK_EQ(v[4], 0);
	CHECK_EQ(v[5], 0);
	CHECK_EQ(v[6], 15);
	CHECK_EQ(v[7], 16);
	CHECK_EQ(fl, 0);
	CHECK_EQ(dr, 0);
	CHECK_EQ(ov, 0);
	return UT_OK;
}

static int cloexec(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	int fl = fcntl(fd, F_GETFD);
	close(fd);
	CHECK_OK(fl);
	CHECK(fl & FD_CLOEXEC);
	return UT_OK;
}

static int mmap_offsets(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	size_t sq_sz = p.sq_off.array + p.sq_entries * 4;
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * 16;
	size_t sqes_sz = p.sq_entries * 64;
	void *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	int e1 = errno;
	void *cq = mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_CQ_RING);
	int e2 = errno;
	void *sqes = mmap(NULL, sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQES);
	int e3 = errno;
	errno = 0;
	void *bad = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x18000000);
	int e4 = errno;
	void *bad2 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x40000000);
	int e5 = errno;
	int cq_entries_ok = cq != MAP_FAILED &&
			    *(unsigned *)((char *)cq + p.cq_off.ring_entries) == p.cq_entries;
	int sq_entries_ok = sq != MAP_FAILED &&
			    *(unsigned *)((char *)sq + p.sq_off.ring_entries) == p.sq_entries;
	if (sq != MAP_FAILED)
		munmap(sq, sq_sz);
	if (cq != MAP_FAILED)
		munmap(cq, cq_sz);
	if (sqes != MAP_FAILED)
		munmap(sqes, sqes_sz);
	if (bad != MAP_FAILED)
		munmap(bad, 4096);
	if (bad2 != MAP_FAILED)
		munmap(bad2, 4096);
	close(fd);
	if (sq == MAP_FAILED)
		FAIL("mmap IORING_OFF_SQ_RING: %s", ut_errname(e1));
	if (cq == MAP_FAILED)
		FAIL("mmap IORING_OFF_CQ_RING: %s", ut_errname(e2));
	if (sqes == MAP_FAILED)
		FAIL("mmap IORING_OFF_SQES: %s", ut_errname(e3));
	CHECK(sq_entries_ok);
	CHECK(cq_entries_ok);
	/*
	 * Linux >= 6.4 refuses an unknown offset in io_uring's get_unmapped_area hook, which
	 * turns it into ENOMEM; older kernels (and io_uring_mmap itself) say EINVAL.
	 */
	if (bad != MAP_FAILED || (e4 != EINVAL && e4 != ENOMEM))
		FAIL("mmap at 0x18000000: %s, expected EINVAL or ENOMEM",
		     bad != MAP_FAILED ? "mapped" : ut_errname(e4));
	if (bad2 != MAP_FAILED || (e5 != EINVAL && e5 != ENOMEM))
		FAIL("mmap at 0x40000000: %s, expected EINVAL or ENOMEM",
		     bad2 != MAP_FAILED ? "mapped" : ut_errname(e5));
	ut_info("mmap of a bad offset: %s", ut_errname(e4));
	return UT_OK;
}

static int single_mmap(void)
{
	/* SINGLE_MMAP: the SQ ring mapping, made large enough, also holds the CQ ring */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		close(fd);
		FAIL("no IORING_FEAT_SINGLE_MMAP");
	}
	size_t sz = p.sq_off.array + p.sq_entries * 4;
	size_t cq_sz = p.cq_off.cqes + p.cq_entries * 16;
	if (cq_sz > sz)
		sz = cq_sz;
	char *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	int e = errno;
	if (m == MAP_FAILED) {
		close(fd);
		FAIL("mmap: %s", ut_errname(e));
	}
	unsigned cqe_n = *(unsigned *)(m + p.cq_off.ring_entries);
	unsigned cqm = *(unsigned *)(m + p.cq_off.ring_mask);
	munmap(m, sz);
	close(fd);
	CHECK_EQ(cqe_n, p.cq_entries);
	CHECK_EQ(cqm, p.cq_entries - 1);
	return UT_OK;
}

UT_FAMILY(setup, T(entries_zero), T(round_pow2), T(too_many), T(clamp), T(cqsize),
	  T(resv_nonzero), T(unknown_flags), T(bad_params_ptr), T(features), T(offsets),
	  T(ring_values), T(cloexec), T(mmap_offsets), T(single_mmap));
