/*
 * IORING_OP_LINK_TIMEOUT: a deadline for the request linked just before it. Expiry
 * cancels that request; its completion cancels the timeout. Also the SQE checks, which
 * request of a chain the deadline applies to, HARDLINK and CQE_SKIP_SUCCESS around it,
 * and what ASYNC_CANCEL / TIMEOUT_REMOVE / IORING_LINK_TIMEOUT_UPDATE make of it.
 */
#include "ut.h"

#include <fcntl.h>
#include <time.h>

#define MS 1000000LL

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct io_uring_sqe *q_read(struct io_uring *r, int fd, void *buf, unsigned len,
				   uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, fd, buf, len, 0);
	sqe->user_data = ud;
	sqe->flags = (uint8_t)flags;
	return sqe;
}

static struct io_uring_sqe *q_lt(struct io_uring *r, struct __kernel_timespec *ts,
				 unsigned tflags, uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_link_timeout(sqe, ts, tflags);
	sqe->user_data = ud;
	sqe->flags = (uint8_t)flags;
	return sqe;
}

static struct io_uring_sqe *q_nop(struct io_uring *r, uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->user_data = ud;
	sqe->flags = (uint8_t)flags;
	return sqe;
}

/* Reap exactly n CQEs, each within `ms`, in arrival order. */
static int reap_ms(struct io_uring *r, unsigned n, struct io_uring_cqe *out, int ms,
		   const char *file, int line)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = ut_wait_cqe_ms(r, &out[i], ms);
		if (ret < 0)
			return ut_fail(file, line, "CQE %u of %u: %s", i + 1, n, ut_errname(-ret));
	}
	return UT_OK;
}
#define REAP(r, n, out, ms) TRY(reap_ms((r), (n), (out), (ms), __FILE__, __LINE__))

/* No further CQE turns up within `ms`. */
static int quiet_ms(struct io_uring *r, int ms, const char *file, int line)
{
	struct io_uring_cqe c;
	int ret = ut_wait_cqe_ms(r, &c, ms);
	if (ret == 0)
		return ut_fail(file, line, "unexpected CQE ud 0x%llx res %d (%s)",
			       (unsigned long long)c.user_data, c.res, ut_resname(c.res));
	if (ret != -ETIME)
		return ut_fail(file, line, "wait: %s", ut_errname(-ret));
	return UT_OK;
}
#define QUIET(r, ms) TRY(quiet_ms((r), (ms), __FILE__, __LINE__))

/* The CQE in c[0..n) with user_data ud, or NULL. */
static const struct io_uring_cqe *by_ud(const struct io_uring_cqe *c, unsigned n, uint64_t ud)
{
	for (unsigned i = 0; i < n; i++)
		if (c[i].user_data == ud)
			return &c[i];
	return NULL;
}

static void info_order(const struct io_uring_cqe *c, unsigned n)
{
	char s[200];
	int k = 0;
	for (unsigned i = 0; i < n && k < (int)sizeof s - 40; i++)
		k += snprintf(s + k, sizeof s - k, "%s0x%llx=%d(%s)", i ? " " : "",
			      (unsigned long long)c[i].user_data, c[i].res, ut_resname(c[i].res));
	ut_info("CQE order %s", s);
}

/* c[0..n) holds a CQE for each of ud[0..n), and their res are want[0..n), checked in order. */
static int cqes_are(const struct io_uring_cqe *c, unsigned n, const uint64_t *ud,
		    const int *want, const char *file, int line)
{
	for (unsigned i = 0; i < n; i++)
		if (!by_ud(c, n, ud[i]))
			return ut_fail(file, line, "no CQE with user_data 0x%llx",
				       (unsigned long long)ud[i]);
	for (unsigned i = 0; i < n; i++) {
		int res = by_ud(c, n, ud[i])->res;
		if (res != want[i])
			return ut_fail(file, line, "CQE 0x%llx: res %d (%s), expected %d (%s)",
				       (unsigned long long)ud[i], res, ut_resname(res), want[i],
				       ut_resname(want[i]));
	}
	return UT_OK;
}
#define CQES_ARE(c, n, uds, wants) TRY(cqes_are((c), (n), (uds), (wants), __FILE__, __LINE__))

/* At most 2 s went by since t0. */
static int within_2s(long long t0, const char *what, const char *file, int line)
{
	long long dt = now_ns() - t0;
	if (dt > 2000 * MS)
		return ut_fail(file, line, "%s took %lld us", what, dt / 1000);
	return UT_OK;
}
#define WITHIN_2S(t0, what) TRY(within_2s((t0), (what), __FILE__, __LINE__))

/* REAP with 5 s for each CQE, then show their order (info_order). */
static int reap_show(struct io_uring *r, unsigned n, struct io_uring_cqe *out, const char *file,
		     int line)
{
	TRY(reap_ms(r, n, out, 5000, file, line));
	info_order(out, n);
	return UT_OK;
}
#define REAP_SHOW(r, n, out) TRY(reap_show((r), (n), (out), __FILE__, __LINE__))

/* A ring of 8 and an O_CLOEXEC pipe. */
static int ring_pipe(struct io_uring *r, int p[2])
{
	CHECK_OK(ut_ring(r, 8));
	CHECK_OK(pipe2(p, O_CLOEXEC));
	return UT_OK;
}

/* Close the pipe, then `fd` if it is one, then the ring. */
static void close_ring_pipe(struct io_uring *r, int p[2], int fd)
{
	close(p[0]);
	close(p[1]);
	if (fd >= 0)
		close(fd);
	io_uring_queue_exit(r);
}

/* CQE i has user_data ud, res `res` and flags 0 */
#define CQE_IS(c, i, want_ud, want_res)                                        \
	do {                                                                   \
		CHECK_EQ((c)[i].user_data, (want_ud));                         \
		CHECK_RES((c)[i].res, (want_res));                             \
		CHECK_EQ((c)[i].flags, 0);                                     \
	} while (0)

static int pipe_timeout(void)
{
	/*
	 * READ on an empty pipe, LINK_TIMEOUT 20 ms: the timeout's CQE (-ETIME) comes
	 * first, then the read's (-ECANCELED): Linux completes the timeout in its task work
	 * after asking for the read's cancellation, whose CQE follows.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * MS };
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	REAP(&r, 2, c, 5000);
	long long dt = now_ns() - t0;
	info_order(c, 2);
	ut_info("20 ms link timeout fired after %lld us", dt / 1000);
	CQE_IS(c, 0, 2, -ETIME);
	CQE_IS(c, 1, 1, -ECANCELED);
	if (dt < 19 * MS)
		FAIL("the link timeout fired after %lld us", dt / 1000);
	/* the pipe is usable and the read really is gone: data written now stays there */
	CHECK_EQ(write(p[1], "xy", 2), 2);
	QUIET(&r, 20);
	CHECK_EQ(read(p[0], b, sizeof b), 2);
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

static int read_beats_timeout(void)
{
	/*
	 * A READ that completes first: read res, then the timeout with -ECANCELED. Once for a
	 * file read that completes at issue, once for a pipe read that waits 10 ms.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "abcdef", 6), 6);
	char b[16] = { 0 };
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	q_read(&r, fd, b, 6, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	REAP_SHOW(&r, 2, c);
	CQE_IS(c, 0, 1, 6);
	CQE_IS(c, 1, 2, -ECANCELED);
	CHECK(memcmp(b, "abcdef", 6) == 0);

	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	memset(b, 0, sizeof b);
	q_read(&r, p[0], b, sizeof b, 3, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 4, 0);
	SUBMIT_NONE(&r, 2);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, p[1], "hello", 5, 10));
	int ret = reap_ms(&r, 2, c, 3000, __FILE__, __LINE__);
	CHECK_EQ(ut_writer_join(&w), 5);
	TRY(ret);
	info_order(c, 2);
	CQE_IS(c, 0, 3, 5);
	CQE_IS(c, 1, 4, -ECANCELED);
	CHECK(memcmp(b, "hello", 5) == 0);
	if (now_ns() - t0 > 2000 * MS)
		FAIL("a 5 s link timeout was not cancelled early (%lld us)", (now_ns() - t0) / 1000);
	close_ring_pipe(&r, p, fd);
	return UT_OK;
}

static int no_link_head(void)
{
	/* LINK_TIMEOUT needs a linked request right before it in the same submission */
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 1 * MS };
	uint64_t ud;
	/* alone */
	q_lt(&r, &ts, 0, 1, 0);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -EINVAL);
	CHECK_EQ(ud, 1);
	/* after a request that is not linked */
	q_nop(&r, 2, 0);
	q_lt(&r, &ts, 0, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[3];
	REAP(&r, 2, c, 5000);
	CHECK(by_ud(c, 2, 2) && by_ud(c, 2, 2)->res == 0);
	CHECK(by_ud(c, 2, 3));
	CHECK_RES(by_ud(c, 2, 3)->res, -EINVAL);
	/* a link head in an earlier submission does not count: the chain ended there */
	q_nop(&r, 4, IOSQE_IO_LINK);
	CHECK_EQ(io_uring_submit(&r), 1);
	REAP(&r, 1, c, 5000);
	CQE_IS(c, 0, 4, 0);
	q_lt(&r, &ts, 0, 5, 0);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -EINVAL);
	CHECK_EQ(ud, 5);
	/* a LINK_TIMEOUT that itself starts a chain: -EINVAL, and the chain fails with it */
	q_lt(&r, &ts, 0, 6, IOSQE_IO_LINK);
	q_nop(&r, 7, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	REAP_SHOW(&r, 2, c);
	CQES_ARE(c, 2, ((const uint64_t[]){ 6, 7 }), ((const int[]){ -EINVAL, -ECANCELED }));
	QUIET(&r, 10);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int two_in_a_row(void)
{
	/* a second LINK_TIMEOUT right after the first is -EINVAL and fails the chain */
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 3, 0);
	long long t0 = now_ns();
	CHECK_EQ(io_uring_submit(&r), 3);
	struct io_uring_cqe c[3];
	REAP_SHOW(&r, 3, c);
	CQES_ARE(c, 3, ((const uint64_t[]){ 1, 2, 3 }),
		 ((const int[]){ -ECANCELED, -ECANCELED, -EINVAL }));
	WITHIN_2S(t0, "the failed chain");
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

static int abs_deadline(void)
{
	/* IORING_TIMEOUT_ABS: a CLOCK_MONOTONIC deadline 20 ms ahead */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	long long t0 = now_ns(), deadline = t0 + 20 * MS;
	struct __kernel_timespec ts = { .tv_sec = deadline / 1000000000LL,
					.tv_nsec = deadline % 1000000000LL };
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, IORING_TIMEOUT_ABS, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	REAP(&r, 2, c, 5000);
	long long t1 = now_ns();
	info_order(c, 2);
	CQE_IS(c, 0, 2, -ETIME);
	CQE_IS(c, 1, 1, -ECANCELED);
	if (t1 < deadline - 1 * MS || t1 - t0 > 2000 * MS)
		FAIL("absolute link timeout completed %lld us after submission", (t1 - t0) / 1000);
	/* a deadline already past fires at once */
	t0 = now_ns();
	ts.tv_sec = (t0 - 1 * MS) / 1000000000LL;
	ts.tv_nsec = (t0 - 1 * MS) % 1000000000LL;
	q_read(&r, p[0], b, sizeof b, 3, IOSQE_IO_LINK);
	q_lt(&r, &ts, IORING_TIMEOUT_ABS, 4, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	REAP_SHOW(&r, 2, c);
	CQES_ARE(c, 2, ((const uint64_t[]){ 3, 4 }), ((const int[]){ -ECANCELED, -ETIME }));
	WITHIN_2S(t0, "a past deadline");
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

static int applies_to_previous_only(void)
{
	/*
	 * A -> B -> LINK_TIMEOUT(30 ms): the clock starts when B is issued, after A. A waits
	 * 100 ms for its data and is not cancelled; then B (empty pipe) times out.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int pa[2], pb[2];
	CHECK_OK(pipe2(pa, O_CLOEXEC));
	CHECK_OK(pipe2(pb, O_CLOEXEC));
	char ba[8] = { 0 }, bb[8];
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 30 * MS };
	q_read(&r, pa[0], ba, 4, 1, IOSQE_IO_LINK);
	q_read(&r, pb[0], bb, sizeof bb, 2, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 3, 0);
	long long t0 = now_ns();
	SUBMIT_NONE(&r, 3);
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, pa[1], "AAAA", 4, 100));
	struct io_uring_cqe c[3];
	int ret = reap_ms(&r, 3, c, 5000, __FILE__, __LINE__);
	long long dt = now_ns() - t0;
	CHECK_EQ(ut_writer_join(&w), 4);
	TRY(ret);
	info_order(c, 3);
	ut_info("chain ended after %lld us", dt / 1000);
	CQE_IS(c, 0, 1, 4);
	CQE_IS(c, 1, 3, -ETIME);
	CQE_IS(c, 2, 2, -ECANCELED);
	CHECK(memcmp(ba, "AAAA", 4) == 0);
	if (dt < 125 * MS)
		FAIL("B timed out %lld us after submission: the clock started before A ended",
		     dt / 1000);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int chain_after_timeout(void)
{
	/*
	 * READ -> LINK_TIMEOUT -> NOP. With IOSQE_IO_LINK the expiry fails the rest of the
	 * chain: NOP -ECANCELED. With IOSQE_IO_HARDLINK on the read and the timeout, the
	 * NOP still runs (res 0) after the read was cancelled.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * MS };
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, IOSQE_IO_LINK);
	q_nop(&r, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	struct io_uring_cqe c[3];
	REAP_SHOW(&r, 3, c);
	CQE_IS(c, 0, 2, -ETIME);
	CQE_IS(c, 1, 1, -ECANCELED);
	CQE_IS(c, 2, 3, -ECANCELED);

	q_read(&r, p[0], b, sizeof b, 4, IOSQE_IO_HARDLINK);
	q_lt(&r, &ts, 0, 5, IOSQE_IO_HARDLINK);
	q_nop(&r, 6, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	REAP_SHOW(&r, 3, c);
	CQE_IS(c, 0, 5, -ETIME);
	CQE_IS(c, 1, 4, -ECANCELED);
	CQE_IS(c, 2, 6, 0);

	/* a read that beats its timeout lets the chain go on with either flag */
	CHECK_EQ(write(p[1], "1234", 4), 4);
	q_read(&r, p[0], b, 4, 7, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 8, IOSQE_IO_LINK);
	q_nop(&r, 9, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	REAP_SHOW(&r, 3, c);
	CQE_IS(c, 0, 7, 4);
	CQE_IS(c, 1, 8, -ECANCELED);
	CQE_IS(c, 2, 9, 0);
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

static int skip_success(void)
{
	/*
	 * IOSQE_CQE_SKIP_SUCCESS: a read that succeeds before its timeout posts nothing, the
	 * timeout still posts -ECANCELED. A timeout marked SKIP_SUCCESS posts nothing at
	 * all once armed: neither its -ECANCELED when the read wins nor its -ETIME when it
	 * fires (Linux does not count either as a failure); the read it cancelled still
	 * posts -ECANCELED although the read was marked SKIP_SUCCESS too.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	if (!(ut_features & IORING_FEAT_CQE_SKIP))
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, "abcd", 4), 4);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	char b[8];
	struct __kernel_timespec ts5 = { .tv_sec = 5, .tv_nsec = 0 };
	struct __kernel_timespec ts20 = { .tv_sec = 0, .tv_nsec = 20 * MS };
	struct io_uring_cqe c[2];

	q_read(&r, fd, b, 4, 1, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS);
	q_lt(&r, &ts5, 0, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	REAP(&r, 1, c, 5000);
	CQE_IS(c, 0, 2, -ECANCELED);
	QUIET(&r, 20);

	q_read(&r, fd, b, 4, 3, IOSQE_IO_LINK);
	q_lt(&r, &ts5, 0, 4, IOSQE_CQE_SKIP_SUCCESS);
	CHECK_EQ(io_uring_submit(&r), 2);
	REAP(&r, 1, c, 5000);
	CQE_IS(c, 0, 3, 4);
	QUIET(&r, 20);

	q_read(&r, p[0], b, sizeof b, 5, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS);
	q_lt(&r, &ts20, 0, 6, IOSQE_CQE_SKIP_SUCCESS);
	CHECK_EQ(io_uring_submit(&r), 2);
	REAP_SHOW(&r, 1, c);
	CQE_IS(c, 0, 5, -ECANCELED);
	QUIET(&r, 20);
	close_ring_pipe(&r, p, fd);
	return UT_OK;
}

static int bad_fields(void)
{
	/*
	 * Each bad LINK_TIMEOUT fails at submission: it completes with the error, and the
	 * request it was linked to never runs (-ECANCELED).
	 */
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 1 * MS };
	struct __kernel_timespec neg = { .tv_sec = 0, .tv_nsec = -1 };
	struct __kernel_timespec negs = { .tv_sec = -1, .tv_nsec = 0 };
	static const struct {
		const char *what;
		int field; /* 0 len, 1 off, 2 flags, 3 addr, 4 buf_index, 5 splice_fd_in */
		uint64_t value;
		int want;
	} cases[] = {
		{ "len 0", 0, 0, -EINVAL },
		{ "len 2", 0, 2, -EINVAL },
		{ "off 1", 1, 1, -EINVAL },
		{ "unknown flag bit 31", 2, 0x80000000u, -EINVAL },
		{ "BOOTTIME|REALTIME", 2, IORING_TIMEOUT_BOOTTIME | IORING_TIMEOUT_REALTIME, -EINVAL },
		{ "UPDATE flag", 2, IORING_TIMEOUT_UPDATE, -EINVAL },
		{ "addr 8", 3, 8, -EFAULT },
		{ "tv_nsec -1", 3, 1, -EINVAL },
		{ "tv_sec -1", 3, 2, -EINVAL },
		{ "buf_index 1", 4, 1, -EINVAL },
		{ "splice_fd_in 1", 5, 1, -EINVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		q_nop(&r, 1, IOSQE_IO_LINK);
		struct io_uring_sqe *sqe = q_lt(&r, &ts, 0, 2, 0);
		switch (cases[i].field) {
		case 0: sqe->len = (uint32_t)cases[i].value; break;
		case 1: sqe->off = cases[i].value; break;
		case 2: sqe->timeout_flags = (uint32_t)cases[i].value; break;
		case 3:
			sqe->addr = cases[i].value == 8 ? 8
				  : cases[i].value == 1 ? (uint64_t)(uintptr_t)&neg
							: (uint64_t)(uintptr_t)&negs;
			break;
		case 4: sqe->buf_index = (uint16_t)cases[i].value; break;
		case 5: sqe->splice_fd_in = (int32_t)cases[i].value; break;
		}
		CHECK_EQ(io_uring_submit(&r), 2);
		struct io_uring_cqe c[2];
		REAP(&r, 2, c, 5000);
		const struct io_uring_cqe *nop = by_ud(c, 2, 1), *lt = by_ud(c, 2, 2);
		if (!nop || !lt)
			FAIL("%s: CQEs 0x%llx 0x%llx", cases[i].what,
			     (unsigned long long)c[0].user_data, (unsigned long long)c[1].user_data);
		if (lt->res != cases[i].want || nop->res != -ECANCELED)
			FAIL("%s: link timeout %d (%s), head %d (%s); expected %s and ECANCELED",
			     cases[i].what, lt->res, ut_resname(lt->res), nop->res,
			     ut_resname(nop->res), ut_resname(cases[i].want));
	}
	/* the valid one, for contrast: the NOP wins and the timeout is cancelled */
	q_nop(&r, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	REAP(&r, 2, c, 5000);
	CQE_IS(c, 0, 1, 0);
	CQE_IS(c, 1, 2, -ECANCELED);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_by_user_data(void)
{
	/*
	 * An armed link timeout is not on the list ASYNC_CANCEL and TIMEOUT_REMOVE search:
	 * both answer -ENOENT for its user_data and it keeps running. Cancelling the read
	 * instead takes the timeout with it (-ECANCELED).
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_ASYNC_CANCEL);
	GATE(IORING_OP_TIMEOUT_REMOVE);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	long long t0 = now_ns();
	SUBMIT_NONE(&r, 2);
	uint64_t ud;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_cancel64(sqe, 2, 0);
	sqe->user_data = 0xc1;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -ENOENT);
	CHECK_EQ(ud, 0xc1);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_timeout_remove(sqe, 2, 0);
	sqe->user_data = 0xc2;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -ENOENT);
	CHECK_EQ(ud, 0xc2);
	QUIET(&r, 10);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_cancel64(sqe, 1, 0);
	sqe->user_data = 0xc3;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[3];
	REAP_SHOW(&r, 3, c);
	CQES_ARE(c, 3, ((const uint64_t[]){ 0xc3, 1, 2 }),
		 ((const int[]){ 0, -ECANCELED, -ECANCELED }));
	WITHIN_2S(t0, "cancelling");
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

/* TIMEOUT_REMOVE as an update: addr = target user_data, addr2 (off) = new timespec */
static struct io_uring_sqe *q_update(struct io_uring *r, uint64_t target,
				     struct __kernel_timespec *ts, unsigned tflags, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_rw(IORING_OP_TIMEOUT_REMOVE, sqe, -1, NULL, 0, (uintptr_t)ts);
	sqe->addr = target;
	sqe->timeout_flags = tflags;
	sqe->user_data = ud;
	return sqe;
}

static int update_link_timeout(void)
{
	/*
	 * TIMEOUT_REMOVE with IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE re-arms an
	 * armed link timeout (5 s -> 20 ms): res 0, then the timeout fires. Unknown user_data
	 * -ENOENT; a plain TIMEOUT_UPDATE does not find link timeouts (-ENOENT).
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_TIMEOUT_REMOVE);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 5, .tv_nsec = 0 };
	struct __kernel_timespec ts20 = { .tv_sec = 0, .tv_nsec = 20 * MS };
	uint64_t ud;
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	long long t0 = now_ns();
	SUBMIT_NONE(&r, 2);
	q_update(&r, 0x999, &ts20, IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE, 0xd0);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -ENOENT);
	CHECK_EQ(ud, 0xd0);
	q_update(&r, 2, &ts20, IORING_TIMEOUT_UPDATE, 0xd1);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -ENOENT);
	CHECK_EQ(ud, 0xd1);
	QUIET(&r, 10);
	q_update(&r, 2, &ts20, IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE, 0xd2);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[3];
	REAP(&r, 3, c, 5000);
	long long dt = now_ns() - t0;
	info_order(c, 3);
	CQE_IS(c, 0, 0xd2, 0);
	CQE_IS(c, 1, 2, -ETIME);
	CQE_IS(c, 2, 1, -ECANCELED);
	if (dt > 2000 * MS)
		FAIL("the updated link timeout fired after %lld us", dt / 1000);
	/* gone now */
	q_update(&r, 2, &ts20, IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE, 0xd3);
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -ENOENT);
	CHECK_EQ(ud, 0xd3);
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

static int update_flag_alone(void)
{
	/*
	 * IORING_LINK_TIMEOUT_UPDATE without IORING_TIMEOUT_UPDATE (what liburing's
	 * io_uring_prep_link_timeout_update sends): Linux reads the new timespec, then takes
	 * the removal path, which searches only ordinary timeouts: -ENOENT, link timeout
	 * untouched.
	 */
	GATE(IORING_OP_READ);
	GATE(IORING_OP_LINK_TIMEOUT);
	GATE(IORING_OP_TIMEOUT_REMOVE);
	struct io_uring r;
	int p[2];
	TRY(ring_pipe(&r, p));
	char b[8];
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 300 * MS };
	struct __kernel_timespec ts1 = { .tv_sec = 0, .tv_nsec = 1 * MS };
	uint64_t ud;
	q_read(&r, p[0], b, sizeof b, 1, IOSQE_IO_LINK);
	q_lt(&r, &ts, 0, 2, 0);
	long long t0 = now_ns();
	SUBMIT_NONE(&r, 2);
	q_update(&r, 2, &ts1, IORING_LINK_TIMEOUT_UPDATE, 0xd4);
	int res = ut_run1_ms(&r, &ud, 5000);
	ut_info("LINK_TIMEOUT_UPDATE alone: %d (%s)", res, ut_resname(res));
	struct io_uring_cqe c[2];
	CHECK_EQ(ud, 0xd4);
	CHECK_RES(res, -ENOENT);
	REAP(&r, 2, c, 5000);
	long long dt = now_ns() - t0;
	CQE_IS(c, 0, 2, -ETIME);
	CQE_IS(c, 1, 1, -ECANCELED);
	if (dt < 290 * MS)
		FAIL("the link timeout fired after %lld us: it was updated", dt / 1000);
	close_ring_pipe(&r, p, -1);
	return UT_OK;
}

UT_FAMILY(linktimeout, T(pipe_timeout), T(read_beats_timeout), T(no_link_head),
	  T(two_in_a_row), T(abs_deadline), T(applies_to_previous_only),
	  T(chain_after_timeout), T(skip_success), T(bad_fields), T(cancel_by_user_data),
	  T(update_link_timeout), T(update_flag_alone));
