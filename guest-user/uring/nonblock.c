/*
 * Requests that cannot finish at once: reads on empty pipes and eventfds (O_NONBLOCK or
 * not), RWF_NOWAIT, IOSQE_ASYNC, appends, and POLL_ADD corner cases.
 */
#include "ut.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_APPEND
#define RWF_APPEND 0x00000010
#endif

static struct io_uring_sqe *q_read(struct io_uring *r, int fd, void *buf, unsigned len,
				   uint64_t off, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, fd, buf, len, off);
	sqe->user_data = ud;
	return sqe;
}

static struct io_uring_sqe *q_poll(struct io_uring *r, int fd, unsigned events, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_poll_add(sqe, fd, events);
	sqe->user_data = ud;
	return sqe;
}

/* A ring of `entries` and a pipe (O_CLOEXEC): 0 or -errno. */
static int ring_pipe(struct io_uring *r, unsigned entries, int p[2])
{
	int ret = ut_ring(r, entries);
	if (ret < 0)
		return ret;
	return pipe2(p, O_CLOEXEC) < 0 ? -errno : 0;
}

static void ring_pipe_exit(struct io_uring *r, int p[2])
{
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(r);
}

/*
 * A READ of `rfd` (empty) is submitted: the submit returns within 1 s and posts no CQE;
 * then a thread writes `len` bytes of `data` to `wfd` and the read completes with them.
 */
static int read_waits(int rfd, int wfd, const void *data, size_t len, uint64_t off,
		      unsigned sqe_flags, const char *file, int line)
{
	struct io_uring r;
	int ret = ut_ring(&r, 4);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	char buf[64];
	memset(buf, 0, sizeof buf);
	q_read(&r, rfd, buf, (unsigned)len, off, 0x51)->flags = (uint8_t)sqe_flags;
	long long t0 = ut_now_ms();
	ret = io_uring_submit(&r);
	long long dt = ut_now_ms() - t0;
	if (ret != 1)
		return ut_fail(file, line, "io_uring_submit = %d, expected 1", ret);
	if (dt > 1000)
		return ut_fail(file, line, "io_uring_submit took %lld ms", dt);
	struct io_uring_cqe *cqe;
	if (io_uring_peek_cqe(&r, &cqe) == 0)
		return ut_fail(file, line, "CQE before any data: res %d", cqe->res);
	ut_sleep_ms(20);
	if (io_uring_peek_cqe(&r, &cqe) == 0)
		return ut_fail(file, line, "CQE 20 ms later, still no data: res %d", cqe->res);
	struct ut_writer w;
	if (ut_writer_start(&w, wfd, data, len, 10) < 0)
		return ut_fail(file, line, "pthread_create failed");
	struct io_uring_cqe c;
	ret = ut_wait_cqe_ms(&r, &c, 5000);
	ssize_t wr = ut_writer_join(&w);
	io_uring_queue_exit(&r);
	if (wr != (ssize_t)len)
		return ut_fail(file, line, "the writer wrote %zd", wr);
	if (ret < 0)
		return ut_fail(file, line, "no CQE 5 s after the write: %s", ut_errname(-ret));
	if (c.user_data != 0x51 || c.res != (int)len)
		return ut_fail(file, line, "CQE ud 0x%llx res %d (%s), expected %zu",
			       (unsigned long long)c.user_data, c.res, ut_resname(c.res), len);
	if (memcmp(buf, data, len) != 0)
		return ut_fail(file, line, "the read returned other bytes");
	return UT_OK;
}
#define READ_WAITS(rfd, wfd, d, n, off, fl)                                             \
	TRY(read_waits((rfd), (wfd), (d), (n), (off), (fl), __FILE__, __LINE__))

static int pipe_nonblock(void)
{
	/* Linux: pipes support nowait, so O_NONBLOCK does not turn the read into -EAGAIN */
	GATE(IORING_OP_READ);
	int p[2];
	CHECK_OK(pipe2(p, O_NONBLOCK | O_CLOEXEC));
	READ_WAITS(p[0], p[1], "hello", 5, 0, 0);
	close(p[0]);
	close(p[1]);
	return UT_OK;
}

static int pipe_blocking(void)
{
	GATE(IORING_OP_READ);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	READ_WAITS(p[0], p[1], "world!", 6, 0, 0);
	close(p[0]);
	close(p[1]);
	return UT_OK;
}

static int eventfd_nonblock(void)
{
	GATE(IORING_OP_READ);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	CHECK_OK(efd);
	uint64_t v = 0x1234;
	READ_WAITS(efd, efd, &v, 8, 0, 0);
	close(efd);
	return UT_OK;
}

static int eventfd_blocking(void)
{
	GATE(IORING_OP_READ);
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK_OK(efd);
	uint64_t v = 77;
	READ_WAITS(efd, efd, &v, 8, 0, 0);
	close(efd);
	return UT_OK;
}

static int async_pipe(void)
{
	/* IOSQE_ASYNC: the read goes to a worker, which still waits for the data */
	GATE(IORING_OP_READ);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	READ_WAITS(p[0], p[1], "async", 5, 0, IOSQE_ASYNC);
	close(p[0]);
	close(p[1]);
	CHECK_OK(pipe2(p, O_NONBLOCK | O_CLOEXEC));
	READ_WAITS(p[0], p[1], "async2", 6, 0, IOSQE_ASYNC);
	close(p[0]);
	close(p[1]);
	return UT_OK;
}

static int rwf_nowait(void)
{
	GATE(IORING_OP_READ);
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 4, p));
	char buf[8];
	q_read(&r, p[0], buf, sizeof buf, 0, 0x52)->rw_flags = RWF_NOWAIT;
	struct io_uring_cqe c;
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 0x52, 5000, &c);
	CHECK_RES(c.res, -EAGAIN);
	/* with data there, RWF_NOWAIT reads it */
	CHECK_EQ(write(p[1], "abc", 3), 3);
	q_read(&r, p[0], buf, sizeof buf, 0, 0x53)->rw_flags = RWF_NOWAIT;
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 0x53, 5000, &c);
	CHECK_RES(c.res, 3);
	CHECK(memcmp(buf, "abc", 3) == 0);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int submit_while_worker_blocks(void)
{
	/* a read parked in a worker does not hold up 100 NOPs submitted after it */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 16, p));
	char buf[8];
	q_read(&r, p[0], buf, 4, 0, 0x54)->flags = IOSQE_ASYNC;
	CHECK_EQ(io_uring_submit(&r), 1);
	long long t0 = ut_now_ms();
	for (int i = 0; i < 100; i += 10) {
		for (int k = 0; k < 10; k++)
			ut_q_nop(&r, 1000 + i + k, 0);
		CHECK_EQ(io_uring_submit(&r), 10);
		for (int k = 0; k < 10; k++) {
			struct io_uring_cqe c;
			CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
			CHECK_EQ(c.user_data, 1000 + i + k);
			CHECK_RES(c.res, 0);
		}
	}
	CHECK(ut_now_ms() - t0 < 5000);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(write(p[1], "done", 4), 4);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x54, 5000, &c);
	CHECK_RES(c.res, 4);
	CHECK(memcmp(buf, "done", 4) == 0);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

/* WRITE `s` at offset 0 with `rw_flags` and file flags `oflags`; the file held "base". */
static int write_at0(int oflags, int rw_flags, const char *want, const char *file, int line)
{
	struct io_uring r;
	int ret = ut_ring(&r, 4);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	char path[256];
	int fd = ut_tmpfile(oflags ? "append" : "plain", O_RDWR, path);
	if (fd < 0)
		return ut_fail(file, line, "tmpfile: %s", ut_errname(-fd));
	if (write(fd, "base", 4) != 4)
		return ut_fail(file, line, "write(2) failed");
	if (oflags) {
		close(fd);
		fd = open(path, O_RDWR | O_CLOEXEC | oflags);
		if (fd < 0)
			return ut_fail(file, line, "reopen: %s", ut_errname(errno));
	}
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_write(sqe, fd, "XY", 2, 0);
	sqe->rw_flags = rw_flags;
	sqe->user_data = 0x55;
	uint64_t ud;
	int res = ut_run1_ms(&r, &ud, 5000);
	io_uring_queue_exit(&r);
	char got[16] = { 0 };
	ssize_t n = pread(fd, got, sizeof got - 1, 0);
	close(fd);
	if (res != 2)
		return ut_fail(file, line, "write res %d (%s), expected 2", res, ut_resname(res));
	if (n != (ssize_t)strlen(want) || memcmp(got, want, strlen(want)) != 0)
		return ut_fail(file, line, "file holds '%s', expected '%s'", got, want);
	return UT_OK;
}

static int o_append(void)
{
	/* Linux: O_APPEND wins over the SQE's offset */
	GATE(IORING_OP_WRITE);
	TRY(write_at0(O_APPEND, 0, "baseXY", __FILE__, __LINE__));
	return UT_OK;
}

static int rwf_append(void)
{
	GATE(IORING_OP_WRITE);
	TRY(write_at0(0, 0, "XYse", __FILE__, __LINE__));
	TRY(write_at0(0, RWF_APPEND, "baseXY", __FILE__, __LINE__));
	return UT_OK;
}

static int poll_in_out_write_end(void)
{
	/* the write end of an empty pipe: POLLOUT, not POLLIN */
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 4, p));
	q_poll(&r, p[1], POLLIN | POLLOUT, 0x56);
	uint64_t ud;
	int res = ut_run1_ms(&r, &ud, 5000);
	ut_info("POLLIN|POLLOUT on a pipe write end: 0x%x", res);
	CHECK_EQ(ud, 0x56);
	CHECK(res > 0);
	CHECK(res & POLLOUT);
	CHECK(!(res & POLLIN));
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int poll_other_ring(void)
{
	/* a ring's fd is POLLIN when its CQ holds a CQE, and POLLOUT while its SQ has room */
	GATE(IORING_OP_POLL_ADD);
	GATE(IORING_OP_NOP);
	struct io_uring r, r2;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&r2, 4));
	q_poll(&r, r2.ring_fd, POLLOUT, 0x57);
	uint64_t ud;
	int res = ut_run1_ms(&r, &ud, 5000);
	CHECK_EQ(ud, 0x57);
	CHECK(res > 0 && (res & POLLOUT) && !(res & POLLIN));
	q_poll(&r, r2.ring_fd, POLLIN, 0x58);
	SUBMIT_NONE(&r, 1);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r2);
	io_uring_prep_nop(sqe);
	CHECK_EQ(io_uring_submit(&r2), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x58, 5000, &c);
	CHECK(c.res > 0 && (c.res & POLLIN));
	io_uring_queue_exit(&r2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int poll_own_ring(void)
{
	/*
	 * A POLL_ADD on the ring's own fd: POLLOUT (room in the SQ) is ready at once;
	 * POLLIN with an empty CQ is not, and is woken by the next CQE (a NOP's).
	 */
	GATE(IORING_OP_POLL_ADD);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	q_poll(&r, r.ring_fd, POLLOUT, 0x59);
	uint64_t ud;
	int res = ut_run1_ms(&r, &ud, 5000);
	ut_info("POLLOUT on the ring's own fd: 0x%x", res);
	CHECK_EQ(ud, 0x59);
	CHECK(res > 0 && (res & POLLOUT));
	q_poll(&r, r.ring_fd, POLLIN, 0x5a);
	SUBMIT_NONE(&r, 1);
	ut_q_nop(&r, 0x5b, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	int seen_nop = 0, pres = 12345;
	for (int i = 0; i < 2; i++) {
		struct io_uring_cqe c;
		CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
		if (c.user_data == 0x5b)
			seen_nop++;
		else if (c.user_data == 0x5a)
			pres = c.res;
		else
			FAIL("unexpected CQE ud 0x%llx", (unsigned long long)c.user_data);
	}
	ut_info("POLLIN on the ring's own fd after a NOP: 0x%x", pres);
	CHECK_EQ(seen_nop, 1);
	CHECK(pres > 0 && (pres & POLLIN));
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int poll32_upper_bits(void)
{
	/*
	 * poll32_events carries the epoll flags too. Linux accepts EPOLLEXCLUSIVE on a
	 * one-shot poll and reports only the ready events (no flag bits) in res.
	 */
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 4, p));
	q_poll(&r, p[0], POLLIN | EPOLLEXCLUSIVE, 0x5c);
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
	ut_info("POLLIN|EPOLLEXCLUSIVE woken: res 0x%x flags 0x%x", c.res, c.flags);
	CHECK_EQ(c.user_data, 0x5c);
	CHECK(c.res > 0);
	CHECK_EQ((unsigned)c.res, POLLIN);
	/* ready at once, with EPOLLET: the same */
	q_poll(&r, p[0], POLLIN | EPOLLET, 0x5d);
	uint64_t ud;
	int res = ut_run1_ms(&r, &ud, 5000);
	ut_info("POLLIN|EPOLLET, ready: res 0x%x", res);
	CHECK_EQ(ud, 0x5d);
	CHECK_EQ((unsigned)res, POLLIN);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int multishot_skip_success(void)
{
	/* a multishot poll cannot skip its CQEs: -EINVAL (a one-shot one can) */
	GATE(IORING_OP_POLL_ADD);
	if (!(ut_features & IORING_FEAT_CQE_SKIP))
		return UT_UNSUP;
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 4, p));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_poll_multishot(sqe, p[0], POLLIN);
	sqe->flags = IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = 0x5e;
	uint64_t ud;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -EINVAL);
	CHECK_EQ(ud, 0x5e);
	/* one-shot with CQE_SKIP_SUCCESS: accepted, and its success CQE is skipped */
	CHECK_EQ(write(p[1], "x", 1), 1);
	q_poll(&r, p[0], POLLIN, 0x5f)->flags = IOSQE_CQE_SKIP_SUCCESS;
	ut_q_nop(&r, 0x60, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x60, 5000, &c);
	ut_sleep_ms(20);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int rwf_hipri_einval(void)
{
	/* RWF_HIPRI asks for polled I/O: a ring without IOPOLL says -EINVAL at issue */
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	char path[256], buf[8];
	int fd = ut_tmpfile("hipri", O_RDWR, path);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "12345678", 8), 8);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_EQ(write(p[1], "x", 1), 1);
	q_read(&r, fd, buf, sizeof buf, 0, 0x61)->rw_flags = 1; /* RWF_HIPRI */
	q_read(&r, p[0], buf, sizeof buf, 0, 0x62)->rw_flags = 1;
	CHECK_EQ(io_uring_submit(&r), 2);
	for (int i = 0; i < 2; i++) {
		struct io_uring_cqe c;
		CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
		CHECK_RES(c.res, -EINVAL);
	}
	close(fd);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int eventfd_write_waits_for_room(void)
{
	/*
	 * An eventfd with count 1 cannot take 0xfffffffffffffffe (the sum would pass the
	 * maximum) although it polls writable: the WRITE waits, never spins, and completes
	 * once a read(2) empties the counter.
	 */
	GATE(IORING_OP_WRITE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int efd = eventfd(1, EFD_CLOEXEC);
	CHECK_OK(efd);
	static uint64_t big = 0xfffffffffffffffeULL;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_write(sqe, efd, &big, 8, 0);
	sqe->user_data = 0x63;
	CHECK_EQ(io_uring_submit(&r), 1);
	ut_sleep_ms(50);
	struct io_uring_cqe *cp;
	CHECK_EQ(io_uring_peek_cqe(&r, &cp), -EAGAIN);
	uint64_t v = 0;
	CHECK_EQ(read(efd, &v, 8), 8);
	CHECK_EQ(v, 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x63, 5000, &c);
	CHECK_RES(c.res, 8);
	CHECK_EQ(read(efd, &v, 8), 8);
	CHECK(v == big);
	close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int exclusive_polls_wake_one(void)
{
	/* four EPOLLEXCLUSIVE polls on one pipe: a write wakes one of them */
	GATE(IORING_OP_POLL_ADD);
	struct io_uring r;
	int p[2];
	CHECK_OK(ring_pipe(&r, 8, p));
	for (int i = 0; i < 4; i++)
		q_poll(&r, p[0], POLLIN | EPOLLEXCLUSIVE, 0x70 + i);
	CHECK_EQ(io_uring_submit(&r), 4);
	ut_sleep_ms(20);
	CHECK_EQ(write(p[1], "x", 1), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
	CHECK_RES(c.res, POLLIN);
	ut_sleep_ms(50);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	ring_pipe_exit(&r, p);
	return UT_OK;
}

static int poll_chain_of_rings(void)
{
	/*
	 * 40 rings, each polling the next one's fd for POLLIN: one NOP on the last makes
	 * every ring ready in turn (each wakeup is handled as task work, not by recursing
	 * through 40 rings' wake-ups inside the first).
	 */
	GATE(IORING_OP_POLL_ADD);
	GATE(IORING_OP_NOP);
	enum { N = 40 };
	static struct io_uring r[N];
	for (int i = 0; i < N; i++)
		CHECK_OK(ut_ring(&r[i], 4));
	for (int i = 0; i < N - 1; i++) {
		q_poll(&r[i], r[i + 1].ring_fd, POLLIN, 0x100 + i);
		CHECK_EQ(io_uring_submit(&r[i]), 1);
	}
	ut_q_nop(&r[N - 1], 0x200, 0);
	CHECK_EQ(io_uring_submit(&r[N - 1]), 1);
	for (int i = N - 1; i >= 0; i--) {
		struct io_uring_cqe c;
		CHECK_OK(ut_wait_cqe_ms(&r[i], &c, 5000));
		CHECK_EQ(c.user_data, i == N - 1 ? 0x200 : 0x100 + i);
		if (i < N - 1)
			CHECK(c.res & POLLIN);
	}
	for (int i = 0; i < N; i++)
		io_uring_queue_exit(&r[i]);
	return UT_OK;
}

UT_FAMILY(nonblock, T(pipe_nonblock), T(pipe_blocking), T(eventfd_nonblock),
	  T(eventfd_blocking), T(async_pipe), T(rwf_nowait), T(submit_while_worker_blocks),
	  T(o_append), T(rwf_append), T(poll_in_out_write_end), T(poll_other_ring),
	  T(poll_own_ring), T(poll32_upper_bits), T(multishot_skip_success), T(rwf_hipri_einval),
	  T(eventfd_write_waits_for_room), T(exclusive_polls_wake_one), T(poll_chain_of_rings));
