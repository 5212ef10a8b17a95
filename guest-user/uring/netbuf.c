/*
 * Sends and receives with buffers the kernel picks: SEND from a provided-buffer ring
 * (IOSQE_BUFFER_SELECT, Linux 6.10), bundles (IORING_RECVSEND_BUNDLE, Linux 6.10: one CQE
 * for a run of ring buffers, naming the first) for SEND and RECV, once and multishot, and
 * SEND_ZC and SENDMSG_ZC from a registered buffer (IORING_RECVSEND_FIXED_BUF), and SEND and
 * SEND_ZC of an iovec array (IORING_SEND_VECTORIZED, Linux 6.18). liburing 2.3 knows
 * neither the bundle and vectorized flags nor the bundle feature bit: they are defined here.
 */
#include "sockut.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif
#ifndef IORING_SEND_VECTORIZED
#define IORING_SEND_VECTORIZED (1U << 5)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

/* Adds buffer `bid` (`len` bytes at `p`) at the ring's tail, published at once. */
static void add_buf(struct bufring *b, void *p, unsigned len, unsigned short bid)
{
	io_uring_buf_ring_add(b->br, p, len, bid, io_uring_buf_ring_mask(b->entries), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

/* A ring with IORING_FEAT_RECVSEND_BUNDLE; UT_UNSUP on a kernel without bundles. */
static int bundle_ring(struct io_uring *r, unsigned entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int ret = io_uring_queue_init_params(entries, r, &p);
	if (ret < 0)
		return ret;
	if (!(p.features & IORING_FEAT_RECVSEND_BUNDLE)) {
		io_uring_queue_exit(r);
		ut_unsup_reason = "no IORING_FEAT_RECVSEND_BUNDLE (Linux < 6.10)";
		return UT_UNSUP;
	}
	return 0;
}
#define BUNDLE_RING(r, n)                                                      \
	do {                                                                   \
		int _br = bundle_ring((r), (n));                               \
		if (_br == UT_UNSUP)                                           \
			return UT_UNSUP;                                       \
		CHECK_OK(_br);                                                 \
	} while (0)

/* The end of a test: the socket pair closed, the buffer ring (if any) and the ring gone. */
static int finish(struct io_uring *r, struct bufring *b, int sv[2])
{
	close(sv[0]);
	close(sv[1]);
	if (b)
		bufring_free(r, b);
	io_uring_queue_exit(r);
	return UT_OK;
}

/* A SEND or RECV of `fd` taking its buffer from group `bgid`; `ioprio` its flags. */
static struct io_uring_sqe *q_sel(struct io_uring *r, int op, int fd, unsigned len, int bgid,
				  unsigned ioprio, uint64_t ud)
{
	struct io_uring_sqe *sqe = q_op(r, op, fd, ud);
	sqe->len = len;
	sqe->ioprio = (uint16_t)ioprio;
	ut_sel(sqe, bgid);
	return sqe;
}

/* Reads exactly `len` bytes from `fd` (waiting at most 5 s) and compares them with `want`. */
static int got_bytes(int fd, const char *want, size_t len, const char *file, int line)
{
	char buf[256];
	size_t got = 0;
	while (got < len) {
		ssize_t n = ut_read_within(fd, buf + got, len - got, 5000);
		if (n <= 0)
			return ut_fail(file, line, "read %zu of %zu bytes", got, len);
		got += (size_t)n;
	}
	if (memcmp(buf, want, len))
		return ut_fail(file, line, "the peer read '%.*s', expected '%.*s'", (int)len, buf,
			       (int)len, want);
	return UT_OK;
}
#define GOT_BYTES(fd, want) TRY(got_bytes((fd), (want), strlen(want), __FILE__, __LINE__))

static int send_select(void)
{
	/*
	 * SEND with IOSQE_BUFFER_SELECT (addr 0): the head buffer of the ring is the message,
	 * its whole length; the CQE names it (F_BUFFER, its id) and it is used up. A len caps
	 * the bytes taken from the buffer. An empty ring: -ENOBUFS.
	 */
	GATE(IORING_OP_SEND);
	struct io_uring r;
	BUNDLE_RING(&r, 8);
	struct bufring b;
	BUFRING(&r, &b, 4, 3);
	static char a[] = "hello", w[] = "world!", c[] = "capped";
	add_buf(&b, a, 5, 0);
	add_buf(&b, w, 6, 1);
	add_buf(&b, c, 6, 2);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct io_uring_cqe cq;
	q_sel(&r, IORING_OP_SEND, sv[0], 0, 3, 0, 0x10);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x10, 5, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(0, 0));
	GOT_BYTES(sv[1], "hello");
	q_sel(&r, IORING_OP_SEND, sv[0], 0, 3, 0, 0x11);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x11, 6, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(1, 0));
	GOT_BYTES(sv[1], "world!");
	q_sel(&r, IORING_OP_SEND, sv[0], 3, 3, 0, 0x12);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x12, 3, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(2, 0));
	GOT_BYTES(sv[1], "cap");
	q_sel(&r, IORING_OP_SEND, sv[0], 0, 3, 0, 0x13);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x13, -ENOBUFS, 0, &cq);
	CHECK_EQ(cq.flags, 0);
	CHECK_ERR(recv(sv[1], a, sizeof a, MSG_DONTWAIT), EAGAIN);
	EMPTY(&r);
	return finish(&r, &b, sv);
}

static int send_bundle(void)
{
	/*
	 * A SEND bundle sends the ring's buffers in order as one stream of bytes, and one
	 * CQE names the first. Without a len it takes every buffer there is: one CQE with the
	 * total (15). With a len (9) it takes the buffers that fit (4 + 5) and posts a CQE
	 * with F_MORE, then goes on with the rest, uncapped, and ends when a pass empties
	 * the ring. An empty ring: -ENOBUFS. SENDMSG with a bundle: -EINVAL. Linux 6.18 takes
	 * a bundle without IOSQE_BUFFER_SELECT too: its buffer goes out in a CQE with F_MORE,
	 * then a second pass has nothing left to send and ends it with res 0.
	 */
	GATE(IORING_OP_SEND);
	struct io_uring r;
	BUNDLE_RING(&r, 8);
	struct bufring b;
	BUFRING(&r, &b, 8, 4);
	static char p0[] = "abcd", p1[] = "efghi", p2[] = "jklmno";
	add_buf(&b, p0, 4, 0);
	add_buf(&b, p1, 5, 1);
	add_buf(&b, p2, 6, 2);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct io_uring_cqe cq;
	q_sel(&r, IORING_OP_SEND, sv[0], 0, 4, IORING_RECVSEND_BUNDLE, 0x20);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x20, 15, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(0, 0));
	GOT_BYTES(sv[1], "abcdefghijklmno");
	EMPTY(&r);
	/* capped by len: 9 bytes, then the rest */
	add_buf(&b, p0, 4, 3);
	add_buf(&b, p1, 5, 4);
	add_buf(&b, p2, 6, 5);
	q_sel(&r, IORING_OP_SEND, sv[0], 9, 4, IORING_RECVSEND_BUNDLE, 0x21);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x21, 9, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(3, 1));
	EXPECT_CQE(&r, 0x21, 6, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(5, 0));
	GOT_BYTES(sv[1], "abcdefghijklmno");
	q_sel(&r, IORING_OP_SEND, sv[0], 0, 4, IORING_RECVSEND_BUNDLE, 0x22);
	CHECK_RES(RUN(&r, 0x22), -ENOBUFS);
	struct io_uring_sqe *sqe = q_send(&r, sv[0], "x", 1, 0, 0x23);
	sqe->ioprio = IORING_RECVSEND_BUNDLE;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x23, 1, 1, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_MORE);
	EXPECT_CQE(&r, 0x23, 0, 0, &cq);
	CHECK_EQ(cq.flags, 0);
	GOT_BYTES(sv[1], "x");
	char buf[8];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, sv[0], &m, 0);
	sqe->ioprio = IORING_RECVSEND_BUNDLE;
	sqe->user_data = 0x24;
	CHECK_RES(RUN(&r, 0x24), -EINVAL);
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	EMPTY(&r);
	return finish(&r, &b, sv);
}

/* RECV bundle of `fd` from group `bgid` (with `len`), once: its CQE must be (res, flags). */
static int bundle_once(struct io_uring *r, int fd, int bgid, unsigned len, int res, unsigned flags,
		       const char *file, int line)
{
	q_sel(r, IORING_OP_RECV, fd, len, bgid, IORING_RECVSEND_BUNDLE, 0x30);
	if (io_uring_submit(r) != 1)
		return ut_fail(file, line, "submit");
	struct io_uring_cqe cq;
	TRY(ut_expect_cqe(r, 0x30, res, 0, &cq, file, line));
	if (cq.flags != flags)
		return ut_fail(file, line, "CQE flags 0x%x, expected 0x%x", cq.flags, flags);
	return UT_OK;
}
#define BUNDLE_ONCE(r, fd, bgid, res, flags) BUNDLE_LEN(r, fd, bgid, 0, res, flags)
#define BUNDLE_LEN(r, fd, bgid, len, res, flags)                               \
	TRY(bundle_once((r), (fd), (bgid), (len), (res), (flags), __FILE__, __LINE__))

static int recv_bundle(void)
{
	/*
	 * A RECV bundle receives in up to two passes and posts one CQE naming the first
	 * buffer. The first pass fills one buffer. When it filled it, did not take the
	 * ring's last buffer, and more than one byte waits, a second pass takes the buffers
	 * the waiting bytes fill whole, or, if even the first would not be filled, that one
	 * in part. Buffers of 8: 20 bytes waiting give 16 (8 + 8; 4 stay, F_SOCK_NONEMPTY);
	 * 12 give 12 (8 + 4 in the next buffer, used up); 9 give 8 (1 byte is not worth a
	 * pass). A pass that takes the ring's last buffer is the only one. Each buffer a
	 * pass wrote is used up: the next RECV gets the following id. With a len (Linux 6.18)
	 * there is one pass, into the buffers len fills whole or the first cut to it: len 20
	 * with 20 waiting gives 16, len 3 gives 3. An empty ring: -ENOBUFS. RECVMSG with a
	 * bundle: -EINVAL.
	 */
	GATE(IORING_OP_RECV);
	struct io_uring r;
	BUNDLE_RING(&r, 8);
	struct bufring b;
	BUFRING(&r, &b, 8, 5);
	static char bufs[4][8];
	bufring_fill(&b, bufs, 8, 4);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	static const char twenty[] = "0123456789abcdefghij";
	CHECK_EQ(send(sv[0], twenty, 20, 0), 20);
	BUNDLE_ONCE(&r, sv[1], 5, 16, BUF_FLAGS(0, 0) | IORING_CQE_F_SOCK_NONEMPTY);
	CHECK(!memcmp(bufs, twenty, 16));
	/* a plain RECV: the 4 bytes left, in buffer 2 */
	q_sel(&r, IORING_OP_RECV, sv[1], 0, 5, 0, 0x31);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 0x31, 4, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(2, 0));
	CHECK(!memcmp(bufs[2], "ghij", 4));
	/* buffer 3 is the last: one pass, even with more waiting */
	CHECK_EQ(send(sv[0], twenty, 12, 0), 12);
	BUNDLE_ONCE(&r, sv[1], 5, 8, BUF_FLAGS(3, 0) | IORING_CQE_F_SOCK_NONEMPTY);
	BUNDLE_ONCE(&r, sv[1], 5, -ENOBUFS, 0);
	char rest[16];
	CHECK_EQ(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 4);
	/* 12 bytes: 8, then 4 in a second buffer */
	memset(bufs, 0, sizeof bufs);
	bufring_fill(&b, bufs, 8, 4);
	CHECK_EQ(send(sv[0], twenty, 12, 0), 12);
	BUNDLE_ONCE(&r, sv[1], 5, 12, BUF_FLAGS(0, 0));
	CHECK(!memcmp(bufs, twenty, 12));
	/* 9 bytes: one pass of 8 */
	CHECK_EQ(send(sv[0], twenty, 9, 0), 9);
	BUNDLE_ONCE(&r, sv[1], 5, 8, BUF_FLAGS(2, 0) | IORING_CQE_F_SOCK_NONEMPTY);
	CHECK_EQ(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 1);
	/* with a len: one pass */
	struct bufring b2;
	BUFRING(&r, &b2, 4, 6);
	static char bufs2[4][8];
	bufring_fill(&b2, bufs2, 8, 4);
	CHECK_EQ(send(sv[0], twenty, 20, 0), 20);
	BUNDLE_LEN(&r, sv[1], 6, 20, 16, BUF_FLAGS(0, 0) | IORING_CQE_F_SOCK_NONEMPTY);
	BUNDLE_LEN(&r, sv[1], 6, 3, 3, BUF_FLAGS(2, 0) | IORING_CQE_F_SOCK_NONEMPTY);
	CHECK(!memcmp(bufs2, twenty, 16) && !memcmp(bufs2[2], twenty + 16, 3));
	CHECK_EQ(recv(sv[1], rest, sizeof rest, MSG_DONTWAIT), 1);
	bufring_free(&r, &b2);
	struct iovec iov = { rest, sizeof rest };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, sv[1], &m, 0);
	sqe->ioprio = IORING_RECVSEND_BUNDLE;
	ut_sel(sqe, 5);
	sqe->user_data = 0x34;
	CHECK_RES(RUN(&r, 0x34), -EINVAL);
	EMPTY(&r);
	return finish(&r, &b, sv);
}

static int recv_bundle_multishot(void)
{
	/*
	 * A multishot RECV bundle: each arrival is a CQE with F_MORE naming the first buffer
	 * it filled (buffers of 8: 12 bytes take 0 and 1, 5 bytes 2, 16 bytes 3 and 4 in two
	 * passes). With the ring empty, the next arrival ends it with -ENOBUFS, the byte left
	 * in the socket. Re-armed on two new buffers, the waiting byte comes at once (F_MORE);
	 * then a first pass that takes the ring's last buffer is the final CQE (no F_MORE).
	 */
	GATE(IORING_OP_RECV);
	struct io_uring r;
	BUNDLE_RING(&r, 16);
	struct bufring b;
	BUFRING(&r, &b, 8, 6);
	static char bufs[5][8];
	bufring_fill(&b, bufs, 8, 5);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	q_sel(&r, IORING_OP_RECV, sv[1], 0, 6, IORING_RECV_MULTISHOT | IORING_RECVSEND_BUNDLE, 0x40);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	struct io_uring_cqe cq;
	CHECK_EQ(send(sv[0], "twelve bytes", 12, 0), 12);
	EXPECT_CQE(&r, 0x40, 12, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(0, 1));
	CHECK(!memcmp(bufs, "twelve bytes", 12));
	CHECK_EQ(send(sv[0], "five!", 5, 0), 5);
	EXPECT_CQE(&r, 0x40, 5, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(2, 1));
	CHECK(!memcmp(bufs[2], "five!", 5));
	CHECK_EQ(send(sv[0], "sixteen bytes!!!", 16, 0), 16);
	EXPECT_CQE(&r, 0x40, 16, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(3, 1));
	CHECK(!memcmp(bufs[3], "sixteen bytes!!!", 16));
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "1", 1, 0), 1);
	EXPECT_CQE(&r, 0x40, -ENOBUFS, 0, &cq);
	CHECK_EQ(cq.flags, 0);
	/* re-armed on two buffers */
	bufring_fill(&b, bufs, 8, 2);
	q_sel(&r, IORING_OP_RECV, sv[1], 0, 6, IORING_RECV_MULTISHOT | IORING_RECVSEND_BUNDLE, 0x41);
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x41, 1, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(0, 1));
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "eight!!!", 8, 0), 8);
	EXPECT_CQE(&r, 0x41, 8, 0, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(1, 0));
	CHECK(!memcmp(bufs[1], "eight!!!", 8));
	EMPTY(&r);
	return finish(&r, &b, sv);
}

static int send_zc_fixed(void)
{
	/*
	 * SEND_ZC with IORING_RECVSEND_FIXED_BUF sends from registered buffer buf_index (addr
	 * and len must lie inside it) on a TCP connection over 127.0.0.1: the result CQE with
	 * F_MORE, then the notification. A range past the buffer's end, or an index with no
	 * buffer: -EFAULT. Plain SEND does not take it: -EINVAL.
	 */
	GATE(IORING_OP_SEND_ZC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	static char reg[4096];
	ut_pattern(reg, sizeof reg, 5);
	struct iovec riov = { reg, sizeof reg };
	CHECK_OK(io_uring_register_buffers(&r, &riov, 1));
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	CHECK_OK(l);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), sizeof a));
	int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	CHECK_OK(s);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_send_zc_fixed(sqe, c, reg + 100, 1000, 0, 0, 0);
	sqe->user_data = 0x50;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 0x50, 1000, 1, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_MORE);
	EXPECT_CQE(&r, 0x50, 0, 0, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_NOTIF);
	static char got[1000];
	CHECK_OK(read_all(s, got, sizeof got));
	CHECK(!memcmp(got, reg + 100, sizeof got));
	/* past the end of the buffer */
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc_fixed(sqe, c, reg + 4000, 200, 0, 0, 0);
	sqe->user_data = 0x51;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x51, -EFAULT, 1, &cq);
	EXPECT_CQE(&r, 0x51, 0, 0, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_NOTIF);
	/* no buffer 1 */
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc_fixed(sqe, c, reg, 10, 0, 0, 1);
	sqe->user_data = 0x52;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x52, -EFAULT, 1, &cq);
	EXPECT_CQE(&r, 0x52, 0, 0, &cq);
	/* plain SEND: no registered buffers */
	sqe = q_send(&r, c, reg, 10, 0, 0x53);
	sqe->ioprio = IORING_RECVSEND_FIXED_BUF;
	CHECK_RES(RUN(&r, 0x53), -EINVAL);
	EMPTY(&r);
	char one;
	CHECK_ERR(recv(s, &one, 1, MSG_DONTWAIT), EAGAIN);
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* A connected TCP pair over 127.0.0.1: *c connected, *s accepted (nonblocking). */
static int tcp_pair(int *c, int *s, const char *file, int line)
{
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	if (l < 0)
		return ut_fail(file, line, "listener: %s", ut_errname(errno));
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, SA(&a), sizeof a) < 0)
		return ut_fail(file, line, "connect: %s", ut_errname(errno));
	*s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	close(l);
	if (*s < 0)
		return ut_fail(file, line, "accept4: %s", ut_errname(errno));
	return UT_OK;
}
#define TCP_PAIR(c, s) TRY(tcp_pair(&(c), &(s), __FILE__, __LINE__))

/* A _ZC send's two CQEs: the result (res, F_MORE), then the notification. */
static int zc_pair(struct io_uring *r, uint64_t ud, int res, const char *file, int line)
{
	struct io_uring_cqe cq;
	TRY(ut_expect_cqe(r, ud, res, 1, &cq, file, line));
	if (cq.flags != IORING_CQE_F_MORE)
		return ut_fail(file, line, "result CQE flags 0x%x, expected F_MORE", cq.flags);
	TRY(ut_expect_cqe(r, ud, 0, 0, &cq, file, line));
	if (cq.flags != IORING_CQE_F_NOTIF)
		return ut_fail(file, line, "notification CQE flags 0x%x, expected F_NOTIF", cq.flags);
	return UT_OK;
}
#define ZC_PAIR(r, ud, res) TRY(zc_pair((r), (ud), (res), __FILE__, __LINE__))

static int send_vectorized(void)
{
	/*
	 * IORING_SEND_VECTORIZED (Linux 6.18): SEND's addr is an iovec array and len its
	 * count; the iovecs go out in order (10 bytes from two). A count of 0 sends nothing
	 * (res 0); more than 1024 iovecs: -EINVAL. SENDMSG ignores the flag. An unknown flag
	 * (1 << 6): -EINVAL.
	 */
	GATE(IORING_OP_SEND);
	struct io_uring r;
	BUNDLE_RING(&r, 8);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct iovec iov[2] = { { "hello", 5 }, { "world", 5 } };
	struct io_uring_sqe *sqe = q_send(&r, sv[0], iov, 2, 0, 0x60);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	CHECK_RES(RUN(&r, 0x60), 10);
	GOT_BYTES(sv[1], "helloworld");
	sqe = q_send(&r, sv[0], iov, 0, 0, 0x61);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	CHECK_RES(RUN(&r, 0x61), 0);
	sqe = q_send(&r, sv[0], iov, 2000, 0, 0x62);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	CHECK_RES(RUN(&r, 0x62), -EINVAL);
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, sv[0], &m, 0);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	sqe->user_data = 0x63;
	CHECK_RES(RUN(&r, 0x63), 10);
	GOT_BYTES(sv[1], "helloworld");
	sqe = q_send(&r, sv[0], iov, 2, 0, 0x64);
	sqe->ioprio = 1U << 6;
	CHECK_RES(RUN(&r, 0x64), -EINVAL);
	char one;
	CHECK_ERR(recv(sv[1], &one, 1, MSG_DONTWAIT), EAGAIN);
	EMPTY(&r);
	return finish(&r, NULL, sv);
}

static int zc_vectorized_and_fixed(void)
{
	/*
	 * On TCP over 127.0.0.1: SEND_ZC with IORING_SEND_VECTORIZED sends an iovec array;
	 * SENDMSG_ZC with IORING_RECVSEND_FIXED_BUF (Linux 6.15) sends iovecs that lie in
	 * registered buffer buf_index (one that reaches past its end, or an index with no
	 * buffer: -EFAULT); SENDMSG_ZC ignores VECTORIZED. SEND_ZC with both VECTORIZED and
	 * FIXED_BUF, or an unknown flag: -EINVAL. Every one is a result CQE with F_MORE and
	 * a notification, errors too, but for a nonzero addr3 or IOSQE_CQE_SKIP_SUCCESS, refused (-EINVAL, one CQE)
	 * before the notification is made.
	 */
	GATE(IORING_OP_SENDMSG_ZC);
	struct io_uring r;
	BUNDLE_RING(&r, 8);
	static char reg[4096];
	memcpy(reg, "helloworld", 10);
	struct iovec riov = { reg, sizeof reg };
	CHECK_OK(io_uring_register_buffers(&r, &riov, 1));
	int c = -1, s = -1;
	TCP_PAIR(c, s);
	struct iovec iov[2] = { { reg, 5 }, { reg + 5, 5 } };
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, iov, 2, 0, 0);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	sqe->user_data = 0x70;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x70, 10);
	GOT_BYTES(s, "helloworld");
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg_zc(sqe, c, &m, 0);
	sqe->ioprio = IORING_RECVSEND_FIXED_BUF;
	sqe->user_data = 0x71;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x71, 10);
	GOT_BYTES(s, "helloworld");
	struct iovec past = { reg + 4090, 10 };
	m.msg_iov = &past;
	m.msg_iovlen = 1;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg_zc(sqe, c, &m, 0);
	sqe->ioprio = IORING_RECVSEND_FIXED_BUF;
	sqe->user_data = 0x72;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x72, -EFAULT);
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg_zc(sqe, c, &m, 0);
	sqe->ioprio = IORING_RECVSEND_FIXED_BUF;
	sqe->buf_index = 1;
	sqe->user_data = 0x73;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x73, -EFAULT);
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg_zc(sqe, c, &m, 0);
	sqe->ioprio = IORING_SEND_VECTORIZED;
	sqe->user_data = 0x74;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x74, 10);
	GOT_BYTES(s, "helloworld");
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, iov, 2, 0, 0);
	sqe->ioprio = IORING_SEND_VECTORIZED | IORING_RECVSEND_FIXED_BUF;
	sqe->user_data = 0x75;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x75, -EINVAL);
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, reg, 10, 0, 0);
	sqe->ioprio = 1U << 6;
	sqe->user_data = 0x76;
	CHECK_EQ(io_uring_submit(&r), 1);
	ZC_PAIR(&r, 0x76, -EINVAL);
	/* addr3 set: refused before the notification exists, one CQE */
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, reg, 10, 0, 0);
	sqe->addr3 = 1;
	sqe->user_data = 0x77;
	CHECK_RES(RUN(&r, 0x77), -EINVAL);
	/* nor does a _ZC send take IOSQE_CQE_SKIP_SUCCESS */
	sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, reg, 10, 0, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = 0x78;
	CHECK_RES(RUN(&r, 0x78), -EINVAL);
	EMPTY(&r);
	char one;
	CHECK_ERR(recv(s, &one, 1, MSG_DONTWAIT), EAGAIN);
	close(s);
	close(c);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(netbuf, T(send_select), T(send_bundle), T(recv_bundle), T(recv_bundle_multishot),
	  T(send_zc_fixed), T(send_vectorized), T(zc_vectorized_and_fixed));
