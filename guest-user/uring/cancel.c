/* IORING_OP_ASYNC_CANCEL of a pending POLL_ADD, TIMEOUT and READ, and of nothing. */
#include "ut.h"

#include <poll.h>

/* Submit ASYNC_CANCEL(target) as user_data 0xc0; return the cancel's res in *cres. If
 * the target completes too (reap_target), its res goes in *tres. */
static int cancel(struct io_uring *r, uint64_t target, int reap_target, int *cres,
		  int *tres, const char *file, int line)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_cancel64(sqe, target, 0);
	sqe->user_data = 0xc0;
	int ret = io_uring_submit(r);
	if (ret != 1)
		return ut_fail(file, line, "io_uring_submit = %d, expected 1", ret);
	struct io_uring_cqe c[2];
	int n = reap_target ? 2 : 1;
	ret = ut_reap(r, n, c);
	if (ret < 0)
		return ut_fail(file, line, "reap: %s", ut_errname(-ret));
	*cres = *tres = 12345;
	for (int i = 0; i < n; i++) {
		if (c[i].user_data == 0xc0)
			*cres = c[i].res;
		else if (reap_target && c[i].user_data == target)
			*tres = c[i].res;
		else
			return ut_fail(file, line, "unexpected CQE user_data 0x%llx res %d",
				       (unsigned long long)c[i].user_data, c[i].res);
	}
	return UT_OK;
}
#define CANCEL(r, t, reap, c, tr) TRY(cancel((r), (t), (reap), (c), (tr), __FILE__, __LINE__))

static int cancel_poll(void)
{
	GATE(IORING_OP_ASYNC_CANCEL);
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_poll_add(sqe, p[0], POLLIN);
	sqe->user_data = 0x21;
	SUBMIT_NONE(&r, 1);
	int cres, tres;
	CANCEL(&r, 0x21, 1, &cres, &tres);
	CHECK_RES(cres, 0);
	CHECK_RES(tres, -ECANCELED);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_timeout(void)
{
	GATE(IORING_OP_ASYNC_CANCEL);
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct __kernel_timespec ts = { .tv_sec = 10, .tv_nsec = 0 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout(sqe, &ts, 0, 0);
	sqe->user_data = 0x22;
	SUBMIT_NONE(&r, 1);
	int cres, tres;
	CANCEL(&r, 0x22, 1, &cres, &tres);
	CHECK_RES(cres, 0);
	CHECK_RES(tres, -ECANCELED);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_read(void)
{
	GATE(IORING_OP_ASYNC_CANCEL);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe(p)); /* blocking: no O_NONBLOCK */
	char buf[16];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, p[0], buf, sizeof buf, 0);
	sqe->user_data = 0x23;
	SUBMIT_NONE(&r, 1);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_cancel64(sqe, 0x23, 0);
	sqe->user_data = 0xc0;
	CHECK_EQ(io_uring_submit(&r), 1);
	/* the two CQEs may come in either order, unless the cancel says -EALREADY */
	int cres = 12345, tres = 12345;
	struct io_uring_cqe c;
	while (cres == 12345) {
		CHECK_OK(ut_reap(&r, 1, &c));
		if (c.user_data == 0xc0)
			cres = c.res;
		else if (c.user_data == 0x23)
			tres = c.res;
		else
			FAIL("unexpected CQE user_data 0x%llx", (unsigned long long)c.user_data);
	}
	if (cres == -EALREADY) {
		/* the read is running in a worker: unblock it with a byte, then reap it */
		ut_info("cancel of a pending pipe read: -EALREADY");
		if (tres == 12345) {
			CHECK_EQ(write(p[1], "x", 1), 1);
			CHECK_OK(ut_reap(&r, 1, &c));
			CHECK_EQ(c.user_data, 0x23);
			tres = c.res;
		}
		ut_info("the read then completed with %d", tres);
		CHECK(tres == 1 || tres == -ECANCELED || tres == -EINTR);
	} else {
		CHECK_RES(cres, 0);
		ut_info("cancel of a pending pipe read: 0");
		if (tres == 12345) {
			CHECK_OK(ut_reap(&r, 1, &c));
			CHECK_EQ(c.user_data, 0x23);
			tres = c.res;
		}
		CHECK_RES(tres, -ECANCELED);
	}
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_unknown(void)
{
	GATE(IORING_OP_ASYNC_CANCEL);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int cres, tres;
	CANCEL(&r, 0xdead, 0, &cres, &tres);
	CHECK_RES(cres, -ENOENT);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(cancel, T(cancel_poll), T(cancel_timeout), T(cancel_read), T(cancel_unknown));
