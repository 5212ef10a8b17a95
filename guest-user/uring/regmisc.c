/*
 * Smaller registrations: IORING_REGISTER_CLOCK (6.12; CLOCK_MONOTONIC or
 * CLOCK_BOOTTIME for the ring's waits) and IORING_REGISTER_SEND_MSG_RING (6.13; a
 * MSG_RING data message sent with io_uring_register(-1, ...), no source ring needed).
 */
#include "ut.h"

#include <time.h>

#define REG_CLOCK 29
#define REG_SEND_MSG_RING 31
#define OP_MSG_RING 40

struct clock_reg {
	uint32_t clockid, resv[3];
};

static int clock_reg(void)
{
	/*
	 * MONOTONIC and BOOTTIME are accepted; REALTIME, reserved fields, nr_args or a null
	 * arg are EINVAL. An EXT_ARG wait then times out as usual.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct clock_reg c = { CLOCK_BOOTTIME, { 0, 0, 0 } };
	int ret = sys_register(r.ring_fd, REG_CLOCK, &c, 0);
	if (ret < 0 && errno == EINVAL) {
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_OK(ret);
	c.clockid = CLOCK_MONOTONIC;
	CHECK_OK(sys_register(r.ring_fd, REG_CLOCK, &c, 0));
	c.clockid = CLOCK_REALTIME;
	CHECK_ERR(sys_register(r.ring_fd, REG_CLOCK, &c, 0), EINVAL);
	c.clockid = CLOCK_BOOTTIME;
	c.resv[1] = 1;
	CHECK_ERR(sys_register(r.ring_fd, REG_CLOCK, &c, 0), EINVAL);
	c.resv[1] = 0;
	CHECK_ERR(sys_register(r.ring_fd, REG_CLOCK, &c, 1), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, REG_CLOCK, NULL, 0), EINVAL);
	CHECK_OK(sys_register(r.ring_fd, REG_CLOCK, &c, 0));
	long long t0 = ut_now_ms();
	CHECK_ERR(ut_enter_ms(r.ring_fd, 0, 1, 20), ETIME);
	CHECK(ut_now_ms() - t0 >= 15);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static struct io_uring_sqe msg_sqe(int target, uint64_t ud, unsigned len)
{
	struct io_uring_sqe sqe;
	memset(&sqe, 0, sizeof sqe);
	sqe.opcode = OP_MSG_RING;
	sqe.fd = target;
	sqe.addr = 0; /* IORING_MSG_DATA */
	sqe.off = ud;
	sqe.len = len;
	return sqe;
}

static int send_msg_ring(void)
{
	/*
	 * The target gets {user_data off, res len}; the call answers 0. Not a MSG_RING SQE,
	 * SQE flags, MSG_SEND_FD, nr_args other than 1: EINVAL; a target that is no ring
	 * EBADFD, no file EBADF. Other opcodes with fd -1: EINVAL.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe sqe = msg_sqe(r.ring_fd, 0xabc, 42);
	int ret = sys_register(-1, REG_SEND_MSG_RING, &sqe, 1);
	if (ret < 0 && errno == EINVAL) {
		io_uring_queue_exit(&r);
		return UT_UNSUP;
	}
	CHECK_EQ(ret, 0);
	struct io_uring_cqe c;
	CHECK_OK(ut_wait_cqe_ms(&r, &c, 1000));
	CHECK_EQ(c.user_data, 0xabc);
	CHECK_RES(c.res, 42);
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 2), EINVAL);
	sqe.flags = IOSQE_ASYNC;
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 1), EINVAL);
	sqe = msg_sqe(r.ring_fd, 1, 1);
	sqe.opcode = IORING_OP_NOP;
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 1), EINVAL);
	sqe = msg_sqe(r.ring_fd, 1, 1);
	sqe.addr = 1; /* IORING_MSG_SEND_FD */
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 1), EINVAL);
	sqe = msg_sqe(0, 1, 1);
	int p[2];
	CHECK_OK(pipe(p));
	sqe.fd = p[0];
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 1), EBADFD);
	sqe.fd = 9999;
	CHECK_ERR(sys_register(-1, REG_SEND_MSG_RING, &sqe, 1), EBADF);
	CHECK_ERR(sys_register(-1, IORING_REGISTER_PROBE, &sqe, 1), EINVAL);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(regmisc, T(clock_reg), T(send_msg_ring));
