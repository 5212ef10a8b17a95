/*
 * Buffered reads through the page cache, as Linux serves them to io_uring: a read of
 * cached pages completes inside the submit; one that misses starts the read and
 * completes later, with RWF_NOWAIT it is -EAGAIN instead; many misses at once all get
 * their bytes, after the submit returned (nothing is copied in it); reads stop at the end
 * of the file.
 *
 * posix_fadvise(POSIX_FADV_DONTNEED) empties the cache first. On a file system that keeps
 * every page in memory (statfs says TMPFS_MAGIC or RAMFS_MAGIC: the guest's RAM /tmp)
 * nothing can miss, and the test that needs a miss reports itself unsupported; the
 * guest runs it on a 9p share instead.
 */
#include "ut.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#define KIB 1024
#define TMPFS_MAGIC 0x01021994
#define RAMFS_MAGIC 0x858458f6

/* Whether the test directory's file system keeps all file pages in memory. */
static int in_memory(void)
{
	struct statfs sf;
	if (statfs(ut_dir, &sf) != 0)
		return 0;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

/* A test that needs reads to miss the cache is unsupported where none can. */
#define NEED_MISSES()                                                        \
	do {                                                                 \
		if (in_memory()) {                                           \
			ut_unsup_reason = "every page in memory, none can miss"; \
			return UT_UNSUP;                                     \
		}                                                            \
	} while (0)

/* Whether any page of the first `n` bytes of `fd` is in memory (mincore). */
static int any_resident(int fd, size_t n)
{
	void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	size_t pages = (n + 4095) / 4096;
	unsigned char *vec = malloc(pages);
	int any = vec == NULL || mincore(m, n, vec) != 0;
	for (size_t i = 0; !any && i < pages; i++)
		any = vec[i] & 1;
	free(vec);
	munmap(m, n);
	return any;
}

/* A file of `n` pattern bytes (seed 7) in `data`, on the device and out of the cache.
 * DONTNEED may leave a page a moment (a host's per-CPU page lists): it is asked again
 * until mincore finds none. */
static int cold_file(char *data, size_t n)
{
	int fd = ut_data_file(data, n, 7);
	if (fd < 0 || in_memory())
		return fd; /* (in memory: nothing can be dropped) */
	for (int tries = 0;; tries++) {
		if (fsync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0 || tries == 50) {
			close(fd);
			return -EIO;
		}
		if (!any_resident(fd, n))
			return fd;
		usleep(10000);
	}
}

static void q_read(struct io_uring *r, int fd, void *buf, unsigned len, uint64_t off,
		   int rwf, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_read(sqe, fd, buf, len, off);
	sqe->rw_flags = rwf;
	sqe->user_data = ud;
}

/* Queues n reads of len bytes into bufs + i * len from offs[i], user_data 100 + i. */
static void queue_reads(struct io_uring *r, int fd, int n, char *bufs, unsigned len, const uint64_t *offs)
{
	for (int i = 0; i < n; i++)
		q_read(r, fd, bufs + (size_t)i * len, len, offs[i], 0, 100 + i);
}

/* Reaps the n reads `queue_reads` queued: each brought its len bytes of data. */
static int reap_reads(struct io_uring *r, int n, const char *bufs, unsigned len, const char *data, const uint64_t *offs)
{
	for (int k = 0; k < n; k++) {
		struct io_uring_cqe *cqe;
		CHECK_OK(io_uring_wait_cqe(r, &cqe));
		int i = (int)cqe->user_data - 100;
		CHECK(i >= 0 && i < n);
		CHECK_RES(cqe->res, (int)len);
		io_uring_cqe_seen(r, cqe);
		if (memcmp(bufs + (size_t)i * len, data + offs[i], len) != 0)
			FAIL("read %d at %llu: wrong bytes", i, (unsigned long long)offs[i]);
	}
	return UT_OK;
}

static int cached_read_completes_in_submit(void)
{
	GATE(IORING_OP_READ);
	static char data[64 * KIB], buf[64 * KIB];
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_data_file(data, sizeof data, 7);
	CHECK_OK(fd);
	CHECK_EQ(pread(fd, buf, sizeof buf, 0), sizeof buf); /* now cached */
	memset(buf, 0, sizeof buf);
	q_read(&r, fd, buf, sizeof buf, 0, 0, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	/* No wait: the CQE is there when the submit returns. */
	struct io_uring_cqe *cqe;
	CHECK_EQ(io_uring_peek_cqe(&r, &cqe), 0);
	CHECK_RES(cqe->res, sizeof buf);
	io_uring_cqe_seen(&r, cqe);
	CHECK(memcmp(buf, data, sizeof buf) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int miss_with_nowait_is_eagain_then_read_fills_cache(void)
{
	GATE(IORING_OP_READ);
	NEED_MISSES();
	static char data[1024 * KIB], buf[16 * KIB];
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = cold_file(data, sizeof data);
	CHECK_OK(fd);
	struct io_uring_cqe cqe;
	q_read(&r, fd, buf, sizeof buf, 256 * KIB, RWF_NOWAIT, 1);
	/* RWF_NOWAIT never waits for the disk: -EAGAIN. Linux (6.18) also starts reading the
	 * missing pages before it answers, and when that read has already finished (a fast
	 * host disk) the data is there and comes back: one kernel, two timings. Either way
	 * the answer is all or nothing, and right. */
	int res = ut_submit1_ud(&r, 1, &cqe);
	if (res != -EAGAIN) {
		CHECK_RES(res, sizeof buf);
		CHECK(memcmp(buf, data + 256 * KIB, sizeof buf) == 0);
	}
	memset(buf, 0, sizeof buf);
	q_read(&r, fd, buf, sizeof buf, 256 * KIB, 0, 2);
	CHECK_RES(ut_submit1_ud(&r, 2, &cqe), sizeof buf);
	CHECK(memcmp(buf, data + 256 * KIB, sizeof buf) == 0);
	/* Cached now: RWF_NOWAIT gets what the read brought in. */
	memset(buf, 0, sizeof buf);
	q_read(&r, fd, buf, sizeof buf - 100, 256 * KIB + 100, RWF_NOWAIT, 3);
	CHECK_RES(ut_submit1_ud(&r, 3, &cqe), sizeof buf - 100);
	CHECK(memcmp(buf, data + 256 * KIB + 100, sizeof buf - 100) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int many_misses_complete_with_their_data(void)
{
	GATE(IORING_OP_READ);
	enum { N = 32, LEN = 8 * KIB + 3 };
	static char data[4096 * KIB], bufs[N][LEN];
	struct io_uring r;
	CHECK_OK(ut_ring(&r, N));
	int fd = cold_file(data, sizeof data);
	CHECK_OK(fd);
	/* Scattered, some sharing pages, some past the readahead of others. */
	uint64_t offs[N];
	for (int i = 0; i < N; i++)
		offs[i] = (uint64_t)(i * 37 % N) * 128 * KIB + (i % 3) * 1000;
	queue_reads(&r, fd, N, &bufs[0][0], LEN, offs);
	CHECK_EQ(io_uring_submit(&r), N);
	TRY(reap_reads(&r, N, &bufs[0][0], LEN, data, offs));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int misses_complete_after_the_submit_returns(void)
{
	GATE(IORING_OP_READ);
	NEED_MISSES();
	enum { N = 8, LEN = 4 * KIB };
	static char data[1024 * KIB], bufs[N][LEN];
	struct io_uring r;
	/* DEFER_TASKRUN: a read retried when its page arrives completes only in a wait. */
	int ret = io_uring_queue_init(N, &r, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (ret == -EINVAL) {
		ut_unsup_reason = "no DEFER_TASKRUN (Linux before 6.1)";
		return UT_UNSUP;
	}
	CHECK_OK(ret);
	int fd = cold_file(data, sizeof data);
	CHECK_OK(fd);
	memset(bufs, 0xee, sizeof bufs);
	uint64_t offs[N];
	for (int i = 0; i < N; i++)
		offs[i] = (uint64_t)i * 128 * KIB;
	queue_reads(&r, fd, N, &bufs[0][0], LEN, offs);
	CHECK_EQ(io_uring_submit(&r), N);
	/* The pages are on their way: nothing completed, nothing copied yet. */
	CHECK_EQ(io_uring_cq_ready(&r), 0);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < LEN; k++)
			if ((unsigned char)bufs[i][k] != 0xee)
				FAIL("read %d: bytes copied before the submit returned", i);
	TRY(reap_reads(&r, N, &bufs[0][0], LEN, data, offs));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int readv_across_pages_after_willneed(void)
{
	GATE(IORING_OP_READV);
	static char data[256 * KIB], a[5000], b[3], c[9000];
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = cold_file(data, sizeof data);
	CHECK_OK(fd);
	CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED), 0);
	struct iovec iov[3] = { { a, sizeof a }, { b, sizeof b }, { c, sizeof c } };
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_readv(sqe, fd, iov, 3, 4000);
	struct io_uring_cqe cqe;
	CHECK_RES(ut_run_sqe(&r, sqe, 9, &cqe), sizeof a + sizeof b + sizeof c);
	CHECK(memcmp(a, data + 4000, sizeof a) == 0);
	CHECK(memcmp(b, data + 9000, sizeof b) == 0);
	CHECK(memcmp(c, data + 9003, sizeof c) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int reads_stop_at_the_end_of_the_file(void)
{
	GATE(IORING_OP_READ);
	static char data[10000], buf[8192];
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = cold_file(data, sizeof data);
	CHECK_OK(fd);
	struct io_uring_cqe cqe;
	q_read(&r, fd, buf, sizeof buf, 8192, 0, 1);
	CHECK_RES(ut_submit1_ud(&r, 1, &cqe), 10000 - 8192);
	CHECK(memcmp(buf, data + 8192, 10000 - 8192) == 0);
	q_read(&r, fd, buf, sizeof buf, 10000, 0, 2);
	CHECK_RES(ut_submit1_ud(&r, 2, &cqe), 0);
	q_read(&r, fd, buf, sizeof buf, 1 << 20, 0, 3);
	CHECK_RES(ut_submit1_ud(&r, 3, &cqe), 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(buffered, T(cached_read_completes_in_submit), T(miss_with_nowait_is_eagain_then_read_fills_cache),
	  T(many_misses_complete_with_their_data), T(misses_complete_after_the_submit_returns),
	  T(readv_across_pages_after_willneed),
	  T(reads_stop_at_the_end_of_the_file));
