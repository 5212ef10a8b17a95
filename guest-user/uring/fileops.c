/*
 * Operations on a file's size, space and dirty pages: IORING_OP_FALLOCATE,
 * IORING_OP_FTRUNCATE, IORING_OP_SYNC_FILE_RANGE, and ranged IORING_OP_FSYNC.
 */
#include "ut.h"

#include <fcntl.h>
#include <sys/stat.h>

/* Linux 6.9 added IORING_OP_FTRUNCATE; liburing 2.3's header stops before it. */
#define OP_FTRUNCATE 55

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef SYNC_FILE_RANGE_WAIT_BEFORE
#define SYNC_FILE_RANGE_WAIT_BEFORE 1
#define SYNC_FILE_RANGE_WRITE 2
#define SYNC_FILE_RANGE_WAIT_AFTER 4
#endif

/* Submit `sqe` (already queued) and return its res; a stray user_data is reported. */
static int run(struct io_uring *r, struct io_uring_sqe *sqe)
{
	sqe->user_data = 0xf0;
	uint64_t ud = 0;
	int res = ut_run1_ms(r, &ud, 5000);
	if (res > -10000 && ud != 0xf0)
		return -9999;
	return res;
}

static struct io_uring_sqe *q_falloc(struct io_uring *r, int fd, int mode, uint64_t off,
				     uint64_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)len);
	return sqe;
}

static struct io_uring_sqe *q_ftrunc(struct io_uring *r, int fd, uint64_t len)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_rw(OP_FTRUNCATE, sqe, fd, NULL, 0, len);
	return sqe;
}

static struct io_uring_sqe *q_sfr(struct io_uring *r, int fd, uint64_t off, unsigned len,
				  unsigned flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_sync_file_range(sqe, fd, len, off, (int)flags);
	return sqe;
}

static long long fsize(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	return st.st_size;
}

static int all_zero(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* A read-only descriptor of a fresh file holding `n` pattern bytes. */
static int ro_file(size_t n)
{
	char path[256];
	unsigned char buf[4096];
	int fd = ut_tmpfile("ro", O_RDWR, path);
	if (fd < 0)
		return fd;
	ut_pattern(buf, sizeof buf, 3);
	if (write(fd, buf, n < sizeof buf ? n : sizeof buf) < 0)
		return -errno;
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* ---- FALLOCATE ------------------------------------------------------------- */

/* A ring of 4 and an empty file "f", read-write. */
static int ring_file(struct io_uring *r, int *fd)
{
	CHECK_OK(ut_ring(r, 4));
	*fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(*fd);
	return UT_OK;
}

static int fallocate_extends(void)
{
	/* mode 0 allocates and extends the size; the new bytes read as zeroes */
	GATE(IORING_OP_FALLOCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	CHECK_EQ(write(fd, "head", 4), 4);
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 0, 8192)), 0);
	CHECK_EQ(fsize(fd), 8192);
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 4096, 100000)), 0);
	CHECK_EQ(fsize(fd), 104096);
	/* a range inside the file changes nothing visible */
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 0, 10)), 0);
	CHECK_EQ(fsize(fd), 104096);
	static unsigned char b[104096];
	CHECK_EQ(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
	CHECK(memcmp(b, "head", 4) == 0);
	CHECK(all_zero(b + 4, sizeof b - 4));
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fallocate_keep_size(void)
{
	/* FALLOC_FL_KEEP_SIZE: space beyond EOF, size unchanged */
	GATE(IORING_OP_FALLOCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	CHECK_EQ(write(fd, "0123456789", 10), 10);
	struct stat st0, st1;
	CHECK_OK(fstat(fd, &st0));
	CHECK_RES(run(&r, q_falloc(&r, fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20)), 0);
	CHECK_OK(fstat(fd, &st1));
	ut_info("st_blocks %lld -> %lld", (long long)st0.st_blocks, (long long)st1.st_blocks);
	CHECK_EQ(st1.st_size, 10);
	char b[16];
	CHECK_EQ(pread(fd, b, sizeof b, 0), 10);
	CHECK(memcmp(b, "0123456789", 10) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int punch_hole(void)
{
	/*
	 * PUNCH_HOLE|KEEP_SIZE zeroes the range and keeps the size and the bytes around it;
	 * PUNCH_HOLE without KEEP_SIZE is -EOPNOTSUPP (vfs_fallocate's rule).
	 */
	GATE(IORING_OP_FALLOCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char want[3 * 4096], got[3 * 4096];
	ut_pattern(want, sizeof want, 7);
	CHECK_EQ(write(fd, want, sizeof want), (ssize_t)sizeof want);
	CHECK_RES(run(&r, q_falloc(&r, fd, FALLOC_FL_PUNCH_HOLE, 4096, 4096)), -EOPNOTSUPP);
	CHECK_EQ(pread(fd, got, sizeof got, 0), (ssize_t)sizeof got);
	CHECK(memcmp(got, want, sizeof want) == 0);
	CHECK_RES(run(&r, q_falloc(&r, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096,
				   4096)),
		  0);
	CHECK_EQ(fsize(fd), (long long)sizeof want);
	CHECK_EQ(pread(fd, got, sizeof got, 0), (ssize_t)sizeof got);
	CHECK(memcmp(got, want, 4096) == 0);
	CHECK(all_zero(got + 4096, 4096));
	CHECK(memcmp(got + 8192, want + 8192, 4096) == 0);
	/* an unaligned hole: partial blocks are zeroed too */
	CHECK_RES(run(&r, q_falloc(&r, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100,
				   50)),
		  0);
	CHECK_EQ(pread(fd, got, 4096, 0), 4096);
	CHECK(memcmp(got, want, 100) == 0);
	CHECK(all_zero(got + 100, 50));
	CHECK(memcmp(got + 150, want + 150, 4096 - 150) == 0);
	/* a hole past EOF changes nothing */
	CHECK_RES(run(&r, q_falloc(&r, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   1 << 20, 4096)),
		  0);
	CHECK_EQ(fsize(fd), (long long)sizeof want);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fallocate_errors(void)
{
	GATE(IORING_OP_FALLOCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	/* a mode bit Linux does not know: -EOPNOTSUPP, not -EINVAL */
	CHECK_RES(run(&r, q_falloc(&r, fd, 0x40000000, 0, 4096)), -EOPNOTSUPP);
	/* len 0, a negative offset or length */
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 0, 0)), -EINVAL);
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, (uint64_t)-4096, 4096)), -EINVAL);
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 0, (uint64_t)-1)), -EINVAL);
	/* offset + len past the largest file size: -EFBIG */
	CHECK_RES(run(&r, q_falloc(&r, fd, 0, 0x7ffffffffffff000ull, 0x2000)), -EFBIG);
	CHECK_EQ(fsize(fd), 0);
	/* reserved SQE fields */
	struct io_uring_sqe *sqe = q_falloc(&r, fd, 0, 0, 4096);
	sqe->buf_index = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = q_falloc(&r, fd, 0, 0, 4096);
	sqe->rw_flags = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = q_falloc(&r, fd, 0, 0, 4096);
	sqe->splice_fd_in = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	CHECK_EQ(fsize(fd), 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fallocate_bad_files(void)
{
	/*
	 * Linux checks the descriptor's write mode before the file's type: a pipe's write
	 * end is -ESPIPE but its read end -EBADF; a read-only file or an O_RDONLY directory
	 * -EBADF.
	 */
	GATE(IORING_OP_FALLOCATE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(run(&r, q_falloc(&r, p[1], 0, 0, 4096)), -ESPIPE);
	CHECK_RES(run(&r, q_falloc(&r, p[0], 0, 0, 4096)), -EBADF);
	int ro = ro_file(10);
	CHECK_OK(ro);
	CHECK_RES(run(&r, q_falloc(&r, ro, 0, 0, 4096)), -EBADF);
	CHECK_EQ(fsize(ro), 10);
	int dir = open(ut_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_OK(dir);
	CHECK_RES(run(&r, q_falloc(&r, dir, 0, 0, 4096)), -EBADF);
	CHECK_RES(run(&r, q_falloc(&r, 1000, 0, 0, 4096)), -EBADF);
	close(dir);
	close(ro);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- FTRUNCATE ------------------------------------------------------------- */

static int ftruncate_grow_shrink(void)
{
	GATE(OP_FTRUNCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	CHECK_EQ(write(fd, "abcdef", 6), 6);
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 10000)), 0);
	CHECK_EQ(fsize(fd), 10000);
	static unsigned char b[10000];
	CHECK_EQ(pread(fd, b, sizeof b, 0), 10000);
	CHECK(memcmp(b, "abcdef", 6) == 0);
	CHECK(all_zero(b + 6, sizeof b - 6));
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 3)), 0);
	CHECK_EQ(fsize(fd), 3);
	CHECK_EQ(pread(fd, b, sizeof b, 0), 3);
	CHECK(memcmp(b, "abc", 3) == 0);
	/* the same size again, then 0 */
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 3)), 0);
	CHECK_EQ(fsize(fd), 3);
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 0)), 0);
	CHECK_EQ(fsize(fd), 0);
	/* shrinking then growing again brings zeroes back, not the old bytes */
	CHECK_EQ(pwrite(fd, "xyz", 3, 0), 3);
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 1)), 0);
	CHECK_RES(run(&r, q_ftrunc(&r, fd, 3)), 0);
	CHECK_EQ(pread(fd, b, 3, 0), 3);
	CHECK(b[0] == 'x' && b[1] == 0 && b[2] == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int ftruncate_errors(void)
{
	/*
	 * Like ftruncate(2): a read-only descriptor or a pipe is -EINVAL, a negative length
	 * -EINVAL, a bad descriptor -EBADF; non-zero reserved SQE fields -EINVAL.
	 */
	GATE(OP_FTRUNCATE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	CHECK_EQ(write(fd, "abcdef", 6), 6);
	CHECK_RES(run(&r, q_ftrunc(&r, fd, (uint64_t)-1)), -EINVAL);
	CHECK_EQ(fsize(fd), 6);
	int ro = ro_file(10);
	CHECK_OK(ro);
	CHECK_RES(run(&r, q_ftrunc(&r, ro, 2)), -EINVAL);
	CHECK_EQ(fsize(ro), 10);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(run(&r, q_ftrunc(&r, p[1], 0)), -EINVAL);
	CHECK_RES(run(&r, q_ftrunc(&r, 1000, 0)), -EBADF);
	struct io_uring_sqe *sqe = q_ftrunc(&r, fd, 1);
	sqe->len = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = q_ftrunc(&r, fd, 1);
	sqe->addr = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = q_ftrunc(&r, fd, 1);
	sqe->rw_flags = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = q_ftrunc(&r, fd, 1);
	sqe->addr3 = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	CHECK_EQ(fsize(fd), 6);
	close(p[0]);
	close(p[1]);
	close(ro);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- SYNC_FILE_RANGE --------------------------------------------------------- */

static int sync_file_range_ok(void)
{
	GATE(IORING_OP_SYNC_FILE_RANGE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char b[8192];
	ut_pattern(b, sizeof b, 1);
	CHECK_EQ(write(fd, b, sizeof b), (ssize_t)sizeof b);
	CHECK_RES(run(&r, q_sfr(&r, fd, 0, 0, 0)), 0);
	CHECK_RES(run(&r, q_sfr(&r, fd, 0, 8192,
				SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
					SYNC_FILE_RANGE_WAIT_AFTER)),
		  0);
	CHECK_RES(run(&r, q_sfr(&r, fd, 4096, 0, SYNC_FILE_RANGE_WRITE)), 0);
	/* past EOF, and on a read-only descriptor: fine too */
	CHECK_RES(run(&r, q_sfr(&r, fd, 1 << 30, 4096, SYNC_FILE_RANGE_WRITE)), 0);
	int ro = ro_file(10);
	CHECK_OK(ro);
	CHECK_RES(run(&r, q_sfr(&r, ro, 0, 0, SYNC_FILE_RANGE_WRITE)), 0);
	close(ro);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sync_file_range_errors(void)
{
	GATE(IORING_OP_SYNC_FILE_RANGE);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	CHECK_RES(run(&r, q_sfr(&r, fd, 0, 0, 8)), -EINVAL);
	CHECK_RES(run(&r, q_sfr(&r, fd, 0, 0, 0x80000000u)), -EINVAL);
	/* a negative offset */
	CHECK_RES(run(&r, q_sfr(&r, fd, (uint64_t)-4096, 0, 0)), -EINVAL);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_RES(run(&r, q_sfr(&r, p[0], 0, 0, 0)), -ESPIPE);
	CHECK_RES(run(&r, q_sfr(&r, p[1], 0, 0, SYNC_FILE_RANGE_WRITE)), -ESPIPE);
	CHECK_RES(run(&r, q_sfr(&r, 1000, 0, 0, 0)), -EBADF);
	/* reserved SQE field: addr */
	struct io_uring_sqe *sqe = q_sfr(&r, fd, 0, 0, 0);
	sqe->addr = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	close(p[0]);
	close(p[1]);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* ---- FSYNC with a range ------------------------------------------------------- */

static int fsync_range(void)
{
	/*
	 * FSYNC's off/len name a range (len 0: to the end); with IORING_FSYNC_DATASYNC too.
	 * Reserved fields (buf_index, splice_fd_in) must be 0.
	 */
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	int fd;
	TRY(ring_file(&r, &fd));
	static unsigned char b[3 * 4096];
	ut_pattern(b, sizeof b, 2);
	CHECK_EQ(write(fd, b, sizeof b), (ssize_t)sizeof b);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	sqe->off = 4096;
	sqe->len = 4096;
	CHECK_RES(run(&r, sqe), 0);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, 0);
	sqe->off = 8192;
	sqe->len = 0;
	CHECK_RES(run(&r, sqe), 0);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	sqe->off = 1ull << 40;
	sqe->len = 0xffffffffu;
	CHECK_RES(run(&r, sqe), 0);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	sqe->buf_index = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, 0);
	sqe->splice_fd_in = 1;
	CHECK_RES(run(&r, sqe), -EINVAL);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int chain_write_fallocate_truncate(void)
{
	/* WRITE -> FALLOCATE(KEEP_SIZE) -> SYNC_FILE_RANGE -> FTRUNCATE -> FSYNC, in order */
	GATE(IORING_OP_WRITE);
	GATE(IORING_OP_FALLOCATE);
	GATE(IORING_OP_SYNC_FILE_RANGE);
	GATE(OP_FTRUNCATE);
	GATE(IORING_OP_FSYNC);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_write(sqe, fd, "0123456789", 10, 0);
	sqe->flags = IOSQE_IO_LINK;
	sqe->user_data = 1;
	sqe = q_falloc(&r, fd, FALLOC_FL_KEEP_SIZE, 0, 65536);
	sqe->flags = IOSQE_IO_LINK;
	sqe->user_data = 2;
	sqe = q_sfr(&r, fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	sqe->flags = IOSQE_IO_LINK;
	sqe->user_data = 3;
	sqe = q_ftrunc(&r, fd, 4);
	sqe->flags = IOSQE_IO_LINK;
	sqe->user_data = 4;
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_fsync(sqe, fd, 0);
	sqe->user_data = 5;
	CHECK_EQ(io_uring_submit(&r), 5);
	for (int i = 1; i <= 5; i++) {
		struct io_uring_cqe c;
		CHECK_OK(ut_wait_cqe_ms(&r, &c, 5000));
		CHECK_EQ(c.user_data, i);
		CHECK_RES(c.res, i == 1 ? 10 : 0);
	}
	CHECK_EQ(fsize(fd), 4);
	char b[8];
	CHECK_EQ(pread(fd, b, sizeof b, 0), 4);
	CHECK(memcmp(b, "0123", 4) == 0);
	close(fd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(fileops, T(fallocate_extends), T(fallocate_keep_size), T(punch_hole),
	  T(fallocate_errors), T(fallocate_bad_files), T(ftruncate_grow_shrink),
	  T(ftruncate_errors), T(sync_file_range_ok), T(sync_file_range_errors),
	  T(fsync_range), T(chain_write_fallocate_truncate));
