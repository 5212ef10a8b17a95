/*
 * nettest: a network client for the tap tests (tests/tests/net.rs), run in the guest
 * against a server on the host side of a tap, and natively on the host against the same
 * server (Linux is the reference).
 *
 *   nettest SERVER TCP_PORT UDP_PORT MIB
 *
 * SERVER is an IPv4 address, or an IPv6 one (a link-local one with its interface's index
 * after a '%', as in fe80::2%2).
 *
 * The server (the test's) speaks a one-byte command per TCP connection:
 *   'E'           echo every byte until EOF
 *   'S' len(u64)  read len bytes, answer their FNV-1a (u64)
 *   'R' len(u64)  send len bytes of the pattern, then close
 *   'X'           send 1000 bytes, then reset (SO_LINGER {1, 0})
 * and echoes UDP datagrams. Integers are little-endian.
 *
 * Checks, in order (each prints a line; the first failure exits 1):
 *   1. TCP echo by system calls (connect, write, read) and by io_uring (CONNECT, SEND,
 *      RECV), and shutdown(SHUT_WR) gives EOF after the echo.
 *   2. UDP echo (sendto, recvfrom with SO_RCVTIMEO), the reply from the server's address.
 *   3. MIB MiB sent by io_uring SENDs: the server's hash matches ours.
 *   4. MIB MiB received by a multishot RECV with a provided-buffer ring (refilled as it
 *      drains): bytes and hash match the pattern.
 *   5. A reset mid-transfer: 1000 bytes, then ECONNRESET.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* The server's address (port set per use) and its family. */
static union {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
} server;
static int family;
static socklen_t server_len;

/* The server's address with `port`, for error messages. */
static const char *server_name(void)
{
	static char name[INET6_ADDRSTRLEN + 8];
	const void *a = family == AF_INET ? (const void *)&server.in.sin_addr : (const void *)&server.in6.sin6_addr;
	inet_ntop(family, a, name, sizeof name);
	return name;
}

static void set_port(int port)
{
	if (family == AF_INET)
		server.in.sin_port = htons((uint16_t)port);
	else
		server.in6.sin6_port = htons((uint16_t)port);
}

#define FAIL(...)                                                                  \
	do {                                                                       \
		fprintf(stderr, "nettest: FAILED: " __VA_ARGS__);                  \
		fprintf(stderr, " (line %d, errno %d %s)\n", __LINE__, errno, strerror(errno)); \
		exit(1);                                                           \
	} while (0)

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

/* The pattern's byte at stream offset `i` (the server makes the same). */
static unsigned char pattern(uint64_t i)
{
	return (unsigned char)(i * 131 + (i >> 11) * 7 + (i >> 19));
}

static int tcp_connect(char cmd)
{
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		FAIL("socket");
	if (connect(fd, &server.sa, server_len) < 0)
		FAIL("connect to %s", server_name());
	if (write(fd, &cmd, 1) != 1)
		FAIL("write command");
	return fd;
}

static void read_all(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			FAIL("read %zu of %zu: %zd", got, n, r);
		got += (size_t)r;
	}
}

static struct io_uring_cqe *wait_cqe(struct io_uring *r)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 20 };
	int ret = io_uring_wait_cqe_timeout(r, &cqe, &ts);
	if (ret < 0) {
		errno = -ret;
		FAIL("no CQE within 20 s");
	}
	return cqe;
}

/* Submits what is queued and returns the result of the CQE with `ud`. */
static int run(struct io_uring *r, uint64_t ud)
{
	io_uring_submit(r);
	struct io_uring_cqe *cqe = wait_cqe(r);
	if (cqe->user_data != ud)
		FAIL("CQE for %llu, expected %llu", (unsigned long long)cqe->user_data, (unsigned long long)ud);
	int res = cqe->res;
	io_uring_cqe_seen(r, cqe);
	return res;
}

static void tcp_echo(struct io_uring *r)
{
	int fd = tcp_connect('E');
	const char msg[] = "hello over the tap";
	char buf[64];
	if (write(fd, msg, sizeof msg) != (ssize_t)sizeof msg)
		FAIL("write");
	read_all(fd, buf, sizeof msg);
	if (memcmp(buf, msg, sizeof msg))
		FAIL("echo differs");
	if (shutdown(fd, SHUT_WR) < 0)
		FAIL("shutdown");
	if (read(fd, buf, sizeof buf) != 0)
		FAIL("no EOF after shutdown");
	close(fd);

	fd = socket(family, SOCK_STREAM, 0);
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_connect(sqe, fd, &server.sa, server_len);
	sqe->user_data = 1;
	if (run(r, 1) != 0)
		FAIL("io_uring CONNECT");
	sqe = io_uring_get_sqe(r);
	io_uring_prep_send(sqe, fd, "E", 1, 0);
	sqe->user_data = 2;
	if (run(r, 2) != 1)
		FAIL("SEND command");
	sqe = io_uring_get_sqe(r);
	io_uring_prep_send(sqe, fd, msg, sizeof msg, 0);
	sqe->user_data = 3;
	if (run(r, 3) != (int)sizeof msg)
		FAIL("SEND");
	sqe = io_uring_get_sqe(r);
	io_uring_prep_recv(sqe, fd, buf, sizeof msg, MSG_WAITALL);
	sqe->user_data = 4;
	if (run(r, 4) != (int)sizeof msg || memcmp(buf, msg, sizeof msg))
		FAIL("RECV echo");
	close(fd);
	printf("nettest: tcp echo ok\n");
}

static void udp_echo(int port)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	struct timeval tv = { .tv_sec = 2 };
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		FAIL("SO_RCVTIMEO");
	int tcp_port = family == AF_INET ? server.in.sin_port : server.in6.sin6_port;
	set_port(port);
	const char msg[] = "a datagram over the tap";
	char buf[64];
	/* UDP may be lost: three tries. */
	for (int i = 0; i < 3; i++) {
		if (sendto(fd, msg, sizeof msg, 0, &server.sa, server_len) != (ssize_t)sizeof msg)
			FAIL("sendto");
		struct sockaddr_storage from;
		socklen_t flen = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n != (ssize_t)sizeof msg || memcmp(buf, msg, sizeof msg))
			FAIL("udp echo differs (%zd)", n);
		/* the reply comes from the server's address (and scope), exactly */
		if (flen != server_len || memcmp(&from, &server, server_len))
			FAIL("reply from another address");
		close(fd);
		if (family == AF_INET)
			server.in.sin_port = (uint16_t)tcp_port;
		else
			server.in6.sin6_port = (uint16_t)tcp_port;
		printf("nettest: udp echo ok\n");
		return;
	}
	FAIL("no UDP echo in 3 tries");
}

static void send_bulk(struct io_uring *r, uint64_t len)
{
	int fd = tcp_connect('S');
	if (write(fd, &len, 8) != 8)
		FAIL("write length");
	static unsigned char chunk[256 * 1024];
	uint64_t h = FNV_INIT, off = 0;
	while (off < len) {
		size_t n = len - off < sizeof chunk ? (size_t)(len - off) : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pattern(off + i);
		h = fnv(h, chunk, n);
		size_t done = 0;
		while (done < n) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(r);
			io_uring_prep_send(sqe, fd, chunk + done, n - done, 0);
			sqe->user_data = 10;
			int res = run(r, 10);
			if (res <= 0) {
				errno = -res;
				FAIL("SEND at %llu", (unsigned long long)(off + done));
			}
			done += (size_t)res;
		}
		off += n;
	}
	uint64_t theirs;
	read_all(fd, &theirs, 8);
	if (theirs != h)
		FAIL("server hashed %016llx, we sent %016llx", (unsigned long long)theirs, (unsigned long long)h);
	close(fd);
	printf("nettest: sent %llu MiB ok\n", (unsigned long long)(len >> 20));
}

#define NBUF 16
#define BUFSZ 16384
#define BGID 7

static void recv_bulk(struct io_uring *r, uint64_t len)
{
	int fd = tcp_connect('R');
	if (write(fd, &len, 8) != 8)
		FAIL("write length");
	static unsigned char bufs[NBUF][BUFSZ];
	/* The ring of buffer descriptors: a page of ours, registered. */
	struct io_uring_buf_ring *br = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED)
		FAIL("mmap");
	io_uring_buf_ring_init(br);
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)br;
	reg.ring_entries = NBUF;
	reg.bgid = BGID;
	int ret = io_uring_register_buf_ring(r, &reg, 0);
	if (ret < 0) {
		errno = -ret;
		FAIL("io_uring_register_buf_ring");
	}
	int mask = io_uring_buf_ring_mask(NBUF);
	for (int i = 0; i < NBUF; i++)
		io_uring_buf_ring_add(br, bufs[i], BUFSZ, i, mask, i);
	io_uring_buf_ring_advance(br, NBUF);
	uint64_t h = FNV_INIT, off = 0;
	int armed = 0;
	for (;;) {
		if (!armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(r);
			io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = BGID;
			sqe->user_data = 20;
			io_uring_submit(r);
			armed = 1;
		}
		struct io_uring_cqe *cqe = wait_cqe(r);
		int res = cqe->res;
		unsigned flags = cqe->flags;
		io_uring_cqe_seen(r, cqe);
		if (!(flags & IORING_CQE_F_MORE))
			armed = 0;
		if (res == -ENOBUFS)
			continue;
		if (res < 0) {
			errno = -res;
			FAIL("RECV at %llu", (unsigned long long)off);
		}
		if (res == 0)
			break;
		if (!(flags & IORING_CQE_F_BUFFER))
			FAIL("no buffer");
		int bid = flags >> IORING_CQE_BUFFER_SHIFT;
		for (int i = 0; i < res; i++)
			if (bufs[bid][i] != pattern(off + i))
				FAIL("byte %llu differs", (unsigned long long)(off + i));
		h = fnv(h, bufs[bid], (size_t)res);
		off += (uint64_t)res;
		io_uring_buf_ring_add(br, bufs[bid], BUFSZ, bid, mask, 0);
		io_uring_buf_ring_advance(br, 1);
	}
	if (off != len)
		FAIL("received %llu of %llu bytes", (unsigned long long)off, (unsigned long long)len);
	uint64_t want = FNV_INIT;
	for (uint64_t i = 0; i < len; i += BUFSZ) {
		unsigned char tmp[BUFSZ];
		size_t n = len - i < BUFSZ ? (size_t)(len - i) : BUFSZ;
		for (size_t k = 0; k < n; k++)
			tmp[k] = pattern(i + k);
		want = fnv(want, tmp, n);
	}
	if (h != want)
		FAIL("hash %016llx, pattern's %016llx", (unsigned long long)h, (unsigned long long)want);
	io_uring_unregister_buf_ring(r, BGID);
	munmap(br, 4096);
	close(fd);
	printf("nettest: received %llu MiB ok\n", (unsigned long long)(len >> 20));
}

static void reset_midway(void)
{
	int fd = tcp_connect('X');
	char buf[4096];
	size_t got = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0)
			FAIL("EOF after %zu bytes, expected ECONNRESET", got);
		if (errno != ECONNRESET)
			FAIL("read after %zu bytes", got);
		break;
	}
	if (got > 1000)
		FAIL("%zu bytes before the reset, sent 1000", got);
	close(fd);
	printf("nettest: reset mid-transfer ok (%zu bytes, then ECONNRESET)\n", got);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: nettest SERVER TCP_PORT UDP_PORT MIB\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	char host[INET6_ADDRSTRLEN + 16];
	snprintf(host, sizeof host, "%s", argv[1]);
	char *scope = strchr(host, '%');
	if (scope)
		*scope++ = 0;
	family = strchr(host, ':') ? AF_INET6 : AF_INET;
	server.sa.sa_family = (sa_family_t)family;
	void *a = family == AF_INET ? (void *)&server.in.sin_addr : (void *)&server.in6.sin6_addr;
	if (inet_pton(family, host, a) != 1) {
		fprintf(stderr, "nettest: bad address %s\n", argv[1]);
		return 2;
	}
	server_len = family == AF_INET ? sizeof server.in : sizeof server.in6;
	if (scope)
		server.in6.sin6_scope_id = (uint32_t)atoi(scope);
	set_port(atoi(argv[2]));
	struct io_uring r;
	int ret = io_uring_queue_init(16, &r, 0);
	if (ret < 0) {
		errno = -ret;
		FAIL("io_uring_queue_init");
	}
	tcp_echo(&r);
	udp_echo(atoi(argv[3]));
	uint64_t len = (uint64_t)atoi(argv[4]) << 20;
	send_bulk(&r, len);
	recv_bulk(&r, len);
	reset_midway();
	io_uring_queue_exit(&r);
	printf("nettest: all ok\n");
	return 0;
}
