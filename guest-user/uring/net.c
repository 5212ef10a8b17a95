/*
 * The io_uring network opcodes on AF_UNIX sockets: SOCKET (into the file table or a fixed
 * slot), BIND and LISTEN (Linux 6.11, opcodes 56 and 57: liburing 2.3 has no helpers, the
 * SQEs are filled by hand: BIND takes the sockaddr in addr and its length in addr2,
 * LISTEN the backlog in len), CONNECT, ACCEPT (single, multishot, direct), SEND/RECV
 * (parked until data comes, multishot RECV from a buffer ring ending with -ENOBUFS when
 * it runs dry), SENDMSG/RECVMSG (iovecs, msg_name, the multishot io_uring_recvmsg_out
 * layout), SHUTDOWN, SEND_ZC (-EOPNOTSUPP on AF_UNIX, which has no zero copy) and
 * RECV_ZC (opcode 58) without a zero-copy queue; and their errors. Sends never raise
 * SIGPIPE (io_uring adds MSG_NOSIGNAL). The tcp_* tests need AF_INET on 127.0.0.1.
 */
#include "sockut.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define OP_RECV_ZC 58

/* An abstract name (sun_path[0] == 0) made of `tag` and our pid; returns its exact length. */
static socklen_t abs_addr(struct sockaddr_un *a, const char *tag)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "uring-test.%d.net.%s",
			 (int)getpid(), tag);
	return (socklen_t)(FAMILY_LEN + 1 + n);
}

/* A stream socket listening (backlog 16) on the abstract name of `tag`; or -1. */
static int listener(const char *tag, struct sockaddr_un *a, socklen_t *alen)
{
	*alen = abs_addr(a, tag);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, SA(a), *alen) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* IORING_OP_BIND: addr the sockaddr, addr2 its length */
static struct io_uring_sqe *q_bind(struct io_uring *r, int fd, const void *addr, socklen_t len,
				   uint64_t ud)
{
	struct io_uring_sqe *sqe = q_op(r, OP_BIND, fd, ud);
	sqe->addr = (uint64_t)(uintptr_t)addr;
	sqe->addr2 = len;
	return sqe;
}

/* IORING_OP_LISTEN: len the backlog */
static struct io_uring_sqe *q_listen(struct io_uring *r, int fd, unsigned backlog, uint64_t ud)
{
	struct io_uring_sqe *sqe = q_op(r, OP_LISTEN, fd, ud);
	sqe->len = backlog;
	return sqe;
}

/* getsockopt(SOL_SOCKET) of an int */
static int sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) < 0)
		return -errno - 1000;
	return v;
}


/* send `msg` on `fd`, then `peer` must read just that (it is there already) */
static int flows(int fd, int peer, const char *msg, const char *file, int line)
{
	size_t len = strlen(msg);
	char buf[256];
	if (send(fd, msg, len, 0) != (ssize_t)len)
		return ut_fail(file, line, "send on %d: %s", fd, ut_errname(errno));
	ssize_t n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
	if (n != (ssize_t)len || memcmp(buf, msg, len))
		return ut_fail(file, line, "recv on %d: %zd (%s), expected '%s'", peer, n,
			       n < 0 ? ut_errname(errno) : "-", msg);
	return UT_OK;
}
#define FLOWS(fd, peer, msg) TRY(flows((fd), (peer), (msg), __FILE__, __LINE__))

/* ---- tests ----------------------------------------------------------------------- */

static int socket_op(void)
{
	/*
	 * SOCKET: the lowest free descriptor, a socket of the asked type (SO_TYPE,
	 * SO_DOMAIN); SOCK_CLOEXEC|SOCK_NONBLOCK in the type give FD_CLOEXEC and O_NONBLOCK.
	 * A type past SOCK_MAX -EINVAL, SOCK_RDM -ESOCKTNOSUPPORT, family 46 -EAFNOSUPPORT,
	 * protocol 2 -EPROTONOSUPPORT, anything in rw_flags -EINVAL.
	 */
	GATE(IORING_OP_SOCKET);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int low = ut_lowest_free_fd();
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_socket(sqe, AF_UNIX, SOCK_STREAM, 0, 0);
	sqe->user_data = 1;
	int s = RUN(&r, 1);
	CHECK_RES(s, low);
	struct stat st;
	CHECK_OK(fstat(s, &st));
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(sockopt(s, SO_TYPE), SOCK_STREAM);
	CHECK_EQ(sockopt(s, SO_DOMAIN), AF_UNIX);
	CHECK_EQ(fcntl(s, F_GETFD), 0);
	CHECK_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0);
	sqe = ut_sqe(&r);
	io_uring_prep_socket(sqe, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, 0);
	sqe->user_data = 2;
	int d = RUN(&r, 2);
	CHECK_RES(d, low + 1);
	CHECK_EQ(sockopt(d, SO_TYPE), SOCK_DGRAM);
	CHECK_EQ(fcntl(d, F_GETFD), FD_CLOEXEC);
	CHECK(fcntl(d, F_GETFL) & O_NONBLOCK);
	/* it works: the datagram socket talks to itself through an autobound name */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK_OK(bind(d, SA(&a), FAMILY_LEN));
	socklen_t alen = sizeof a;
	CHECK_OK(getsockname(d, SA(&a), &alen));
	CHECK_EQ(sendto(d, "self", 4, 0, SA(&a), alen), 4);
	char buf[8];
	CHECK_EQ(recv(d, buf, sizeof buf, 0), 4);
	static const struct {
		int domain, type, protocol, flags, res;
	} bad[] = {
		{ AF_UNIX, 99, 0, 0, -EINVAL },
		{ AF_UNIX, SOCK_RDM, 0, 0, -ESOCKTNOSUPPORT },
		{ 46, SOCK_STREAM, 0, 0, -EAFNOSUPPORT },
		{ AF_UNIX, SOCK_STREAM, 2, 0, -EPROTONOSUPPORT },
		{ AF_UNIX, SOCK_STREAM, 0, 1, -EINVAL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sqe = ut_sqe(&r);
		io_uring_prep_socket(sqe, bad[i].domain, bad[i].type, bad[i].protocol,
				     (unsigned)bad[i].flags);
		sqe->user_data = 10 + i;
		CHECK_RES(RUN(&r, 10 + i), bad[i].res);
	}
	CHECK_EQ(ut_lowest_free_fd(), low + 2);
	close(d);
	close(s);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int direct_descriptors(void)
{
	/*
	 * SOCKET with file_index: into fixed slot 2 (res 0) or, with IORING_FILE_INDEX_ALLOC,
	 * a free slot (res the slot), next-fit after the last one set: 3, 0, 1, then -ENFILE;
	 * SOCK_CLOEXEC with a slot -EINVAL; no descriptor is installed. The slot's socket
	 * CONNECTs and SENDs with IOSQE_FIXED_FILE; ACCEPT into a slot (accept_direct) gives
	 * a socket that RECVs through the slot.
	 */
	GATE(IORING_OP_SOCKET);
	GATE(IORING_OP_CONNECT);
	GATE(IORING_OP_ACCEPT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	CHECK_RES(io_uring_register_files_sparse(&r, 4), 0);
	int low = ut_lowest_free_fd();
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_socket_direct(sqe, AF_UNIX, SOCK_STREAM, 0, 2, 0);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 0);
	static const int want[] = { 3, 0, 1, -ENFILE };
	for (int i = 0; i < 4; i++) {
		sqe = ut_sqe(&r);
		io_uring_prep_socket_direct_alloc(sqe, AF_UNIX, SOCK_STREAM, 0, 0);
		sqe->user_data = 2 + i;
		CHECK_RES(RUN(&r, 2 + i), want[i]);
	}
	sqe = ut_sqe(&r);
	io_uring_prep_socket_direct(sqe, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, 2, 0);
	sqe->user_data = 6;
	CHECK_RES(RUN(&r, 6), -EINVAL);
	CHECK_EQ(ut_lowest_free_fd(), low);
	/* slot 2 connects to a listener and sends */
	struct sockaddr_un a;
	socklen_t alen;
	int l = listener("direct", &a, &alen);
	CHECK_OK(l);
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, 2, SA(&a), alen);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 7;
	CHECK_RES(RUN(&r, 7), 0);
	int s = accept(l, NULL, NULL);
	CHECK_OK(s);
	q_send(&r, 2, "fixed", 5, 0, 8)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(RUN(&r, 8), 5);
	char buf[16];
	CHECK_EQ(recv(s, buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "fixed", 5));
	/* accept into slot 1 (replacing the socket there) */
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	low = ut_lowest_free_fd();
	sqe = ut_sqe(&r);
	io_uring_prep_accept_direct(sqe, l, NULL, NULL, 0, 1);
	sqe->user_data = 9;
	CHECK_RES(RUN(&r, 9), 0);
	CHECK_EQ(ut_lowest_free_fd(), low);
	CHECK_EQ(send(c, "slot one", 8, 0), 8);
	memset(buf, 0, sizeof buf);
	q_recv(&r, 1, buf, sizeof buf, 0, 10)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(RUN(&r, 10), 8);
	CHECK(!memcmp(buf, "slot one", 8));
	close(c);
	close(s);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bind_listen(void)
{
	/*
	 * BIND to a path makes the socket file and getsockname names it; LISTEN makes a
	 * listener (SO_ACCEPTCONN 1) that connect(2) reaches. BIND: an existing path
	 * -EADDRINUSE, addrlen 1 -EINVAL, anything in len -EINVAL, a pipe -ENOTSOCK. LISTEN: a
	 * datagram socket -EOPNOTSUPP, an unbound stream socket -EINVAL, anything in addr
	 * -EINVAL, a pipe -ENOTSOCK.
	 */
	GATE(OP_BIND);
	GATE(OP_LISTEN);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	CHECK_OK(ut_tmppath("srv", a.sun_path, sizeof a.sun_path));
	socklen_t alen = (socklen_t)(FAMILY_LEN + strlen(a.sun_path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	q_bind(&r, s, &a, alen, 1);
	CHECK_RES(RUN(&r, 1), 0);
	struct stat st;
	CHECK_OK(stat(a.sun_path, &st));
	CHECK(S_ISSOCK(st.st_mode));
	struct sockaddr_un got;
	memset(&got, 0, sizeof got);
	socklen_t glen = sizeof got;
	CHECK_OK(getsockname(s, SA(&got), &glen));
	CHECK_EQ(glen, alen);
	CHECK(!strcmp(got.sun_path, a.sun_path));
	CHECK_EQ(sockopt(s, SO_ACCEPTCONN), 0);
	q_listen(&r, s, 4, 2);
	CHECK_RES(RUN(&r, 2), 0);
	CHECK_EQ(sockopt(s, SO_ACCEPTCONN), 1);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	int acc = accept(s, NULL, NULL);
	CHECK_OK(acc);
	FLOWS(c, acc, "bound by io_uring");
	/* BIND errors */
	int t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	q_bind(&r, t, &a, alen, 3);
	CHECK_RES(RUN(&r, 3), -EADDRINUSE);
	q_bind(&r, t, &a, 1, 4);
	CHECK_RES(RUN(&r, 4), -EINVAL);
	q_bind(&r, t, &a, alen, 5)->len = 1;
	CHECK_RES(RUN(&r, 5), -EINVAL);
	int p[2];
	CHECK_OK(pipe(p));
	struct sockaddr_un b;
	socklen_t blen = abs_addr(&b, "pipe");
	q_bind(&r, p[0], &b, blen, 6);
	CHECK_RES(RUN(&r, 6), -ENOTSOCK);
	/* LISTEN errors */
	q_listen(&r, t, 1, 7);
	CHECK_RES(RUN(&r, 7), -EINVAL);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(d);
	q_listen(&r, d, 1, 8);
	CHECK_RES(RUN(&r, 8), -EOPNOTSUPP);
	q_listen(&r, s, 1, 9)->addr = 1;
	CHECK_RES(RUN(&r, 9), -EINVAL);
	q_listen(&r, p[0], 1, 10);
	CHECK_RES(RUN(&r, 10), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	close(d);
	close(t);
	close(acc);
	close(c);
	close(s);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int connect_accept(void)
{
	/*
	 * CONNECT to a listener: 0; ACCEPT: the new descriptor, with addr/addrlen the
	 * client's name (addrlen 2 for an unbound client, the exact abstract length for a
	 * bound one), SOCK_CLOEXEC|SOCK_NONBLOCK honoured. CONNECT to a missing path -ENOENT,
	 * to a name nobody has -ECONNREFUSED, once connected -EISCONN.
	 */
	GATE(IORING_OP_CONNECT);
	GATE(IORING_OP_ACCEPT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct sockaddr_un a;
	socklen_t alen;
	int l = listener("accept", &a, &alen);
	CHECK_OK(l);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c, SA(&a), alen);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 0);
	struct sockaddr_un peer;
	memset(&peer, 0x5a, sizeof peer);
	socklen_t plen = sizeof peer;
	int low = ut_lowest_free_fd();
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, l, SA(&peer), &plen, 0);
	sqe->user_data = 2;
	int s = RUN(&r, 2);
	CHECK_RES(s, low);
	CHECK_EQ(plen, FAMILY_LEN);
	CHECK_EQ(peer.sun_family, AF_UNIX);
	CHECK_EQ(fcntl(s, F_GETFD), 0);
	FLOWS(c, s, "to the server");
	FLOWS(s, c, "to the client");
	/* a bound client, accepted with flags */
	struct sockaddr_un b;
	socklen_t blen = abs_addr(&b, "client");
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c2);
	CHECK_OK(bind(c2, SA(&b), blen));
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c2, SA(&a), alen);
	sqe->user_data = 3;
	CHECK_RES(RUN(&r, 3), 0);
	memset(&peer, 0x5a, sizeof peer);
	plen = sizeof peer;
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, l, SA(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
	sqe->user_data = 4;
	int s2 = RUN(&r, 4);
	CHECK_OK(s2);
	CHECK_EQ(plen, blen);
	CHECK(!memcmp(&peer, &b, blen));
	CHECK_EQ(fcntl(s2, F_GETFD), FD_CLOEXEC);
	CHECK(fcntl(s2, F_GETFL) & O_NONBLOCK);
	FLOWS(c2, s2, "second");
	/* CONNECT errors */
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c, SA(&a), alen);
	sqe->user_data = 5;
	CHECK_RES(RUN(&r, 5), -EISCONN);
	int t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	struct sockaddr_un nx;
	socklen_t nxlen = abs_addr(&nx, "nobody");
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, t, SA(&nx), nxlen);
	sqe->user_data = 6;
	CHECK_RES(RUN(&r, 6), -ECONNREFUSED);
	memset(&nx, 0, sizeof nx);
	nx.sun_family = AF_UNIX;
	CHECK_OK(ut_tmppath("missing", nx.sun_path, sizeof nx.sun_path));
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, t, SA(&nx), sizeof nx);
	sqe->user_data = 7;
	CHECK_RES(RUN(&r, 7), -ENOENT);
	close(t);
	close(s2);
	close(c2);
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int accept_parks(void)
{
	/*
	 * ACCEPT on a (blocking) listener with nothing pending parks without blocking the
	 * submitter and completes when a client connects; another parked ACCEPT ends with
	 * -ECANCELED when cancelled.
	 */
	GATE(IORING_OP_ACCEPT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct sockaddr_un a;
	socklen_t alen;
	int l = listener("parks", &a, &alen);
	CHECK_OK(l);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, l, NULL, NULL, 0);
	sqe->user_data = 1;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	struct io_uring_cqe cqe;
	WAIT_UD(&r, 1, 5000, &cqe);
	CHECK_OK(cqe.res);
	CHECK_EQ(cqe.flags & IORING_CQE_F_MORE, 0);
	int s = cqe.res;
	FLOWS(c, s, "accepted later");
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, l, NULL, NULL, 0);
	sqe->user_data = 2;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	CANCEL_WAITING(&r, 2, 3, 0);
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int multishot_accept(void)
{
	/*
	 * A multishot ACCEPT: 10 connections give 10 CQEs, each a new descriptor with
	 * IORING_CQE_F_MORE, in connection order; ASYNC_CANCEL ends it with -ECANCELED
	 * without F_MORE (the cancel answers 0); after that, connections wait in the backlog.
	 */
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_ASYNC_CANCEL);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 32));
	struct sockaddr_un a;
	socklen_t alen;
	int l = listener("mshot", &a, &alen);
	CHECK_OK(l);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_multishot_accept(sqe, l, NULL, NULL, 0);
	sqe->user_data = 0x100;
	SUBMIT_NONE(&r, 1);
	int c[10], s[10];
	for (int i = 0; i < 10; i++) {
		c[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		CHECK_OK(c[i]);
		CHECK_OK(connect(c[i], SA(&a), alen));
		struct io_uring_cqe cqe;
		WAIT_UD(&r, 0x100, 5000, &cqe);
		CHECK_OK(cqe.res);
		CHECK_EQ(cqe.flags, IORING_CQE_F_MORE);
		s[i] = cqe.res;
		for (int k = 0; k < i; k++)
			CHECK(s[k] != s[i]);
	}
	for (int i = 0; i < 10; i++) {
		char msg[16];
		snprintf(msg, sizeof msg, "client %d", i);
		FLOWS(c[i], s[i], msg);
	}
	EMPTY(&r);
	CANCEL_WAITING(&r, 0x100, 0x101, 0);
	int late = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(late);
	CHECK_OK(connect(late, SA(&a), alen));
	EMPTY(&r);
	int ls = accept(l, NULL, NULL);
	CHECK_OK(ls);
	close(ls);
	close(late);
	for (int i = 0; i < 10; i++) {
		close(s[i]);
		close(c[i]);
	}
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int send_recv(void)
{
	/*
	 * SEND: the count, the peer reads it. RECV with data there: at once. RECV on an
	 * empty stream parks (the submitter does not block) and completes when a writer
	 * thread sends; a parked RECV completes with 0 when the peer closes. On a datagram
	 * socket a short RECV truncates (res 4), with MSG_TRUNC in msg_flags it is the full
	 * length.
	 */
	GATE(IORING_OP_SEND);
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	q_send(&r, sv[0], "hello", 5, 0, 1);
	CHECK_RES(RUN(&r, 1), 5);
	char buf[64];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), 5);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_EQ(send(sv[1], "ready", 5, 0), 5);
	memset(buf, 0, sizeof buf);
	q_recv(&r, sv[0], buf, sizeof buf, 0, 2);
	CHECK_RES(RUN(&r, 2), 5);
	CHECK(!memcmp(buf, "ready", 5));
	/* parked until data comes */
	memset(buf, 0, sizeof buf);
	q_recv(&r, sv[1], buf, sizeof buf, 0, 3);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	struct io_uring_cqe c;
	FEED_WAIT(&r, sv[0], "parked!", 7, &c);
	CHECK_EQ(c.user_data, 3);
	CHECK_RES(c.res, 7);
	CHECK(!memcmp(buf, "parked!", 7));
	/* parked until the peer closes */
	q_recv(&r, sv[1], buf, sizeof buf, 0, 4);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	close(sv[0]);
	WAIT_UD(&r, 4, 5000, &c);
	CHECK_RES(c.res, 0);
	close(sv[1]);
	/* datagrams */
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	q_send(&r, sv[0], "0123456789", 10, 0, 5);
	CHECK_RES(RUN(&r, 5), 10);
	q_send(&r, sv[0], "abcdefghij", 10, 0, 6);
	CHECK_RES(RUN(&r, 6), 10);
	q_recv(&r, sv[1], buf, 4, 0, 7);
	CHECK_RES(RUN(&r, 7), 4);
	CHECK(!memcmp(buf, "0123", 4));
	q_recv(&r, sv[1], buf, 4, MSG_TRUNC, 8);
	CHECK_RES(RUN(&r, 8), 10);
	CHECK(!memcmp(buf, "abcd", 4));
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recv_multishot(void)
{
	/*
	 * A multishot RECV (len 0, IOSQE_BUFFER_SELECT) on a stream with a buffer ring of 4:
	 * each message gives a CQE with F_MORE and F_BUFFER, buffer ids in ring order; the
	 * message after the fourth finds the ring dry: -ENOBUFS without F_MORE, the data
	 * left in the socket. Refilled and re-armed, it gets that message at once; the peer's
	 * close ends it with 0. Without BUFFER_SELECT or with MSG_WAITALL: -EINVAL.
	 */
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 16));
	struct bufring b;
	BUFRING(&r, &b, 4, 5);
	static char bufs[4][32];
	bufring_fill(&b, bufs, 32, 4);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, sv[1], NULL, 0, 0);
	ut_sel(sqe, 5);
	sqe->user_data = 0x200;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	static const char *msgs[] = { "one", "two two", "three three three", "four", "five!" };
	struct io_uring_cqe c;
	for (int i = 0; i < 4; i++) {
		int len = (int)strlen(msgs[i]);
		CHECK_EQ(send(sv[0], msgs[i], len, 0), len);
		EXPECT_CQE(&r, 0x200, len, 1, &c);
		CHECK_EQ(c.flags, BUF_FLAGS(i, 1));
		if (memcmp(bufs[i], msgs[i], len))
			FAIL("buffer %d holds '%.*s', expected '%s'", i, len, bufs[i], msgs[i]);
		EMPTY(&r);
	}
	CHECK_EQ(send(sv[0], msgs[4], 5, 0), 5);
	EXPECT_CQE(&r, 0x200, -ENOBUFS, 0, &c);
	CHECK_EQ(c.flags, 0);
	EMPTY(&r);
	/* refill and re-arm: the message waiting in the socket comes first */
	memset(bufs, 0, sizeof bufs);
	bufring_fill(&b, bufs, 32, 4);
	sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, sv[1], NULL, 0, 0);
	ut_sel(sqe, 5);
	sqe->user_data = 0x201;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x201, 5, 1, &c);
	CHECK_EQ(c.flags, BUF_FLAGS(0, 1));
	CHECK(!memcmp(bufs[0], "five!", 5));
	EMPTY(&r);
	close(sv[0]);
	EXPECT_CQE(&r, 0x201, 0, 0, &c);
	CHECK_EQ(c.flags, 0);
	/* prep errors */
	sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, sv[1], NULL, 0, 0);
	sqe->user_data = 0x202;
	CHECK_RES(RUN(&r, 0x202), -EINVAL);
	sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, sv[1], NULL, 0, MSG_WAITALL);
	ut_sel(sqe, 5);
	sqe->user_data = 0x204;
	CHECK_RES(RUN(&r, 0x204), -EINVAL);
	close(sv[1]);
	bufring_free(&r, &b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recv_multishot_cap(void)
{
	/*
	 * A multishot RECV's len (allowed since Linux 6.10) caps each receive: 10 bytes
	 * waiting come as 4, 4 and 2 in three buffers, each CQE with F_MORE.
	 */
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 16));
	struct bufring b;
	BUFRING(&r, &b, 4, 7);
	static char bufs[4][32];
	bufring_fill(&b, bufs, 32, 4);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "0123456789", 10, 0), 10);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, sv[1], NULL, 4, 0);
	ut_sel(sqe, 7);
	sqe->user_data = 0x210;
	CHECK_EQ(io_uring_submit(&r), 1);
	static const int lens[] = { 4, 4, 2 };
	struct io_uring_cqe c;
	for (int i = 0; i < 3; i++) {
		EXPECT_CQE(&r, 0x210, lens[i], 1, &c);
		/* more data waiting: F_SOCK_NONEMPTY */
		CHECK_EQ(c.flags, BUF_FLAGS(i, 1) | (i < 2 ? IORING_CQE_F_SOCK_NONEMPTY : 0));
		CHECK(!memcmp(bufs[i], "0123456789" + 4 * i, lens[i]));
	}
	EMPTY(&r);
	CANCEL_WAITING(&r, 0x210, 0x211, 0);
	close(sv[0]);
	close(sv[1]);
	bufring_free(&r, &b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sendmsg_recvmsg(void)
{
	/*
	 * SENDMSG gathers 3 iovecs, RECVMSG scatters into 2 (a stream). On datagram
	 * sockets: SENDMSG with msg_name to an unconnected receiver; RECVMSG fills msg_name
	 * with the sender's name and msg_namelen with its exact length; a short iovec gives
	 * the truncated count with MSG_TRUNC in msg_flags. A RECVMSG on an empty socket parks
	 * until data comes.
	 */
	GATE(IORING_OP_SENDMSG);
	GATE(IORING_OP_RECVMSG);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct iovec out[3] = { { "abc", 3 }, { "defg", 4 }, { "hijkl", 5 } };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = out;
	m.msg_iovlen = 3;
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, sv[0], &m, 0);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 12);
	char p1[5], p2[16];
	memset(p2, 0, sizeof p2);
	struct iovec in[2] = { { p1, sizeof p1 }, { p2, 7 } };
	struct msghdr rm;
	memset(&rm, 0, sizeof rm);
	rm.msg_iov = in;
	rm.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, sv[1], &rm, 0);
	sqe->user_data = 2;
	CHECK_RES(RUN(&r, 2), 12);
	CHECK(!memcmp(p1, "abcde", 5));
	CHECK(!memcmp(p2, "fghijkl", 7));
	CHECK_EQ(rm.msg_flags, 0);
	close(sv[0]);
	close(sv[1]);
	/* datagrams with names */
	struct sockaddr_un ra, sa;
	socklen_t ralen = abs_addr(&ra, "dgram-rcv"), salen = abs_addr(&sa, "dgram-snd");
	int rfd = socket(AF_UNIX, SOCK_DGRAM, 0), sfd = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(rfd);
	CHECK_OK(sfd);
	CHECK_OK(bind(rfd, SA(&ra), ralen));
	CHECK_OK(bind(sfd, SA(&sa), salen));
	m.msg_name = &ra;
	m.msg_namelen = ralen;
	m.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, sfd, &m, 0);
	sqe->user_data = 3;
	CHECK_RES(RUN(&r, 3), 7);
	struct sockaddr_un from;
	memset(&from, 0x5a, sizeof from);
	char buf[32];
	struct iovec one = { buf, sizeof buf };
	memset(&rm, 0, sizeof rm);
	rm.msg_name = &from;
	rm.msg_namelen = sizeof from;
	rm.msg_iov = &one;
	rm.msg_iovlen = 1;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, rfd, &rm, 0);
	sqe->user_data = 4;
	CHECK_RES(RUN(&r, 4), 7);
	CHECK(!memcmp(buf, "abcdefg", 7));
	CHECK_EQ(rm.msg_namelen, salen);
	CHECK(!memcmp(&from, &sa, salen));
	CHECK_EQ(rm.msg_flags, 0);
	/* truncated */
	CHECK_EQ(sendto(sfd, "0123456789", 10, 0, SA(&ra), ralen), 10);
	one.iov_len = 4;
	rm.msg_namelen = sizeof from;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, rfd, &rm, 0);
	sqe->user_data = 5;
	CHECK_RES(RUN(&r, 5), 4);
	CHECK_EQ(rm.msg_flags, MSG_TRUNC);
	/* parked */
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	one.iov_len = sizeof buf;
	memset(&rm, 0, sizeof rm);
	rm.msg_iov = &one;
	rm.msg_iovlen = 1;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, sv[1], &rm, 0);
	sqe->user_data = 6;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	struct io_uring_cqe c;
	FEED_WAIT(&r, sv[0], "late datagram", 13, &c);
	CHECK_EQ(c.user_data, 6);
	CHECK_RES(c.res, 13);
	CHECK(!memcmp(buf, "late datagram", 13));
	close(sv[0]);
	close(sv[1]);
	close(sfd);
	close(rfd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recvmsg_multishot(void)
{
	/*
	 * A multishot RECVMSG on a datagram socket, buffers from a ring of 8 256-byte buffers:
	 * each datagram fills one buffer with struct io_uring_recvmsg_out (namelen: the
	 * sender's name length, payloadlen, controllen 0, flags), then msg_namelen bytes of
	 * name, then the payload; res is their sum (16 + 110 + payload). A datagram larger
	 * than the room left is cut: flags MSG_TRUNC, payloadlen the bytes copied; with
	 * MSG_TRUNC in the request's msg_flags payloadlen is the datagram's full size.
	 * ASYNC_CANCEL ends it with -ECANCELED.
	 */
	GATE(IORING_OP_RECVMSG);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 16));
	struct bufring b;
	BUFRING(&r, &b, 8, 6);
	static char bufs[8][256];
	bufring_fill(&b, bufs, 256, 8);
	struct sockaddr_un ra, s1a, s2a;
	socklen_t ralen = abs_addr(&ra, "mrcv"), s1len = abs_addr(&s1a, "msnd1"),
		  s2len = abs_addr(&s2a, "msnd-number-2");
	int rfd = socket(AF_UNIX, SOCK_DGRAM, 0), s1 = socket(AF_UNIX, SOCK_DGRAM, 0),
	    s2 = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(rfd);
	CHECK_OK(s1);
	CHECK_OK(s2);
	CHECK_OK(bind(rfd, SA(&ra), ralen));
	CHECK_OK(bind(s1, SA(&s1a), s1len));
	CHECK_OK(bind(s2, SA(&s2a), s2len));
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_namelen = sizeof(struct sockaddr_un);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recvmsg_multishot(sqe, rfd, &mh, 0);
	ut_sel(sqe, 6);
	sqe->user_data = 0x300;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	const int hdr = (int)(sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_un));
	static char big[200];
	ut_pattern(big, sizeof big, 3);
	struct {
		int fd;
		const struct sockaddr_un *name;
		socklen_t namelen;
		const char *data;
		int sent, payloadlen, copied, flags;
	} cases[] = {
		{ s1, &s1a, s1len, "first", 5, 5, 5, 0 },
		{ s2, &s2a, s2len, "second!", 7, 7, 7, 0 },
		{ s1, &s1a, s1len, big, 200, 256 - hdr, 256 - hdr, MSG_TRUNC },
		{ s2, &s2a, s2len, big, 200, 200, 256 - hdr, MSG_TRUNC },
	};
	for (int i = 0; i < 4; i++) {
		if (i == 3) {
			/* again with MSG_TRUNC asked for */
			CANCEL_WAITING(&r, 0x300, 0x301, 0);
			sqe = ut_sqe(&r);
			io_uring_prep_recvmsg_multishot(sqe, rfd, &mh, MSG_TRUNC);
			ut_sel(sqe, 6);
			sqe->user_data = 0x302;
			SUBMIT_NONE(&r, 1);
		}
		uint64_t ud = i == 3 ? 0x302 : 0x300;
		CHECK_EQ(sendto(cases[i].fd, cases[i].data, cases[i].sent, 0, SA(&ra), ralen),
			 cases[i].sent);
		struct io_uring_cqe c;
		EXPECT_CQE(&r, ud, hdr + cases[i].copied, 1, &c);
		CHECK_EQ(c.flags, BUF_FLAGS(i, 1));
		struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(bufs[i], c.res, &mh);
		CHECK(o != NULL);
		CHECK_EQ(o->namelen, cases[i].namelen);
		CHECK_EQ(o->controllen, 0);
		CHECK_EQ(o->payloadlen, cases[i].payloadlen);
		CHECK_EQ(o->flags, cases[i].flags);
		CHECK(!memcmp(io_uring_recvmsg_name(o), cases[i].name, cases[i].namelen));
		CHECK_EQ(io_uring_recvmsg_payload_length(o, c.res, &mh), cases[i].copied);
		CHECK(!memcmp(io_uring_recvmsg_payload(o, &mh), cases[i].data, cases[i].copied));
	}
	EMPTY(&r);
	CANCEL_WAITING(&r, 0x302, 0x303, 0);
	close(s2);
	close(s1);
	close(rfd);
	bufring_free(&r, &b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int shutdown_op(void)
{
	/*
	 * SHUTDOWN(SHUT_WR): 0; the peer's RECVs get the data, then 0; a SEND on the shut
	 * socket -EPIPE. A RECV parked on one end completes with 0 when the other end's
	 * SHUTDOWN runs. how 3 -EINVAL, a pipe -ENOTSOCK, an unconnected socket 0 (as
	 * shutdown(2)).
	 */
	GATE(IORING_OP_SHUTDOWN);
	GATE(IORING_OP_RECV);
	GATE(IORING_OP_SEND);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "end", 3, 0), 3);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, sv[0], SHUT_WR);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 0);
	char buf[8];
	q_recv(&r, sv[1], buf, sizeof buf, 0, 2);
	CHECK_RES(RUN(&r, 2), 3);
	q_recv(&r, sv[1], buf, sizeof buf, 0, 3);
	CHECK_RES(RUN(&r, 3), 0);
	q_send(&r, sv[0], "x", 1, 0, 4);
	CHECK_RES(RUN(&r, 4), -EPIPE);
	/* the other way is open: a parked RECV ends when SHUTDOWN closes it */
	q_recv(&r, sv[0], buf, sizeof buf, 0, 5);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, sv[1], SHUT_WR);
	sqe->user_data = 6;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	for (int i = 0; i < 2; i++) {
		CHECK(c[i].user_data == 5 || c[i].user_data == 6);
		CHECK_RES(c[i].res, 0);
	}
	CHECK(c[0].user_data != c[1].user_data);
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, sv[0], 3);
	sqe->user_data = 7;
	CHECK_RES(RUN(&r, 7), -EINVAL);
	int p[2];
	CHECK_OK(pipe(p));
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, p[1], SHUT_WR);
	sqe->user_data = 8;
	CHECK_RES(RUN(&r, 8), -ENOTSOCK);
	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(u);
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, u, SHUT_RDWR);
	sqe->user_data = 9;
	CHECK_RES(RUN(&r, 9), 0);
	close(u);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int send_zc_unix(void)
{
	/*
	 * SEND_ZC on an AF_UNIX socket (no zero-copy support): the result CQE is -EOPNOTSUPP
	 * with F_MORE, then the notification CQE (res 0, IORING_CQE_F_NOTIF, the same
	 * user_data); nothing reaches the peer.
	 */
	GATE(IORING_OP_SEND_ZC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, sv[0], "zc", 2, 0, 0);
	sqe->user_data = 0x400;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	EXPECT_CQE(&r, 0x400, -EOPNOTSUPP, 1, &c);
	CHECK_EQ(c.flags, IORING_CQE_F_MORE);
	EXPECT_CQE(&r, 0x400, 0, 0, &c);
	CHECK_EQ(c.flags, IORING_CQE_F_NOTIF);
	EMPTY(&r);
	char buf[4];
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int errors(void)
{
	/*
	 * On a pipe, RECV, SEND, RECVMSG, SENDMSG, ACCEPT and CONNECT: -ENOTSOCK. ACCEPT on a
	 * stream socket that does not listen -EINVAL, on a datagram socket -EOPNOTSUPP.
	 * RECV on an unconnected stream socket -EINVAL; SEND -ENOTCONN. SEND to a peer that
	 * closed: -EPIPE and no SIGPIPE, even with a handler installed (io_uring sends with
	 * MSG_NOSIGNAL). A descriptor that is not open: -EBADF.
	 */
	GATE(IORING_OP_SEND);
	GATE(IORING_OP_RECV);
	GATE(IORING_OP_SENDMSG);
	GATE(IORING_OP_RECVMSG);
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_CONNECT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	char buf[8];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "errors");
	q_recv(&r, p[0], buf, sizeof buf, 0, 1);
	CHECK_RES(RUN(&r, 1), -ENOTSOCK);
	q_send(&r, p[1], "x", 1, 0, 2);
	CHECK_RES(RUN(&r, 2), -ENOTSOCK);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, p[0], &m, 0);
	sqe->user_data = 3;
	CHECK_RES(RUN(&r, 3), -ENOTSOCK);
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, p[1], &m, 0);
	sqe->user_data = 4;
	CHECK_RES(RUN(&r, 4), -ENOTSOCK);
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, p[0], NULL, NULL, 0);
	sqe->user_data = 5;
	CHECK_RES(RUN(&r, 5), -ENOTSOCK);
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, p[0], SA(&a), alen);
	sqe->user_data = 6;
	CHECK_RES(RUN(&r, 6), -ENOTSOCK);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, s, NULL, NULL, 0);
	sqe->user_data = 7;
	CHECK_RES(RUN(&r, 7), -EINVAL);
	q_recv(&r, s, buf, sizeof buf, 0, 8);
	CHECK_RES(RUN(&r, 8), -EINVAL);
	q_send(&r, s, "x", 1, 0, 9);
	CHECK_RES(RUN(&r, 9), -ENOTCONN);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(d);
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, d, NULL, NULL, 0);
	sqe->user_data = 10;
	CHECK_RES(RUN(&r, 10), -EOPNOTSUPP);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	close(sv[1]);
	ut_catch_sigpipe();
	q_send(&r, sv[0], "x", 1, 0, 11);
	int res = RUN(&r, 11);
	int sigs = ut_sigpipes;
	sqe = ut_sqe(&r);
	iov.iov_len = 1;
	io_uring_prep_sendmsg(sqe, sv[0], &m, 0);
	sqe->user_data = 12;
	int res2 = RUN(&r, 12);
	int sigs2 = ut_sigpipes;
	signal(SIGPIPE, SIG_IGN);
	CHECK_RES(res, -EPIPE);
	CHECK_EQ(sigs, 0);
	CHECK_RES(res2, -EPIPE);
	CHECK_EQ(sigs2, 0);
	int bad = ut_lowest_free_fd();
	q_send(&r, bad, "x", 1, 0, 13);
	CHECK_RES(RUN(&r, 13), -EBADF);
	q_recv(&r, bad, buf, sizeof buf, 0, 14);
	CHECK_RES(RUN(&r, 14), -EBADF);
	close(sv[0]);
	close(d);
	close(s);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recv_zc(void)
{
	/*
	 * IORING_OP_RECV_ZC (Linux 6.15, opcode 58) needs a zero-copy receive queue
	 * (IORING_REGISTER_ZCRX_IFQ on a NIC queue); without one its prep finds no ifq at
	 * index 0 and answers -EINVAL, on a plain ring and on a CQE32|DEFER_TASKRUN ring
	 * (what zcrx wants) alike. (-EINVAL is also what an unsupported opcode gives.)
	 */
	GATE(OP_RECV_ZC);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "zc", 2, 0), 2);
	for (int round = 0; round < 2; round++) {
		struct io_uring r;
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		if (round)
			p.flags = IORING_SETUP_CQE32 | IORING_SETUP_SINGLE_ISSUER |
				  IORING_SETUP_DEFER_TASKRUN;
		CHECK_OK(io_uring_queue_init_params(4, &r, &p));
		q_op(&r, OP_RECV_ZC, sv[1], 1);
		CHECK_RES(RUN(&r, 1), -EINVAL);
		io_uring_queue_exit(&r);
	}
	char buf[4];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), 2); /* untouched */
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

/* ---- TCP on 127.0.0.1 -------------------------------------------------------------- */

/* A TCP socket listening on 127.0.0.1 at a port the kernel picks (in *a); or -1. */
static int tcp_ops(void)
{
	/*
	 * TCP over 127.0.0.1: BIND to port 0 and LISTEN by io_uring (getsockname then names
	 * the port), CONNECT, ACCEPT with addr (AF_INET, 127.0.0.1, the client's port), SEND
	 * and RECV both ways.
	 */
	GATE(OP_BIND);
	GATE(OP_LISTEN);
	GATE(IORING_OP_CONNECT);
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_SEND);
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 && errno == EAFNOSUPPORT) {
		/* a kernel without IPv4 (ours, until it has TCP/IP) */
		io_uring_queue_exit(&r);
		ut_unsup_reason = "no AF_INET";
		return UT_UNSUP;
	}
	CHECK_OK(l);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	q_bind(&r, l, &a, sizeof a, 1);
	CHECK_RES(RUN(&r, 1), 0);
	q_listen(&r, l, 8, 2);
	CHECK_RES(RUN(&r, 2), 0);
	socklen_t alen = sizeof a;
	CHECK_OK(getsockname(l, SA(&a), &alen));
	CHECK(a.sin_port != 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c, SA(&a), sizeof a);
	sqe->user_data = 3;
	CHECK_RES(RUN(&r, 3), 0);
	struct sockaddr_in ca, peer;
	socklen_t calen = sizeof ca, plen = sizeof peer;
	CHECK_OK(getsockname(c, SA(&ca), &calen));
	memset(&peer, 0, sizeof peer);
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, l, SA(&peer), &plen, 0);
	sqe->user_data = 4;
	int s = RUN(&r, 4);
	CHECK_OK(s);
	CHECK_EQ(plen, sizeof peer);
	CHECK_EQ(peer.sin_family, AF_INET);
	CHECK_EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	CHECK_EQ(peer.sin_port, ca.sin_port);
	q_send(&r, c, "over tcp", 8, 0, 5);
	CHECK_RES(RUN(&r, 5), 8);
	char buf[16];
	q_recv(&r, s, buf, 8, MSG_WAITALL, 6);
	CHECK_RES(RUN(&r, 6), 8);
	CHECK(!memcmp(buf, "over tcp", 8));
	q_send(&r, s, "reply", 5, 0, 7);
	CHECK_RES(RUN(&r, 7), 5);
	q_recv(&r, c, buf, 5, MSG_WAITALL, 8);
	CHECK_RES(RUN(&r, 8), 5);
	CHECK(!memcmp(buf, "reply", 5));
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int tcp_send_zc(void)
{
	/*
	 * SEND_ZC of 4096 bytes on a TCP connection over 127.0.0.1: the result CQE (res 4096)
	 * has F_MORE, then the notification CQE (res 0, IORING_CQE_F_NOTIF, same user_data)
	 * says the buffer is free; the peer reads the bytes.
	 */
	GATE(IORING_OP_SEND_ZC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	if (l < 0 && errno == EAFNOSUPPORT) {
		/* a kernel without IPv4 (ours, until it has TCP/IP) */
		io_uring_queue_exit(&r);
		ut_unsup_reason = "no AF_INET";
		return UT_UNSUP;
	}
	CHECK_OK(l);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), sizeof a));
	int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	CHECK_OK(s);
	static char data[4096], got[4096];
	ut_pattern(data, sizeof data, 9);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_send_zc(sqe, c, data, sizeof data, 0, 0);
	sqe->user_data = 0x500;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 0x500, (int)sizeof data, 1, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_MORE);
	EXPECT_CQE(&r, 0x500, 0, 0, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_NOTIF);
	CHECK_OK(read_all(s, got, sizeof got));
	CHECK(!memcmp(got, data, sizeof data));
	EMPTY(&r);
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int poll_socket(void)
{
	/* POLL_ADD and EPOLL_WAIT on sockets: a poll for POLLIN parks until the peer writes,
	 * a multishot poll fires again for the next write, and an epoll set watching the
	 * socket reports it readable; the peer closing gives POLLHUP (with POLLIN and
	 * POLLRDHUP) */
	GATE(IORING_OP_POLL_ADD);
	GATE(59 /* IORING_OP_EPOLL_WAIT, Linux 6.15 */);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, sv[1], POLLIN);
	sqe->user_data = 1;
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "a", 1, 0), 1);
	struct io_uring_cqe c;
	EXPECT_CQE(&r, 1, POLLIN, 0, &c);
	char buf[4];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 1);
	/* multishot: one CQE per time the socket becomes readable */
	sqe = ut_sqe(&r);
	io_uring_prep_poll_multishot(sqe, sv[1], POLLIN);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "b", 1, 0), 1);
	EXPECT_CQE(&r, 2, POLLIN, 1, &c);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 1);
	CHECK_EQ(send(sv[0], "c", 1, 0), 1);
	EXPECT_CQE(&r, 2, POLLIN, 1, &c);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 1);
	sqe = ut_sqe(&r);
	io_uring_prep_poll_remove(sqe, 2);
	sqe->user_data = 3;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq[2];
	CHECK_OK(ut_reap(&r, 2, cq));
	/* epoll: the set says the socket is readable once the peer writes */
	int ep = epoll_create1(0);
	CHECK_OK(ep);
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x5e };
	CHECK_OK(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev));
	struct epoll_event got[2];
	sqe = ut_sqe(&r);
	io_uring_prep_rw(59 /* IORING_OP_EPOLL_WAIT */, sqe, ep, got, 2, 0);
	sqe->user_data = 4;
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "d", 1, 0), 1);
	EXPECT_CQE(&r, 4, 1, 0, &c);
	CHECK_EQ(got[0].events, EPOLLIN);
	CHECK_EQ(got[0].data.u64, 0x5e);
	/* the peer closes: POLLIN | POLLRDHUP | POLLHUP for a poll asking for POLLIN */
	close(sv[0]);
	sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, sv[1], POLLIN | POLLRDHUP);
	sqe->user_data = 5;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 5, POLLIN | POLLRDHUP | POLLHUP, 0, &c);
	close(ep);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recv_waitall(void)
{
	/* RECV with MSG_WAITALL on a stream completes only when its whole buffer is filled
	 * (3 bytes, then 5: one CQE of 8), or with what came when the peer closes */
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	char buf[16];
	memset(buf, 0, sizeof buf);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recv(sqe, sv[1], buf, 8, MSG_WAITALL);
	sqe->user_data = 1;
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_EQ(send(sv[0], "abc", 3, 0), 3);
	EMPTY(&r);
	CHECK_EQ(send(sv[0], "defgh", 5, 0), 5);
	struct io_uring_cqe c;
	EXPECT_CQE(&r, 1, 8, 0, &c);
	CHECK(!memcmp(buf, "abcdefgh", 8));
	sqe = ut_sqe(&r);
	io_uring_prep_recv(sqe, sv[1], buf, 8, MSG_WAITALL);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 1);
	CHECK_EQ(send(sv[0], "xy", 2, 0), 2);
	EMPTY(&r);
	close(sv[0]);
	EXPECT_CQE(&r, 2, 2, 0, &c);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int socket_commands(void)
{
	/* On AF_UNIX, SIOCINQ and SIOCOUTQ through URING_CMD are -EOPNOTSUPP (Linux asks the
	 * protocol's ioctl, which AF_UNIX's has not), while ioctl(2) answers: a stream's
	 * unread bytes, a datagram socket's next message; SIOCOUTQ more than 0 while the peer
	 * has not read (Linux counts its buffers' overhead too, so only that), 0 once it has.
	 * GETSOCKOPT answers the length written, SETSOCKOPT 0; another command -EOPNOTSUPP */
	GATE(IORING_OP_URING_CMD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "hello", 5, 0), 5);
	CHECK_RES(sock_cmd(&r, sv[1], 0, 0, 0, NULL, 0), -EOPNOTSUPP);
	CHECK_RES(sock_cmd(&r, sv[0], 1, 0, 0, NULL, 0), -EOPNOTSUPP);
	int n = -1;
	CHECK_OK(ioctl(sv[1], SIOCINQ, &n));
	CHECK_EQ(n, 5);
	CHECK_OK(ioctl(sv[0], SIOCOUTQ, &n));
	CHECK(n > 0);
	char buf[8];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 5);
	CHECK_OK(ioctl(sv[1], SIOCINQ, &n));
	CHECK_EQ(n, 0);
	CHECK_OK(ioctl(sv[0], SIOCOUTQ, &n));
	CHECK_EQ(n, 0);
	int v = 0;
	CHECK_RES(sock_cmd(&r, sv[0], 2, SOL_SOCKET, SO_TYPE, &v, sizeof v), (int)sizeof v);
	CHECK_EQ(v, SOCK_STREAM);
	int one = 1;
	CHECK_RES(sock_cmd(&r, sv[0], 3, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one), 0);
	v = 0;
	CHECK_RES(sock_cmd(&r, sv[0], 2, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v), (int)sizeof v);
	CHECK_EQ(v, 1);
	CHECK_RES(sock_cmd(&r, sv[0], 99, 0, 0, NULL, 0), -EOPNOTSUPP);
	int d[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, d));
	CHECK_EQ(send(d[0], "abc", 3, 0), 3);
	CHECK_EQ(send(d[0], "defgh", 5, 0), 5);
	CHECK_OK(ioctl(d[1], SIOCINQ, &n));
	CHECK_EQ(n, 3);
	close(d[0]);
	close(d[1]);
	close(sv[0]);
	close(sv[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(net, T(socket_op), T(direct_descriptors), T(bind_listen), T(connect_accept),
	  T(accept_parks), T(multishot_accept), T(send_recv), T(recv_multishot),
	  T(recv_multishot_cap), T(sendmsg_recvmsg), T(recvmsg_multishot), T(shutdown_op),
	  T(send_zc_unix), T(errors), T(recv_zc), T(poll_socket), T(recv_waitall), T(socket_commands), T(tcp_ops), T(tcp_send_zc));
