/* Helpers shared by the socket families (see sockut.h). */
#include "sockut.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>

struct io_uring_sqe *q_op(struct io_uring *r, int op, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->user_data = ud;
	return sqe;
}

struct io_uring_sqe *q_send(struct io_uring *r, int fd, const void *buf, size_t len, int flags,
			    uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_send(sqe, fd, buf, len, flags);
	sqe->user_data = ud;
	return sqe;
}

struct io_uring_sqe *q_recv(struct io_uring *r, int fd, void *buf, size_t len, int flags,
			    uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_recv(sqe, fd, buf, len, flags);
	sqe->user_data = ud;
	return sqe;
}

int sock_cmd(struct io_uring *r, int fd, unsigned op, int level, int optname, void *optval,
	     unsigned optlen)
{
	struct io_uring_sqe *sqe = q_op(r, IORING_OP_URING_CMD, fd, 0xc0 + op);
	sqe->off = op;
	sqe->addr = (uint32_t)level | (uint64_t)(uint32_t)optname << 32;
	sqe->file_index = optlen;
	sqe->addr3 = (uint64_t)(uintptr_t)optval;
	return ut_submit1_ud(r, 0xc0 + op, NULL);
}

/* ---- a provided-buffer ring ------------------------------------------------------ */

int bufring_setup(struct io_uring *r, struct bufring *b, unsigned entries, int bgid,
		  const char *file, int line)
{
	b->entries = entries;
	b->bgid = bgid;
	b->size = (size_t)sysconf(_SC_PAGESIZE);
	void *m = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return ut_fail(file, line, "mmap: %s", ut_errname(errno));
	b->br = m;
	io_uring_buf_ring_init(b->br);
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uint64_t)(uintptr_t)m;
	reg.ring_entries = entries;
	reg.bgid = (uint16_t)bgid;
	int ret = io_uring_register_buf_ring(r, &reg, 0);
	if (ret < 0)
		return ut_fail(file, line, "io_uring_register_buf_ring: %s", ut_errname(-ret));
	return UT_OK;
}

void bufring_fill(struct bufring *b, void *bufs, unsigned len, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		io_uring_buf_ring_add(b->br, (char *)bufs + i * len, len, (unsigned short)i,
				      io_uring_buf_ring_mask(b->entries), (int)i);
	io_uring_buf_ring_advance(b->br, (int)n);
}

void bufring_free(struct io_uring *r, struct bufring *b)
{
	io_uring_unregister_buf_ring(r, b->bgid);
	munmap(b->br, b->size);
}

/* ---- poll(2) bits and socket options ------------------------------------------- */

int revents(int fd)
{
	struct pollfd p = { .fd = fd, .events = ALL_EVENTS };
	if (poll(&p, 1, 0) < 0)
		return -1;
	return p.revents;
}

int opt_is(int fd, int level, int opt, int want, const char *name, const char *file, int line)
{
	int v = -12345;
	socklen_t l = sizeof v;
	if (getsockopt(fd, level, opt, &v, &l) < 0)
		return ut_fail(file, line, "getsockopt(%s): %s", name, ut_errname(errno));
	if (l != sizeof v || v != want)
		return ut_fail(file, line, "getsockopt(%s) = %d (optlen %u), expected %d", name, v,
			       (unsigned)l, want);
	return UT_OK;
}

ssize_t recv_again(int fd, void *buf, size_t len)
{
	ssize_t n;
	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/* ---- TCP over 127.0.0.1 ---------------------------------------------------------- */

int tcp_listener(struct sockaddr_in *a)
{
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	socklen_t l = sizeof *a;
	if (bind(fd, SA(a), sizeof *a) < 0 || listen(fd, 8) < 0 || getsockname(fd, SA(a), &l) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = ut_read_within(fd, (char *)buf + got, len - got, 5000);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}
