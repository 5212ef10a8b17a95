/*
 * uring-bench PATH [--size BYTES] [--ops N] [--warmup N] [--direct] [--warm|--cold] [--only NAME,...]
 *
 * 4 KiB random-offset reads of PATH (created with BYTES of data if missing; default
 * 8 MiB) by pread, io_uring at queue depth 1 and 32, and at depth 32 with a registered
 * file and buffers (READ_FIXED), with a ring of provided buffers, on an IOPOLL ring and on
 * an IOPOLL+SQPOLL ring (those two need --direct on a disk with a polled queue, and run
 * only when --only names them); then NOP throughput in batches of 1 and 32, and a null
 * syscall. Only when --only names them: `nop_threads`, one thread per online CPU, each
 * pinned to its CPU with a ring of its own doing its share of batch-32 NOPs (ns_per_op is
 * wall time over all NOPs: throughput), and `nop_sqpoll_aff`, batch-32 NOPs to an SQ
 * poller bound to the last CPU (SQ_AFF) from a submitter on the first, which publishes
 * the SQ tail and peeks at the CQ without entering the kernel while the poller is awake;
 * and for reads, `read_threads` (a reader per CPU, pinned, a QD32 ring each, the reads
 * shared out: throughput), `read_sqpoll_aff` (QD32 through an SQ poller on the last CPU,
 * the reader on the first, waiting for CQEs in user space) and `read_iopoll_sqpoll_aff`
 * (the same on an IOPOLL ring: --direct on a disk with a polled queue). With --warmup N,
 * each benchmark first runs N operations untimed and
 * unreported (same code, its own ring). With --warm, the file (its first BYTES with
 * --size) is read once before the benchmarks: every read then hits the page cache. With
 * --cold, each read benchmark (and warm-up)
 * starts with the file out of the page cache (POSIX_FADV_DONTNEED) and readahead off
 * (POSIX_FADV_RANDOM), and reads distinct blocks (a permutation, while N does not exceed
 * the file's blocks): every read misses the cache. One line per benchmark on stdout:
 *   bench NAME ops=N total_ns=T ns_per_op=X
 * Exit 0, or 1 with a message on stderr on any failure (a failed CQE included).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>

#define BS 4096
#define QD 32

static uint64_t nops = 2000;
static uint64_t nwarmup;
static int quiet; /* a warm-up run: report nothing */
static uint64_t nblocks;
static uint64_t rng;
static int cold_fd = -1; /* --cold: the file to drop from the page cache */
static uint64_t cold_next;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "uring-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts))
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*, reseeded before each read benchmark: all read the same offsets */
static void seed(void)
{
	rng = 0x2545f4914f6cdd1dull;
	cold_next = 0;
	if (cold_fd >= 0) {
		int err = posix_fadvise(cold_fd, 0, 0, POSIX_FADV_DONTNEED);
		if (!err)
			err = posix_fadvise(cold_fd, 0, 0, POSIX_FADV_RANDOM);
		if (err)
			die("posix_fadvise: %s", strerror(err));
	}
}
/* A random block's offset from the xorshift64* generator `state`. */
static uint64_t random_off(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return ((*state * 0x2545f4914f6cdd1dull) >> 11) % nblocks * BS;
}

static uint64_t next_off(void)
{
	if (cold_fd >= 0) /* a prime stride: distinct blocks until it wraps */
		return (cold_next++ * 1000003ull + 12345) % nblocks * BS;
	return random_off(&rng);
}

static void report(const char *name, uint64_t ops, uint64_t t0, uint64_t t1)
{
	uint64_t total = t1 - t0;
	if (quiet)
		return;
	printf("bench %s ops=%llu total_ns=%llu ns_per_op=%llu\n", name, (unsigned long long)ops,
	       (unsigned long long)total, (unsigned long long)(ops ? total / ops : 0));
	fflush(stdout);
}

static void check_cqe(const char *what, struct io_uring_cqe *cqe, int want)
{
	if (cqe->res != want)
		die("%s: CQE res %d (%s), expected %d", what, cqe->res,
		    cqe->res < 0 ? strerror(-cqe->res) : "short", want);
}

static void ring_init_flags(struct io_uring *r, unsigned entries, unsigned flags)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = flags;
	p.sq_thread_idle = 1000;
	int ret = io_uring_queue_init_params(entries, r, &p);
	if (ret < 0)
		die("io_uring_queue_init(%u, flags %#x): %s", entries, flags, strerror(-ret));
}

static void ring_init(struct io_uring *r, unsigned entries)
{
	ring_init_flags(r, entries, 0);
}

static struct io_uring_sqe *get_sqe(struct io_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	if (!sqe)
		die("SQ ring full");
	return sqe;
}

static void bench_pread(int fd, char *buf)
{
	seed();
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < nops; i++) {
		uint64_t off = next_off();
		ssize_t n = pread(fd, buf, BS, (off_t)off);
		if (n != BS)
			die("pread at %llu: %zd (%s)", (unsigned long long)off, n,
			    n < 0 ? strerror(errno) : "short");
	}
	report("pread", nops, t0, now_ns());
}

static void bench_qd1(int fd, char *buf)
{
	struct io_uring r;
	ring_init(&r, QD);
	seed();
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < nops; i++) {
		struct io_uring_sqe *sqe = get_sqe(&r);
		io_uring_prep_read(sqe, fd, buf, BS, next_off());
		int ret = io_uring_submit_and_wait(&r, 1);
		if (ret != 1)
			die("uring_qd1: submit_and_wait: %d (%s)", ret, ret < 0 ? strerror(-ret) : "");
		struct io_uring_cqe *cqe;
		ret = io_uring_peek_cqe(&r, &cqe);
		if (ret < 0)
			die("uring_qd1: no CQE after waiting: %s", strerror(-ret));
		check_cqe("uring_qd1", cqe, BS);
		io_uring_cqe_seen(&r, cqe);
	}
	report("uring_qd1", nops, t0, now_ns());
	io_uring_queue_exit(&r);
}

/* How the QD32 reads are issued. */
enum qd32 {
	PLAIN,
	FIXED,	       /* READ_FIXED on registered file 0 and buffers */
	PBUF,	       /* READ with IOSQE_BUFFER_SELECT from a ring of provided buffers */
	IOPOLL,	       /* on an IOPOLL ring (O_DIRECT disk with a polled queue) */
	IOPOLL_SQPOLL, /* IOPOLL and SQPOLL: no syscall, CQEs awaited in user space */
};

static const char *qd32_names[] = { "uring_qd32", "uring_qd32_fixed", "uring_qd32_pbuf", "uring_qd32_iopoll",
				     "uring_qd32_iopoll_sqpoll" };

#define PBUF_GROUP 1

/* keep QD reads in flight */
static void bench_qd32(int fd, char *bufs, enum qd32 mode)
{
	const char *name = qd32_names[mode];
	unsigned flags = mode == IOPOLL ? IORING_SETUP_IOPOLL
		       : mode == IOPOLL_SQPOLL ? IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL : 0;
	struct io_uring r;
	ring_init_flags(&r, QD, flags);
	if (mode == FIXED) {
		int ret = io_uring_register_files(&r, &fd, 1);
		if (ret < 0)
			die("%s: register files: %s", name, strerror(-ret));
		struct iovec iov[QD];
		for (int i = 0; i < QD; i++)
			iov[i] = (struct iovec){ bufs + i * BS, BS };
		ret = io_uring_register_buffers(&r, iov, QD);
		if (ret < 0)
			die("%s: register buffers: %s", name, strerror(-ret));
	}
	struct io_uring_buf_ring *br = NULL;
	if (mode == PBUF) {
		if (posix_memalign((void **)&br, 4096, QD * sizeof(struct io_uring_buf)))
			die("%s: posix_memalign", name);
		memset(br, 0, QD * sizeof(struct io_uring_buf));
		struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = QD, .bgid = PBUF_GROUP };
		int ret = io_uring_register_buf_ring(&r, &reg, 0);
		if (ret < 0)
			die("%s: register buffer ring: %s", name, strerror(-ret));
		for (int i = 0; i < QD; i++)
			io_uring_buf_ring_add(br, bufs + i * BS, BS, i, QD - 1, i);
		io_uring_buf_ring_advance(br, QD);
	}
	int free_slots[QD], nfree = QD;
	for (int i = 0; i < QD; i++)
		free_slots[i] = QD - 1 - i;
	uint64_t issued = 0, done = 0;
	seed();
	uint64_t t0 = now_ns();
	while (done < nops) {
		while (nfree > 0 && issued < nops) {
			int slot = free_slots[--nfree];
			struct io_uring_sqe *sqe = get_sqe(&r);
			char *buf = bufs + (size_t)slot * BS;
			if (mode == FIXED) {
				io_uring_prep_read_fixed(sqe, 0, buf, BS, next_off(), slot);
				sqe->flags |= IOSQE_FIXED_FILE;
			} else if (mode == PBUF) {
				io_uring_prep_read(sqe, fd, NULL, BS, next_off());
				sqe->flags |= IOSQE_BUFFER_SELECT;
				sqe->buf_group = PBUF_GROUP;
			} else {
				io_uring_prep_read(sqe, fd, buf, BS, next_off());
			}
			sqe->user_data = (uint64_t)slot;
			issued++;
		}
		int ret;
		if (mode == IOPOLL_SQPOLL) {
			/* the poller submits and reaps: wait for a CQE here, in user space */
			ret = io_uring_submit(&r);
			struct io_uring_cqe *cqe;
			while (io_uring_peek_cqe(&r, &cqe) != 0)
				;
		} else {
			ret = io_uring_submit_and_wait(&r, 1);
		}
		if (ret < 0)
			die("%s: submit: %s", name, strerror(-ret));
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&r, &cqe) == 0) {
			check_cqe(name, cqe, BS);
			if (cqe->user_data >= QD)
				die("%s: CQE with user_data %llu", name,
				    (unsigned long long)cqe->user_data);
			if (mode == PBUF) {
				/* the buffer read into goes back to the ring */
				int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
				if (!(cqe->flags & IORING_CQE_F_BUFFER) || bid >= QD)
					die("%s: CQE without a provided buffer", name);
				io_uring_buf_ring_add(br, bufs + bid * BS, BS, bid, QD - 1, 0);
				io_uring_buf_ring_advance(br, 1);
			}
			free_slots[nfree++] = (int)cqe->user_data;
			io_uring_cqe_seen(&r, cqe);
			done++;
		}
	}
	report(name, nops, t0, now_ns());
	io_uring_queue_exit(&r);
	free(br);
}

static void bench_nop(unsigned batch)
{
	struct io_uring r;
	ring_init(&r, QD);
	uint64_t t0 = now_ns();
	for (uint64_t left = nops; left > 0;) {
		unsigned n = left < batch ? (unsigned)left : batch;
		for (unsigned k = 0; k < n; k++) {
			struct io_uring_sqe *sqe = get_sqe(&r);
			io_uring_prep_nop(sqe);
			sqe->user_data = k;
		}
		int ret = io_uring_submit_and_wait(&r, n);
		if (ret != (int)n)
			die("nop_batch%u: submit_and_wait: %d (%s)", batch, ret,
			    ret < 0 ? strerror(-ret) : "");
		struct io_uring_cqe *cqe;
		for (unsigned seen = 0; seen < n; seen++) {
			ret = io_uring_wait_cqe(&r, &cqe);
			if (ret < 0)
				die("nop_batch%u: wait: %s", batch, strerror(-ret));
			check_cqe("nop", cqe, 0);
			io_uring_cqe_seen(&r, cqe);
		}
		left -= n;
	}
	char name[32];
	snprintf(name, sizeof name, "nop_batch%u", batch);
	report(name, nops, t0, now_ns());
	io_uring_queue_exit(&r);
}

static int pin_to(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one);
}

/* The CPUs the caller may use (all online ones: nothing narrowed it), in order. */
static int cpu_list(int *cpus, int max)
{
	cpu_set_t all;
	CPU_ZERO(&all);
	if (sched_getaffinity(0, sizeof all, &all) < 0)
		die("sched_getaffinity: %s", strerror(errno));
	int n = 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &all))
			cpus[n++] = c;
	return n;
}

struct nop_thread {
	pthread_t th;
	int cpu;
	uint64_t ops;
};

static void *nop_thread_main(void *arg)
{
	struct nop_thread *t = arg;
	if (pin_to(t->cpu) < 0)
		die("nop_threads: pin to CPU %d: %s", t->cpu, strerror(errno));
	struct io_uring r;
	ring_init(&r, QD);
	for (uint64_t left = t->ops; left > 0;) {
		unsigned n = left < 32 ? (unsigned)left : 32;
		for (unsigned k = 0; k < n; k++)
			io_uring_prep_nop(get_sqe(&r));
		int ret = io_uring_submit_and_wait(&r, n);
		if (ret != (int)n)
			die("nop_threads: submit_and_wait: %d", ret);
		struct io_uring_cqe *cqe;
		for (unsigned seen = 0; seen < n; seen++) {
			if (io_uring_wait_cqe(&r, &cqe) < 0)
				die("nop_threads: wait");
			check_cqe("nop", cqe, 0);
			io_uring_cqe_seen(&r, cqe);
		}
		left -= n;
	}
	io_uring_queue_exit(&r);
	return NULL;
}

static void bench_nop_threads(void)
{
	int cpus[64];
	int n = cpu_list(cpus, 64);
	struct nop_thread th[64];
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		th[i] = (struct nop_thread){ .cpu = cpus[i], .ops = nops / n + (i < (int)(nops % n)) };
		if (pthread_create(&th[i].th, NULL, nop_thread_main, &th[i]) != 0)
			die("nop_threads: pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i].th, NULL);
	report("nop_threads", nops, t0, now_ns());
}

static void bench_nop_sqpoll_aff(void)
{
	int cpus[64];
	int n = cpu_list(cpus, 64);
	if (pin_to(cpus[0]) < 0)
		die("nop_sqpoll_aff: pin: %s", strerror(errno));
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
	p.sq_thread_cpu = cpus[n - 1];
	p.sq_thread_idle = 1000;
	struct io_uring r;
	int ret = io_uring_queue_init_params(QD, &r, &p);
	if (ret < 0)
		die("nop_sqpoll_aff: setup: %s", strerror(-ret));
	uint64_t t0 = now_ns(), sent = 0, seen = 0;
	while (seen < nops) {
		struct io_uring_sqe *sqe;
		while (sent < nops && sent - seen < 32 && (sqe = io_uring_get_sqe(&r))) {
			io_uring_prep_nop(sqe);
			sent++;
		}
		io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
		r.sq.sqe_head = r.sq.sqe_tail;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (IO_URING_READ_ONCE(*r.sq.kflags) & IORING_SQ_NEED_WAKEUP)
			io_uring_enter(r.ring_fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL);
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&r, &cqe) == 0) {
			check_cqe("nop", cqe, 0);
			io_uring_cqe_seen(&r, cqe);
			seen++;
		}
	}
	report("nop_sqpoll_aff", nops, t0, now_ns());
	io_uring_queue_exit(&r);
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < n; i++)
		CPU_SET(cpus[i], &all);
	sched_setaffinity(0, sizeof all, &all);
}

/*
 * Disk reads across CPUs: a reader pinned to `cpu` keeps QD reads in flight on a ring of
 * its own (with `flags`; SQ_AFF binds the poller to `sq_cpu`), at offsets from its own
 * generator, until `ops` are done. With SQPOLL it waits for CQEs in user space.
 */
struct reader {
	pthread_t th;
	int cpu, fd, sq_cpu;
	unsigned flags;
	uint64_t ops;
	const char *name;
};

static void *reader_main(void *arg)
{
	struct reader *t = arg;
	if (pin_to(t->cpu) < 0)
		die("%s: pin to CPU %d: %s", t->name, t->cpu, strerror(errno));
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = t->flags;
	p.sq_thread_cpu = (unsigned)t->sq_cpu;
	p.sq_thread_idle = 1000;
	struct io_uring r;
	int ret = io_uring_queue_init_params(QD, &r, &p);
	if (ret < 0)
		die("%s: setup: %s", t->name, strerror(-ret));
	char *bufs;
	if (posix_memalign((void **)&bufs, BS, (size_t)QD * BS))
		die("%s: posix_memalign", t->name);
	uint64_t state = 0x2545f4914f6cdd1dull ^ ((uint64_t)t->cpu << 32), issued = 0, done = 0;
	int free_slots[QD], nfree = QD;
	for (int i = 0; i < QD; i++)
		free_slots[i] = i;
	while (done < t->ops) {
		while (nfree > 0 && issued < t->ops) {
			int slot = free_slots[--nfree];
			struct io_uring_sqe *sqe = get_sqe(&r);
			io_uring_prep_read(sqe, t->fd, bufs + (size_t)slot * BS, BS, random_off(&state));
			sqe->user_data = (uint64_t)slot;
			issued++;
		}
		struct io_uring_cqe *cqe;
		if (t->flags & IORING_SETUP_SQPOLL) {
			ret = io_uring_submit(&r);
			while (io_uring_peek_cqe(&r, &cqe) != 0)
				;
		} else {
			ret = io_uring_submit_and_wait(&r, 1);
		}
		if (ret < 0)
			die("%s: submit: %s", t->name, strerror(-ret));
		while (io_uring_peek_cqe(&r, &cqe) == 0) {
			check_cqe(t->name, cqe, BS);
			if (cqe->user_data >= QD)
				die("%s: CQE with user_data %llu", t->name, (unsigned long long)cqe->user_data);
			free_slots[nfree++] = (int)cqe->user_data;
			io_uring_cqe_seen(&r, cqe);
			done++;
		}
	}
	io_uring_queue_exit(&r);
	free(bufs);
	return NULL;
}

/* `read_threads`: a reader on every CPU, the reads shared out; wall time over all. */
static void bench_read_threads(int fd)
{
	int cpus[64];
	int n = cpu_list(cpus, 64);
	struct reader th[64];
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		th[i] = (struct reader){ .cpu = cpus[i], .fd = fd, .ops = nops / n + (i < (int)(nops % n)),
					 .name = "read_threads" };
		if (pthread_create(&th[i].th, NULL, reader_main, &th[i]) != 0)
			die("read_threads: pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(th[i].th, NULL);
	report("read_threads", nops, t0, now_ns());
}

/* `read_sqpoll_aff` and `read_iopoll_sqpoll_aff`: one reader on the first CPU, its SQ
 * poller bound to the last (SQ_AFF), with or without IOPOLL. */
static void bench_read_sqpoll_aff(int fd, int iopoll)
{
	int cpus[64];
	int n = cpu_list(cpus, 64);
	const char *name = iopoll ? "read_iopoll_sqpoll_aff" : "read_sqpoll_aff";
	struct reader t = { .cpu = cpus[0], .fd = fd, .sq_cpu = cpus[n - 1], .ops = nops, .name = name,
			    .flags = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF | (iopoll ? IORING_SETUP_IOPOLL : 0) };
	uint64_t t0 = now_ns();
	reader_main(&t);
	report(name, nops, t0, now_ns());
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < n; i++)
		CPU_SET(cpus[i], &all);
	sched_setaffinity(0, sizeof all, &all);
}

static void bench_getppid(void)
{
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < nops; i++)
		syscall(SYS_getppid);
	report("getppid", nops, t0, now_ns());
}

/* clock_gettime(CLOCK_MONOTONIC) through the C library (the vDSO where there is one)
 * and as a plain system call. */
static void bench_clock(int vdso)
{
	struct timespec ts;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < nops; i++) {
		if (vdso)
			clock_gettime(CLOCK_MONOTONIC, &ts);
		else
			syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	}
	report(vdso ? "clock_vdso" : "clock_syscall", nops, t0, now_ns());
}

static uint64_t parse_size(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s)
		die("bad number '%s'", s);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		die("bad number '%s'", s);
	return v;
}

/* create PATH holding `size` bytes of data */
static void create_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		die("create %s: %s", path, strerror(errno));
	static char chunk[65536];
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (char)(i * 131 + 7);
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < sizeof chunk ? (size_t)(size - off) : sizeof chunk;
		ssize_t w = write(fd, chunk, n);
		if (w <= 0)
			die("write %s: %s", path, w < 0 ? strerror(errno) : "short");
		off += (uint64_t)w;
	}
	if (close(fd))
		die("close %s: %s", path, strerror(errno));
}

/*
 * An echo server over AF_UNIX stream sockets: ECHO_CONNS socketpairs, the client ends
 * written and read with plain syscalls, the server ends served two ways for the same
 * work. `unix_echo_epoll`: epoll_wait, then recv and send per message. `unix_echo_uring`:
 * a multishot RECV per connection from a ring of provided buffers, and the replies as
 * SENDs, all submitted in one io_uring_enter per round. Each round the client writes one
 * 16-byte message on every connection (the last round on as many as are left of --ops) and
 * reads every reply; ns_per_op is per message echoed (client side included, the same on
 * both).
 */
#define ECHO_CONNS 64
#define ECHO_MSG 16
#define ECHO_BGID 7

static void echo_client_round(int (*sv)[2], int k, const char *msg)
{
	for (int i = 0; i < k; i++)
		if (write(sv[i][0], msg, ECHO_MSG) != ECHO_MSG)
			die("unix_echo: client write: %s", strerror(errno));
}

static void echo_client_replies(int (*sv)[2], int k)
{
	char buf[ECHO_MSG];
	for (int i = 0; i < k; i++)
		for (int got = 0; got < ECHO_MSG;) {
			ssize_t n = read(sv[i][0], buf + got, ECHO_MSG - got);
			if (n <= 0)
				die("unix_echo: client read: %s", n < 0 ? strerror(errno) : "EOF");
			got += (int)n;
		}
}

static void echo_pairs(int (*sv)[2])
{
	for (int i = 0; i < ECHO_CONNS; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]))
			die("unix_echo: socketpair: %s", strerror(errno));
}

/* A TCP listener on 127.0.0.1 (a port of its own) and its address. */
static int tcp_listener(struct sockaddr_in *a)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		die("tcp: socket: %s", strerror(errno));
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof *a;
	if (bind(l, (struct sockaddr *)a, sizeof *a) || listen(l, 128) || getsockname(l, (struct sockaddr *)a, &alen))
		die("tcp: listener: %s", strerror(errno));
	return l;
}

static int tcp_client(const struct sockaddr_in *a)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof *a) || setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one))
		die("tcp: connect: %s", strerror(errno));
	return c;
}

/*
 * ECHO_CONNS TCP connections over 127.0.0.1: sv[i][0] a client, sv[i][1] a server end.
 * The server ends are accepted with accept4, or with one multishot ACCEPT on `r`.
 */
static void echo_pairs_tcp(int (*sv)[2], struct io_uring *r)
{
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	if (r) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);
		io_uring_prep_multishot_accept(sqe, l, NULL, NULL, SOCK_CLOEXEC);
		sqe->user_data = 0xacce;
		io_uring_submit(r);
	}
	for (int i = 0; i < ECHO_CONNS; i++)
		sv[i][0] = tcp_client(&a);
	for (int i = 0; i < ECHO_CONNS; i++) {
		if (!r) {
			sv[i][1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
			if (sv[i][1] < 0)
				die("tcp_echo: accept4: %s", strerror(errno));
			continue;
		}
		struct io_uring_cqe *cqe;
		int ret = io_uring_wait_cqe(r, &cqe);
		if (ret || cqe->user_data != 0xacce || cqe->res < 0 || !(cqe->flags & IORING_CQE_F_MORE))
			die("tcp_echo: multishot accept: %d res %d flags %#x", ret, ret ? 0 : cqe->res, ret ? 0 : cqe->flags);
		sv[i][1] = cqe->res;
		io_uring_cqe_seen(r, cqe);
	}
	for (int i = 0; i < ECHO_CONNS; i++) {
		int one = 1;
		setsockopt(sv[i][1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (r) {
		/* the multishot accept ends with the listener's cancellation */
		struct io_uring_sqe *sqe = io_uring_get_sqe(r);
		io_uring_prep_cancel64(sqe, 0xacce, 0);
		sqe->user_data = 0xcace;
		io_uring_submit(r);
		for (int k = 0; k < 2; k++) {
			struct io_uring_cqe *cqe;
			if (io_uring_wait_cqe(r, &cqe))
				die("tcp_echo: cancel");
			io_uring_cqe_seen(r, cqe);
		}
	}
	close(l);
}

static void echo_close(int (*sv)[2])
{
	for (int i = 0; i < ECHO_CONNS; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
}

static void bench_echo_epoll(int tcp, const char *name)
{
	int sv[ECHO_CONNS][2];
	if (tcp)
		echo_pairs_tcp(sv, NULL);
	else
		echo_pairs(sv);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("unix_echo_epoll: epoll_create1: %s", strerror(errno));
	for (int i = 0; i < ECHO_CONNS; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, sv[i][1], &ev))
			die("unix_echo_epoll: epoll_ctl: %s", strerror(errno));
	}
	const char msg[ECHO_MSG] = "echo echo echo!";
	uint64_t t0 = now_ns();
	for (uint64_t done = 0; done < nops;) {
		int k = nops - done < ECHO_CONNS ? (int)(nops - done) : ECHO_CONNS;
		echo_client_round(sv, k, msg);
		for (int served = 0; served < k;) {
			struct epoll_event evs[ECHO_CONNS];
			int n = epoll_wait(ep, evs, ECHO_CONNS, -1);
			if (n < 0)
				die("unix_echo_epoll: epoll_wait: %s", strerror(errno));
			for (int k = 0; k < n; k++) {
				int fd = sv[evs[k].data.u32][1];
				char buf[256];
				ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
				if (got <= 0)
					die("unix_echo_epoll: recv: %s", got < 0 ? strerror(errno) : "EOF");
				if (send(fd, buf, (size_t)got, 0) != got)
					die("unix_echo_epoll: send: %s", strerror(errno));
				served += (int)(got / ECHO_MSG);
			}
		}
		echo_client_replies(sv, k);
		done += (uint64_t)k;
	}
	report(name, nops, t0, now_ns());
	close(ep);
	echo_close(sv);
}

static void bench_echo_uring(int tcp, const char *name)
{
	int sv[ECHO_CONNS][2];
	struct io_uring r;
	ring_init(&r, 4 * ECHO_CONNS);
	if (tcp)
		echo_pairs_tcp(sv, &r);
	else
		echo_pairs(sv);
	/* the provided buffers: 2 per connection, each room for several messages */
	enum { NBUF = 2 * ECHO_CONNS, BUFSZ = 256 };
	static char bufs[NBUF][BUFSZ];
	struct io_uring_buf_ring *br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (br == MAP_FAILED)
		die("unix_echo_uring: mmap: %s", strerror(errno));
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = NBUF, .bgid = ECHO_BGID };
	int ret = io_uring_register_buf_ring(&r, &reg, 0);
	if (ret)
		die("unix_echo_uring: register_buf_ring: %s", strerror(-ret));
	io_uring_buf_ring_init(br);
	for (int b = 0; b < NBUF; b++)
		io_uring_buf_ring_add(br, bufs[b], BUFSZ, (unsigned short)b, io_uring_buf_ring_mask(NBUF), b);
	io_uring_buf_ring_advance(br, NBUF);
	for (int i = 0; i < ECHO_CONNS; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_recv_multishot(sqe, sv[i][1], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = ECHO_BGID;
		sqe->user_data = (uint64_t)i;
	}
	if (io_uring_submit(&r) != ECHO_CONNS)
		die("unix_echo_uring: submitting the receives");
	const char msg[ECHO_MSG] = "echo echo echo!";
	uint64_t t0 = now_ns();
	for (uint64_t done = 0; done < nops;) {
		int k = nops - done < ECHO_CONNS ? (int)(nops - done) : ECHO_CONNS;
		echo_client_round(sv, k, msg);
		/* every message received (a CQE per receive), its reply queued as a SEND from the
		 * same buffer; the buffers go back once the sends completed */
		int served = 0, sends = 0, returned[NBUF], nret = 0;
		while (served < k || sends > 0) {
			struct io_uring_cqe *cqe;
			ret = io_uring_submit_and_wait(&r, 1);
			if (ret < 0)
				die("unix_echo_uring: submit_and_wait: %s", strerror(-ret));
			unsigned head, seen = 0;
			io_uring_for_each_cqe(&r, head, cqe) {
				seen++;
				if (cqe->user_data & (1ull << 32)) { /* a reply sent */
					if (cqe->res < 0)
						die("unix_echo_uring: send: %s", strerror(-cqe->res));
					returned[nret++] = (int)(cqe->user_data & 0xffff);
					sends--;
					continue;
				}
				if (cqe->res <= 0 || !(cqe->flags & IORING_CQE_F_BUFFER) || !(cqe->flags & IORING_CQE_F_MORE))
					die("unix_echo_uring: recv: res %d flags %#x", cqe->res, cqe->flags);
				int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
				int conn = (int)cqe->user_data;
				struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
				if (!sqe)
					die("unix_echo_uring: no SQE");
				io_uring_prep_send(sqe, sv[conn][1], bufs[bid], (size_t)cqe->res, 0);
				sqe->user_data = (1ull << 32) | (uint64_t)bid;
				sends++;
				served += cqe->res / ECHO_MSG;
			}
			io_uring_cq_advance(&r, seen);
		}
		for (int k = 0; k < nret; k++)
			io_uring_buf_ring_add(br, bufs[returned[k]], BUFSZ, (unsigned short)returned[k], io_uring_buf_ring_mask(NBUF), k);
		io_uring_buf_ring_advance(br, nret);
		echo_client_replies(sv, k);
		done += (uint64_t)k;
	}
	report(name, nops, t0, now_ns());
	echo_close(sv);
	io_uring_queue_exit(&r);
	munmap(br, NBUF * sizeof(struct io_uring_buf));
}

/*
 * TCP ping-pong over 127.0.0.1 on one connection, per round trip of a 16-byte message:
 * the client writes it, the server end reads it and sends it back, the client reads the
 * reply. `tcp_pingpong_sync`: the server end by recv and send. `tcp_pingpong_uring`: by a
 * multishot RECV (armed once, from a provided-buffer ring) and a
 * SEND, one io_uring_enter for the reply and the next receive's wait. The client side is
 * plain syscalls on both.
 */
static void bench_tcp_pingpong(int uring)
{
	int sv[1][2];
	struct sockaddr_in a;
	int l = tcp_listener(&a);
	sv[0][0] = tcp_client(&a);
	sv[0][1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (sv[0][1] < 0)
		die("tcp_pingpong: accept4: %s", strerror(errno));
	close(l);
	int one = 1;
	setsockopt(sv[0][1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct io_uring r;
	enum { NBUF = 8, BUFSZ = 256 };
	static char bufs[NBUF][BUFSZ];
	struct io_uring_buf_ring *br = NULL;
	if (uring) {
		ring_init(&r, 8);
		br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (br == MAP_FAILED)
			die("tcp_pingpong: mmap: %s", strerror(errno));
		struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)br, .ring_entries = NBUF, .bgid = ECHO_BGID };
		if (io_uring_register_buf_ring(&r, &reg, 0))
			die("tcp_pingpong: register_buf_ring");
		io_uring_buf_ring_init(br);
		for (int b = 0; b < NBUF; b++)
			io_uring_buf_ring_add(br, bufs[b], BUFSZ, (unsigned short)b, io_uring_buf_ring_mask(NBUF), b);
		io_uring_buf_ring_advance(br, NBUF);
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_recv_multishot(sqe, sv[0][1], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = ECHO_BGID;
		sqe->user_data = 1;
		io_uring_submit(&r);
	}
	const char msg[ECHO_MSG] = "ping pong ping!";
	char buf[ECHO_MSG];
	uint64_t t0 = now_ns();
	for (uint64_t done = 0; done < nops; done++) {
		if (write(sv[0][0], msg, ECHO_MSG) != ECHO_MSG)
			die("tcp_pingpong: client write: %s", strerror(errno));
		if (!uring) {
			int got = 0;
			while (got < ECHO_MSG) {
				ssize_t n = recv(sv[0][1], buf + got, ECHO_MSG - got, 0);
				if (n <= 0)
					die("tcp_pingpong: recv: %s", n < 0 ? strerror(errno) : "EOF");
				got += (int)n;
			}
			if (send(sv[0][1], buf, ECHO_MSG, 0) != ECHO_MSG)
				die("tcp_pingpong: send: %s", strerror(errno));
		} else {
			/* the message's CQE, then its reply sent (a CQE each) */
			int got = 0, sent = 0;
			while (got < ECHO_MSG || sent < got) {
				struct io_uring_cqe *cqe;
				int ret = io_uring_submit_and_wait(&r, 1);
				if (ret < 0)
					die("tcp_pingpong: submit_and_wait: %s", strerror(-ret));
				unsigned head, seen = 0;
				io_uring_for_each_cqe(&r, head, cqe) {
					seen++;
					if (cqe->user_data & (1ull << 32)) {
						if (cqe->res <= 0)
							die("tcp_pingpong: send: %d", cqe->res);
						sent += cqe->res;
						int bid = (int)(cqe->user_data & 0xffff);
						io_uring_buf_ring_add(br, bufs[bid], BUFSZ, (unsigned short)bid, io_uring_buf_ring_mask(NBUF), 0);
						io_uring_buf_ring_advance(br, 1);
						continue;
					}
					if (cqe->res <= 0 || !(cqe->flags & IORING_CQE_F_MORE))
						die("tcp_pingpong: recv: res %d flags %#x", cqe->res, cqe->flags);
					int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
					struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
					io_uring_prep_send(sqe, sv[0][1], bufs[bid], (size_t)cqe->res, 0);
					sqe->user_data = (1ull << 32) | (uint64_t)bid;
					got += cqe->res;
				}
				io_uring_cq_advance(&r, seen);
			}
		}
		for (int got = 0; got < ECHO_MSG;) {
			ssize_t n = read(sv[0][0], buf + got, ECHO_MSG - got);
			if (n <= 0)
				die("tcp_pingpong: client read: %s", n < 0 ? strerror(errno) : "EOF");
			got += (int)n;
		}
	}
	report(uring ? "tcp_pingpong_uring" : "tcp_pingpong_sync", nops, t0, now_ns());
	if (uring) {
		io_uring_queue_exit(&r);
		munmap(br, NBUF * sizeof(struct io_uring_buf));
	}
	close(sv[0][0]);
	close(sv[0][1]);
}

/* --only NAME[,NAME...]: run just these benchmarks (an unknown name runs none). */
static const char *only;

static int want(const char *name)
{
	if (!only)
		return strncmp(name, "uring_qd32_iopoll", 17) != 0 && strncmp(name, "nop_threads", 11) != 0 &&
		       strncmp(name, "nop_sqpoll_aff", 14) != 0 && strncmp(name, "read_", 5) != 0;
	size_t n = strlen(name);
	for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	uint64_t size = 8 << 20;
	int size_given = 0, direct = 0, cold = 0, warm = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			size = parse_size(argv[++i]);
			size_given = 1;
		} else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			nops = parse_size(argv[++i]);
		} else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
			nwarmup = parse_size(argv[++i]);
		} else if (!strcmp(argv[i], "--direct")) {
			direct = 1;
		} else if (!strcmp(argv[i], "--cold")) {
			cold = 1;
		} else if (!strcmp(argv[i], "--warm")) {
			warm = 1;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			fprintf(stderr,
				"usage: uring-bench PATH [--size BYTES] [--ops N] [--warmup N] [--direct] [--warm|--cold] [--only NAME,...]\n");
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: uring-bench PATH [--size BYTES] [--ops N] [--warmup N] [--direct] [--warm|--cold] [--only NAME,...]\n");
		return 2;
	}
	if (nops == 0)
		die("--ops must be at least 1");

	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			die("stat %s: %s", path, strerror(errno));
		if (size < BS)
			die("--size must be at least %d", BS);
		create_file(path, size);
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0)
		die("open %s%s: %s", path, direct ? " with O_DIRECT" : "", strerror(errno));
	off_t end = lseek(fd, 0, SEEK_END); /* works for regular files and block devices */
	if (end < 0)
		die("lseek %s: %s", path, strerror(errno));
	uint64_t len = (uint64_t)end;
	if (size_given && size < len)
		len = size;
	nblocks = len / BS;
	if (cold)
		cold_fd = fd;
	if (nblocks == 0)
		die("%s holds %llu bytes: less than one %d-byte block", path,
		    (unsigned long long)len, BS);

	char *bufs;
	int err = posix_memalign((void **)&bufs, BS, (size_t)QD * BS);
	if (err)
		die("posix_memalign: %s", strerror(err));
	memset(bufs, 0, (size_t)QD * BS);
	if (warm && cold)
		die("--warm and --cold: choose one");
	for (uint64_t b = 0; warm && b < nblocks; b++) {
		ssize_t n = pread(fd, bufs, BS, (off_t)(b * BS));
		if (n != BS)
			die("--warm: pread at %llu: %zd", (unsigned long long)(b * BS), n);
	}

	/* each selected benchmark: its warm-up (if any), then the timed run */
#define RUN(name, call)                           \
	do {                                      \
		if (!want(name))                  \
			break;                    \
		if (nwarmup) {                    \
			uint64_t timed = nops;    \
			nops = nwarmup;           \
			quiet = 1;                \
			call;                     \
			nops = timed;             \
			quiet = 0;                \
		}                                 \
		call;                             \
	} while (0)
	RUN("pread", bench_pread(fd, bufs));
	RUN("uring_qd1", bench_qd1(fd, bufs));
	RUN("uring_qd32", bench_qd32(fd, bufs, PLAIN));
	RUN("uring_qd32_fixed", bench_qd32(fd, bufs, FIXED));
	RUN("uring_qd32_pbuf", bench_qd32(fd, bufs, PBUF));
	RUN("uring_qd32_iopoll", bench_qd32(fd, bufs, IOPOLL));
	RUN("uring_qd32_iopoll_sqpoll", bench_qd32(fd, bufs, IOPOLL_SQPOLL));
	RUN("nop_batch1", bench_nop(1));
	RUN("nop_batch32", bench_nop(32));
	RUN("nop_threads", bench_nop_threads());
	RUN("nop_sqpoll_aff", bench_nop_sqpoll_aff());
	RUN("read_threads", bench_read_threads(fd));
	RUN("read_sqpoll_aff", bench_read_sqpoll_aff(fd, 0));
	RUN("read_iopoll_sqpoll_aff", bench_read_sqpoll_aff(fd, 1));
	RUN("unix_echo_epoll", bench_echo_epoll(0, "unix_echo_epoll"));
	RUN("unix_echo_uring", bench_echo_uring(0, "unix_echo_uring"));
	RUN("tcp_echo_epoll", bench_echo_epoll(1, "tcp_echo_epoll"));
	RUN("tcp_echo_uring", bench_echo_uring(1, "tcp_echo_uring"));
	RUN("tcp_pingpong_sync", bench_tcp_pingpong(0));
	RUN("tcp_pingpong_uring", bench_tcp_pingpong(1));
	RUN("getppid", bench_getppid());
	RUN("clock_syscall", bench_clock(0));
	RUN("clock_vdso", bench_clock(1));
	close(fd);
	return 0;
}
