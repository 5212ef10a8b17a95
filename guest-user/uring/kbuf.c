/*
 * Classic provided buffers: IORING_OP_PROVIDE_BUFFERS / IORING_OP_REMOVE_BUFFERS, and
 * READ / READV with IOSQE_BUFFER_SELECT taking a buffer from a group (buf_group).
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/uio.h>

#define DATA_LEN 1024

static unsigned char data[DATA_LEN];

/* A file holding DATA_LEN pattern bytes (also left in data[]). */
static int data_file(void)
{
	return ut_data_file(data, sizeof data, 11);
}

static int run(struct io_uring *r, struct io_uring_sqe *sqe, struct io_uring_cqe *out)
{
	return ut_run_sqe(r, sqe, 0xb0, out);
}

static struct io_uring_sqe *q_provide(struct io_uring *r, void *addr, int len, int nr,
				      int group, int bid)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_provide_buffers(sqe, addr, len, nr, group, bid);
	return sqe;
}

static struct io_uring_sqe *q_remove(struct io_uring *r, int nr, int group)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_remove_buffers(sqe, nr, group);
	return sqe;
}

/* The CQE must carry IORING_CQE_F_BUFFER; returns the buffer id, or -1. */
static int cqe_bid(const struct io_uring_cqe *c)
{
	if (!(c->flags & IORING_CQE_F_BUFFER))
		return -1;
	return (int)(c->flags >> IORING_CQE_BUFFER_SHIFT);
}

/* A ring of 8 and the data file. */
static int ring_file(struct io_uring *r, int *fd)
{
	CHECK_OK(ut_ring(r, 8));
	*fd = data_file();
	CHECK_OK(*fd);
	return UT_OK;
}

#define PROVIDE(r, addr, len, nr, group, bid)                                  \
	CHECK_RES(run((r), q_provide((r), (addr), (len), (nr), (group), (bid)), NULL), 0)

static int select_order(void)
{
	/*
	 * 4 buffers of 64 bytes, group 7, ids 10..13: four READs (one at a time) get ids
	 * 10, 11, 12, 13 in that order (first provided, first used); each CQE has
	 * IORING_CQE_F_BUFFER and the id in flags >> IORING_CQE_BUFFER_SHIFT, and the data
	 * is in that buffer. A fifth READ gets -ENOBUFS with no buffer flag.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char bufs[4][64];
	memset(bufs, 0xee, sizeof bufs);
	PROVIDE(&r, bufs, 64, 4, 7, 10);
	char order[64];
	int k = 0;
	for (int i = 0; i < 4; i++) {
		struct io_uring_cqe c;
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 64 * i, 7), &c), 64);
		int bid = cqe_bid(&c);
		k += snprintf(order + k, sizeof order - k, " %d", bid);
		if (bid < 10 || bid > 13)
			FAIL("read %d: CQE flags 0x%x, no buffer 10..13", i, c.flags);
		CHECK_EQ(c.flags & 0xffff, IORING_CQE_F_BUFFER);
		CHECK(memcmp(bufs[bid - 10], data + 64 * i, 64) == 0);
		CHECK_EQ(bid, 10 + i);
	}
	ut_info("buffer ids in order of use:%s", order);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 7), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	/* a group nobody provided */
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 8), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int two_batches(void)
{
	/*
	 * Two PROVIDE_BUFFERS into one group (ids 0..1, then 5..6), and a buffer given back
	 * after use: buffers are used in the order they were provided, across batches.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char a[2][32], b[2][32];
	PROVIDE(&r, a, 32, 2, 3, 0);
	PROVIDE(&r, b, 32, 2, 3, 5);
	int want[] = { 0, 1, 5, 6 };
	char order[64];
	int k = 0;
	for (int i = 0; i < 4; i++) {
		struct io_uring_cqe c;
		CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 32 * i, 3), &c), 32);
		k += snprintf(order + k, sizeof order - k, " %d", cqe_bid(&c));
		CHECK_EQ(cqe_bid(&c), want[i]);
	}
	ut_info("buffer ids in order of use:%s", order);
	CHECK(memcmp(a[0], data, 32) == 0 && memcmp(a[1], data + 32, 32) == 0);
	CHECK(memcmp(b[0], data + 64, 32) == 0 && memcmp(b[1], data + 96, 32) == 0);
	/* give id 1 back: it is the only one, so the next read gets it */
	PROVIDE(&r, a[1], 32, 1, 3, 1);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 32, 512, 3), &c), 32);
	CHECK_EQ(cqe_bid(&c), 1);
	CHECK(memcmp(a[1], data + 512, 32) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int lengths(void)
{
	/*
	 * The read takes min(sqe->len, buffer size): len 16 of a 64-byte buffer reads 16,
	 * len 200 reads 64. A read at EOF (res 0) still consumes its buffer (F_BUFFER set).
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char bufs[3][64];
	memset(bufs, 0xee, sizeof bufs);
	PROVIDE(&r, bufs, 64, 3, 1, 0);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 16, 100, 1), &c), 16);
	CHECK_EQ(cqe_bid(&c), 0);
	CHECK(memcmp(bufs[0], data + 100, 16) == 0);
	CHECK_EQ(bufs[0][16], 0xee);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 200, 200, 1), &c), 64);
	CHECK_EQ(cqe_bid(&c), 1);
	CHECK(memcmp(bufs[1], data + 200, 64) == 0);
	CHECK_EQ(bufs[2][0], 0xee);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, DATA_LEN, 1), &c), 0);
	ut_info("read at EOF: flags 0x%x", c.flags);
	CHECK_EQ(cqe_bid(&c), 2);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 1), &c), -ENOBUFS);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int remove_buffers(void)
{
	/* REMOVE_BUFFERS answers how many it removed; an unknown group -ENOENT */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_REMOVE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char bufs[5][16];
	PROVIDE(&r, bufs, 16, 5, 9, 0);
	CHECK_RES(run(&r, q_remove(&r, 2, 9), NULL), 2);
	/* the first two provided went first: the next read gets id 2 */
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 16, 0, 9), &c), 16);
	CHECK_EQ(cqe_bid(&c), 2);
	CHECK_RES(run(&r, q_remove(&r, 10, 9), NULL), 2);
	/*
	 * The group stays, empty: removing from it answers 0 (Linux 6.18; 5.x kernels freed
	 * an emptied group and answered -ENOENT). A group never provided is -ENOENT.
	 */
	CHECK_RES(run(&r, q_remove(&r, 1, 9), NULL), 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 16, 0, 9), &c), -ENOBUFS);
	CHECK_RES(run(&r, q_remove(&r, 1, 1234), NULL), -ENOENT);
	/* the group can be filled again */
	PROVIDE(&r, bufs, 16, 1, 9, 42);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 16, 0, 9), &c), 16);
	CHECK_EQ(cqe_bid(&c), 42);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int select_unsupported(void)
{
	/*
	 * IOSQE_BUFFER_SELECT on an opcode that cannot take a buffer: -EOPNOTSUPP (Linux
	 * rejects it at submission from the opcode table, before the opcode's own checks).
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char bufs[2][16];
	PROVIDE(&r, bufs, 16, 2, 4, 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_write(sqe, fd, NULL, 16, 0);
	ut_sel(sqe, 4);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, sqe, &c), -EOPNOTSUPP);
	CHECK_EQ(c.flags, 0);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, 0);
	ut_sel(sqe, 4);
	CHECK_RES(run(&r, sqe, &c), -EOPNOTSUPP);
	/* READ_FIXED neither */
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_read_fixed(sqe, fd, NULL, 16, 0, 0);
	ut_sel(sqe, 4);
	CHECK_RES(run(&r, sqe, &c), -EOPNOTSUPP);
	/* both buffers are still there */
	CHECK_RES(run(&r, q_remove(&r, 10, 4), NULL), 2);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int readv_select(void)
{
	/*
	 * READV with BUFFER_SELECT: one iovec whose iov_len caps the read (iov_base is
	 * ignored); more than one iovec is -EINVAL.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READV);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char bufs[2][128];
	PROVIDE(&r, bufs, 128, 2, 5, 20);
	/* one iovec caps the read, two are -EINVAL; iov_len above the buffer: its size wins */
	TRY(ut_sel_readv_cases(&r, fd, 5, 0xb0, data, bufs[0], bufs[1], 20, 0));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int provide_errors(void)
{
	/*
	 * Linux 6.18's checks, in its order: nr 0 or > 65536 -E2BIG; len 0 -EINVAL;
	 * addr + len * nr wrapping -EOVERFLOW; not user memory -EFAULT; first id > 65535
	 * -E2BIG; first id + nr > 65536 -EINVAL. Reserved fields -EINVAL.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_REMOVE_BUFFERS);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	static unsigned char bufs[4][16];
	static const struct {
		const char *what;
		uint64_t addr; /* 1: bufs */
		unsigned len;
		int nr, bid;
		int want;
	} cases[] = {
		{ "nr 0", 1, 16, 0, 0, -E2BIG },
		{ "nr 65537", 1, 16, 65537, 0, -E2BIG },
		{ "len 0", 1, 0, 1, 0, -EINVAL },
		{ "addr + size wraps", (uint64_t)-8, 16, 1, 0, -EOVERFLOW },
		{ "a kernel address", 0xffff800000000000ull, 16, 1, 0, -EFAULT },
		{ "bid 65536", 1, 16, 1, 65536, -E2BIG },
		{ "bid 65530 + nr 10", 1, 16, 10, 65530, -EINVAL },
		{ "nr 0 and len 0", 1, 0, 0, 0, -E2BIG },
		{ "len 0 and bid 65536", 1, 0, 1, 65536, -EINVAL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct io_uring_sqe *sqe = q_provide(
			&r, cases[i].addr == 1 ? (void *)bufs : (void *)(uintptr_t)cases[i].addr,
			(int)cases[i].len, cases[i].nr, 2, cases[i].bid);
		int res = run(&r, sqe, NULL);
		if (res != cases[i].want)
			FAIL("provide with %s: %d (%s), expected %s", cases[i].what, res,
			     ut_resname(res), ut_resname(cases[i].want));
	}
	/* none of those created the group */
	CHECK_RES(run(&r, q_remove(&r, 1, 2), NULL), -ENOENT);
	struct io_uring_sqe *sqe = q_provide(&r, bufs, 16, 1, 2, 0);
	sqe->rw_flags = 1;
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	sqe = q_provide(&r, bufs, 16, 1, 2, 0);
	sqe->splice_fd_in = 1;
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	/* the last id, 65535, is allowed */
	PROVIDE(&r, bufs, 16, 1, 2, 65535);
	/*
	 * nr 65536 passes the checks, but a group holds at most 65535 buffers: Linux adds
	 * 65535 and still answers 0; one more into the full group is -EOVERFLOW.
	 */
	static unsigned char big[65536 + 1];
	PROVIDE(&r, big, 1, 65536, 3, 0);
	CHECK_RES(run(&r, q_provide(&r, big + 65536, 1, 1, 3, 0), NULL), -EOVERFLOW);
	CHECK_RES(run(&r, q_remove(&r, 65536, 3), NULL), 65535);
	PROVIDE(&r, big + 65536, 1, 1, 3, 0);
	CHECK_RES(run(&r, q_remove(&r, 2, 3), NULL), 1);
	/* REMOVE_BUFFERS: nr 0 or > 65536 and reserved fields are -EINVAL */
	CHECK_RES(run(&r, q_remove(&r, 0, 2), NULL), -EINVAL);
	CHECK_RES(run(&r, q_remove(&r, 65537, 2), NULL), -EINVAL);
	sqe = q_remove(&r, 1, 2);
	sqe->addr = 1;
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	sqe = q_remove(&r, 1, 2);
	sqe->off = 1;
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	sqe = q_remove(&r, 1, 2);
	sqe->len = 1;
	CHECK_RES(run(&r, sqe, NULL), -EINVAL);
	CHECK_RES(run(&r, q_remove(&r, 100, 2), NULL), 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pipe_waits(void)
{
	/*
	 * A READ with BUFFER_SELECT on an empty pipe takes its buffer at issue and keeps it
	 * while it waits (Linux 6.18): another READ of the group meanwhile gets -ENOBUFS.
	 * When data comes, it lands in that buffer.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	static unsigned char bufs[2][64];
	memset(bufs, 0, sizeof bufs);
	PROVIDE(&r, bufs[0], 64, 1, 12, 7);
	struct io_uring_sqe *sqe = ut_q_sel_read(&r, p[0], 64, 0, 12);
	sqe->user_data = 0x91;
	SUBMIT_NONE(&r, 1);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 12), &c), -ENOBUFS);
	/* a buffer provided now goes to the next reader, not to the waiting one */
	PROVIDE(&r, bufs[1], 64, 1, 12, 8);
	FEED_WAIT(&r, p[1], "pipe data", 9, &c);
	CHECK_EQ(c.user_data, 0x91);
	CHECK_RES(c.res, 9);
	CHECK_EQ(cqe_bid(&c), 7);
	CHECK(memcmp(bufs[0], "pipe data", 9) == 0);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 64, 12), &c), 64);
	CHECK_EQ(cqe_bid(&c), 8);
	CHECK(memcmp(bufs[1], data + 64, 64) == 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pipe_empty_group(void)
{
	/*
	 * With no buffer in the group a READ on an empty pipe fails at once with -ENOBUFS
	 * (it selects before it would wait); the pipe keeps data written later.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC | O_NONBLOCK));
	static unsigned char buf[64];
	PROVIDE(&r, buf, 64, 1, 13, 0);
	CHECK_RES(run(&r, q_remove(&r, 1, 13), NULL), 1);
	struct io_uring_cqe c;
	CHECK_RES(run(&r, ut_q_sel_read(&r, p[0], 64, 0, 13), &c), -ENOBUFS);
	CHECK_EQ(c.flags, 0);
	CHECK_EQ(write(p[1], "late", 4), 4);
	char b[8];
	CHECK_EQ(ut_read_within(p[0], b, sizeof b, 1000), 4);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_waiting_read(void)
{
	/*
	 * Cancelling a waiting buffer-select READ: its -ECANCELED CQE carries the buffer it
	 * held (IORING_CQE_F_BUFFER and the id), so the buffer is the application's again,
	 * not the group's: the next READ finds the group empty.
	 */
	GATE(IORING_OP_PROVIDE_BUFFERS);
	GATE(IORING_OP_READ);
	GATE(IORING_OP_ASYNC_CANCEL);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	static unsigned char buf[64];
	PROVIDE(&r, buf, 64, 1, 14, 3);
	struct io_uring_sqe *sqe = ut_q_sel_read(&r, p[0], 64, 0, 14);
	sqe->user_data = 0x93;
	SUBMIT_NONE(&r, 1);
	CANCEL_WAITING(&r, 0x93, 0x94, IORING_CQE_F_BUFFER | (3u << IORING_CQE_BUFFER_SHIFT));
	struct io_uring_cqe c1;
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 14), &c1), -ENOBUFS);
	PROVIDE(&r, buf, 64, 1, 14, 3);
	CHECK_RES(run(&r, ut_q_sel_read(&r, fd, 64, 0, 14), &c1), 64);
	CHECK_EQ(cqe_bid(&c1), 3);
	close(p[0]);
	close(p[1]);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(kbuf, T(select_order), T(two_batches), T(lengths), T(remove_buffers),
	  T(select_unsupported), T(readv_select), T(provide_errors),
	  T(pipe_waits), T(pipe_empty_group), T(cancel_waiting_read));
