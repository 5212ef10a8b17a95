/* IORING_OP_POLL_ADD (one-shot and IORING_POLL_ADD_MULTI) and IORING_OP_POLL_REMOVE. */
#include "ut.h"

#include <poll.h>
#include <sys/eventfd.h>

static struct io_uring_sqe *q_poll(struct io_uring *r, int fd, unsigned events, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_poll_add(sqe, fd, events);
	sqe->user_data = ud;
	return sqe;
}

/* One POLL_ADD for `events` on `fd`, which is ready already: its CQE must carry `want`. */
static int poll_ready(int fd, unsigned events, uint64_t ud, unsigned want, const char *what)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	q_poll(&r, fd, events, ud);
	uint64_t got = 0;
	int res = ut_run1(&r, &got);
	io_uring_queue_exit(&r);
	ut_info("%s: res 0x%x", what, res);
	CHECK_EQ(got, ud);
	CHECK(res > 0 && (res & want));
	return UT_OK;
}

static int ready_in(void)
{
	GATE(IORING_OP_POLL_ADD);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	int ret = poll_ready(p[0], POLLIN, 0x11, POLLIN, "POLLIN on a pipe with data");
	close(p[0]);
	close(p[1]);
	return ret;
}

/* A POLLIN on `fd`, which is not ready: it stays pending until write(2) to `wfd`. */
static int poll_woken(int fd, uint64_t ud, int wfd, const void *buf, size_t len, const char *what)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	q_poll(&r, fd, POLLIN, ud);
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(wfd, buf, len), (ssize_t)len);
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&r, 1, &c));
	io_uring_queue_exit(&r);
	ut_info("%s: res 0x%x", what, c.res);
	CHECK_EQ(c.user_data, ud);
	CHECK(c.res > 0 && (c.res & POLLIN));
	return UT_OK;
}

static int pending_in(void)
{
	GATE(IORING_OP_POLL_ADD);
	int p[2];
	CHECK_OK(pipe(p));
	int ret = poll_woken(p[0], 0x12, p[1], "x", 1, "POLLIN after write(2)");
	close(p[0]);
	close(p[1]);
	return ret;
}

static int ready_out(void)
{
	GATE(IORING_OP_POLL_ADD);
	int p[2];
	CHECK_OK(pipe(p));
	int ret = poll_ready(p[1], POLLOUT, 0x13, POLLOUT, "POLLOUT on a pipe write end");
	close(p[0]);
	close(p[1]);
	return ret;
}

static int hup(void)
{
	GATE(IORING_OP_POLL_ADD);
	int p[2];
	CHECK_OK(pipe(p));
	close(p[1]);
	int ret = poll_ready(p[0], POLLIN, 0x14, POLLHUP, "POLLIN on a pipe whose writer is closed");
	close(p[0]);
	return ret;
}

static int eventfd_in(void)
{
	GATE(IORING_OP_POLL_ADD);
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK_OK(efd);
	uint64_t one = 1;
	int ret = poll_woken(efd, 0x15, efd, &one, sizeof one,
			     "POLLIN on an eventfd after write(2) of 1");
	close(efd);
	return ret;
}

static int multishot(void)
{
	GATE(IORING_OP_POLL_ADD);
	GATE(IORING_OP_POLL_REMOVE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	q_poll(&r, p[0], POLLIN, 0x16)->len = IORING_POLL_ADD_MULTI;
	SUBMIT_NONE(&r, 1);
	char buf[8];
	struct io_uring_cqe c;
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(write(p[1], "x", 1), 1);
		CHECK_OK(ut_reap(&r, 1, &c));
		ut_info("shot %d: res 0x%x flags 0x%x", i, c.res, c.flags);
		CHECK_EQ(c.user_data, 0x16);
		CHECK(c.res > 0 && (c.res & POLLIN));
		CHECK(c.flags & IORING_CQE_F_MORE);
		CHECK_EQ(read(p[0], buf, sizeof buf), 1);
	}
	/* drained: nothing more until the remove */
	SUBMIT_NONE(&r, 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_poll_remove(sqe, 0x16);
	sqe->user_data = 0x17;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cc[2];
	CHECK_OK(ut_reap(&r, 2, cc));
	int pres = 12345, rres = 12345;
	unsigned pflags = 0;
	for (int i = 0; i < 2; i++) {
		if (cc[i].user_data == 0x16) {
			pres = cc[i].res;
			pflags = cc[i].flags;
		} else if (cc[i].user_data == 0x17) {
			rres = cc[i].res;
		} else {
			FAIL("unexpected CQE user_data 0x%llx", (unsigned long long)cc[i].user_data);
		}
	}
	CHECK_RES(pres, -ECANCELED);
	CHECK(!(pflags & IORING_CQE_F_MORE));
	CHECK_RES(rres, 0);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int remove_unknown(void)
{
	GATE(IORING_OP_POLL_REMOVE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_poll_remove(sqe, 0xdead);
	sqe->user_data = 0x18;
	uint64_t ud = 0;
	CHECK_RES(ut_run1(&r, &ud), -ENOENT);
	CHECK_EQ(ud, 0x18);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_fd(void)
{
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	close(p[0]);
	close(p[1]);
	q_poll(&r, p[0], POLLIN, 0x19); /* just closed */
	uint64_t ud = 0;
	CHECK_RES(ut_run1(&r, &ud), -EBADF);
	CHECK_EQ(ud, 0x19);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_flags(void)
{
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "x", 1), 1);
	q_poll(&r, p[0], POLLIN, 0x1a)->len = 0x80000000u;
	uint64_t ud = 0;
	CHECK_RES(ut_run1(&r, &ud), -EINVAL);
	CHECK_EQ(ud, 0x1a);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(poll, T(ready_in), T(pending_in), T(ready_out), T(hup), T(eventfd_in),
	  T(multishot), T(remove_unknown), T(bad_fd), T(bad_flags));
