/*
 * IORING_SETUP_NO_SQARRAY (Linux 6.6): the SQ ring has no index array. The kernel takes
 * SQE number (head & mask) from the SQE array itself, so a program writes its SQE at
 * slot (tail & mask) and bumps the tail. sq_off.array reads 0 and the ring mapping ends
 * with the CQEs. A kernel that does not know the flag fails setup with -EINVAL: the
 * tests then report "unsupported".
 */
#include "ut.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define SETUP_NO_SQARRAY (1U << 16) /* liburing 2.3 lacks it */

/* A ring mapped by hand; there is no sq_array to point at. */
struct nring {
	int fd;
	struct io_uring_params p;
	void *ring;
	size_t ring_sz;
	struct io_uring_sqe *sqes;
	unsigned *sq_head, *sq_tail, *sq_dropped, *cq_head, *cq_tail;
	unsigned sq_mask, cq_mask;
	struct io_uring_cqe *cqes;
};

static void nring_exit(struct nring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->p.sq_entries * sizeof(struct io_uring_sqe));
	if (r->ring)
		munmap(r->ring, r->ring_sz);
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->ring = NULL;
	r->sqes = NULL;
}

/* Set up with NO_SQARRAY | flags: 0, or -errno (-EINVAL: the flag is unknown). */
static int nring_init(struct nring *r, unsigned entries, unsigned flags)
{
	memset(r, 0, sizeof *r);
	r->p.flags = SETUP_NO_SQARRAY | flags;
	r->p.sq_thread_idle = 50;
	r->fd = sys_setup(entries, &r->p);
	if (r->fd < 0)
		return -errno;
	struct io_uring_params *p = &r->p;
	if (!(p->features & IORING_FEAT_SINGLE_MMAP)) {
		nring_exit(r);
		return -ENOTSUP;
	}
	/* one mapping for both rings: it ends with the CQE array */
	r->ring_sz = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	r->ring = mmap(NULL, r->ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->fd, IORING_OFF_SQ_RING);
	if (r->ring == MAP_FAILED) {
		int e = errno;
		r->ring = NULL;
		nring_exit(r);
		return -e;
	}
	r->sqes = mmap(NULL, p->sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		int e = errno;
		r->sqes = NULL;
		nring_exit(r);
		return -e;
	}
	char *b = r->ring;
	r->sq_head = (unsigned *)(b + p->sq_off.head);
	r->sq_tail = (unsigned *)(b + p->sq_off.tail);
	r->sq_dropped = (unsigned *)(b + p->sq_off.dropped);
	r->sq_mask = *(unsigned *)(b + p->sq_off.ring_mask);
	r->cq_head = (unsigned *)(b + p->cq_off.head);
	r->cq_tail = (unsigned *)(b + p->cq_off.tail);
	r->cq_mask = *(unsigned *)(b + p->cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(b + p->cq_off.cqes);
	return 0;
}
#define NRING(r, n, flags)                                                     \
	do {                                                                   \
		int _n = nring_init((r), (n), (flags));                        \
		if (_n == -EINVAL)                                             \
			return UT_UNSUP; /* NO_SQARRAY unknown (before 6.6) */  \
		CHECK_OK(_n);                                                  \
	} while (0)

/* Write a NOP with `ud` into every SQE slot (slot i gets ud base + i). */
static void fill_slots(struct nring *r, uint64_t base)
{
	for (unsigned i = 0; i < r->p.sq_entries; i++)
		r->sqes[i] = ut_nop_sqe(base + i, 0);
}

/* Publish `n` more SQEs: the tail moves, nothing else is written. */
static void bump_tail(struct nring *r, unsigned n)
{
	unsigned t = *r->sq_tail;
	__atomic_store_n(r->sq_tail, t + n, __ATOMIC_RELEASE);
}

/* Pop up to `n` CQEs into out[]: how many there were. */
static unsigned pop(struct nring *r, struct io_uring_cqe *out, unsigned n)
{
	unsigned got = 0;
	unsigned head = *r->cq_head;
	unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
	while (got < n && head != tail)
		out[got++] = r->cqes[head++ & r->cq_mask];
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
	return got;
}

/* The next `n` CQEs (waiting at most 5 s) must be user_data first..first+n-1, res 0. */
static int expect_uds(struct nring *r, const uint64_t *uds, unsigned n, const char *file,
		      int line)
{
	struct io_uring_cqe c[16];
	unsigned got = pop(r, c, n);
	long long end = ut_now_ms() + 5000;
	while (got < n) {
		int w = ut_enter_ms(r->fd, 0, 1, 100);
		if (w < 0 && errno != ETIME && errno != EINTR)
			return ut_fail(file, line, "waiting for CQEs: %s", ut_errname(errno));
		got += pop(r, c + got, n - got);
		if (got < n && ut_now_ms() > end)
			return ut_fail(file, line, "%u of %u CQEs within 5 s", got, n);
	}
	for (unsigned i = 0; i < n; i++)
		if (c[i].user_data != uds[i] || c[i].res != 0)
			return ut_fail(file, line, "CQE %u: user_data %llu res %d, expected %llu res 0",
				       i, (unsigned long long)c[i].user_data, c[i].res,
				       (unsigned long long)uds[i]);
	return UT_OK;
}
#define EXPECT_UDS(r, uds, n) TRY(expect_uds((r), (uds), (n), __FILE__, __LINE__))

static int offsets(void)
{
	/*
	 * sq_off.array is 0; every other offset, and the sizes, are those of a ring with
	 * the array.
	 */
	struct io_uring_params a, n;
	memset(&a, 0, sizeof a);
	memset(&n, 0, sizeof n);
	n.flags = SETUP_NO_SQARRAY;
	int fn = sys_setup(8, &n);
	if (fn < 0 && errno == EINVAL)
		return UT_UNSUP;
	CHECK_OK(fn);
	int fa = sys_setup(8, &a);
	CHECK_OK(fa);
	close(fa);
	close(fn);
	ut_info("sq_off: head %u tail %u mask %u entries %u flags %u dropped %u array %u (%u with the array); cq_off.cqes %u",
		n.sq_off.head, n.sq_off.tail, n.sq_off.ring_mask, n.sq_off.ring_entries,
		n.sq_off.flags, n.sq_off.dropped, n.sq_off.array, a.sq_off.array, n.cq_off.cqes);
	CHECK_EQ(n.sq_off.array, 0);
	CHECK(a.sq_off.array != 0);
	CHECK_EQ(n.sq_off.head, a.sq_off.head);
	CHECK_EQ(n.sq_off.tail, a.sq_off.tail);
	CHECK_EQ(n.sq_off.ring_mask, a.sq_off.ring_mask);
	CHECK_EQ(n.sq_off.ring_entries, a.sq_off.ring_entries);
	CHECK_EQ(n.sq_off.flags, a.sq_off.flags);
	CHECK_EQ(n.sq_off.dropped, a.sq_off.dropped);
	CHECK_EQ(n.cq_off.cqes, a.cq_off.cqes);
	CHECK_EQ(n.cq_off.head, a.cq_off.head);
	CHECK_EQ(n.cq_off.tail, a.cq_off.tail);
	CHECK_EQ(n.sq_entries, 8);
	CHECK_EQ(n.cq_entries, 16);
	CHECK_EQ(n.features, a.features);
	return UT_OK;
}

static int ring_order(void)
{
	/*
	 * With every slot holding a NOP that names it, each enter takes the slots from
	 * (head & mask) on, wrapping: tail +3, +3, +4, +2 on a 4-entry ring takes slots
	 * 0 1 2 | 3 0 1 | 2 3 0 1 | 2 3. The dropped counter never moves.
	 */
	struct nring r;
	NRING(&r, 4, 0);
	static const unsigned steps[] = { 3, 3, 4, 2 };
	unsigned head = 0;
	for (unsigned s = 0; s < 4; s++) {
		uint64_t base = 100 * (s + 1);
		fill_slots(&r, base);
		bump_tail(&r, steps[s]);
		CHECK_EQ(sys_enter(r.fd, steps[s], 0, 0, NULL, 0), steps[s]);
		uint64_t uds[4];
		for (unsigned i = 0; i < steps[s]; i++)
			uds[i] = base + ((head + i) & 3);
		EXPECT_UDS(&r, uds, steps[s]);
		head += steps[s];
		CHECK_EQ(__atomic_load_n(r.sq_head, __ATOMIC_ACQUIRE), head);
	}
	CHECK_EQ(*r.sq_dropped, 0);
	nring_exit(&r);
	return UT_OK;
}

static int partial_submit(void)
{
	/*
	 * Four published, enter(to_submit=1) then (2) then (5): 1, 2, then the 1 left; the
	 * head follows, and the CQEs come in slot order.
	 */
	struct nring r;
	NRING(&r, 4, 0);
	fill_slots(&r, 10);
	bump_tail(&r, 4);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	CHECK_EQ(*r.sq_head, 1);
	CHECK_EQ(sys_enter(r.fd, 2, 0, 0, NULL, 0), 2);
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(sys_enter(r.fd, 5, 0, 0, NULL, 0), 1);
	CHECK_EQ(*r.sq_head, 4);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 0);
	static const uint64_t uds[4] = { 10, 11, 12, 13 };
	EXPECT_UDS(&r, uds, 4);
	nring_exit(&r);
	return UT_OK;
}

static int rewritten_slot(void)
{
	/*
	 * The kernel reads the SQE when it consumes it, at (head & mask): a slot rewritten
	 * after it was published but before enter is what runs.
	 */
	struct nring r;
	NRING(&r, 2, 0);
	fill_slots(&r, 20);
	bump_tail(&r, 2);
	r.sqes[1] = ut_nop_sqe(77, 0);
	CHECK_EQ(sys_enter(r.fd, 2, 0, 0, NULL, 0), 2);
	static const uint64_t uds[2] = { 20, 77 };
	EXPECT_UDS(&r, uds, 2);
	nring_exit(&r);
	return UT_OK;
}

/*
 * In a child, read the byte at `off` of a MAP_SHARED mapping of the ring: 0 if it read,
 * the signal number if it died of one, -1 if it did not end within 5 s.
 */
static int touch_in_child(void *m, size_t off)
{
	pid_t c = fork();
	if (c == 0) {
		volatile char x = ((volatile char *)m)[off];
		(void)x;
		_exit(0);
	}
	if (c < 0)
		return -2;
	long long end = ut_now_ms() + 5000;
	int st = 0;
	while (waitpid(c, &st, WNOHANG) == 0) {
		if (ut_now_ms() > end) {
			kill(c, SIGKILL);
			waitpid(c, &st, 0);
			return -1;
		}
		ut_sleep_ms(1);
	}
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -3;
}

static int mmap_size(void)
{
	/*
	 * The SQ/CQ ring memory holds the header and the CQEs only. 1024 entries (2048
	 * CQEs): with the array the ring takes one page more. Mapping exactly the page-
	 * rounded header + CQEs works and its last CQE slot is usable. The page after it
	 * does not exist: Linux 6.18 accepts a longer mapping and a touch past the ring
	 * memory is SIGBUS, while a ring with the array has that page; a kernel that checks
	 * the length at mmap time (older Linux) refuses it with -EINVAL. Either is
	 * accepted, and said.
	 */
	struct nring r;
	NRING(&r, 1024, 0);
	long pg = sysconf(_SC_PAGESIZE);
	size_t need = r.p.cq_off.cqes + r.p.cq_entries * sizeof(struct io_uring_cqe);
	size_t need_pg = (need + pg - 1) / pg * pg;
	size_t with_array = need + r.p.sq_entries * sizeof(unsigned);
	size_t with_array_pg = (with_array + pg - 1) / pg * pg;
	ut_info("1024 entries: ring memory %zu bytes (%zu with the array)", need_pg, with_array_pg);
	CHECK(with_array_pg > need_pg);
	char *m = mmap(NULL, need_pg, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, IORING_OFF_SQ_RING);
	CHECK(m != MAP_FAILED);
	struct io_uring_cqe *last = (struct io_uring_cqe *)(m + r.p.cq_off.cqes) + r.p.cq_entries - 1;
	last->user_data = 0x1a57;
	CHECK_EQ(r.cqes[r.p.cq_entries - 1].user_data, 0x1a57);
	munmap(m, need_pg);

	m = mmap(NULL, with_array_pg, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, IORING_OFF_SQ_RING);
	if (m == MAP_FAILED) {
		CHECK_EQ(errno, EINVAL);
		ut_info("a mapping longer than the ring memory: -EINVAL");
	} else {
		int t = touch_in_child(m, need_pg);
		munmap(m, with_array_pg);
		ut_info("a mapping longer than the ring memory: accepted, touching past it: %s",
			t > 0 ? strsignal(t) : t == 0 ? "no fault" : "child lost");
		CHECK_EQ(t, SIGBUS);
	}
	nring_exit(&r);

	/* the same entries with the array: that page is ring memory */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(1024, &p);
	CHECK_OK(fd);
	CHECK(p.sq_off.array + p.sq_entries * sizeof(unsigned) > need_pg);
	m = mmap(NULL, with_array_pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, IORING_OFF_SQ_RING);
	CHECK(m != MAP_FAILED);
	int t = touch_in_child(m, need_pg);
	munmap(m, with_array_pg);
	close(fd);
	CHECK_EQ(t, 0);
	return UT_OK;
}

static int with_sqpoll(void)
{
	/* NO_SQARRAY|SQPOLL: the poller takes the SQEs in slot order too */
	struct nring r;
	NRING(&r, 4, IORING_SETUP_SQPOLL);
	fill_slots(&r, 30);
	bump_tail(&r, 3);
	unsigned *flags = (unsigned *)((char *)r.ring + r.p.sq_off.flags);
	long long end = ut_now_ms() + 5000;
	struct io_uring_cqe c[3];
	unsigned got = 0;
	while (got < 3) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST); /* the tail store before the flags load */
		if (__atomic_load_n(flags, __ATOMIC_RELAXED) & IORING_SQ_NEED_WAKEUP)
			CHECK_OK(sys_enter(r.fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0));
		got += pop(&r, c + got, 3 - got);
		if (got < 3 && ut_now_ms() > end)
			FAIL("%u of 3 CQEs within 5 s", got);
		if (got < 3)
			ut_sleep_ms(1);
	}
	for (unsigned i = 0; i < 3; i++) {
		CHECK_EQ(c[i].user_data, 30 + i);
		CHECK_RES(c[i].res, 0);
	}
	CHECK_EQ(__atomic_load_n(r.sq_head, __ATOMIC_ACQUIRE), 3);
	nring_exit(&r);
	return UT_OK;
}

UT_FAMILY(nosqarray, T(offsets), T(ring_order), T(partial_submit), T(rewritten_slot),
	  T(mmap_size), T(with_sqpoll));
