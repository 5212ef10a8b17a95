/*
 * IORING_OP_ASYNC_CANCEL keys and flags (ALL, FD, FD_FIXED, ANY, USERDATA, OP) and
 * IORING_REGISTER_SYNC_CANCEL, against pending pipe reads and polls.
 */
#include "ut.h"

#include <fcntl.h>
#include <poll.h>

#ifndef IORING_ASYNC_CANCEL_USERDATA
#define IORING_ASYNC_CANCEL_USERDATA (1U << 4)
#endif
#ifndef IORING_ASYNC_CANCEL_OP
#define IORING_ASYNC_CANCEL_OP (1U << 5)
#endif
#define REGISTER_SYNC_CANCEL 24

static char bufs[16][8];

static void q_read(struct io_uring *r, int fd, uint64_t ud, int fixed)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, fd, bufs[ud & 15], 8, 0);
	if (fixed)
		sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = ud;
}

static void q_poll(struct io_uring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	sqe->user_data = ud;
}

static struct io_uring_sqe *q_cancel(struct io_uring *r, uint64_t key, int fd, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_cancel64(sqe, key, (int)flags);
	sqe->fd = fd;
	sqe->user_data = 0xc0;
	return sqe;
}

/*
 * Submit the queued cancel (user_data 0xc0) and collect CQEs for 100 ms after it:
 * returns the cancel's res; `cancelled` counts the -ECANCELED CQEs, each of whose
 * user_data is OR-ed into `which` as 1 << (ud & 63).
 */
static int run_cancel(struct io_uring *r, int *cres, int *cancelled, uint64_t *which,
		      const char *file, int line)
{
	int ret = io_uring_submit(r);
	if (ret != 1)
		return ut_fail(file, line, "io_uring_submit = %d, expected 1", ret);
	*cres = 12345;
	*cancelled = 0;
	*which = 0;
	for (;;) {
		struct io_uring_cqe c;
		if (ut_wait_cqe_ms(r, &c, *cres == 12345 ? 5000 : 100) < 0)
			break;
		if (c.user_data == 0xc0) {
			*cres = c.res;
		} else if (c.res == -ECANCELED) {
			(*cancelled)++;
			*which |= 1ull << (c.user_data & 63);
		} else {
			return ut_fail(file, line, "CQE user_data 0x%llx res %d (%s)",
				       (unsigned long long)c.user_data, c.res, ut_resname(c.res));
		}
	}
	if (*cres == 12345)
		return ut_fail(file, line, "the cancel never completed");
	return UT_OK;
}
#define RUN_CANCEL(r, cres, n, which)                                                   \
	TRY(run_cancel((r), (cres), (n), (which), __FILE__, __LINE__))

/*
 * Submit the queued cancel (RUN_CANCEL), then check its res, the number of -ECANCELED
 * CQEs (unless `want_n` is ANY_N) and their user_data mask (unless `want_which` is
 * ANY_WHICH), in that order.
 */
#define ANY_N (-1)
#define ANY_WHICH (~0ull)
static int expect_cancel(struct io_uring *r, int want_res, int want_n, uint64_t want_which,
			 const char *file, int line)
{
	int cres, n;
	uint64_t which;
	TRY(run_cancel(r, &cres, &n, &which, file, line));
	if (cres != want_res)
		return ut_fail(file, line, "cancel res %d (%s), expected %d (%s)", cres,
			       ut_resname(cres), want_res, ut_resname(want_res));
	if (want_n != ANY_N && n != want_n)
		return ut_fail(file, line, "%d requests cancelled, expected %d", n, want_n);
	if (want_which != ANY_WHICH && which != want_which)
		return ut_fail(file, line, "cancelled mask 0x%llx, expected 0x%llx",
			       (unsigned long long)which, (unsigned long long)want_which);
	return UT_OK;
}
#define CANCEL_EXPECT(r, res, n, which)                                                 \
	TRY(expect_cancel((r), (res), (n), (which), __FILE__, __LINE__))

struct env {
	struct io_uring r;
	int a[2], b[2];
};

static int env_init(struct env *e)
{
	int ret = ut_ring(&e->r, 16);
	if (ret < 0)
		return ret;
	if (pipe2(e->a, O_CLOEXEC) < 0 || pipe2(e->b, O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static void env_exit(struct env *e)
{
	close(e->a[0]);
	close(e->a[1]);
	close(e->b[0]);
	close(e->b[1]);
	io_uring_queue_exit(&e->r);
}

/* the gates of the tests that cancel reads (and polls, with `poll`), then env_init */
static int env_start(struct env *e, int poll, const char *file, int line)
{
	TRY(ut_gate(IORING_OP_ASYNC_CANCEL, file, line));
	TRY(ut_gate(IORING_OP_READ, file, line));
	if (poll)
		TRY(ut_gate(IORING_OP_POLL_ADD, file, line));
	int ret = env_init(e);
	if (ret < 0)
		return ut_fail(file, line, "env_init: %s", ut_errname(-ret));
	return UT_OK;
}
#define ENV_START(e, poll) TRY(env_start((e), (poll), __FILE__, __LINE__))

static int cancel_all_userdata(void)
{
	/* three reads share user_data 7: CANCEL_ALL cancels them all and counts them */
	struct env e;
	ENV_START(&e, 1);
	q_read(&e.r, e.a[0], 7, 0);
	q_read(&e.r, e.a[0], 7, 0);
	q_read(&e.r, e.b[0], 7, 0);
	q_poll(&e.r, e.a[0], 8);
	SUBMIT_NONE(&e.r, 4);
	q_cancel(&e.r, 7, -1, IORING_ASYNC_CANCEL_ALL);
	CANCEL_EXPECT(&e.r, 3, 3, ANY_WHICH);
	/* the poll is still there: a plain cancel finds it */
	q_cancel(&e.r, 8, -1, 0);
	CANCEL_EXPECT(&e.r, 0, 1, 1ull << 8);
	/* CANCEL_ALL that matches nothing: 0, not -ENOENT */
	int cres, n;
	uint64_t which;
	q_cancel(&e.r, 7, -1, IORING_ASYNC_CANCEL_ALL);
	RUN_CANCEL(&e.r, &cres, &n, &which);
	ut_info("CANCEL_ALL matching nothing: %d", cres);
	CHECK_RES(cres, 0);
	CHECK_EQ(n, 0);
	env_exit(&e);
	return UT_OK;
}

static int cancel_by_fd(void)
{
	struct env e;
	ENV_START(&e, 1);
	q_read(&e.r, e.a[0], 1, 0);
	q_read(&e.r, e.a[0], 2, 0);
	q_poll(&e.r, e.a[0], 3);
	q_read(&e.r, e.b[0], 4, 0);
	SUBMIT_NONE(&e.r, 4);
	/* FD|ALL: everything on pipe a, nothing on b */
	q_cancel(&e.r, 0, e.a[0], IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL);
	CANCEL_EXPECT(&e.r, 3, ANY_N, (1u << 1) | (1u << 2) | (1u << 3));
	/* FD alone: the one on b, res 0; then nothing is left: -ENOENT */
	q_cancel(&e.r, 0, e.b[0], IORING_ASYNC_CANCEL_FD);
	CANCEL_EXPECT(&e.r, 0, ANY_N, 1u << 4);
	q_cancel(&e.r, 0, e.b[0], IORING_ASYNC_CANCEL_FD);
	CANCEL_EXPECT(&e.r, -ENOENT, ANY_N, ANY_WHICH);
	/* the key is the fd: user_data is ignored */
	q_read(&e.r, e.a[0], 5, 0);
	SUBMIT_NONE(&e.r, 1);
	q_cancel(&e.r, 0xdead, e.a[0], IORING_ASYNC_CANCEL_FD);
	CANCEL_EXPECT(&e.r, 0, ANY_N, 1u << 5);
	/* an fd that is not open */
	q_cancel(&e.r, 0, 999, IORING_ASYNC_CANCEL_FD);
	CANCEL_EXPECT(&e.r, -EBADF, ANY_N, ANY_WHICH);
	env_exit(&e);
	return UT_OK;
}

static int cancel_by_fixed_fd(void)
{
	/*
	 * FD|FD_FIXED keys on the registered file at that index. Linux matches the file
	 * itself, so a plain read of the same pipe is cancelled too.
	 */
	struct env e;
	ENV_START(&e, 0);
	int files[2] = { e.b[0], e.a[0] };
	CHECK_OK(io_uring_register_files(&e.r, files, 2));
	q_read(&e.r, 1, 1, 1); /* fixed index 1: pipe a */
	q_read(&e.r, 1, 2, 1);
	q_read(&e.r, e.a[0], 3, 0);
	q_read(&e.r, 0, 4, 1); /* fixed index 0: pipe b */
	SUBMIT_NONE(&e.r, 4);
	int cres, n;
	uint64_t which;
	q_cancel(&e.r, 0, 1,
		 IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL);
	RUN_CANCEL(&e.r, &cres, &n, &which);
	ut_info("FD_FIXED|ALL on index 1: %d, cancelled mask 0x%llx", cres,
		(unsigned long long)which);
	CHECK_RES(cres, 3);
	CHECK_EQ(which, (1u << 1) | (1u << 2) | (1u << 3));
	/* an index past the table: -EBADF */
	q_cancel(&e.r, 0, 5, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED);
	CANCEL_EXPECT(&e.r, -EBADF, 0, ANY_WHICH);
	q_cancel(&e.r, 0, 0, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED);
	CANCEL_EXPECT(&e.r, 0, ANY_N, 1u << 4);
	env_exit(&e);
	return UT_OK;
}

static int cancel_any(void)
{
	struct env e;
	ENV_START(&e, 1);
	q_read(&e.r, e.a[0], 1, 0);
	q_poll(&e.r, e.b[0], 2);
	q_read(&e.r, e.b[0], 3, 0);
	SUBMIT_NONE(&e.r, 3);
	/* Linux: ANY implies ALL; it cancels every pending request and counts them */
	q_cancel(&e.r, 0, -1, IORING_ASYNC_CANCEL_ANY);
	CANCEL_EXPECT(&e.r, 3, 3, (1u << 1) | (1u << 2) | (1u << 3));
	/* nothing left: 0, not -ENOENT */
	q_cancel(&e.r, 0, -1, IORING_ASYNC_CANCEL_ANY);
	CANCEL_EXPECT(&e.r, 0, ANY_N, ANY_WHICH);
	q_read(&e.r, e.a[0], 4, 0);
	SUBMIT_NONE(&e.r, 1);
	q_cancel(&e.r, 0, -1, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
	CANCEL_EXPECT(&e.r, 1, ANY_N, 1u << 4);
	env_exit(&e);
	return UT_OK;
}

static int bad_flags(void)
{
	GATE(IORING_OP_ASYNC_CANCEL);
	struct env e;
	CHECK_OK(env_init(&e));
	q_cancel(&e.r, 1, -1, 1u << 30);
	CANCEL_EXPECT(&e.r, -EINVAL, ANY_N, ANY_WHICH);
	/* ANY with a key (FD) makes no sense: -EINVAL */
	int cres, n;
	uint64_t which;
	q_cancel(&e.r, 0, e.a[0], IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_FD);
	RUN_CANCEL(&e.r, &cres, &n, &which);
	ut_info("ANY|FD: %d", cres);
	CHECK_RES(cres, -EINVAL);
	env_exit(&e);
	return UT_OK;
}

static int cancel_by_opcode(void)
{
	/* IORING_ASYNC_CANCEL_OP (Linux 6.6): key on sqe->len as an opcode */
	struct env e;
	ENV_START(&e, 1);
	int cres, n;
	uint64_t which;
	q_cancel(&e.r, 0, -1, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_ALL)->len =
		IORING_OP_POLL_ADD;
	RUN_CANCEL(&e.r, &cres, &n, &which);
	if (cres == -EINVAL) { /* before Linux 6.6 */
		env_exit(&e);
		return UT_UNSUP;
	}
	CHECK_RES(cres, 0);
	q_read(&e.r, e.a[0], 1, 0);
	q_poll(&e.r, e.a[0], 2);
	q_poll(&e.r, e.b[0], 3);
	q_read(&e.r, e.b[0], 4, 0);
	SUBMIT_NONE(&e.r, 4);
	q_cancel(&e.r, 0, -1, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_ALL)->len =
		IORING_OP_POLL_ADD;
	CANCEL_EXPECT(&e.r, 2, ANY_N, (1u << 2) | (1u << 3));
	/* OP and USERDATA together: both must match */
	q_cancel(&e.r, 4, -1, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_USERDATA)->len =
		IORING_OP_POLL_ADD;
	CANCEL_EXPECT(&e.r, -ENOENT, ANY_N, ANY_WHICH);
	q_cancel(&e.r, 4, -1, IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_USERDATA)->len =
		IORING_OP_READ;
	CANCEL_EXPECT(&e.r, 0, ANY_N, 1u << 4);
	/* OP and FD together */
	q_cancel(&e.r, 0, e.a[0], IORING_ASYNC_CANCEL_OP | IORING_ASYNC_CANCEL_FD)->len =
		IORING_OP_READ;
	CANCEL_EXPECT(&e.r, 0, ANY_N, 1u << 1);
	env_exit(&e);
	return UT_OK;
}

static int sync_cancel_reg(struct io_uring *r, uint64_t addr, int fd, unsigned flags,
			   uint64_t pad0)
{
	struct io_uring_sync_cancel_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.addr = addr;
	reg.fd = fd;
	reg.flags = flags;
	reg.timeout.tv_sec = -1;
	reg.timeout.tv_nsec = -1;
	reg.pad[1] = pad0;
	int ret = sys_register(r->ring_fd, REGISTER_SYNC_CANCEL, &reg, 1);
	return ret < 0 ? -errno : ret;
}

static int sync_cancel(void)
{
	/*
	 * IORING_REGISTER_SYNC_CANCEL (Linux 6.0): the cancel happens before the register
	 * call returns, and the target's -ECANCELED CQE is already in the CQ.
	 */
	GATE(IORING_OP_READ);
	struct env e;
	CHECK_OK(env_init(&e));
	int ret = sync_cancel_reg(&e.r, 0xdead, -1, 0, 0);
	if (ret == -EINVAL) { /* before Linux 6.0 */
		env_exit(&e);
		return UT_UNSUP;
	}
	CHECK_RES(ret, -ENOENT);
	q_read(&e.r, e.a[0], 1, 0);
	q_read(&e.r, e.a[0], 2, 0);
	q_read(&e.r, e.b[0], 3, 0);
	SUBMIT_NONE(&e.r, 3);
	CHECK_RES(sync_cancel_reg(&e.r, 2, -1, 0, 0), 0);
	CHECK_EQ(io_uring_cq_ready(&e.r), 1);
	struct io_uring_cqe c;
	WAIT_UD(&e.r, 2, 1000, &c);
	CHECK_RES(c.res, -ECANCELED);
	/* reserved fields must be zero */
	CHECK_RES(sync_cancel_reg(&e.r, 1, -1, 0, 1), -EINVAL);
	/* FD|ALL: counts what it cancelled */
	ret = sync_cancel_reg(&e.r, 0, e.a[0], IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL, 0);
	ut_info("sync cancel FD|ALL with one match: %d", ret);
	CHECK_RES(ret, 1);
	WAIT_UD(&e.r, 1, 1000, &c);
	CHECK_RES(c.res, -ECANCELED);
	CHECK_RES(sync_cancel_reg(&e.r, 0, -1, IORING_ASYNC_CANCEL_ANY, 0), 1);
	WAIT_UD(&e.r, 3, 1000, &c);
	CHECK_RES(c.res, -ECANCELED);
	CHECK_EQ(io_uring_cq_ready(&e.r), 0);
	env_exit(&e);
	return UT_OK;
}

UT_FAMILY(cancel2, T(cancel_all_userdata), T(cancel_by_fd), T(cancel_by_fixed_fd),
	  T(cancel_any), T(bad_flags), T(cancel_by_opcode), T(sync_cancel));
