/* IORING_OP_FADVISE on a file and IORING_OP_MADVISE on an anonymous mapping. */
#include "ut.h"

#include <fcntl.h>
#include <sys/mman.h>

/* Submit the one queued SQE and return its CQE's res (-9999: wrong user_data). */
static int run(struct io_uring *r, struct io_uring_sqe *sqe)
{
	sqe->user_data = 0xad;
	uint64_t ud = 0;
	int res = ut_run1(r, &ud);
	if (res > -10000 && ud != 0xad)
		return -9999;
	return res;
}

static int fadv(struct io_uring *r, int fd, uint64_t off, unsigned len, int advice)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_fadvise(sqe, fd, off, len, advice);
	return run(r, sqe);
}

static int madv(struct io_uring *r, void *addr, unsigned len, int advice)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_madvise(sqe, addr, len, advice);
	return run(r, sqe);
}

static int fadvise_file(void)
{
	GATE(IORING_OP_FADVISE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	static char data[16384], back[16384];
	ut_pattern(data, sizeof data, 3);
	CHECK_EQ(pwrite(fd, data, sizeof data, 0), sizeof data);
	CHECK_RES(fadv(&r, fd, 0, 4096, POSIX_FADV_NORMAL), 0);
	CHECK_RES(fadv(&r, fd, 0, 0, POSIX_FADV_SEQUENTIAL), 0);
	CHECK_RES(fadv(&r, fd, 4096, 8192, POSIX_FADV_RANDOM), 0);
	CHECK_RES(fadv(&r, fd, 0, sizeof data, POSIX_FADV_WILLNEED), 0);
	CHECK_RES(fadv(&r, fd, 0, 0, POSIX_FADV_DONTNEED), 0);
	/* past the end of the file is fine too */
	CHECK_RES(fadv(&r, fd, 1 << 20, 4096, POSIX_FADV_WILLNEED), 0);
	/* advice never changes the data */
	CHECK_EQ(pread(fd, back, sizeof back, 0), sizeof back);
	CHECK(memcmp(back, data, sizeof data) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fadvise_errors(void)
{
	GATE(IORING_OP_FADVISE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	CHECK_RES(fadv(&r, fd, 0, 4096, 99), -EINVAL);
	CHECK_RES(fadv(&r, fd, 0, 4096, -1), -EINVAL);
	close(fd);
	CHECK_RES(fadv(&r, fd, 0, 4096, POSIX_FADV_NORMAL), -EBADF);
	CHECK_RES(fadv(&r, 1000, 0, 4096, POSIX_FADV_WILLNEED), -EBADF);
	/* a pipe has no page cache to advise: -ESPIPE */
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(fadv(&r, p[0], 0, 0, POSIX_FADV_NORMAL), -ESPIPE);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int madvise_anon(void)
{
	GATE(IORING_OP_MADVISE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	long pg = sysconf(_SC_PAGESIZE);
	size_t len = 4 * (size_t)pg;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	CHECK(m != MAP_FAILED);
	memset(m, 0xab, len);
	CHECK_RES(madv(&r, m, len, MADV_NORMAL), 0);
	CHECK_RES(madv(&r, m, len, MADV_WILLNEED), 0);
	CHECK_EQ(m[0], 0xab);
	CHECK_EQ(m[len - 1], 0xab);
	/* DONTNEED the middle two pages: they read back as zeros, the others keep data */
	CHECK_RES(madv(&r, m + pg, 2 * pg, MADV_DONTNEED), 0);
	for (size_t i = pg; i < 3 * (size_t)pg; i++)
		if (m[i] != 0)
			FAIL("byte %zu after MADV_DONTNEED is 0x%x, expected 0", i, m[i]);
	CHECK_EQ(m[pg - 1], 0xab);
	CHECK_EQ(m[3 * pg], 0xab);
	/* the zeroed pages are usable again */
	m[pg] = 7;
	CHECK_EQ(m[pg], 7);
	CHECK_OK(munmap(m, len));
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int madvise_errors(void)
{
	GATE(IORING_OP_MADVISE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	m[0] = 1;
	CHECK_RES(madv(&r, m + 1, pg, MADV_DONTNEED), -EINVAL);
	CHECK_RES(madv(&r, m + 1, pg, MADV_NORMAL), -EINVAL);
	CHECK_EQ(m[0], 1); /* the failed DONTNEED did nothing */
	CHECK_RES(madv(&r, m, pg, 12345), -EINVAL);
	/* a range that runs into unmapped memory: -ENOMEM */
	CHECK_OK(munmap(m + pg, pg));
	CHECK_RES(madv(&r, m, 2 * pg, MADV_WILLNEED), -ENOMEM);
	CHECK_OK(munmap(m, pg));
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(advise, T(fadvise_file), T(fadvise_errors), T(madvise_anon), T(madvise_errors));
