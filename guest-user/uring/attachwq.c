/*
 * IORING_SETUP_ATTACH_WQ (p.wq_fd): with SQPOLL, the new ring shares the SQ poller of
 * wq_fd's ring (Linux 5.12+: io-wq is per task anyway); a poller of another process
 * cannot be shared, and the ring gets its own. Without SQPOLL, wq_fd is only checked.
 * Errors: wq_fd no descriptor ENXIO, not a ring EINVAL, SQPOLL onto a ring without a
 * poller EINVAL.
 */
#include "ut.h"

#include <sys/wait.h>

static int setup_attach(unsigned flags, int wq_fd, struct io_uring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags | IORING_SETUP_ATTACH_WQ;
	p.wq_fd = (unsigned)wq_fd;
	p.sq_thread_idle = 50;
	return io_uring_queue_init_params(4, r, &p);
}

static int sqpoll_ring(struct io_uring *r)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL;
	p.sq_thread_idle = 50;
	return io_uring_queue_init_params(4, r, &p);
}

/* A NOP through `r` (no enter needed with SQPOLL): its CQE must come. */
static int nop_through(struct io_uring *r, uint64_t ud)
{
	ut_q_nop(r, ud, 0);
	CHECK_EQ(io_uring_submit(r), 1);
	struct io_uring_cqe c;
	WAIT_UD(r, ud, 2000, &c);
	CHECK_RES(c.res, 0);
	return UT_OK;
}

static int checks(void)
{
	/* Without SQPOLL: a bad wq_fd ENXIO, a pipe EINVAL, a ring fine. */
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_RES(setup_attach(0, 9999, &b), -ENXIO);
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_RES(setup_attach(0, p[0], &b), -EINVAL);
	CHECK_OK(setup_attach(0, a.ring_fd, &b));
	TRY(nop_through(&b, 1));
	io_uring_queue_exit(&b);
	/* SQPOLL onto a ring without a poller: EINVAL */
	CHECK_RES(setup_attach(IORING_SETUP_SQPOLL, a.ring_fd, &b), -EINVAL);
	CHECK_RES(setup_attach(IORING_SETUP_SQPOLL, p[0], &b), -EINVAL);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&a);
	return UT_OK;
}

static int shared_poller(void)
{
	/*
	 * Two SQPOLL rings on one poller: both submit without io_uring_enter; the second
	 * goes on working after the first is closed.
	 */
	struct io_uring a, b;
	CHECK_OK(sqpoll_ring(&a));
	CHECK_OK(setup_attach(IORING_SETUP_SQPOLL, a.ring_fd, &b));
	TRY(nop_through(&a, 1));
	TRY(nop_through(&b, 2));
	for (int i = 0; i < 3; i++) {
		TRY(nop_through(&a, 10 + i));
		TRY(nop_through(&b, 20 + i));
	}
	io_uring_queue_exit(&a);
	ut_sleep_ms(100); /* long enough for the poller to go idle */
	TRY(nop_through(&b, 3));
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int other_process(void)
{
	/* A child attaching to its parent's poller gets a poller of its own: setup works. */
	struct io_uring a;
	CHECK_OK(sqpoll_ring(&a));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct io_uring b;
		if (setup_attach(IORING_SETUP_SQPOLL, a.ring_fd, &b) < 0)
			_exit(2);
		_exit(nop_through(&b, 5) == UT_OK ? 0 : 3);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	TRY(nop_through(&a, 6));
	io_uring_queue_exit(&a);
	return UT_OK;
}

UT_FAMILY(attachwq, T(checks), T(shared_poller), T(other_process));
