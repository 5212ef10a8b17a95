/*
 * Helpers shared by the socket families (unix, net, inet): SQEs of the network opcodes,
 * socket commands, a provided-buffer ring, poll(2) bits and socket options.
 */
#ifndef SOCKUT_H
#define SOCKUT_H

#include "ut.h"

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Linux 6.11's BIND and LISTEN (liburing 2.3 has neither opcode nor helper) */
#define OP_BIND 56
#define OP_LISTEN 57

#define SA(a) ((struct sockaddr *)(a))
/* the length of a sockaddr_un holding only the family (an unbound socket's name) */
#define FAMILY_LEN ((socklen_t)offsetof(struct sockaddr_un, sun_path))
/* every poll(2) bit a socket can show when asked for these (POLLERR/POLLHUP always can) */
#define ALL_EVENTS (POLLIN | POLLPRI | POLLOUT | POLLRDHUP)
/* a CQE's flags: exactly F_BUFFER with buffer `bid`, plus F_MORE if `more` */
#define BUF_FLAGS(bid, more)                                                   \
	(IORING_CQE_F_BUFFER | ((unsigned)(bid) << IORING_CQE_BUFFER_SHIFT) |  \
	 ((more) ? IORING_CQE_F_MORE : 0))

/* Submit what is queued (one SQE, user_data `ud`) and wait for its CQE: its res. */
#define RUN(r, ud) ut_run_ud((r), (ud))

/* A zeroed SQE of opcode `op` on `fd` with user_data `ud`. */
struct io_uring_sqe *q_op(struct io_uring *r, int op, int fd, uint64_t ud);
struct io_uring_sqe *q_send(struct io_uring *r, int fd, const void *buf, size_t len, int flags,
			    uint64_t ud);
struct io_uring_sqe *q_recv(struct io_uring *r, int fd, void *buf, size_t len, int flags,
			    uint64_t ud);
/*
 * A socket command (URING_CMD, Linux's SOCKET_URING_OP_*: 0 SIOCINQ, 1 SIOCOUTQ,
 * 2 GETSOCKOPT, 3 SETSOCKOPT) on `fd`, filled by hand (liburing 2.3 has no
 * io_uring_prep_cmd_sock): level and optname in addr, optlen in file_index, optval in addr3.
 * Submitted alone with user_data 0xc0 + op: its res; below -9000 when no CQE or a stray one
 * came.
 */
int sock_cmd(struct io_uring *r, int fd, unsigned op, int level, int optname, void *optval,
	     unsigned optlen);

/* A provided-buffer ring (liburing 2.3's register call and ring helpers), one page. */
struct bufring {
	struct io_uring_buf_ring *br;
	size_t size;
	unsigned entries;
	int bgid;
};
int bufring_setup(struct io_uring *r, struct bufring *b, unsigned entries, int bgid,
		  const char *file, int line);
#define BUFRING(r, b, entries, bgid)                                           \
	TRY(bufring_setup((r), (b), (entries), (bgid), __FILE__, __LINE__))
/* Hand the kernel buffers bufs[i] (each `len` bytes, id i) for i in [0, n). */
void bufring_fill(struct bufring *b, void *bufs, unsigned len, unsigned n);
void bufring_free(struct io_uring *r, struct bufring *b);

/* poll(2) `fd` for ALL_EVENTS without waiting: its revents. */
int revents(int fd);
#define CHECK_REVENTS(fd, want)                                                \
	do {                                                                   \
		int _rv = revents(fd);                                         \
		if (_rv != (want))                                             \
			FAIL("poll(%s) revents 0x%x, expected 0x%x (%s)", #fd, _rv, \
			     (unsigned)(want), #want);                         \
	} while (0)

/* getsockopt(level, opt) of an int: must answer `want` with optlen 4. */
int opt_is(int fd, int level, int opt, int want, const char *name, const char *file, int line);
#define OPT_IS(fd, level, opt, want)                                           \
	TRY(opt_is((fd), (level), (opt), (want), #opt, __FILE__, __LINE__))
#define SOCKOPT_IS(fd, opt, want)                                              \
	TRY(opt_is((fd), SOL_SOCKET, (opt), (want), #opt, __FILE__, __LINE__))

/* A TCP socket listening (backlog 8) on 127.0.0.1, port chosen by the kernel and put in
 * *a; or -1 with errno. */
struct sockaddr_in;
int tcp_listener(struct sockaddr_in *a);
/* Read exactly `len` bytes from nonblocking `fd` within 5 s; 0 or -1. */
int read_all(int fd, void *buf, size_t len);

/* recv that asks again after EINTR (pending task work on Linux); its result. */
ssize_t recv_again(int fd, void *buf, size_t len);

#endif
