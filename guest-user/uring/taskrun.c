/*
 * Completions that must be run in the submitter's context: links and drains reaped
 * only by peeking or by a registered eventfd, and the COOP_TASKRUN, TASKRUN_FLAG,
 * SINGLE_ISSUER and DEFER_TASKRUN setup flags.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/eventfd.h>

static struct io_uring_sqe *q_read(struct io_uring *r, int fd, void *buf, unsigned len,
				   uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, fd, buf, len, 0);
	sqe->flags = (uint8_t)flags;
	sqe->user_data = ud;
	return sqe;
}

/*
 * Collect the CQEs with user_data 1..n, but for those whose bit (1 << ud) is set in
 * `done` (reaped already: res[ud] is left alone), without io_uring_enter: peek, else
 * sleep 1 ms (or, with `efd` >= 0, wait up to 100 ms for the eventfd and read it), for
 * at most 5 s. order[] gets the user_data in arrival order, res[ud] the result.
 */
static int collect_quietly(struct io_uring *r, int efd, unsigned n, unsigned done, int *res,
			   uint64_t *order, const char *file, int line)
{
	unsigned want = 0;
	for (unsigned i = 1; i <= n; i++)
		if (!(done & (1u << i))) {
			res[i] = 12345;
			want++;
		}
	unsigned got = 0;
	long long end = ut_now_ms() + 5000;
	while (got < want) {
		struct io_uring_cqe *cqe;
		if (io_uring_peek_cqe(r, &cqe) == 0) {
			uint64_t ud = cqe->user_data;
			if (ud < 1 || ud > n || (done & (1u << ud)) || res[ud] != 12345)
				return ut_fail(file, line, "unexpected CQE user_data %llu",
					       (unsigned long long)ud);
			res[ud] = cqe->res;
			order[got++] = ud;
			io_uring_cqe_seen(r, cqe);
			continue;
		}
		if (ut_now_ms() > end)
			return ut_fail(file, line, "%u of %u CQEs after 5 s of %s", got, want,
				       efd >= 0 ? "eventfd reads" : "peeking");
		if (efd >= 0) {
			uint64_t v;
			if (ut_read_within(efd, &v, 8, 100) != 8 && errno != EAGAIN)
				return ut_fail(file, line, "eventfd read: %s", ut_errname(errno));
		} else {
			ut_sleep_ms(1);
		}
	}
	return UT_OK;
}

/*
 * A thread writes `byte` (1 byte) to `wfd` after 10 ms while collect_quietly(r, -1, n,
 * done) peeks; the write must have written 1 byte.
 */
static int write_and_collect(struct io_uring *r, int wfd, const char *byte, unsigned n,
			     unsigned done, int *res, uint64_t *order, const char *file, int line)
{
	struct ut_writer w;
	if (ut_writer_start(&w, wfd, byte, 1, 10) < 0)
		return ut_fail(file, line, "pthread_create failed");
	int t = collect_quietly(r, -1, n, done, res, order, file, line);
	ssize_t wr = ut_writer_join(&w);
	if (wr != 1)
		return ut_fail(file, line, "the writer wrote %zd, expected 1", wr);
	return t;
}
#define WRITE_AND_COLLECT(r, wfd, byte, n, done, res, order)                            \
	TRY(write_and_collect((r), (wfd), (byte), (n), (done), (res), (order), __FILE__, \
			      __LINE__))

struct want {
	uint64_t ud;
	int res;
};

/*
 * What collect_quietly gathered must be w[0..nw): first each res[w[i].ud] == w[i].res,
 * then the arrival order order[i] == w[i].ud.
 */
static int expect_collected(const int *res, const uint64_t *order, const struct want *w,
			    int nw, const char *file, int line)
{
	for (int i = 0; i < nw; i++)
		if (res[w[i].ud] != w[i].res)
			return ut_fail(file, line, "res[%llu] = %d (%s), expected %d (%s)",
				       (unsigned long long)w[i].ud, res[w[i].ud],
				       ut_resname(res[w[i].ud]), w[i].res, ut_resname(w[i].res));
	for (int i = 0; i < nw; i++)
		if (order[i] != w[i].ud)
			return ut_fail(file, line, "CQE %d of %d: user_data %llu, expected %llu", i,
				       nw, (unsigned long long)order[i],
				       (unsigned long long)w[i].ud);
	return UT_OK;
}
#define EXPECT_COLLECTED(res, order, ...)                                               \
	do {                                                                            \
		static const struct want _w[] = { __VA_ARGS__ };                        \
		TRY(expect_collected((res), (order), _w, (int)(sizeof _w / sizeof _w[0]), \
				     __FILE__, __LINE__));                              \
	} while (0)

/* head READ from a pipe written by a thread, then two NOPs: reaped without enter */
static int link_chain_quiet(int use_eventfd, const char *file, int line)
{
	struct io_uring r;
	int ret = ut_ring(&r, 8);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	int efd = -1;
	if (use_eventfd) {
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (efd < 0 || io_uring_register_eventfd(&r, efd) < 0)
			return ut_fail(file, line, "eventfd registration failed");
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ut_fail(file, line, "pipe");
	char buf[4];
	q_read(&r, p[0], buf, 2, 1, IOSQE_IO_LINK);
	ut_q_nop(&r, 2, IOSQE_IO_LINK);
	ut_q_nop(&r, 3, 0);
	if (io_uring_submit(&r) != 3)
		return ut_fail(file, line, "submit");
	struct ut_writer w;
	if (ut_writer_start(&w, p[1], "ok", 2, 20) < 0)
		return ut_fail(file, line, "pthread_create failed");
	int res[4];
	uint64_t order[3];
	int t = collect_quietly(&r, efd, 3, 0, res, order, file, line);
	ut_writer_join(&w);
	if (t != UT_OK)
		return t;
	static const struct want want[] = { { 1, 2 }, { 2, 0 }, { 3, 0 } };
	TRY(expect_collected(res, order, want, 3, file, line));
	close(p[0]);
	close(p[1]);
	if (efd >= 0)
		close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int link_by_peek(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	TRY(link_chain_quiet(0, __FILE__, __LINE__));
	return UT_OK;
}

static int link_by_eventfd(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	TRY(link_chain_quiet(1, __FILE__, __LINE__));
	return UT_OK;
}

static int drain_by_peek(void)
{
	/* two pending pipe reads, then a drained NOP: it waits for both, reaped by peek */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int a[2], b[2];
	CHECK_OK(pipe2(a, O_CLOEXEC));
	CHECK_OK(pipe2(b, O_CLOEXEC));
	char ba[4], bb[4];
	q_read(&r, a[0], ba, 4, 1, 0);
	q_read(&r, b[0], bb, 4, 2, 0);
	ut_q_nop(&r, 3, IOSQE_IO_DRAIN);
	ut_q_nop(&r, 4, 0);
	SUBMIT_NONE(&r, 4);
	CHECK_EQ(write(b[1], "b", 1), 1);
	ut_sleep_ms(20);
	/* only read 2 may be there */
	struct io_uring_cqe *cqe;
	CHECK_OK(io_uring_peek_cqe(&r, &cqe));
	CHECK_EQ(cqe->user_data, 2);
	CHECK_RES(cqe->res, 1);
	io_uring_cqe_seen(&r, cqe);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	int res[5];
	uint64_t order[3];
	/* ud 2 is done: collect 1, 3 and 4 */
	WRITE_AND_COLLECT(&r, a[1], "a", 4, 1u << 2, res, order);
	EXPECT_COLLECTED(res, order, { 1, 1 }, { 3, 0 }, { 4, 0 });
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int drain_on_member(void)
{
	/*
	 * IOSQE_IO_DRAIN on a link member other than the head drains the whole chain
	 * (Linux moves the flag to the head), and the request after the chain too.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char buf[4];
	q_read(&r, p[0], buf, 4, 1, 0);
	ut_q_nop(&r, 2, IOSQE_IO_LINK);
	ut_q_nop(&r, 3, IOSQE_IO_DRAIN);
	ut_q_nop(&r, 4, 0);
	SUBMIT_NONE(&r, 4);
	ut_sleep_ms(20);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	int res[5];
	uint64_t order[4];
	WRITE_AND_COLLECT(&r, p[1], "z", 4, 0, res, order);
	EXPECT_COLLECTED(res, order, { 1, 1 }, { 2, 0 }, { 3, 0 }, { 4, 0 });
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int setup_flags(unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	int fd = sys_setup(4, &p);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return -errno;
}

static int flag_rules(void)
{
	int coop = setup_flags(IORING_SETUP_COOP_TASKRUN);
	if (coop == -EINVAL) /* before Linux 5.19 */
		return UT_UNSUP;
	CHECK_RES(coop, 0);
	CHECK_RES(setup_flags(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG), 0);
	CHECK_RES(setup_flags(IORING_SETUP_TASKRUN_FLAG), -EINVAL);
	CHECK_RES(setup_flags(IORING_SETUP_SINGLE_ISSUER), 0);
	CHECK_RES(setup_flags(IORING_SETUP_DEFER_TASKRUN), -EINVAL);
	CHECK_RES(setup_flags(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER), 0);
	CHECK_RES(setup_flags(IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
			      IORING_SETUP_TASKRUN_FLAG),
		  0);
	/* the task-run flags make no sense with SQPOLL: -EINVAL */
	CHECK_RES(setup_flags(IORING_SETUP_SQPOLL | IORING_SETUP_COOP_TASKRUN), -EINVAL);
	CHECK_RES(setup_flags(IORING_SETUP_SQPOLL | IORING_SETUP_COOP_TASKRUN |
			      IORING_SETUP_TASKRUN_FLAG),
		  -EINVAL);
	CHECK_RES(setup_flags(IORING_SETUP_SQPOLL | IORING_SETUP_DEFER_TASKRUN |
			      IORING_SETUP_SINGLE_ISSUER),
		  -EINVAL);
	return UT_OK;
}

static int coop_taskrun_completes(void)
{
	/* COOP_TASKRUN|TASKRUN_FLAG: a pipe read woken by a thread completes on GETEVENTS */
	GATE(IORING_OP_READ);
	struct io_uring r;
	int ret = io_uring_queue_init(4, &r, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char buf[4];
	q_read(&r, p[0], buf, 3, 1, 0);
	SUBMIT_NONE(&r, 1);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, p[1], "abc", 3, 10));
	struct io_uring_cqe c;
	int wret = ut_wait_cqe_ms(&r, &c, 5000);
	CHECK_EQ(ut_writer_join(&w), 3);
	CHECK_OK(wret);
	CHECK_EQ(c.user_data, 1);
	CHECK_RES(c.res, 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	CHECK_EQ(*r.sq.kflags & IORING_SQ_TASKRUN, 0);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* a 4-entry rring with setup `flags` (rring_init's result: 0 or -errno) */
static int rring_flags(struct rring *r, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	return rring_init(r, 4, &p);
}

static int defer_taskrun_needs_enter(void)
{
	/*
	 * DEFER_TASKRUN|TASKRUN_FLAG: a pipe read woken by another thread's write is not
	 * in the CQ (peek) until the submitter enters with GETEVENTS; meanwhile
	 * IORING_SQ_TASKRUN is set in the SQ flags, and the enter clears it.
	 */
	GATE(IORING_OP_READ);
	struct rring r;
	int ret = rring_flags(&r, IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_TASKRUN_FLAG);
	if (ret == -EINVAL) /* before Linux 6.1 */
		return UT_UNSUP;
	CHECK_OK(ret);
	int pp[2];
	CHECK_OK(pipe2(pp, O_CLOEXEC));
	char buf[4];
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = IORING_OP_READ;
	sqe.fd = pp[0];
	sqe.addr = (uintptr_t)buf;
	sqe.len = 2;
	sqe.user_data = 0x77;
	rring_push(&r, &sqe);
	CHECK_EQ(sys_enter(r.fd, 1, 0, 0, NULL, 0), 1);
	CHECK_EQ(*r.sq_flags & IORING_SQ_TASKRUN, 0);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, pp[1], "hi", 2, 0));
	CHECK_EQ(ut_writer_join(&w), 2);
	ut_sleep_ms(50);
	unsigned fl = __atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE);
	struct io_uring_cqe c;
	CHECK_EQ(rring_pop(&r, &c), 0);
	CHECK(fl & IORING_SQ_TASKRUN);
	CHECK_EQ(ut_enter_ms(r.fd, 0, 1, 5000), 0);
	CHECK_EQ(__atomic_load_n(r.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN, 0);
	RRING_POP_UD(&r, 0x77, &c);
	CHECK_RES(c.res, 2);
	CHECK(memcmp(buf, "hi", 2) == 0);
	close(pp[0]);
	close(pp[1]);
	rring_exit(&r);
	return UT_OK;
}

struct enter_args {
	int fd;
	unsigned to_submit, min_complete, flags;
	int ret, err;
};

static void *enter_thread(void *arg)
{
	struct enter_args *a = arg;
	errno = 0;
	a->ret = sys_enter(a->fd, a->to_submit, a->min_complete, a->flags, NULL, 0);
	a->err = errno;
	return NULL;
}

static int enter_from_thread(int fd, unsigned to_submit, unsigned min_complete,
			     unsigned flags, int *err)
{
	struct enter_args a = { fd, to_submit, min_complete, flags, -2, 0 };
	pthread_t th;
	if (pthread_create(&th, NULL, enter_thread, &a) != 0)
		return -3;
	pthread_join(th, NULL);
	*err = a.err;
	return a.ret;
}

static int single_issuer_other_thread(void)
{
	/* another thread may not submit to a SINGLE_ISSUER ring: -EEXIST, SQE left queued */
	GATE(IORING_OP_NOP);
	struct rring r;
	int ret = rring_flags(&r, IORING_SETUP_SINGLE_ISSUER);
	if (ret == -EINVAL) /* before Linux 6.0 */
		return UT_UNSUP;
	CHECK_OK(ret);
	struct io_uring_sqe sqe = ut_nop_sqe(0x78, 0);
	rring_push(&r, &sqe);
	int err = 0;
	ret = enter_from_thread(r.fd, 1, 0, 0, &err);
	CHECK_EQ(ret, -1);
	CHECK_EQ(err, EEXIST);
	CHECK_EQ(*r.sq_head, 0);
	/* waiting (no submission) from another thread is allowed on a plain ring */
	ret = enter_from_thread(r.fd, 0, 0, IORING_ENTER_GETEVENTS, &err);
	CHECK_EQ(ret, 0);
	/* the owner submits it */
	CHECK_EQ(ut_enter_ms(r.fd, 1, 1, 5000), 1);
	struct io_uring_cqe c;
	RRING_POP_UD(&r, 0x78, &c);
	CHECK_RES(c.res, 0);
	rring_exit(&r);
	return UT_OK;
}

static int defer_taskrun_other_waiter(void)
{
	/* DEFER_TASKRUN: only the submitter may wait for (and so run) completions: -EEXIST */
	GATE(IORING_OP_NOP);
	struct rring r;
	int ret = rring_flags(&r, IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	int err = 0;
	ret = enter_from_thread(r.fd, 0, 0, IORING_ENTER_GETEVENTS, &err);
	ut_info("GETEVENTS from another thread on a DEFER_TASKRUN ring: %d %s", ret,
		ret < 0 ? ut_errname(err) : "");
	CHECK_EQ(ret, -1);
	CHECK_EQ(err, EEXIST);
	rring_exit(&r);
	return UT_OK;
}

static int drain_after_skip_success(void)
{
	/*
	 * Once a ring has seen IOSQE_CQE_SKIP_SUCCESS, Linux refuses IOSQE_IO_DRAIN on it
	 * with -EOPNOTSUPP (a drain cannot count CQEs that were never posted).
	 */
	GATE(IORING_OP_NOP);
	if (!(ut_features & IORING_FEAT_CQE_SKIP))
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	ut_q_nop(&r, 1, IOSQE_IO_DRAIN);
	uint64_t ud;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), 0);
	ut_q_nop(&r, 2, IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c;
	WAIT_UD(&r, 3, 5000, &c);
	ut_q_nop(&r, 4, IOSQE_IO_DRAIN);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -EOPNOTSUPP);
	CHECK_EQ(ud, 4);
	/* in one submission: the skip first, then the drain */
	struct io_uring r2;
	CHECK_OK(ut_ring(&r2, 8));
	ut_q_nop(&r2, 5, IOSQE_CQE_SKIP_SUCCESS);
	ut_q_nop(&r2, 6, IOSQE_IO_DRAIN);
	CHECK_EQ(io_uring_submit(&r2), 2);
	WAIT_UD(&r2, 6, 5000, &c);
	CHECK_RES(c.res, -EOPNOTSUPP);
	io_uring_queue_exit(&r2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(taskrun, T(link_by_peek), T(link_by_eventfd), T(drain_by_peek), T(drain_on_member),
	  T(flag_rules), T(coop_taskrun_completes), T(defer_taskrun_needs_enter),
	  T(single_issuer_other_thread), T(defer_taskrun_other_waiter),
	  T(drain_after_skip_success));
