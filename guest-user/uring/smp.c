/*
 * Several CPUs at once: threads pinned one per CPU sharing one ring (every CQE exactly
 * once, with requests finishing in io-wq workers on any CPU); munmap while a thread on
 * another CPU reads the mapping (it faults, and never reads the old page once munmap
 * has returned), and mprotect to read-only while it writes (no write lands once
 * mprotect has returned); and an SQ poller bound to its own CPU (IORING_SETUP_SQ_AFF) serving a
 * submitter pinned elsewhere without a single io_uring_enter while it is awake. On one
 * CPU the tests run all the same, every thread on CPU 0.
 */
#include "ut.h"

#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>

/* The online CPUs, as the caller's affinity mask (nobody narrowed it). */
static int online_cpus(cpu_set_t *set)
{
	CPU_ZERO(set);
	return sched_getaffinity(0, sizeof *set, set) < 0 ? -errno : CPU_COUNT(set);
}

static int nth_cpu(const cpu_set_t *set, int n)
{
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set) && n-- == 0)
			return c;
	return -1;
}

static int pin(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one) < 0 ? -errno : 0;
}

static void unpin(const cpu_set_t *all)
{
	sched_setaffinity(0, sizeof *all, all);
}

#define PER_THREAD 2000
#define MAX_THREADS 8

struct shared_ring {
	struct io_uring r;
	pthread_mutex_t lock; /* liburing's SQ side is one thread's at a time */
	int filefd;
	int failed;
	int reaped; /* set once every CQE is in: an exiting submitter would cancel its
		       io-wq requests (Linux and ours) */
};

struct pinned {
	pthread_t th;
	struct shared_ring *s;
	int cpu, id;
};

static void *submitter(void *arg)
{
	struct pinned *p = arg;
	struct shared_ring *s = p->s;
	static char buf[MAX_THREADS][8];
	if (pin(p->cpu) < 0) {
		__atomic_store_n(&s->failed, 1, __ATOMIC_SEQ_CST);
		return NULL;
	}
	for (unsigned i = 0; i < PER_THREAD;) {
		pthread_mutex_lock(&s->lock);
		unsigned n = 0;
		struct io_uring_sqe *sqe;
		while (n < 16 && i + n < PER_THREAD && (sqe = io_uring_get_sqe(&s->r))) {
			uint64_t ud = (uint64_t)p->id * PER_THREAD + i + n;
			if ((i + n) % 4 == 0) {
				/* Punted to an io-wq worker, which may complete it on any CPU. */
				io_uring_prep_read(sqe, s->filefd, buf[p->id], 8, 0);
				sqe->flags |= IOSQE_ASYNC;
			} else {
				io_uring_prep_nop(sqe);
			}
			sqe->user_data = ud;
			n++;
		}
		int ret = n ? io_uring_submit(&s->r) : 0;
		pthread_mutex_unlock(&s->lock);
		if (ret < 0) {
			__atomic_store_n(&s->failed, -ret, __ATOMIC_SEQ_CST);
			return NULL;
		}
		i += n;
		if (!n)
			sched_yield();
	}
	while (!__atomic_load_n(&s->reaped, __ATOMIC_ACQUIRE))
		usleep(1000);
	return NULL;
}

/* One thread per CPU (up to 8), each pinned to its CPU, submit NOPs and io-wq READs to one
 * shared ring while the main thread reaps: each user_data completes exactly once. */
static int one_ring_threads_on_every_cpu(void)
{
	GATE(IORING_OP_READ);
	cpu_set_t all;
	int ncpu = online_cpus(&all);
	CHECK(ncpu > 0);
	int nthreads = ncpu < MAX_THREADS ? ncpu : MAX_THREADS;
	static struct shared_ring s;
	memset(&s, 0, sizeof s);
	pthread_mutex_init(&s.lock, NULL);
	CHECK_OK(io_uring_queue_init(256, &s.r, 0) < 0 ? -1 : 0);
	char path[256];
	s.filefd = ut_tmpfile("smp", O_RDWR, path);
	CHECK(s.filefd >= 0);
	CHECK_EQ(pwrite(s.filefd, "12345678", 8, 0), 8);
	unsigned total = nthreads * PER_THREAD;
	unsigned char *seen = calloc(total, 1);
	CHECK(seen != NULL);
	struct pinned th[MAX_THREADS];
	for (int t = 0; t < nthreads; t++) {
		th[t] = (struct pinned){ .s = &s, .cpu = nth_cpu(&all, t), .id = t };
		CHECK_EQ(pthread_create(&th[t].th, NULL, submitter, &th[t]), 0);
	}
	unsigned got = 0, dup = 0, bad = 0;
	long long t0 = ut_now_ms();
	while (got < total && ut_now_ms() - t0 < 60000 && !__atomic_load_n(&s.failed, __ATOMIC_SEQ_CST)) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		if (io_uring_wait_cqe_timeout(&s.r, &cqe, &ts) < 0)
			continue;
		uint64_t ud = cqe->user_data;
		int want = (ud % PER_THREAD) % 4 == 0 ? 8 : 0;
		if (ud >= total && bad++ == 0)
			ut_info("user_data %llu: none such", (unsigned long long)ud);
		else if (seen[ud]++)
			dup++;
		if (cqe->res != want && bad++ == 0)
			ut_info("user_data %llu: res %d, expected %d", (unsigned long long)ud, cqe->res, want);
		io_uring_cqe_seen(&s.r, cqe);
		got++;
	}
	__atomic_store_n(&s.reaped, 1, __ATOMIC_RELEASE);
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t].th, NULL);
	unsigned missing = 0;
	for (unsigned i = 0; i < total; i++)
		missing += !seen[i];
	io_uring_queue_exit(&s.r);
	close(s.filefd);
	free(seen);
	CHECK_EQ(s.failed, 0);
	CHECK_EQ(dup, 0);
	CHECK_EQ(bad, 0);
	CHECK_EQ(missing, 0);
	CHECK_EQ(got, total);
	ut_info("%d threads on %d CPUs: %u CQEs, each once", nthreads, ncpu, total);
	return UT_OK;
}

/* The reader thread of the munmap test, and what it tells the main thread. */
static volatile uint64_t *map_page;
static uint64_t map_magic;
static int map_unmapped;     /* set once munmap has returned */
static int map_reading;      /* the reader has seen the magic this round */
static int map_stale;        /* it read the magic after munmap returned */
static int map_faulted;      /* rounds that ended in SIGSEGV */
static int map_round, map_done, map_reader_cpu;
static int map_write;        /* the thread writes the page rather than reads it */
static __thread sigjmp_buf map_jump;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(map_jump, 1);
}

static void *map_reader(void *arg)
{
	(void)arg;
	if (pin(map_reader_cpu) < 0)
		return NULL;
	int seen_round = 0;
	for (;;) {
		int round;
		while ((round = __atomic_load_n(&map_round, __ATOMIC_ACQUIRE)) == seen_round)
			if (__atomic_load_n(&map_done, __ATOMIC_ACQUIRE))
				return NULL;
		seen_round = round;
		if (sigsetjmp(map_jump, 1) == 0) {
			for (;;) {
				int after = __atomic_load_n(&map_unmapped, __ATOMIC_ACQUIRE);
				uint64_t v = map_magic;
				if (map_write)
					*map_page = v;
				else
					v = *map_page;
				if (v == map_magic) {
					__atomic_store_n(&map_reading, 1, __ATOMIC_RELEASE);
					if (after)
						__atomic_store_n(&map_stale, 1, __ATOMIC_RELEASE);
				}
			}
		}
		__atomic_fetch_add(&map_faulted, 1, __ATOMIC_SEQ_CST);
	}
}

/* 100 rounds: a thread on another CPU reads a page in a loop and munmap takes the page
 * away, or it writes the page and mprotect makes it read-only (`write`). The thread must
 * then fault (SIGSEGV), and must never read the page's old contents, or write it, once
 * munmap or mprotect has returned (a CPU still using the old translation would). */
static int page_taken_from_another_cpu(int write)
{
	cpu_set_t all;
	int ncpu = online_cpus(&all);
	CHECK(ncpu > 0);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	CHECK_OK(sigaction(SIGSEGV, &sa, &old));
	map_reader_cpu = nth_cpu(&all, ncpu - 1);
	map_done = 0, map_round = 0, map_faulted = 0, map_stale = 0, map_write = write;
	CHECK_OK(pin(nth_cpu(&all, 0)));
	pthread_t th;
	CHECK_EQ(pthread_create(&th, NULL, map_reader, NULL), 0);
	int rounds = 0, ok = 1;
	for (; rounds < 100 && ok; rounds++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			ok = 0;
			break;
		}
		map_magic = 0x5eed0000ull + rounds;
		*(volatile uint64_t *)p = map_magic;
		map_page = p;
		__atomic_store_n(&map_unmapped, 0, __ATOMIC_SEQ_CST);
		__atomic_store_n(&map_reading, 0, __ATOMIC_SEQ_CST);
		int faulted = __atomic_load_n(&map_faulted, __ATOMIC_SEQ_CST);
		__atomic_store_n(&map_round, rounds + 1, __ATOMIC_RELEASE);
		long long t0 = ut_now_ms();
		while (!__atomic_load_n(&map_reading, __ATOMIC_ACQUIRE) && ut_now_ms() - t0 < 5000)
			sched_yield();
		if (write)
			mprotect(p, 4096, PROT_READ);
		else
			munmap(p, 4096);
		__atomic_store_n(&map_unmapped, 1, __ATOMIC_RELEASE);
		t0 = ut_now_ms();
		while (__atomic_load_n(&map_faulted, __ATOMIC_SEQ_CST) == faulted && ut_now_ms() - t0 < 5000)
			sched_yield();
		if (write)
			munmap(p, 4096);
		if (__atomic_load_n(&map_faulted, __ATOMIC_SEQ_CST) == faulted)
			ok = 0;
	}
	__atomic_store_n(&map_done, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	unpin(&all);
	sigaction(SIGSEGV, &old, NULL);
	CHECK_EQ(ok, 1);
	CHECK_EQ(map_stale, 0);
	CHECK_EQ(map_faulted, rounds);
	return UT_OK;
}

static int munmap_while_another_cpu_reads(void)
{
	return page_taken_from_another_cpu(0);
}

static int mprotect_while_another_cpu_writes(void)
{
	return page_taken_from_another_cpu(1);
}

#define SQ_NOPS 20000

/* An SQ poller bound to the last CPU (SQ_AFF), the submitter pinned to the first: 2x10^4
 * NOPs are submitted by publishing the SQ tail and reaped by peeking at the CQ. The
 * program enters only to wake a poller that said it sleeps (IORING_SQ_NEED_WAKEUP), so
 * never while it is awake; with an idle time of 10 s it should never sleep. Our kernel
 * needs no wakeup at all; Linux on a host loaded by other work was seen to set
 * NEED_WAKEUP now and then, so up to 1% of the NOPs may meet a sleeping poller. What is
 * counted is those sleeps (the flag seen set after it was seen clear), not the enters:
 * until a woken poller runs and clears the flag, a submitter on a busy host keeps
 * seeing it and entering. */
static int sqpoll_on_its_own_cpu_needs_no_enter(void)
{
	cpu_set_t all;
	int ncpu = online_cpus(&all);
	CHECK(ncpu > 0);
	CHECK_OK(pin(nth_cpu(&all, 0)));
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL | IORING_SETUP_SQ_AFF;
	p.sq_thread_cpu = nth_cpu(&all, ncpu - 1);
	p.sq_thread_idle = 10000;
	struct io_uring r;
	int ret = io_uring_queue_init_params(256, &r, &p);
	if (ret < 0) {
		unpin(&all);
		CHECK_OK(ret);
	}
	unsigned sent = 0, seen = 0, enters = 0, sleeps = 0, bad = 0;
	int asleep = 0;
	long long t0 = ut_now_ms();
	while (seen < SQ_NOPS && ut_now_ms() - t0 < 60000) {
		struct io_uring_sqe *sqe;
		while (sent < SQ_NOPS && (sqe = io_uring_get_sqe(&r))) {
			io_uring_prep_nop(sqe);
			sqe->user_data = sent++;
		}
		/* Publish the tail by hand (io_uring_submit may enter). */
		io_uring_smp_store_release(r.sq.ktail, r.sq.sqe_tail);
		r.sq.sqe_head = r.sq.sqe_tail;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (IO_URING_READ_ONCE(*r.sq.kflags) & IORING_SQ_NEED_WAKEUP) {
			sys_enter(r.ring_fd, 0, 0, IORING_ENTER_SQ_WAKEUP, NULL, 0);
			enters++;
			sleeps += !asleep;
			asleep = 1;
		} else {
			asleep = 0;
		}
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&r, &cqe) == 0) {
			bad += cqe->user_data != seen || cqe->res != 0;
			io_uring_cqe_seen(&r, cqe);
			seen++;
		}
	}
	long long ms = ut_now_ms() - t0;
	io_uring_queue_exit(&r);
	unpin(&all);
	CHECK_EQ(seen, SQ_NOPS);
	CHECK_EQ(bad, 0);
	CHECK(sleeps * 100 <= SQ_NOPS);
	ut_info("poller on CPU %u, submitter on CPU %d: %d NOPs in %lld ms, %u sleeps, %u enters",
		p.sq_thread_cpu, nth_cpu(&all, 0), SQ_NOPS, ms, sleeps, enters);
	return UT_OK;
}

UT_FAMILY(smp, T(one_ring_threads_on_every_cpu), T(munmap_while_another_cpu_reads), T(mprotect_while_another_cpu_writes),
	  T(sqpoll_on_its_own_cpu_needs_no_enter));
