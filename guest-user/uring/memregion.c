/*
 * IORING_REGISTER_MEM_REGION (opcode 34, Linux 6.13) and IORING_ENTER_EXT_ARG_REG: a
 * ring's one parameter region, in the program's memory (IORING_MEM_REGION_TYPE_USER:
 * page-aligned, pinned) or in kernel memory the program maps at the offset written back
 * into the descriptor's mmap_offset. Registered with IORING_MEM_REGION_REG_WAIT_ARG
 * (only while the ring is disabled) it holds struct io_uring_reg_wait entries: with
 * EXT_ARG | EXT_ARG_REG, argp is the byte offset of one (8-aligned and inside the
 * region, else -EFAULT; argsz must be 64, else -EINVAL), whose timeout (only with
 * IORING_REG_WAIT_TS), min_wait_usec and sigmask act as EXT_ARG's do. liburing 2.3 has
 * no helpers: the structs are defined here and the calls are raw.
 */
#include "ut.h"

#include <signal.h>
#include <sys/mman.h>

#define REGISTER_MEM_REGION 34
#define REGISTER_ENABLE_RINGS 12
#define ENTER_EXT_ARG_REG (1U << 6)
#define MEM_REGION_TYPE_USER 1U
#define MEM_REGION_REG_WAIT_ARG 1ULL
#define REG_WAIT_TS 1U
#define MAP_OFF_PARAM_REGION 0x20000000ULL

struct region_desc {
	uint64_t user_addr;
	uint64_t size;
	uint32_t flags;
	uint32_t id;
	uint64_t mmap_offset;
	uint64_t resv[4];
};

struct mem_region_reg {
	uint64_t region_uptr;
	uint64_t flags;
	uint64_t resv[2];
};

struct reg_wait {
	struct __kernel_timespec ts;
	uint32_t min_wait_usec;
	uint32_t flags;
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t pad[3];
	uint64_t pad2[2];
};

_Static_assert(sizeof(struct region_desc) == 64, "io_uring_region_desc");
_Static_assert(sizeof(struct mem_region_reg) == 32, "io_uring_mem_region_reg");
_Static_assert(sizeof(struct reg_wait) == 64, "io_uring_reg_wait");

/* A liburing ring set up with IORING_SETUP_R_DISABLED: 0 or -errno. */
static int disabled_ring(struct io_uring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_R_DISABLED;
	return io_uring_queue_init_params(8, r, &p);
}

static int enable(int fd)
{
	return sys_register(fd, REGISTER_ENABLE_RINGS, NULL, 0) < 0 ? -errno : 0;
}

/* IORING_REGISTER_MEM_REGION of `d` with `flags`: 0 or -errno. */
static int reg_region(int fd, struct region_desc *d, uint64_t flags)
{
	struct mem_region_reg reg = { (uintptr_t)d, flags, { 0, 0 } };
	return sys_register(fd, REGISTER_MEM_REGION, &reg, 1) < 0 ? -errno : 0;
}

/* A descriptor of the program's memory at `addr`, `size` bytes. */
static struct region_desc user_desc(void *addr, uint64_t size)
{
	struct region_desc d;
	memset(&d, 0, sizeof d);
	d.user_addr = (uintptr_t)addr;
	d.size = size;
	d.flags = MEM_REGION_TYPE_USER;
	return d;
}

static void *anon(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Write a reg_wait entry: timeout `ts_ns` (with REG_WAIT_TS when `ts_flag`), min_wait. */
static void set_wait(void *at, long long ts_ns, int ts_flag, unsigned min_wait_us)
{
	struct reg_wait w;
	memset(&w, 0, sizeof w);
	w.ts.tv_sec = ts_ns / 1000000000;
	w.ts.tv_nsec = ts_ns % 1000000000;
	w.flags = ts_flag ? REG_WAIT_TS : 0;
	w.min_wait_usec = min_wait_us;
	memcpy(at, &w, sizeof w);
}

/* enter(GETEVENTS | EXT_ARG | EXT_ARG_REG) for `want` CQEs with the entry at `off`. */
static int wait_reg(struct io_uring *r, unsigned want, uint64_t off, size_t argsz, long long *ms)
{
	long long t0 = ut_now_ms();
	int ret = sys_enter(r->ring_fd, 0, want, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG,
			    (void *)(uintptr_t)off, argsz);
	if (ms)
		*ms = ut_now_ms() - t0;
	return ret < 0 ? -errno : ret;
}

/* A disabled ring with a 2-page wait region in the program's memory `*mem`, enabled. */
static int user_wait_ring(struct io_uring *r, char **mem)
{
	*mem = anon(8192);
	CHECK(*mem != NULL);
	int d = disabled_ring(r);
	if (d == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(d);
	struct region_desc desc = user_desc(*mem, 8192);
	int ret = reg_region(r->ring_fd, &desc, MEM_REGION_REG_WAIT_ARG);
	if (ret == -EINVAL) {
		/* Before Linux 6.13 opcode 34 is unknown. */
		io_uring_queue_exit(r);
		munmap(*mem, 8192);
		return UT_UNSUP;
	}
	CHECK_RES(ret, 0);
	/* a user region is not mapped through the ring: no offset comes back */
	CHECK_EQ(desc.mmap_offset, 0);
	CHECK_EQ(desc.user_addr, (uintptr_t)*mem);
	CHECK_OK(enable(r->ring_fd));
	return UT_OK;
}

static int user_timeouts(void)
{
	/*
	 * Entries in the program's memory, written after registration: a 30 ms timeout
	 * (REG_WAIT_TS) ends the wait with -ETIME; so does one in an entry that straddles the
	 * region's two pages (offset 4064). With REG_WAIT_TS clear the entry's 10 ms timeout
	 * is not one: a TIMEOUT's CQE at 100 ms ends the wait, with 0.
	 */
	struct io_uring r;
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	long long ms;
	set_wait(mem, 30000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 0, 64, &ms), -ETIME);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	set_wait(mem + 4064, 30000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 4064, 64, &ms), -ETIME);
	if (ms < 20 || ms > 1500)
		FAIL("the straddling entry's wait took %lld ms, expected about 30", ms);
	set_wait(mem + 128, 10000000LL, 0, 0);
	struct __kernel_timespec t100 = { 0, 100 * 1000 * 1000 };
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_timeout(sqe, &t100, 0, 0);
	sqe->user_data = 7;
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_RES(wait_reg(&r, 1, 128, 64, &ms), 0);
	if (ms < 70 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 100 (no timeout without REG_WAIT_TS)", ms);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 0));
	CHECK_EQ(c.user_data, 7);
	CHECK_RES(c.res, -ETIME);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

static int min_wait(void)
{
	/*
	 * min_wait_usec 30 ms, timeout 2 s, 2 CQEs wanted and one there: the wait ends when
	 * min_wait is over. With none there, min_wait 20 ms and no timeout: -ETIME then.
	 */
	struct io_uring r;
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	ut_q_nop(&r, 1, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	long long ms;
	set_wait(mem + 64, 2000000000LL, 1, 30000);
	CHECK_RES(wait_reg(&r, 2, 64, 64, &ms), 0);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 0));
	CHECK_EQ(c.user_data, 1);
	set_wait(mem + 256, 0, 0, 20000);
	CHECK_RES(wait_reg(&r, 1, 256, 64, &ms), -ETIME);
	if (ms < 15 || ms > 1500)
		FAIL("min_wait alone took %lld ms, expected about 20", ms);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

static volatile int usr1_seen;
static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen++;
}

static int sigmask(void)
{
	/*
	 * The entry's sigmask: a size other than sigset_t's 8 bytes is -EINVAL; an empty
	 * mask lets a blocked, pending SIGUSR1 in during the wait (-EINTR, the handler ran
	 * once), and the old mask is back afterwards.
	 */
	struct io_uring r;
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	uint64_t open_mask = 0;
	struct reg_wait *w = (struct reg_wait *)(mem + 512);
	set_wait(w, 2000000000LL, 1, 0);
	w->sigmask = (uintptr_t)&open_mask;
	w->sigmask_sz = 4;
	CHECK_RES(wait_reg(&r, 1, 512, 64, NULL), -EINVAL);
	w->sigmask_sz = 8;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, &old);
	sigset_t block, prev, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &prev);
	usr1_seen = 0;
	raise(SIGUSR1);
	int before = usr1_seen;
	long long ms;
	int ret = wait_reg(&r, 1, 512, 64, &ms);
	int seen = usr1_seen;
	sigprocmask(SIG_SETMASK, NULL, &now);
	int still_blocked = sigismember(&now, SIGUSR1);
	sigprocmask(SIG_SETMASK, &prev, NULL);
	sigaction(SIGUSR1, &old, NULL);
	CHECK_EQ(before, 0);
	CHECK_RES(ret, -EINTR);
	CHECK_EQ(seen, 1);
	CHECK(still_blocked);
	if (ms > 1500)
		FAIL("the wait took %lld ms", ms);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

static int enter_errors(void)
{
	/*
	 * argsz other than 64: -EINVAL. Offsets: not 8-aligned, or the entry not wholly
	 * inside the 8192-byte region (8136, 8192, one that wraps): -EFAULT; the last
	 * whole entry (8128) works. Entry flags other than REG_WAIT_TS: -EINVAL.
	 */
	struct io_uring r;
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	set_wait(mem, 1000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 0, 24, NULL), -EINVAL);
	CHECK_RES(wait_reg(&r, 1, 0, 128, NULL), -EINVAL);
	CHECK_RES(wait_reg(&r, 1, 4, 64, NULL), -EFAULT);
	CHECK_RES(wait_reg(&r, 1, 8192 - 56, 64, NULL), -EFAULT);
	CHECK_RES(wait_reg(&r, 1, 8192, 64, NULL), -EFAULT);
	CHECK_RES(wait_reg(&r, 1, ~(uint64_t)7, 64, NULL), -EFAULT);
	set_wait(mem + 8192 - 64, 1000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 8192 - 64, 64, NULL), -ETIME);
	struct reg_wait *w = (struct reg_wait *)(mem + 192);
	set_wait(w, 1000000LL, 1, 0);
	w->flags = REG_WAIT_TS | 2;
	CHECK_RES(wait_reg(&r, 1, 192, 64, NULL), -EINVAL);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

static int wait_rules(void)
{
	/*
	 * As Linux, the entry is read only when enter goes on to wait (GETEVENTS, after
	 * submission): without GETEVENTS a bad offset is not looked at (0); with an SQE
	 * submitted the count is the answer (1). With min_complete 0 the entry is still
	 * read (bad entry flags: EINVAL). The timeout is not checked: a negative one has
	 * passed (-ETIME at once), nanoseconds past a second add up (1.05 s). The sigmask is
	 * checked only when the CQEs asked for are not there yet.
	 */
	struct io_uring r;
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	int fd = r.ring_fd;
	CHECK_EQ(sys_enter(fd, 0, 1, IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG, (void *)4, 64), 0);
	ut_q_nop(&r, 9, 0);
	io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
	r.sq.sqe_head = r.sq.sqe_tail;
	CHECK_EQ(sys_enter(fd, 1, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG, (void *)4, 64),
		 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 1000));
	CHECK_EQ(c.user_data, 9);
	struct reg_wait *w = (struct reg_wait *)(mem + 1024);
	set_wait(w, 0, 1, 0);
	w->flags = 4;
	CHECK_RES(wait_reg(&r, 0, 1024, 64, NULL), -EINVAL);
	set_wait(w, 0, 1, 0);
	w->ts.tv_sec = -1;
	long long ms;
	CHECK_RES(wait_reg(&r, 1, 1024, 64, &ms), -ETIME);
	if (ms > 500)
		FAIL("a negative timeout took %lld ms", ms);
	set_wait(w, 0, 1, 0);
	w->ts.tv_nsec = 1050000000LL;
	CHECK_RES(wait_reg(&r, 1, 1024, 64, &ms), -ETIME);
	if (ms < 900 || ms > 3000)
		FAIL("a 1.05e9 ns timeout took %lld ms", ms);
	uint64_t mask = 0;
	set_wait(w, 1000000LL, 1, 0);
	w->sigmask = (uintptr_t)&mask;
	w->sigmask_sz = 4;
	ut_q_nop(&r, 10, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_RES(wait_reg(&r, 1, 1024, 64, NULL), 0);
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 0));
	CHECK_EQ(c.user_data, 10);
	CHECK_RES(wait_reg(&r, 1, 1024, 64, NULL), -EINVAL);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

static int register_errors(void)
{
	/*
	 * On a disabled ring, each of these fails and registers nothing: unknown reg flags
	 * or reg reserved words, unknown desc flags, desc reserved words, an id, an
	 * mmap_offset, a zero or unaligned size, an unaligned address (EINVAL); an end past
	 * 2^64 (EOVERFLOW), 2^31 pages (E2BIG); a user region at address 0, a kernel one
	 * with an address, unmapped or read-only memory, an unreadable reg or desc (EFAULT);
	 * arg NULL or nr_args 2 (EINVAL). Then one
	 * registration works, and any second is EBUSY, checked before anything else.
	 */
	struct io_uring r;
	int d = disabled_ring(&r);
	if (d == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(d);
	char *mem = anon(3 * 4096);
	CHECK(mem != NULL);
	struct region_desc desc = user_desc(mem, 4096);
	int fd = r.ring_fd;
	int ret = reg_region(fd, &desc, 2);
	if (ret == -EINVAL && reg_region(fd, &desc, 0) == -EINVAL) {
		io_uring_queue_exit(&r);
		munmap(mem, 3 * 4096);
		return UT_UNSUP;
	}
	/* (if opcode 34 is known, the probe registration above succeeded: start afresh) */
	io_uring_queue_exit(&r);
	CHECK_OK(disabled_ring(&r));
	fd = r.ring_fd;
	CHECK_RES(ret, -EINVAL);
	struct mem_region_reg reg = { (uintptr_t)&desc, 0, { 1, 0 } };
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, &reg, 1), EINVAL);
	desc.flags = MEM_REGION_TYPE_USER | 2;
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem, 4096);
	desc.resv[3] = 1;
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem, 4096);
	desc.id = 1;
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem, 4096);
	desc.mmap_offset = 4096;
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem, 0);
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem, 100);
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(mem + 8, 4096);
	CHECK_RES(reg_region(fd, &desc, 0), -EINVAL);
	desc = user_desc(NULL, 4096);
	CHECK_RES(reg_region(fd, &desc, 0), -EFAULT);
	desc = user_desc((void *)(uintptr_t)0xfffffffffffff000ULL, 8192);
	CHECK_RES(reg_region(fd, &desc, 0), -EOVERFLOW);
	memset(&desc, 0, sizeof desc);
	desc.size = 1ULL << 43; /* 2^31 pages */
	CHECK_RES(reg_region(fd, &desc, 0), -E2BIG);
	desc = user_desc(mem, 4096);
	desc.flags = 0;
	CHECK_RES(reg_region(fd, &desc, 0), -EFAULT);
	/* the third page unmapped, the second read-only */
	CHECK_OK(munmap(mem + 2 * 4096, 4096));
	CHECK_OK(mprotect(mem + 4096, 4096, PROT_READ));
	desc = user_desc(mem + 2 * 4096, 4096);
	CHECK_RES(reg_region(fd, &desc, 0), -EFAULT);
	desc = user_desc(mem, 2 * 4096);
	CHECK_RES(reg_region(fd, &desc, 0), -EFAULT);
	struct mem_region_reg bad = { 8, 0, { 0, 0 } };
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, &bad, 1), EFAULT);
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, (void *)8, 1), EFAULT);
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, NULL, 1), EINVAL);
	desc = user_desc(mem, 4096);
	reg.resv[0] = 0;
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, &reg, 2), EINVAL);
	/* nothing was registered by all that */
	CHECK_RES(reg_region(fd, &desc, MEM_REGION_REG_WAIT_ARG), 0);
	CHECK_RES(reg_region(fd, &desc, MEM_REGION_REG_WAIT_ARG), -EBUSY);
	struct region_desc kdesc;
	memset(&kdesc, 0, sizeof kdesc);
	kdesc.size = 4096;
	CHECK_RES(reg_region(fd, &kdesc, 0), -EBUSY);
	CHECK_ERR(sys_register(fd, REGISTER_MEM_REGION, (void *)8, 1), EBUSY);
	io_uring_queue_exit(&r);
	munmap(mem, 2 * 4096);
	return UT_OK;
}

static int not_disabled(void)
{
	/*
	 * On an enabled ring (or one set up without R_DISABLED) a wait region is EINVAL; a
	 * region without REG_WAIT_ARG registers, but EXT_ARG_REG does not read it (EFAULT),
	 * and a second one is EBUSY.
	 */
	struct io_uring r;
	char *mem = anon(4096);
	CHECK(mem != NULL);
	CHECK_OK(ut_ring(&r, 8));
	struct region_desc desc = user_desc(mem, 4096);
	int ret = reg_region(r.ring_fd, &desc, MEM_REGION_REG_WAIT_ARG);
	if (ret == -EINVAL && reg_region(r.ring_fd, &desc, 0) == -EINVAL) {
		io_uring_queue_exit(&r);
		munmap(mem, 4096);
		return UT_UNSUP;
	}
	CHECK_RES(ret, -EINVAL);
	io_uring_queue_exit(&r);
	CHECK_OK(disabled_ring(&r));
	CHECK_OK(enable(r.ring_fd));
	CHECK_RES(reg_region(r.ring_fd, &desc, MEM_REGION_REG_WAIT_ARG), -EINVAL);
	CHECK_RES(reg_region(r.ring_fd, &desc, 0), 0);
	CHECK_RES(reg_region(r.ring_fd, &desc, 0), -EBUSY);
	set_wait(mem, 1000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 0, 64, NULL), -EFAULT);
	io_uring_queue_exit(&r);
	munmap(mem, 4096);
	return UT_OK;
}

static int kernel_region(void)
{
	/*
	 * Kernel memory: user_addr 0, no TYPE_USER; the offset to mmap comes back in
	 * mmap_offset. A mapping shorter than the region is EFAULT, a longer one is made. The
 * mapping is zeroed, two mappings share it, and its entries serve
	 * EXT_ARG_REG: a 30 ms timeout (-ETIME), and with a CQE there the wait returns at
	 * once. Mapping the region where there is none, or where it is the program's own
	 * memory, is ENOMEM.
	 */
	struct io_uring r;
	int d = disabled_ring(&r);
	if (d == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(d);
	void *none = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, MAP_OFF_PARAM_REGION);
	CHECK(none == MAP_FAILED);
	CHECK_EQ(errno, ENOMEM);
	struct region_desc desc;
	memset(&desc, 0, sizeof desc);
	desc.size = 8192;
	int ret = reg_region(r.ring_fd, &desc, MEM_REGION_REG_WAIT_ARG);
	if (ret == -EINVAL) {
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_RES(ret, 0);
	CHECK_EQ(desc.mmap_offset, MAP_OFF_PARAM_REGION);
	CHECK_EQ(desc.user_addr, 0);
	CHECK_EQ(desc.size, 8192);
	char *a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, desc.mmap_offset);
	CHECK(a != MAP_FAILED);
	char *b = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, desc.mmap_offset);
	CHECK(b != MAP_FAILED);
	/* a mapping must cover the whole region (EFAULT); a longer one is made */
	void *small = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, desc.mmap_offset);
	CHECK(small == MAP_FAILED);
	CHECK_EQ(errno, EFAULT);
	void *big = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, desc.mmap_offset);
	CHECK(big != MAP_FAILED);
	CHECK_OK(munmap(big, 3 * 4096));
	for (int i = 0; i < 8192; i++)
		if (a[i])
			FAIL("byte %d of the new region is %d", i, a[i]);
	set_wait(b + 64, 30000000LL, 1, 0);
	CHECK_EQ(((struct reg_wait *)(a + 64))->ts.tv_nsec, 30000000LL);
	set_wait(a + 4096, 30000000LL, 1, 0);
	CHECK_OK(enable(r.ring_fd));
	long long ms;
	CHECK_RES(wait_reg(&r, 1, 64, 64, &ms), -ETIME);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	CHECK_RES(wait_reg(&r, 1, 4096, 64, &ms), -ETIME);
	if (ms < 20 || ms > 1500)
		FAIL("the wait took %lld ms, expected about 30", ms);
	ut_q_nop(&r, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	set_wait(a + 4096, 2000000000LL, 1, 0);
	CHECK_RES(wait_reg(&r, 1, 4096, 64, &ms), 0);
	if (ms > 1000)
		FAIL("a wait with a CQE there took %lld ms", ms);
	munmap(a, 8192);
	munmap(b, 8192);
	io_uring_queue_exit(&r);

	/* the program's own memory is not mapped through the ring */
	char *mem;
	TRY(user_wait_ring(&r, &mem));
	none = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.ring_fd, MAP_OFF_PARAM_REGION);
	CHECK(none == MAP_FAILED);
	CHECK_EQ(errno, ENOMEM);
	io_uring_queue_exit(&r);
	munmap(mem, 8192);
	return UT_OK;
}

UT_FAMILY(memregion, T(user_timeouts), T(min_wait), T(sigmask), T(enter_errors), T(wait_rules), T(register_errors),
	  T(not_disabled), T(kernel_region));
