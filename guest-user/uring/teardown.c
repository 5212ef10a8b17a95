/*
 * Rings that go away with requests still pending: close(2), _exit, exec and SIGKILL of
 * the owner, and thousands of far-deadline timeouts cancelled at once.
 */
#include "ut.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

/*
 * Fill `r` with pending work: a pipe read, an IOSQE_ASYNC pipe read (parked in a
 * worker), a POLL_ADD, a one-hour TIMEOUT, and a read of a file (which completes).
 * p[] is the pipe the reads wait on. Returns the number submitted or -errno.
 */
static int fill_pending(struct io_uring *r, int p[2], int filefd)
{
	static char b1[8], b2[8], b3[8];
	static struct __kernel_timespec hour = { .tv_sec = 3600, .tv_nsec = 0 };
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, p[0], b1, sizeof b1, 0);
	sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, p[0], b2, sizeof b2, 0);
	sqe->flags = IOSQE_ASYNC;
	sqe = io_uring_get_sqe(r);
	io_uring_prep_poll_add(sqe, p[0], POLLIN);
	sqe = io_uring_get_sqe(r);
	io_uring_prep_timeout(sqe, &hour, 0, 0);
	int n = 4;
	if (filefd >= 0) {
		sqe = io_uring_get_sqe(r);
		io_uring_prep_read(sqe, filefd, b3, sizeof b3, 0);
		n++;
	}
	int ret = io_uring_submit(r);
	return ret == n ? n : (ret < 0 ? ret : -EIO);
}

static int close_with_pending(void)
{
	GATE(IORING_OP_READ);
	GATE(IORING_OP_POLL_ADD);
	GATE(IORING_OP_TIMEOUT);
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "filedata", 8), 8);
	for (int round = 0; round < 3; round++) {
		struct io_uring r;
		CHECK_OK(ut_ring(&r, 8));
		int p[2];
		CHECK_OK(pipe2(p, O_CLOEXEC));
		CHECK_EQ(fill_pending(&r, p, fd), 5);
		ut_sleep_ms(10);
		long long t0 = ut_now_ms();
		io_uring_queue_exit(&r);
		long long dt = ut_now_ms() - t0;
		if (dt > 5000)
			FAIL("closing the ring took %lld ms", dt);
		/* (when the requests are cancelled after close(2) returns is up to the kernel:
		 * Linux does it from a workqueue, so no check of the pipe here) */
		close(p[0]);
		close(p[1]);
	}
	close(fd);
	return UT_OK;
}

/* waitpid for at most 10 s: the status, or -1 on timeout (the child is then killed) */
static int wait_child(pid_t pid, int *status)
{
	long long end = ut_now_ms() + 10000;
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0)
			return -errno;
		if (ut_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
		ut_sleep_ms(1);
	}
}

enum child_end { END_EXIT, END_EXEC, END_KILL };

/*
 * One child that sets up a ring with pending requests on a pipe of its own, then ends
 * as `how` says. The parent sees it end as it should within 10 s.
 */
static int child_cycle(enum child_end how, const char *file, int line)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return ut_fail(file, line, "pipe: %s", ut_errname(errno));
	pid_t pid = fork();
	if (pid < 0)
		return ut_fail(file, line, "fork: %s", ut_errname(errno));
	if (pid == 0) {
		close(ready[0]);
		struct io_uring r;
		int p[2];
		if (ut_ring(&r, 8) < 0 || pipe2(p, O_CLOEXEC) < 0 || fill_pending(&r, p, -1) != 4)
			_exit(3);
		if (how == END_EXIT)
			_exit(0);
		if (how == END_EXEC) {
			char *argv[] = { (char *)"uring-test", (char *)"--exit", (char *)"0", NULL };
			execv("/proc/self/exe", argv);
			execv(ut_argv0, argv);
			_exit(4);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(5);
		for (;;)
			pause();
	}
	close(ready[1]);
	if (how == END_KILL) {
		char c;
		if (fcntl(ready[0], F_SETFL, O_NONBLOCK) < 0 ||
		    ut_read_within(ready[0], &c, 1, 10000) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(ready[0]);
			return ut_fail(file, line, "the child never got ready");
		}
		kill(pid, SIGKILL);
	}
	close(ready[0]);
	int status = 0;
	int ret = wait_child(pid, &status);
	if (ret < 0)
		return ut_fail(file, line, "child (end %d) not reaped: %s", how, ut_errname(-ret));
	if (how == END_KILL) {
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			return ut_fail(file, line, "killed child: status 0x%x", status);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		return ut_fail(file, line, "child (end %d): status 0x%x", how, status);
	}
	return UT_OK;
}

static int child_exit(void)
{
	GATE(IORING_OP_READ);
	TRY(child_cycle(END_EXIT, __FILE__, __LINE__));
	return UT_OK;
}

static int child_exec(void)
{
	GATE(IORING_OP_READ);
	TRY(child_cycle(END_EXEC, __FILE__, __LINE__));
	return UT_OK;
}

static int child_sigkill(void)
{
	GATE(IORING_OP_READ);
	TRY(child_cycle(END_KILL, __FILE__, __LINE__));
	return UT_OK;
}

static int child_cycles_200(void)
{
	/* 200 cycles, or as many as 10 s allow (at least 30) on a slow machine */
	GATE(IORING_OP_READ);
	long long t0 = ut_now_ms();
	int i;
	for (i = 0; i < 200 && (i < 30 || ut_now_ms() - t0 < 10000); i++)
		TRY(child_cycle((enum child_end)(i % 3), __FILE__, __LINE__));
	ut_info("%d cycles in %lld ms", i, ut_now_ms() - t0);
	return UT_OK;
}

/* submit `n` one-hour TIMEOUTs (user_data 1..n) in batches, reaping nothing */
static int many_timeouts(struct io_uring *r, unsigned n, const char *file, int line)
{
	static struct __kernel_timespec hour = { .tv_sec = 3600, .tv_nsec = 0 };
	for (unsigned i = 1; i <= n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);
		if (!sqe) {
			if (io_uring_submit(r) < 0)
				return ut_fail(file, line, "submit failed");
			sqe = io_uring_get_sqe(r);
		}
		io_uring_prep_timeout(sqe, &hour, 0, 0);
		sqe->user_data = i;
	}
	if (io_uring_submit(r) < 0)
		return ut_fail(file, line, "submit failed");
	/* io_uring_submit stops short only on error; every SQE must be consumed */
	if (io_uring_sq_ready(r) != 0)
		return ut_fail(file, line, "%u SQEs left unsubmitted", io_uring_sq_ready(r));
	return UT_OK;
}

static int timeouts_4096(void)
{
	/*
	 * 4096 one-hour TIMEOUTs, then one TIMEOUT_REMOVE (rounds 0, 2) or ASYNC_CANCEL
	 * (round 1) each: every timeout ends -ECANCELED, every remover 0, nothing twice.
	 */
	GATE(IORING_OP_TIMEOUT);
	GATE(IORING_OP_TIMEOUT_REMOVE);
	GATE(IORING_OP_ASYNC_CANCEL);
	enum { N = 4096, RM = 0x100000 };
	struct io_uring r;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * N;
	CHECK_OK(io_uring_queue_init_params(256, &r, &p));
	static unsigned char seen[N + 1], seen_rm[N + 1];
	long long t0 = ut_now_ms();
	int round;
	/* three rounds, or one on a machine too slow for three in 10 s */
	for (round = 0; round < 3 && (round == 0 || ut_now_ms() - t0 < 5000); round++) {
		memset(seen, 0, sizeof seen);
		memset(seen_rm, 0, sizeof seen_rm);
		TRY(many_timeouts(&r, N, __FILE__, __LINE__));
		CHECK_EQ(io_uring_cq_ready(&r), 0);
		unsigned got = 0;
		for (unsigned i = 1; i <= N; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
			if (!sqe) {
				CHECK_OK(io_uring_submit(&r));
				sqe = io_uring_get_sqe(&r);
			}
			if (round == 1)
				io_uring_prep_cancel64(sqe, i, 0);
			else
				io_uring_prep_timeout_remove(sqe, i, 0);
			sqe->user_data = RM + i;
		}
		CHECK_OK(io_uring_submit(&r));
		while (got < 2 * N) {
			struct io_uring_cqe c;
			int ret = ut_wait_cqe_ms(&r, &c, 5000);
			if (ret < 0)
				FAIL("round %d: %u of %u CQEs, then %s", round, got, 2 * N,
				     ut_errname(-ret));
			got++;
			if (c.user_data >= 1 && c.user_data <= N) {
				if (seen[c.user_data]++)
					FAIL("timeout %llu completed twice", (unsigned long long)c.user_data);
				CHECK_RES(c.res, -ECANCELED);
			} else if (c.user_data > RM && c.user_data <= RM + N) {
				if (seen_rm[c.user_data - RM]++)
					FAIL("remover %llu completed twice",
					     (unsigned long long)(c.user_data - RM));
				CHECK_RES(c.res, 0);
			} else {
				FAIL("unexpected CQE user_data %llu", (unsigned long long)c.user_data);
			}
		}
		CHECK_EQ(io_uring_cq_ready(&r), 0);
	}
	ut_info("%d rounds of %d in %lld ms", round, N, ut_now_ms() - t0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int close_with_4096_timeouts(void)
{
	/*
	 * a ring closed with 4096 one-hour timeouts pending: close returns (Linux takes
	 * microseconds; the bound is generous for emulated machines, it catches a hang)
	 */
	GATE(IORING_OP_TIMEOUT);
	struct io_uring r;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 4096;
	CHECK_OK(io_uring_queue_init_params(256, &r, &p));
	TRY(many_timeouts(&r, 4096, __FILE__, __LINE__));
	long long t0 = ut_now_ms();
	io_uring_queue_exit(&r);
	long long dt = ut_now_ms() - t0;
	if (dt > 30000)
		FAIL("closing the ring took %lld ms", dt);
	return UT_OK;
}

static int close_while_worker_reads_the_ring(void)
{
	/*
	 * An IOSQE_ASYNC READ of the ring's own fd goes to a worker; the ring's fd is closed
	 * before the worker runs, so the worker's request holds the last reference to the
	 * ring: ending it releases the ring from inside the worker. Nothing may break.
	 */
	GATE(IORING_OP_READ);
	for (int round = 0; round < 20; round++) {
		struct io_uring r;
		CHECK_OK(ut_ring(&r, 4));
		static char buf[16];
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_read(sqe, r.ring_fd, buf, sizeof buf, 0);
		sqe->flags |= IOSQE_ASYNC;
		CHECK_EQ(io_uring_submit(&r), 1);
		io_uring_queue_exit(&r);
		ut_sleep_ms(5);
	}
	return UT_OK;
}

UT_FAMILY(teardown, T(close_with_pending), T(child_exit), T(child_exec), T(child_sigkill),
	  T(child_cycles_200));
/* The long ones, in families of their own: each family is one boot, which must end within
 * the harness's time on our slow-ring-0 hosts (4096 timeouts take 45 s there). */
UT_FAMILY(teardown2, T(timeouts_4096));
UT_FAMILY(teardown3, T(close_with_4096_timeouts), T(close_while_worker_reads_the_ring));
