/* Helpers shared by the families: raw syscalls, probe gating, files, rings. */
#include "ut.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

char ut_msg[512];
const char *ut_dir = "/tmp";
const char *ut_disk;
const char *ut_current = "";
const char *ut_unsup_reason = "-EINVAL";
unsigned ut_features;
const char *ut_argv0 = "uring-test";

int ut_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char tmp[400];
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	snprintf(ut_msg, sizeof ut_msg, "%s (%s:%d)", tmp, file, line);
	return UT_FAIL;
}

void ut_info(const char *fmt, ...)
{
	va_list ap;
	printf("info %s: ", ut_current);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static const struct {
	int e;
	const char *name;
} errnames[] = {
	{ EPERM, "EPERM" },	  { ENOENT, "ENOENT" },	  { EINTR, "EINTR" },
	{ EIO, "EIO" },		  { ENXIO, "ENXIO" },	  { E2BIG, "E2BIG" },
	{ EBADF, "EBADF" },	  { EAGAIN, "EAGAIN" },	  { ENOMEM, "ENOMEM" },
	{ EACCES, "EACCES" },	  { EFAULT, "EFAULT" },	  { EBUSY, "EBUSY" },
	{ EEXIST, "EEXIST" },	  { ENODEV, "ENODEV" },	  { EINVAL, "EINVAL" },
	{ EMFILE, "EMFILE" },	  { ENOSPC, "ENOSPC" },	  { ESPIPE, "ESPIPE" },
	{ EPIPE, "EPIPE" },	  { ERANGE, "ERANGE" },	  { ENOSYS, "ENOSYS" },
	{ ETIME, "ETIME" },	  { EOVERFLOW, "EOVERFLOW" }, { ENOBUFS, "ENOBUFS" },
	{ EOPNOTSUPP, "EOPNOTSUPP" }, { ETIMEDOUT, "ETIMEDOUT" },
	{ ECANCELED, "ECANCELED" }, { EALREADY, "EALREADY" }, { ENOTSUP, "ENOTSUP" },
	{ ENOTSOCK, "ENOTSOCK" }, { EADDRINUSE, "EADDRINUSE" }, { ECONNREFUSED, "ECONNREFUSED" },
	{ EISCONN, "EISCONN" },	  { ENOTCONN, "ENOTCONN" }, { EAFNOSUPPORT, "EAFNOSUPPORT" },
	{ ENOPROTOOPT, "ENOPROTOOPT" }, { EPROTOTYPE, "EPROTOTYPE" },
	{ ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT" }, { EPROTONOSUPPORT, "EPROTONOSUPPORT" },
	{ ECONNRESET, "ECONNRESET" }, { EDESTADDRREQ, "EDESTADDRREQ" }, { EMSGSIZE, "EMSGSIZE" },
	{ EADDRNOTAVAIL, "EADDRNOTAVAIL" }, { EINPROGRESS, "EINPROGRESS" },
	{ ECONNABORTED, "ECONNABORTED" },
};

const char *ut_errname(int e)
{
	static char buf[4][24];
	static int i;
	for (size_t k = 0; k < sizeof errnames / sizeof errnames[0]; k++)
		if (errnames[k].e == e)
			return errnames[k].name;
	i = (i + 1) & 3;
	snprintf(buf[i], sizeof buf[i], "errno %d", e);
	return buf[i];
}

const char *ut_resname(int res)
{
	static char buf[4][24];
	static int i;
	if (res < 0 && res > -4096)
		return ut_errname(-res);
	i = (i + 1) & 3;
	snprintf(buf[i], sizeof buf[i], "count");
	return buf[i];
}

int sys_setup(unsigned entries, struct io_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
	      const void *arg, size_t argsz)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags,
			    arg, argsz);
}

int sys_register(int fd, unsigned op, const void *arg, unsigned nr)
{
	return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

/* ---- probe ---------------------------------------------------------------- */

static struct {
	struct io_uring_probe p;
	struct io_uring_probe_op ops[256];
} probe;
static int probe_ok;

int ut_probe_init(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	if (fd < 0)
		return -errno;
	ut_features = p.features;
	memset(&probe, 0, sizeof probe);
	int r = sys_register(fd, IORING_REGISTER_PROBE, &probe, 256);
	int e = errno;
	close(fd);
	if (r < 0)
		return -e;
	probe_ok = 1;
	return 0;
}

int ut_op_supported(int op)
{
	if (!probe_ok) /* no probe: assume supported, so the test runs and reports */
		return 1;
	if (op < 0 || op > probe.p.last_op || op >= probe.p.ops_len)
		return 0;
	return (probe.ops[op].flags & IO_URING_OP_SUPPORTED) != 0;
}

int ut_probe_last_op(void)
{
	return probe_ok ? probe.p.last_op : -1;
}

int ut_gate(int op, const char *file, int line)
{
	if (ut_op_supported(op))
		return UT_OK;
	struct io_uring r;
	int ret = ut_ring(&r, 2);
	if (ret < 0)
		return ut_fail(file, line, "gate: ring setup: %s", ut_errname(-ret));
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	if (!sqe) {
		io_uring_queue_exit(&r);
		return ut_fail(file, line, "gate: no SQE");
	}
	memset(sqe, 0, sizeof *sqe);
	sqe->opcode = (uint8_t)op;
	sqe->fd = -1;
	sqe->user_data = 0x9a7e;
	uint64_t ud = 0;
	int res = ut_run1(&r, &ud);
	io_uring_queue_exit(&r);
	if (res != -EINVAL || ud != 0x9a7e)
		return ut_fail(file, line,
			       "opcode %d unsupported by the probe, completed with %d (%s), expected -EINVAL",
			       op, res, ut_resname(res));
	return UT_UNSUP;
}

/* ---- signals -------------------------------------------------------------- */

volatile sig_atomic_t ut_sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	ut_sigpipes++;
}

void ut_catch_sigpipe(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
	ut_sigpipes = 0;
}

/* ---- files ---------------------------------------------------------------- */

static char tmp_paths[8][256];
static int tmp_count;

int ut_tmpfile(const char *tag, int flags, char *path_out)
{
	char path[256];
	char name[128];
	snprintf(name, sizeof name, "%s", ut_current);
	for (char *c = name; *c; c++)
		if (*c == ':')
			*c = '_';
	snprintf(path, sizeof path, "%s/uring-test.%s.%s", ut_dir, name, tag);
	int fd = open(path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (tmp_count < 8)
		snprintf(tmp_paths[tmp_count++], sizeof tmp_paths[0], "%s", path);
	if (path_out)
		strcpy(path_out, path);
	return fd;
}

int ut_tmppath(const char *tag, char *path_out, size_t size)
{
	char name[128];
	snprintf(name, sizeof name, "%s", ut_current);
	for (char *c = name; *c; c++)
		if (*c == ':')
			*c = '_';
	int n = snprintf(path_out, size, "%s/uring-test.%s.%s", ut_dir, name, tag);
	if (n < 0 || (size_t)n >= size || n >= (int)sizeof tmp_paths[0])
		return -ENAMETOOLONG;
	unlink(path_out);
	if (tmp_count < 8)
		snprintf(tmp_paths[tmp_count++], sizeof tmp_paths[0], "%s", path_out);
	return 0;
}

void ut_cleanup_files(void)
{
	for (int i = 0; i < tmp_count; i++)
		unlink(tmp_paths[i]);
	tmp_count = 0;
}

void ut_pattern(void *buf, size_t n, unsigned seed)
{
	unsigned char *b = buf;
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
}

/* ---- liburing helpers ----------------------------------------------------- */

int ut_ring(struct io_uring *r, unsigned entries)
{
	return io_uring_queue_init(entries, r, 0);
}

struct io_uring_sqe *ut_sqe(struct io_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	if (!sqe) {
		io_uring_submit(r);
		sqe = io_uring_get_sqe(r);
	}
	return sqe;
}

int ut_reap(struct io_uring *r, unsigned n, struct io_uring_cqe *out)
{
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(r, &cqe);
		if (ret < 0)
			return ret;
		if (out)
			out[i] = *cqe;
		io_uring_cqe_seen(r, cqe);
	}
	return 0;
}

int ut_run1(struct io_uring *r, uint64_t *ud)
{
	int ret = io_uring_submit(r);
	if (ret < 0)
		return ret - 10000; /* not a CQE result: make it recognisable */
	struct io_uring_cqe cqe;
	ret = ut_reap(r, 1, &cqe);
	if (ret < 0)
		return ret - 10000;
	if (ud)
		*ud = cqe.user_data;
	return cqe.res;
}

/* ---- raw ring ------------------------------------------------------------- */

int rring_init(struct rring *r, unsigned entries, struct io_uring_params *pin)
{
	memset(r, 0, sizeof *r);
	if (pin)
		r->p = *pin;
	r->fd = sys_setup(entries, &r->p);
	if (r->fd < 0)
		return -errno;
	int ret = rring_map(r);
	if (ret < 0)
		rring_exit(r);
	return ret;
}

int rring_map(struct rring *r)
{
	struct io_uring_params *p = &r->p;
	size_t cqe = p->flags & IORING_SETUP_CQE32 ? 32 : 16;
	r->cq_sz = p->cq_off.cqes + p->cq_entries * cqe;
	/* Without the SQ index array (NO_SQARRAY, sq_off.array 0) the ring ends at the CQEs. */
	r->sq_sz = p->sq_off.array ? p->sq_off.array + p->sq_entries * sizeof(unsigned) : r->cq_sz;
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_sz > r->sq_sz)
			r->sq_sz = r->cq_sz;
		r->cq_sz = r->sq_sz;
	}
	r->sq_ring = mmap(NULL, r->sq_sz, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	if (r->sq_ring == MAP_FAILED)
		return -errno;
	if (p->features & IORING_FEAT_SINGLE_MMAP) {
		r->cq_ring = r->sq_ring;
	} else {
		r->cq_ring = mmap(NULL, r->cq_sz, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
		if (r->cq_ring == MAP_FAILED)
			return -errno;
	}
	r->sqes_sz = p->sq_entries * sizeof(struct io_uring_sqe) * (p->flags & IORING_SETUP_SQE128 ? 2 : 1);
	r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	char *sq = r->sq_ring, *cq = r->cq_ring;
	r->sq_head = (unsigned *)(sq + p->sq_off.head);
	r->sq_tail = (unsigned *)(sq + p->sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p->sq_off.ring_mask);
	r->sq_entries = (unsigned *)(sq + p->sq_off.ring_entries);
	r->sq_flags = (unsigned *)(sq + p->sq_off.flags);
	r->sq_dropped = (unsigned *)(sq + p->sq_off.dropped);
	r->sq_array = p->sq_off.array ? (unsigned *)(sq + p->sq_off.array) : NULL;
	r->cq_head = (unsigned *)(cq + p->cq_off.head);
	r->cq_tail = (unsigned *)(cq + p->cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p->cq_off.ring_mask);
	r->cq_entries = (unsigned *)(cq + p->cq_off.ring_entries);
	r->cq_overflow = (unsigned *)(cq + p->cq_off.overflow);
	r->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
	return 0;
}

void rring_unmap(struct rring *r)
{
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_sz);
	if (r->cq_ring && r->cq_ring != MAP_FAILED && r->cq_ring != r->sq_ring)
		munmap(r->cq_ring, r->cq_sz);
	if (r->sq_ring && r->sq_ring != MAP_FAILED)
		munmap(r->sq_ring, r->sq_sz);
	r->sqes = NULL;
	r->sq_ring = r->cq_ring = NULL;
}

void rring_exit(struct rring *r)
{
	rring_unmap(r);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}

void rring_push(struct rring *r, const struct io_uring_sqe *sqe)
{
	unsigned tail = *r->sq_tail;
	unsigned idx = tail & *r->sq_mask;
	r->sqes[idx] = *sqe;
	if (r->sq_array)
		r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

int rring_pop(struct rring *r, struct io_uring_cqe *out)
{
	unsigned head = *r->cq_head;
	unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
	if (head == tail)
		return 0;
	*out = r->cqes[head & *r->cq_mask];
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return 1;
}

int ut_submit_expect_none(struct io_uring *r, int n, const char *file, int line)
{
	int ret = io_uring_submit(r);
	if (ret != n)
		return ut_fail(file, line, "io_uring_submit = %d, expected %d", ret, n);
	if (sys_enter(r->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return ut_fail(file, line, "0-wait io_uring_enter: %s", ut_errname(errno));
	struct io_uring_cqe *cqe;
	if (io_uring_peek_cqe(r, &cqe) == 0)
		return ut_fail(file, line, "unexpected CQE user_data 0x%llx res %d",
			       (unsigned long long)cqe->user_data, cqe->res);
	return UT_OK;
}

/* ---- waiting, time, writer threads ---------------------------------------- */

int ut_wait_cqe_ms(struct io_uring *r, struct io_uring_cqe *out, int ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;
	int ret = io_uring_wait_cqe_timeout(r, &cqe, &ts);
	if (ret < 0)
		return ret;
	if (out)
		*out = *cqe;
	io_uring_cqe_seen(r, cqe);
	return 0;
}

long long ut_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void ut_sleep_ms(int ms)
{
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void *writer_main(void *arg)
{
	struct ut_writer *w = arg;
	if (w->delay_ms)
		ut_sleep_ms(w->delay_ms);
	w->ret = write(w->fd, w->buf, w->len);
	return NULL;
}

int ut_writer_start(struct ut_writer *w, int fd, const void *buf, size_t len, int delay_ms)
{
	w->fd = fd;
	w->buf = buf;
	w->len = len;
	w->delay_ms = delay_ms;
	w->ret = -2;
	return -pthread_create(&w->th, NULL, writer_main, w);
}

ssize_t ut_writer_join(struct ut_writer *w)
{
	pthread_join(w->th, NULL);
	return w->ret;
}

ssize_t ut_read_within(int fd, void *buf, size_t n, int ms)
{
	long long end = ut_now_ms() + ms;
	for (;;) {
		ssize_t r = read(fd, buf, n);
		if (r >= 0 || errno != EAGAIN)
			return r;
		if (ut_now_ms() > end)
			return -1; /* errno is EAGAIN */
		ut_sleep_ms(1);
	}
}

int ut_run1_ms(struct io_uring *r, uint64_t *ud, int ms)
{
	int ret = io_uring_submit(r);
	if (ret < 0)
		return ret - 10000;
	struct io_uring_cqe cqe;
	ret = ut_wait_cqe_ms(r, &cqe, ms);
	if (ret < 0)
		return ret - 10000;
	if (ud)
		*ud = cqe.user_data;
	return cqe.res;
}

int ut_enter_ms(int fd, unsigned to_submit, unsigned min_complete, int ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	struct io_uring_getevents_arg ga = { .ts = (uintptr_t)&ts };
	return sys_enter(fd, to_submit, min_complete,
			 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ga, sizeof ga);
}

int ut_wait_ud(struct io_uring *r, uint64_t ud, int ms, struct io_uring_cqe *out,
	       const char *file, int line)
{
	int ret = ut_wait_cqe_ms(r, out, ms);
	if (ret < 0)
		return ut_fail(file, line, "no CQE (user_data 0x%llx) within %d ms: %s",
			       (unsigned long long)ud, ms, ut_errname(-ret));
	if (out->user_data != ud)
		return ut_fail(file, line, "CQE user_data 0x%llx res %d, expected user_data 0x%llx",
			       (unsigned long long)out->user_data, out->res, (unsigned long long)ud);
	return UT_OK;
}

struct io_uring_sqe *ut_q_nop(struct io_uring *r, uint64_t ud, unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->flags = (uint8_t)flags;
	sqe->user_data = ud;
	return sqe;
}

int rring_pop_ud(struct rring *r, uint64_t ud, struct io_uring_cqe *out, const char *file,
		 int line)
{
	if (!rring_pop(r, out))
		return ut_fail(file, line, "no CQE (user_data 0x%llx expected)",
			       (unsigned long long)ud);
	if (out->user_data != ud)
		return ut_fail(file, line, "CQE user_data 0x%llx res %d, expected user_data 0x%llx",
			       (unsigned long long)out->user_data, out->res, (unsigned long long)ud);
	return UT_OK;
}

struct io_uring_sqe ut_nop_sqe(uint64_t ud, unsigned flags)
{
	struct io_uring_sqe s;
	memset(&s, 0, sizeof s);
	s.opcode = IORING_OP_NOP;
	s.flags = (uint8_t)flags;
	s.user_data = ud;
	return s;
}

/* ---- shared by several families ------------------------------------------- */

int ut_data_file(void *data, size_t n, unsigned seed)
{
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	if (fd < 0)
		return fd;
	ut_pattern(data, n, seed);
	if (write(fd, data, n) != (ssize_t)n)
		return -EIO;
	return fd;
}

int ut_run_sqe(struct io_uring *r, struct io_uring_sqe *sqe, uint64_t ud,
	       struct io_uring_cqe *out)
{
	sqe->user_data = ud;
	return ut_submit1_ud(r, ud, out);
}

int ut_submit1_ud(struct io_uring *r, uint64_t ud, struct io_uring_cqe *out)
{
	int ret = io_uring_submit(r);
	if (ret != 1)
		return -10000 + (ret < 0 ? ret : 0);
	struct io_uring_cqe c;
	ret = ut_wait_cqe_ms(r, &c, 5000);
	if (ret < 0)
		return ret - 10000;
	if (c.user_data != ud)
		return -9999;
	if (out)
		*out = c;
	return c.res;
}

struct io_uring_sqe *ut_q_sel_read(struct io_uring *r, int fd, unsigned len, uint64_t off,
				   int group)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, fd, NULL, len, off);
	return ut_sel(sqe, group);
}

int ut_run_ud(struct io_uring *r, uint64_t ud)
{
	uint64_t got = 0;
	int res = ut_run1_ms(r, &got, 5000);
	return got == ud ? res : (res < -9000 ? res : -9999);
}

int ut_lowest_free_fd(void)
{
	int fd = dup(0);
	if (fd >= 0)
		close(fd);
	return fd;
}

struct io_uring_sqe *ut_sel(struct io_uring_sqe *sqe, int group)
{
	sqe->flags = IOSQE_BUFFER_SELECT;
	sqe->buf_group = (uint16_t)group;
	return sqe;
}

struct io_uring_sqe *ut_q_sel_readv(struct io_uring *r, int fd, const struct iovec *iov,
				    unsigned n, uint64_t off, int group)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_readv(sqe, fd, iov, n, off);
	return ut_sel(sqe, group);
}

int ut_feed_wait(struct io_uring *r, int fd, const void *msg, size_t len,
		 struct io_uring_cqe *c, const char *file, int line)
{
	struct ut_writer w;
	int ret = ut_writer_start(&w, fd, msg, len, 10);
	if (ret < 0)
		return ut_fail(file, line, "ut_writer_start: %s", ut_errname(-ret));
	ret = ut_wait_cqe_ms(r, c, 5000);
	ssize_t wr = ut_writer_join(&w);
	if (wr != (ssize_t)len)
		return ut_fail(file, line, "the writer's write returned %zd, expected %zu", wr, len);
	if (ret < 0)
		return ut_fail(file, line, "no CQE within 5000 ms: %s", ut_errname(-ret));
	return UT_OK;
}

int ut_cancel_waiting(struct io_uring *r, uint64_t target, uint64_t ud, unsigned want_flags,
		      const char *file, int line)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_cancel64(sqe, target, 0);
	sqe->user_data = ud;
	int ret = io_uring_submit(r);
	if (ret != 1)
		return ut_fail(file, line, "io_uring_submit = %d, expected 1", ret);
	struct io_uring_cqe c[2];
	for (int i = 0; i < 2; i++) {
		ret = ut_wait_cqe_ms(r, &c[i], 5000);
		if (ret < 0)
			return ut_fail(file, line, "CQE %d: none within 5000 ms: %s", i,
				       ut_errname(-ret));
	}
	for (int i = 0; i < 2; i++) {
		ut_info("CQE 0x%llx res %d flags 0x%x", (unsigned long long)c[i].user_data,
			c[i].res, c[i].flags);
		if (c[i].user_data == target) {
			if (c[i].res != -ECANCELED)
				return ut_fail(file, line, "cancelled request: res %d (%s), expected -ECANCELED",
					       c[i].res, ut_resname(c[i].res));
			if (c[i].flags != want_flags)
				return ut_fail(file, line, "cancelled request: flags 0x%x, expected 0x%x",
					       c[i].flags, want_flags);
		} else {
			if (c[i].user_data != ud)
				return ut_fail(file, line, "CQE user_data 0x%llx, expected 0x%llx",
					       (unsigned long long)c[i].user_data,
					       (unsigned long long)ud);
			if (c[i].res != 0)
				return ut_fail(file, line, "ASYNC_CANCEL: res %d (%s), expected 0",
					       c[i].res, ut_resname(c[i].res));
		}
	}
	return UT_OK;
}

int ut_sel_readv_cases(struct io_uring *r, int fd, int group, uint64_t ud, const void *data,
		       const void *b0, const void *b1, unsigned bid, int exact_flags)
{
	const unsigned char *d = data;
	struct iovec iov[2] = { { NULL, 100 }, { NULL, 100 } };
	struct io_uring_cqe c;
	CHECK_RES(ut_run_sqe(r, ut_q_sel_readv(r, fd, iov, 1, 300, group), ud, &c), 100);
	if (exact_flags)
		CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | (bid << IORING_CQE_BUFFER_SHIFT));
	else
		CHECK_EQ(c.flags & IORING_CQE_F_BUFFER ? (int)(c.flags >> IORING_CQE_BUFFER_SHIFT) : -1,
			 bid);
	CHECK(memcmp(b0, d + 300, 100) == 0);
	CHECK_RES(ut_run_sqe(r, ut_q_sel_readv(r, fd, iov, 2, 0, group), ud, &c), -EINVAL);
	CHECK_EQ(c.flags, 0);
	iov[0].iov_len = 4096;
	CHECK_RES(ut_run_sqe(r, ut_q_sel_readv(r, fd, iov, 1, 0, group), ud, &c), 128);
	if (exact_flags)
		CHECK_EQ(c.flags, IORING_CQE_F_BUFFER | ((bid + 1) << IORING_CQE_BUFFER_SHIFT));
	else
		CHECK_EQ(c.flags & IORING_CQE_F_BUFFER ? (int)(c.flags >> IORING_CQE_BUFFER_SHIFT) : -1,
			 bid + 1);
	CHECK(memcmp(b1, d, 128) == 0);
	return UT_OK;
}

int ut_expect_empty(struct io_uring *r, const char *file, int line)
{
	struct io_uring_cqe c;
	int ret = ut_wait_cqe_ms(r, &c, 20);
	if (ret == 0)
		return ut_fail(file, line, "unexpected CQE user_data 0x%llx res %d flags 0x%x",
			       (unsigned long long)c.user_data, c.res, c.flags);
	if (ret != -ETIME)
		return ut_fail(file, line, "waiting for no CQE: %s", ut_errname(-ret));
	return UT_OK;
}

int ut_cancel_one(struct io_uring *r, uint64_t target, uint64_t ud, const char *file, int line)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_cancel64(sqe, target, 0);
	sqe->user_data = ud;
	if (io_uring_submit(r) != 1)
		return ut_fail(file, line, "io_uring_submit != 1");
	struct io_uring_cqe c[2];
	if (ut_reap(r, 2, c) < 0)
		return ut_fail(file, line, "no 2 CQEs");
	for (int i = 0; i < 2; i++) {
		int want = c[i].user_data == target ? -ECANCELED : 1;
		if ((c[i].user_data != target && c[i].user_data != ud) || c[i].res != want)
			return ut_fail(file, line, "CQE 0x%llx res %d (%s), expected %d",
				       (unsigned long long)c[i].user_data, c[i].res,
				       ut_resname(c[i].res), want);
	}
	return UT_OK;
}

int ut_expect_cqe(struct io_uring *r, uint64_t ud, int res, int more, struct io_uring_cqe *out,
		  const char *file, int line)
{
	struct io_uring_cqe c;
	int ret = ut_wait_cqe_ms(r, &c, 2000);
	if (ret)
		return ut_fail(file, line, "no CQE (wanted 0x%llx res %d): %s", (unsigned long long)ud, res,
			       ut_resname(ret));
	if (c.user_data != ud || c.res != res)
		return ut_fail(file, line, "CQE 0x%llx res %d (%s), expected 0x%llx res %d (%s)",
			       (unsigned long long)c.user_data, c.res, ut_resname(c.res), (unsigned long long)ud, res,
			       ut_resname(res));
	if (!!(c.flags & IORING_CQE_F_MORE) != more)
		return ut_fail(file, line, "res %d: F_MORE is %s", c.res, more ? "clear" : "set");
	if (out)
		*out = c;
	return UT_OK;
}
