/*
 * Ring-mapped provided buffers: IORING_REGISTER_PBUF_RING / UNREGISTER_PBUF_RING /
 * REGISTER_PBUF_STATUS, and READ / READV with IOSQE_BUFFER_SELECT taking a buffer from a
 * buffer ring. The application owns the tail (a u16 overlaid on the first entry's resv
 * field); the kernel owns the head, which only PBUF_STATUS shows.
 *
 * A kernel without buffer rings answers a valid IORING_REGISTER_PBUF_RING with -EINVAL
 * (an unknown register opcode): every test then reports unsupported.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>

/* register opcodes and flags newer than liburing 2.3's header (values from Linux uapi) */
#define PB_REGISTER_RING 22   /* IORING_REGISTER_PBUF_RING */
#define PB_UNREGISTER_RING 23 /* IORING_UNREGISTER_PBUF_RING */
#define PB_STATUS 26	      /* IORING_REGISTER_PBUF_STATUS */
#define PB_FLAG_MMAP 1	      /* IOU_PBUF_RING_MMAP: the kernel allocates the ring */
#define PB_FLAG_INC 2	      /* IOU_PBUF_RING_INC: buffers consumed incrementally */
#define PB_OFF_RING 0x80000000ull /* IORING_OFF_PBUF_RING */
#define PB_OFF_SHIFT 16		  /* IORING_OFF_PBUF_SHIFT */
#define PB_CQE_BUF_MORE (1u << 4) /* IORING_CQE_F_BUF_MORE */

/* struct io_uring_buf_reg as Linux 6.18 has it (2.3's header calls `flags` `pad`) */
struct pb_reg {
	uint64_t ring_addr;
	uint32_t ring_entries;
	uint16_t bgid;
	uint16_t flags;
	uint64_t resv[3];
};
_Static_assert(sizeof(struct pb_reg) == 40, "io_uring_buf_reg is 40 bytes");

/* struct io_uring_buf_status */
struct pb_status {
	uint32_t buf_group; /* in */
	uint32_t head;	    /* out */
	uint32_t resv[8];
};
_Static_assert(sizeof(struct pb_status) == 40, "io_uring_buf_status is 40 bytes");
_Static_assert(sizeof(struct io_uring_buf) == 16, "io_uring_buf is 16 bytes");

#define DATA_LEN 4096
static unsigned char data[DATA_LEN];

static int data_file(void)
{
	return ut_data_file(data, sizeof data, 23);
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- raw register calls: 0 (or >= 0) or -errno -------------------------------- */

static int reg_ring(int fd, uint64_t addr, unsigned entries, unsigned bgid, unsigned flags)
{
	struct pb_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = addr;
	reg.ring_entries = entries;
	reg.bgid = (uint16_t)bgid;
	reg.flags = (uint16_t)flags;
	return sys_register(fd, PB_REGISTER_RING, &reg, 1) < 0 ? -errno : 0;
}

static int unreg_ring(int fd, unsigned bgid)
{
	struct pb_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.bgid = (uint16_t)bgid;
	return sys_register(fd, PB_UNREGISTER_RING, &reg, 1) < 0 ? -errno : 0;
}

/* the kernel's head of group `bgid` into *head; 0 or -errno */
static int ring_head(int fd, unsigned bgid, unsigned *head)
{
	struct pb_status st;
	memset(&st, 0, sizeof st);
	st.buf_group = bgid;
	st.head = 0xdeadbeef;
	if (sys_register(fd, PB_STATUS, &st, 1) < 0)
		return -errno;
	*head = st.head;
	return 0;
}

/* ---- the application's side of a ring ----------------------------------------- */

struct pbr {
	struct io_uring_buf_ring *br; /* ring memory: ours (anonymous) or the kernel's */
	size_t size;
	unsigned entries;
	uint16_t tail; /* next slot to fill; published by pbr_publish */
};

static int pbr_alloc(struct pbr *p, unsigned entries)
{
	memset(p, 0, sizeof *p);
	p->entries = entries;
	p->size = entries * sizeof(struct io_uring_buf);
	if (p->size < page_size())
		p->size = page_size();
	void *m = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	p->br = m;
	return 0;
}

static void pbr_free(struct pbr *p)
{
	if (p->br)
		munmap(p->br, p->size);
	p->br = NULL;
}

/* Fill the slot at the local tail (not yet visible to the kernel). */
static void pbr_add(struct pbr *p, void *addr, unsigned len, unsigned bid)
{
	struct io_uring_buf *b = &p->br->bufs[p->tail & (p->entries - 1)];
	b->addr = (uint64_t)(uintptr_t)addr;
	b->len = len;
	b->bid = (uint16_t)bid;
	p->tail++;
}

/* Publish the local tail: pairs with the kernel's acquire load of the tail at select. */
static void pbr_publish(struct pbr *p)
{
	__atomic_store_n(&p->br->tail, p->tail, __ATOMIC_RELEASE);
}

/*
 * A ring of `entries` in our memory, registered as group `bgid` with `flags`: UT_OK, or
 * UT_UNSUP when the kernel answers -EINVAL (no buffer rings, or not this flag).
 */
static int pbr_setup(int ring_fd, struct pbr *p, unsigned entries, unsigned bgid,
		     unsigned flags)
{
	int ret = pbr_alloc(p, entries);
	if (ret < 0)
		FAIL("ring memory: %s", ut_errname(-ret));
	ret = reg_ring(ring_fd, (uintptr_t)p->br, entries, bgid, flags);
	if (ret == -EINVAL) {
		pbr_free(p);
		return UT_UNSUP;
	}
	if (ret < 0)
		FAIL("IORING_REGISTER_PBUF_RING bgid %u entries %u flags %u: %s", bgid, entries,
		     flags, ut_errname(-ret));
	return UT_OK;
}

#define SETUP(fd, p, entries, bgid, flags) TRY(pbr_setup((fd), (p), (entries), (bgid), (flags)))

/* A ring of 8, a buffer ring (pbr_setup's entries, bgid, flags) and, if fd, the data file. */
static int ring_pbr(struct io_uring *r, struct pbr *p, unsigned entries, unsigned bgid,
		    unsigned flags, int *fd)
{
	CHECK_OK(ut_ring(r, 8));
	SETUP(r->ring_fd, p, entries, bgid, flags);
	if (fd) {
		*fd = data_file();
		CHECK_OK(*fd);
	}
	return UT_OK;
}

static void close_pbr(struct io_uring *r, struct pbr *p, int fd)
{
	close(fd);
	io_uring_queue_exit(r);
	pbr_free(p);
}

/* ---- requests ------------------------------------------------------------------ */

static int run(struct io_uring *r, struct io_uring_sqe *sqe, struct io_uring_cqe *out)
{
	return ut_run_sqe(r, sqe, 0xb1, out);
}

/* the CQE's flags must be exactly F_BUFFER with buffer id `bid` */
#define CHECK_BID(c, bid)                                                      \
	CHECK_EQ((c).flags, IORING_CQE_F_BUFFER | ((unsigned)(bid) << IORING_CQE_BUFFER_SHIFT))

#define HEAD_IS(fd, bgid, want)                                                \
	do {                                                                   \
		unsigned _h;                                                   \
		CHECK_RES(ring_head((fd), (bgid), &_h), 0);                    \
		CHECK_EQ(_h, (want));                                          \
	} while (0)

/* ---- tests ----------------------------------------------------------------------- */

static int ring_select(void)
{
	/*
	 * An 8-entry ring for group 3 holding 4 buffers (ids 100..103, each in its own slot,
	 * at addresses in reverse order): four READs get the slots in ring order, and each
	 * CQE's flags are exactly F_BUFFER | bid << 16, the data in that entry's memory. The
	 * kernel never writes the ring (plain rings). A fifth READ: -ENOBUFS, flags 0.
	 * Publishing more entries (the tail wraps past slot 7) makes reads work again.
	 */
	GATE(IORING_OP_READ);
	struct io_uring r;
	struct pbr p;
	int fd;
	TRY(ring_pbr(&r, &p, 8, 3, 0, &fd));
	static unsigned char bufs[4][64];
	memset(bufs, 0xee, sizeof bufs);
	for (int i = 0; i < 4; i++)
		pbr_add(&p, bufs[3 - i], 64, 100 + i);
	pbr_publish(&p);
	static unsigned char before[4096];
	memcpy(before, p.br, p.size < sizeof before ? p.size : sizeof before);
	for (int i = 0; i < 4; i++) {
		struct io_uring_cqe c;
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 64 * i, 3), &c), 64);
		CHECK_BID(c, 100 + i);
		CHECK(memcmp(bufs[3 - i], data + 64 * i, 64) == 0);
	}
	CHECK(memcmp(before, p.br, p.size < sizeof before ? p.size : sizeof before) == 0);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 3), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	/* filled but not published: still empty */
	pbr_add(&p, bufs[0], 64, 7);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 3), &c), -ENOBUFS);
	/* publish 6 (slots 4..7, then 0 and 1 again): ids 7, 8, ..., 12 in that order */
	for (int i = 1; i < 6; i++)
		pbr_add(&p, bufs[i % 4], 64, 7 + i);
	pbr_publish(&p);
	for (int i = 0; i < 6; i++) {
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 512 + 64 * i, 3), &c), 64);
		CHECK_BID(c, 7 + i);
		CHECK(memcmp(bufs[i % 4], data + 512 + 64 * i, 64) == 0);
	}
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 3), &c), -ENOBUFS);
	/* a group nobody registered */
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 4), &c), -ENOBUFS);
	close_pbr(&r, &p, fd);
	return UT_OK;
}

static int ring_lengths(void)
{
	/*
	 * A READ takes min(sqe->len, entry len); sqe->len 0 means the whole entry. A READ at
	 * EOF (res 0) still consumes its entry (F_BUFFER set, head advanced). Entry length
	 * is read at selection: rewriting an unconsumed entry before the READ takes effect.
	 */
	GATE(IORING_OP_READ);
	struct io_uring r;
	struct pbr p;
	int fd;
	TRY(ring_pbr(&r, &p, 8, 1, 0, &fd));
	static unsigned char bufs[5][128];
	memset(bufs, 0xee, sizeof bufs);
	for (int i = 0; i < 5; i++)
		pbr_add(&p, bufs[i], 128, i);
	pbr_publish(&p);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 16, 100, 1), &c), 16);
	CHECK_BID(c, 0);
	CHECK(memcmp(bufs[0], data + 100, 16) == 0);
	CHECK_EQ(bufs[0][16], 0xee);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 1000, 200, 1), &c), 128);
	CHECK_BID(c, 1);
	CHECK(memcmp(bufs[1], data + 200, 128) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 0, 300, 1), &c), 128);
	CHECK_BID(c, 2);
	CHECK(memcmp(bufs[2], data + 300, 128) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, DATA_LEN, 1), &c), 0);
	CHECK_BID(c, 3);
	HEAD_IS(r.ring_fd, 1, 4);
	/* slot 4 rewritten in place before any READ reaches it: the new length counts */
	p.br->bufs[4].len = 10;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 0, 0, 1), &c), 10);
	CHECK_BID(c, 4);
	CHECK(memcmp(bufs[4], data, 10) == 0);
	CHECK_EQ(bufs[4][10], 0xee);
	close_pbr(&r, &p, fd);
	return UT_OK;
}

static int ring_status(void)
{
	/*
	 * IORING_REGISTER_PBUF_STATUS answers the kernel's head: 0 after registration, +1
	 * per consumed entry, unchanged by -ENOBUFS, free-running (not masked: 6 after six
	 * READs through a 4-entry ring). Errors: unknown group -ENOENT, a classic group
	 * -EINVAL, nonzero resv -EINVAL, nr_args != 1 -EINVAL.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_PROVIDE_BUFFERS);
	struct io_uring r;
	struct pbr p;
	TRY(ring_pbr(&r, &p, 4, 6, 0, NULL));
	unsigned h;
	int ret = ring_head(r.ring_fd, 6, &h);
	if (ret == -EINVAL) { /* before Linux 6.8: no PBUF_STATUS */
		pbr_free(&p);
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_RES(ret, 0);
	CHECK_EQ(h, 0);
	int fd = data_file();
	CHECK_OK(fd);
	static unsigned char bufs[4][32];
	for (int i = 0; i < 4; i++)
		pbr_add(&p, bufs[i], 32, i);
	pbr_publish(&p);
	HEAD_IS(r.ring_fd, 6, 0); /* publishing moves the tail, not the head */
	struct io_uring_cqe c;
	for (int i = 0; i < 4; i++) {
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 0, 6), &c), 32);
		HEAD_IS(r.ring_fd, 6, i + 1);
	}
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 0, 6), &c), -ENOBUFS);
	HEAD_IS(r.ring_fd, 6, 4);
	pbr_add(&p, bufs[0], 32, 10);
	pbr_add(&p, bufs[1], 32, 11);
	pbr_publish(&p);
	for (int i = 0; i < 2; i++) {
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 0, 6), &c), 32);
		CHECK_BID(c, 10 + i);
	}
	HEAD_IS(r.ring_fd, 6, 6);
	/* errors */
	CHECK_RES(ring_head(r.ring_fd, 7, &h), -ENOENT);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_provide_buffers(sqe, bufs, 32, 1, 9, 0);
	CHECK_RES(run(&r, sqe, NULL), 0);
	CHECK_RES(ring_head(r.ring_fd, 9, &h), -EINVAL);
	struct pb_status st;
	memset(&st, 0, sizeof st);
	st.buf_group = 6;
	st.resv[7] = 1;
	CHECK_ERR(sys_register(r.ring_fd, PB_STATUS, &st, 1), EINVAL);
	st.resv[7] = 0;
	CHECK_ERR(sys_register(r.ring_fd, PB_STATUS, &st, 2), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_STATUS, &st, 0), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_STATUS, (void *)8, 1), EFAULT);
	close_pbr(&r, &p, fd);
	return UT_OK;
}

static int ring_unregister(void)
{
	/*
	 * UNREGISTER_PBUF_RING: 0; then READs of the group -ENOBUFS, and a second unregister
	 * -ENOENT. The group can be registered again, with a fresh head 0: the same memory
	 * (tail still 2) hands out slot 0 again. Unregistering a classic group is -EINVAL;
	 * nonzero resv or flags -EINVAL.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_PROVIDE_BUFFERS);
	struct io_uring r;
	struct pbr p;
	int fd;
	TRY(ring_pbr(&r, &p, 4, 2, 0, &fd));
	static unsigned char bufs[2][32];
	pbr_add(&p, bufs[0], 32, 40);
	pbr_add(&p, bufs[1], 32, 41);
	pbr_publish(&p);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 0, 2), &c), 32);
	CHECK_BID(c, 40);
	CHECK_RES(unreg_ring(r.ring_fd, 2), 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 0, 2), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	CHECK_RES(unreg_ring(r.ring_fd, 2), -ENOENT);
	CHECK_RES(unreg_ring(r.ring_fd, 999), -ENOENT);
	CHECK_RES(reg_ring(r.ring_fd, (uintptr_t)p.br, 4, 2, 0), 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 32, 2), &c), 32);
	CHECK_BID(c, 40);
	CHECK(memcmp(bufs[0], data + 32, 32) == 0);
	/* a classic group */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_provide_buffers(sqe, bufs, 32, 1, 5, 0);
	CHECK_RES(run(&r, sqe, NULL), 0);
	CHECK_RES(unreg_ring(r.ring_fd, 5), -EINVAL);
	/* reserved fields and flags */
	struct pb_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.bgid = 2;
	reg.resv[1] = 1;
	CHECK_ERR(sys_register(r.ring_fd, PB_UNREGISTER_RING, &reg, 1), EINVAL);
	reg.resv[1] = 0;
	reg.flags = PB_FLAG_MMAP;
	CHECK_ERR(sys_register(r.ring_fd, PB_UNREGISTER_RING, &reg, 1), EINVAL);
	reg.flags = 0;
	CHECK_ERR(sys_register(r.ring_fd, PB_UNREGISTER_RING, &reg, 2), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_UNREGISTER_RING, NULL, 1), EINVAL);
	/* still registered after all that */
	CHECK_RES(unreg_ring(r.ring_fd, 2), 0);
	close_pbr(&r, &p, fd);
	return UT_OK;
}

static int register_errors(void)
{
	/*
	 * Linux 6.18's answers: ring_entries 0, 3 or 65536 -EINVAL (32768 is the largest),
	 * a ring_addr not page aligned -EINVAL, nonzero resv -EINVAL, unknown flags -EINVAL,
	 * nr_args != 1 or a NULL arg -EINVAL, an unreadable arg -EFAULT; the same bgid twice
	 * -EEXIST; a bgid holding classic buffers -EEXIST, but an emptied classic group is
	 * replaced by the ring. PROVIDE/REMOVE_BUFFERS on a ring group -EINVAL.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_REMOVE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	struct pbr p;
	TRY(ring_pbr(&r, &p, 8, 1, 0, NULL));
	size_t big_sz = 65536 * sizeof(struct io_uring_buf);
	unsigned char *big = mmap(NULL, big_sz, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(big != MAP_FAILED);
	uintptr_t a = (uintptr_t)big;
	CHECK_RES(reg_ring(r.ring_fd, a, 0, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a, 3, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a, 65536, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a, 1u << 31, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a + 64, 8, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a + 4096 + 16, 8, 2, 0), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a, 8, 2, 4), -EINVAL);
	CHECK_RES(reg_ring(r.ring_fd, a, 8, 2, 0x8000), -EINVAL);
	struct pb_reg reg;
	for (int i = 0; i < 3; i++) {
		memset(&reg, 0, sizeof reg);
		reg.ring_addr = a;
		reg.ring_entries = 8;
		reg.bgid = 2;
		reg.resv[i] = 1;
		CHECK_ERR(sys_register(r.ring_fd, PB_REGISTER_RING, &reg, 1), EINVAL);
	}
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = a;
	reg.ring_entries = 8;
	reg.bgid = 2;
	CHECK_ERR(sys_register(r.ring_fd, PB_REGISTER_RING, &reg, 0), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_REGISTER_RING, &reg, 2), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_REGISTER_RING, NULL, 1), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, PB_REGISTER_RING, (void *)8, 1), EFAULT);
	/* none of those registered group 2 */
	CHECK_RES(unreg_ring(r.ring_fd, 2), -ENOENT);
	/* the largest ring */
	CHECK_RES(reg_ring(r.ring_fd, a, 32768, 2, 0), 0);
	/* the same bgid twice, with other memory or the same */
	CHECK_RES(reg_ring(r.ring_fd, (uintptr_t)p.br, 8, 2, 0), -EEXIST);
	CHECK_RES(reg_ring(r.ring_fd, a, 32768, 2, 0), -EEXIST);
	CHECK_RES(reg_ring(r.ring_fd, a, 8, 1, 0), -EEXIST);
	/* two groups may share one ring's memory */
	CHECK_RES(reg_ring(r.ring_fd, (uintptr_t)p.br, 8, 3, 0), 0);
	/* a group with classic buffers in it */
	static unsigned char bufs[2][16];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_provide_buffers(sqe, bufs, 16, 2, 4, 0);
	CHECK_RES(run(&r, sqe, NULL), 0);
	CHECK_RES(reg_ring(r.ring_fd, a, 8, 4, 0), -EEXIST);
	/* emptied (the classic group object stays): the ring replaces it */
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_remove_buffers(sqe, 2, 4);
	CHECK_RES(run(&r, sqe, NULL), 2);
	int ret = reg_ring(r.ring_fd, a + 4096, 8, 4, 0);
	ut_info("register over an emptied classic group: %d (%s)", ret, ut_resname(ret));
	CHECK_RES(ret, 0);
	CHECK_RES(unreg_ring(r.ring_fd, 4), 0);
	/* classic opcodes on a ring group */
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_provide_buffers(sqe, bufs, 16, 1, 1, 0);
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_remove_buffers(sqe, 1, 1);
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	/* memory that is not mapped */
	CHECK_OK(munmap(big + 65536, 65536));
	ret = reg_ring(r.ring_fd, a + 65536, 8, 5, 0);
	CHECK_RES(ret, -EFAULT);
	CHECK_RES(unreg_ring(r.ring_fd, 5), -ENOENT);
	CHECK_RES(unreg_ring(r.ring_fd, 2), 0);
	CHECK_RES(unreg_ring(r.ring_fd, 3), 0);
	CHECK_RES(unreg_ring(r.ring_fd, 1), 0);
	io_uring_queue_exit(&r);
	munmap(big, 65536);
	munmap(big + 131072, big_sz - 131072);
	pbr_free(&p);
	return UT_OK;
}

static int ring_mmap(void)
{
	/*
	 * IOU_PBUF_RING_MMAP: ring_addr 0, the kernel allocates the ring; mmap(2) of the
	 * ring fd at IORING_OFF_PBUF_RING | bgid << IORING_OFF_PBUF_SHIFT maps it (zeroed:
	 * tail 0). Buffers added through that mapping are selected as usual. Two groups get
	 * two rings. mmap at the offset of a group without a kernel ring (unknown, or a ring
	 * in user memory) fails with ENOMEM (Linux turns any failed lookup of an io_uring
	 * mmap offset into ENOMEM).
	 */
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int ret = reg_ring(r.ring_fd, 0, 16, 7, PB_FLAG_MMAP);
	if (ret == -EINVAL) {
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_RES(ret, 0);
	CHECK_RES(reg_ring(r.ring_fd, 0, 16, 8, PB_FLAG_MMAP), 0);
	size_t ps = page_size();
	struct pbr p7 = { 0 }, p8 = { 0 };
	void *m7 = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r.ring_fd,
			(off_t)(PB_OFF_RING | (7ull << PB_OFF_SHIFT)));
	if (m7 == MAP_FAILED)
		FAIL("mmap of group 7's ring: %s", ut_errname(errno));
	void *m8 = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r.ring_fd,
			(off_t)(PB_OFF_RING | (8ull << PB_OFF_SHIFT)));
	if (m8 == MAP_FAILED)
		FAIL("mmap of group 8's ring: %s", ut_errname(errno));
	CHECK(m7 != m8);
	p7.br = m7;
	p7.entries = 16;
	p8.br = m8;
	p8.entries = 16;
	CHECK_EQ(p7.br->tail, 0);
	int fd = data_file();
	CHECK_OK(fd);
	static unsigned char bufs[3][64];
	pbr_add(&p7, bufs[0], 64, 70);
	pbr_add(&p7, bufs[1], 64, 71);
	pbr_publish(&p7);
	pbr_add(&p8, bufs[2], 64, 80);
	pbr_publish(&p8);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 8), &c), 64);
	CHECK_BID(c, 80);
	CHECK(memcmp(bufs[2], data, 64) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 64, 7), &c), 64);
	CHECK_BID(c, 70);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 128, 7), &c), 64);
	CHECK_BID(c, 71);
	CHECK(memcmp(bufs[0], data + 64, 64) == 0 && memcmp(bufs[1], data + 128, 64) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 7), &c), -ENOBUFS);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 8), &c), -ENOBUFS);
	/* no kernel ring behind these offsets */
	CHECK(mmap(NULL, ps, PROT_READ, MAP_SHARED, r.ring_fd,
		   (off_t)(PB_OFF_RING | (9ull << PB_OFF_SHIFT))) == MAP_FAILED);
	ut_info("mmap of a group without a ring: %s", ut_errname(errno));
	CHECK_EQ(errno, ENOMEM);
	struct pbr pu;
	CHECK_OK(pbr_alloc(&pu, 16));
	CHECK_RES(reg_ring(r.ring_fd, (uintptr_t)pu.br, 16, 9, 0), 0);
	errno = 0;
	void *mu = mmap(NULL, ps, PROT_READ, MAP_SHARED, r.ring_fd,
			(off_t)(PB_OFF_RING | (9ull << PB_OFF_SHIFT)));
	int e = errno;
	if (mu != MAP_FAILED)
		munmap(mu, ps);
	ut_info("mmap of a ring in user memory: %s", mu == MAP_FAILED ? ut_errname(e) : "mapped");
	CHECK(mu == MAP_FAILED);
	CHECK_EQ(e, ENOMEM);
	CHECK_RES(unreg_ring(r.ring_fd, 7), 0);
	CHECK_RES(unreg_ring(r.ring_fd, 8), 0);
	munmap(m7, ps);
	munmap(m8, ps);
	close(fd);
	io_uring_queue_exit(&r);
	pbr_free(&pu);
	return UT_OK;
}

static int ring_inc(void)
{
	/*
	 * IOU_PBUF_RING_INC (Linux 6.12+): an entry is consumed a piece at a time. The
	 * kernel rewrites the entry in the ring (addr advanced, len reduced by what was
	 * taken) and keeps the head on it; the next READ continues in the same buffer, at
	 * the new address. Pipe READs (committed at completion, by the bytes transferred):
	 * F_BUF_MORE is set while the buffer has room left; the READ that uses it up has
	 * none, and the head moves on. File READs are committed at selection by the length
	 * asked (min(sqe->len, entry len)), not by the bytes read: a READ of 4 bytes at EOF
	 * asking 20 uses up 20. F_BUF_MORE likewise says the entry still has room after that.
	 * An entry used up is left with len 0 (its addr advanced to the end).
	 */
	GATE(IORING_OP_READ);
	struct io_uring r;
	struct pbr p;
	TRY(ring_pbr(&r, &p, 4, 5, 0, NULL));
	CHECK_RES(unreg_ring(r.ring_fd, 5), 0);
	int ret = reg_ring(r.ring_fd, (uintptr_t)p.br, 4, 5, PB_FLAG_INC);
	if (ret == -EINVAL) { /* before Linux 6.12 */
		pbr_free(&p);
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_RES(ret, 0);
	int pp[2];
	CHECK_OK(pipe2(pp, O_CLOEXEC));
	static unsigned char buf[256], buf2[64];
	memset(buf, 0xee, sizeof buf);
	pbr_add(&p, buf, 256, 9);
	pbr_add(&p, buf2, 64, 10);
	pbr_publish(&p);
	/* pipe: 100 of 256, then 100, then 56 (the rest) */
	unsigned char msg[256];
	ut_pattern(msg, sizeof msg, 5);
	struct io_uring_cqe c;
	CHECK_EQ(write(pp[1], msg, 100), 100);
	CHECK_RES(run(&r, ut_q_sel_read(&r, pp[0], 0, 0, 5), &c), 100);
	ut_info("pipe READ 100 of 256: flags 0x%x", c.flags);
	CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | PB_CQE_BUF_MORE | (9u << IORING_CQE_BUFFER_SHIFT));
	CHECK(memcmp(buf, msg, 100) == 0);
	CHECK_EQ(buf[100], 0xee);
	CHECK_EQ(p.br->bufs[0].addr, (uintptr_t)(buf + 100));
	CHECK_EQ(p.br->bufs[0].len, 156);
	CHECK_EQ(p.br->bufs[0].bid, 9);
	HEAD_IS(r.ring_fd, 5, 0);
	CHECK_EQ(write(pp[1], msg + 100, 156), 156);
	CHECK_RES(run(&r, ut_q_sel_read(&r, pp[0], 100, 0, 5), &c), 100);
	CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | PB_CQE_BUF_MORE | (9u << IORING_CQE_BUFFER_SHIFT));
	CHECK_EQ(p.br->bufs[0].len, 56);
	CHECK_RES(run(&r, ut_q_sel_read(&r, pp[0], 0, 0, 5), &c), 56);
	ut_info("pipe READ of the last 56: flags 0x%x, entry len %u", c.flags,
		p.br->bufs[0].len);
	CHECK_BID(c, 9);
	CHECK(memcmp(buf, msg, 256) == 0);
	HEAD_IS(r.ring_fd, 5, 1);
	/* a pipe READ of fewer bytes than asked: commits what it got */
	CHECK_EQ(write(pp[1], msg, 10), 10);
	CHECK_RES(run(&r, ut_q_sel_read(&r, pp[0], 64, 0, 5), &c), 10);
	CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | PB_CQE_BUF_MORE | (10u << IORING_CQE_BUFFER_SHIFT));
	CHECK_EQ(p.br->bufs[1].len, 54);
	HEAD_IS(r.ring_fd, 5, 1);
	/* a file READ: committed at selection, by the length asked */
	int fd = data_file();
	CHECK_OK(fd);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 20, DATA_LEN - 4, 5), &c), 4);
	ut_info("file READ of 4 (asked 20) in a 54-byte remainder: flags 0x%x, entry len %u",
		c.flags, p.br->bufs[1].len);
	CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | PB_CQE_BUF_MORE | (10u << IORING_CQE_BUFFER_SHIFT));
	CHECK_EQ(p.br->bufs[1].len, 34);
	CHECK_EQ(p.br->bufs[1].addr, (uintptr_t)(buf2 + 30));
	CHECK(memcmp(buf2 + 10, data + DATA_LEN - 4, 4) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 0, 0, 5), &c), 34);
	ut_info("file READ of the last 34: flags 0x%x, entry len %u", c.flags, p.br->bufs[1].len);
	CHECK_BID(c, 10);
	CHECK_EQ(p.br->bufs[1].len, 0);
	CHECK(memcmp(buf2 + 30, data, 34) == 0);
	HEAD_IS(r.ring_fd, 5, 2);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 0, 0, 5), &c), -ENOBUFS);
	close(fd);
	close(pp[0]);
	close(pp[1]);
	io_uring_queue_exit(&r);
	pbr_free(&p);
	return UT_OK;
}

/* ---- pipe READs that wait ------------------------------------------------------ */

/* A ring, a buffer ring of 4 entries in group `bgid`, the data file and a pipe. */
struct pw {
	struct io_uring r;
	struct pbr p;
	unsigned bgid;
	int fd, pp[2];
};

static int pw_setup(struct pw *t, unsigned bgid, int pipe_flags)
{
	t->bgid = bgid;
	TRY(ring_pbr(&t->r, &t->p, 4, bgid, 0, &t->fd));
	CHECK_OK(pipe2(t->pp, pipe_flags));
	return UT_OK;
}

static void pw_close(struct pw *t)
{
	close(t->pp[0]);
	close(t->pp[1]);
	close(t->fd);
	io_uring_queue_exit(&t->r);
	pbr_free(&t->p);
}

/* Publish `buf` (64 bytes, id `bid`), then queue a 64-byte READ of the pipe, user_data `ud`. */
static struct io_uring_sqe *pw_arm(struct pw *t, void *buf, unsigned bid, uint64_t ud)
{
	pbr_add(&t->p, buf, 64, bid);
	pbr_publish(&t->p);
	struct io_uring_sqe *sqe = ut_q_sel_read(&t->r, t->pp[0], 64, 0, t->bgid);
	sqe->user_data = ud;
	return sqe;
}

/* Publish `buf` (64 bytes, id `bid`), have a thread write `msg` to the pipe 10 ms later,
 * and wait for the next CQE (into *c). */
static int pw_feed(struct pw *t, void *buf, unsigned bid, const char *msg, size_t len,
		   struct io_uring_cqe *c)
{
	pbr_add(&t->p, buf, 64, bid);
	pbr_publish(&t->p);
	return ut_feed_wait(&t->r, t->pp[1], msg, len, c, __FILE__, __LINE__);
}

static int pipe_wait(void)
{
	/*
	 * A READ on an empty pipe with a buffer ring does not hold a buffer while it waits
	 * (Linux 6.18: unlike a classic group, the entry is given back and the head stays):
	 * the head stays 0, and a file READ meanwhile gets that same entry. The waiting READ
	 * selects when the data comes: its CQE names the entry at the head then.
	 */
	GATE(IORING_OP_READ);
	struct pw t;
	TRY(pw_setup(&t, 12, O_CLOEXEC));
	static unsigned char bufs[2][64];
	memset(bufs, 0, sizeof bufs);
	pw_arm(&t, bufs[0], 7, 0x91);
	SUBMIT_NONE(&t.r, 1);
	unsigned h;
	int sret = ring_head(t.r.ring_fd, 12, &h);
	CHECK(sret == 0 || sret == -EINVAL); /* -EINVAL: no PBUF_STATUS (before 6.8) */
	if (sret == 0)
		ut_info("head while the pipe READ waits: %u", h);
	if (sret == 0)
		CHECK_EQ(h, 0);
	struct io_uring_cqe c;
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 12), &c), 64);
	CHECK_BID(c, 7);
	CHECK(memcmp(bufs[0], data, 64) == 0);
	TRY(pw_feed(&t, bufs[1], 8, "pipe data", 9, &c));
	CHECK_EQ(c.user_data, 0x91);
	CHECK_RES(c.res, 9);
	CHECK_BID(c, 8);
	CHECK(memcmp(bufs[1], "pipe data", 9) == 0);
	if (sret == 0)
		HEAD_IS(t.r.ring_fd, 12, 2);
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 12), &c), -ENOBUFS);
	pw_close(&t);
	return UT_OK;
}

static int pipe_wait_async(void)
{
	/*
	 * The same waiting pipe READ with IOSQE_ASYNC: an io-wq worker selects without the
	 * ring lock, so it must consume the entry at once (Linux 6.18): the head is 1 while
	 * the READ waits, a file READ meanwhile finds the ring empty (-ENOBUFS), and the
	 * CQE names the entry selected at arming.
	 */
	GATE(IORING_OP_READ);
	struct pw t;
	TRY(pw_setup(&t, 16, O_CLOEXEC));
	static unsigned char bufs[2][64];
	memset(bufs, 0, sizeof bufs);
	struct io_uring_sqe *sqe = pw_arm(&t, bufs[0], 17, 0x95);
	sqe->flags |= IOSQE_ASYNC;
	SUBMIT_NONE(&t.r, 1);
	/* the worker may need a moment to pick the request up */
	unsigned h = 0;
	int sret = 0;
	for (int i = 0; i < 500; i++) {
		sret = ring_head(t.r.ring_fd, 16, &h);
		if (sret < 0 || h != 0)
			break;
		ut_sleep_ms(1);
	}
	CHECK(sret == 0 || sret == -EINVAL); /* -EINVAL: no PBUF_STATUS (before 6.8) */
	if (sret == 0)
		ut_info("head while the IOSQE_ASYNC pipe READ waits: %u", h);
	if (sret == 0)
		CHECK_EQ(h, 1);
	struct io_uring_cqe c;
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 16), &c), -ENOBUFS);
	TRY(pw_feed(&t, bufs[1], 18, "async data", 10, &c));
	ut_info("IOSQE_ASYNC pipe READ: res %d flags 0x%x", c.res, c.flags);
	CHECK_EQ(c.user_data, 0x95);
	CHECK_RES(c.res, 10);
	CHECK_BID(c, 17);
	CHECK(memcmp(bufs[0], "async data", 10) == 0);
	if (sret == 0)
		HEAD_IS(t.r.ring_fd, 16, 1);
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 16), &c), 64);
	CHECK_BID(c, 18);
	pw_close(&t);
	return UT_OK;
}

static int pipe_wait_empty(void)
{
	/*
	 * A READ on an empty pipe with an empty ring fails at once with -ENOBUFS (it selects
	 * before it reads). One that armed with an entry, which a file READ then took, finds
	 * the ring empty when the data comes: it completes with -ENOBUFS, flags 0, and the
	 * data stays in the pipe.
	 */
	GATE(IORING_OP_READ);
	struct pw t;
	TRY(pw_setup(&t, 13, O_CLOEXEC | O_NONBLOCK));
	struct io_uring_cqe c;
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.pp[0], 64, 0, 13), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	static unsigned char buf[64];
	pw_arm(&t, buf, 1, 0x92);
	SUBMIT_NONE(&t.r, 1);
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 13), &c), 64);
	CHECK_BID(c, 1);
	CHECK_EQ(write(t.pp[1], "late", 4), 4);
	WAIT_UD(&t.r, 0x92, 5000, &c);
	ut_info("armed pipe READ, ring emptied, then data: res %d flags 0x%x", c.res, c.flags);
	CHECK_RES(c.res, -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	char b[8];
	CHECK_EQ(ut_read_within(t.pp[0], b, sizeof b, 1000), 4);
	CHECK(memcmp(b, "late", 4) == 0);
	pw_close(&t);
	return UT_OK;
}

static int cancel_waiting(void)
{
	/*
	 * Cancelling a waiting pipe READ of a ring group: -ECANCELED with flags 0 (it held no
	 * buffer), and the entry is still the next one handed out.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_ASYNC_CANCEL);
	struct pw t;
	TRY(pw_setup(&t, 14, O_CLOEXEC));
	static unsigned char buf[64];
	pw_arm(&t, buf, 3, 0x93);
	SUBMIT_NONE(&t.r, 1);
	CANCEL_WAITING(&t.r, 0x93, 0x94, 0);
	struct io_uring_cqe c1;
	CHECK_RES(run(&t.r, ut_q_sel_read(&t.r, t.fd, 64, 0, 14), &c1), 64);
	CHECK_BID(c1, 3);
	pw_close(&t);
	return UT_OK;
}

static int readv_ring(void)
{
	/*
	 * READV with BUFFER_SELECT on a ring group: one iovec whose iov_len caps the read
	 * (iov_base ignored); an iov_len above the entry's length reads the entry's length;
	 * two iovecs -EINVAL, flags 0, and the entry stays for the next READV.
	 */
	GATE(IORING_OP_READV);
	struct io_uring r;
	struct pbr p;
	int fd;
	TRY(ring_pbr(&r, &p, 4, 15, 0, &fd));
	static unsigned char bufs[2][128];
	pbr_add(&p, bufs[0], 128, 20);
	pbr_add(&p, bufs[1], 128, 21);
	pbr_publish(&p);
	TRY(ut_sel_readv_cases(&r, fd, 15, 0xb1, data, bufs[0], bufs[1], 20, 1));
	struct iovec iov[1] = { { NULL, 4096 } };
	CHECK_RES(run(&r, ut_q_sel_readv(&r, fd, iov, 1, 0, 15), NULL), -ENOBUFS);
	close_pbr(&r, &p, fd);
	return UT_OK;
}

UT_FAMILY(pbuf, T(ring_select), T(ring_lengths), T(ring_status), T(ring_unregister),
	  T(register_errors), T(ring_mmap), T(ring_inc), T(pipe_wait), T(pipe_wait_async), T(pipe_wait_empty),
	  T(cancel_waiting), T(readv_ring));
