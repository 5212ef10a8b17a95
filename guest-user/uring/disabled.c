/*
 * IORING_SETUP_R_DISABLED: a ring born disabled refuses io_uring_enter (-EBADFD) until
 * IORING_REGISTER_ENABLE_RINGS. While it is disabled, IORING_REGISTER_RESTRICTIONS may
 * limit, once, which SQE opcodes, SQE flags and register opcodes it will accept; they
 * take effect when the ring is enabled (an SQE outside them completes with -EACCES, a
 * register call outside them fails with -EACCES). With SQPOLL the poller leaves a
 * disabled ring alone; with SINGLE_ISSUER the task that enables the ring becomes its
 * issuer. A kernel that does not know R_DISABLED fails setup with -EINVAL: the tests
 * then report "unsupported".
 */
#include "ut.h"

#include <fcntl.h>

#ifndef IORING_REGISTER_ENABLE_RINGS
#define IORING_REGISTER_ENABLE_RINGS 12
#endif

/* A liburing ring set up with R_DISABLED | `flags`: 0 or -errno. */
static int disabled_ring(struct io_uring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_R_DISABLED | flags;
	p.sq_thread_idle = 50;
	return io_uring_queue_init_params(entries, r, &p);
}
#define DISABLED_RING(r, n, flags)                                             \
	do {                                                                   \
		int _d = disabled_ring((r), (n), (flags));                     \
		if (_d == -EINVAL)                                             \
			return UT_UNSUP; /* R_DISABLED unknown (before 5.10) */ \
		CHECK_OK(_d);                                                  \
	} while (0)

static int enable(int fd)
{
	return sys_register(fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0 ? -errno : 0;
}

static int restrict_ring(int fd, const struct io_uring_restriction *res, unsigned n)
{
	return sys_register(fd, IORING_REGISTER_RESTRICTIONS, res, n) < 0 ? -errno : 0;
}

static struct io_uring_restriction rsqe(unsigned op)
{
	struct io_uring_restriction x;
	memset(&x, 0, sizeof x);
	x.opcode = IORING_RESTRICTION_SQE_OP;
	x.sqe_op = (uint8_t)op;
	return x;
}

static struct io_uring_restriction rreg(unsigned op)
{
	struct io_uring_restriction x;
	memset(&x, 0, sizeof x);
	x.opcode = IORING_RESTRICTION_REGISTER_OP;
	x.register_op = (uint8_t)op;
	return x;
}

static struct io_uring_restriction rflags(unsigned kind, unsigned flags)
{
	struct io_uring_restriction x;
	memset(&x, 0, sizeof x);
	x.opcode = (uint16_t)kind;
	x.sqe_flags = (uint8_t)flags;
	return x;
}

/* Submit one NOP with sqe->flags `flags`, wait at most 5 s: its res. */
static int nop_res(struct io_uring *r, unsigned flags, uint64_t ud)
{
	ut_q_nop(r, ud, flags);
	uint64_t got = 0;
	int res = ut_run1_ms(r, &got, 5000);
	if (res > -10000 && got != ud)
		return -9999;
	return res;
}

/* One SQE of opcode `op` (everything else zero, fd -1): its res. */
static int op_res(struct io_uring *r, unsigned op, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = (uint8_t)op;
	sqe->fd = -1;
	sqe->user_data = ud;
	uint64_t got = 0;
	int res = ut_run1_ms(r, &got, 5000);
	if (res > -10000 && got != ud)
		return -9999;
	return res;
}

static int enter_refused(void)
{
	/*
	 * Every io_uring_enter on a disabled ring is -EBADFD, whatever it asks (submit,
	 * wait, nothing) and nothing is consumed; io_uring_register works. After
	 * ENABLE_RINGS the queued SQE is submitted.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int fd = r.ring_fd;
	ut_q_nop(&r, 0x51, 0);
	io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
	r.sq.sqe_head = r.sq.sqe_tail;
	CHECK_ERR(sys_enter(fd, 1, 0, 0, NULL, 0), EBADFD);
	CHECK_ERR(sys_enter(fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), EBADFD);
	CHECK_ERR(sys_enter(fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0), EBADFD);
	CHECK_ERR(sys_enter(fd, 0, 0, 0, NULL, 0), EBADFD);
	CHECK_EQ(io_uring_smp_load_acquire(r.sq.khead), 0);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	static struct {
		struct io_uring_probe p;
		struct io_uring_probe_op ops[64];
	} pb;
	memset(&pb, 0, sizeof pb);
	CHECK_OK(sys_register(fd, IORING_REGISTER_PROBE, &pb, 64));
	int e = enable(fd);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_EQ(sys_enter(fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x51, 5000, &c);
	CHECK_RES(c.res, 0);
	CHECK_RES(nop_res(&r, 0, 0x52), 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int enable_rules(void)
{
	/*
	 * ENABLE_RINGS takes no argument (arg or nr_args set: -EINVAL, and the ring stays
	 * disabled); a second ENABLE_RINGS, or one on a ring that was never disabled, is
	 * -EBADFD.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int fd = r.ring_fd;
	int dummy = 0;
	int e = enable(fd);
	if (e == -EINVAL) /* not even a plain ENABLE_RINGS: unknown opcode */
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(enable(fd), -EBADFD);
	io_uring_queue_exit(&r);

	DISABLED_RING(&r, 4, 0);
	fd = r.ring_fd;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_ENABLE_RINGS, &dummy, 0), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_ENABLE_RINGS, NULL, 1), EINVAL);
	CHECK_ERR(sys_enter(fd, 0, 0, 0, NULL, 0), EBADFD);
	CHECK_RES(enable(fd), 0);
	CHECK_RES(nop_res(&r, 0, 0x61), 0);
	io_uring_queue_exit(&r);

	CHECK_OK(ut_ring(&r, 4));
	CHECK_RES(enable(r.ring_fd), -EBADFD);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int restrictions_need_disabled(void)
{
	/* RESTRICTIONS on a ring that is not (or no longer) disabled: -EBADFD */
	struct io_uring_restriction res[1] = { rsqe(IORING_OP_NOP) };
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int e = enable(r.ring_fd);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(restrict_ring(r.ring_fd, res, 1), -EBADFD);
	io_uring_queue_exit(&r);
	CHECK_OK(ut_ring(&r, 4));
	CHECK_RES(restrict_ring(r.ring_fd, res, 1), -EBADFD);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int restrictions_once(void)
{
	/* a second RESTRICTIONS, even an identical one, is -EBUSY */
	struct io_uring_restriction res[2] = { rsqe(IORING_OP_NOP), rreg(IORING_REGISTER_PROBE) };
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int e = restrict_ring(r.ring_fd, res, 2);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(restrict_ring(r.ring_fd, res, 2), -EBUSY);
	CHECK_RES(restrict_ring(r.ring_fd, res, 1), -EBUSY);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int restrictions_bad(void)
{
	/*
	 * -EINVAL: an unknown restriction opcode, a register opcode >= IORING_REGISTER_LAST
	 * (255), an SQE opcode >= IORING_OP_LAST (255), a NULL array, more entries than
	 * Linux allows (a few hundred at most); -EFAULT: an unreadable array. A failed call
	 * registers nothing: a good one afterwards still succeeds, and only then -EBUSY.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int fd = r.ring_fd;
	struct io_uring_restriction good[1] = { rsqe(IORING_OP_NOP) };
	struct io_uring_restriction bad[2] = { rsqe(IORING_OP_NOP), rsqe(IORING_OP_NOP) };
	bad[1].opcode = 4; /* IORING_RESTRICTION_LAST in Linux 6.18 */
	CHECK_RES(restrict_ring(fd, bad, 2), -EINVAL);
	bad[1].opcode = 0xffff;
	CHECK_RES(restrict_ring(fd, bad, 2), -EINVAL);
	bad[1] = rreg(255);
	CHECK_RES(restrict_ring(fd, bad, 2), -EINVAL);
	bad[1] = rsqe(255);
	CHECK_RES(restrict_ring(fd, bad, 2), -EINVAL);
	CHECK_RES(restrict_ring(fd, NULL, 1), -EINVAL);
	CHECK_RES(restrict_ring(fd, good, 100000), -EINVAL);
	CHECK_RES(restrict_ring(fd, (void *)8, 1), -EFAULT);
	int e = restrict_ring(fd, good, 1);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(restrict_ring(fd, good, 1), -EBUSY);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqe_op_restricted(void)
{
	/*
	 * Only NOP allowed: a NOP completes; any other valid opcode completes with
	 * -EACCES, checked before the opcode's own checks (a READ on fd -1 is -EACCES, not
	 * -EBADF); an opcode past IORING_OP_LAST is still -EINVAL.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 8, 0);
	struct io_uring_restriction res[2] = { rsqe(IORING_OP_NOP), rreg(IORING_REGISTER_PROBE) };
	int e = restrict_ring(r.ring_fd, res, 2);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(enable(r.ring_fd), 0);
	CHECK_RES(nop_res(&r, 0, 1), 0);
	CHECK_RES(op_res(&r, IORING_OP_READ, 2), -EACCES);
	CHECK_RES(op_res(&r, IORING_OP_FSYNC, 3), -EACCES);
	CHECK_RES(op_res(&r, IORING_OP_TIMEOUT, 4), -EACCES);
	CHECK_RES(op_res(&r, 250, 5), -EINVAL);
	/*
	 * a batch NOP, READ, NOP: like any SQE that fails before it is issued, the
	 * refused READ ends the batch (no IORING_SETUP_SUBMIT_ALL): enter reports 2, the
	 * READ's CQE is -EACCES, the last NOP stays queued until the next enter.
	 */
	ut_q_nop(&r, 10, 0);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = IORING_OP_READ;
	sqe->fd = -1;
	sqe->user_data = 11;
	ut_q_nop(&r, 12, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[3];
	CHECK_OK(ut_reap(&r, 2, c));
	CHECK_EQ(c[0].user_data, 10);
	CHECK_RES(c[0].res, 0);
	CHECK_EQ(c[1].user_data, 11);
	CHECK_RES(c[1].res, -EACCES);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 12, 5000, &c[2]);
	CHECK_RES(c[2].res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqe_flags_allowed(void)
{
	/*
	 * SQE_FLAGS_ALLOWED = IO_LINK|ASYNC: NOPs with no flag, ASYNC, or a LINK chain
	 * complete; FIXED_FILE or IO_DRAIN on a NOP: -EACCES.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 8, 0);
	struct io_uring_restriction res[3] = {
		rsqe(IORING_OP_NOP), rreg(IORING_REGISTER_PROBE),
		rflags(IORING_RESTRICTION_SQE_FLAGS_ALLOWED, IOSQE_IO_LINK | IOSQE_ASYNC)
	};
	int e = restrict_ring(r.ring_fd, res, 3);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(enable(r.ring_fd), 0);
	CHECK_RES(nop_res(&r, 0, 1), 0);
	CHECK_RES(nop_res(&r, IOSQE_ASYNC, 2), 0);
	CHECK_RES(nop_res(&r, IOSQE_FIXED_FILE, 3), -EACCES);
	ut_q_nop(&r, 4, IOSQE_IO_LINK);
	ut_q_nop(&r, 5, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	CHECK(c[0].user_data == 4 && c[0].res == 0);
	CHECK(c[1].user_data == 5 && c[1].res == 0);
	CHECK_RES(nop_res(&r, IOSQE_IO_DRAIN, 6), -EACCES);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqe_flags_required(void)
{
	/*
	 * SQE_FLAGS_REQUIRED = ASYNC: a NOP without it is -EACCES, with it 0; required
	 * flags count as allowed, any other flag is still -EACCES.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 8, 0);
	struct io_uring_restriction res[3] = {
		rsqe(IORING_OP_NOP), rreg(IORING_REGISTER_PROBE),
		rflags(IORING_RESTRICTION_SQE_FLAGS_REQUIRED, IOSQE_ASYNC)
	};
	int e = restrict_ring(r.ring_fd, res, 3);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(enable(r.ring_fd), 0);
	CHECK_RES(nop_res(&r, 0, 1), -EACCES);
	CHECK_RES(nop_res(&r, IOSQE_ASYNC, 2), 0);
	CHECK_RES(nop_res(&r, IOSQE_ASYNC | IOSQE_FIXED_FILE, 3), -EACCES);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int register_op_restricted(void)
{
	/*
	 * REGISTER_OP PROBE only. Before ENABLE_RINGS registrations are not restricted
	 * (REGISTER_FILES works); after it PROBE works and everything else, ENABLE_RINGS
	 * and UNREGISTER_FILES included, is -EACCES; an opcode past IORING_REGISTER_LAST
	 * is still -EINVAL.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	int fd = r.ring_fd;
	struct io_uring_restriction res[2] = { rsqe(IORING_OP_NOP), rreg(IORING_REGISTER_PROBE) };
	int e = restrict_ring(fd, res, 2);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_OK(sys_register(fd, IORING_REGISTER_FILES, &f, 1));
	CHECK_RES(enable(fd), 0);
	static struct {
		struct io_uring_probe p;
		struct io_uring_probe_op ops[16];
	} pb;
	memset(&pb, 0, sizeof pb);
	CHECK_OK(sys_register(fd, IORING_REGISTER_PROBE, &pb, 16));
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0), EACCES);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0), EACCES);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_RESTRICTIONS, res, 2), EACCES);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, &f, 1), EACCES);
	CHECK_ERR(sys_register(fd, 200, NULL, 0), EINVAL);
	CHECK_RES(nop_res(&r, 0, 1), 0);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int only_register_restrictions(void)
{
	/*
	 * Restrictions that name register opcodes only. Linux up to 6.18 keeps one
	 * "restricted" switch, so the empty SQE-opcode set then denies every SQE (a NOP is
	 * -EACCES); later kernels track SQE and register restrictions apart, and the NOP
	 * completes. Both are accepted; the register side is restricted either way.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, 0);
	struct io_uring_restriction res[1] = { rreg(IORING_REGISTER_PROBE) };
	int e = restrict_ring(r.ring_fd, res, 1);
	if (e == -EINVAL)
		return UT_UNSUP;
	CHECK_RES(e, 0);
	CHECK_RES(enable(r.ring_fd), 0);
	int res_nop = nop_res(&r, 0, 1);
	ut_info("NOP with only register restrictions: %d (%s)", res_nop, ut_resname(res_nop));
	if (res_nop != 0 && res_nop != -EACCES)
		FAIL("NOP = %d (%s), expected -EACCES (Linux <= 6.18) or 0 (later)", res_nop,
		     ut_resname(res_nop));
	CHECK_ERR(sys_register(r.ring_fd, IORING_UNREGISTER_BUFFERS, NULL, 0), EACCES);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqpoll_waits(void)
{
	/*
	 * SQPOLL|R_DISABLED: an SQE published while the ring is disabled stays in the SQ
	 * (head unmoved, no CQE for 100 ms); SQ_WAKEUP is -EBADFD; once enabled the poller
	 * takes it.
	 */
	struct io_uring r;
	DISABLED_RING(&r, 4, IORING_SETUP_SQPOLL);
	int fd = r.ring_fd;
	ut_q_nop(&r, 0x71, 0);
	io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
	r.sq.sqe_head = r.sq.sqe_tail;
	CHECK_ERR(sys_enter(fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0), EBADFD);
	ut_sleep_ms(100);
	CHECK_EQ(io_uring_smp_load_acquire(r.sq.khead), 0);
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	CHECK_RES(enable(fd), 0);
	struct io_uring_cqe *cqe = NULL;
	long long end = ut_now_ms() + 5000;
	while (io_uring_peek_cqe(&r, &cqe) != 0) {
		if (ut_now_ms() > end)
			FAIL("no CQE within 5 s of ENABLE_RINGS (sq head %u)",
			     io_uring_smp_load_acquire(r.sq.khead));
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (IO_URING_READ_ONCE(*r.sq.kflags) & IORING_SQ_NEED_WAKEUP)
			CHECK_OK(sys_enter(fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0));
		ut_sleep_ms(1);
	}
	CHECK_EQ(cqe->user_data, 0x71);
	CHECK_RES(cqe->res, 0);
	io_uring_cqe_seen(&r, cqe);
	CHECK_EQ(io_uring_smp_load_acquire(r.sq.khead), 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- SINGLE_ISSUER: the task that enables is the issuer ---------------------- */

struct issuer {
	struct io_uring *r;
	int enable_res, submit_res, nop_res;
};

static void *enabler(void *arg)
{
	struct issuer *s = arg;
	s->enable_res = enable(s->r->ring_fd);
	ut_q_nop(s->r, 0x81, 0);
	s->submit_res = io_uring_submit(s->r);
	struct io_uring_cqe c;
	int w = ut_wait_cqe_ms(s->r, &c, 5000);
	s->nop_res = w < 0 ? w - 10000 : (c.user_data == 0x81 ? c.res : -9999);
	return NULL;
}

static int single_issuer_enabler(void)
{
	/*
	 * SINGLE_ISSUER|R_DISABLED set up by this thread: no issuer yet, so it may
	 * register; another thread enables the ring and submits; from then on this thread
	 * is not the issuer: submitting or registering is -EEXIST.
	 */
	struct io_uring r;
	int d = disabled_ring(&r, 4, IORING_SETUP_SINGLE_ISSUER);
	if (d == -EINVAL) /* R_DISABLED or SINGLE_ISSUER (6.0) unknown */
		return UT_UNSUP;
	CHECK_OK(d);
	static struct {
		struct io_uring_probe p;
		struct io_uring_probe_op ops[16];
	} pb;
	memset(&pb, 0, sizeof pb);
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 16));
	struct issuer s = { &r, 1, 1, 1 };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, enabler, &s), 0);
	pthread_join(th, NULL);
	CHECK_RES(s.enable_res, 0);
	CHECK_EQ(s.submit_res, 1);
	CHECK_RES(s.nop_res, 0);
	ut_q_nop(&r, 0x82, 0);
	CHECK_EQ(io_uring_submit(&r), -EEXIST);
	memset(&pb, 0, sizeof pb);
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 16), EEXIST);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static void *submitter(void *arg)
{
	struct issuer *s = arg;
	ut_q_nop(s->r, 0x91, 0);
	s->submit_res = io_uring_submit(s->r);
	return NULL;
}

static int single_issuer_self(void)
{
	/* SINGLE_ISSUER|R_DISABLED enabled by this thread: another thread's submit is -EEXIST */
	struct io_uring r;
	int d = disabled_ring(&r, 4, IORING_SETUP_SINGLE_ISSUER);
	if (d == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(d);
	CHECK_RES(enable(r.ring_fd), 0);
	struct issuer s = { &r, 1, 1, 1 };
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, submitter, &s), 0);
	pthread_join(th, NULL);
	CHECK_EQ(s.submit_res, -EEXIST);
	/* the SQE the other thread queued is still there: this thread submits it */
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x91, 5000, &c);
	CHECK_RES(c.res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(disabled, T(enter_refused), T(enable_rules), T(restrictions_need_disabled),
	  T(restrictions_once), T(restrictions_bad), T(sqe_op_restricted), T(sqe_flags_allowed),
	  T(sqe_flags_required), T(register_op_restricted), T(only_register_restrictions),
	  T(sqpoll_waits), T(single_issuer_enabler), T(single_issuer_self));
