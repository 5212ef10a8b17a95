/*
 * AF_UNIX sockets through the plain syscalls (no io_uring): socketpair(2) of the three
 * types and their message boundaries, bind(2) to path names (under --dir), abstract names
 * and autobind, listen(2)/connect(2)/accept4(2) and the listen backlog, the recv(2) flags
 * MSG_DONTWAIT/MSG_PEEK/MSG_WAITALL/MSG_TRUNC, shutdown(2), a closed peer (EOF, EPIPE and
 * SIGPIPE, ECONNRESET), the poll(2) bits of each state, socket options, SCM_RIGHTS, and
 * the errno of each misuse, all as Linux 6.18 answers them. The net family runs the
 * io_uring opcodes on the same sockets.
 */
#include "sockut.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/*
 * A path name under ut_dir for `tag` in *a (removed after the test); *len is what
 * getsockname reports for it once bound: the family, the path and its NUL.
 */
static int tmp_addr(const char *tag, struct sockaddr_un *a, socklen_t *len, const char *file,
		    int line)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int ret = ut_tmppath(tag, a->sun_path, sizeof a->sun_path);
	if (ret < 0)
		return ut_fail(file, line, "socket path for '%s' under %s: %s", tag, ut_dir,
			       ut_errname(-ret));
	*len = (socklen_t)(FAMILY_LEN + strlen(a->sun_path) + 1);
	return UT_OK;
}
#define TMP_ADDR(tag, a, len) TRY(tmp_addr((tag), (a), (len), __FILE__, __LINE__))

/* An abstract name (sun_path[0] == 0) made of `tag` and our pid; returns its exact length. */
static socklen_t abs_addr(struct sockaddr_un *a, const char *tag)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "uring-test.%d.%s", (int)getpid(),
			 tag);
	return (socklen_t)(FAMILY_LEN + 1 + n);
}

/* A socket of `type` bound to `a` (len) and, for streams, listening with `backlog`; or -1. */
static int bound(int type, const struct sockaddr_un *a, socklen_t len, int backlog)
{
	int fd = socket(AF_UNIX, type, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)a, len) < 0 ||
	    ((type & 0xf) != SOCK_DGRAM && listen(fd, backlog) < 0)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The address `fd` names with getsockname (peer 0) or getpeername (peer 1): it must be
 * `len` bytes equal to `want` (whose first `len` bytes count). */
static int name_is(int fd, int peer, const struct sockaddr_un *want, socklen_t len,
		   const char *file, int line)
{
	struct sockaddr_un got;
	memset(&got, 0x5a, sizeof got);
	socklen_t l = sizeof got;
	int ret = peer ? getpeername(fd, SA(&got), &l) : getsockname(fd, SA(&got), &l);
	if (ret < 0)
		return ut_fail(file, line, "%s: %s", peer ? "getpeername" : "getsockname",
			       ut_errname(errno));
	if (l != len)
		return ut_fail(file, line, "%s: addrlen %u, expected %u",
			       peer ? "getpeername" : "getsockname", (unsigned)l, (unsigned)len);
	if (got.sun_family != AF_UNIX || memcmp(&got, want, len))
		return ut_fail(file, line, "%s: family %d, another name than expected",
			       peer ? "getpeername" : "getsockname", got.sun_family);
	return UT_OK;
}
#define NAME_IS(fd, peer, want, len) TRY(name_is((fd), (peer), (want), (len), __FILE__, __LINE__))

static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* send `len` bytes of `msg` on `fd`, then recv them on `peer` (which must hold just them) */
static int echo(int fd, int peer, const char *msg, size_t len, const char *file, int line)
{
	char buf[256];
	ssize_t n = send(fd, msg, len, 0);
	if (n != (ssize_t)len)
		return ut_fail(file, line, "send of %zu bytes: %zd (%s)", len, n,
			       n < 0 ? ut_errname(errno) : "short");
	n = recv(peer, buf, sizeof buf, 0);
	if (n != (ssize_t)len || memcmp(buf, msg, len))
		return ut_fail(file, line, "recv: %zd (%s), expected the %zu bytes sent", n,
			       n < 0 ? ut_errname(errno) : "-", len);
	return UT_OK;
}
#define ECHO(fd, peer, msg) TRY(echo((fd), (peer), (msg), strlen(msg), __FILE__, __LINE__))

static int stream_pair(void)
{
	/*
	 * socketpair(SOCK_STREAM): the two lowest free descriptors, sockets (S_ISSOCK) that
	 * echo both ways; SOCK_CLOEXEC|SOCK_NONBLOCK give FD_CLOEXEC and O_NONBLOCK on both.
	 */
	int low = ut_lowest_free_fd();
	int sv[2] = { -1, -1 };
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(sv[0], low);
	CHECK(sv[1] > sv[0]);
	struct stat st;
	CHECK_OK(fstat(sv[0], &st));
	CHECK(S_ISSOCK(st.st_mode));
	ECHO(sv[0], sv[1], "ping");
	ECHO(sv[1], sv[0], "pong, longer");
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(fcntl(sv[i], F_GETFD), 0);
		CHECK_EQ(fcntl(sv[i], F_GETFL) & O_NONBLOCK, 0);
	}
	close(sv[0]);
	close(sv[1]);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv));
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(fcntl(sv[i], F_GETFD), FD_CLOEXEC);
		CHECK(fcntl(sv[i], F_GETFL) & O_NONBLOCK);
	}
	ECHO(sv[1], sv[0], "flags");
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int dgram_boundaries(void)
{
	/* SOCK_DGRAM keeps each send whole: 3 then 5 bytes come back as 3 then 5, and an
	 * empty datagram as a recv of 0; then nothing (EAGAIN) */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_EQ(send(sv[0], "abc", 3, 0), 3);
	CHECK_EQ(send(sv[0], "defgh", 5, 0), 5);
	CHECK_EQ(send(sv[0], "", 0, 0), 0);
	char buf[64];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	CHECK(!memcmp(buf, "abc", 3));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "defgh", 5));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), 0);
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	/* and the other way */
	CHECK_EQ(send(sv[1], "back", 4, 0), 4);
	CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 4);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int dgram_truncate(void)
{
	/*
	 * A 10-byte datagram into a 4-byte buffer: recv gives 4 and drops the rest; recvmsg
	 * gives 4 with MSG_TRUNC in msg_flags; recv with MSG_TRUNC gives the full 10 (copying 4).
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	char buf[16];
	CHECK_EQ(send(sv[0], "0123456789", 10, 0), 10);
	CHECK_EQ(recv(sv[1], buf, 4, 0), 4);
	CHECK(!memcmp(buf, "0123", 4));
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	CHECK_EQ(send(sv[0], "abcdefghij", 10, 0), 10);
	struct iovec iov = { buf, 4 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	CHECK_EQ(recvmsg(sv[1], &m, 0), 4);
	CHECK_EQ(m.msg_flags, MSG_TRUNC);
	CHECK(!memcmp(buf, "abcd", 4));
	/* a datagram that fits: no MSG_TRUNC */
	CHECK_EQ(send(sv[0], "xy", 2, 0), 2);
	m.msg_flags = -1;
	CHECK_EQ(recvmsg(sv[1], &m, 0), 2);
	CHECK_EQ(m.msg_flags, 0);
	memset(buf, 0, sizeof buf);
	CHECK_EQ(send(sv[0], "ABCDEFGHIJ", 10, 0), 10);
	CHECK_EQ(recv(sv[1], buf, 4, MSG_TRUNC), 10);
	CHECK(!memcmp(buf, "ABCD", 4));
	CHECK_EQ(buf[4], 0);
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int seqpacket_boundaries(void)
{
	/*
	 * SOCK_SEQPACKET keeps boundaries like a datagram (MSG_TRUNC when cut) and ends like a
	 * stream: once the peer is gone, recv gives 0 and send EPIPE.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
	CHECK_EQ(send(sv[0], "first", 5, 0), 5);
	CHECK_EQ(send(sv[0], "second!", 7, 0), 7);
	CHECK_EQ(send(sv[0], "0123456789", 10, 0), 10);
	char buf[64];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "first", 5));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 7);
	CHECK(!memcmp(buf, "second!", 7));
	struct iovec iov = { buf, 4 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	CHECK_EQ(recvmsg(sv[1], &m, 0), 4);
	CHECK_EQ(m.msg_flags, MSG_TRUNC);
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	SOCKOPT_IS(sv[0], SO_TYPE, SOCK_SEQPACKET);
	close(sv[1]);
	CHECK_EQ(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), 0);
	CHECK_ERR(send(sv[0], "x", 1, 0), EPIPE);
	close(sv[0]);
	return UT_OK;
}

static int path_connect_accept(void)
{
	/*
	 * bind to a path makes a socket file (S_ISSOCK); listen, connect, accept4: the
	 * flags SOCK_CLOEXEC|SOCK_NONBLOCK give FD_CLOEXEC and O_NONBLOCK (flags 0 neither).
	 * getsockname/getpeername give the path with addrlen family + path + NUL, an unbound
	 * end gives the family alone (addrlen 2); accept's addr is the client's name.
	 */
	struct sockaddr_un a;
	socklen_t alen;
	TMP_ADDR("srv", &a, &alen);
	int l = bound(SOCK_STREAM, &a, sizeof a, 4); /* a path name ends at its NUL */
	CHECK_OK(l);
	struct stat st;
	CHECK_OK(stat(a.sun_path, &st));
	CHECK(S_ISSOCK(st.st_mode));
	NAME_IS(l, 0, &a, alen);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	struct sockaddr_un peer;
	memset(&peer, 0x5a, sizeof peer);
	socklen_t plen = sizeof peer;
	int s = accept4(l, SA(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CHECK_OK(s);
	CHECK_EQ(plen, FAMILY_LEN);
	CHECK_EQ(peer.sun_family, AF_UNIX);
	CHECK_EQ(fcntl(s, F_GETFD), FD_CLOEXEC);
	CHECK(fcntl(s, F_GETFL) & O_NONBLOCK);
	struct sockaddr_un fam = { .sun_family = AF_UNIX };
	NAME_IS(c, 1, &a, alen);   /* the client's peer: the listener's path */
	NAME_IS(c, 0, &fam, FAMILY_LEN); /* the client is unbound */
	NAME_IS(s, 0, &a, alen);   /* the accepted socket has the listener's name */
	NAME_IS(s, 1, &fam, FAMILY_LEN);
	ECHO(c, s, "hello server");
	ECHO(s, c, "hello client");
	/* a second client, bound to a path of its own, accepted without flags */
	struct sockaddr_un b;
	socklen_t blen;
	TMP_ADDR("cli", &b, &blen);
	int c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c2);
	CHECK_OK(bind(c2, SA(&b), blen));
	CHECK_OK(connect(c2, SA(&a), sizeof a));
	plen = sizeof peer;
	int s2 = accept4(l, SA(&peer), &plen, 0);
	CHECK_OK(s2);
	CHECK_EQ(plen, blen);
	CHECK(!strcmp(peer.sun_path, b.sun_path));
	CHECK_EQ(fcntl(s2, F_GETFD), 0);
	CHECK_EQ(fcntl(s2, F_GETFL) & O_NONBLOCK, 0);
	NAME_IS(s2, 1, &b, blen);
	ECHO(c2, s2, "second");
	close(s2);
	close(c2);
	close(s);
	close(c);
	close(l);
	/* the file outlives the socket */
	CHECK_OK(stat(a.sun_path, &st));
	return UT_OK;
}

static int path_errors(void)
{
	/*
	 * bind to a path that exists (a socket's or a regular file's): EADDRINUSE; a second
	 * bind of a bound socket: EINVAL; a missing directory: ENOENT. connect to a missing
	 * path: ENOENT; to a bound socket that does not listen, to a regular file, to a
	 * listener's path after it closed: ECONNREFUSED; to a datagram socket's path:
	 * EPROTOTYPE; again once connected: EISCONN.
	 */
	struct sockaddr_un a, f, d, nx;
	socklen_t alen, flen, dlen, nxlen;
	TMP_ADDR("a", &a, &alen);
	TMP_ADDR("d", &d, &dlen);
	TMP_ADDR("nx", &nx, &nxlen);
	char fpath[256];
	int ff = ut_tmpfile("f", O_RDWR, fpath);
	CHECK_OK(ff);
	close(ff);
	CHECK(strlen(fpath) < sizeof f.sun_path);
	memset(&f, 0, sizeof f);
	f.sun_family = AF_UNIX;
	strcpy(f.sun_path, fpath);
	flen = (socklen_t)(FAMILY_LEN + strlen(f.sun_path) + 1);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	CHECK_OK(bind(s, SA(&a), alen));
	CHECK_ERR(bind(s, SA(&d), dlen), EINVAL);
	int t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_ERR(bind(t, SA(&a), alen), EADDRINUSE);
	CHECK_ERR(bind(t, SA(&f), flen), EADDRINUSE);
	struct sockaddr_un md = a;
	snprintf(md.sun_path, sizeof md.sun_path, "%s/uring-test-missing-dir/x", ut_dir);
	CHECK_ERR(bind(t, SA(&md), sizeof md), ENOENT);
	CHECK_ERR(connect(t, SA(&nx), nxlen), ENOENT);
	CHECK_ERR(connect(t, SA(&a), alen), ECONNREFUSED); /* bound, not listening */
	CHECK_ERR(connect(t, SA(&f), flen), ECONNREFUSED); /* not a socket */
	int dg = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(dg);
	CHECK_OK(bind(dg, SA(&d), dlen));
	CHECK_ERR(connect(t, SA(&d), dlen), EPROTOTYPE);
	CHECK_OK(listen(s, 1));
	CHECK_OK(connect(t, SA(&a), alen));
	CHECK_ERR(connect(t, SA(&a), alen), EISCONN);
	close(t);
	close(s);
	t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_ERR(connect(t, SA(&a), alen), ECONNREFUSED); /* the file is left, no socket */
	close(t);
	close(dg);
	return UT_OK;
}

static int abstract_names(void)
{
	/*
	 * An abstract name (sun_path[0] == 0) is exactly addrlen bytes: getsockname,
	 * getpeername and accept give it back with that length; it is in use while the socket
	 * lives (EADDRINUSE) and free once it is closed; a longer name that merely starts the
	 * same is another name.
	 */
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "abstract");
	int l = bound(SOCK_STREAM, &a, alen, 4);
	CHECK_OK(l);
	NAME_IS(l, 0, &a, alen);
	int t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_ERR(bind(t, SA(&a), alen), EADDRINUSE);
	/* the same bytes with a longer addrlen (trailing NULs) are a different name */
	CHECK_ERR(connect(t, SA(&a), alen + 1), ECONNREFUSED);
	struct sockaddr_un b;
	socklen_t blen = abs_addr(&b, "client");
	CHECK_OK(bind(t, SA(&b), blen));
	CHECK_OK(connect(t, SA(&a), alen));
	struct sockaddr_un peer;
	memset(&peer, 0x5a, sizeof peer);
	socklen_t plen = sizeof peer;
	int s = accept(l, SA(&peer), &plen);
	CHECK_OK(s);
	CHECK_EQ(plen, blen);
	CHECK(!memcmp(&peer, &b, blen));
	NAME_IS(t, 1, &a, alen);
	NAME_IS(t, 0, &b, blen);
	NAME_IS(s, 0, &a, alen);
	NAME_IS(s, 1, &b, blen);
	ECHO(t, s, "abstract");
	close(s);
	close(t);
	close(l);
	/* the name went with the socket */
	l = bound(SOCK_STREAM, &a, alen, 1);
	CHECK_OK(l);
	close(l);
	t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(t);
	CHECK_ERR(connect(t, SA(&a), alen), ECONNREFUSED);
	close(t);
	return UT_OK;
}

static int autobind(void)
{
	/*
	 * bind with addrlen 2 (the family alone) autobinds: an abstract name of a NUL and five
	 * hex digits (addrlen 8); autobinding again is 0 and keeps it, binding a name is then
	 * EINVAL. A datagram socket can send from it and the receiver sees that name.
	 */
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(s);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK_OK(bind(s, SA(&a), FAMILY_LEN));
	struct sockaddr_un got;
	memset(&got, 0x5a, sizeof got);
	socklen_t l = sizeof got;
	CHECK_OK(getsockname(s, SA(&got), &l));
	CHECK_EQ(l, FAMILY_LEN + 6);
	CHECK_EQ(got.sun_path[0], 0);
	for (int i = 1; i < 6; i++)
		if (!strchr("0123456789abcdef", got.sun_path[i]) || !got.sun_path[i])
			FAIL("autobind name byte %d is 0x%02x, not a hex digit", i,
			     (unsigned char)got.sun_path[i]);
	CHECK_OK(bind(s, SA(&a), FAMILY_LEN));
	NAME_IS(s, 0, &got, l);
	struct sockaddr_un r;
	socklen_t rlen = abs_addr(&r, "receiver");
	CHECK_ERR(bind(s, SA(&r), rlen), EINVAL);
	int d = bound(SOCK_DGRAM, &r, rlen, 0);
	CHECK_OK(d);
	CHECK_EQ(sendto(s, "auto", 4, 0, SA(&r), rlen), 4);
	struct sockaddr_un from;
	memset(&from, 0, sizeof from);
	socklen_t flen = sizeof from;
	char buf[8];
	CHECK_EQ(recvfrom(d, buf, sizeof buf, 0, SA(&from), &flen), 4);
	CHECK_EQ(flen, l);
	CHECK(!memcmp(&from, &got, l));
	close(d);
	close(s);
	return UT_OK;
}

static int backlog(void)
{
	/*
	 * Connections complete before accept: with listen(fd, 2) three nonblocking connects
	 * succeed (Linux admits backlog + 1) and the fourth is EAGAIN; the listener polls
	 * POLLIN while one is pending. Data sent before the accept is there after it. With
	 * none pending, a nonblocking accept is EAGAIN and the listener polls 0.
	 */
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "backlog");
	int l = bound(SOCK_STREAM | SOCK_NONBLOCK, &a, alen, 2);
	CHECK_OK(l);
	CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
	CHECK_REVENTS(l, 0);
	int c[4];
	for (int i = 0; i < 4; i++) {
		c[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		CHECK_OK(c[i]);
	}
	for (int i = 0; i < 3; i++)
		CHECK_OK(connect(c[i], SA(&a), alen));
	CHECK_ERR(connect(c[3], SA(&a), alen), EAGAIN);
	CHECK_REVENTS(l, POLLIN);
	CHECK_EQ(send(c[0], "early", 5, 0), 5);
	int s[3];
	for (int i = 0; i < 3; i++) {
		s[i] = accept(l, NULL, NULL);
		CHECK_OK(s[i]);
	}
	CHECK_ERR(accept(l, NULL, NULL), EAGAIN);
	CHECK_REVENTS(l, 0);
	char buf[8];
	CHECK_EQ(recv(s[0], buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "early", 5));
	/* room again */
	CHECK_OK(connect(c[3], SA(&a), alen));
	int s3 = accept(l, NULL, NULL);
	CHECK_OK(s3);
	ECHO(c[3], s3, "late");
	close(s3);
	for (int i = 0; i < 3; i++)
		close(s[i]);
	for (int i = 0; i < 4; i++)
		close(c[i]);
	close(l);
	return UT_OK;
}

static int nonblocking_recv(void)
{
	/* an empty stream: recv and read on an O_NONBLOCK socket EAGAIN, MSG_DONTWAIT on a
	 * blocking one EAGAIN (and it stays blocking) */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	char buf[8];
	CHECK_ERR(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	CHECK_EQ(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
	CHECK_OK(fcntl(sv[1], F_SETFL, O_NONBLOCK));
	CHECK_ERR(recv(sv[1], buf, sizeof buf, 0), EAGAIN);
	CHECK_ERR(read(sv[1], buf, sizeof buf), EAGAIN);
	CHECK_EQ(write(sv[0], "n", 1), 1);
	CHECK_EQ(read(sv[1], buf, sizeof buf), 1);
	CHECK_ERR(read(sv[1], buf, sizeof buf), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int peek(void)
{
	/* MSG_PEEK copies without consuming, on a stream (a part of it) and a datagram */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "peekaboo", 8, 0), 8);
	char buf[16];
	CHECK_EQ(recv(sv[1], buf, 4, MSG_PEEK), 4);
	CHECK(!memcmp(buf, "peek", 4));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), 8);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 8);
	CHECK(!memcmp(buf, "peekaboo", 8));
	CHECK_ERR(recv(sv[1], buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT), EAGAIN);
	close(sv[0]);
	close(sv[1]);
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_EQ(send(sv[0], "one", 3, 0), 3);
	CHECK_EQ(send(sv[0], "two", 3, 0), 3);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, MSG_PEEK), 3);
	CHECK(!memcmp(buf, "one", 3));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	CHECK(!memcmp(buf, "one", 3));
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	CHECK(!memcmp(buf, "two", 3));
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int waitall(void)
{
	/*
	 * MSG_WAITALL gathers: a child blocks in recv of 8 with MSG_WAITALL while we send 4
	 * bytes 10 ms and 40 ms from now; it gets both (a plain recv would return 4). The
	 * child reads because on Linux a ring closed lately (the probe's) ends the closer's
	 * next wait early for its exit task work, and a WAITALL cut short returns what it has.
	 * The peer's EOF ends the wait short: 2 bytes then SHUT_WR give 2.
	 */
	int sv[2], res[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_OK(pipe2(res, O_NONBLOCK));
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0) {
		char out[2][16];
		memset(out, 0, sizeof out);
		for (int i = 0; i < 2; i++) {
			ssize_t n = recv(sv[1], out[i] + 1, 8, MSG_WAITALL);
			out[i][0] = (char)(n < 0 ? -errno : n);
		}
		_exit(write(res[1], out, sizeof out) == sizeof out ? 0 : 1);
	}
	ut_sleep_ms(10);
	CHECK_EQ(send(sv[0], "abcd", 4, 0), 4);
	ut_sleep_ms(30);
	CHECK_EQ(send(sv[0], "efgh", 4, 0), 4);
	ut_sleep_ms(10);
	CHECK_EQ(send(sv[0], "xy", 2, 0), 2);
	CHECK_OK(shutdown(sv[0], SHUT_WR));
	char got[2][16];
	ssize_t n = ut_read_within(res[0], got, sizeof got, 5000);
	if (n != sizeof got)
		kill(pid, SIGKILL);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_EQ(n, sizeof got);
	CHECK_EQ(status, 0);
	CHECK_EQ(got[0][0], 8);
	CHECK(!memcmp(got[0] + 1, "abcdefgh", 8));
	CHECK_EQ(got[1][0], 2);
	CHECK(!memcmp(got[1] + 1, "xy", 2));
	close(res[0]);
	close(res[1]);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int shutdown_write(void)
{
	/*
	 * shutdown(SHUT_WR): the peer reads the data, then 0; a send on the shut end is
	 * EPIPE with SIGPIPE (counted by a handler), with MSG_NOSIGNAL EPIPE alone; the other
	 * direction still works. shutdown with how 3: EINVAL.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "bye", 3, 0), 3);
	CHECK_OK(shutdown(sv[0], SHUT_WR));
	char buf[8];
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 3);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 0);
	CHECK_EQ(recv(sv[1], buf, sizeof buf, 0), 0);
	ut_catch_sigpipe();
	errno = 0;
	ssize_t n = send(sv[0], "x", 1, 0);
	int e = errno, sigs = ut_sigpipes;
	ut_sigpipes = 0;
	ssize_t n2 = send(sv[0], "x", 1, MSG_NOSIGNAL);
	int e2 = errno, sigs2 = ut_sigpipes;
	ignore_sigpipe();
	CHECK_EQ(n, -1);
	CHECK_EQ(e, EPIPE);
	CHECK_EQ(sigs, 1);
	CHECK_EQ(n2, -1);
	CHECK_EQ(e2, EPIPE);
	CHECK_EQ(sigs2, 0);
	CHECK_ERR(write(sv[0], "x", 1), EPIPE); /* SIGPIPE ignored: just the error */
	ECHO(sv[1], sv[0], "half open");
	CHECK_ERR(shutdown(sv[0], 3), EINVAL);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int peer_closed(void)
{
	/*
	 * The peer closed (having read all it got): recv gives what is left, then 0; poll
	 * shows POLLIN|POLLOUT|POLLHUP|POLLRDHUP; a write is EPIPE and raises SIGPIPE,
	 * unless MSG_NOSIGNAL.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[1], "last", 4, 0), 4);
	close(sv[1]);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	char buf[8];
	CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 4);
	CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 0);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	ut_catch_sigpipe();
	errno = 0;
	ssize_t n = write(sv[0], "x", 1);
	int e = errno, sigs = ut_sigpipes;
	ut_sigpipes = 0;
	ssize_t n2 = send(sv[0], "x", 1, MSG_NOSIGNAL);
	int e2 = errno, sigs2 = ut_sigpipes;
	ignore_sigpipe();
	CHECK_EQ(n, -1);
	CHECK_EQ(e, EPIPE);
	CHECK_EQ(sigs, 1);
	CHECK_EQ(n2, -1);
	CHECK_EQ(e2, EPIPE);
	CHECK_EQ(sigs2, 0);
	SOCKOPT_IS(sv[0], SO_ERROR, 0);
	close(sv[0]);
	return UT_OK;
}

static int peer_closed_unread(void)
{
	/*
	 * A peer that closes with data unread resets the connection: POLLERR joins
	 * POLLIN|POLLOUT|POLLHUP|POLLRDHUP; the next recv is ECONNRESET, once, then 0. Or
	 * SO_ERROR reports ECONNRESET, once, and recv gives 0.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "unread", 6, 0), 6);
	close(sv[1]);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP | POLLERR);
	char buf[8];
	CHECK_ERR(recv(sv[0], buf, sizeof buf, 0), ECONNRESET);
	CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 0);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	CHECK_ERR(send(sv[0], "x", 1, 0), EPIPE);
	close(sv[0]);
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_EQ(send(sv[0], "unread", 6, 0), 6);
	close(sv[1]);
	SOCKOPT_IS(sv[0], SO_ERROR, ECONNRESET);
	SOCKOPT_IS(sv[0], SO_ERROR, 0);
	CHECK_EQ(recv(sv[0], buf, sizeof buf, 0), 0);
	close(sv[0]);
	return UT_OK;
}

static int poll_bits(void)
{
	/*
	 * The exact poll(2) revents (asking for IN|PRI|OUT|RDHUP): an unconnected stream
	 * socket POLLOUT|POLLHUP; a connected one POLLOUT, +POLLIN with data; the peer's
	 * SHUT_WR adds POLLIN|POLLRDHUP, our own SHUT_WR too then adds POLLHUP; a datagram
	 * socket POLLOUT, +POLLIN with data, still POLLOUT alone once its peer closed. A
	 * poll waiting for POLLIN wakes when a writer thread sends.
	 */
	int u = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(u);
	CHECK_REVENTS(u, POLLOUT | POLLHUP);
	close(u);
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_REVENTS(sv[0], POLLOUT);
	CHECK_EQ(send(sv[1], "d", 1, 0), 1);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT);
	CHECK_OK(shutdown(sv[1], SHUT_WR));
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLRDHUP);
	CHECK_REVENTS(sv[1], POLLOUT);
	CHECK_OK(shutdown(sv[0], SHUT_WR));
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	CHECK_REVENTS(sv[1], POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
	close(sv[0]);
	close(sv[1]);
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_REVENTS(sv[0], POLLOUT);
	CHECK_EQ(send(sv[1], "d", 1, 0), 1);
	CHECK_REVENTS(sv[0], POLLIN | POLLOUT);
	char c;
	CHECK_EQ(recv(sv[0], &c, 1, 0), 1);
	close(sv[1]);
	CHECK_REVENTS(sv[0], POLLOUT);
	close(sv[0]);
	/* a poll that waits */
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct ut_writer w;
	CHECK_OK(ut_writer_start(&w, sv[1], "wake", 4, 10));
	struct pollfd p = { .fd = sv[0], .events = POLLIN };
	long long t0 = ut_now_ms();
	int n;
	/* a ring closed lately may end the wait early (EINTR) for its exit task work */
	do
		n = poll(&p, 1, 5000);
	while (n < 0 && errno == EINTR && ut_now_ms() - t0 < 5000);
	long long dt = ut_now_ms() - t0;
	CHECK_EQ(ut_writer_join(&w), 4);
	CHECK_EQ(n, 1);
	CHECK_EQ(p.revents, POLLIN);
	CHECK(dt < 4000);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int flow_control(void)
{
	/*
	 * Nonblocking writes to a peer that does not read end with EAGAIN after a bounded
	 * amount; the full socket polls without POLLOUT (its peer POLLIN|POLLOUT); once the
	 * peer drained every byte (in order), POLLOUT is back.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	static unsigned char out[16384], in[16384];
	long total = 0;
	int i;
	for (i = 0; i < 4096; i++) {
		ut_pattern(out, sizeof out, (unsigned)i);
		ssize_t n = write(sv[0], out, sizeof out);
		if (n < 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
		total += n;
		if (n < (ssize_t)sizeof out) {
			CHECK_ERR(write(sv[0], out, sizeof out), EAGAIN);
			break;
		}
	}
	CHECK(i < 4096); /* under 64 MiB */
	CHECK(total > 0);
	ut_info("a stream socket took %ld bytes", total);
	CHECK_REVENTS(sv[0], 0);
	CHECK_REVENTS(sv[1], POLLIN | POLLOUT);
	long got = 0;
	unsigned seed = 0;
	size_t off = 0;
	ut_pattern(out, sizeof out, seed);
	for (;;) {
		ssize_t n = read(sv[1], in, sizeof in);
		if (n < 0) {
			CHECK_EQ(errno, EAGAIN);
			break;
		}
		for (ssize_t k = 0; k < n; k++) {
			if (in[k] != out[off])
				FAIL("byte %ld differs", got + k);
			if (++off == sizeof out) {
				off = 0;
				ut_pattern(out, sizeof out, ++seed);
			}
		}
		got += n;
	}
	CHECK_EQ(got, total);
	CHECK_REVENTS(sv[0], POLLOUT);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int dgram_peer_closed(void)
{
	/*
	 * A connected datagram socket whose peer closed: no EOF (recv EAGAIN, poll POLLOUT);
	 * the first send is ECONNREFUSED and disconnects it, the next ENOTCONN.
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	close(sv[1]);
	char buf[4];
	CHECK_ERR(recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	CHECK_REVENTS(sv[0], POLLOUT);
	CHECK_ERR(send(sv[0], "x", 1, 0), ECONNREFUSED);
	CHECK_ERR(send(sv[0], "x", 1, 0), ENOTCONN);
	struct sockaddr_un p;
	socklen_t l = sizeof p;
	CHECK_ERR(getpeername(sv[0], SA(&p), &l), ENOTCONN);
	close(sv[0]);
	return UT_OK;
}

static int sockopts(void)
{
	/*
	 * SOL_SOCKET: SO_TYPE, SO_DOMAIN (AF_UNIX), SO_PROTOCOL (0), SO_ERROR (0),
	 * SO_ACCEPTCONN (0, 1 after listen), SO_RCVBUF/SO_SNDBUF (> 0), optlen 4;
	 * SO_REUSEADDR is taken and read back; an unknown SOL_SOCKET option or a read-only
	 * one set: ENOPROTOOPT; another level (AF_UNIX has no options of its own):
	 * EOPNOTSUPP; an int option with optlen 2: EINVAL.
	 */
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	for (int i = 0; i < 3; i++) {
		int s = socket(AF_UNIX, types[i], 0);
		CHECK_OK(s);
		SOCKOPT_IS(s, SO_TYPE, types[i]);
		SOCKOPT_IS(s, SO_DOMAIN, AF_UNIX);
		SOCKOPT_IS(s, SO_PROTOCOL, 0);
		SOCKOPT_IS(s, SO_ERROR, 0);
		SOCKOPT_IS(s, SO_ACCEPTCONN, 0);
		close(s);
	}
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "opts");
	int s = bound(SOCK_STREAM, &a, alen, 1);
	CHECK_OK(s);
	SOCKOPT_IS(s, SO_ACCEPTCONN, 1);
	static const int bufs[] = { SO_SNDBUF, SO_RCVBUF };
	for (int i = 0; i < 2; i++) {
		int v = 0;
		socklen_t l = sizeof v;
		CHECK_OK(getsockopt(s, SOL_SOCKET, bufs[i], &v, &l));
		CHECK_EQ(l, sizeof v);
		CHECK(v > 0);
	}
	int one = 1, v = 0;
	SOCKOPT_IS(s, SO_REUSEADDR, 0);
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
	SOCKOPT_IS(s, SO_REUSEADDR, 1);
	socklen_t l = sizeof v;
	CHECK_ERR(getsockopt(s, SOL_SOCKET, 9999, &v, &l), ENOPROTOOPT);
	CHECK_ERR(setsockopt(s, SOL_SOCKET, 9999, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(setsockopt(s, SOL_SOCKET, SO_TYPE, &one, sizeof one), ENOPROTOOPT);
	CHECK_ERR(getsockopt(s, 6 /* SOL_TCP */, 1, &v, &l), EOPNOTSUPP);
	CHECK_ERR(setsockopt(s, 6 /* SOL_TCP */, 1, &one, sizeof one), EOPNOTSUPP);
	CHECK_ERR(getsockopt(s, 999, 1, &v, &l), EOPNOTSUPP);
	CHECK_ERR(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 2), EINVAL);
	close(s);
	return UT_OK;
}

static int peercred(void)
{
	/* SO_PEERCRED: our pid, uid and gid, for a socketpair and for a connection */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct ucred cr;
	memset(&cr, 0xff, sizeof cr);
	socklen_t l = sizeof cr;
	CHECK_OK(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &l));
	CHECK_EQ(l, sizeof cr);
	CHECK_EQ(cr.pid, getpid());
	CHECK_EQ(cr.uid, getuid());
	CHECK_EQ(cr.gid, getgid());
	close(sv[0]);
	close(sv[1]);
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "cred");
	int lfd = bound(SOCK_STREAM, &a, alen, 1);
	CHECK_OK(lfd);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	int s = accept(lfd, NULL, NULL);
	CHECK_OK(s);
	int ends[2] = { c, s };
	for (int i = 0; i < 2; i++) {
		memset(&cr, 0xff, sizeof cr);
		l = sizeof cr;
		CHECK_OK(getsockopt(ends[i], SOL_SOCKET, SO_PEERCRED, &cr, &l));
		CHECK_EQ(cr.pid, getpid());
		CHECK_EQ(cr.uid, getuid());
	}
	close(s);
	close(c);
	close(lfd);
	return UT_OK;
}

/* sendmsg one byte `b` with SCM_RIGHTS carrying fds[0..n) */
static int send_fds(int sock, char b, const int *fds, int n)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	struct iovec iov = { &b, 1 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = CMSG_SPACE(n * sizeof(int));
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(h), fds, n * sizeof(int));
	return (int)sendmsg(sock, &m, 0);
}

static int scm_rights(void)
{
	/*
	 * SCM_RIGHTS passes a pipe's two ends: they arrive as new descriptors (the lowest
	 * free ones) in one SOL_SOCKET/SCM_RIGHTS cmsg of CMSG_LEN(8), and work after the
	 * originals are closed; FD_CLOEXEC only with MSG_CMSG_CLOEXEC. A control buffer
	 * with room for one: that one arrives, MSG_CTRUNC; none at all: MSG_CTRUNC. A
	 * descriptor that is not open: EBADF.
	 */
	int sv[2], p[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	CHECK_OK(pipe(p));
	for (int round = 0; round < 2; round++) {
		CHECK_EQ(send_fds(sv[0], 'r', p, 2), 1);
		union {
			char buf[CMSG_SPACE(4 * sizeof(int))];
			struct cmsghdr align;
		} u;
		memset(&u, 0, sizeof u);
		char b = 0;
		struct iovec iov = { &b, 1 };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = u.buf;
		m.msg_controllen = sizeof u.buf;
		int low = ut_lowest_free_fd();
		CHECK_EQ(recvmsg(sv[1], &m, round ? MSG_CMSG_CLOEXEC : 0), 1);
		CHECK_EQ(b, 'r');
		/* Linux hands MSG_CMSG_CLOEXEC back in msg_flags */
		CHECK_EQ(m.msg_flags, round ? MSG_CMSG_CLOEXEC : 0);
		CHECK_EQ(m.msg_controllen, CMSG_SPACE(2 * sizeof(int)));
		struct cmsghdr *h = CMSG_FIRSTHDR(&m);
		CHECK(h != NULL);
		CHECK_EQ(h->cmsg_level, SOL_SOCKET);
		CHECK_EQ(h->cmsg_type, SCM_RIGHTS);
		CHECK_EQ(h->cmsg_len, CMSG_LEN(2 * sizeof(int)));
		CHECK(CMSG_NXTHDR(&m, h) == NULL);
		int got[2];
		memcpy(got, CMSG_DATA(h), sizeof got);
		CHECK_EQ(got[0], low);
		CHECK(got[1] > got[0]);
		CHECK(got[0] != p[0] && got[0] != p[1] && got[1] != p[0] && got[1] != p[1]);
		for (int i = 0; i < 2; i++)
			CHECK_EQ(fcntl(got[i], F_GETFD), round ? FD_CLOEXEC : 0);
		/* the same pipe: write through the received write end, read the original end */
		char buf[8];
		CHECK_EQ(write(got[1], "via", 3), 3);
		CHECK_EQ(read(p[0], buf, sizeof buf), 3);
		CHECK_EQ(write(p[1], "back", 4), 4);
		CHECK_EQ(read(got[0], buf, sizeof buf), 4);
		CHECK(!memcmp(buf, "back", 4));
		if (round == 1) {
			close(p[0]);
			close(p[1]);
			CHECK_EQ(write(got[1], "alone", 5), 5);
			CHECK_EQ(read(got[0], buf, sizeof buf), 5);
			p[0] = got[0];
			p[1] = got[1];
		} else {
			close(got[0]);
			close(got[1]);
		}
	}
	/* room for one descriptor: the first arrives, the other is closed, MSG_CTRUNC */
	CHECK_EQ(send_fds(sv[0], 't', p, 2), 1);
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof u);
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = u.buf;
	m.msg_controllen = CMSG_LEN(sizeof(int));
	int low = ut_lowest_free_fd();
	CHECK_EQ(recvmsg(sv[1], &m, 0), 1);
	CHECK_EQ(m.msg_flags, MSG_CTRUNC);
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	CHECK(h != NULL);
	CHECK_EQ(h->cmsg_len, CMSG_LEN(sizeof(int)));
	int one;
	memcpy(&one, CMSG_DATA(h), sizeof one);
	CHECK_EQ(one, low);
	CHECK_EQ(ut_lowest_free_fd(), low + 1); /* the second was not installed */
	close(one);
	/* no control buffer */
	CHECK_EQ(send_fds(sv[0], 'n', p, 1), 1);
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	CHECK_EQ(recvmsg(sv[1], &m, 0), 1);
	CHECK_EQ(m.msg_flags, MSG_CTRUNC);
	CHECK_EQ(ut_lowest_free_fd(), low);
	/* a bad descriptor in SCM_RIGHTS: EBADF, nothing sent */
	int bad[1] = { 9999 };
	CHECK_ERR(send_fds(sv[0], 'b', bad, 1), EBADF);
	CHECK_ERR(recv(sv[1], &b, 1, MSG_DONTWAIT), EAGAIN);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int socket_errors(void)
{
	/*
	 * socket(2): a type beyond SOCK_MAX EINVAL; SOCK_RDM/SOCK_PACKET ESOCKTNOSUPPORT;
	 * SOCK_RAW is taken as SOCK_DGRAM; unknown flag bits in the type EINVAL; protocol
	 * 0 and 1 (PF_UNIX) fine, 2 EPROTONOSUPPORT; families 5 (AppleTalk), 46 (AF_MAX)
	 * and -1: EAFNOSUPPORT. socketpair(2) with the same type errors.
	 */
	CHECK_ERR(socket(AF_UNIX, 99, 0), EINVAL);
	CHECK_ERR(socket(AF_UNIX, SOCK_RDM, 0), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(AF_UNIX, SOCK_PACKET, 0), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(AF_UNIX, SOCK_STREAM | 0x40, 0), EINVAL);
	CHECK_ERR(socket(AF_UNIX, SOCK_STREAM, 2), EPROTONOSUPPORT);
	CHECK_ERR(socket(5, SOCK_STREAM, 0), EAFNOSUPPORT);
	CHECK_ERR(socket(46, SOCK_STREAM, 0), EAFNOSUPPORT);
	CHECK_ERR(socket(-1, SOCK_STREAM, 0), EAFNOSUPPORT);
	int s = socket(AF_UNIX, SOCK_RAW, 0);
	CHECK_OK(s);
	SOCKOPT_IS(s, SO_TYPE, SOCK_DGRAM);
	close(s);
	s = socket(AF_UNIX, SOCK_STREAM, 1);
	CHECK_OK(s);
	close(s);
	int sv[2];
	CHECK_ERR(socketpair(AF_UNIX, 99, 0, sv), EINVAL);
	CHECK_ERR(socketpair(AF_UNIX, SOCK_RDM, 0, sv), ESOCKTNOSUPPORT);
	CHECK_ERR(socketpair(46, SOCK_STREAM, 0, sv), EAFNOSUPPORT);
	return UT_OK;
}

static int addr_errors(void)
{
	/*
	 * bind with addrlen 1 (shorter than the family), 111 (past sun_path), 128 or 200:
	 * EINVAL; another family in sun_family: EINVAL. connect with addrlen 1 or 2 (no
	 * name): EINVAL.
	 */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	struct {
		struct sockaddr_un a;
		char pad[128];
	} big;
	memset(&big, 0, sizeof big);
	big.a.sun_family = AF_UNIX;
	memcpy(big.a.sun_path, "\0uring-test-addr", 16);
	CHECK_ERR(bind(s, SA(&big), 1), EINVAL);
	CHECK_ERR(bind(s, SA(&big), sizeof(struct sockaddr_un) + 1), EINVAL);
	CHECK_ERR(bind(s, SA(&big), 128), EINVAL);
	CHECK_ERR(bind(s, SA(&big), 200), EINVAL);
	CHECK_ERR(connect(s, SA(&big), 1), EINVAL);
	CHECK_ERR(connect(s, SA(&big), FAMILY_LEN), EINVAL);
	big.a.sun_family = 2; /* AF_INET */
	CHECK_ERR(bind(s, SA(&big), sizeof big.a), EINVAL);
	CHECK_ERR(connect(s, SA(&big), sizeof big.a), EINVAL);
	/* still unbound */
	struct sockaddr_un fam = { .sun_family = AF_UNIX };
	NAME_IS(s, 0, &fam, FAMILY_LEN);
	close(s);
	return UT_OK;
}

static int misuse_errors(void)
{
	/*
	 * An unconnected stream socket: send ENOTCONN, recv EINVAL, sendto with an address
	 * EOPNOTSUPP, getpeername ENOTCONN, listen while unbound EINVAL, accept EINVAL,
	 * shutdown 0 (!). A connected one: sendto with an address EISCONN (with addrlen 0 it
	 * is a plain send), listen EINVAL, accept EINVAL; a listener: connect EINVAL. A
	 * datagram socket: listen and accept EOPNOTSUPP, send without a peer ENOTCONN, after
	 * SHUT_WR EPIPE. An unconnected seqpacket socket: send and recv ENOTCONN.
	 */
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "misuse");
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	char buf[4];
	CHECK_ERR(send(s, "x", 1, 0), ENOTCONN);
	CHECK_ERR(recv(s, buf, sizeof buf, MSG_DONTWAIT), EINVAL);
	CHECK_ERR(sendto(s, "x", 1, 0, SA(&a), alen), EOPNOTSUPP);
	struct sockaddr_un p;
	socklen_t pl = sizeof p;
	CHECK_ERR(getpeername(s, SA(&p), &pl), ENOTCONN);
	CHECK_ERR(listen(s, 1), EINVAL);
	CHECK_ERR(accept(s, NULL, NULL), EINVAL);
	CHECK_OK(shutdown(s, SHUT_RDWR));
	close(s);
	int l = bound(SOCK_STREAM, &a, alen, 1);
	CHECK_OK(l);
	CHECK_ERR(connect(l, SA(&a), alen), EINVAL);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(c);
	CHECK_OK(connect(c, SA(&a), alen));
	int acc = accept(l, NULL, NULL);
	CHECK_OK(acc);
	CHECK_ERR(sendto(c, "x", 1, 0, SA(&a), alen), EISCONN);
	CHECK_EQ(sendto(c, "y", 1, 0, SA(&a), 0), 1);
	CHECK_EQ(recv(acc, buf, sizeof buf, 0), 1);
	CHECK_EQ(buf[0], 'y');
	CHECK_ERR(listen(c, 1), EINVAL);
	CHECK_ERR(listen(acc, 1), EINVAL);
	CHECK_ERR(accept(c, NULL, NULL), EINVAL);
	close(acc);
	close(c);
	close(l);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(d);
	CHECK_ERR(listen(d, 1), EOPNOTSUPP);
	CHECK_ERR(accept(d, NULL, NULL), EOPNOTSUPP);
	CHECK_ERR(send(d, "x", 1, 0), ENOTCONN);
	CHECK_ERR(recv(d, buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
	CHECK_OK(shutdown(d, SHUT_WR));
	CHECK_ERR(send(d, "x", 1, 0), EPIPE);
	close(d);
	int q = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	CHECK_OK(q);
	CHECK_ERR(send(q, "x", 1, 0), ENOTCONN);
	CHECK_ERR(recv(q, buf, sizeof buf, MSG_DONTWAIT), ENOTCONN);
	close(q);
	return UT_OK;
}

/* Every socket call on `fd` must fail with errno `e`. */
static int all_fail(int fd, int e, const char *file, int line)
{
	struct sockaddr_un a;
	socklen_t alen = abs_addr(&a, "nosock");
	socklen_t l = sizeof a;
	int v;
	socklen_t vl = sizeof v;
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	static const char *names[] = { "bind", "connect", "listen", "accept", "accept4",
				       "getsockname", "getpeername", "getsockopt", "setsockopt",
				       "send", "sendto", "recv", "recvfrom", "sendmsg", "recvmsg",
				       "shutdown" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		errno = 0;
		long ret;
		switch (i) {
		case 0: ret = bind(fd, SA(&a), alen); break;
		case 1: ret = connect(fd, SA(&a), alen); break;
		case 2: ret = listen(fd, 1); break;
		case 3: ret = accept(fd, NULL, NULL); break;
		case 4: ret = accept4(fd, NULL, NULL, SOCK_CLOEXEC); break;
		case 5: l = sizeof a; ret = getsockname(fd, SA(&a), &l); break;
		case 6: l = sizeof a; ret = getpeername(fd, SA(&a), &l); break;
		case 7: ret = getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl); break;
		case 8: ret = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v); break;
		case 9: ret = send(fd, "x", 1, MSG_DONTWAIT); break;
		case 10: ret = sendto(fd, "x", 1, MSG_DONTWAIT, SA(&a), alen); break;
		case 11: ret = recv(fd, &b, 1, MSG_DONTWAIT); break;
		case 12: ret = recvfrom(fd, &b, 1, MSG_DONTWAIT, NULL, NULL); break;
		case 13: ret = sendmsg(fd, &m, MSG_DONTWAIT); break;
		case 14: ret = recvmsg(fd, &m, MSG_DONTWAIT); break;
		default: ret = shutdown(fd, SHUT_RDWR); break;
		}
		if (ret != -1 || errno != e)
			return ut_fail(file, line, "%s(%d) returned %ld errno %s, expected %s",
				       names[i], fd, ret, ret == -1 ? ut_errname(errno) : "-",
				       ut_errname(e));
	}
	return UT_OK;
}

static int not_socket(void)
{
	/* each socket call on a pipe or a regular file: ENOTSOCK (the pipe still works) */
	int p[2];
	CHECK_OK(pipe(p));
	TRY(all_fail(p[0], ENOTSOCK, __FILE__, __LINE__));
	TRY(all_fail(p[1], ENOTSOCK, __FILE__, __LINE__));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	TRY(all_fail(f, ENOTSOCK, __FILE__, __LINE__));
	CHECK_EQ(write(p[1], "ok", 2), 2);
	char buf[4];
	CHECK_EQ(read(p[0], buf, sizeof buf), 2);
	close(f);
	close(p[0]);
	close(p[1]);
	return UT_OK;
}

static int bad_fd(void)
{
	/* each socket call on a descriptor that is not open (or negative): EBADF */
	int fd = ut_lowest_free_fd();
	TRY(all_fail(fd, EBADF, __FILE__, __LINE__));
	TRY(all_fail(-1, EBADF, __FILE__, __LINE__));
	return UT_OK;
}

static int dgram_addresses(void)
{
	/*
	 * Unconnected datagrams to a socket bound to a path: recvfrom gives the sender's
	 * name: addrlen 0 for an unbound sender, its path (family + path + NUL) for a bound
	 * one; a reply to that name arrives. sendto a missing path: ENOENT; to a stream
	 * socket's name: EPROTOTYPE. A connected datagram socket still takes sendto another.
	 */
	struct sockaddr_un r, b, st;
	socklen_t rlen, blen, stlen;
	TMP_ADDR("rcv", &r, &rlen);
	TMP_ADDR("snd", &b, &blen);
	int rfd = bound(SOCK_DGRAM, &r, rlen, 0);
	CHECK_OK(rfd);
	int u = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK_OK(u);
	CHECK_EQ(sendto(u, "anon", 4, 0, SA(&r), rlen), 4);
	struct sockaddr_un from;
	memset(&from, 0x5a, sizeof from);
	socklen_t flen = sizeof from;
	char buf[16];
	CHECK_EQ(recvfrom(rfd, buf, sizeof buf, 0, SA(&from), &flen), 4);
	CHECK_EQ(flen, 0);
	int s = bound(SOCK_DGRAM, &b, blen, 0);
	CHECK_OK(s);
	CHECK_EQ(sendto(s, "named", 5, 0, SA(&r), sizeof r), 5);
	flen = sizeof from;
	CHECK_EQ(recvfrom(rfd, buf, sizeof buf, 0, SA(&from), &flen), 5);
	CHECK_EQ(flen, blen);
	CHECK(!memcmp(&from, &b, blen));
	CHECK_EQ(sendto(rfd, "reply", 5, 0, SA(&from), flen), 5);
	CHECK_EQ(recv(s, buf, sizeof buf, 0), 5);
	CHECK(!memcmp(buf, "reply", 5));
	/* recvmsg's msg_name the same way */
	CHECK_EQ(sendto(s, "msg", 3, 0, SA(&r), rlen), 3);
	struct iovec iov = { buf, sizeof buf };
	struct msghdr m;
	memset(&m, 0, sizeof m);
	memset(&from, 0, sizeof from);
	m.msg_name = &from;
	m.msg_namelen = sizeof from;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	CHECK_EQ(recvmsg(rfd, &m, 0), 3);
	CHECK_EQ(m.msg_namelen, blen);
	CHECK(!strcmp(from.sun_path, b.sun_path));
	struct sockaddr_un nx;
	socklen_t nxlen;
	TMP_ADDR("nx", &nx, &nxlen);
	CHECK_ERR(sendto(u, "x", 1, 0, SA(&nx), nxlen), ENOENT);
	TMP_ADDR("stream", &st, &stlen);
	int l = bound(SOCK_STREAM, &st, stlen, 1);
	CHECK_OK(l);
	CHECK_ERR(sendto(u, "x", 1, 0, SA(&st), stlen), EPROTOTYPE);
	/* connected to r, it may still send elsewhere */
	CHECK_OK(connect(u, SA(&r), rlen));
	CHECK_EQ(send(u, "conn", 4, 0), 4);
	CHECK_EQ(recv(rfd, buf, sizeof buf, 0), 4);
	CHECK_EQ(sendto(u, "else", 4, 0, SA(&b), blen), 4);
	CHECK_EQ(recv(s, buf, sizeof buf, 0), 4);
	CHECK(!memcmp(buf, "else", 4));
	close(l);
	close(s);
	close(u);
	close(rfd);
	return UT_OK;
}

/* One datagram with SCM_CREDENTIALS stating (pid, uid, gid); 0 or -errno. */
static int send_cred(int fd, pid_t pid, uid_t uid, gid_t gid)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} u;
	memset(&u, 0, sizeof u);
	struct iovec v = { "c", 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_CREDENTIALS;
	h->cmsg_len = CMSG_LEN(sizeof(struct ucred));
	struct ucred cr = { pid, uid, gid };
	memcpy(CMSG_DATA(h), &cr, sizeof cr);
	return sendmsg(fd, &m, 0) == 1 ? 0 : -errno;
}

/* Receives one datagram; its SCM_CREDENTIALS in *cr (1) or none (0), or -errno. */
static int recv_cred(int fd, struct ucred *cr, size_t *controllen)
{
	char buf[8];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct ucred))];
	} u;
	struct iovec v = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
	if (recvmsg(fd, &m, MSG_DONTWAIT) < 0)
		return -errno;
	*controllen = m.msg_controllen;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (!h)
		return 0;
	if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_CREDENTIALS || h->cmsg_len != CMSG_LEN(sizeof *cr))
		return -EPROTO;
	memcpy(cr, CMSG_DATA(h), sizeof *cr);
	return 1;
}

static int passcred(void)
{
	/* without SO_PASSCRED no control data; with it every message brings the sender's
	 * pid, uid and gid (SCM_CREDENTIALS), those it stated itself if it did; stating
	 * another uid than its own is EPERM for a user that is not root */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	struct ucred cr;
	size_t clen;
	CHECK_EQ(send(sv[0], "a", 1, 0), 1);
	CHECK_EQ(recv_cred(sv[1], &cr, &clen), 0);
	CHECK_EQ(clen, 0);
	int one = 1;
	CHECK_OK(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
	int v = 0;
	socklen_t l = sizeof v;
	CHECK_OK(getsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &v, &l));
	CHECK_EQ(v, 1);
	CHECK_EQ(send(sv[0], "b", 1, 0), 1);
	CHECK_EQ(recv_cred(sv[1], &cr, &clen), 1);
	CHECK_EQ(clen, CMSG_SPACE(sizeof cr));
	CHECK_EQ(cr.pid, getpid());
	CHECK_EQ(cr.uid, getuid());
	CHECK_EQ(cr.gid, getgid());
	CHECK_OK(send_cred(sv[0], getpid(), getuid(), getgid()));
	CHECK_EQ(recv_cred(sv[1], &cr, &clen), 1);
	CHECK_EQ(cr.pid, getpid());
	if (geteuid() != 0)
		CHECK_EQ(send_cred(sv[0], getpid(), getuid() + 1, getgid()), -EPERM);
	/* too little room for it: MSG_CTRUNC */
	CHECK_EQ(send(sv[0], "d", 1, 0), 1);
	char buf[8], small[8];
	struct iovec io = { buf, sizeof buf };
	struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = small, .msg_controllen = sizeof small };
	CHECK_EQ(recvmsg(sv[1], &m, 0), 1);
	CHECK_EQ(m.msg_flags & MSG_CTRUNC, MSG_CTRUNC);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

static int linger_option(void)
{
	/* SO_LINGER is kept as set (on normalised to 0 or 1); a short optlen is EINVAL */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_OK(s);
	struct linger lg = { 0, 0 };
	socklen_t l = sizeof lg;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &l));
	CHECK_EQ(l, sizeof lg);
	CHECK_EQ(lg.l_onoff, 0);
	struct linger set = { 5, 7 };
	CHECK_OK(setsockopt(s, SOL_SOCKET, SO_LINGER, &set, sizeof set));
	l = sizeof lg;
	CHECK_OK(getsockopt(s, SOL_SOCKET, SO_LINGER, &lg, &l));
	CHECK_EQ(lg.l_onoff, 1);
	CHECK_EQ(lg.l_linger, 7);
	CHECK_ERR(setsockopt(s, SOL_SOCKET, SO_LINGER, &set, 4), EINVAL);
	close(s);
	return UT_OK;
}

static int rcvtimeo(void)
{
	/*
	 * SO_RCVTIMEO of 100 ms on an AF_UNIX stream: recv with nothing queued fails with
	 * EAGAIN after at least 100 ms (well before 5 s), and the value reads back; on a
	 * datagram socket the same; SO_SNDTIMEO with tv_usec 1000000 is EDOM. (On Linux a
	 * wait with a timeout ends in EINTR when task work is pending, such as the teardown
	 * of a ring closed just before: the receive is then asked again, as programs do.)
	 */
	int sv[2];
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 }, back;
	socklen_t blen = sizeof back;
	CHECK_OK(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	CHECK_OK(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &back, &blen));
	CHECK(blen == sizeof back && back.tv_sec == 0 && back.tv_usec == 100000);
	char buf[8];
	long long t0 = ut_now_ms();
	CHECK_ERR(recv_again(sv[0], buf, sizeof buf), EAGAIN);
	long long took = ut_now_ms() - t0;
	CHECK(took >= 90 && took < 5000);
	struct timeval bad = { .tv_sec = 0, .tv_usec = 1000000 };
	CHECK_ERR(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &bad, sizeof bad), EDOM);
	close(sv[0]);
	close(sv[1]);
	CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	CHECK_OK(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
	t0 = ut_now_ms();
	CHECK_ERR(recv_again(sv[1], buf, sizeof buf), EAGAIN);
	took = ut_now_ms() - t0;
	CHECK(took >= 90 && took < 5000);
	close(sv[0]);
	close(sv[1]);
	return UT_OK;
}

UT_FAMILY(unix, T(stream_pair), T(dgram_boundaries), T(dgram_truncate), T(seqpacket_boundaries),
	  T(path_connect_accept), T(path_errors), T(abstract_names), T(autobind), T(backlog),
	  T(nonblocking_recv), T(peek), T(waitall), T(shutdown_write), T(peer_closed),
	  T(peer_closed_unread), T(poll_bits), T(flow_control), T(dgram_peer_closed), T(sockopts),
	  T(peercred), T(scm_rights), T(socket_errors), T(addr_errors), T(misuse_errors),
	  T(not_socket), T(bad_fd), T(dgram_addresses), T(passcred), T(linger_option), T(rcvtimeo));
