/*
 * Failure paths of links and batches: IOSQE_CQE_SKIP_SUCCESS inside a failed chain, a bad
 * SQ array index in the middle of a batch (and of a chain), to_submit with GETEVENTS,
 * and a signal let through by the enter's sigmask.
 */
#include "ut.h"

#include <signal.h>

static struct io_uring_sqe *q_badread(struct io_uring *r, uint64_t ud, unsigned flags)
{
	static char buf[8];
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, 1000, buf, sizeof buf, 0); /* fd 1000 is not open */
	sqe->flags = (uint8_t)flags;
	sqe->user_data = ud;
	return sqe;
}

/* Submit what is queued (n SQEs), then collect every CQE that arrives within 100 ms
 * after the marker NOP 0xff (queued last, not counted): out[] in order, returns count. */
static int drain_all(struct io_uring *r, int n, struct io_uring_cqe *out, int max,
		     const char *file, int line)
{
	ut_q_nop(r, 0xff, 0);
	int ret = io_uring_submit(r);
	if (ret != n + 1)
		return ut_fail(file, line, "io_uring_submit = %d, expected %d", ret, n + 1);
	int got = 0, marker = 0;
	long long end = ut_now_ms() + 5000;
	while (ut_now_ms() < end) {
		struct io_uring_cqe c;
		if (ut_wait_cqe_ms(r, &c, marker ? 100 : 1000) < 0) {
			if (marker)
				break;
			continue;
		}
		if (c.user_data == 0xff) {
			marker = 1;
			continue;
		}
		if (got == max)
			return ut_fail(file, line, "more than %d CQEs", max);
		out[got++] = c;
	}
	if (!marker)
		return ut_fail(file, line, "the marker NOP never completed");
	return got;
}

/* Queue `n` members (LINK on all but the last): member `bad` (0-based) is a READ of a
 * bad fd, the others NOPs, flags[i] added; user_data i + 1. Return the CQEs. */
static int chain(struct io_uring *r, int n, int bad, const unsigned *flags,
		 struct io_uring_cqe *c, const char *file, int line)
{
	for (int i = 0; i < n; i++) {
		unsigned f = flags[i] | (i < n - 1 ? IOSQE_IO_LINK : 0);
		if (i == bad)
			q_badread(r, i + 1, f);
		else
			ut_q_nop(r, i + 1, f);
	}
	return drain_all(r, n, c, 8, file, line);
}

/* the CQE_SKIP_SUCCESS tests' gates (NOP, READ, the feature), then their 16-entry ring */
static int skip_ring(struct io_uring *r, const char *file, int line)
{
	TRY(ut_gate(IORING_OP_NOP, file, line));
	TRY(ut_gate(IORING_OP_READ, file, line));
	if (!(ut_features & IORING_FEAT_CQE_SKIP))
		return UT_UNSUP;
	int ret = ut_ring(r, 16);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	return UT_OK;
}
#define SKIP_RING(r) TRY(skip_ring((r), __FILE__, __LINE__))

struct want {
	uint64_t ud;
	int res;
};

/* `n` (a count from drain_all, or its error) CQEs c[] must be w[0..nw), in that order */
static int expect_cqes(int n, const struct io_uring_cqe *c, const struct want *w, int nw,
		       const char *file, int line)
{
	if (n < 0)
		return n;
	if (n != nw)
		return ut_fail(file, line, "%d CQEs, expected %d", n, nw);
	for (int i = 0; i < nw; i++) {
		if (c[i].user_data != w[i].ud)
			return ut_fail(file, line, "CQE %d: user_data %llu, expected %llu", i,
				       (unsigned long long)c[i].user_data,
				       (unsigned long long)w[i].ud);
		if (c[i].res != w[i].res)
			return ut_fail(file, line, "CQE %d: res %d (%s), expected %d (%s)", i,
				       c[i].res, ut_resname(c[i].res), w[i].res,
				       ut_resname(w[i].res));
	}
	return UT_OK;
}
#define EXPECT_CQES(n, c, ...)                                                          \
	do {                                                                            \
		static const struct want _w[] = { __VA_ARGS__ };                        \
		TRY(expect_cqes((n), (c), _w, (int)(sizeof _w / sizeof _w[0]), __FILE__, \
				__LINE__));                                             \
	} while (0)

static int skip_success_failed_link(void)
{
	/*
	 * NOP(skip) -> READ of a bad fd -> NOP(skip) -> NOP: the head succeeds and is
	 * skipped; the READ posts -EBADF; the cancelled followers post -ECANCELED, their
	 * own CQE_SKIP_SUCCESS notwithstanding (it skips successes only).
	 */
	struct io_uring r;
	SKIP_RING(&r);
	const unsigned S = IOSQE_CQE_SKIP_SUCCESS;
	struct io_uring_cqe c[8];
	int n = chain(&r, 4, 1, (const unsigned[]){ S, 0, S, 0 }, c, __FILE__, __LINE__);
	EXPECT_CQES(n, c, { 2, -EBADF }, { 3, -ECANCELED }, { 4, -ECANCELED });
	/* the same with the bad READ at the head */
	n = chain(&r, 3, 0, (const unsigned[]){ 0, S, S }, c, __FILE__, __LINE__);
	EXPECT_CQES(n, c, { 1, -EBADF }, { 2, -ECANCELED }, { 3, -ECANCELED });
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int skip_flag_on_failed_member(void)
{
	/*
	 * Linux: when the member that fails carries CQE_SKIP_SUCCESS, its own error CQE is
	 * posted but the followers' -ECANCELED CQEs are all skipped, whatever their flags.
	 */
	struct io_uring r;
	SKIP_RING(&r);
	const unsigned S = IOSQE_CQE_SKIP_SUCCESS;
	struct io_uring_cqe c[8];
	int n = chain(&r, 4, 1, (const unsigned[]){ 0, S, 0, 0 }, c, __FILE__, __LINE__);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		ut_info("cqe %d: ud %llu res %d", i, (unsigned long long)c[i].user_data, c[i].res);
	EXPECT_CQES(n, c, { 1, 0 }, { 2, -EBADF });
	n = chain(&r, 3, 0, (const unsigned[]){ S, 0, 0 }, c, __FILE__, __LINE__);
	EXPECT_CQES(n, c, { 1, -EBADF });
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int skip_success_hardlink(void)
{
	/* a hard link goes on past the failure; successes with the flag stay skipped */
	struct io_uring r;
	SKIP_RING(&r);
	ut_q_nop(&r, 1, IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS);
	q_badread(&r, 2, IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r, 3, IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r, 4, 0);
	struct io_uring_cqe c[8];
	int n = drain_all(&r, 4, c, 8, __FILE__, __LINE__);
	EXPECT_CQES(n, c, { 2, -EBADF }, { 4, 0 });
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_index_stops_batch(void)
{
	/*
	 * Linux 6.x: a bad SQ array index ends the batch there. The enter returns how many
	 * it submitted before it; the bad entry is consumed and counted in `dropped`; the
	 * entries after it wait for the next enter.
	 */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 8, NULL));
	for (int i = 0; i < 5; i++)
		r.sqes[i] = ut_nop_sqe(i + 1, 0);
	r.sq_array[0] = 0;
	r.sq_array[1] = 1;
	r.sq_array[2] = 8; /* == sq_entries */
	r.sq_array[3] = 3;
	r.sq_array[4] = 4;
	__atomic_store_n(r.sq_tail, 5, __ATOMIC_RELEASE);
	int ret = sys_enter(r.fd, 5, 0, 0, NULL, 0);
	ut_info("enter(5) returned %d, sq head %u, dropped %u", ret, *r.sq_head, *r.sq_dropped);
	CHECK_EQ(ret, 2);
	CHECK_EQ(*r.sq_head, 3);
	CHECK_EQ(*r.sq_dropped, 1);
	ret = sys_enter(r.fd, 2, 0, 0, NULL, 0);
	CHECK_EQ(ret, 2);
	CHECK_EQ(*r.sq_head, 5);
	struct io_uring_cqe c;
	for (unsigned ud = 1; ud <= 5; ud++) {
		if (ud == 3)
			continue;
		RRING_POP_UD(&r, ud, &c);
	}
	CHECK_EQ(rring_pop(&r, &c), 0);
	rring_exit(&r);
	return UT_OK;
}

static int bad_index_first(void)
{
	/* the very first entry is bad: enter returns 0 (Linux 6.x), head moves past it */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	r.sqes[1] = ut_nop_sqe(2, 0);
	r.sq_array[0] = 1000;
	r.sq_array[1] = 1;
	__atomic_store_n(r.sq_tail, 2, __ATOMIC_RELEASE);
	int ret = sys_enter(r.fd, 2, 0, 0, NULL, 0);
	ut_info("enter(2) with a bad first index: %d (%s), sq head %u, dropped %u", ret,
		ret < 0 ? ut_errname(errno) : "-", *r.sq_head, *r.sq_dropped);
	CHECK_EQ(ret, 0);
	CHECK_EQ(*r.sq_head, 1);
	CHECK_EQ(*r.sq_dropped, 1);
	CHECK_EQ(ut_enter_ms(r.fd, 1, 1, 5000), 1);
	struct io_uring_cqe c;
	RRING_POP_UD(&r, 2, &c);
	rring_exit(&r);
	return UT_OK;
}

static int bad_index_in_chain(void)
{
	/*
	 * NOP(LINK), bad index, NOP: the batch stops with the chain still open; Linux
	 * queues the unterminated chain as it stands, so the head runs and succeeds.
	 */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 4, NULL));
	r.sqes[0] = ut_nop_sqe(1, IOSQE_IO_LINK);
	r.sqes[2] = ut_nop_sqe(3, 0);
	r.sq_array[0] = 0;
	r.sq_array[1] = 4;
	r.sq_array[2] = 2;
	__atomic_store_n(r.sq_tail, 3, __ATOMIC_RELEASE);
	CHECK_EQ(sys_enter(r.fd, 3, 0, 0, NULL, 0), 1);
	CHECK_EQ(*r.sq_head, 2);
	CHECK_EQ(*r.sq_dropped, 1);
	/* (Linux runs the cut chain from a worker: its CQE may come after enter returns) */
	struct io_uring_cqe c;
	CHECK_EQ(ut_enter_ms(r.fd, 0, 1, 5000), 0);
	RRING_POP_UD(&r, 1, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(ut_enter_ms(r.fd, 1, 1, 5000), 1);
	RRING_POP_UD(&r, 3, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(rring_pop(&r, &c), 0);
	rring_exit(&r);
	return UT_OK;
}

static int to_submit_more_getevents(void)
{
	/* to_submit 16 with 3 queued and min_complete 3: returns 3, with 3 CQEs ready */
	GATE(IORING_OP_NOP);
	struct rring r;
	CHECK_OK(rring_init(&r, 8, NULL));
	for (int i = 0; i < 3; i++) {
		struct io_uring_sqe s = ut_nop_sqe(i + 1, 0);
		rring_push(&r, &s);
	}
	CHECK_EQ(ut_enter_ms(r.fd, 16, 3, 5000), 3);
	CHECK_EQ(*r.cq_tail - *r.cq_head, 3);
	/* nothing queued, min_complete 0: returns 0 at once */
	CHECK_EQ(sys_enter(r.fd, 16, 0, IORING_ENTER_GETEVENTS, NULL, 0), 0);
	struct io_uring_cqe c;
	for (unsigned ud = 1; ud <= 3; ud++)
		RRING_POP_UD(&r, ud, &c);
	rring_exit(&r);
	return UT_OK;
}

static volatile sig_atomic_t sig_seen;
static void on_usr1(int sig)
{
	(void)sig;
	sig_seen++;
}

/* with SIGUSR1 blocked and pending, enter with `arg` (a sigmask letting it through) */
static int sigmask_lets_signal_in(int ext, const char *file, int line)
{
	struct io_uring r;
	int ret = ut_ring(&r, 4);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, &old);
	sigset_t block, prev, open_mask, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &prev);
	sig_seen = 0;
	raise(SIGUSR1);
	int fail = 0;
	char why[160] = "";
	if (sig_seen != 0) {
		fail = 1;
		snprintf(why, sizeof why, "the handler ran while SIGUSR1 was blocked");
	}
	sigemptyset(&open_mask);
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	/* a 5 s TIMEOUT bounds the wait should the signal never get in */
	io_uring_prep_timeout(io_uring_get_sqe(&r), &ts, 0, 0);
	if (io_uring_submit(&r) != 1)
		return ut_fail(file, line, "submit of the TIMEOUT failed");
	struct io_uring_getevents_arg ga;
	memset(&ga, 0, sizeof ga);
	ga.sigmask = (uintptr_t)&open_mask;
	ga.sigmask_sz = _NSIG / 8;
	ga.ts = (uintptr_t)&ts;
	long long t0 = ut_now_ms();
	errno = 0;
	if (ext)
		ret = sys_enter(r.ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				&ga, sizeof ga);
	else
		ret = sys_enter(r.ring_fd, 0, 1, IORING_ENTER_GETEVENTS, &open_mask, _NSIG / 8);
	int e = errno;
	int seen = sig_seen; /* read before anything else can run a handler */
	long long dt = ut_now_ms() - t0;
	sigprocmask(SIG_SETMASK, NULL, &now);
	int still_blocked = sigismember(&now, SIGUSR1);
	sigprocmask(SIG_SETMASK, &prev, NULL);
	sigaction(SIGUSR1, &old, NULL);
	io_uring_queue_exit(&r);
	if (fail)
		return ut_fail(file, line, "%s", why);
	if (ret != -1 || e != EINTR)
		return ut_fail(file, line, "enter returned %d (%s), expected -1 EINTR", ret,
			       ut_errname(e));
	if (seen != 1)
		return ut_fail(file, line, "handler ran %d times before enter returned", seen);
	if (dt > 2000)
		return ut_fail(file, line, "enter took %lld ms", dt);
	if (!still_blocked)
		return ut_fail(file, line, "the old signal mask was not restored");
	return UT_OK;
}

static int sigmask_eintr(void)
{
	TRY(sigmask_lets_signal_in(0, __FILE__, __LINE__));
	if (!(ut_features & IORING_FEAT_EXT_ARG))
		return UT_OK;
	TRY(sigmask_lets_signal_in(1, __FILE__, __LINE__));
	return UT_OK;
}

UT_FAMILY(linkfail, T(skip_success_failed_link), T(skip_flag_on_failed_member),
	  T(skip_success_hardlink), T(bad_index_stops_batch), T(bad_index_first),
	  T(bad_index_in_chain), T(to_submit_more_getevents), T(sigmask_eintr));
