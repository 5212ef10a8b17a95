/*
 * epoll(7) and its io_uring ops: epoll_create/create1/ctl/wait/pwait/pwait2 with
 * level- and edge-triggered items, EPOLLONESHOT, nesting, the errors of each call; and
 * IORING_OP_EPOLL_CTL (5.6) and IORING_OP_EPOLL_WAIT (6.15), which waits for events
 * without blocking the submitter.
 */
#include "ut.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>

#define OP_EPOLL_CTL 29
#define OP_EPOLL_WAIT 59

static int ctl(int ep, int op, int fd, unsigned events, uint64_t data)
{
	struct epoll_event e = { .events = events, .data.u64 = data };
	return epoll_ctl(ep, op, fd, &e);
}

/* epoll_wait(ep, 8 events, ms) must give `n` events; the first's events & data. */
static int waits(int ep, int ms, int n, unsigned *events, uint64_t *data)
{
	struct epoll_event e[8];
	memset(e, 0, sizeof e);
	int got;
	/* Linux may end the wait early with EINTR for io_uring's task work (no signal). */
	do
		got = epoll_wait(ep, e, 8, ms);
	while (got < 0 && errno == EINTR);
	if (got != n)
		FAIL("epoll_wait gave %d (%s), expected %d", got, got < 0 ? ut_errname(errno) : "-", n);
	if (n > 0 && events)
		*events = e[0].events;
	if (n > 0 && data)
		*data = e[0].data.u64;
	return UT_OK;
}

static int errors(void)
{
	/*
	 * epoll_create(0) (the syscall: musl does not check) and unknown create1 flags:
	 * EINVAL. epoll_ctl: a file that cannot
	 * be polled (a regular file) EPERM; the epoll itself or a non-epoll epfd EINVAL;
	 * ADD twice EEXIST; MOD or DEL of what is not there ENOENT; an unknown op EINVAL;
	 * EPOLLEXCLUSIVE with MOD or with EPOLLONESHOT EINVAL. epoll_wait: a bad epfd EBADF,
	 * maxevents 0 EINVAL, a non-epoll fd EINVAL; epoll_pwait with a sigset size other
	 * than 8 EINVAL.
	 */
	CHECK_ERR(syscall(SYS_epoll_create, 0), EINVAL);
	CHECK_ERR(epoll_create1(1), EINVAL);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK_OK(ep);
	CHECK_EQ(fcntl(ep, F_GETFD), FD_CLOEXEC);
	int p[2];
	CHECK_OK(pipe(p));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_ERR(ctl(ep, EPOLL_CTL_ADD, f, EPOLLIN, 0), EPERM);
	CHECK_ERR(ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 0), EINVAL);
	CHECK_ERR(ctl(p[1], EPOLL_CTL_ADD, p[0], EPOLLIN, 0), EINVAL);
	CHECK_ERR(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN, 0), ENOENT);
	CHECK_ERR(ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0), ENOENT);
	CHECK_ERR(ctl(ep, 7, p[0], EPOLLIN, 0), EINVAL);
	CHECK_ERR(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 0), EINVAL);
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 0));
	CHECK_ERR(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 0), EEXIST);
	CHECK_ERR(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLEXCLUSIVE, 0), EINVAL);
	CHECK_ERR(ctl(ep, EPOLL_CTL_ADD, 9999, EPOLLIN, 0), EBADF);
	struct epoll_event e[2];
	CHECK_ERR(epoll_wait(9999, e, 2, 0), EBADF);
	CHECK_ERR(epoll_wait(ep, e, 0, 0), EINVAL);
	CHECK_ERR(epoll_wait(p[0], e, 2, 0), EINVAL);
	sigset_t mask;
	sigemptyset(&mask);
	CHECK_ERR(syscall(SYS_epoll_pwait, ep, e, 2, 0, &mask, 4), EINVAL);
	CHECK_OK(ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0));
	CHECK_ERR(ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0), ENOENT);
	close(f);
	close(p[0]);
	close(p[1]);
	close(ep);
	return UT_OK;
}

static int level(void)
{
	/*
	 * Level-triggered: an item is reported while its file stays ready (with the
	 * data it was added with), not once it is drained. EPOLLERR and EPOLLHUP come
	 * unasked: closing the write end reports EPOLLHUP.
	 */
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 0x1234));
	TRY(waits(ep, 0, 0, NULL, NULL));
	CHECK_EQ(write(p[1], "abc", 3), 3);
	unsigned ev;
	uint64_t data;
	TRY(waits(ep, 0, 1, &ev, &data));
	CHECK_EQ(ev, EPOLLIN);
	CHECK_EQ(data, 0x1234);
	TRY(waits(ep, 0, 1, &ev, NULL));
	char b[8];
	CHECK_EQ(read(p[0], b, sizeof b), 3);
	TRY(waits(ep, 0, 0, NULL, NULL));
	/* MOD changes the data and the events */
	CHECK_OK(ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN, 0x5678));
	CHECK_EQ(write(p[1], "d", 1), 1);
	TRY(waits(ep, 0, 1, NULL, &data));
	CHECK_EQ(data, 0x5678);
	close(p[1]);
	TRY(waits(ep, 0, 1, &ev, NULL));
	CHECK_EQ(ev, EPOLLIN | EPOLLHUP);
	close(p[0]);
	close(ep);
	return UT_OK;
}

static int edge_oneshot(void)
{
	/*
	 * EPOLLET: one report per new arrival, however much is left unread. EPOLLONESHOT:
	 * one report, then the item is disabled until EPOLL_CTL_MOD arms it again.
	 */
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2], q[2];
	CHECK_OK(pipe(p));
	CHECK_OK(pipe(q));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN | EPOLLET, 1));
	CHECK_EQ(write(p[1], "a", 1), 1);
	TRY(waits(ep, 0, 1, NULL, NULL));
	TRY(waits(ep, 0, 0, NULL, NULL));
	CHECK_EQ(write(p[1], "b", 1), 1);
	TRY(waits(ep, 0, 1, NULL, NULL));
	TRY(waits(ep, 0, 0, NULL, NULL));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, q[0], EPOLLIN | EPOLLONESHOT, 2));
	CHECK_EQ(write(q[1], "c", 1), 1);
	uint64_t data;
	TRY(waits(ep, 0, 1, NULL, &data));
	CHECK_EQ(data, 2);
	CHECK_EQ(write(q[1], "d", 1), 1);
	TRY(waits(ep, 0, 0, NULL, NULL));
	CHECK_OK(ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN | EPOLLONESHOT, 3));
	TRY(waits(ep, 0, 1, NULL, &data));
	CHECK_EQ(data, 3);
	for (int i = 0; i < 2; i++) {
		close(p[i]);
		close(q[i]);
	}
	close(ep);
	return UT_OK;
}

static int blocking(void)
{
	/*
	 * epoll_wait sleeps until an event (a write from another thread) or its timeout
	 * (0 events); epoll_pwait2 takes a timespec.
	 */
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 7));
	long long t0 = ut_now_ms();
	TRY(waits(ep, 40, 0, NULL, NULL));
	CHECK(ut_now_ms() - t0 >= 35);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, p[1], "x", 1, 30));
	uint64_t data;
	TRY(waits(ep, 5000, 1, NULL, &data));
	CHECK_EQ(data, 7);
	CHECK_EQ(ut_writer_join(&w), 1);
	struct timespec ts = { 0, 1000 * 1000 };
	struct epoll_event e[2];
	long n;
	while ((n = syscall(SYS_epoll_pwait2, ep, e, 2, &ts, NULL, 8)) < 0 && errno == EINTR)
		;
	CHECK_EQ(n, 1);
	char b;
	CHECK_EQ(read(p[0], &b, 1), 1);
	while ((n = syscall(SYS_epoll_pwait2, ep, e, 2, &ts, NULL, 8)) < 0 && errno == EINTR)
		;
	CHECK_EQ(n, 0);
	struct timespec bad = { 0, 1000 * 1000 * 1000 };
	CHECK_ERR(syscall(SYS_epoll_pwait2, ep, e, 2, &bad, NULL, 8), EINVAL);
	close(p[0]);
	close(p[1]);
	close(ep);
	return UT_OK;
}

static int closed_files(void)
{
	/*
	 * An item belongs to the open file: after close(fd) with a dup still open it is
	 * still reported (with its data), but fd can no longer name it (EBADF); once the
	 * last descriptor is closed, it is gone.
	 */
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 9));
	int d = dup(p[0]);
	CHECK_OK(d);
	int closed = p[0];
	close(p[0]);
	CHECK_EQ(write(p[1], "x", 1), 1);
	uint64_t data;
	TRY(waits(ep, 0, 1, NULL, &data));
	CHECK_EQ(data, 9);
	CHECK_ERR(ctl(ep, EPOLL_CTL_DEL, closed, 0, 0), EBADF);
	CHECK_ERR(ctl(ep, EPOLL_CTL_DEL, d, 0, 0), ENOENT);
	close(d);
	TRY(waits(ep, 0, 0, NULL, NULL));
	close(p[1]);
	close(ep);
	return UT_OK;
}

static int nested(void)
{
	/*
	 * An epoll is itself pollable: epoll B watching epoll A reports A readable when
	 * A's pipe has data. Adding B to A (a loop) is ELOOP. poll(2) sees it too.
	 */
	int a = epoll_create1(0), b = epoll_create1(0);
	CHECK_OK(a);
	CHECK_OK(b);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(a, EPOLL_CTL_ADD, p[0], EPOLLIN, 1));
	CHECK_OK(ctl(b, EPOLL_CTL_ADD, a, EPOLLIN, 2));
	CHECK_ERR(ctl(a, EPOLL_CTL_ADD, b, EPOLLIN, 3), ELOOP);
	CHECK_ERR(ctl(a, EPOLL_CTL_ADD, a, EPOLLIN, 3), EINVAL);
	TRY(waits(b, 0, 0, NULL, NULL));
	CHECK_EQ(write(p[1], "x", 1), 1);
	unsigned ev;
	uint64_t data;
	TRY(waits(b, 0, 1, &ev, &data));
	CHECK_EQ(ev, EPOLLIN);
	CHECK_EQ(data, 2);
	close(p[0]);
	close(p[1]);
	close(a);
	close(b);
	return UT_OK;
}

static struct io_uring_sqe *q_ctl(struct io_uring *r, int ep, int op, int fd, struct epoll_event *e, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_EPOLL_CTL;
	sqe->fd = ep;
	sqe->len = (unsigned)op;
	sqe->off = (unsigned)fd;
	sqe->addr = (uintptr_t)e;
	sqe->user_data = ud;
	return sqe;
}

static struct io_uring_sqe *q_wait(struct io_uring *r, int ep, struct epoll_event *e, int max, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_EPOLL_WAIT;
	sqe->fd = ep;
	sqe->addr = (uintptr_t)e;
	sqe->len = (unsigned)max;
	sqe->user_data = ud;
	return sqe;
}

static int op_ctl(void)
{
	/* IORING_OP_EPOLL_CTL answers as epoll_ctl(2). */
	GATE(OP_EPOLL_CTL);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = 77 };
	q_ctl(&r, ep, EPOLL_CTL_ADD, p[0], &e, 1);
	CHECK_RES(ut_run_ud(&r, 1), 0);
	q_ctl(&r, ep, EPOLL_CTL_ADD, p[0], &e, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EEXIST);
	q_ctl(&r, ep, EPOLL_CTL_MOD, p[1], &e, 3);
	CHECK_RES(ut_run_ud(&r, 3), -ENOENT);
	q_ctl(&r, p[0], EPOLL_CTL_ADD, p[1], &e, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	CHECK_EQ(write(p[1], "x", 1), 1);
	uint64_t data;
	TRY(waits(ep, 0, 1, NULL, &data));
	CHECK_EQ(data, 77);
	q_ctl(&r, ep, EPOLL_CTL_DEL, p[0], NULL, 5);
	CHECK_RES(ut_run_ud(&r, 5), 0);
	TRY(waits(ep, 0, 0, NULL, NULL));
	close(p[0]);
	close(p[1]);
	close(ep);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int op_wait(void)
{
	/*
	 * IORING_OP_EPOLL_WAIT: with events ready, res is how many were copied; with none,
	 * it waits (the submitter does not) until an event comes. Errors as epoll_wait:
	 * maxevents 0 or a non-epoll file EINVAL; off or flags set EINVAL.
	 */
	GATE(OP_EPOLL_WAIT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 5));
	struct epoll_event e[4];
	memset(e, 0, sizeof e);
	q_wait(&r, ep, e, 4, 1);
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 2000, &c);
	CHECK_RES(c.res, 1);
	CHECK_EQ(e[0].events, EPOLLIN);
	CHECK_EQ(e[0].data.u64, 5);
	q_wait(&r, ep, e, 4, 2);
	CHECK_RES(ut_run_ud(&r, 2), 1);
	q_wait(&r, ep, e, 0, 3);
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	q_wait(&r, p[0], e, 4, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	q_wait(&r, ep, e, 4, 5)->off = 1;
	CHECK_RES(ut_run_ud(&r, 5), -EINVAL);
	close(p[0]);
	close(p[1]);
	close(ep);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int op_poll_epoll(void)
{
	/* POLL_ADD on an epoll file completes with POLLIN when an item becomes ready. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_OK(ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 5));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, ep, POLLIN);
	sqe->user_data = 1;
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 2000, &c);
	CHECK(c.res & POLLIN);
	close(p[0]);
	close(p[1]);
	close(ep);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(epoll, T(errors), T(level), T(edge_oneshot), T(blocking), T(closed_files), T(nested), T(op_ctl),
	  T(op_wait), T(op_poll_epoll));
