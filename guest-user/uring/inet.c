/*
 * AF_INET and AF_INET6 sockets over loopback (127.0.0.1 and ::1), TCP and UDP, through the
 * syscalls and the io_uring network opcodes: bind to port 0 and the names getsockname and
 * getpeername give, connect/accept4 and their io_uring forms (plain and direct descriptors),
 * a multishot ACCEPT of 100 connections, a multishot RECV from a buffer ring running dry,
 * resets (SO_LINGER {1, 0}, a close with unread data) and refused connections with their
 * errno and exact poll bits, nonblocking connects, socket options, EADDRINUSE, UDP names,
 * filters and truncation, 8 MiB each way between two threads, SIOCINQ/SIOCOUTQ and the
 * interface ioctls (SIOCGIFCONF, SIOCGIFINDEX, ...) with musl's netlink-based getifaddrs and
 * if_nameindex, SENDMSG_ZC, and the errno of each misuse, all as Linux 6.18 answers them.
 * Ports are always picked by the kernel (bind to port 0), so runs may overlap. A kernel
 * without AF_INET (or AF_INET6, or ::1) reports the tests that need it unsupported.
 * Loopback delivery is not assumed to be synchronous: a test waits (at most 5 s) for the
 * state it is about to check, then checks it exactly.
 */
#include "sockut.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define OP_FIXED_FD_INSTALL 54

/* what a TCP socket that was reset (or refused) polls as until its error is read */
#define RESET_BITS (POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP)

union sa {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

static socklen_t fam_len(int fam)
{
	return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* The loopback address of `fam` (127.0.0.1 or ::1) with `port` (host order) in *a; its length. */
static socklen_t loopback(int fam, union sa *a, int port)
{
	memset(a, 0, sizeof *a);
	if (fam == AF_INET) {
		a->in.sin_family = AF_INET;
		a->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->in.sin_port = htons((uint16_t)port);
	} else {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_addr = in6addr_loopback;
		a->in6.sin6_port = htons((uint16_t)port);
	}
	return fam_len(fam);
}

/* The wildcard address of `fam` (0.0.0.0 or ::) with `port` in *a; its length. */
static socklen_t wildcard(int fam, union sa *a, int port)
{
	memset(a, 0, sizeof *a);
	a->sa.sa_family = (sa_family_t)fam;
	if (fam == AF_INET)
		a->in.sin_port = htons((uint16_t)port);
	else
		a->in6.sin6_port = htons((uint16_t)port);
	return fam_len(fam);
}

static int port_of(const union sa *a)
{
	return ntohs(a->sa.sa_family == AF_INET ? a->in.sin_port : a->in6.sin6_port);
}

static const char *fam_name(int fam)
{
	return fam == AF_INET ? "AF_INET" : "AF_INET6";
}

/* A printable form of *a ("127.0.0.1:4000", "[::1]:4000"), in one of 4 static buffers. */
static const char *show(const union sa *a)
{
	static char buf[4][80];
	static int i;
	i = (i + 1) & 3;
	char host[INET6_ADDRSTRLEN] = "?";
	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->in.sin_addr, host, sizeof host);
		snprintf(buf[i], sizeof buf[i], "%s:%d", host, port_of(a));
	} else if (a->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &a->in6.sin6_addr, host, sizeof host);
		snprintf(buf[i], sizeof buf[i], "[%s]:%d", host, port_of(a));
	} else {
		snprintf(buf[i], sizeof buf[i], "(family %d)", a->sa.sa_family);
	}
	return buf[i];
}

/*
 * The tests of `fam` need its sockets and its loopback address: without them (socket(2)
 * EAFNOSUPPORT, or bind to the loopback address EADDRNOTAVAIL) they are unsupported.
 */
static int need_fam(int fam, const char *file, int line)
{
	int s = socket(fam, SOCK_STREAM, 0);
	if (s < 0 && errno == EAFNOSUPPORT) {
		ut_unsup_reason = fam == AF_INET ? "no AF_INET" : "no AF_INET6";
		return UT_UNSUP;
	}
	if (s < 0)
		return ut_fail(file, line, "socket(%s, SOCK_STREAM): %s", fam_name(fam),
			       ut_errname(errno));
	union sa a;
	socklen_t len = loopback(fam, &a, 0);
	int r = bind(s, &a.sa, len), e = errno;
	close(s);
	if (r < 0 && e == EADDRNOTAVAIL) {
		ut_unsup_reason = fam == AF_INET ? "no 127.0.0.1" : "no ::1";
		return UT_UNSUP;
	}
	if (r < 0)
		return ut_fail(file, line, "bind(%s loopback, port 0): %s", fam_name(fam),
			       ut_errname(e));
	return UT_OK;
}
#define NEED(fam) TRY(need_fam((fam), __FILE__, __LINE__))

/* Whether `fam` sockets on its loopback address work (for the optional AF_INET6 parts). */
static int have(int fam)
{
	const char *saved = ut_unsup_reason;
	int r = need_fam(fam, __FILE__, __LINE__) == UT_OK;
	ut_unsup_reason = saved;
	ut_msg[0] = 0;
	return r;
}

/* A socket of `type` bound to `fam`'s loopback address at a port the kernel picks (in *a,
 * read back with getsockname), listening with `backlog` if it is >= 0; or -1 (errno). */
static int bound(int fam, int type, int backlog, union sa *a)
{
	int fd = socket(fam, type, 0);
	if (fd < 0)
		return -1;
	socklen_t len = loopback(fam, a, 0);
	if (bind(fd, &a->sa, len) < 0 || (backlog >= 0 && listen(fd, backlog) < 0) ||
	    getsockname(fd, &a->sa, &len) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* A TCP listener on `fam`'s loopback address (backlog 16); its name in *a. */
static int listener(int fam, union sa *a, const char *file, int line, int *out)
{
	*out = bound(fam, SOCK_STREAM, 16, a);
	if (*out < 0)
		return ut_fail(file, line, "a %s TCP listener on loopback: %s", fam_name(fam),
			       ut_errname(errno));
	return UT_OK;
}
#define LISTENER(fam, a, l) TRY(listener((fam), (a), __FILE__, __LINE__, &(l)))

/* A connected TCP pair over `fam`'s loopback: *c connected (blocking connect), *s accepted. */
static int tcp_pair(int fam, int *c, int *s, const char *file, int line)
{
	union sa a;
	int l = bound(fam, SOCK_STREAM, 4, &a);
	if (l < 0)
		return ut_fail(file, line, "listener: %s", ut_errname(errno));
	*c = socket(fam, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, &a.sa, fam_len(fam)) < 0)
		return ut_fail(file, line, "connect to %s: %s", show(&a), ut_errname(errno));
	*s = accept4(l, NULL, NULL, 0);
	if (*s < 0)
		return ut_fail(file, line, "accept4: %s", ut_errname(errno));
	close(l);
	return UT_OK;
}
#define PAIR(fam, c, s) TRY(tcp_pair((fam), &(c), &(s), __FILE__, __LINE__))

/* The name `fd` has (getsockname, peer 0) or is connected to (getpeername, peer 1): it must
 * be fam_len bytes equal to *want (family, address, port; zeroes elsewhere). */
static int name_is(int fd, int peer, const union sa *want, const char *file, int line)
{
	union sa got;
	memset(&got, 0x5a, sizeof got);
	socklen_t l = sizeof got;
	const char *what = peer ? "getpeername" : "getsockname";
	int r = peer ? getpeername(fd, &got.sa, &l) : getsockname(fd, &got.sa, &l);
	if (r < 0)
		return ut_fail(file, line, "%s: %s", what, ut_errname(errno));
	socklen_t wl = fam_len(want->sa.sa_family);
	if (l != wl || memcmp(&got, want, wl))
		return ut_fail(file, line, "%s: %s (addrlen %u), expected %s (addrlen %u)", what,
			       show(&got), (unsigned)l, show(want), (unsigned)wl);
	return UT_OK;
}
#define NAME_IS(fd, peer, want) TRY(name_is((fd), (peer), (want), __FILE__, __LINE__))

/* getsockname of `fd` into *a (must work) */
static int sockname(int fd, union sa *a, const char *file, int line)
{
	socklen_t l = sizeof *a;
	if (getsockname(fd, &a->sa, &l) < 0)
		return ut_fail(file, line, "getsockname: %s", ut_errname(errno));
	return UT_OK;
}
#define SOCKNAME(fd, a) TRY(sockname((fd), (a), __FILE__, __LINE__))

/* Wait at most 5 s for poll(2) of `fd` (ALL_EVENTS) to show exactly `want`. */
static int wait_revents(int fd, int want, const char *name, const char *wname, const char *file,
			int line)
{
	long long end = ut_now_ms() + 5000;
	int rv;
	while ((rv = revents(fd)) != want) {
		if (ut_now_ms() > end)
			return ut_fail(file, line, "poll(%s) revents 0x%x, expected 0x%x (%s) within 5 s",
				       name, rv, (unsigned)want, wname);
		ut_sleep_ms(1);
	}
	return UT_OK;
}
#define WAIT_REVENTS(fd, want) TRY(wait_revents((fd), (want), #fd, #want, __FILE__, __LINE__))

/* Wait at most 5 s for `fd` to poll with `ev` (and whatever else); 0 or -1. */
static int wait_for(int fd, short ev)
{
	long long end = ut_now_ms() + 5000;
	for (;;) {
		long long left = end - ut_now_ms();
		if (left < 0)
			return -1;
		struct pollfd p = { .fd = fd, .events = ev };
		int n = poll(&p, 1, (int)left);
		if (n > 0 && (p.revents & ev))
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0)
			ut_sleep_ms(1); /* another bit (POLLHUP, POLLERR): wait for ours */
	}
}
#define WAIT_IN(fd)                                                            \
	do {                                                                   \
		if (wait_for((fd), POLLIN) < 0)                                \
			FAIL("%s not readable within 5 s", #fd);               \
	} while (0)

/* Receive exactly `len` bytes from `fd` (waiting at most 5 s for each part); 0 or -1. */
static int recv_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		if (wait_for(fd, POLLIN) < 0)
			return -1;
		ssize_t n = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* send `msg` on `fd`; `peer` must receive exactly it (and nothing more is there). */
static int echo(int fd, int peer, const char *msg, const char *file, int line)
{
	size_t len = strlen(msg);
	char buf[256];
	ssize_t n = send(fd, msg, len, MSG_NOSIGNAL);
	if (n != (ssize_t)len)
		return ut_fail(file, line, "send of %zu bytes: %zd (%s)", len, n,
			       n < 0 ? ut_errname(errno) : "short");
	if (recv_exact(peer, buf, len) < 0 || memcmp(buf, msg, len))
		return ut_fail(file, line, "the peer did not receive '%s'", msg);
	errno = 0;
	n = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
	if (n != -1 || errno != EAGAIN)
		return ut_fail(file, line, "after '%s': recv %zd (%s), expected EAGAIN", msg, n,
			       ut_errname(errno));
	return UT_OK;
}
#define ECHO(fd, peer, msg) TRY(echo((fd), (peer), (msg), __FILE__, __LINE__))

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof v);
}

/* Wait at most 5 s for each of `n` CQEs, copied to out[] in arrival order. */
static int reap_ms(struct io_uring *r, unsigned n, struct io_uring_cqe *out, const char *file,
		   int line)
{
	for (unsigned i = 0; i < n; i++) {
		int ret = ut_wait_cqe_ms(r, &out[i], 5000);
		if (ret < 0)
			return ut_fail(file, line, "CQE %u of %u: none within 5000 ms: %s", i + 1, n,
				       ut_errname(-ret));
	}
	return UT_OK;
}
#define REAP(r, n, out) TRY(reap_ms((r), (n), (out), __FILE__, __LINE__))

/* ---- tests ----------------------------------------------------------------------- */

static int tcp_echo(int fam)
{
	NEED(fam);
	/* the listener: bound to loopback port 0, the kernel's port read back */
	int l = socket(fam, SOCK_STREAM, 0);
	CHECK_OK(l);
	union sa la, any, got;
	socklen_t len = loopback(fam, &la, 0);
	wildcard(fam, &any, 0);
	NAME_IS(l, 0, &any); /* unbound: the wildcard address, port 0 */
	CHECK_OK(bind(l, &la.sa, len));
	SOCKNAME(l, &got);
	CHECK(port_of(&got) != 0);
	loopback(fam, &la, port_of(&got));
	NAME_IS(l, 0, &la);
	SOCKOPT_IS(l, SO_ACCEPTCONN, 0);
	CHECK_OK(listen(l, 8));
	SOCKOPT_IS(l, SO_ACCEPTCONN, 1);
	NAME_IS(l, 0, &la);
	/* the client: unbound until connect binds it to loopback and an ephemeral port */
	int c = socket(fam, SOCK_STREAM, 0);
	CHECK_OK(c);
	NAME_IS(c, 0, &any);
	CHECK_ERR(getpeername(c, &got.sa, &(socklen_t){ sizeof got }), ENOTCONN);
	CHECK_OK(connect(c, &la.sa, len));
	SOCKNAME(c, &got);
	int cport = port_of(&got);
	CHECK(cport != 0 && cport != port_of(&la));
	union sa ca;
	loopback(fam, &ca, cport);
	NAME_IS(c, 0, &ca);
	NAME_IS(c, 1, &la);
	/* accept4 names the client and honours SOCK_CLOEXEC; no O_NONBLOCK */
	union sa peer;
	memset(&peer, 0x5a, sizeof peer);
	socklen_t plen = sizeof peer;
	int s = accept4(l, &peer.sa, &plen, SOCK_CLOEXEC);
	CHECK_OK(s);
	CHECK_EQ(plen, len);
	if (memcmp(&peer, &ca, len))
		FAIL("accept4 named %s, expected %s", show(&peer), show(&ca));
	CHECK_EQ(fcntl(s, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(s, F_GETFL) & O_NONBLOCK, 0);
	NAME_IS(s, 0, &la);
	NAME_IS(s, 1, &ca);
	SOCKOPT_IS(s, SO_ACCEPTCONN, 0);
	SOCKOPT_IS(s, SO_DOMAIN, fam);
	/* data both ways, send/recv and write/read */
	ECHO(c, s, "ping");
	ECHO(s, c, "pong, from the server");
	char buf[64];
	CHECK_EQ(write(c, "written", 7), 7);
	WAIT_IN(s);
	CHECK_EQ(read(s, buf, sizeof buf), 7);
	CHECK(!memcmp(buf, "written", 7));
	/* the client closes: the server reads EOF */
	close(c);
	WAIT_IN(s);
	CHECK_EQ(read(s, buf, sizeof buf), 0);
	close(s);
	close(l);
	return UT_OK;
}

static int tcp_echo4(void)
{
	/*
	 * TCP over 127.0.0.1 by syscalls: an unbound socket names 0.0.0.0:0; bind to port 0
	 * gets a port (getsockname, addrlen 16); listen sets SO_ACCEPTCONN; connect binds the
	 * client to 127.0.0.1 and another port, getpeername the listener's name; accept4
	 * (SOCK_CLOEXEC) gives the client's name, getsockname/getpeername of the accepted
	 * socket mirror the client's; send/recv and write/read both ways; a close gives EOF.
	 */
	return tcp_echo(AF_INET);
}

static int tcp_echo6(void)
{
	/* tcp_echo4 over ::1: names are sockaddr_in6 (addrlen 28, flowinfo and scope 0) */
	return tcp_echo(AF_INET6);
}

static int uring_tcp(void)
{
	/*
	 * The io_uring opcodes on TCP over 127.0.0.1: SOCKET into fixed slot 0 (res 0), BIND
	 * (port 0) and LISTEN on the slot with IOSQE_FIXED_FILE, FIXED_FD_INSTALL to read the
	 * port with getsockname; SOCKET into the file table (the lowest free descriptor, TCP);
	 * CONNECT; ACCEPT from the slot naming the client; SEND/RECV, a RECV parked until data
	 * comes, SENDMSG of 3 iovecs/RECVMSG into 2 (MSG_WAITALL); SHUTDOWN(SHUT_WR): the peer's
	 * RECV gets 0 while the other direction still works.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_SOCKET);
	GATE(OP_BIND);
	GATE(OP_LISTEN);
	GATE(OP_FIXED_FD_INSTALL);
	GATE(IORING_OP_CONNECT);
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_SEND);
	GATE(IORING_OP_RECV);
	GATE(IORING_OP_SENDMSG);
	GATE(IORING_OP_RECVMSG);
	GATE(IORING_OP_SHUTDOWN);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 16));
	CHECK_RES(io_uring_register_files_sparse(&r, 4), 0);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_socket_direct(sqe, AF_INET, SOCK_STREAM, 0, 0, 0);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 0);
	union sa a;
	loopback(AF_INET, &a, 0);
	sqe = q_op(&r, OP_BIND, 0, 2);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->addr = (uint64_t)(uintptr_t)&a;
	sqe->addr2 = sizeof a.in;
	CHECK_RES(RUN(&r, 2), 0);
	sqe = q_op(&r, OP_LISTEN, 0, 3);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->len = 8;
	CHECK_RES(RUN(&r, 3), 0);
	sqe = q_op(&r, OP_FIXED_FD_INSTALL, 0, 4);
	sqe->flags = IOSQE_FIXED_FILE;
	int l = RUN(&r, 4);
	CHECK_OK(l);
	SOCKNAME(l, &a);
	CHECK(port_of(&a) != 0);
	union sa want;
	loopback(AF_INET, &want, port_of(&a));
	NAME_IS(l, 0, &want);
	SOCKOPT_IS(l, SO_ACCEPTCONN, 1);
	/* a client from SOCKET, connected by CONNECT */
	int low = ut_lowest_free_fd();
	sqe = ut_sqe(&r);
	io_uring_prep_socket(sqe, AF_INET, SOCK_STREAM, 0, 0);
	sqe->user_data = 5;
	int c = RUN(&r, 5);
	CHECK_RES(c, low);
	SOCKOPT_IS(c, SO_TYPE, SOCK_STREAM);
	SOCKOPT_IS(c, SO_PROTOCOL, IPPROTO_TCP);
	sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c, &a.sa, sizeof a.in);
	sqe->user_data = 6;
	CHECK_RES(RUN(&r, 6), 0);
	NAME_IS(c, 1, &want);
	union sa ca, peer;
	SOCKNAME(c, &ca);
	memset(&peer, 0x5a, sizeof peer);
	socklen_t plen = sizeof peer;
	sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, 0, &peer.sa, &plen, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 7;
	int s = RUN(&r, 7);
	CHECK_OK(s);
	CHECK_EQ(plen, sizeof peer.in);
	if (memcmp(&peer, &ca, sizeof peer.in))
		FAIL("ACCEPT named %s, expected %s", show(&peer), show(&ca));
	/* SEND/RECV */
	char buf[64];
	q_send(&r, c, "over tcp", 8, 0, 8);
	CHECK_RES(RUN(&r, 8), 8);
	q_recv(&r, s, buf, 8, MSG_WAITALL, 9);
	CHECK_RES(RUN(&r, 9), 8);
	CHECK(!memcmp(buf, "over tcp", 8));
	/* a RECV parked until the peer sends */
	memset(buf, 0, sizeof buf);
	q_recv(&r, c, buf, sizeof buf, 0, 10);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	q_send(&r, s, "late reply", 10, 0, 11);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq[2];
	REAP(&r, 2, cq);
	for (int i = 0; i < 2; i++) {
		CHECK(cq[i].user_data == 10 || cq[i].user_data == 11);
		CHECK_RES(cq[i].res, 10);
	}
	CHECK(cq[0].user_data != cq[1].user_data);
	CHECK(!memcmp(buf, "late reply", 10));
	/* SENDMSG gathers 3 iovecs, RECVMSG scatters into 2 */
	struct iovec out[3] = { { "abc", 3 }, { "defg", 4 }, { "hijkl", 5 } };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = out;
	m.msg_iovlen = 3;
	sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, s, &m, 0);
	sqe->user_data = 12;
	CHECK_RES(RUN(&r, 12), 12);
	char p1[5], p2[7];
	struct iovec in[2] = { { p1, sizeof p1 }, { p2, sizeof p2 } };
	struct msghdr rm;
	memset(&rm, 0, sizeof rm);
	rm.msg_iov = in;
	rm.msg_iovlen = 2;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, c, &rm, MSG_WAITALL);
	sqe->user_data = 13;
	CHECK_RES(RUN(&r, 13), 12);
	CHECK(!memcmp(p1, "abcde", 5));
	CHECK(!memcmp(p2, "fghijkl", 7));
	CHECK_EQ(rm.msg_flags, 0);
	/* SHUTDOWN(SHUT_WR): EOF for the peer, the other way still open */
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, c, SHUT_WR);
	sqe->user_data = 14;
	CHECK_RES(RUN(&r, 14), 0);
	q_recv(&r, s, buf, sizeof buf, 0, 15);
	CHECK_RES(RUN(&r, 15), 0);
	q_send(&r, s, "half", 4, 0, 16);
	CHECK_RES(RUN(&r, 16), 4);
	q_recv(&r, c, buf, 4, MSG_WAITALL, 17);
	CHECK_RES(RUN(&r, 17), 4);
	CHECK(!memcmp(buf, "half", 4));
	close(s);
	close(c);
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int accept_multishot_100(void)
{
	/*
	 * A listener (backlog 128) with a multishot ACCEPT armed; 100 clients connect
	 * (blocking connects); 100 CQEs come, each with F_MORE and a distinct new descriptor
	 * whose getpeername is exactly one client's name; each accepted connection echoes one
	 * byte both ways. ASYNC_CANCEL ends the multishot ACCEPT with -ECANCELED.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_ASYNC_CANCEL);
	enum { N = 100 };
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 128)); /* 256 CQEs: room for all 100 */
	union sa a;
	int l = bound(AF_INET, SOCK_STREAM, 128, &a);
	CHECK_OK(l);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_multishot_accept(sqe, l, NULL, NULL, 0);
	sqe->user_data = 0x100;
	SUBMIT_NONE(&r, 1);
	static int c[N], srv[N], acc[N], cport[N];
	for (int i = 0; i < N; i++) {
		c[i] = socket(AF_INET, SOCK_STREAM, 0);
		CHECK_OK(c[i]);
		CHECK_OK(connect(c[i], &a.sa, sizeof a.in));
		union sa n;
		SOCKNAME(c[i], &n);
		cport[i] = port_of(&n);
		srv[i] = -1;
	}
	for (int i = 0; i < N; i++) {
		struct io_uring_cqe cqe;
		WAIT_UD(&r, 0x100, 5000, &cqe);
		if (cqe.res < 0)
			FAIL("CQE %d: res %d (%s)", i, cqe.res, ut_resname(cqe.res));
		CHECK_EQ(cqe.flags, IORING_CQE_F_MORE);
		acc[i] = cqe.res;
		for (int k = 0; k < i; k++)
			if (acc[k] == acc[i])
				FAIL("CQEs %d and %d both gave descriptor %d", k, i, acc[i]);
		union sa p;
		socklen_t pl = sizeof p;
		CHECK_OK(getpeername(acc[i], &p.sa, &pl));
		int j = 0;
		while (j < N && cport[j] != port_of(&p))
			j++;
		if (j == N || srv[j] != -1)
			FAIL("accepted %d: peer %s is no client or a client accepted twice", acc[i],
			     show(&p));
		srv[j] = acc[i];
	}
	EMPTY(&r);
	for (int i = 0; i < N; i++) {
		unsigned char b = (unsigned char)i, got = 0;
		CHECK_EQ(send(c[i], &b, 1, 0), 1);
		CHECK_OK(recv_exact(srv[i], &got, 1));
		CHECK_EQ(got, b);
		b = (unsigned char)~i;
		CHECK_EQ(send(srv[i], &b, 1, 0), 1);
		CHECK_OK(recv_exact(c[i], &got, 1));
		CHECK_EQ(got, b);
	}
	CANCEL_WAITING(&r, 0x100, 0x101, 0);
	for (int i = 0; i < N; i++) {
		close(srv[i]);
		close(c[i]);
	}
	close(l);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int recv_multishot_bufring_tcp(void)
{
	/*
	 * A multishot RECV (BUFFER_SELECT) on TCP with a ring of 4 buffers of 32 bytes; each
	 * message, sent once the previous CQE came, gives one CQE with F_MORE and exactly
	 * F_BUFFER (ids in ring order, no F_SOCK_NONEMPTY); the fifth finds the ring dry:
	 * -ENOBUFS without F_MORE, flags 0, the bytes left in the socket (SIOCINQ). Refilled
	 * and re-armed, the RECV gets them at once, then the next ones; every byte arrives in
	 * order; the peer's close ends it with res 0 and flags exactly F_SOCK_NONEMPTY
	 * (Linux's TCP reports 1 byte "in queue" once a FIN came).
	 */
	NEED(AF_INET);
	GATE(IORING_OP_RECV);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 16));
	struct bufring b;
	BUFRING(&r, &b, 4, 9);
	static char bufs[4][32];
	bufring_fill(&b, bufs, 32, 4);
	int c, s;
	PAIR(AF_INET, c, s);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, s, NULL, 0, 0);
	ut_sel(sqe, 9);
	sqe->user_data = 0x200;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	static const char *msgs[] = { "one", "two two", "three three three", "four", "five!",
				      "six six", "seven" };
	char sent[256] = "", got[256] = "";
	size_t glen = 0;
	struct io_uring_cqe cq;
	for (int i = 0; i < 4; i++) {
		int len = (int)strlen(msgs[i]);
		CHECK_EQ(send(c, msgs[i], len, 0), len);
		strcat(sent, msgs[i]);
		EXPECT_CQE(&r, 0x200, len, 1, &cq);
		CHECK_EQ(cq.flags, BUF_FLAGS(i, 1));
		memcpy(got + glen, bufs[i], len);
		glen += (size_t)len;
	}
	CHECK_EQ(send(c, msgs[4], 5, 0), 5);
	strcat(sent, msgs[4]);
	EXPECT_CQE(&r, 0x200, -ENOBUFS, 0, &cq);
	CHECK_EQ(cq.flags, 0);
	EMPTY(&r);
	int inq = -1;
	CHECK_OK(ioctl(s, SIOCINQ, &inq));
	CHECK_EQ(inq, 5);
	/* refill and re-arm: what waits in the socket comes first */
	memset(bufs, 0, sizeof bufs);
	bufring_fill(&b, bufs, 32, 4);
	sqe = ut_sqe(&r);
	io_uring_prep_recv_multishot(sqe, s, NULL, 0, 0);
	ut_sel(sqe, 9);
	sqe->user_data = 0x201;
	CHECK_EQ(io_uring_submit(&r), 1);
	EXPECT_CQE(&r, 0x201, 5, 1, &cq);
	CHECK_EQ(cq.flags, BUF_FLAGS(0, 1));
	memcpy(got + glen, bufs[0], 5);
	glen += 5;
	for (int i = 5; i < 7; i++) {
		int len = (int)strlen(msgs[i]);
		CHECK_EQ(send(c, msgs[i], len, 0), len);
		strcat(sent, msgs[i]);
		EXPECT_CQE(&r, 0x201, len, 1, &cq);
		CHECK_EQ(cq.flags, BUF_FLAGS(i - 4, 1));
		memcpy(got + glen, bufs[i - 4], len);
		glen += (size_t)len;
	}
	got[glen] = 0;
	if (strcmp(got, sent))
		FAIL("received '%s', sent '%s'", got, sent);
	EMPTY(&r);
	close(c);
	/* the FIN: res 0, and F_SOCK_NONEMPTY (TCP's inq hint is 1 after a FIN, telling the
	 * reader to read on to see the EOF) */
	EXPECT_CQE(&r, 0x201, 0, 0, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_SOCK_NONEMPTY);
	close(s);
	bufring_free(&r, &b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* Close `fd` with SO_LINGER {1, 0} (read back as set): an abortive close, a RST. */
static int close_reset(int fd, const char *file, int line)
{
	struct linger lg = { 1, 0 }, back = { -1, -1 };
	socklen_t l = sizeof back;
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_LINGER, &back, &l) < 0)
		return ut_fail(file, line, "SO_LINGER: %s", ut_errname(errno));
	if (l != sizeof back || back.l_onoff != 1 || back.l_linger != 0)
		return ut_fail(file, line, "SO_LINGER read back {%d, %d} (optlen %u)", back.l_onoff,
			       back.l_linger, (unsigned)l);
	if (close(fd) < 0)
		return ut_fail(file, line, "close: %s", ut_errname(errno));
	return UT_OK;
}
#define CLOSE_RESET(fd) TRY(close_reset((fd), __FILE__, __LINE__))

static int linger_reset(void)
{
	/*
	 * SO_LINGER {1, 0} then close: the peer is reset. It polls as exactly
	 * POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP (asked for IN|PRI|OUT|RDHUP); its recv is
	 * ECONNRESET once, then 0, and POLLERR is gone; a send is then EPIPE; SO_ERROR 0.
	 * Another pair: SO_ERROR reports ECONNRESET once (then 0, and recv gives 0). io_uring:
	 * a RECV parked before the reset completes with -ECONNRESET; a RECV after it
	 * -ECONNRESET, the next one 0.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_RECV);
	int c, s;
	PAIR(AF_INET, c, s);
	ECHO(c, s, "before");
	CLOSE_RESET(c);
	WAIT_REVENTS(s, RESET_BITS);
	char buf[16];
	CHECK_ERR(recv(s, buf, sizeof buf, 0), ECONNRESET);
	CHECK_EQ(recv(s, buf, sizeof buf, MSG_DONTWAIT), 0);
	CHECK_REVENTS(s, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	SOCKOPT_IS(s, SO_ERROR, 0);
	CHECK_ERR(send(s, "x", 1, MSG_NOSIGNAL), EPIPE);
	close(s);
	/* SO_ERROR takes the error */
	PAIR(AF_INET, c, s);
	CLOSE_RESET(c);
	WAIT_REVENTS(s, RESET_BITS);
	SOCKOPT_IS(s, SO_ERROR, ECONNRESET);
	SOCKOPT_IS(s, SO_ERROR, 0);
	CHECK_REVENTS(s, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	CHECK_EQ(recv(s, buf, sizeof buf, MSG_DONTWAIT), 0);
	close(s);
	/* io_uring: a RECV parked when the reset comes */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	PAIR(AF_INET, c, s);
	q_recv(&r, s, buf, sizeof buf, 0, 1);
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	CLOSE_RESET(c);
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 1, -ECONNRESET, 0, &cq);
	q_recv(&r, s, buf, sizeof buf, 0, 2);
	CHECK_RES(RUN(&r, 2), 0);
	close(s);
	/* a RECV issued after the reset */
	PAIR(AF_INET, c, s);
	CLOSE_RESET(c);
	WAIT_REVENTS(s, RESET_BITS);
	q_recv(&r, s, buf, sizeof buf, 0, 3);
	CHECK_RES(RUN(&r, 3), -ECONNRESET);
	q_recv(&r, s, buf, sizeof buf, 0, 4);
	CHECK_RES(RUN(&r, 4), 0);
	close(s);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int peer_vanishes(void)
{
	/*
	 * A socket closed (no SO_LINGER) with received data it never read resets the
	 * connection: the survivor polls as POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP; its
	 * first send is ECONNRESET, after which recv gives 0 and a send is EPIPE, and raises
	 * SIGPIPE without MSG_NOSIGNAL. A peer that read everything and closes sends a FIN
	 * instead: the survivor polls POLLIN|POLLOUT|POLLRDHUP (no POLLHUP: it can still
	 * send) and reads 0.
	 */
	NEED(AF_INET);
	int c, s;
	PAIR(AF_INET, c, s);
	CHECK_EQ(send(c, "unread", 6, 0), 6);
	WAIT_IN(s); /* the data is there: the close must reset */
	close(s);
	WAIT_REVENTS(c, RESET_BITS);
	CHECK_ERR(send(c, "x", 1, MSG_NOSIGNAL), ECONNRESET);
	CHECK_REVENTS(c, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	char buf[16];
	CHECK_EQ(recv(c, buf, sizeof buf, MSG_DONTWAIT), 0);
	CHECK_ERR(send(c, "x", 1, MSG_NOSIGNAL), EPIPE);
	ut_catch_sigpipe();
	errno = 0;
	ssize_t n = send(c, "x", 1, 0);
	int e = errno, sigs = ut_sigpipes;
	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(n, -1);
	CHECK_EQ(e, EPIPE);
	CHECK_EQ(sigs, 1);
	close(c);
	/* an orderly close: FIN, not RST */
	PAIR(AF_INET, c, s);
	ECHO(c, s, "read it all");
	close(s);
	WAIT_REVENTS(c, POLLIN | POLLOUT | POLLRDHUP);
	CHECK_EQ(recv(c, buf, sizeof buf, 0), 0);
	SOCKOPT_IS(c, SO_ERROR, 0);
	close(c);
	return UT_OK;
}

static int refused(void)
{
	/*
	 * connect to a loopback port bound by a socket that does not listen: ECONNREFUSED
	 * (a blocking connect, and io_uring CONNECT -ECONNREFUSED). A nonblocking connect is
	 * EINPROGRESS (Linux never answers ECONNREFUSED at once, not even on loopback: the
	 * RST is handled after the SYN is sent), then the socket polls as
	 * POLLIN|POLLOUT|POLLERR|POLLHUP|POLLRDHUP; SO_ERROR reports ECONNREFUSED once (then
	 * 0); or a second connect reports it. Once the error is taken, connect answers
	 * ECONNABORTED. Over ::1 too when AF_INET6 works.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_CONNECT);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fams[2] = { AF_INET, AF_INET6 };
	int nfam = have(AF_INET6) ? 2 : 1;
	for (int f = 0; f < nfam; f++) {
		int fam = fams[f];
		union sa a;
		int b = bound(fam, SOCK_STREAM, -1, &a); /* holds the port: nobody listens */
		CHECK_OK(b);
		socklen_t len = fam_len(fam);
		int c = socket(fam, SOCK_STREAM, 0);
		CHECK_OK(c);
		CHECK_ERR(connect(c, &a.sa, len), ECONNREFUSED);
		SOCKOPT_IS(c, SO_ERROR, 0);
		close(c);
		c = socket(fam, SOCK_STREAM, 0);
		CHECK_OK(c);
		struct io_uring_sqe *sqe = ut_sqe(&r);
		io_uring_prep_connect(sqe, c, &a.sa, len);
		sqe->user_data = 1;
		CHECK_RES(RUN(&r, 1), -ECONNREFUSED);
		close(c);
		/* nonblocking: SO_ERROR */
		c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
		CHECK_OK(c);
		CHECK_ERR(connect(c, &a.sa, len), EINPROGRESS);
		WAIT_REVENTS(c, RESET_BITS);
		SOCKOPT_IS(c, SO_ERROR, ECONNREFUSED);
		SOCKOPT_IS(c, SO_ERROR, 0);
		CHECK_REVENTS(c, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
		CHECK_ERR(connect(c, &a.sa, len), ECONNABORTED);
		close(c);
		/* nonblocking: a second connect */
		c = socket(fam, SOCK_STREAM | SOCK_NONBLOCK, 0);
		CHECK_OK(c);
		CHECK_ERR(connect(c, &a.sa, len), EINPROGRESS);
		WAIT_REVENTS(c, RESET_BITS);
		CHECK_ERR(connect(c, &a.sa, len), ECONNREFUSED);
		SOCKOPT_IS(c, SO_ERROR, 0);
		close(c);
		close(b);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int nonblock_connect(void)
{
	/*
	 * A nonblocking connect to a listener is EINPROGRESS (on Linux always, loopback too),
	 * then the socket polls as POLLOUT alone, SO_ERROR 0, getpeername the listener; a
	 * second connect answers 0 (it reports the finished connect), a third EISCONN. An
	 * accept4 on a nonblocking listener with nothing pending is EAGAIN; the accepted
	 * socket carries data. io_uring CONNECT on a nonblocking socket completes with 0.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_CONNECT);
	union sa a;
	int l;
	LISTENER(AF_INET, &a, l);
	CHECK_OK(fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK));
	CHECK_ERR(accept4(l, NULL, NULL, 0), EAGAIN);
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK_OK(c);
	CHECK_ERR(connect(c, &a.sa, sizeof a.in), EINPROGRESS);
	WAIT_REVENTS(c, POLLOUT);
	SOCKOPT_IS(c, SO_ERROR, 0);
	NAME_IS(c, 1, &a);
	CHECK_OK(connect(c, &a.sa, sizeof a.in));
	CHECK_ERR(connect(c, &a.sa, sizeof a.in), EISCONN);
	WAIT_IN(l);
	int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	CHECK_OK(s);
	CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
	ECHO(c, s, "nonblocking");
	ECHO(s, c, "back");
	CHECK_ERR(accept4(l, NULL, NULL, 0), EAGAIN);
	/* io_uring CONNECT waits for the handshake itself */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK_OK(c2);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_connect(sqe, c2, &a.sa, sizeof a.in);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 0);
	NAME_IS(c2, 1, &a);
	CHECK_REVENTS(c2, POLLOUT);
	WAIT_IN(l);
	int s2 = accept4(l, NULL, NULL, 0);
	CHECK_OK(s2);
	ECHO(c2, s2, "uring");
	close(s2);
	close(c2);
	io_uring_queue_exit(&r);
	close(s);
	close(c);
	close(l);
	return UT_OK;
}

static int sockopts(void)
{
	/*
	 * TCP and UDP over AF_INET (and AF_INET6 when it works): SO_TYPE, SO_DOMAIN,
	 * SO_PROTOCOL (IPPROTO_TCP 6, IPPROTO_UDP 17, also for protocol 0), SO_ERROR 0,
	 * SO_ACCEPTCONN (1 only on a listener); SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE
	 * default 0 and set to 1; SO_RCVBUF/SO_SNDBUF set to 16384 read back doubled (32768);
	 * SO_RCVTIMEO {1, 500000} read back; TCP_NODELAY (IPPROTO_TCP) 0, set 1, back to 0;
	 * IP_TTL set to 32. Errors: an unknown SOL_SOCKET or IPPROTO_TCP option ENOPROTOOPT,
	 * TCP_NODELAY with optlen 2 EINVAL; a level the protocol does not know (IPPROTO_TCP on
	 * UDP, 999 on TCP): setsockopt ENOPROTOOPT, but getsockopt EOPNOTSUPP on AF_INET and
	 * ENOPROTOOPT on AF_INET6. IPV6_V6ONLY defaults to 0 and can be set.
	 */
	NEED(AF_INET);
	int fams[2] = { AF_INET, AF_INET6 };
	int nfam = have(AF_INET6) ? 2 : 1;
	for (int f = 0; f < nfam; f++) {
		int fam = fams[f];
		static const int types[2] = { SOCK_STREAM, SOCK_DGRAM };
		for (int t = 0; t < 2; t++) {
			int proto = types[t] == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
			for (int p = 0; p < 2; p++) {
				int s = socket(fam, types[t], p ? proto : 0);
				CHECK_OK(s);
				SOCKOPT_IS(s, SO_TYPE, types[t]);
				SOCKOPT_IS(s, SO_DOMAIN, fam);
				SOCKOPT_IS(s, SO_PROTOCOL, proto);
				SOCKOPT_IS(s, SO_ERROR, 0);
				SOCKOPT_IS(s, SO_ACCEPTCONN, 0);
				close(s);
			}
		}
	}
	union sa a;
	int l;
	LISTENER(AF_INET, &a, l);
	SOCKOPT_IS(l, SO_ACCEPTCONN, 1);
	close(l);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(s);
	static const int flags[] = { SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE };
	static const char *names[] = { "SO_REUSEADDR", "SO_REUSEPORT", "SO_KEEPALIVE" };
	for (int i = 0; i < 3; i++) {
		TRY(opt_is(s, SOL_SOCKET, flags[i], 0, names[i], __FILE__, __LINE__));
		CHECK_OK(set_int(s, SOL_SOCKET, flags[i], 1));
		TRY(opt_is(s, SOL_SOCKET, flags[i], 1, names[i], __FILE__, __LINE__));
	}
	CHECK_OK(set_int(s, SOL_SOCKET, SO_RCVBUF, 16384));
	SOCKOPT_IS(s, SO_RCVBUF, 32768);
	CHECK_OK(set_int(s, SOL_SOCKET, SO_SNDBUF, 16384));
	SOCKOPT_IS(s, SO_SNDBUF, 32768);
	struct timeval tv = { 1, 500000 }, tg = { 0, 0 };
	socklen_t tl = sizeof tg;
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tg, &tl));
	CHECK_EQ(tl, sizeof tg);
	CHECK_EQ(tg.tv_sec, 1);
	CHECK_EQ(tg.tv_usec, 500000);
	OPT_IS(s, IPPROTO_TCP, TCP_NODELAY, 0);
	CHECK_OK(set_int(s, IPPROTO_TCP, TCP_NODELAY, 1));
	OPT_IS(s, IPPROTO_TCP, TCP_NODELAY, 1);
	CHECK_OK(set_int(s, IPPROTO_TCP, TCP_NODELAY, 0));
	OPT_IS(s, IPPROTO_TCP, TCP_NODELAY, 0);
	CHECK_OK(set_int(s, IPPROTO_IP, IP_TTL, 32));
	OPT_IS(s, IPPROTO_IP, IP_TTL, 32);
	int v = 0, one = 1;
	socklen_t vl = sizeof v;
	CHECK_ERR(getsockopt(s, SOL_SOCKET, 9999, &v, &vl), ENOPROTOOPT);
	CHECK_ERR(setsockopt(s, SOL_SOCKET, 9999, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(getsockopt(s, IPPROTO_TCP, 9999, &v, &vl), ENOPROTOOPT);
	CHECK_ERR(setsockopt(s, IPPROTO_TCP, 9999, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, 2), EINVAL);
	/* the options hold on a connection */
	CHECK_OK(set_int(s, IPPROTO_TCP, TCP_NODELAY, 1));
	LISTENER(AF_INET, &a, l);
	CHECK_OK(connect(s, &a.sa, sizeof a.in));
	OPT_IS(s, IPPROTO_TCP, TCP_NODELAY, 1);
	SOCKOPT_IS(s, SO_KEEPALIVE, 1);
	close(s);
	close(l);
	/* a level IPv4 does not know: get EOPNOTSUPP but set ENOPROTOOPT (ip_getsockopt and
	 * ip_setsockopt differ); IPv6 answers ENOPROTOOPT to both */
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_ERR(setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(getsockopt(u, IPPROTO_TCP, TCP_NODELAY, &v, &vl), EOPNOTSUPP);
	close(u);
	s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(s);
	CHECK_ERR(setsockopt(s, 999, 1, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(getsockopt(s, 999, 1, &v, &vl), EOPNOTSUPP);
	close(s);
	if (nfam == 2) {
		u = socket(AF_INET6, SOCK_DGRAM, 0);
		CHECK_OK(u);
		CHECK_ERR(setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one), ENOPROTOOPT);
		CHECK_ERR(getsockopt(u, IPPROTO_TCP, TCP_NODELAY, &v, &vl), ENOPROTOOPT);
		close(u);
		int s6 = socket(AF_INET6, SOCK_STREAM, 0);
		CHECK_OK(s6);
		CHECK_ERR(setsockopt(s6, 999, 1, &one, sizeof one), ENOPROTOOPT);
		CHECK_ERR(getsockopt(s6, 999, 1, &v, &vl), ENOPROTOOPT);
		OPT_IS(s6, IPPROTO_IPV6, IPV6_V6ONLY, 0);
		CHECK_OK(set_int(s6, IPPROTO_IPV6, IPV6_V6ONLY, 1));
		OPT_IS(s6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		close(s6);
	}
	return UT_OK;
}

static int addr_in_use(void)
{
	/*
	 * bind to the address and port of a listener: EADDRINUSE, with or without
	 * SO_REUSEADDR on both sockets; 0.0.0.0 on that port too. Two sockets with
	 * SO_REUSEADDR may bind one address and port while neither listens; then the first
	 * listens, and listen on the second is EADDRINUSE. Two UDP sockets on one port:
	 * EADDRINUSE. Once the listener (which never had a connection) is closed, its port
	 * can be bound again.
	 */
	NEED(AF_INET);
	union sa a, w;
	int l;
	LISTENER(AF_INET, &a, l);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_ERR(bind(t, &a.sa, sizeof a.in), EADDRINUSE);
	wildcard(AF_INET, &w, port_of(&a));
	CHECK_ERR(bind(t, &w.sa, sizeof w.in), EADDRINUSE);
	CHECK_OK(set_int(t, SOL_SOCKET, SO_REUSEADDR, 1));
	CHECK_ERR(bind(t, &a.sa, sizeof a.in), EADDRINUSE);
	close(t);
	/* both with SO_REUSEADDR */
	int l2 = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(l2);
	CHECK_OK(set_int(l2, SOL_SOCKET, SO_REUSEADDR, 1));
	union sa b;
	loopback(AF_INET, &b, 0);
	CHECK_OK(bind(l2, &b.sa, sizeof b.in));
	SOCKNAME(l2, &b);
	int t2 = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(t2);
	CHECK_OK(set_int(t2, SOL_SOCKET, SO_REUSEADDR, 1));
	CHECK_OK(bind(t2, &b.sa, sizeof b.in)); /* neither listens yet */
	NAME_IS(t2, 0, &b);
	CHECK_OK(listen(l2, 4));
	CHECK_ERR(listen(t2, 4), EADDRINUSE);
	close(t2);
	t2 = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(t2);
	CHECK_OK(set_int(t2, SOL_SOCKET, SO_REUSEADDR, 1));
	CHECK_ERR(bind(t2, &b.sa, sizeof b.in), EADDRINUSE);
	close(t2);
	close(l2);
	/* UDP */
	union sa ua;
	int u = bound(AF_INET, SOCK_DGRAM, -1, &ua);
	CHECK_OK(u);
	int u2 = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(u2);
	CHECK_ERR(bind(u2, &ua.sa, sizeof ua.in), EADDRINUSE);
	close(u2);
	close(u);
	/* the port is free again once the listener is closed */
	close(l);
	t = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_OK(bind(t, &a.sa, sizeof a.in));
	NAME_IS(t, 0, &a);
	close(t);
	return UT_OK;
}

static int udp(int fam)
{
	NEED(fam);
	GATE(IORING_OP_SENDMSG);
	GATE(IORING_OP_RECVMSG);
	socklen_t len = fam_len(fam);
	union sa aa, ba, ca, from;
	int a = bound(fam, SOCK_DGRAM, -1, &aa), b = bound(fam, SOCK_DGRAM, -1, &ba),
	    c = bound(fam, SOCK_DGRAM, -1, &ca);
	CHECK_OK(a);
	CHECK_OK(b);
	CHECK_OK(c);
	CHECK(port_of(&aa) != 0 && port_of(&aa) != port_of(&ba));
	CHECK_REVENTS(b, POLLOUT);
	/* sendto/recvfrom name the sender exactly */
	CHECK_EQ(sendto(a, "hello", 5, 0, &ba.sa, len), 5);
	WAIT_REVENTS(b, POLLIN | POLLOUT);
	char buf[64];
	memset(&from, 0x5a, sizeof from);
	socklen_t fl = sizeof from;
	CHECK_EQ(recvfrom(b, buf, sizeof buf, 0, &from.sa, &fl), 5);
	CHECK(!memcmp(buf, "hello", 5));
	CHECK_EQ(fl, len);
	if (memcmp(&from, &aa, len))
		FAIL("recvfrom named %s, expected %s", show(&from), show(&aa));
	CHECK_REVENTS(b, POLLOUT);
	/* an empty datagram is one */
	CHECK_EQ(sendto(b, "", 0, 0, &aa.sa, len), 0);
	WAIT_IN(a);
	fl = sizeof from;
	CHECK_EQ(recvfrom(a, buf, sizeof buf, 0, &from.sa, &fl), 0);
	CHECK_EQ(fl, len);
	CHECK(!memcmp(&from, &ba, len));
	CHECK_ERR(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* truncation: the datagram's rest is dropped; MSG_TRUNC answers its full length */
	CHECK_EQ(sendto(a, "0123456789", 10, 0, &ba.sa, len), 10);
	CHECK_EQ(sendto(a, "abcdefghij", 10, 0, &ba.sa, len), 10);
	CHECK_EQ(sendto(a, "ABCDEFGHIJ", 10, 0, &ba.sa, len), 10);
	WAIT_IN(b);
	CHECK_EQ(recv(b, buf, 4, 0), 4);
	CHECK(!memcmp(buf, "0123", 4));
	WAIT_IN(b);
	CHECK_EQ(recv(b, buf, 4, MSG_TRUNC), 10);
	CHECK(!memcmp(buf, "abcd", 4));
	WAIT_IN(b);
	struct iovec iov = { buf, 4 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	CHECK_EQ(recvmsg(b, &m, 0), 4);
	CHECK_EQ(m.msg_flags, MSG_TRUNC);
	CHECK(!memcmp(buf, "ABCD", 4));
	CHECK_ERR(recv(b, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* no destination */
	int u = socket(fam, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_ERR(send(u, "x", 1, 0), EDESTADDRREQ);
	CHECK_ERR(send(a, "x", 1, 0), EDESTADDRREQ);
	close(u);
	/* connect: the default destination and a filter on the source */
	CHECK_OK(connect(a, &ba.sa, len));
	NAME_IS(a, 1, &ba);
	NAME_IS(a, 0, &aa);
	CHECK_EQ(send(a, "connected", 9, 0), 9);
	WAIT_IN(b);
	fl = sizeof from;
	CHECK_EQ(recvfrom(b, buf, sizeof buf, 0, &from.sa, &fl), 9);
	CHECK(!memcmp(buf, "connected", 9));
	CHECK(!memcmp(&from, &aa, len));
	CHECK_EQ(sendto(c, "stray", 5, 0, &aa.sa, len), 5); /* not from b: dropped */
	CHECK_EQ(sendto(b, "from b", 6, 0, &aa.sa, len), 6);
	WAIT_IN(a);
	fl = sizeof from;
	CHECK_EQ(recvfrom(a, buf, sizeof buf, 0, &from.sa, &fl), 6);
	CHECK(!memcmp(buf, "from b", 6));
	CHECK(!memcmp(&from, &ba, len));
	CHECK_ERR(recv(a, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* AF_UNSPEC disconnects */
	union sa un;
	memset(&un, 0, sizeof un);
	un.sa.sa_family = AF_UNSPEC;
	CHECK_OK(connect(a, &un.sa, sizeof un.sa));
	CHECK_ERR(getpeername(a, &from.sa, &(socklen_t){ sizeof from }), ENOTCONN);
	CHECK_ERR(send(a, "x", 1, 0), EDESTADDRREQ);
	/* io_uring SENDMSG with msg_name, RECVMSG filling it */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct iovec out[2] = { { "uring ", 6 }, { "dgram", 5 } };
	memset(&m, 0, sizeof m);
	m.msg_name = &ba;
	m.msg_namelen = len;
	m.msg_iov = out;
	m.msg_iovlen = 2;
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_sendmsg(sqe, c, &m, 0);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), 11);
	memset(&from, 0x5a, sizeof from);
	memset(buf, 0, sizeof buf);
	iov.iov_len = sizeof buf;
	struct msghdr rm;
	memset(&rm, 0, sizeof rm);
	rm.msg_name = &from;
	rm.msg_namelen = sizeof from;
	rm.msg_iov = &iov;
	rm.msg_iovlen = 1;
	sqe = ut_sqe(&r);
	io_uring_prep_recvmsg(sqe, b, &rm, 0);
	sqe->user_data = 2;
	CHECK_RES(RUN(&r, 2), 11);
	CHECK(!memcmp(buf, "uring dgram", 11));
	CHECK_EQ(rm.msg_namelen, len);
	if (memcmp(&from, &ca, len))
		FAIL("RECVMSG named %s, expected %s", show(&from), show(&ca));
	CHECK_EQ(rm.msg_flags, 0);
	io_uring_queue_exit(&r);
	close(c);
	close(b);
	close(a);
	return UT_OK;
}

static int udp4(void)
{
	/*
	 * UDP over 127.0.0.1: recvfrom names the sender (addrlen 16); poll POLLOUT, +POLLIN
	 * with a datagram; an empty datagram is received as 0 bytes; a 4-byte recv of a
	 * 10-byte datagram gives 4 (the rest dropped), 10 with MSG_TRUNC, and recvmsg sets
	 * MSG_TRUNC in msg_flags; send without a destination EDESTADDRREQ; connect sets the
	 * default destination (getpeername) and drops datagrams from others; connect to
	 * AF_UNSPEC undoes it; io_uring SENDMSG with msg_name and RECVMSG filling msg_name.
	 */
	return udp(AF_INET);
}

static int udp6(void)
{
	/* udp4 over ::1 (names are sockaddr_in6, addrlen 28) */
	return udp(AF_INET6);
}

/* recvmsg of one datagram on `fd` with a control buffer of `room` bytes (0: none): its
 * payload length; *clen the control bytes and *mflags msg_flags. */
static ssize_t recv_ctl(int fd, void *ctl, size_t room, size_t *clen, int *mflags)
{
	char buf[64];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = room ? ctl : NULL;
	m.msg_controllen = room;
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
	*clen = m.msg_controllen;
	*mflags = m.msg_flags;
	return n;
}

static int pktinfo(void)
{
	/*
	 * IP_PKTINFO on a UDP socket over 127.0.0.1: getsockopt says 1 once set, and each
	 * datagram comes with one IPPROTO_IP/IP_PKTINFO message of CMSG_LEN(12): interface 1
	 * (lo), ipi_spec_dst and ipi_addr 127.0.0.1; unset, none. A control buffer too small
	 * for it: MSG_CTRUNC and no control bytes. IPV6_RECVPKTINFO over ::1: one
	 * IPPROTO_IPV6/IPV6_PKTINFO message (::1, interface 1).
	 */
	NEED(AF_INET);
	union sa a;
	int r = bound(AF_INET, SOCK_DGRAM, -1, &a);
	CHECK_OK(r);
	int w = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(w);
	OPT_IS(r, IPPROTO_IP, IP_PKTINFO, 0);
	int one = 1;
	CHECK_OK(setsockopt(r, IPPROTO_IP, IP_PKTINFO, &one, sizeof one));
	OPT_IS(r, IPPROTO_IP, IP_PKTINFO, 1);
	CHECK_EQ(sendto(w, "pkt", 3, 0, &a.sa, sizeof a.in), 3);
	union {
		struct cmsghdr h;
		char b[256];
	} ctl;
	size_t clen;
	int mflags;
	CHECK_EQ(recv_ctl(r, &ctl, sizeof ctl, &clen, &mflags), 3);
	CHECK_EQ(clen, CMSG_SPACE(sizeof(struct in_pktinfo)));
	CHECK_EQ(mflags, 0);
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_control = &ctl;
	m.msg_controllen = clen;
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	CHECK(c != NULL);
	CHECK_EQ(c->cmsg_level, IPPROTO_IP);
	CHECK_EQ(c->cmsg_type, IP_PKTINFO);
	CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct in_pktinfo)));
	struct in_pktinfo pi;
	memcpy(&pi, CMSG_DATA(c), sizeof pi);
	CHECK_EQ(pi.ipi_ifindex, 1);
	CHECK_EQ(ntohl(pi.ipi_spec_dst.s_addr), INADDR_LOOPBACK);
	CHECK_EQ(ntohl(pi.ipi_addr.s_addr), INADDR_LOOPBACK);
	CHECK(CMSG_NXTHDR(&m, c) == NULL);
	/* too small a control buffer */
	CHECK_EQ(sendto(w, "pkt", 3, 0, &a.sa, sizeof a.in), 3);
	CHECK_EQ(recv_ctl(r, &ctl, 8, &clen, &mflags), 3);
	CHECK_EQ(clen, 0);
	CHECK_EQ(mflags, MSG_CTRUNC);
	/* off again */
	int zero = 0;
	CHECK_OK(setsockopt(r, IPPROTO_IP, IP_PKTINFO, &zero, sizeof zero));
	CHECK_EQ(sendto(w, "pkt", 3, 0, &a.sa, sizeof a.in), 3);
	CHECK_EQ(recv_ctl(r, &ctl, sizeof ctl, &clen, &mflags), 3);
	CHECK_EQ(clen, 0);
	CHECK_EQ(mflags, 0);
	close(r);
	close(w);
	if (!have(AF_INET6))
		return UT_OK;
	r = bound(AF_INET6, SOCK_DGRAM, -1, &a);
	CHECK_OK(r);
	w = socket(AF_INET6, SOCK_DGRAM, 0);
	CHECK_OK(w);
	OPT_IS(r, IPPROTO_IPV6, IPV6_RECVPKTINFO, 0);
	CHECK_OK(setsockopt(r, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one));
	OPT_IS(r, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
	CHECK_EQ(sendto(w, "pkt6", 4, 0, &a.sa, sizeof a.in6), 4);
	CHECK_EQ(recv_ctl(r, &ctl, sizeof ctl, &clen, &mflags), 4);
	CHECK_EQ(clen, CMSG_SPACE(sizeof(struct in6_pktinfo)));
	m.msg_control = &ctl;
	m.msg_controllen = clen;
	c = CMSG_FIRSTHDR(&m);
	CHECK(c != NULL);
	CHECK_EQ(c->cmsg_level, IPPROTO_IPV6);
	CHECK_EQ(c->cmsg_type, IPV6_PKTINFO);
	CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(struct in6_pktinfo)));
	struct in6_pktinfo pi6;
	memcpy(&pi6, CMSG_DATA(c), sizeof pi6);
	CHECK_EQ(pi6.ipi6_ifindex, 1);
	CHECK(!memcmp(&pi6.ipi6_addr, &in6addr_loopback, 16));
	close(r);
	close(w);
	return UT_OK;
}

static int link_local_scope(void)
{
	/*
	 * An IPv6 link-local address means nothing without its interface: connect and bind
	 * to fe80::1 with sin6_scope_id 0 are EINVAL (on TCP and UDP alike), before any
	 * route is looked for.
	 */
	NEED(AF_INET6);
	union sa a;
	memset(&a, 0, sizeof a);
	a.in6.sin6_family = AF_INET6;
	a.in6.sin6_port = htons(9);
	CHECK_EQ(inet_pton(AF_INET6, "fe80::1", &a.in6.sin6_addr), 1);
	for (int type = SOCK_STREAM; type <= SOCK_DGRAM; type++) {
		int s = socket(AF_INET6, type, 0);
		CHECK_OK(s);
		CHECK_ERR(connect(s, &a.sa, sizeof a.in6), EINVAL);
		CHECK_ERR(bind(s, &a.sa, sizeof a.in6), EINVAL);
		close(s);
	}
	return UT_OK;
}

static int poll_bits(void)
{
	/*
	 * The exact poll(2) revents of TCP sockets (asking for IN|PRI|OUT|RDHUP): unconnected
	 * POLLOUT|POLLHUP; a listener 0, POLLIN while a connection waits, 0 once accepted; a
	 * fresh connection POLLOUT, +POLLIN when the peer sent; the peer's SHUT_WR adds
	 * POLLRDHUP (the peer itself stays POLLOUT); our own SHUT_WR then makes both ends
	 * POLLIN|POLLOUT|POLLHUP|POLLRDHUP. A UDP socket POLLOUT. io_uring POLL_ADD(POLLIN) on
	 * a listener parks and completes with POLLIN when a client connects.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_POLL_ADD);
	int u = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(u);
	CHECK_REVENTS(u, POLLOUT | POLLHUP);
	close(u);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_REVENTS(u, POLLOUT);
	close(u);
	union sa a;
	int l;
	LISTENER(AF_INET, &a, l);
	CHECK_REVENTS(l, 0);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, &a.sa, sizeof a.in));
	WAIT_REVENTS(l, POLLIN);
	int s = accept4(l, NULL, NULL, 0);
	CHECK_OK(s);
	CHECK_REVENTS(l, 0);
	WAIT_REVENTS(c, POLLOUT);
	CHECK_REVENTS(s, POLLOUT);
	CHECK_EQ(send(s, "d", 1, 0), 1);
	WAIT_REVENTS(c, POLLIN | POLLOUT);
	CHECK_OK(shutdown(s, SHUT_WR));
	WAIT_REVENTS(c, POLLIN | POLLOUT | POLLRDHUP);
	CHECK_REVENTS(s, POLLOUT);
	CHECK_OK(shutdown(c, SHUT_WR));
	WAIT_REVENTS(s, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	WAIT_REVENTS(c, POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	close(s);
	close(c);
	/* io_uring POLL_ADD on the listener */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_poll_add(sqe, l, POLLIN);
	sqe->user_data = 1;
	SUBMIT_NONE(&r, 1);
	EMPTY(&r);
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, &a.sa, sizeof a.in));
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 1, POLLIN, 0, &cq);
	s = accept4(l, NULL, NULL, 0);
	CHECK_OK(s);
	io_uring_queue_exit(&r);
	close(s);
	close(c);
	close(l);
	return UT_OK;
}

/* ---- 8 MiB each way ------------------------------------------------------------ */

#define BULK_BYTES (8u << 20)
#define BULK_BLOCK 65536u

/* FNV-1a, 64 bits */
static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* Byte i of stream `seed`: block i / BULK_BLOCK is ut_pattern(seed * 1000 + block). */
static void bulk_block(unsigned char *buf, unsigned seed, size_t blk)
{
	ut_pattern(buf, BULK_BLOCK, seed * 1000 + (unsigned)blk);
}

struct pump {
	pthread_t th;
	int fd;
	unsigned out_seed, in_seed;
	uint64_t sent_sum, got_sum;
	size_t sent, got;
	int err;	  /* errno of what failed, or 0 */
	const char *what; /* what failed */
	long long bad_at; /* the first byte that differed, or -1 */
	unsigned char out[BULK_BLOCK], in[BULK_BLOCK], exp[BULK_BLOCK];
};

/* One end: send BULK_BYTES of its pattern while receiving the peer's (checked byte by
 * byte and summed), on a nonblocking socket driven by poll (at most 10 s without
 * progress); then SHUT_WR and wait for the peer's EOF. */
static void *pump_main(void *arg)
{
	struct pump *p = arg;
	uint64_t sh = FNV_INIT, rh = FNV_INIT;
	size_t sent = 0, got = 0, sblk = (size_t)-1, rblk = (size_t)-1;
	while (sent < BULK_BYTES || got < BULK_BYTES) {
		struct pollfd pf = { .fd = p->fd };
		pf.events = (short)((sent < BULK_BYTES ? POLLOUT : 0) | (got < BULK_BYTES ? POLLIN : 0));
		int n = poll(&pf, 1, 10000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			p->err = n == 0 ? ETIMEDOUT : errno;
			p->what = "poll";
			goto out;
		}
		if ((pf.revents & POLLOUT) && sent < BULK_BYTES) {
			size_t blk = sent / BULK_BLOCK, off = sent % BULK_BLOCK;
			if (blk != sblk) {
				bulk_block(p->out, p->out_seed, blk);
				sblk = blk;
			}
			ssize_t w = send(p->fd, p->out + off, BULK_BLOCK - off, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN) {
				p->err = errno;
				p->what = "send";
				goto out;
			}
			if (w > 0) {
				sh = fnv(sh, p->out + off, (size_t)w);
				sent += (size_t)w;
			}
		}
		if ((pf.revents & (POLLIN | POLLERR | POLLHUP)) && got < BULK_BYTES) {
			ssize_t rd = recv(p->fd, p->in, sizeof p->in, 0);
			if (rd < 0 && errno == EAGAIN)
				continue;
			if (rd <= 0) {
				p->err = rd == 0 ? EPIPE : errno;
				p->what = rd == 0 ? "recv: early EOF" : "recv";
				goto out;
			}
			if (got + (size_t)rd > BULK_BYTES) {
				p->err = E2BIG;
				p->what = "recv: more bytes than sent";
				goto out;
			}
			for (ssize_t k = 0; k < rd; k++) {
				size_t pos = got + (size_t)k;
				if (pos / BULK_BLOCK != rblk) {
					rblk = pos / BULK_BLOCK;
					bulk_block(p->exp, p->in_seed, rblk);
				}
				if (p->in[k] != p->exp[pos % BULK_BLOCK]) {
					p->bad_at = (long long)pos;
					p->err = EIO;
					p->what = "recv: a byte differs";
					goto out;
				}
			}
			rh = fnv(rh, p->in, (size_t)rd);
			got += (size_t)rd;
		}
	}
	if (shutdown(p->fd, SHUT_WR) < 0) {
		p->err = errno;
		p->what = "shutdown";
		goto out;
	}
	if (wait_for(p->fd, POLLIN) < 0 || recv(p->fd, p->in, 1, 0) != 0) {
		p->err = ETIMEDOUT;
		p->what = "no EOF after the data";
	}
out:
	p->sent = sent;
	p->got = got;
	p->sent_sum = sh;
	p->got_sum = rh;
	if (p->err)
		shutdown(p->fd, SHUT_RDWR); /* let the other end fail fast */
	return NULL;
}

static int bulk_checksum(void)
{
	/*
	 * 8 MiB each way at once over one TCP connection on 127.0.0.1, each end a thread with
	 * a nonblocking socket and poll: every byte arrives in order (checked against the
	 * pattern), the FNV-1a sum of what each end received equals the sum of what the
	 * other sent and the sum of the pattern; then both SHUT_WR and read EOF.
	 */
	NEED(AF_INET);
	int c, s;
	PAIR(AF_INET, c, s);
	CHECK_OK(fcntl(c, F_SETFL, O_NONBLOCK));
	CHECK_OK(fcntl(s, F_SETFL, O_NONBLOCK));
	static struct pump p[2];
	uint64_t want[2];
	for (int i = 0; i < 2; i++) {
		memset(&p[i], 0, offsetof(struct pump, out));
		p[i].fd = i ? s : c;
		p[i].out_seed = 11 + i;
		p[i].in_seed = 12 - i;
		p[i].bad_at = -1;
		uint64_t h = FNV_INIT;
		for (size_t blk = 0; blk < BULK_BYTES / BULK_BLOCK; blk++) {
			bulk_block(p[i].out, 11 + i, blk);
			h = fnv(h, p[i].out, BULK_BLOCK);
		}
		want[i] = h;
	}
	long long t0 = ut_now_ms();
	for (int i = 0; i < 2; i++) {
		int e = pthread_create(&p[i].th, NULL, pump_main, &p[i]);
		if (e) {
			if (i)
				pthread_join(p[0].th, NULL);
			FAIL("pthread_create: %s", ut_errname(e));
		}
	}
	for (int i = 0; i < 2; i++)
		pthread_join(p[i].th, NULL);
	ut_info("8 MiB each way in %lld ms", ut_now_ms() - t0);
	for (int i = 0; i < 2; i++)
		if (p[i].err)
			FAIL("%s end: %s: %s (sent %zu, received %zu, first bad byte %lld)",
			     i ? "server" : "client", p[i].what, ut_errname(p[i].err), p[i].sent,
			     p[i].got, p[i].bad_at);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(p[i].sent, BULK_BYTES);
		CHECK_EQ(p[i].got, BULK_BYTES);
		CHECK(p[i].sent_sum == want[i]);
		CHECK(p[1 - i].got_sum == want[i]);
	}
	close(c);
	close(s);
	return UT_OK;
}

/* ---- ioctls -------------------------------------------------------------------------- */

/* Wait at most 5 s for ioctl(fd, req) to give `want`; the last value, or -1 - errno. */
static int ioctl_until(int fd, unsigned long req, int want)
{
	long long end = ut_now_ms() + 5000;
	for (;;) {
		int v = -1;
		if (ioctl(fd, req, &v) < 0)
			return -1 - errno;
		if (v == want || ut_now_ms() > end)
			return v;
		ut_sleep_ms(1);
	}
}

static int is_lo4(const struct sockaddr *sa, uint32_t host_order)
{
	return sa && sa->sa_family == AF_INET &&
	       ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(host_order);
}

static int ioctls(void)
{
	/*
	 * TCP: SIOCINQ (= FIONREAD) is the unread byte count once the peer's 100 bytes
	 * arrived, 60 after reading 40; SIOCOUTQ drops to 0 once the peer acknowledged; a
	 * listener's SIOCINQ is EINVAL; URING_CMD SOCKET_URING_OP_SIOCINQ/SIOCOUTQ answer
	 * the same. UDP: SIOCINQ is the next datagram's size (3 of 3 and 5), also by
	 * URING_CMD. Interfaces, on an AF_INET datagram socket: SIOCGIFCONF with no buffer
	 * gives the size needed (a multiple of struct ifreq), with one it lists "lo" with
	 * 127.0.0.1; SIOCGIFINDEX("lo") > 0 and SIOCGIFNAME of it "lo"; SIOCGIFFLAGS has
	 * IFF_UP|IFF_LOOPBACK|IFF_RUNNING; SIOCGIFADDR 127.0.0.1, SIOCGIFNETMASK 255.0.0.0,
	 * SIOCGIFMTU > 0; an unknown name ENODEV. musl's if_nametoindex/if_indextoname
	 * (ioctls on an AF_UNIX socket) agree, if_nameindex and getifaddrs (NETLINK_ROUTE
	 * dumps) list lo, getifaddrs with 127.0.0.1/255.0.0.0 and IFF_UP|IFF_LOOPBACK. Other
	 * interfaces may exist and are not looked at.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_URING_CMD);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int c, s;
	PAIR(AF_INET, c, s);
	static char data[100];
	ut_pattern(data, sizeof data, 5);
	CHECK_EQ(send(c, data, sizeof data, 0), 100);
	CHECK_EQ(ioctl_until(s, SIOCINQ, 100), 100);
	int n = -1;
	CHECK_OK(ioctl(s, FIONREAD, &n));
	CHECK_EQ(n, 100);
	CHECK_RES(sock_cmd(&r, s, 0, 0, 0, NULL, 0), 100);
	CHECK_EQ(ioctl_until(c, SIOCOUTQ, 0), 0);
	CHECK_RES(sock_cmd(&r, c, 1, 0, 0, NULL, 0), 0);
	char buf[64];
	CHECK_EQ(recv(s, buf, 40, 0), 40);
	CHECK_OK(ioctl(s, SIOCINQ, &n));
	CHECK_EQ(n, 60);
	CHECK_RES(sock_cmd(&r, s, 0, 0, 0, NULL, 0), 60);
	close(c);
	close(s);
	union sa a;
	int l;
	LISTENER(AF_INET, &a, l);
	CHECK_ERR(ioctl(l, SIOCINQ, &n), EINVAL);
	close(l);
	/* UDP: the next datagram's size */
	union sa ua, ub;
	int u = bound(AF_INET, SOCK_DGRAM, -1, &ua), v = bound(AF_INET, SOCK_DGRAM, -1, &ub);
	CHECK_OK(u);
	CHECK_OK(v);
	CHECK_EQ(sendto(u, "abc", 3, 0, &ub.sa, sizeof ub.in), 3);
	CHECK_EQ(sendto(u, "defgh", 5, 0, &ub.sa, sizeof ub.in), 5);
	CHECK_EQ(ioctl_until(v, SIOCINQ, 3), 3);
	CHECK_RES(sock_cmd(&r, v, 0, 0, 0, NULL, 0), 3);
	close(u);
	io_uring_queue_exit(&r);
	/* interfaces */
	struct ifconf ifc;
	memset(&ifc, 0, sizeof ifc);
	CHECK_OK(ioctl(v, SIOCGIFCONF, &ifc));
	CHECK(ifc.ifc_len > 0);
	CHECK_EQ(ifc.ifc_len % (int)sizeof(struct ifreq), 0);
	static struct ifreq reqs[64];
	ifc.ifc_len = sizeof reqs;
	ifc.ifc_req = reqs;
	CHECK_OK(ioctl(v, SIOCGIFCONF, &ifc));
	CHECK_EQ(ifc.ifc_len % (int)sizeof(struct ifreq), 0);
	int found = 0;
	for (int i = 0; i < ifc.ifc_len / (int)sizeof(struct ifreq); i++)
		if (!strcmp(reqs[i].ifr_name, "lo") && is_lo4(&reqs[i].ifr_addr, INADDR_LOOPBACK))
			found++;
	CHECK_EQ(found, 1);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	CHECK_OK(ioctl(v, SIOCGIFINDEX, &ifr));
	int idx = ifr.ifr_ifindex;
	CHECK(idx > 0);
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_ifindex = idx;
	CHECK_OK(ioctl(v, SIOCGIFNAME, &ifr));
	CHECK(!strcmp(ifr.ifr_name, "lo"));
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	CHECK_OK(ioctl(v, SIOCGIFFLAGS, &ifr));
	int want_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
	if ((ifr.ifr_flags & want_flags) != want_flags)
		FAIL("lo's flags 0x%x lack some of IFF_UP|IFF_LOOPBACK|IFF_RUNNING", ifr.ifr_flags);
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	CHECK_OK(ioctl(v, SIOCGIFADDR, &ifr));
	CHECK(is_lo4(&ifr.ifr_addr, INADDR_LOOPBACK));
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	CHECK_OK(ioctl(v, SIOCGIFNETMASK, &ifr));
	CHECK(is_lo4(&ifr.ifr_netmask, 0xff000000u));
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "lo");
	CHECK_OK(ioctl(v, SIOCGIFMTU, &ifr));
	CHECK(ifr.ifr_mtu > 0);
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, "nosuchif0");
	CHECK_ERR(ioctl(v, SIOCGIFINDEX, &ifr), ENODEV);
	close(v);
	/* musl's interface functions */
	CHECK_EQ(if_nametoindex("lo"), idx);
	CHECK_EQ(if_nametoindex("nosuchif0"), 0);
	char name[IF_NAMESIZE];
	CHECK(if_indextoname((unsigned)idx, name) != NULL);
	CHECK(!strcmp(name, "lo"));
	struct if_nameindex *ni = if_nameindex();
	CHECK(ni != NULL);
	found = 0;
	for (struct if_nameindex *p = ni; p->if_index; p++)
		if (!strcmp(p->if_name, "lo"))
			found += p->if_index == (unsigned)idx ? 1 : 100;
	if_freenameindex(ni);
	CHECK_EQ(found, 1);
	struct ifaddrs *ifa;
	CHECK_OK(getifaddrs(&ifa));
	found = 0;
	for (struct ifaddrs *p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_name || strcmp(p->ifa_name, "lo") || !p->ifa_addr ||
		    p->ifa_addr->sa_family != AF_INET)
			continue;
		if (is_lo4(p->ifa_addr, INADDR_LOOPBACK) && is_lo4(p->ifa_netmask, 0xff000000u) &&
		    (p->ifa_flags & (IFF_UP | IFF_LOOPBACK)) == (IFF_UP | IFF_LOOPBACK))
			found++;
	}
	freeifaddrs(ifa);
	CHECK_EQ(found, 1);
	return UT_OK;
}

static int sendmsg_zc_tcp(void)
{
	/*
	 * SENDMSG_ZC of two iovecs (4096 bytes) on a TCP connection over 127.0.0.1: the result
	 * CQE (res 4096, flags exactly F_MORE), then the notification CQE (res 0, flags
	 * exactly F_NOTIF, the same user_data); the peer reads the bytes in order; nothing
	 * else comes.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_SENDMSG_ZC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int c, s;
	PAIR(AF_INET, c, s);
	static char data[4096], got[4096];
	ut_pattern(data, sizeof data, 21);
	struct iovec iov[2] = { { data, 1000 }, { data + 1000, 3096 } };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_sendmsg_zc(sqe, c, &m, 0);
	sqe->user_data = 0x600;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe cq;
	EXPECT_CQE(&r, 0x600, (int)sizeof data, 1, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_MORE);
	EXPECT_CQE(&r, 0x600, 0, 0, &cq);
	CHECK_EQ(cq.flags, IORING_CQE_F_NOTIF);
	CHECK_OK(recv_exact(s, got, sizeof got));
	CHECK(!memcmp(got, data, sizeof data));
	EMPTY(&r);
	close(s);
	close(c);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int autobind(void)
{
	/*
	 * Implicit binds: listen on an unbound TCP socket binds it to 0.0.0.0 and an
	 * ephemeral port, which 127.0.0.1 reaches; a UDP sendto from an unbound socket binds
	 * it to 0.0.0.0 and a port, and the receiver sees it come from 127.0.0.1 and that
	 * port.
	 */
	NEED(AF_INET);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(l);
	CHECK_OK(listen(l, 4));
	union sa a, want;
	SOCKNAME(l, &a);
	CHECK(port_of(&a) != 0);
	wildcard(AF_INET, &want, port_of(&a));
	NAME_IS(l, 0, &want);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(c);
	loopback(AF_INET, &a, port_of(&a));
	CHECK_OK(connect(c, &a.sa, sizeof a.in));
	int s = accept4(l, NULL, NULL, 0);
	CHECK_OK(s);
	NAME_IS(s, 0, &a); /* the accepted socket has the address it was reached at */
	ECHO(c, s, "autobound");
	close(s);
	close(c);
	close(l);
	union sa ra, from;
	int rcv = bound(AF_INET, SOCK_DGRAM, -1, &ra);
	CHECK_OK(rcv);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_EQ(sendto(u, "auto", 4, 0, &ra.sa, sizeof ra.in), 4);
	SOCKNAME(u, &a);
	CHECK(port_of(&a) != 0);
	wildcard(AF_INET, &want, port_of(&a));
	NAME_IS(u, 0, &want);
	WAIT_IN(rcv);
	char buf[8];
	socklen_t fl = sizeof from;
	CHECK_EQ(recvfrom(rcv, buf, sizeof buf, 0, &from.sa, &fl), 4);
	loopback(AF_INET, &want, port_of(&a));
	CHECK_EQ(fl, sizeof from.in);
	if (memcmp(&from, &want, sizeof want.in))
		FAIL("recvfrom named %s, expected %s", show(&from), show(&want));
	close(u);
	close(rcv);
	return UT_OK;
}

static int errors(void)
{
	/*
	 * socket(AF_INET, SOCK_STREAM, IPPROTO_UDP) and (SOCK_DGRAM, IPPROTO_TCP):
	 * EPROTONOSUPPORT. bind: addrlen 15 EINVAL, an AF_INET6 name on an AF_INET socket
	 * EAFNOSUPPORT, 203.0.113.1 (not local) EADDRNOTAVAIL, a second bind EINVAL; on an
	 * AF_INET6 socket an AF_INET name (addrlen 16) EINVAL, 2001:db8::1 EADDRNOTAVAIL.
	 * listen on UDP EOPNOTSUPP. On an unconnected TCP socket: accept EINVAL, recv
	 * ENOTCONN, send EPIPE (and SIGPIPE, none with MSG_NOSIGNAL), getpeername ENOTCONN,
	 * shutdown ENOTCONN; io_uring ACCEPT -EINVAL, RECV -ENOTCONN, SEND -EPIPE, SHUTDOWN
	 * -ENOTCONN. connect: addrlen 15 EINVAL, an AF_INET6 name EAFNOSUPPORT, a connected
	 * socket or a listener EISCONN. UDP sendto port 0 EINVAL, addrlen 15 EINVAL.
	 */
	NEED(AF_INET);
	GATE(IORING_OP_ACCEPT);
	GATE(IORING_OP_RECV);
	GATE(IORING_OP_SEND);
	GATE(IORING_OP_SHUTDOWN);
	CHECK_ERR(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
	CHECK_ERR(socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
	union sa a, a6, far;
	loopback(AF_INET, &a, 0);
	loopback(AF_INET6, &a6, 0);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(s);
	CHECK_ERR(bind(s, &a.sa, sizeof a.in - 1), EINVAL);
	CHECK_ERR(bind(s, &a6.sa, sizeof a6.in6), EAFNOSUPPORT);
	loopback(AF_INET, &far, 0);
	inet_pton(AF_INET, "203.0.113.1", &far.in.sin_addr);
	CHECK_ERR(bind(s, &far.sa, sizeof far.in), EADDRNOTAVAIL);
	CHECK_OK(bind(s, &a.sa, sizeof a.in));
	CHECK_ERR(bind(s, &a.sa, sizeof a.in), EINVAL);
	close(s);
	if (have(AF_INET6)) {
		int s6 = socket(AF_INET6, SOCK_STREAM, 0);
		CHECK_OK(s6);
		CHECK_ERR(bind(s6, &a.sa, sizeof a.in), EINVAL);
		loopback(AF_INET6, &far, 0);
		inet_pton(AF_INET6, "2001:db8::1", &far.in6.sin6_addr);
		CHECK_ERR(bind(s6, &far.sa, sizeof far.in6), EADDRNOTAVAIL);
		close(s6);
	}
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_ERR(listen(u, 1), EOPNOTSUPP);
	union sa dst;
	loopback(AF_INET, &dst, 0);
	CHECK_ERR(sendto(u, "x", 1, 0, &dst.sa, sizeof dst.in), EINVAL);
	loopback(AF_INET, &dst, 9);
	CHECK_ERR(sendto(u, "x", 1, 0, &dst.sa, sizeof dst.in - 1), EINVAL);
	close(u);
	/* an unconnected TCP socket */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(s);
	char buf[8];
	CHECK_ERR(accept4(s, NULL, NULL, 0), EINVAL);
	CHECK_ERR(recv(s, buf, sizeof buf, 0), ENOTCONN);
	CHECK_ERR(send(s, "x", 1, MSG_NOSIGNAL), EPIPE);
	ut_catch_sigpipe();
	errno = 0;
	ssize_t n = send(s, "x", 1, 0);
	int e = errno, sigs = ut_sigpipes;
	signal(SIGPIPE, SIG_IGN);
	CHECK_EQ(n, -1);
	CHECK_EQ(e, EPIPE);
	CHECK_EQ(sigs, 1);
	CHECK_ERR(getpeername(s, &dst.sa, &(socklen_t){ sizeof dst }), ENOTCONN);
	CHECK_ERR(shutdown(s, SHUT_RDWR), ENOTCONN);
	close(s);
	s = socket(AF_INET, SOCK_STREAM, 0);
	CHECK_OK(s);
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_accept(sqe, s, NULL, NULL, 0);
	sqe->user_data = 1;
	CHECK_RES(RUN(&r, 1), -EINVAL);
	q_recv(&r, s, buf, sizeof buf, 0, 2);
	CHECK_RES(RUN(&r, 2), -ENOTCONN);
	q_send(&r, s, "x", 1, 0, 3);
	CHECK_RES(RUN(&r, 3), -EPIPE);
	sqe = ut_sqe(&r);
	io_uring_prep_shutdown(sqe, s, SHUT_WR);
	sqe->user_data = 4;
	CHECK_RES(RUN(&r, 4), -ENOTCONN);
	io_uring_queue_exit(&r);
	/* connect */
	union sa la;
	int l;
	LISTENER(AF_INET, &la, l);
	CHECK_ERR(connect(s, &la.sa, sizeof la.in - 1), EINVAL);
	loopback(AF_INET6, &a6, port_of(&la));
	CHECK_ERR(connect(s, &a6.sa, sizeof a6.in6), EAFNOSUPPORT);
	CHECK_OK(connect(s, &la.sa, sizeof la.in));
	CHECK_ERR(connect(s, &la.sa, sizeof la.in), EISCONN);
	CHECK_ERR(connect(l, &la.sa, sizeof la.in), EISCONN);
	close(s);
	close(l);
	return UT_OK;
}

static int backlog_zero(void)
{
	/*
	 * listen(fd, 0) admits one connection at a time (Linux's backlog + 1): three rounds of
	 * connect, accept and a byte each way. (Our kernel once freed a listener's pool when
	 * its only listening socket became a connection, and the next accept panicked.)
	 */
	NEED(AF_INET);
	union sa a;
	int l = bound(AF_INET, SOCK_STREAM, 0, &a);
	CHECK_OK(l);
	for (int i = 0; i < 3; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		CHECK_OK(c);
		CHECK_OK(connect(c, &a.sa, sizeof a.in));
		int s = accept4(l, NULL, NULL, 0);
		CHECK_OK(s);
		ECHO(c, s, "x");
		ECHO(s, c, "y");
		close(s);
		close(c);
	}
	close(l);
	return UT_OK;
}

static int timeouts_and_recvmmsg(void)
{
	/*
	 * SO_RCVTIMEO of 100 ms: recv on an idle TCP connection and on an idle UDP socket
	 * fail with EAGAIN after at least 100 ms (and well before 5 s; an EINTR from pending
	 * task work is asked again, see unix.c's rcvtimeo); SO_SNDTIMEO reads back. recvmmsg takes 3 waiting datagrams into a vector of 4 with
	 * MSG_WAITFORONE (the 4th would block: the batch ends with 3), each msg_len right
	 * and the sender's name in each; with nothing waiting and MSG_DONTWAIT it is EAGAIN.
	 */
	NEED(AF_INET);
	int c, s;
	PAIR(AF_INET, c, s);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 }, back;
	socklen_t blen = sizeof back;
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &back, &blen));
	CHECK_EQ(blen, sizeof back);
	CHECK(back.tv_sec == 0 && back.tv_usec == 100000);
	char buf[64];
	long long t0 = ut_now_ms();
	CHECK_ERR(recv_again(s, buf, sizeof buf), EAGAIN);
	long long took = ut_now_ms() - t0;
	CHECK(took >= 90 && took < 5000);
	close(c);
	close(s);

	union sa ua, ub;
	int u = bound(AF_INET, SOCK_DGRAM, -1, &ua), v = bound(AF_INET, SOCK_DGRAM, -1, &ub);
	CHECK_OK(u);
	CHECK_OK(v);
	CHECK_OK(setsockopt(v, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	t0 = ut_now_ms();
	CHECK_ERR(recv_again(v, buf, sizeof buf), EAGAIN);
	took = ut_now_ms() - t0;
	CHECK(took >= 90 && took < 5000);
	const char *msgs[] = { "one", "two two", "three three three" };
	for (int i = 0; i < 3; i++)
		CHECK_EQ(sendto(u, msgs[i], strlen(msgs[i]), 0, &ub.sa, sizeof ub.in), (ssize_t)strlen(msgs[i]));
	CHECK_OK(wait_for(v, POLLIN));
	struct mmsghdr mm[4];
	struct iovec iov[4];
	char bufs[4][32];
	union sa from[4];
	memset(mm, 0, sizeof mm);
	for (int i = 0; i < 4; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof bufs[i];
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &from[i];
		mm[i].msg_hdr.msg_namelen = sizeof from[i];
	}
	/* Loopback delivers in order, but not necessarily at once: gather until all 3 came
	 * (each batch takes what waits, MSG_WAITFORONE ending it there). */
	int total = recvmmsg(v, mm, 4, MSG_WAITFORONE, NULL);
	CHECK(total >= 1 && total <= 3);
	while (total < 3) {
		CHECK_OK(wait_for(v, POLLIN));
		int more = recvmmsg(v, mm + total, 4 - total, MSG_WAITFORONE, NULL);
		CHECK(more >= 1);
		total += more;
	}
	CHECK_EQ(total, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(mm[i].msg_len, strlen(msgs[i]));
		CHECK(!memcmp(bufs[i], msgs[i], strlen(msgs[i])));
		CHECK_EQ(mm[i].msg_hdr.msg_namelen, sizeof(struct sockaddr_in));
		CHECK_EQ(from[i].in.sin_port, ua.in.sin_port);
	}
	CHECK_ERR(recvmmsg(v, mm, 4, MSG_DONTWAIT, NULL), EAGAIN);
	close(u);
	close(v);
	return UT_OK;
}

UT_FAMILY(inet, T(tcp_echo4), T(tcp_echo6), T(uring_tcp), T(accept_multishot_100),
	  T(recv_multishot_bufring_tcp), T(linger_reset), T(peer_vanishes), T(refused),
	  T(nonblock_connect), T(sockopts), T(addr_in_use), T(udp4), T(udp6), T(poll_bits),
	  T(bulk_checksum), T(ioctls), T(sendmsg_zc_tcp), T(autobind), T(errors), T(timeouts_and_recvmmsg), T(backlog_zero),
	  T(pktinfo), T(link_local_scope));
