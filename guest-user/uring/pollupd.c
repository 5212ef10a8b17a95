/*
 * IORING_OP_POLL_REMOVE as an update (Linux 5.13): with IORING_POLL_UPDATE_EVENTS
 * (new events in poll32_events) and/or IORING_POLL_UPDATE_USER_DATA (new user_data in
 * sqe->off), the pending poll whose user_data is sqe->addr is re-armed instead of
 * removed; the update's own CQE is 0, or -ENOENT when no such poll waits. A one-shot
 * poll stays one-shot and a multishot one multishot.
 */
#include "ut.h"

#include <poll.h>

#define POLL_UPDATE_EVENTS (1U << 1)
#define POLL_UPDATE_USER_DATA (1U << 2)
#define POLL_ADD_LEVEL (1U << 3)

static struct io_uring_sqe *q_update(struct io_uring *r, uint64_t target, unsigned flags, unsigned events,
				     uint64_t new_ud, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = IORING_OP_POLL_REMOVE;
	sqe->fd = -1;
	sqe->addr = target;
	sqe->len = flags;
	sqe->poll32_events = events;
	sqe->off = new_ud;
	sqe->user_data = ud;
	return sqe;
}

static struct io_uring_sqe *q_poll(struct io_uring *r, int fd, unsigned events, int multi, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	if (multi)
		io_uring_prep_poll_multishot(sqe, fd, events);
	else
		io_uring_prep_poll_add(sqe, fd, events);
	sqe->user_data = ud;
	return sqe;
}

static int user_data(void)
{
	/* The poll's next CQE carries the new user_data; the old one matches nothing. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	q_poll(&r, p[0], POLLIN, 0, 1);
	SUBMIT_NONE(&r, 1);
	q_update(&r, 1, POLL_UPDATE_USER_DATA, 0, 2, 3);
	CHECK_RES(ut_run_ud(&r, 3), 0);
	q_update(&r, 1, POLL_UPDATE_USER_DATA, 0, 4, 5);
	CHECK_RES(ut_run_ud(&r, 5), -ENOENT);
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 2, 1000, &c);
	CHECK(c.res & POLLIN);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int events(void)
{
	/*
	 * A poll for POLLPRI on a pipe (never ready) updated to POLLIN completes when data
	 * comes, with POLLIN.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	q_poll(&r, p[0], POLLPRI, 0, 1);
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(p[1], "x", 1), 1);
	ut_sleep_ms(10);
	struct io_uring_cqe *cqe;
	CHECK(io_uring_peek_cqe(&r, &cqe) != 0);
	q_update(&r, 1, POLL_UPDATE_EVENTS, POLLIN, 0, 2);
	struct io_uring_cqe c[2];
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_OK(ut_reap(&r, 2, c));
	for (int i = 0; i < 2; i++) {
		if (c[i].user_data == 2) {
			CHECK_RES(c[i].res, 0);
		} else {
			CHECK_EQ(c[i].user_data, 1);
			CHECK_EQ(c[i].res & (POLLIN | POLLPRI), POLLIN);
		}
	}
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int multishot(void)
{
	/* A multishot poll updated keeps posting, with F_MORE, under its new user_data. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	q_poll(&r, p[0], POLLIN, 1, 1);
	SUBMIT_NONE(&r, 1);
	q_update(&r, 1, POLL_UPDATE_USER_DATA | POLL_UPDATE_EVENTS | IORING_POLL_ADD_MULTI, POLLIN, 9, 2);
	CHECK_RES(ut_run_ud(&r, 2), 0);
	char b[4];
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(write(p[1], "x", 1), 1);
		struct io_uring_cqe c;
		WAIT_UD(&r, 9, 1000, &c);
		CHECK(c.res & POLLIN);
		CHECK(c.flags & IORING_CQE_F_MORE);
		CHECK_EQ(read(p[0], b, sizeof b), 1);
	}
	q_update(&r, 9, 0, 0, 0, 3);
	struct io_uring_cqe c[2];
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_OK(ut_reap(&r, 2, c));
	for (int i = 0; i < 2; i++) {
		if (c[i].user_data == 3)
			CHECK_RES(c[i].res, 0);
		else
			CHECK_RES(c[i].res, -ECANCELED);
	}
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int errors(void)
{
	/*
	 * ADD_MULTI alone, unknown flags (ADD_LEVEL among them), a new user_data without
	 * UPDATE_USER_DATA, events without UPDATE_EVENTS: EINVAL.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	q_poll(&r, p[0], POLLIN, 0, 1);
	SUBMIT_NONE(&r, 1);
	q_update(&r, 1, IORING_POLL_ADD_MULTI, 0, 0, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	q_update(&r, 1, POLL_UPDATE_EVENTS | POLL_ADD_LEVEL, POLLIN, 0, 3);
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	q_update(&r, 1, POLL_UPDATE_EVENTS, POLLIN, 7, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	q_update(&r, 1, POLL_UPDATE_USER_DATA, POLLIN, 7, 5);
	CHECK_RES(ut_run_ud(&r, 5), -EINVAL);
	/* still armed: a plain remove finds it */
	q_update(&r, 1, 0, 0, 0, 6);
	struct io_uring_cqe c[2];
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_OK(ut_reap(&r, 2, c));
	for (int i = 0; i < 2; i++)
		CHECK_RES(c[i].res, c[i].user_data == 6 ? 0 : -ECANCELED);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(pollupd, T(user_data), T(events), T(multishot), T(errors));
