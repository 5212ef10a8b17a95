/*
 * IORING_OP_READ_MULTISHOT (Linux 6.7): one SQE, many reads. It must take provided
 * buffers (IOSQE_BUFFER_SELECT) and name no address or length; the file must be
 * pollable (else EBADFD). Each read that finds data fills one buffer and posts a CQE
 * with IORING_CQE_F_MORE | IORING_CQE_F_BUFFER; the request stays armed until end of
 * file (res 0), an error (-ENOBUFS with no buffer left), a cancellation, or a full CQ
 * ring; that last CQE has no F_MORE.
 */
#include "ut.h"

#include <fcntl.h>

#define OP_READ_MULTISHOT 49
#define GROUP 7

static char bufs[8][16];

/* Provide `n` 16-byte buffers (ids 0..n-1) to GROUP. */
static int provide(struct io_uring *r, int n)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_provide_buffers(sqe, bufs, 16, n, GROUP, 0);
	sqe->user_data = 0xb0f;
	CHECK_RES(ut_run_ud(r, 0xb0f), 0);
	return UT_OK;
}

static struct io_uring_sqe *q_mshot(struct io_uring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_READ_MULTISHOT;
	sqe->fd = fd;
	sqe->flags = IOSQE_BUFFER_SELECT;
	sqe->buf_group = GROUP;
	sqe->user_data = ud;
	return sqe;
}

/* The next CQE: user_data `ud`, res `res`, F_MORE as `more`; its buffer's bytes must be
 * `text` (when res > 0). */
static int expect(struct io_uring *r, uint64_t ud, int res, int more, const char *text)
{
	struct io_uring_cqe c;
	EXPECT_CQE(r, ud, res, more, &c);
	if (res > 0) {
		if (!(c.flags & IORING_CQE_F_BUFFER))
			FAIL("res %d without IORING_CQE_F_BUFFER", res);
		int bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
		CHECK(bid >= 0 && bid < 8);
		if (text && memcmp(bufs[bid], text, (size_t)res))
			FAIL("buffer %d holds '%.*s', expected '%s'", bid, res, bufs[bid], text);
	} else if (c.flags & IORING_CQE_F_BUFFER) {
		FAIL("res %d names buffer %u", res, c.flags >> IORING_CQE_BUFFER_SHIFT);
	}
	return UT_OK;
}

static int reads(void)
{
	/*
	 * Armed on an empty pipe: nothing until data comes; each write gives one CQE with
	 * F_MORE and the next buffer; closing the write end gives res 0 without F_MORE.
	 */
	GATE(OP_READ_MULTISHOT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	TRY(provide(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	q_mshot(&r, p[0], 1);
	SUBMIT_NONE(&r, 1);
	CHECK_EQ(write(p[1], "hello", 5), 5);
	TRY(expect(&r, 1, 5, 1, "hello"));
	CHECK_EQ(write(p[1], "again!", 6), 6);
	TRY(expect(&r, 1, 6, 1, "again!"));
	EMPTY(&r);
	close(p[1]);
	TRY(expect(&r, 1, 0, 0, NULL));
	close(p[0]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int split(void)
{
	/*
	 * Data already there is read at once, one buffer per CQE (16, 16, 8 of 40 bytes),
	 * and the request stays armed; when buffers run out, it ends with -ENOBUFS.
	 */
	GATE(OP_READ_MULTISHOT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	TRY(provide(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_EQ(write(p[1], "0123456789abcdefghijklmnopqrstuvWXYZ!@#$", 40), 40);
	q_mshot(&r, p[0], 2);
	CHECK_EQ(io_uring_submit(&r), 1);
	TRY(expect(&r, 2, 16, 1, "0123456789abcdef"));
	TRY(expect(&r, 2, 16, 1, "ghijklmnopqrstuv"));
	TRY(expect(&r, 2, 8, 1, "WXYZ!@#$"));
	ut_sleep_ms(10);
	EMPTY(&r);
	CHECK_EQ(write(p[1], "last", 4), 4);
	TRY(expect(&r, 2, 4, 1, "last"));
	CHECK_EQ(write(p[1], "none", 4), 4);
	TRY(expect(&r, 2, -ENOBUFS, 0, NULL));
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancelled(void)
{
	/* ASYNC_CANCEL ends an armed one: -ECANCELED without F_MORE. */
	GATE(OP_READ_MULTISHOT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	TRY(provide(&r, 2));
	int p[2];
	CHECK_OK(pipe(p));
	q_mshot(&r, p[0], 3);
	SUBMIT_NONE(&r, 1);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_cancel64(sqe, 3, 0);
	sqe->user_data = 4;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	for (int i = 0; i < 2; i++) {
		if (c[i].user_data == 3) {
			CHECK_RES(c[i].res, -ECANCELED);
			CHECK(!(c[i].flags & (IORING_CQE_F_MORE | IORING_CQE_F_BUFFER)));
		} else {
			CHECK_EQ(c[i].user_data, 4);
			CHECK_RES(c[i].res, 0);
		}
	}
	/* the buffers are still the ring's: a plain READ takes one */
	CHECK_EQ(write(p[1], "ok", 2), 2);
	sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, p[0], NULL, 16, 0);
	sqe->flags = IOSQE_BUFFER_SELECT;
	sqe->buf_group = GROUP;
	sqe->user_data = 5;
	CHECK_RES(ut_run_ud(&r, 5), 2);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cq_full(void)
{
	/*
	 * With the CQ ring full, the next read's CQE cannot carry F_MORE: it goes to the
	 * overflow list as the last one, and the request is over.
	 */
	GATE(OP_READ_MULTISHOT);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 4;
	struct io_uring r;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	CHECK_EQ(p.cq_entries, 4);
	TRY(provide(&r, 8));
	int fds[2];
	CHECK_OK(pipe(fds));
	char data[100];
	ut_pattern(data, sizeof data, 1);
	CHECK_EQ(write(fds[1], data, sizeof data), sizeof data);
	q_mshot(&r, fds[0], 6);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[5];
	CHECK_OK(ut_reap(&r, 5, c));
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(c[i].user_data, 6);
		CHECK_RES(c[i].res, 16);
		CHECK(c[i].flags & IORING_CQE_F_BUFFER);
		if (!!(c[i].flags & IORING_CQE_F_MORE) != (i < 4))
			FAIL("CQE %d: F_MORE %s", i, i < 4 ? "clear" : "set");
	}
	ut_sleep_ms(10);
	EMPTY(&r);
	close(fds[0]);
	close(fds[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int errors(void)
{
	/*
	 * Without BUFFER_SELECT, or with an address or a length: EINVAL. A file that cannot be polled
	 * (a regular file): EBADFD.
	 */
	GATE(OP_READ_MULTISHOT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	TRY(provide(&r, 2));
	int p[2];
	CHECK_OK(pipe(p));
	q_mshot(&r, p[0], 7)->flags = 0;
	CHECK_RES(ut_run_ud(&r, 7), -EINVAL);
	q_mshot(&r, p[0], 8)->addr = (uintptr_t)bufs;
	CHECK_RES(ut_run_ud(&r, 8), -EINVAL);
	CHECK_EQ(write(p[1], "x", 1), 1);
	q_mshot(&r, p[0], 10)->len = 16;
	CHECK_RES(ut_run_ud(&r, 10), -EINVAL);
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "file", 4, 0), 4);
	q_mshot(&r, f, 9);
	CHECK_RES(ut_run_ud(&r, 9), -EBADFD);
	close(f);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(readmshot, T(reads), T(split), T(cancelled), T(cq_full), T(errors));
