/*
 * IORING_OP_FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAITV (Linux 6.7): sqe->addr the futex (WAITV:
 * a struct futex_waitv array of sqe->len entries), sqe->addr2 (off) the value (WAKE: how
 * many), sqe->addr3 the bitset, sqe->fd the futex2 flags. liburing 2.3 has no helpers:
 * SQEs are filled by hand. A wait parks; futex(2) and FUTEX_WAKE wake it; cancellation
 * and task exit take it off the futex.
 */
#include "ut.h"

#include <unistd.h>

#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define OP_FUTEX_WAIT 51
#define OP_FUTEX_WAKE 52
#define OP_FUTEX_WAITV 53
#define F2_U8 0x00
#define F2_U32 0x02
#define F2_U64 0x03
#define F2_NUMA 0x04
#define F2_PRIVATE 0x80
#define ANY 0xffffffffull

struct waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

static uint32_t words[4] __attribute__((aligned(8)));

static struct io_uring_sqe *q_futex(struct io_uring *r, int op, void *addr, uint64_t val,
				    uint64_t mask, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = (uint8_t)op;
	sqe->addr = (uint64_t)(uintptr_t)addr;
	sqe->off = val;
	sqe->addr3 = mask;
	sqe->fd = (int)flags;
	sqe->user_data = ud;
	return sqe;
}

static struct io_uring_sqe *q_waitv(struct io_uring *r, struct waitv *v, unsigned n, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_FUTEX_WAITV;
	sqe->fd = 0;
	sqe->addr = (uint64_t)(uintptr_t)v;
	sqe->len = n;
	sqe->user_data = ud;
	return sqe;
}

/* A FUTEX_WAKE of `addr` submitted alone: its res. */
static int wake(struct io_uring *r, void *addr, uint64_t nr, uint64_t mask, unsigned flags,
		uint64_t ud)
{
	struct io_uring_sqe *sqe = q_futex(r, OP_FUTEX_WAKE, addr, nr, mask, flags, ud);
	return ut_run_sqe(r, sqe, ud, NULL);
}

static long sys_futex(void *addr, int op, uint32_t val)
{
	return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

/* No CQE may be waiting on `r` (nor arrive within 20 ms). */

static int wait_value_mismatch(void)
{
	/* the word does not hold the value: -EAGAIN at once, shared or private */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 1;
	struct io_uring_sqe *sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EAGAIN);
	sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 2, ANY, F2_U32 | F2_PRIVATE, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -EAGAIN);
	EMPTY(&r);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int wait_woken_by_wake_op(void)
{
	/* a wait parks (no CQE) until FUTEX_WAKE, which reports 1 woken; the wait gets 0 */
	GATE(OP_FUTEX_WAIT);
	static const unsigned flags[] = { F2_U32, F2_U32 | F2_PRIVATE };
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	for (int i = 0; i < 2; i++) {
		struct io_uring_sqe *sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, flags[i], 0x10 + i);
		if (i == 1)
			sqe->flags |= IOSQE_ASYNC; /* from io-wq too */
		CHECK_EQ(io_uring_submit(&r), 1);
		EMPTY(&r);
		/* From io-wq the wait is armed when a worker gets to it: wake until it has
		 * (a loaded host may take a while). */
		int woken = wake(&r, &words[0], 1, ANY, flags[i], 0x20 + i);
		for (int tries = 0; i == 1 && woken == 0 && tries < 500; tries++) {
			usleep(10000);
			woken = wake(&r, &words[0], 1, ANY, flags[i], 0x20 + i);
		}
		CHECK_RES(woken, 1);
		struct io_uring_cqe c;
		WAIT_UD(&r, 0x10 + i, 5000, &c);
		CHECK_RES(c.res, 0);
		CHECK_RES(wake(&r, &words[0], 1, ANY, flags[i], 0x30 + i), 0);
	}
	EMPTY(&r);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int wait_woken_by_futex_syscall(void)
{
	/* futex(2) FUTEX_WAKE wakes an io_uring waiter (private with FUTEX_PRIVATE_FLAG) */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[1] = 5;
	q_futex(&r, OP_FUTEX_WAIT, &words[1], 5, ANY, F2_U32, 1);
	q_futex(&r, OP_FUTEX_WAIT, &words[1], 5, ANY, F2_U32 | F2_PRIVATE, 2);
	CHECK_EQ(io_uring_submit(&r), 2);
	EMPTY(&r);
	CHECK_EQ(sys_futex(&words[1], FUTEX_WAKE, 10), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 5000, &c);
	CHECK_RES(c.res, 0);
	EMPTY(&r);
	CHECK_EQ(sys_futex(&words[1], FUTEX_WAKE_PRIVATE, 10), 1);
	WAIT_UD(&r, 2, 5000, &c);
	CHECK_RES(c.res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static void *syscall_waiter(void *arg)
{
	long ret = syscall(SYS_futex, &words[2], FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	return (void *)ret;
}

static int wake_op_wakes_futex_syscall(void)
{
	/* FUTEX_WAKE wakes a thread asleep in futex(2) (retried until it is asleep) */
	GATE(OP_FUTEX_WAKE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[2] = 0;
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, syscall_waiter, NULL), 0);
	int res = 0;
	long long end = ut_now_ms() + 10000;
	for (int i = 0; res == 0 && ut_now_ms() < end; i++) {
		res = wake(&r, &words[2], 1, ANY, F2_U32 | F2_PRIVATE, 0x100 + i);
		if (res == 0)
			ut_sleep_ms(2);
	}
	CHECK_RES(res, 1);
	void *ret;
	CHECK_EQ(pthread_join(th, &ret), 0);
	CHECK_EQ((long)ret, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int private_and_shared_differ(void)
{
	/* a private futex and a shared one on the same word are different futexes */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32 | F2_PRIVATE, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32, 2), 0);
	CHECK_EQ(sys_futex(&words[0], FUTEX_WAKE, 1), 0);
	EMPTY(&r);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32 | F2_PRIVATE, 3), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 5000, &c);
	CHECK_RES(c.res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bitsets(void)
{
	/* a wake reaches waiters whose bitset meets its own; a 0 bitset is -EINVAL at issue */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, 0x1, F2_U32, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_RES(wake(&r, &words[0], 1, 0x2, F2_U32, 2), 0);
	EMPTY(&r);
	CHECK_RES(wake(&r, &words[0], 1, 0x3, F2_U32, 3), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 5000, &c);
	CHECK_RES(c.res, 0);
	/* mask 0 fails at issue, not prep: both SQEs of the batch are consumed */
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, 0, F2_U32, 4);
	q_futex(&r, OP_FUTEX_WAKE, &words[0], 1, 0, F2_U32, 5);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe cs[2];
	CHECK_OK(ut_reap(&r, 2, cs));
	for (int i = 0; i < 2; i++) {
		CHECK(cs[i].user_data == 4 || cs[i].user_data == 5);
		CHECK_RES(cs[i].res, -EINVAL);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

/*
 * Submit a FUTEX_WAKE (user_data `ud`) and reap its CQE and those of the `woken` waits it
 * woke (user_data below 0x100, res 0; their bits are added to *seen): the wake's res.
 */
static int wake_reap(struct io_uring *r, void *addr, uint64_t nr, uint64_t ud, int woken,
		     unsigned *seen)
{
	q_futex(r, OP_FUTEX_WAKE, addr, nr, ANY, F2_U32, ud);
	if (io_uring_submit(r) != 1)
		return -10000;
	struct io_uring_cqe cs[8];
	if (ut_reap(r, 1 + woken, cs) < 0)
		return -10001;
	int res = -10002;
	for (int i = 0; i <= woken; i++) {
		if (cs[i].user_data == ud)
			res = cs[i].res;
		else if (cs[i].user_data < 0x100 && cs[i].res == 0)
			*seen |= 1u << cs[i].user_data;
		else
			return -10003;
	}
	return res;
}

static int wake_counts(void)
{
	/* nr bounds the count; nr 0 wakes none; nr (u32)-1 is int -1: Linux wakes one */
	GATE(OP_FUTEX_WAKE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	words[0] = 0;
	for (int i = 0; i < 4; i++)
		q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 1 + i);
	CHECK_EQ(io_uring_submit(&r), 4);
	unsigned seen = 0;
	CHECK_RES(wake_reap(&r, &words[0], 0, 0x110, 0, &seen), 0);
	EMPTY(&r);
	CHECK_RES(wake_reap(&r, &words[0], 0xffffffffull, 0x111, 1, &seen), 1);
	EMPTY(&r);
	CHECK_RES(wake_reap(&r, &words[0], 2, 0x112, 2, &seen), 2);
	EMPTY(&r);
	CHECK_RES(wake_reap(&r, &words[0], 0x7fffffff, 0x113, 1, &seen), 1);
	CHECK_EQ(seen, 0x1e);
	/* no waiter at all: 0 */
	CHECK_RES(wake(&r, &words[3], 1, ANY, F2_U32, 0x114), 0);
	EMPTY(&r);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int prep_errors(void)
{
	/* Linux's io_futex_prep: each of these fails the SQE with -EINVAL */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	for (int op = OP_FUTEX_WAIT; op <= OP_FUTEX_WAKE; op++) {
		struct io_uring_sqe *sqe;
		static const unsigned bad_flags[] = { F2_U8, 0x01, F2_U64, F2_U32 | 0x10, F2_U32 | 0x100 };
		for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
			sqe = q_futex(&r, op, &words[0], 1, ANY, bad_flags[i], 1);
			CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EINVAL);
		}
		sqe = q_futex(&r, op, &words[0], 1ull << 32, ANY, F2_U32, 2); /* value > u32 */
		CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -EINVAL);
		sqe = q_futex(&r, op, &words[0], 1, 1ull << 32, F2_U32, 3); /* mask > u32 */
		CHECK_RES(ut_run_sqe(&r, sqe, 3, NULL), -EINVAL);
		sqe = q_futex(&r, op, &words[0], 1, ANY, F2_U32, 4);
		sqe->rw_flags = 1; /* futex_flags */
		CHECK_RES(ut_run_sqe(&r, sqe, 4, NULL), -EINVAL);
		sqe = q_futex(&r, op, &words[0], 1, ANY, F2_U32, 5);
		sqe->len = 1;
		CHECK_RES(ut_run_sqe(&r, sqe, 5, NULL), -EINVAL);
		sqe = q_futex(&r, op, &words[0], 1, ANY, F2_U32, 6);
		sqe->buf_index = 1;
		CHECK_RES(ut_run_sqe(&r, sqe, 6, NULL), -EINVAL);
	}
	/* a prep failure ends the submission: the NOP after it stays in the SQ */
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U8, 7);
	ut_q_nop(&r, 8, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 7, 5000, &c);
	CHECK_RES(c.res, -EINVAL);
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 8, 5000, &c);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int address_errors(void)
{
	/*
	 * A misaligned word is -EINVAL; an unmapped one -EFAULT, except a private wake,
	 * which (as Linux) needs no page and wakes nobody.
	 */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	char *mis = (char *)&words[0] + 2;
	struct io_uring_sqe *sqe = q_futex(&r, OP_FUTEX_WAIT, mis, 0, ANY, F2_U32, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EINVAL);
	CHECK_RES(wake(&r, mis, 1, ANY, F2_U32, 2), -EINVAL);
	CHECK_RES(wake(&r, mis, 1, ANY, F2_U32 | F2_PRIVATE, 3), -EINVAL);
	void *gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(gone != MAP_FAILED);
	CHECK_EQ(munmap(gone, 4096), 0);
	sqe = q_futex(&r, OP_FUTEX_WAIT, gone, 0, ANY, F2_U32, 4);
	CHECK_RES(ut_run_sqe(&r, sqe, 4, NULL), -EFAULT);
	sqe = q_futex(&r, OP_FUTEX_WAIT, gone, 0, ANY, F2_U32 | F2_PRIVATE, 5);
	CHECK_RES(ut_run_sqe(&r, sqe, 5, NULL), -EFAULT);
	CHECK_RES(wake(&r, gone, 1, ANY, F2_U32, 6), -EFAULT);
	CHECK_RES(wake(&r, gone, 1, ANY, F2_U32 | F2_PRIVATE, 7), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int numa_node_word(void)
{
	/*
	 * FUTEX2_NUMA: the word is followed by a node word and the pair is 8-byte aligned.
	 * A node of -1 is replaced by the node used (0 here); a node that does not exist is
	 * -EINVAL.
	 */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 1;
	words[1] = 0xffffffff;
	struct io_uring_sqe *sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32 | F2_NUMA, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EAGAIN);
	CHECK_EQ(words[1], 0);
	words[1] = 1000;
	sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 1, ANY, F2_U32 | F2_NUMA, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -EINVAL);
	sqe = q_futex(&r, OP_FUTEX_WAIT, &words[1], 1000, ANY, F2_U32 | F2_NUMA, 3);
	CHECK_RES(ut_run_sqe(&r, sqe, 3, NULL), -EINVAL); /* 4 mod 8 */
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_wait(void)
{
	/* ASYNC_CANCEL ends a parked wait with -ECANCELED; a wake then finds nobody */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 0x77);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CANCEL_ONE(&r, 0x77, 0x78);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32, 0x79), 0);
	CHECK_EQ(sys_futex(&words[0], FUTEX_WAKE, 1), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_all_counts_list_once(void)
{
	/*
	 * IORING_ASYNC_CANCEL_ALL answers how many it cancelled, but Linux cancels the
	 * futex list in one step and counts it once: three waits and a poll with the same
	 * user_data give 2. All four end with -ECANCELED; a wake finds nobody.
	 */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	words[0] = 0;
	for (int i = 0; i < 3; i++)
		q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 0x90);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, p[0], POLLIN);
	sqe->user_data = 0x90;
	CHECK_EQ(io_uring_submit(&r), 4);
	EMPTY(&r);
	sqe = ut_sqe(&r);
	io_uring_prep_cancel64(sqe, 0x90, IORING_ASYNC_CANCEL_ALL);
	sqe->user_data = 0x91;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cs[5];
	CHECK_OK(ut_reap(&r, 5, cs));
	for (int i = 0; i < 5; i++) {
		if (cs[i].user_data == 0x91)
			CHECK_RES(cs[i].res, 2);
		else
			CHECK_RES(cs[i].res, -ECANCELED);
	}
	CHECK_RES(wake(&r, &words[0], 10, ANY, F2_U32, 0x92), 0);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int link_timeout_ends_wait(void)
{
	/*
	 * A LINK_TIMEOUT after a wait ends it (-ECANCELED) and leaves the futex; the timeout
	 * answers what its cancellation answered: 1 for the futex list (Linux), not -ETIME.
	 */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	struct io_uring_sqe *sqe = q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 1);
	sqe->flags |= IOSQE_IO_LINK;
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000000 };
	sqe = ut_sqe(&r);
	io_uring_prep_link_timeout(sqe, &ts, 0);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe cs[2];
	CHECK_OK(ut_reap(&r, 2, cs));
	for (int i = 0; i < 2; i++)
		CHECK_RES(cs[i].res, cs[i].user_data == 1 ? -ECANCELED : 1);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32, 3), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqpoll_and_defer_taskrun(void)
{
	/*
	 * A wait issued by an SQ poller names the same private futex as the program's
	 * futex(2); on a DEFER_TASKRUN ring the woken wait's CQE appears only once the
	 * issuer enters to wait for completions.
	 */
	GATE(OP_FUTEX_WAIT);
	struct io_uring r;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL;
	p.sq_thread_idle = 1000;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	words[0] = 0;
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32 | F2_PRIVATE, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	long long end = ut_now_ms() + 10000;
	long woke = 0;
	while (woke == 0 && ut_now_ms() < end) {
		woke = sys_futex(&words[0], FUTEX_WAKE_PRIVATE, 1);
		if (woke == 0)
			ut_sleep_ms(1);
	}
	CHECK_EQ(woke, 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 5000, &c);
	CHECK_RES(c.res, 0);
	io_uring_queue_exit(&r);

	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	q_futex(&r, OP_FUTEX_WAIT, &words[0], 0, ANY, F2_U32, 2);
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_EQ(sys_futex(&words[0], FUTEX_WAKE, 1), 1);
	struct io_uring_cqe *cqe;
	CHECK_EQ(io_uring_peek_cqe(&r, &cqe), -EAGAIN);
	WAIT_UD(&r, 2, 5000, &c);
	CHECK_RES(c.res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int waitv_index(void)
{
	/* FUTEX_WAITV completes with the index of the futex woken; the others leave */
	GATE(OP_FUTEX_WAITV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = words[1] = words[2] = 0;
	struct waitv v[3] = {
		{ 0, (uintptr_t)&words[0], F2_U32, 0 },
		{ 0, (uintptr_t)&words[1], F2_U32 | F2_PRIVATE, 0 },
		{ 0, (uintptr_t)&words[2], F2_U32, 0 },
	};
	q_waitv(&r, v, 3, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_RES(wake(&r, &words[1], 1, ANY, F2_U32, 2), 0); /* v[1] is private */
	CHECK_RES(wake(&r, &words[1], 1, ANY, F2_U32 | F2_PRIVATE, 3), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 5000, &c);
	CHECK_RES(c.res, 1);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32, 4), 0);
	CHECK_RES(wake(&r, &words[2], 1, ANY, F2_U32, 5), 0);
	/* woken by futex(2), through its last entry */
	q_waitv(&r, v, 3, 6);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(sys_futex(&words[2], FUTEX_WAKE, 1), 1);
	WAIT_UD(&r, 6, 5000, &c);
	CHECK_RES(c.res, 2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int waitv_mismatch(void)
{
	/* an entry whose word changed: -EAGAIN, and no entry stays queued */
	GATE(OP_FUTEX_WAITV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = 0;
	words[1] = 3;
	struct waitv v[2] = {
		{ 0, (uintptr_t)&words[0], F2_U32, 0 },
		{ 4, (uintptr_t)&words[1], F2_U32, 0 },
	};
	struct io_uring_sqe *sqe = q_waitv(&r, v, 2, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EAGAIN);
	CHECK_RES(wake(&r, &words[0], 1, ANY, F2_U32, 2), 0);
	/* a misaligned entry: -EINVAL when issued */
	v[1].val = 3;
	v[1].uaddr = (uintptr_t)&words[1] + 1;
	sqe = q_waitv(&r, v, 2, 3);
	CHECK_RES(ut_run_sqe(&r, sqe, 3, NULL), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int waitv_prep_errors(void)
{
	/* Linux's io_futexv_prep and futex_parse_waitv */
	GATE(OP_FUTEX_WAITV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	static struct waitv v[129];
	for (int i = 0; i < 129; i++)
		v[i] = (struct waitv){ 0, (uintptr_t)&words[0], F2_U32, 0 };
	words[0] = 1;
	struct io_uring_sqe *sqe = q_waitv(&r, v, 0, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EINVAL);
	sqe = q_waitv(&r, v, 129, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -EINVAL);
	sqe = q_waitv(&r, v, 128, 3); /* 128 is fine: the words differ, -EAGAIN */
	CHECK_RES(ut_run_sqe(&r, sqe, 3, NULL), -EAGAIN);
	sqe = q_waitv(&r, NULL, 1, 4);
	CHECK_RES(ut_run_sqe(&r, sqe, 4, NULL), -EFAULT);
	v[1].reserved = 1;
	sqe = q_waitv(&r, v, 2, 5);
	CHECK_RES(ut_run_sqe(&r, sqe, 5, NULL), -EINVAL);
	v[1].reserved = 0;
	v[1].flags = F2_U8;
	sqe = q_waitv(&r, v, 2, 6);
	CHECK_RES(ut_run_sqe(&r, sqe, 6, NULL), -EINVAL);
	v[1].flags = F2_U32 | 0x40;
	sqe = q_waitv(&r, v, 2, 7);
	CHECK_RES(ut_run_sqe(&r, sqe, 7, NULL), -EINVAL);
	v[1].flags = F2_U32;
	v[1].val = 1ull << 32;
	sqe = q_waitv(&r, v, 2, 8);
	CHECK_RES(ut_run_sqe(&r, sqe, 8, NULL), -EINVAL);
	v[1].val = 0;
	sqe = q_waitv(&r, v, 2, 9);
	sqe->fd = F2_U32;
	CHECK_RES(ut_run_sqe(&r, sqe, 9, NULL), -EINVAL);
	sqe = q_waitv(&r, v, 2, 10);
	sqe->addr3 = 1;
	CHECK_RES(ut_run_sqe(&r, sqe, 10, NULL), -EINVAL);
	sqe = q_waitv(&r, v, 2, 11);
	sqe->off = 1;
	CHECK_RES(ut_run_sqe(&r, sqe, 11, NULL), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int waitv_claimed_entry_still_counts(void)
{
	/*
	 * Two wakes in one batch on the two entries of one FUTEX_WAITV: the first claims it;
	 * the second still finds (and counts) the other entry, which leaves the futex only
	 * when the wait completes (Linux's io_futex_wakev_fn).
	 */
	GATE(OP_FUTEX_WAITV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	words[0] = words[1] = 0;
	struct waitv v[2] = {
		{ 0, (uintptr_t)&words[0], F2_U32, 0 },
		{ 0, (uintptr_t)&words[1], F2_U32, 0 },
	};
	q_waitv(&r, v, 2, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	q_futex(&r, OP_FUTEX_WAKE, &words[0], 1, ANY, F2_U32, 2);
	q_futex(&r, OP_FUTEX_WAKE, &words[1], 1, ANY, F2_U32, 3);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe cs[3];
	CHECK_OK(ut_reap(&r, 3, cs));
	for (int i = 0; i < 3; i++) {
		ut_info("CQE 0x%llx res %d", (unsigned long long)cs[i].user_data, cs[i].res);
		CHECK_RES(cs[i].res, cs[i].user_data == 1 ? 0 : 1);
	}
	CHECK_RES(wake(&r, &words[1], 1, ANY, F2_U32, 4), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cross_process_and_exit(void)
{
	/*
	 * Shared memory: the parent's futex(2) wakes a child's io_uring wait; a wait still
	 * parked when the child exits leaves the futex with it.
	 */
	GATE(OP_FUTEX_WAIT);
	uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(w != MAP_FAILED);
	w[0] = 0;
	w[1] = 0; /* the child's progress */
	int ready[2], go[2];
	CHECK_OK(pipe(ready));
	CHECK_OK(pipe(go));
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0) {
		struct io_uring r;
		char b = 0;
		if (ut_ring(&r, 4) < 0)
			_exit(10);
		q_futex(&r, OP_FUTEX_WAIT, &w[0], 0, ANY, F2_U32, 1);
		if (io_uring_submit(&r) != 1)
			_exit(11);
		if (write(ready[1], "r", 1) != 1)
			_exit(12);
		struct io_uring_cqe c;
		if (ut_wait_cqe_ms(&r, &c, 10000) != 0 || c.user_data != 1 || c.res != 0)
			_exit(13);
		q_futex(&r, OP_FUTEX_WAIT, &w[0], 0, ANY, F2_U32, 2);
		if (io_uring_submit(&r) != 1)
			_exit(14);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &b, 1) != 1)
			_exit(15);
		_exit(0); /* with the second wait parked */
	}
	close(ready[1]);
	close(go[0]);
	char b;
	CHECK_EQ(read(ready[0], &b, 1), 1);
	CHECK_EQ(sys_futex(&w[0], FUTEX_WAKE, 1), 1);
	CHECK_EQ(read(ready[0], &b, 1), 1);
	CHECK_EQ(write(go[1], "g", 1), 1);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	/* Linux ends an exited task's rings asynchronously (io_ring_exit_work): give it time. */
	ut_sleep_ms(200);
	CHECK_EQ(sys_futex(&w[0], FUTEX_WAKE, 1), 0);
	close(ready[0]);
	close(go[1]);
	munmap(w, 4096);
	return UT_OK;
}

UT_FAMILY(futex, T(wait_value_mismatch), T(wait_woken_by_wake_op), T(wait_woken_by_futex_syscall),
	  T(wake_op_wakes_futex_syscall), T(private_and_shared_differ), T(bitsets), T(wake_counts),
	  T(prep_errors), T(address_errors), T(numa_node_word), T(cancel_wait),
	  T(cancel_all_counts_list_once), T(link_timeout_ends_wait),
	  T(sqpoll_and_defer_taskrun), T(waitv_index),
	  T(waitv_mismatch), T(waitv_prep_errors), T(waitv_claimed_entry_still_counts),
	  T(cross_process_and_exit));
