/*
 * IORING_SETUP_NO_MMAP (Linux 6.5): the rings live in the program's memory, the rings
 * region at cq_off.user_addr and the SQEs at sq_off.user_addr (page-aligned; both are
 * given back as they came); mmap of the ring fd is then ENOMEM. A null address is
 * EFAULT, a misaligned one EINVAL, unmapped memory EFAULT. The layout is Linux's own, so
 * liburing's sizes hold: 64 bytes of ring header, then the CQEs, then (64-aligned) the SQ
 * index array.
 */
#include "ut.h"

#include <sys/mman.h>

#define SETUP_NO_MMAP (1U << 14)

/* Rings for `entries` SQEs (2x CQEs) in fresh anonymous memory: rings then SQEs. */
struct umem {
	char *rings, *sqes;
	size_t rings_sz, sqes_sz;
};

static size_t pages(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static int umem_alloc(struct umem *m, unsigned entries)
{
	size_t cqes_end = 64 + 2 * entries * sizeof(struct io_uring_cqe);
	m->rings_sz = pages(((cqes_end + 63) & ~(size_t)63) + entries * 4);
	m->sqes_sz = pages(entries * sizeof(struct io_uring_sqe));
	void *a = mmap(NULL, m->rings_sz + m->sqes_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		return -errno;
	m->rings = a;
	m->sqes = (char *)a + m->rings_sz;
	return 0;
}

static void umem_free(struct umem *m)
{
	munmap(m->rings, m->rings_sz + m->sqes_sz);
}

static int setup(struct io_uring_params *p, unsigned entries, uint64_t rings, uint64_t sqes)
{
	memset(p, 0, sizeof *p);
	p->flags = SETUP_NO_MMAP;
	p->cq_off.resv2 = rings; /* cq_off.user_addr */
	p->sq_off.resv2 = sqes;	 /* sq_off.user_addr */
	return sys_setup(entries, p);
}

static int nops(void)
{
	struct umem m = { 0 };
	/*
	 * A 256-entry ring (rings over several pages, not necessarily contiguous) runs 300
	 * NOPs through the program's memory; the offsets are Linux's (cqes at 64).
	 */
	CHECK_OK(umem_alloc(&m, 256));
	struct io_uring_params p;
	int fd = setup(&p, 256, (uintptr_t)m.rings, (uintptr_t)m.sqes);
	if (fd < 0 && errno == EINVAL) {
		umem_free(&m);
		return UT_UNSUP;
	}
	CHECK_OK(fd);
	CHECK_EQ(p.cq_off.cqes, 64);
	CHECK_EQ(p.cq_off.resv2, (uintptr_t)m.rings);
	CHECK_EQ(p.sq_off.resv2, (uintptr_t)m.sqes);
	unsigned *sq_tail = (unsigned *)(m.rings + p.sq_off.tail);
	unsigned *sq_array = (unsigned *)(m.rings + p.sq_off.array);
	unsigned *cq_head = (unsigned *)(m.rings + p.cq_off.head);
	unsigned *cq_tail = (unsigned *)(m.rings + p.cq_off.tail);
	struct io_uring_sqe *sqes = (struct io_uring_sqe *)m.sqes;
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(m.rings + p.cq_off.cqes);
	unsigned tail = 0, head = 0;
	for (unsigned done = 0; done < 300;) {
		unsigned n = 300 - done < 100 ? 300 - done : 100;
		for (unsigned i = 0; i < n; i++) {
			unsigned slot = (tail + i) & 255;
			sqes[slot] = ut_nop_sqe(done + i, 0);
			sq_array[slot] = slot;
		}
		tail += n;
		__atomic_store_n(sq_tail, tail, __ATOMIC_RELEASE);
		CHECK_EQ(sys_enter(fd, n, n, IORING_ENTER_GETEVENTS, NULL, 0), n);
		CHECK_EQ(__atomic_load_n(cq_tail, __ATOMIC_ACQUIRE) - head, n);
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_cqe *c = &cqes[(head + i) & 511];
			CHECK_EQ(c->user_data, done + i);
			CHECK_RES(c->res, 0);
		}
		head += n;
		__atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
		done += n;
	}
	/* the rings cannot also be mapped (Linux: ENOMEM, from get_unmapped_area) */
	void *map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	CHECK(map == MAP_FAILED && errno == ENOMEM);
	close(fd);
	umem_free(&m);
	return UT_OK;
}

static int bad_memory(void)
{
	/* A null address EFAULT, a misaligned one EINVAL, unmapped memory EFAULT. */
	struct umem m = { 0 };
	CHECK_OK(umem_alloc(&m, 4));
	struct io_uring_params p;
	int fd = setup(&p, 4, (uintptr_t)m.rings, (uintptr_t)m.sqes);
	if (fd < 0 && errno == EINVAL) {
		umem_free(&m);
		return UT_UNSUP;
	}
	CHECK_OK(fd);
	close(fd);
	CHECK_ERR(setup(&p, 4, 0, (uintptr_t)m.sqes), EFAULT);
	CHECK_ERR(setup(&p, 4, (uintptr_t)m.rings, 0), EFAULT);
	CHECK_ERR(setup(&p, 4, (uintptr_t)m.rings + 8, (uintptr_t)m.sqes), EINVAL);
	umem_free(&m);
	CHECK_ERR(setup(&p, 4, (uintptr_t)m.rings, (uintptr_t)m.sqes), EFAULT);
	return UT_OK;
}

UT_FAMILY(nommap, T(nops), T(bad_memory));
