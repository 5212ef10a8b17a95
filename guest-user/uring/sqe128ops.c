/*
 * The 128-byte ops of Linux 6.19, IORING_OP_NOP128 and IORING_OP_URING_CMD128: on a ring
 * with 128-byte SQEs they are NOP and URING_CMD; elsewhere -EINVAL. Gated on the probe
 * (a host before 6.19 reports them unsupported).
 */
#include "ut.h"

#include <fcntl.h>

#define OP_NOP128 63
#define OP_URING_CMD128 64

static struct io_uring_sqe *q(struct io_uring *r, int op, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = op;
	sqe->fd = fd;
	sqe->user_data = ud;
	return sqe;
}

static int nop128(void)
{
	/* NOP128 completes on an SQE128 ring (with NOP's flags), -EINVAL on a plain one. */
	GATE(OP_NOP128);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQE128;
	struct io_uring r;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	q(&r, OP_NOP128, -1, 1);
	CHECK_RES(ut_run_ud(&r, 1), 0);
	struct io_uring_sqe *sqe = q(&r, OP_NOP128, -1, 2);
	sqe->rw_flags = 1; /* IORING_NOP_INJECT_RESULT */
	sqe->len = 77;
	CHECK_RES(ut_run_ud(&r, 2), 77);
	io_uring_queue_exit(&r);
	CHECK_OK(ut_ring(&r, 4));
	q(&r, OP_NOP128, -1, 3);
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int uring_cmd128(void)
{
	/* URING_CMD128 on a regular file: no commands (-EOPNOTSUPP); on a plain ring -EINVAL. */
	GATE(OP_URING_CMD128);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQE128;
	struct io_uring r;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	q(&r, OP_URING_CMD128, f, 1);
	CHECK_RES(ut_run_ud(&r, 1), -EOPNOTSUPP);
	io_uring_queue_exit(&r);
	CHECK_OK(ut_ring(&r, 4));
	q(&r, OP_URING_CMD128, f, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	io_uring_queue_exit(&r);
	close(f);
	return UT_OK;
}

UT_FAMILY(sqe128ops, T(nop128), T(uring_cmd128));
