/*
 * A registered eventfd beyond the basics: IORING_CQ_EVENTFD_DISABLED in the CQ ring's
 * flags, IORING_REGISTER_EVENTFD_ASYNC, and unregistering.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/eventfd.h>

/* the eventfd's count (0 if it was not signalled), reading it resets it */
static uint64_t efd_take(int efd)
{
	uint64_t v = 0;
	if (read(efd, &v, 8) != 8)
		return 0;
	return v;
}

static int nop_and_wait(struct io_uring *r, uint64_t ud, unsigned flags, const char *file,
			int line)
{
	ut_q_nop(r, ud, flags);
	if (io_uring_submit(r) != 1)
		return ut_fail(file, line, "submit");
	struct io_uring_cqe c;
	int ret = ut_wait_cqe_ms(r, &c, 5000);
	if (ret < 0 || c.user_data != ud || c.res != 0)
		return ut_fail(file, line, "NOP %llu: ret %d res %d", (unsigned long long)ud,
			       ret, ret < 0 ? 0 : c.res);
	return UT_OK;
}
#define NOP_WAIT(r, ud, fl) TRY(nop_and_wait((r), (ud), (fl), __FILE__, __LINE__))

/* A 4-entry ring and an eventfd (count 0, EFD_NONBLOCK): 0 or -errno. */
static int ring_efd(struct io_uring *r, int *efd)
{
	int ret = ut_ring(r, 4);
	if (ret < 0)
		return ret;
	*efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return *efd < 0 ? -errno : 0;
}

/*
 * A 1-byte READ of p[0] (sqe flags `flags`, user_data `ud`) is submitted and posts no
 * CQE; then `byte` is written to p[1] and the read's CQE (copied to *c) comes within 5 s.
 */
static int read_then_write(struct io_uring *r, int p[2], uint64_t ud, unsigned flags,
			   const char *byte, struct io_uring_cqe *c, const char *file, int line)
{
	static char b[4];
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, p[0], b, 1, 0);
	sqe->flags = (uint8_t)flags;
	sqe->user_data = ud;
	TRY(ut_submit_expect_none(r, 1, file, line));
	if (write(p[1], byte, 1) != 1)
		return ut_fail(file, line, "write(2) to the pipe: %s", ut_errname(errno));
	return ut_wait_ud(r, ud, 5000, c, file, line);
}
#define READ_THEN_WRITE(r, p, ud, fl, byte, c)                                          \
	TRY(read_then_write((r), (p), (ud), (fl), (byte), (c), __FILE__, __LINE__))

static void close_all(struct io_uring *r, int p[2], int efd)
{
	close(p[0]);
	close(p[1]);
	close(efd);
	io_uring_queue_exit(r);
}

static int toggle(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring r;
	int efd;
	CHECK_OK(ring_efd(&r, &efd));
	CHECK_OK(io_uring_register_eventfd(&r, efd));
	if (!r.cq.kflags)
		FAIL("the kernel reports no CQ flags field");
	CHECK_EQ(*r.cq.kflags & IORING_CQ_EVENTFD_DISABLED, 0);
	NOP_WAIT(&r, 1, 0);
	CHECK(efd_take(efd) >= 1);
	/* disabled: CQEs still come, the eventfd stays quiet */
	CHECK_OK(io_uring_cq_eventfd_toggle(&r, false));
	CHECK(*r.cq.kflags & IORING_CQ_EVENTFD_DISABLED);
	NOP_WAIT(&r, 2, 0);
	NOP_WAIT(&r, 3, 0);
	CHECK_EQ(efd_take(efd), 0);
	/* and a pipe read completed later, in the kernel's own time, stays quiet too */
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	struct io_uring_cqe c;
	READ_THEN_WRITE(&r, p, 4, 0, "x", &c);
	CHECK_EQ(efd_take(efd), 0);
	/* enabled again */
	CHECK_OK(io_uring_cq_eventfd_toggle(&r, true));
	CHECK_EQ(*r.cq.kflags & IORING_CQ_EVENTFD_DISABLED, 0);
	NOP_WAIT(&r, 5, 0);
	CHECK(efd_take(efd) >= 1);
	close_all(&r, p, efd);
	return UT_OK;
}

static int unknown_cq_flags(void)
{
	/* the CQ flags word holds other bits the kernel ignores; only bit 0 matters */
	GATE(IORING_OP_NOP);
	struct io_uring r;
	int efd;
	CHECK_OK(ring_efd(&r, &efd));
	CHECK_OK(io_uring_register_eventfd(&r, efd));
	__atomic_store_n(r.cq.kflags, 0xfffffffeu, __ATOMIC_RELEASE);
	NOP_WAIT(&r, 1, 0);
	CHECK(efd_take(efd) >= 1);
	__atomic_store_n(r.cq.kflags, 0, __ATOMIC_RELEASE);
	close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int eventfd_async(void)
{
	/*
	 * REGISTER_EVENTFD_ASYNC: Linux signals only for CQEs posted by an io-wq worker.
	 * Not for a NOP completed inline by the submitting enter; yes for an IOSQE_ASYNC
	 * pipe read (a worker waits in it); not for the same read without IOSQE_ASYNC,
	 * which is woken by the write and completed by task work in the submitter.
	 */
	GATE(IORING_OP_NOP);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int efd;
	CHECK_OK(ring_efd(&r, &efd));
	CHECK_OK(io_uring_register_eventfd_async(&r, efd));
	NOP_WAIT(&r, 1, 0);
	CHECK_EQ(efd_take(efd), 0);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	struct io_uring_cqe c;
	READ_THEN_WRITE(&r, p, 2, IOSQE_ASYNC, "x", &c);
	CHECK_RES(c.res, 1);
	uint64_t v = 0;
	CHECK_EQ(ut_read_within(efd, &v, 8, 5000), 8);
	CHECK(v >= 1);
	/* the same read without IOSQE_ASYNC: woken by the write, completed by task work */
	READ_THEN_WRITE(&r, p, 3, 0, "y", &c);
	CHECK_RES(c.res, 1);
	ut_sleep_ms(100);
	CHECK_EQ(efd_take(efd), 0);
	close_all(&r, p, efd);
	return UT_OK;
}

static int unregister(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring r;
	int efd;
	CHECK_OK(ring_efd(&r, &efd));
	CHECK_RES(io_uring_unregister_eventfd(&r), -ENXIO);
	CHECK_OK(io_uring_register_eventfd(&r, efd));
	CHECK_RES(io_uring_register_eventfd(&r, efd), -EBUSY);
	CHECK_OK(io_uring_unregister_eventfd(&r));
	NOP_WAIT(&r, 1, 0);
	CHECK_EQ(efd_take(efd), 0);
	/* registered again after unregistering */
	CHECK_OK(io_uring_register_eventfd(&r, efd));
	NOP_WAIT(&r, 2, 0);
	CHECK(efd_take(efd) >= 1);
	/* closing the eventfd while registered: the ring holds its own reference */
	close(efd);
	NOP_WAIT(&r, 3, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(eventfd2, T(toggle), T(unknown_cq_flags), T(eventfd_async), T(unregister));
