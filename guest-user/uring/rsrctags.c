/*
 * Resource tables with empty slots and tags (Linux 5.13+): REGISTER_FILES2 and
 * REGISTER_BUFFERS2 (struct io_uring_rsrc_register, IORING_RSRC_REGISTER_SPARSE),
 * REGISTER_FILES_UPDATE2 and REGISTER_BUFFERS_UPDATE (struct io_uring_rsrc_update2).
 * A tagged slot posts a CQE {user_data = tag, res = 0} once its resource has left the
 * slot (update, unregister) and no request still uses it. Also
 * REGISTER_FILE_ALLOC_RANGE (where IORING_FILE_INDEX_ALLOC looks, 6.0) and
 * REGISTER_CLONE_BUFFERS (another ring's buffers, sharing their memory, 6.12).
 */
#include "ut.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>

#define REG_CLONE_BUFFERS 30
#define CLONE_SRC_REGISTERED (1U << 0)
#define CLONE_DST_REPLACE (1U << 1)

struct clone_buffers {
	uint32_t src_fd, flags, src_off, dst_off, nr, pad[3];
};

static int reg2(struct io_uring *r, unsigned op, unsigned nr, unsigned flags, const void *data,
		const uint64_t *tags)
{
	struct io_uring_rsrc_register rr;
	memset(&rr, 0, sizeof rr);
	rr.nr = nr;
	rr.flags = flags;
	rr.data = (uintptr_t)data;
	rr.tags = (uintptr_t)tags;
	return sys_register(r->ring_fd, op, &rr, sizeof rr);
}

static int update2(struct io_uring *r, unsigned op, unsigned off, unsigned nr, const void *data,
		   const uint64_t *tags)
{
	struct io_uring_rsrc_update2 up;
	memset(&up, 0, sizeof up);
	up.offset = off;
	up.nr = nr;
	up.data = (uintptr_t)data;
	up.tags = (uintptr_t)tags;
	return sys_register(r->ring_fd, op, &up, sizeof up);
}

/* READ 8 bytes at 0 from fixed slot `slot`: its res. */
static int read_slot(struct io_uring *r, int slot)
{
	char b[8];
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_read(sqe, slot, b, 8, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x5107;
	return ut_run_ud(r, 0x5107);
}

/* The next CQE must be a tag's: user_data `tag`, res 0, flags 0. */
static int tag_cqe(struct io_uring *r, uint64_t tag)
{
	struct io_uring_cqe c;
	int ret = ut_wait_cqe_ms(r, &c, 1000);
	if (ret)
		FAIL("no CQE for tag %#llx: %s", (unsigned long long)tag, ut_resname(ret));
	if (c.user_data != tag || c.res != 0 || c.flags != 0)
		FAIL("CQE user_data %#llx res %d flags %#x, expected tag %#llx", (unsigned long long)c.user_data,
		     c.res, c.flags, (unsigned long long)tag);
	return UT_OK;
}

static int files_sparse(void)
{
	/*
	 * FILES2 with IORING_RSRC_REGISTER_SPARSE: nr empty slots (reads EBADF) that
	 * updates fill. SPARSE with data, a reserved field, unknown flags, nr 0 or a size
	 * other than the struct's: EINVAL. REGISTER_FILES refuses -2 (EBADF): only updates
	 * know FILES_SKIP.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "sparse!!", 8, 0), 8);
	CHECK_ERR(reg2(&r, IORING_REGISTER_FILES2, 4, IORING_RSRC_REGISTER_SPARSE, &f, NULL), EINVAL);
	CHECK_ERR(reg2(&r, IORING_REGISTER_FILES2, 4, 2, NULL, NULL), EINVAL);
	CHECK_ERR(reg2(&r, IORING_REGISTER_FILES2, 0, IORING_RSRC_REGISTER_SPARSE, NULL, NULL), EINVAL);
	struct io_uring_rsrc_register rr;
	memset(&rr, 0, sizeof rr);
	rr.nr = 4;
	rr.flags = IORING_RSRC_REGISTER_SPARSE;
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILES2, &rr, 16), EINVAL);
	rr.resv2 = 1;
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILES2, &rr, sizeof rr), EINVAL);
	int skip[2] = { f, IORING_REGISTER_FILES_SKIP };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILES, skip, 2), EBADF);
	CHECK_OK(reg2(&r, IORING_REGISTER_FILES2, 4, IORING_RSRC_REGISTER_SPARSE, NULL, NULL));
	CHECK_ERR(reg2(&r, IORING_REGISTER_FILES2, 4, IORING_RSRC_REGISTER_SPARSE, NULL, NULL), EBUSY);
	for (int s = 0; s < 4; s++)
		CHECK_RES(read_slot(&r, s), -EBADF);
	CHECK_EQ(update2(&r, IORING_REGISTER_FILES_UPDATE2, 3, 1, &f, NULL), 1);
	CHECK_RES(read_slot(&r, 3), 8);
	CHECK_RES(read_slot(&r, 0), -EBADF);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int files_tags(void)
{
	/*
	 * A tagged file slot posts its tag when the file leaves it: replaced or emptied
	 * by an update, or unregistered; untagged slots post nothing. A tag on an empty
	 * slot (-1 at registration, -1 or FILES_SKIP in an update) is EINVAL, and a failed
	 * registration keeps nothing and posts nothing.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	int fds[3] = { f, -1, f };
	uint64_t bad_tags[3] = { 0x11, 0x12, 0 };
	CHECK_ERR(reg2(&r, IORING_REGISTER_FILES2, 3, 0, fds, bad_tags), EINVAL);
	EMPTY(&r);
	CHECK_RES(read_slot(&r, 0), -EBADF);
	uint64_t tags[3] = { 0x11, 0, 0x13 };
	CHECK_OK(reg2(&r, IORING_REGISTER_FILES2, 3, 0, fds, tags));
	EMPTY(&r);
	/* replace slot 0: tag 0x11 comes; the new file carries 0x21 */
	uint64_t t21 = 0x21;
	CHECK_EQ(update2(&r, IORING_REGISTER_FILES_UPDATE2, 0, 1, &f, &t21), 1);
	TRY(tag_cqe(&r, 0x11));
	EMPTY(&r);
	int skip = IORING_REGISTER_FILES_SKIP, empty = -1;
	CHECK_ERR(update2(&r, IORING_REGISTER_FILES_UPDATE2, 1, 1, &skip, &t21), EINVAL);
	CHECK_ERR(update2(&r, IORING_REGISTER_FILES_UPDATE2, 1, 1, &empty, &t21), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILES_UPDATE2, &empty, 16), EINVAL);
	/* slot 1 (untagged) emptied: nothing posted */
	CHECK_EQ(update2(&r, IORING_REGISTER_FILES_UPDATE2, 1, 1, &empty, NULL), 1);
	EMPTY(&r);
	/* unregistering posts the remaining tags, from the last slot to the first */
	CHECK_OK(io_uring_unregister_files(&r));
	TRY(tag_cqe(&r, 0x13));
	TRY(tag_cqe(&r, 0x21));
	EMPTY(&r);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int tag_after_use(void)
{
	/*
	 * A tag waits for the requests using its file: a READ parked on a fixed pipe keeps
	 * the old file after its slot is emptied, and the tag's CQE follows the read's.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int p[2];
	CHECK_OK(pipe(p));
	uint64_t tag = 0x7a9;
	CHECK_OK(reg2(&r, IORING_REGISTER_FILES2, 1, 0, &p[0], &tag));
	char b[8];
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, 0, b, sizeof b, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x5ead;
	SUBMIT_NONE(&r, 1);
	int empty = -1;
	CHECK_EQ(update2(&r, IORING_REGISTER_FILES_UPDATE2, 0, 1, &empty, NULL), 1);
	ut_sleep_ms(20);
	EMPTY(&r);
	CHECK_EQ(write(p[1], "abc", 3), 3);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x5ead, 1000, &c);
	CHECK_RES(c.res, 3);
	TRY(tag_cqe(&r, 0x7a9));
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* READ_FIXED 8 bytes at 0 of `fd` into `buf` of fixed buffer `index`: its res. */
static int read_fixed(struct io_uring *r, int fd, void *buf, int index)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_read_fixed(sqe, fd, buf, 8, 0, index);
	sqe->user_data = 0xf1ed;
	return ut_run_ud(r, 0xf1ed);
}

static int buffers_tags(void)
{
	/*
	 * BUFFERS2: SPARSE gives empty slots (READ_FIXED there: EFAULT), as does a null
	 * iovec; a tag on one is EINVAL. BUFFERS_UPDATE fills or replaces slots, and a
	 * replaced or unregistered tagged buffer posts its tag.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "buffers!", 8, 0), 8);
	static char a[4096] __attribute__((aligned(4096))), b[4096] __attribute__((aligned(4096)));
	CHECK_OK(reg2(&r, IORING_REGISTER_BUFFERS2, 2, IORING_RSRC_REGISTER_SPARSE, NULL, NULL));
	CHECK_RES(read_fixed(&r, f, a, 0), -EFAULT);
	struct iovec iov = { a, sizeof a };
	uint64_t tag = 0xb0;
	CHECK_EQ(update2(&r, IORING_REGISTER_BUFFERS_UPDATE, 1, 1, &iov, &tag), 1);
	CHECK_RES(read_fixed(&r, f, a, 1), 8);
	CHECK(!memcmp(a, "buffers!", 8));
	CHECK_RES(read_fixed(&r, f, a, 0), -EFAULT);
	EMPTY(&r);
	struct iovec null = { NULL, 0 };
	CHECK_ERR(update2(&r, IORING_REGISTER_BUFFERS_UPDATE, 0, 1, &null, &tag), EINVAL);
	struct iovec iov_b = { b, sizeof b };
	uint64_t tag_b = 0xb1;
	CHECK_EQ(update2(&r, IORING_REGISTER_BUFFERS_UPDATE, 1, 1, &iov_b, &tag_b), 1);
	TRY(tag_cqe(&r, 0xb0));
	CHECK_RES(read_fixed(&r, f, b, 1), 8);
	CHECK_ERR(update2(&r, IORING_REGISTER_BUFFERS_UPDATE, 1, 2, &iov, NULL), EINVAL);
	CHECK_OK(io_uring_unregister_buffers(&r));
	TRY(tag_cqe(&r, 0xb1));
	EMPTY(&r);
	/* registration: a null iovec is an empty slot, unless tagged */
	struct iovec two[2] = { { a, sizeof a }, { NULL, 0 } };
	uint64_t tags[2] = { 0, 0xb2 };
	CHECK_ERR(reg2(&r, IORING_REGISTER_BUFFERS2, 2, 0, two, tags), EINVAL);
	tags[1] = 0;
	CHECK_OK(reg2(&r, IORING_REGISTER_BUFFERS2, 2, 0, two, tags));
	CHECK_RES(read_fixed(&r, f, a, 0), 8);
	CHECK_RES(read_fixed(&r, f, a, 1), -EFAULT);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int alloc_range(void)
{
	/*
	 * REGISTER_FILE_ALLOC_RANGE {off, len, resv} limits IORING_FILE_INDEX_ALLOC to
	 * [off, off + len): past it, ENFILE. Beyond the table, a reserved field, nr_args
	 * or a null arg: EINVAL; off + len overflowing: EOVERFLOW. Unregistering the
	 * files resets it.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct io_uring_file_index_range range = { 0, 1, 0 };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &range, 0), EINVAL);
	CHECK_OK(reg2(&r, IORING_REGISTER_FILES2, 6, IORING_RSRC_REGISTER_SPARSE, NULL, NULL));
	range = (struct io_uring_file_index_range){ 2, 2, 0 };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &range, 1), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, NULL, 0), EINVAL);
	struct io_uring_file_index_range bad = { 4, 3, 0 };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &bad, 0), EINVAL);
	bad = (struct io_uring_file_index_range){ 2, 2, 1 };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &bad, 0), EINVAL);
	bad = (struct io_uring_file_index_range){ 0xffffffffu, 2, 0 };
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &bad, 0), EOVERFLOW);
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_FILE_ALLOC_RANGE, &range, 0));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	int want[] = { 2, 3 };
	for (int i = 0; i < 3; i++) {
		int one = f;
		struct io_uring_sqe *sqe = ut_sqe(&r);
		io_uring_prep_files_update(sqe, &one, 1, IORING_FILE_INDEX_ALLOC);
		sqe->user_data = 0xa0 + i;
		int res = ut_run_ud(&r, 0xa0 + i);
		if (i < 2) {
			CHECK_RES(res, 1);
			CHECK_EQ(one, want[i]);
		} else {
			CHECK_RES(res, -ENFILE);
		}
	}
	CHECK_RES(read_slot(&r, 0), -EBADF);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int clone_register(struct io_uring *dst, int src_fd, unsigned flags, unsigned src_off,
			  unsigned dst_off, unsigned nr)
{
	struct clone_buffers c = { (uint32_t)src_fd, flags, src_off, dst_off, nr, { 0, 0, 0 } };
	return sys_register(dst->ring_fd, REG_CLONE_BUFFERS, &c, 1);
}

static int clone_buffers(void)
{
	/*
	 * CLONE_BUFFERS copies another ring's buffer table, the same memory: reads through
	 * the clone land in the source's buffers, and stay valid after the source
	 * unregisters. A destination with buffers needs DST_REPLACE (EBUSY); the new table
	 * keeps the destination's slots below dst_off. Errors: unknown flags or pad, nr 0
	 * with offsets, nr past the source: EINVAL; src_off + nr past it: EOVERFLOW; a
	 * source without buffers ENXIO; a source that is no ring EOPNOTSUPP.
	 */
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "cloned!!", 8, 0), 8);
	static char x[4096] __attribute__((aligned(4096))), y[4096] __attribute__((aligned(4096))),
		z[4096] __attribute__((aligned(4096)));
	CHECK_ERR(clone_register(&b, a.ring_fd, 0, 0, 0, 0), ENXIO);
	CHECK_ERR(clone_register(&b, f, 0, 0, 0, 0), EOPNOTSUPP);
	struct iovec iov[2] = { { x, sizeof x }, { y, sizeof y } };
	CHECK_OK(io_uring_register_buffers(&a, iov, 2));
	CHECK_ERR(clone_register(&b, a.ring_fd, 4, 0, 0, 0), EINVAL);
	CHECK_ERR(clone_register(&b, a.ring_fd, 0, 1, 0, 0), EINVAL);
	CHECK_ERR(clone_register(&b, a.ring_fd, 0, 0, 0, 3), EINVAL);
	CHECK_ERR(clone_register(&b, a.ring_fd, 0, 1, 0, 2), EOVERFLOW);
	struct clone_buffers padded = { (uint32_t)a.ring_fd, 0, 0, 0, 0, { 0, 1, 0 } };
	CHECK_ERR(sys_register(b.ring_fd, REG_CLONE_BUFFERS, &padded, 1), EINVAL);
	CHECK_ERR(sys_register(b.ring_fd, REG_CLONE_BUFFERS, &padded, 2), EINVAL);
	CHECK_OK(clone_register(&b, a.ring_fd, 0, 0, 0, 0));
	CHECK_ERR(clone_register(&b, a.ring_fd, 0, 0, 0, 0), EBUSY);
	CHECK_OK(io_uring_unregister_buffers(&a));
	memset(y, 0, sizeof y);
	CHECK_RES(read_fixed(&b, f, y, 1), 8);
	CHECK(!memcmp(y, "cloned!!", 8));
	CHECK_RES(read_fixed(&b, f, x, 1), -EFAULT);
	/* replace from slot 1: slot 0 stays, slot 1 becomes the source's slot 0 */
	struct iovec iz = { z, sizeof z };
	CHECK_OK(io_uring_register_buffers(&a, &iz, 1));
	CHECK_OK(clone_register(&b, a.ring_fd, CLONE_DST_REPLACE, 0, 1, 1));
	CHECK_RES(read_fixed(&b, f, x, 0), 8);
	CHECK_RES(read_fixed(&b, f, z, 1), 8);
	CHECK(!memcmp(z, "cloned!!", 8));
	CHECK_RES(read_fixed(&b, f, y, 1), -EFAULT);
	close(f);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

UT_FAMILY(rsrctags, T(files_sparse), T(files_tags), T(tag_after_use), T(buffers_tags), T(alloc_range),
	  T(clone_buffers));
