/*
 * IORING_OP_READV_FIXED / IORING_OP_WRITEV_FIXED (Linux 6.15): READV/WRITEV whose
 * iovecs (sqe->addr, sqe->len of them) must all lie inside registered buffer
 * sqe->buf_index; sqe->off is the file offset as for READV.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/uio.h>

#define OP_READV_FIXED 60
#define OP_WRITEV_FIXED 61
#define BUF 16384

static unsigned char bufs[2][BUF] __attribute__((aligned(4096)));
static unsigned char filedata[3 * 4096];

/* A ring with bufs[0] and bufs[1] registered as buffers 0 and 1. */
static int ring_bufs(struct io_uring *r)
{
	int ret = ut_ring(r, 4);
	if (ret < 0)
		return ret;
	struct iovec v[2] = { { bufs[0], BUF }, { bufs[1], BUF } };
	return io_uring_register_buffers(r, v, 2);
}

/* A file holding filedata[] (a pattern). */
static int data_file(void)
{
	return ut_data_file(filedata, sizeof filedata, 60);
}

static int run_v(struct io_uring *r, int op, int fd, const struct iovec *iov, unsigned n,
		 uint64_t off, unsigned buf_index, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)iov;
	sqe->len = n;
	sqe->off = off;
	sqe->buf_index = (uint16_t)buf_index;
	sqe->user_data = ud;
	return ut_run_ud(r, ud);
}

static int readv_fixed(void)
{
	/*
	 * Several iovecs at odd places in buffer 1: the file's bytes land in them in order,
	 * nothing between them is touched; at EOF the read is short.
	 */
	GATE(OP_READV_FIXED);
	struct io_uring r;
	CHECK_OK(ring_bufs(&r));
	int fd = data_file();
	CHECK_OK(fd);
	memset(bufs[1], 0xee, BUF);
	unsigned char *b = bufs[1];
	struct iovec v[3] = { { b + 100, 300 }, { b + 5000, 1000 }, { b + 9001, 4097 } };
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, v, 3, 10, 1, 0x10), 5397);
	CHECK(memcmp(b + 100, filedata + 10, 300) == 0);
	CHECK(memcmp(b + 5000, filedata + 310, 1000) == 0);
	CHECK(memcmp(b + 9001, filedata + 1310, 4097) == 0);
	for (int i = 0; i < BUF; i++) {
		int in = (i >= 100 && i < 400) || (i >= 5000 && i < 6000) || (i >= 9001 && i < 13098);
		if (!in && b[i] != 0xee)
			FAIL("byte %d outside the iovecs changed to 0x%02x", i, b[i]);
	}
	/* from offset 12000 of 12288: 288 bytes, all in the first iovec */
	memset(b, 0xee, BUF);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, v, 3, 12000, 1, 0x11), 288);
	CHECK(memcmp(b + 100, filedata + 12000, 288) == 0);
	CHECK_EQ(b[388], 0xee);
	CHECK_EQ(b[5000], 0xee);
	/* from offset 11000: 1288 bytes, 300 + 988 */
	memset(b, 0xee, BUF);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, v, 3, 11000, 1, 0x13), 1288);
	CHECK(memcmp(b + 100, filedata + 11000, 300) == 0);
	CHECK(memcmp(b + 5000, filedata + 11300, 988) == 0);
	CHECK_EQ(b[5988], 0xee);
	CHECK_EQ(b[9001], 0xee);
	/* the whole buffer, as one iovec */
	struct iovec all = { bufs[0], BUF };
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, &all, 1, 0, 0, 0x12), (int)sizeof filedata);
	CHECK(memcmp(bufs[0], filedata, sizeof filedata) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int writev_fixed(void)
{
	/* iovecs in buffer 0 are written in order at sqe->off */
	GATE(OP_WRITEV_FIXED);
	struct io_uring r;
	CHECK_OK(ring_bufs(&r));
	int fd = data_file();
	CHECK_OK(fd);
	unsigned char *b = bufs[0];
	ut_pattern(b, BUF, 61);
	struct iovec v[3] = { { b + BUF - 7, 7 }, { b, 1 }, { b + 4096, 4096 } };
	CHECK_RES(run_v(&r, OP_WRITEV_FIXED, fd, v, 3, 3, 0, 0x20), 4104);
	unsigned char got[3 * 4096];
	CHECK_EQ(pread(fd, got, sizeof got, 0), (ssize_t)sizeof got);
	unsigned char want[3 * 4096];
	memcpy(want, filedata, sizeof want);
	memcpy(want + 3, b + BUF - 7, 7);
	memcpy(want + 10, b, 1);
	memcpy(want + 11, b + 4096, 4096);
	CHECK(memcmp(got, want, sizeof want) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int outside_buffer(void)
{
	/*
	 * An iovec that leaves the named buffer, even by one byte, or lies in the other
	 * registered buffer: -EFAULT, and nothing is read or written. So is an iovec of
	 * length 0, even inside the buffer.
	 */
	GATE(OP_READV_FIXED);
	GATE(OP_WRITEV_FIXED);
	struct io_uring r;
	CHECK_OK(ring_bufs(&r));
	int fd = data_file();
	CHECK_OK(fd);
	unsigned char *b = bufs[1];
	struct {
		struct iovec bad;
		const char *what;
	} cases[] = {
		{ { b + BUF - 10, 11 }, "one byte past the end" },
		{ { b - 1, 2 }, "one byte before the start" },
		{ { bufs[0], 16 }, "in buffer 0" },
		{ { b, BUF + 1 }, "the whole buffer and one byte" },
		{ { b + 77, 0 }, "length 0 inside the buffer" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct iovec v[2] = { { b, 8 }, cases[i].bad };
		memset(b, 0xee, BUF);
		memset(bufs[0], 0xee, BUF);
		int res = run_v(&r, OP_READV_FIXED, fd, v, 2, 0, 1, 0x30 + i);
		if (res != -EFAULT)
			FAIL("READV_FIXED, %s: %d (%s), expected EFAULT", cases[i].what, res,
			     ut_resname(res));
		CHECK_EQ(b[0], 0xee);
		ut_pattern(b, BUF, 62);
		res = run_v(&r, OP_WRITEV_FIXED, fd, v, 2, 0, 1, 0x40 + i);
		if (res != -EFAULT)
			FAIL("WRITEV_FIXED, %s: %d (%s), expected EFAULT", cases[i].what, res,
			     ut_resname(res));
	}
	unsigned char got[64];
	CHECK_EQ(pread(fd, got, sizeof got, 0), (ssize_t)sizeof got);
	CHECK(memcmp(got, filedata, sizeof got) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_index_and_array(void)
{
	/*
	 * buf_index past the registered buffers, or none registered: -EFAULT. An
	 * unreadable iovec array: -EFAULT.
	 */
	GATE(OP_READV_FIXED);
	struct io_uring r, none;
	CHECK_OK(ring_bufs(&r));
	CHECK_OK(ut_ring(&none, 4));
	int fd = data_file();
	CHECK_OK(fd);
	struct iovec v = { bufs[0], 8 };
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, &v, 1, 0, 2, 0x50), -EFAULT);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, &v, 1, 0, 0xffff, 0x51), -EFAULT);
	CHECK_RES(run_v(&none, OP_READV_FIXED, fd, &v, 1, 0, 0, 0x52), -EFAULT);
	CHECK_RES(run_v(&r, OP_WRITEV_FIXED, fd, &v, 1, 0, 2, 0x53), -EFAULT);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, (struct iovec *)8, 1, 0, 0, 0x54), -EFAULT);
	close(fd);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&none);
	return UT_OK;
}

static int counts(void)
{
	/* zero iovecs: res 0; up to UIO_MAXIOV (1024) iovecs; 1025: -EINVAL */
	GATE(OP_READV_FIXED);
	struct io_uring r;
	CHECK_OK(ring_bufs(&r));
	int fd = data_file();
	CHECK_OK(fd);
	static struct iovec many[1025];
	for (int i = 0; i < 1025; i++)
		many[i] = (struct iovec){ bufs[0] + 2 * i, 1 };
	memset(bufs[0], 0xee, BUF);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, many, 0, 0, 0, 0x60), 0);
	CHECK_EQ(bufs[0][0], 0xee);
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, many, 1024, 0, 0, 0x61), 1024);
	for (int i = 0; i < 1024; i++) {
		CHECK_EQ(bufs[0][2 * i], filedata[i]);
		CHECK_EQ(bufs[0][2 * i + 1], 0xee);
	}
	CHECK_RES(run_v(&r, OP_READV_FIXED, fd, many, 1025, 0, 0, 0x62), -EINVAL);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(vfixed, T(readv_fixed), T(writev_fixed), T(outside_buffer), T(bad_index_and_array),
	  T(counts));
