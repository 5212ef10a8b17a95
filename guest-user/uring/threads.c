/*
 * One ring, several threads. The ABI needs the SQ tail (and the SQEs behind it) written
 * by one thread at a time, so SQE filling is serialized with a user-space lock; the
 * io_uring_enter calls that submit them are not: they run concurrently, and each may
 * submit SQEs another thread queued. Every user_data must complete exactly once.
 */
#include "ut.h"

#include <fcntl.h>
#include <stdlib.h>

#define CQ_SIZE 16384
#define FILE_SLOTS 512 /* 8-byte records in the data file */

struct shared {
	struct rring r;
	pthread_mutex_t sq_lock; /* guards SQE slots, sq_array and the SQ tail */
	int filefd;		 /* -1: NOPs, else READs of 8 bytes from it */
	unsigned per_thread, batch;
	long submitted;		/* sum of enter returns (atomic) */
	int enter_errno;	/* first failure seen by a thread */
	unsigned char *seen;	/* by user_data */
	unsigned char (*bufs)[8];
};

struct worker {
	pthread_t th;
	struct shared *s;
	unsigned id;
};

static void fill_sqe(struct shared *s, struct io_uring_sqe *sqe, uint64_t ud)
{
	memset(sqe, 0, sizeof *sqe);
	sqe->user_data = ud;
	if (s->filefd < 0) {
		sqe->opcode = IORING_OP_NOP;
		return;
	}
	sqe->opcode = IORING_OP_READ;
	sqe->fd = s->filefd;
	sqe->addr = (uintptr_t)s->bufs[ud];
	sqe->len = 8;
	sqe->off = (ud % FILE_SLOTS) * 8;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *s = w->s;
	struct rring *r = &s->r;
	unsigned done = 0;
	while (done < s->per_thread) {
		unsigned k = 0;
		pthread_mutex_lock(&s->sq_lock);
		unsigned tail = *r->sq_tail;
		unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
		unsigned space = *r->sq_entries - (tail - head);
		while (k < s->batch && k < space && done + k < s->per_thread) {
			unsigned idx = (tail + k) & *r->sq_mask;
			fill_sqe(s, &r->sqes[idx], (uint64_t)w->id * s->per_thread + done + k + 1);
			r->sq_array[idx] = idx;
			k++;
		}
		/* pairs with the kernel's acquire of the tail: the SQEs are visible first */
		__atomic_store_n(r->sq_tail, tail + k, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&s->sq_lock);
		done += k;
		/* k == 0: the SQ is full; submit whatever is there and try again */
		int ret = sys_enter(r->fd, k ? k : *r->sq_entries, 0, 0, NULL, 0);
		if (ret < 0) {
			__atomic_compare_exchange_n(&s->enter_errno, &(int){ 0 }, errno, 0,
						    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			return NULL;
		}
		__atomic_add_fetch(&s->submitted, ret, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* Reap CQEs until `want` arrived, waiting at most 30 s: each user_data once. */
static int reap_all(struct shared *s, unsigned want, unsigned *got, const char *file, int line)
{
	struct rring *r = &s->r;
	long long end = ut_now_ms() + 30000;
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
	struct io_uring_getevents_arg ga = { .ts = (uintptr_t)&ts };
	while (*got < want) {
		struct io_uring_cqe c;
		if (!rring_pop(r, &c)) {
			if (ut_now_ms() > end)
				return ut_fail(file, line, "%u of %u CQEs after 30 s", *got, want);
			sys_enter(r->fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
				  &ga, sizeof ga);
			continue;
		}
		uint64_t ud = c.user_data;
		if (ud < 1 || ud > want)
			return ut_fail(file, line, "unexpected CQE user_data %llu",
				       (unsigned long long)ud);
		if (s->seen[ud]++)
			return ut_fail(file, line, "user_data %llu completed twice",
				       (unsigned long long)ud);
		int exp = s->filefd < 0 ? 0 : 8;
		if (c.res != exp)
			return ut_fail(file, line, "user_data %llu: res %d (%s), expected %d",
				       (unsigned long long)ud, c.res, ut_resname(c.res), exp);
		(*got)++;
	}
	return UT_OK;
}

static int many_submitters(unsigned nthreads, unsigned per_thread, int with_file)
{
	GATE(IORING_OP_NOP);
	if (with_file)
		GATE(IORING_OP_READ);
	if (!(ut_features & IORING_FEAT_EXT_ARG))
		return UT_UNSUP;
	static struct shared s;
	memset(&s, 0, sizeof s);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = CQ_SIZE;
	CHECK_OK(rring_init(&s.r, 64, &p));
	pthread_mutex_init(&s.sq_lock, NULL);
	unsigned total = nthreads * per_thread;
	CHECK(total < CQ_SIZE);
	s.per_thread = per_thread;
	s.batch = 8;
	s.filefd = -1;
	s.seen = calloc(total + 1, 1);
	s.bufs = calloc(total + 1, 8);
	CHECK(s.seen && s.bufs);
	static unsigned char data[FILE_SLOTS * 8];
	if (with_file) {
		s.filefd = ut_tmpfile("data", O_RDWR, NULL);
		CHECK_OK(s.filefd);
		ut_pattern(data, sizeof data, 42);
		CHECK_EQ(write(s.filefd, data, sizeof data), sizeof data);
	}
	struct worker w[8];
	CHECK(nthreads <= 8);
	for (unsigned i = 0; i < nthreads; i++) {
		w[i].s = &s;
		w[i].id = i;
		CHECK_EQ(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
	}
	unsigned got = 0;
	int t = reap_all(&s, total, &got, __FILE__, __LINE__);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(w[i].th, NULL);
	if (s.enter_errno)
		FAIL("a thread's io_uring_enter failed: %s", ut_errname(s.enter_errno));
	/* whatever the threads left queued (none, if their enters covered it all) */
	while (*s.r.sq_head != *s.r.sq_tail) {
		int ret = sys_enter(s.r.fd, 64, 0, 0, NULL, 0);
		CHECK_OK(ret);
		s.submitted += ret;
	}
	if (t == UT_OK)
		t = reap_all(&s, total, &got, __FILE__, __LINE__);
	TRY(t);
	CHECK_EQ(s.submitted, total);
	struct io_uring_cqe c;
	ut_sleep_ms(10);
	CHECK_EQ(rring_pop(&s.r, &c), 0);
	CHECK_EQ(*s.r.cq_overflow, 0);
	if (with_file)
		for (unsigned ud = 1; ud <= total; ud++)
			if (memcmp(s.bufs[ud], data + (ud % FILE_SLOTS) * 8, 8) != 0)
				FAIL("user_data %u read the wrong bytes", ud);
	free(s.seen);
	free(s.bufs);
	if (with_file)
		close(s.filefd);
	rring_exit(&s.r);
	return UT_OK;
}

static int two_threads_nop(void)
{
	return many_submitters(2, 2000, 0);
}

static int eight_threads_nop(void)
{
	return many_submitters(8, 1000, 0);
}

static int two_threads_read(void)
{
	return many_submitters(2, 1000, 1);
}

static int eight_threads_read(void)
{
	return many_submitters(8, 500, 1);
}

/* ---- several enters racing for the same queued SQEs ------------------------ */

struct racer {
	pthread_t th;
	struct rring *r;
	pthread_barrier_t *start, *end;
	int rounds;
	long sum;
	int err;
};

static void *racer_main(void *arg)
{
	struct racer *x = arg;
	for (int i = 0; i < x->rounds; i++) {
		pthread_barrier_wait(x->start);
		int ret = sys_enter(x->r->fd, 64, 0, 0, NULL, 0);
		if (ret < 0 && !x->err)
			x->err = errno;
		else if (ret > 0)
			x->sum += ret;
		pthread_barrier_wait(x->end);
	}
	return NULL;
}

static int racing_enters(void)
{
	/*
	 * 32 NOPs queued, then 4 threads call io_uring_enter(to_submit = 64) at once: the
	 * returns add up to 32, the SQ ends empty, each NOP completes once. 50 rounds.
	 */
	GATE(IORING_OP_NOP);
	enum { NT = 4, ROUNDS = 50, N = 32 };
	struct rring r;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 256;
	CHECK_OK(rring_init(&r, 64, &p));
	pthread_barrier_t start, end;
	pthread_barrier_init(&start, NULL, NT + 1);
	pthread_barrier_init(&end, NULL, NT + 1);
	struct racer x[NT];
	for (int i = 0; i < NT; i++) {
		memset(&x[i], 0, sizeof x[i]);
		x[i].r = &r;
		x[i].start = &start;
		x[i].end = &end;
		x[i].rounds = ROUNDS;
		CHECK_EQ(pthread_create(&x[i].th, NULL, racer_main, &x[i]), 0);
	}
	int fail = 0;
	char why[200] = "";
	long before = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < N; i++) {
			struct io_uring_sqe sqe;
			memset(&sqe, 0, sizeof sqe);
			sqe.opcode = IORING_OP_NOP;
			sqe.user_data = (uint64_t)round * 1000 + i;
			rring_push(&r, &sqe);
		}
		pthread_barrier_wait(&start);
		pthread_barrier_wait(&end);
		long sum = 0;
		for (int i = 0; i < NT; i++)
			sum += x[i].sum;
		unsigned char seen[N];
		memset(seen, 0, sizeof seen);
		struct io_uring_cqe c;
		int n = 0;
		while (rring_pop(&r, &c)) {
			n++;
			uint64_t i = c.user_data - (uint64_t)round * 1000;
			if (!fail && (i >= N || seen[i]++ || c.res != 0)) {
				fail = 1;
				snprintf(why, sizeof why, "round %d: bad CQE ud %llu res %d", round,
					 (unsigned long long)c.user_data, c.res);
			}
		}
		if (!fail && (sum - before != N || n != N || *r.sq_head != *r.sq_tail)) {
			fail = 1;
			snprintf(why, sizeof why,
				 "round %d: enters returned %ld in all, %d CQEs, SQ head %u tail %u",
				 round, sum - before, n, *r.sq_head, *r.sq_tail);
		}
		before = sum;
	}
	int err = 0;
	for (int i = 0; i < NT; i++) {
		pthread_join(x[i].th, NULL);
		if (x[i].err)
			err = x[i].err;
	}
	pthread_barrier_destroy(&start);
	pthread_barrier_destroy(&end);
	rring_exit(&r);
	if (err)
		FAIL("a racing enter failed: %s", ut_errname(err));
	if (fail)
		FAIL("%s", why);
	return UT_OK;
}

/*
 * One open file shared by four threads: the file position is shared state the kernel
 * must keep consistent while a read of it sleeps (on a 9p share each read waits for the
 * server). read(2) takes the position lock (Linux's f_pos_lock, as the fd is shared), so
 * the threads read every 8-byte record exactly once between them; lseek + read and
 * io_uring READs at offset -1 race by design, so only their data is checked (each record
 * holds its own offset). Our kernel once panicked here ("spinlock taken twice").
 */
#define POS_FILE (256 << 10)
#define POS_CHUNK (16 << 10)

struct pos_thread {
	pthread_t th;
	int fd, mode; /* 0: read(2) to EOF, 1: lseek + read, 2: io_uring READ at -1 */
	unsigned id;
	unsigned char *seen;
	int err;
	long bytes;
};

static int check_records(const unsigned char *buf, long n, unsigned char *seen)
{
	for (long i = 0; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, buf + i, 8);
		if (v % 8 || v >= POS_FILE)
			return -1;
		if (seen)
			__atomic_add_fetch(&seen[v / 8], 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static void *pos_main(void *arg)
{
	struct pos_thread *t = arg;
	unsigned char *buf = malloc(POS_CHUNK);
	struct io_uring ring;
	if (!buf || (t->mode == 2 && io_uring_queue_init(4, &ring, 0) < 0)) {
		t->err = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < 64; i++) {
		long n;
		if (t->mode == 1 && lseek(t->fd, ((t->id * 7 + i) % (POS_FILE / POS_CHUNK)) * POS_CHUNK, SEEK_SET) < 0) {
			t->err = errno;
			break;
		}
		if (t->mode == 2) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			struct io_uring_cqe *cqe;
			io_uring_prep_read(sqe, t->fd, buf, POS_CHUNK, -1);
			if (io_uring_submit_and_wait(&ring, 1) < 0 || io_uring_peek_cqe(&ring, &cqe) < 0) {
				t->err = EIO;
				break;
			}
			n = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
			if (n < 0) {
				t->err = -n;
				break;
			}
		} else {
			n = read(t->fd, buf, POS_CHUNK);
			if (n < 0) {
				t->err = errno;
				break;
			}
		}
		if (n == 0)
			break;
		if (n % 8 || check_records(buf, n, t->mode == 0 ? t->seen : NULL) < 0) {
			t->err = EILSEQ;
			break;
		}
		t->bytes += n;
	}
	if (t->mode == 2)
		io_uring_queue_exit(&ring);
	free(buf);
	return NULL;
}

static int shared_position(int mode)
{
	if (mode == 2)
		GATE(IORING_OP_READ);
	static uint64_t data[POS_FILE / 8];
	for (unsigned i = 0; i < POS_FILE / 8; i++)
		data[i] = i * 8;
	int fd = ut_tmpfile("pos", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_EQ(write(fd, data, sizeof data), sizeof data);
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
	unsigned char *seen = calloc(POS_FILE / 8, 1);
	CHECK(seen);
	struct pos_thread t[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct pos_thread){ .fd = fd, .mode = mode, .id = i, .seen = seen };
		CHECK_EQ(pthread_create(&t[i].th, NULL, pos_main, &t[i]), 0);
	}
	long total = 0;
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i].th, NULL);
		if (t[i].err)
			FAIL("thread %u: %s", i, ut_errname(t[i].err));
		total += t[i].bytes;
	}
	close(fd);
	if (mode == 0) {
		CHECK_EQ(total, POS_FILE);
		for (unsigned i = 0; i < POS_FILE / 8; i++)
			if (seen[i] != 1)
				FAIL("record %u read %u times", i, seen[i]);
	}
	free(seen);
	return UT_OK;
}

static int shared_position_read(void)
{
	return shared_position(0);
}

static int shared_position_lseek(void)
{
	return shared_position(1);
}

static int shared_position_uring(void)
{
	return shared_position(2);
}

static int iowq_limits(void)
{
	/*
	 * IORING_REGISTER_IOWQ_MAX_WORKERS acts on the caller's io-wq: [0, 0] reads the
	 * limits (bounded, unbounded), a non-zero entry sets one, and the answer is always
	 * the limits before the call. IOWQ_AFF takes a CPU mask (CPU 0 exists everywhere).
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	unsigned v[2] = { 0, 0 };
	int ret = sys_register(r.ring_fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2);
	if (ret < 0 && errno == EINVAL) {
		io_uring_queue_exit(&r);
		return UT_UNSUP; /* before 5.15 */
	}
	CHECK_OK(ret);
	CHECK(v[0] > 0 && v[1] > 0);
	v[0] = 2, v[1] = 3;
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2));
	v[0] = 0, v[1] = 5;
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2));
	CHECK_EQ(v[0], 2);
	CHECK_EQ(v[1], 3);
	v[0] = 0, v[1] = 0;
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 2));
	CHECK_EQ(v[0], 2);
	CHECK_EQ(v[1], 5);
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_MAX_WORKERS, v, 1), EINVAL);
	unsigned char mask = 1;
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_AFF, &mask, 1));
	CHECK_OK(sys_register(r.ring_fd, IORING_UNREGISTER_IOWQ_AFF, NULL, 0));
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_IOWQ_AFF, &mask, 0), EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(threads, T(two_threads_nop), T(eight_threads_nop), T(two_threads_read),
	  T(eight_threads_read), T(racing_enters), T(shared_position_read), T(shared_position_lseek),
	  T(shared_position_uring), T(iowq_limits));
