/*
 * IORING_OP_NOP's nop_flags (the SQE word at offset 28 that READ/WRITE call rw_flags):
 * IORING_NOP_INJECT_RESULT makes the NOP complete with res = (int)sqe->len. Linux 6.10
 * added it; earlier kernels ignore every NOP field and answer 0.
 */
#include "ut.h"

#include <fcntl.h>

#ifndef IORING_NOP_INJECT_RESULT
#define IORING_NOP_INJECT_RESULT (1U << 0)
#endif
#define NOP_FILE (1U << 1)	 /* Linux 6.13: look up sqe->fd */
#define NOP_FIXED_FILE (1U << 2) /* with NOP_FILE: a registered file */

static struct io_uring_sqe *q_nop(struct io_uring *r, unsigned nop_flags, unsigned len,
				  uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->rw_flags = (int)nop_flags; /* nop_flags shares this word */
	sqe->len = len;
	sqe->user_data = ud;
	sqe->flags = (uint8_t)flags;
	return sqe;
}

/*
 * UT_OK when the kernel injects results. UT_UNSUP when a NOP asking for 42 completes with
 * 0 (Linux before 6.10, which ignores nop_flags) or -EINVAL (a kernel that checks
 * nop_flags but knows none of them).
 */
static int gate_inject(const char *file, int line)
{
	int g = ut_gate(IORING_OP_NOP, file, line);
	if (g != UT_OK)
		return g;
	struct io_uring r;
	int ret = ut_ring(&r, 2);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	q_nop(&r, IORING_NOP_INJECT_RESULT, 42, 0x42, 0);
	uint64_t ud = 0;
	int res = ut_run1_ms(&r, &ud, 5000);
	io_uring_queue_exit(&r);
	if (ud != 0x42)
		return ut_fail(file, line, "gate: NOP completed with %d, user_data 0x%llx", res,
			       (unsigned long long)ud);
	if (res == 42)
		return UT_OK;
	if (res == 0 || res == -EINVAL)
		return UT_UNSUP;
	return ut_fail(file, line, "NOP with INJECT_RESULT, len 42: %d (%s)", res,
		       ut_resname(res));
}
#define GATE_INJECT() TRY(gate_inject(__FILE__, __LINE__))

static int inject_result(void)
{
	GATE_INJECT();
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	static const int values[] = { 0, 1, 4096, 0x7fffffff, -EIO, -ENOSPC, -4095, -4096,
				      (int)0x80000000 };
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		q_nop(&r, IORING_NOP_INJECT_RESULT, (unsigned)values[i], 0x10 + i, 0);
		uint64_t ud;
		int res = ut_run1_ms(&r, &ud, 5000);
		CHECK_EQ(ud, 0x10 + i);
		CHECK_RES(res, values[i]);
	}
	/* the CQE carries no flags */
	q_nop(&r, IORING_NOP_INJECT_RESULT, 7, 0x20, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
	CHECK_RES(c.res, 7);
	CHECK_EQ(c.flags, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int len_ignored_without_flag(void)
{
	/* without INJECT_RESULT, len is not a result: 0 (every Linux version) */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	q_nop(&r, 0, 42, 0x30, 0);
	uint64_t ud;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), 0);
	CHECK_EQ(ud, 0x30);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int unknown_flags(void)
{
	/* nop_flags bits Linux does not define: -EINVAL (6.10 on) */
	GATE_INJECT();
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	static const unsigned bad[] = { 1u << 31, 1u << 16, 1u << 8,
					IORING_NOP_INJECT_RESULT | (1u << 31) };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		q_nop(&r, bad[i], 5, 0x40 + i, 0);
		uint64_t ud;
		int res = ut_run1_ms(&r, &ud, 5000);
		CHECK_EQ(ud, 0x40 + i);
		if (res != -EINVAL)
			FAIL("nop_flags 0x%x: %d (%s), expected EINVAL", bad[i], res,
			     ut_resname(res));
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int injected_error_breaks_link(void)
{
	/*
	 * A negative injected result is a failure: the rest of a chain is cancelled. A
	 * positive one is not (a NOP has no "short" result).
	 */
	GATE_INJECT();
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	q_nop(&r, IORING_NOP_INJECT_RESULT, (unsigned)-EIO, 1, IOSQE_IO_LINK);
	q_nop(&r, 0, 0, 2, IOSQE_IO_LINK);
	q_nop(&r, 0, 0, 3, 0);
	q_nop(&r, IORING_NOP_INJECT_RESULT, 100, 4, IOSQE_IO_LINK);
	q_nop(&r, 0, 0, 5, 0);
	CHECK_EQ(io_uring_submit(&r), 5);
	struct io_uring_cqe c[5];
	for (int i = 0; i < 5; i++)
		CHECK_OK(ut_wait_cqe_ms(&r, &c[i], 5000));
	int res[6] = { 0 };
	for (int i = 0; i < 5; i++) {
		CHECK(c[i].user_data >= 1 && c[i].user_data <= 5);
		res[c[i].user_data] = c[i].res;
	}
	CHECK_RES(res[1], -EIO);
	CHECK_RES(res[2], -ECANCELED);
	CHECK_RES(res[3], -ECANCELED);
	CHECK_RES(res[4], 100);
	CHECK_RES(res[5], 0);
	/* HARDLINK: the chain goes on after the injected error */
	q_nop(&r, IORING_NOP_INJECT_RESULT, (unsigned)-EIO, 6, IOSQE_IO_HARDLINK);
	q_nop(&r, 0, 0, 7, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	for (int i = 0; i < 2; i++)
		CHECK_OK(ut_wait_cqe_ms(&r, &c[i], 5000));
	CHECK_EQ(c[0].user_data, 6);
	CHECK_RES(c[0].res, -EIO);
	CHECK_EQ(c[1].user_data, 7);
	CHECK_RES(c[1].res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int injected_skip_success(void)
{
	/* CQE_SKIP_SUCCESS drops an injected result >= 0 and keeps an injected error */
	GATE_INJECT();
	if (!(ut_features & IORING_FEAT_CQE_SKIP))
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	q_nop(&r, IORING_NOP_INJECT_RESULT, 9, 1, IOSQE_CQE_SKIP_SUCCESS);
	q_nop(&r, IORING_NOP_INJECT_RESULT, (unsigned)-ENOSPC, 2, IOSQE_CQE_SKIP_SUCCESS);
	q_nop(&r, 0, 0, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	struct io_uring_cqe c[2];
	for (int i = 0; i < 2; i++)
		CHECK_OK(ut_wait_cqe_ms(&r, &c[i], 5000));
	CHECK_EQ(c[0].user_data, 2);
	CHECK_RES(c[0].res, -ENOSPC);
	CHECK_EQ(c[1].user_data, 3);
	CHECK_RES(c[1].res, 0);
	struct io_uring_cqe extra;
	CHECK_EQ(ut_wait_cqe_ms(&r, &extra, 20), -ETIME);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int nop_file(void)
{
	/*
	 * NOP_FILE looks sqe->fd up: 0 for an open descriptor, -EBADF for a closed one, even
	 * with a result to inject. Two Linux answers: 6.13 and later as said; 6.10 to 6.12
	 * do not know the flag and answer -EINVAL to all three.
	 */
	GATE_INJECT();
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe *sqe = q_nop(&r, NOP_FILE, 0, 0x50, 0);
	sqe->fd = 0;
	uint64_t ud;
	int good = ut_run1_ms(&r, &ud, 5000);
	CHECK_EQ(ud, 0x50);
	sqe = q_nop(&r, NOP_FILE, 0, 0x51, 0);
	sqe->fd = 1000;
	int bad = ut_run1_ms(&r, &ud, 5000);
	CHECK_EQ(ud, 0x51);
	sqe = q_nop(&r, NOP_FILE | IORING_NOP_INJECT_RESULT, 3, 0x52, 0);
	sqe->fd = 1000;
	int bad_inj = ut_run1_ms(&r, &ud, 5000);
	CHECK_EQ(ud, 0x52);
	ut_info("NOP_FILE fd 0: %d (%s); fd 1000: %d (%s); fd 1000 + inject 3: %d (%s)", good,
		ut_resname(good), bad, ut_resname(bad), bad_inj, ut_resname(bad_inj));
	if (good == -EINVAL) { /* Linux 6.10 to 6.12 */
		CHECK_RES(bad, -EINVAL);
		CHECK_RES(bad_inj, -EINVAL);
	} else {
		CHECK_RES(good, 0);
		CHECK_RES(bad, -EBADF);
		CHECK_RES(bad_inj, -EBADF);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(nopflags, T(inject_result), T(len_ignored_without_flag), T(unknown_flags),
	  T(injected_error_breaks_link), T(injected_skip_success), T(nop_file));
