/*
 * Registered ring descriptors: IORING_REGISTER_RING_FDS puts a ring in a table of 16
 * slots that belongs to the calling thread (struct io_uring_rsrc_update: offset is the
 * slot, or -1 for "any free one", written back; data the ring fd; resv 0). The slot
 * number then stands for the ring in io_uring_enter(IORING_ENTER_REGISTERED_RING) and
 * in io_uring_register(op | IORING_REGISTER_USE_REGISTERED_RING), and holds a reference
 * to the ring. IORING_UNREGISTER_RING_FDS empties slots. IORING_SETUP_REGISTERED_FD_ONLY
 * (with IORING_SETUP_NO_MMAP) makes setup return a slot instead of a descriptor. A
 * kernel that does not know RING_FDS answers -EINVAL: the tests then report
 * "unsupported".
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#define SLOTS 16				   /* IO_RINGFD_REG_MAX */
#define USE_REGISTERED_RING (1U << 31)		   /* Linux 6.3 */
#define SETUP_NO_MMAP (1U << 14)		   /* Linux 6.5 */
#define SETUP_REGISTERED_FD_ONLY (1U << 15)	   /* Linux 6.5 */

/* RING_FDS with one entry {offset, data}: the syscall's result or -errno; *slot gets
 * the offset written back. */
static int reg1(int ring, unsigned offset, int data, unsigned *slot)
{
	struct io_uring_rsrc_update u;
	memset(&u, 0, sizeof u);
	u.offset = offset;
	u.data = (uint64_t)(unsigned)data;
	int ret = sys_register(ring, IORING_REGISTER_RING_FDS, &u, 1);
	if (ret < 0)
		return -errno;
	if (slot)
		*slot = u.offset;
	return ret;
}

static int unreg1(int ring, unsigned slot)
{
	struct io_uring_rsrc_update u;
	memset(&u, 0, sizeof u);
	u.offset = slot;
	int ret = sys_register(ring, IORING_UNREGISTER_RING_FDS, &u, 1);
	return ret < 0 ? -errno : ret;
}

/* Empty every slot of this thread's table (a failed test may have left some). */
static void clear_slots(int ring)
{
	struct io_uring_rsrc_update u[SLOTS];
	memset(u, 0, sizeof u);
	for (unsigned i = 0; i < SLOTS; i++)
		u[i].offset = i;
	sys_register(ring, IORING_UNREGISTER_RING_FDS, u, SLOTS);
}

/* A ring and one slot for it; UT_UNSUP when RING_FDS is unknown. */
static int ring_and_slot(struct io_uring *r, unsigned *slot, const char *file, int line)
{
	int ret = ut_ring(r, 4);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	clear_slots(r->ring_fd);
	ret = reg1(r->ring_fd, -1U, r->ring_fd, slot);
	if (ret == -EINVAL) { /* before 5.18 */
		io_uring_queue_exit(r);
		return UT_UNSUP;
	}
	if (ret != 1)
		return ut_fail(file, line, "RING_FDS = %d (%s), expected 1", ret, ut_resname(ret));
	if (*slot >= SLOTS)
		return ut_fail(file, line, "slot %u written back, expected < %d", *slot, SLOTS);
	return UT_OK;
}
#define RING_AND_SLOT(r, slot) TRY(ring_and_slot((r), (slot), __FILE__, __LINE__))

/*
 * Queue a NOP on `r` (liburing's SQ), publish it and enter through `fd` with `flags`,
 * waiting for one CQE: the CQE's res, or -10000 - errno if enter failed (the NOP then
 * stays queued).
 */
static int nop_via(struct io_uring *r, unsigned fd, unsigned flags, uint64_t ud)
{
	ut_q_nop(r, ud, 0);
	io_uring_smp_store_release(r->sq.ktail, r->sq.sqe_tail);
	r->sq.sqe_head = r->sq.sqe_tail;
	int ret = sys_enter((int)fd, 1, 1, IORING_ENTER_GETEVENTS | flags, NULL, 0);
	if (ret < 0)
		return -10000 - errno;
	if (ret != 1)
		return -9998;
	struct io_uring_cqe c;
	int w = ut_wait_cqe_ms(r, &c, 5000);
	if (w < 0)
		return w - 20000;
	return c.user_data == ud ? c.res : -9999;
}

static int enter_by_slot(void)
{
	/*
	 * offset -1: a free slot is chosen and written back, the call returns 1 (entries
	 * done); enter(slot, REGISTERED_RING) submits and waits; after UNREGISTER (which
	 * also returns 1) the slot is empty: -EBADF.
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	ut_info("first free slot: %u", slot);
	CHECK_EQ(slot, 0);
	CHECK_RES(nop_via(&r, slot, IORING_ENTER_REGISTERED_RING, 1), 0);
	CHECK_RES(nop_via(&r, slot, IORING_ENTER_REGISTERED_RING, 2), 0);
	CHECK_EQ(unreg1(r.ring_fd, slot), 1);
	CHECK_ERR(sys_enter((int)slot, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int chosen_slot(void)
{
	/*
	 * An explicit offset < 16 is used as given (written back unchanged); a taken slot is
	 * -EBUSY; offset >= 16 (other than -1) is -EINVAL.
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	CHECK_EQ(unreg1(r.ring_fd, slot), 1);
	unsigned got = 99;
	CHECK_EQ(reg1(r.ring_fd, 5, r.ring_fd, &got), 1);
	CHECK_EQ(got, 5);
	CHECK_RES(nop_via(&r, 5, IORING_ENTER_REGISTERED_RING, 1), 0);
	CHECK_RES(reg1(r.ring_fd, 5, r.ring_fd, NULL), -EBUSY);
	CHECK_RES(reg1(r.ring_fd, 16, r.ring_fd, NULL), -EINVAL);
	CHECK_RES(reg1(r.ring_fd, 0xfffffffe, r.ring_fd, NULL), -EINVAL);
	/* -1 takes the lowest free slot: 0 */
	CHECK_EQ(reg1(r.ring_fd, -1U, r.ring_fd, &got), 1);
	CHECK_EQ(got, 0);
	clear_slots(r.ring_fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_args(void)
{
	/*
	 * RING_FDS: nr_args 0 or > 16, resv set: -EINVAL; data not open: -EBADF; data not a
	 * ring: -EOPNOTSUPP; unreadable array: -EFAULT. Entries are done in order and the
	 * count done is returned: {good, bad} returns 1 with the first registered.
	 * UNREGISTER_RING_FDS: nr_args 0 or > 16, data or resv set, offset >= 16: -EINVAL;
	 * an empty slot is no error (counted).
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	int fd = r.ring_fd;
	CHECK_EQ(unreg1(fd, slot), 1);
	struct io_uring_rsrc_update u[SLOTS + 1];
	memset(u, 0, sizeof u);
	for (unsigned i = 0; i <= SLOTS; i++) {
		u[i].offset = -1U;
		u[i].data = (uint64_t)fd;
	}
	CHECK_ERR(sys_register(fd, IORING_REGISTER_RING_FDS, u, 0), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_RING_FDS, u, SLOTS + 1), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_RING_FDS, (void *)8, 1), EFAULT);
	u[0].resv = 1;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_RING_FDS, u, 1), EINVAL);
	u[0].resv = 0;
	CHECK_RES(reg1(fd, -1U, 999, NULL), -EBADF);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(reg1(fd, -1U, p[0], NULL), -EOPNOTSUPP);
	/* partial: the second entry names a pipe */
	u[1].data = (uint64_t)p[0];
	CHECK_EQ(sys_register(fd, IORING_REGISTER_RING_FDS, u, 2), 1);
	CHECK_EQ(u[0].offset, 0);
	CHECK_EQ(u[1].offset, -1U);
	close(p[0]);
	close(p[1]);
	CHECK_RES(nop_via(&r, 0, IORING_ENTER_REGISTERED_RING, 1), 0);
	/* unregister */
	struct io_uring_rsrc_update d;
	memset(&d, 0, sizeof d);
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, &d, 0), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, u, SLOTS + 1), EINVAL);
	d.data = (uint64_t)fd;
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, &d, 1), EINVAL);
	d.data = 0;
	d.resv = 1;
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, &d, 1), EINVAL);
	d.resv = 0;
	d.offset = SLOTS;
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, &d, 1), EINVAL);
	d.offset = -1U;
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_RING_FDS, &d, 1), EINVAL);
	/* slot 0 still registered after all that */
	CHECK_RES(nop_via(&r, 0, IORING_ENTER_REGISTERED_RING, 2), 0);
	CHECK_EQ(unreg1(fd, 0), 1);
	CHECK_EQ(unreg1(fd, 0), 1); /* already empty: still counted */
	CHECK_EQ(unreg1(fd, 9), 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int enter_bad_slot(void)
{
	/* enter with REGISTERED_RING: slot >= 16 is -EINVAL, an empty slot -EBADF */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot); /* this thread now has its io_uring context */
	CHECK_EQ(unreg1(r.ring_fd, slot), 1);
	CHECK_ERR(sys_enter(SLOTS, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EINVAL);
	CHECK_ERR(sys_enter(-1, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EINVAL);
	CHECK_ERR(sys_enter(1000, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EINVAL);
	CHECK_ERR(sys_enter(15, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	CHECK_ERR(sys_enter(slot, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	/* the flag changes what fd means: the real descriptor is no slot */
	CHECK_RES(nop_via(&r, r.ring_fd, 0, 1), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int twice_then_close(void)
{
	/*
	 * The same ring registered twice takes two slots; each slot holds the ring: with
	 * its descriptor closed both still submit; unregistering one leaves the other.
	 * UNREGISTER acts on the calling thread's table, whichever ring it is called on.
	 */
	struct io_uring r, other;
	unsigned a, b = 99;
	RING_AND_SLOT(&r, &a);
	CHECK_OK(ut_ring(&other, 2));
	CHECK_EQ(reg1(r.ring_fd, -1U, r.ring_fd, &b), 1);
	CHECK(b != a && b < SLOTS);
	CHECK_EQ(close(r.ring_fd), 0);
	r.ring_fd = -1;
	CHECK_RES(nop_via(&r, a, IORING_ENTER_REGISTERED_RING, 1), 0);
	CHECK_RES(nop_via(&r, b, IORING_ENTER_REGISTERED_RING, 2), 0);
	CHECK_EQ(unreg1(other.ring_fd, a), 1);
	CHECK_ERR(sys_enter(a, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	CHECK_RES(nop_via(&r, b, IORING_ENTER_REGISTERED_RING, 3), 0);
	CHECK_EQ(unreg1(other.ring_fd, b), 1);
	CHECK_ERR(sys_enter(b, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&other);
	return UT_OK;
}

static int table_full(void)
{
	/*
	 * One call with 16 entries of -1 fills slots 0..15 and returns 16; a 17th is
	 * -EBUSY (not -EINVAL); one UNREGISTER with 16 entries empties them and returns 16.
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	CHECK_EQ(unreg1(r.ring_fd, slot), 1);
	struct io_uring_rsrc_update u[SLOTS];
	memset(u, 0, sizeof u);
	for (unsigned i = 0; i < SLOTS; i++) {
		u[i].offset = -1U;
		u[i].data = (uint64_t)r.ring_fd;
	}
	CHECK_EQ(sys_register(r.ring_fd, IORING_REGISTER_RING_FDS, u, SLOTS), SLOTS);
	unsigned seen = 0;
	for (unsigned i = 0; i < SLOTS; i++) {
		CHECK(u[i].offset < SLOTS);
		CHECK(!(seen & (1U << u[i].offset)));
		seen |= 1U << u[i].offset;
	}
	CHECK_RES(reg1(r.ring_fd, -1U, r.ring_fd, NULL), -EBUSY);
	CHECK_RES(nop_via(&r, 15, IORING_ENTER_REGISTERED_RING, 1), 0);
	for (unsigned i = 0; i < SLOTS; i++) {
		u[i].offset = i;
		u[i].data = 0;
	}
	CHECK_EQ(sys_register(r.ring_fd, IORING_UNREGISTER_RING_FDS, u, SLOTS), SLOTS);
	CHECK_ERR(sys_enter(15, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- the table belongs to the thread ---------------------------------------- */

struct other {
	struct io_uring *r;
	unsigned slot;
	int fresh_enter, fresh_errno, used_enter, used_errno, own_reg, own_slot, own_nop;
};

static void *fresh_thread(void *arg)
{
	struct other *o = arg;
	o->fresh_enter = sys_enter((int)o->slot, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0);
	o->fresh_errno = errno;
	unsigned s = 99;
	o->own_reg = reg1(o->r->ring_fd, -1U, o->r->ring_fd, &s);
	o->own_slot = (int)s;
	o->own_nop = o->own_reg == 1 ? nop_via(o->r, s, IORING_ENTER_REGISTERED_RING, 0x77) : -1;
	return NULL;
}

static void *used_thread(void *arg)
{
	struct other *o = arg;
	/* a submission gives this thread its io_uring context, and no slot */
	o->used_enter = nop_via(o->r, o->r->ring_fd, 0, 0x78);
	if (o->used_enter == 0) {
		o->used_enter = sys_enter((int)o->slot, 0, 0, IORING_ENTER_REGISTERED_RING,
					  NULL, 0);
		o->used_errno = errno;
	}
	return NULL;
}

static int per_thread(void)
{
	/*
	 * Slot numbers are the registering thread's own. Another thread that never used
	 * io_uring gets -EINVAL for this thread's slot (it has no table); one that has
	 * submitted gets -EBADF (its slot is empty). It can register the ring itself and
	 * gets the lowest slot of its own table (0, even though 0 is taken here). This
	 * thread's slot keeps working after that thread exits.
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	unsigned s2 = 99;
	CHECK_EQ(reg1(r.ring_fd, -1U, r.ring_fd, &s2), 1); /* slot 1: the other thread's 0 is free */
	struct other o;
	memset(&o, 0, sizeof o);
	o.r = &r;
	o.slot = s2;
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, fresh_thread, &o), 0);
	pthread_join(th, NULL);
	CHECK_EQ(o.fresh_enter, -1);
	CHECK_EQ(o.fresh_errno, EINVAL);
	CHECK_EQ(o.own_reg, 1);
	CHECK_EQ(o.own_slot, 0);
	CHECK_RES(o.own_nop, 0);
	CHECK_EQ(pthread_create(&th, NULL, used_thread, &o), 0);
	pthread_join(th, NULL);
	CHECK_EQ(o.used_enter, -1);
	CHECK_EQ(o.used_errno, EBADF);
	CHECK_RES(nop_via(&r, s2, IORING_ENTER_REGISTERED_RING, 1), 0);
	CHECK_RES(nop_via(&r, slot, IORING_ENTER_REGISTERED_RING, 2), 0);
	clear_slots(r.ring_fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int register_by_slot(void)
{
	/*
	 * io_uring_register(slot, op | USE_REGISTERED_RING): the slot names the ring.
	 * Slot >= 16: -EINVAL; empty slot: -EBADF; an unknown opcode with the bit:
	 * -EINVAL. A kernel without the bit (before 6.3) sees an unknown opcode: -EINVAL.
	 */
	struct io_uring r;
	unsigned slot;
	RING_AND_SLOT(&r, &slot);
	static struct {
		struct io_uring_probe p;
		struct io_uring_probe_op ops[16];
	} pb;
	memset(&pb, 0, sizeof pb);
	int ret = sys_register((int)slot, IORING_REGISTER_PROBE | USE_REGISTERED_RING, &pb, 16);
	if (ret < 0 && errno == EINVAL) {
		clear_slots(r.ring_fd);
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_OK(ret);
	CHECK_EQ(pb.p.ops_len, 16);
	memset(&pb, 0, sizeof pb);
	CHECK_ERR(sys_register(SLOTS, IORING_REGISTER_PROBE | USE_REGISTERED_RING, &pb, 16), EINVAL);
	CHECK_ERR(sys_register(12, IORING_REGISTER_PROBE | USE_REGISTERED_RING, &pb, 16), EBADF);
	CHECK_ERR(sys_register((int)slot, 200 | USE_REGISTERED_RING, NULL, 0), EINVAL);
	/* a registration through the slot acts on the ring: an eventfd counts its CQEs */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_OK(efd);
	CHECK_OK(sys_register((int)slot, IORING_REGISTER_EVENTFD | USE_REGISTERED_RING, &efd, 1));
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_EVENTFD, &efd, 1), EBUSY);
	CHECK_RES(nop_via(&r, slot, IORING_ENTER_REGISTERED_RING, 1), 0);
	uint64_t v = 0;
	CHECK_EQ(read(efd, &v, 8), 8);
	CHECK_EQ(v, 1);
	close(efd);
	clear_slots(r.ring_fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- REGISTERED_FD_ONLY ------------------------------------------------------- */

static int fd_only_needs_no_mmap(void)
{
	/* REGISTERED_FD_ONLY without NO_MMAP: -EINVAL (the rings could not be mapped) */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_REGISTERED_FD_ONLY;
	CHECK_ERR(sys_setup(4, &p), EINVAL);
	return UT_OK;
}

/* Page-aligned memory for a 4-entry ring with NO_MMAP: rings and SQEs, a page each. */
static void *nommap_mem(void)
{
	void *m = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static int fd_only(void)
{
	/*
	 * NO_MMAP|REGISTERED_FD_ONLY, rings in our memory: setup returns a slot of this
	 * thread's table (the lowest free), not a descriptor; the ring works through it and
	 * lives until the slot is unregistered. With the table full, setup is -EBUSY.
	 */
	struct io_uring probe_ring;
	CHECK_OK(ut_ring(&probe_ring, 2));
	clear_slots(probe_ring.ring_fd);
	char *mem0 = nommap_mem(), *mem = nommap_mem();
	CHECK(mem0 != NULL && mem != NULL);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_NO_MMAP;
	p.cq_off.resv2 = (uint64_t)(uintptr_t)mem0;	    /* cq_off.user_addr: the rings */
	p.sq_off.resv2 = (uint64_t)(uintptr_t)(mem0 + 4096); /* sq_off.user_addr: the SQEs */
	int fd = sys_setup(4, &p);
	int fd_errno = errno;
	if (fd >= 0)
		close(fd);
	munmap(mem0, 8192);
	if (fd < 0 && fd_errno == EINVAL) { /* NO_MMAP unknown (before 6.5) */
		munmap(mem, 8192);
		io_uring_queue_exit(&probe_ring);
		return UT_UNSUP;
	}
	CHECK_OK(fd);
	/* a slot is taken so that the ring gets the next one */
	unsigned s0 = 99;
	int e = reg1(probe_ring.ring_fd, -1U, probe_ring.ring_fd, &s0);
	if (e == -EINVAL) {
		munmap(mem, 8192);
		io_uring_queue_exit(&probe_ring);
		return UT_UNSUP;
	}
	CHECK_EQ(e, 1);
	CHECK_EQ(s0, 0);
	memset(mem, 0, 8192);
	memset(&p, 0, sizeof p);
	p.flags = SETUP_NO_MMAP | SETUP_REGISTERED_FD_ONLY;
	p.cq_off.resv2 = (uint64_t)(uintptr_t)mem;
	p.sq_off.resv2 = (uint64_t)(uintptr_t)(mem + 4096);
	int slot = sys_setup(4, &p);
	CHECK_OK(slot);
	ut_info("setup returned %d", slot);
	CHECK_EQ(slot, 1);
	/* submit a NOP by hand in our memory */
	unsigned *tail = (unsigned *)(mem + p.sq_off.tail);
	unsigned *array = (unsigned *)(mem + p.sq_off.array);
	struct io_uring_sqe *sqes = (struct io_uring_sqe *)(mem + 4096);
	sqes[0] = ut_nop_sqe(0xf0, 0);
	array[0] = 0;
	__atomic_store_n(tail, 1, __ATOMIC_RELEASE);
	CHECK_EQ(sys_enter(slot, 1, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_REGISTERED_RING,
			   NULL, 0),
		 1);
	unsigned *ctail = (unsigned *)(mem + p.cq_off.tail);
	CHECK_EQ(__atomic_load_n(ctail, __ATOMIC_ACQUIRE), 1);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(mem + p.cq_off.cqes);
	CHECK_EQ(cqes[0].user_data, 0xf0);
	CHECK_RES(cqes[0].res, 0);
	CHECK_OK(sys_register(slot, IORING_REGISTER_PROBE | USE_REGISTERED_RING,
			      &(struct { struct io_uring_probe p; struct io_uring_probe_op o[4]; }){ 0 },
			      4));
	/* fill the rest of the table: another FD_ONLY setup has no slot */
	struct io_uring_rsrc_update u[SLOTS - 2];
	memset(u, 0, sizeof u);
	for (unsigned i = 0; i < SLOTS - 2; i++) {
		u[i].offset = -1U;
		u[i].data = (uint64_t)probe_ring.ring_fd;
	}
	CHECK_EQ(sys_register(probe_ring.ring_fd, IORING_REGISTER_RING_FDS, u, SLOTS - 2), SLOTS - 2);
	char *mem2 = nommap_mem();
	CHECK(mem2 != NULL);
	memset(&p, 0, sizeof p);
	p.flags = SETUP_NO_MMAP | SETUP_REGISTERED_FD_ONLY;
	p.cq_off.resv2 = (uint64_t)(uintptr_t)mem2;
	p.sq_off.resv2 = (uint64_t)(uintptr_t)(mem2 + 4096);
	errno = 0;
	int full = sys_setup(4, &p);
	int full_errno = errno;
	munmap(mem2, 8192);
	if (full >= 0)
		FAIL("setup with a full table returned %d, expected -EBUSY", full);
	CHECK_EQ(full_errno, EBUSY);
	/* unregistering the slot drops the ring */
	CHECK_EQ(unreg1(probe_ring.ring_fd, slot), 1);
	CHECK_ERR(sys_enter(slot, 0, 0, IORING_ENTER_REGISTERED_RING, NULL, 0), EBADF);
	clear_slots(probe_ring.ring_fd);
	io_uring_queue_exit(&probe_ring);
	munmap(mem, 8192);
	return UT_OK;
}

UT_FAMILY(regring, T(enter_by_slot), T(chosen_slot), T(bad_args), T(enter_bad_slot),
	  T(twice_then_close), T(table_full), T(per_thread), T(register_by_slot),
	  T(fd_only_needs_no_mmap), T(fd_only));
