/* io_uring_register: PROBE, BUFFERS, FILES, FILES_UPDATE, EVENTFD, and bad input. */
#include "ut.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

static struct {
	struct io_uring_probe p;
	struct io_uring_probe_op ops[256];
} pb;

static int probe(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	memset(&pb, 0, sizeof pb);
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 256));
	io_uring_queue_exit(&r);
	char list[1024];
	size_t n = 0;
	for (int i = 0; i < pb.p.ops_len && n < sizeof list - 8; i++)
		if (pb.ops[i].flags & IO_URING_OP_SUPPORTED)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%d", n ? "," : "", i);
	list[n] = 0;
	ut_info("last_op=%u ops_len=%u supported=%s", pb.p.last_op, pb.p.ops_len, list);
	CHECK_EQ(pb.p.ops_len, pb.p.last_op + 1);
	CHECK(pb.p.last_op >= IORING_OP_FSYNC && pb.p.last_op >= IORING_OP_WRITE_FIXED);
	for (int i = 0; i < pb.p.ops_len; i++) {
		CHECK_EQ(pb.ops[i].op, i);
		CHECK_EQ(pb.ops[i].flags & ~IO_URING_OP_SUPPORTED, 0);
	}
	static const int need[] = { IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE,
				    IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ_FIXED,
				    IORING_OP_WRITE_FIXED, IORING_OP_FSYNC };
	for (unsigned i = 0; i < sizeof need / sizeof need[0]; i++)
		if (!(pb.ops[need[i]].flags & IO_URING_OP_SUPPORTED))
			FAIL("opcode %d is not supported", need[i]);
	/* entries past ops_len are left alone */
	for (int i = pb.p.ops_len; i < 256; i++)
		CHECK(pb.ops[i].op == 0 && pb.ops[i].flags == 0);
	return UT_OK;
}

static int probe_small(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	memset(&pb, 0, sizeof pb);
	int ret = sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 4);
	int e = errno;
	io_uring_queue_exit(&r);
	if (ret < 0)
		FAIL("probe with 4 ops: %s", ut_errname(e));
	CHECK_EQ(pb.p.ops_len, 4);
	CHECK(pb.p.last_op >= IORING_OP_WRITE_FIXED);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(pb.ops[i].op, i);
	CHECK(pb.ops[4].op == 0 && pb.ops[4].flags == 0);
	return UT_OK;
}

static int probe_nonzero_input(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	memset(&pb, 0, sizeof pb);
	pb.p.last_op = 1;
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 16), EINVAL);
	memset(&pb, 0, sizeof pb);
	pb.p.resv2[2] = 1;
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 16), EINVAL);
	memset(&pb, 0, sizeof pb);
	pb.ops[3].flags = 1;
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_PROBE, &pb, 16), EINVAL);
	/* a bad pointer */
	CHECK_ERR(sys_register(r.ring_fd, IORING_REGISTER_PROBE, (void *)8, 16), EFAULT);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static char bufa[8192] __attribute__((aligned(4096)));

static int buffers(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	int fd = r.ring_fd;
	struct iovec v[2] = { { bufa, 4096 }, { bufa + 4096, 4096 } };
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_BUFFERS, NULL, 0), ENXIO);
	CHECK_OK(sys_register(fd, IORING_REGISTER_BUFFERS, v, 2));
	CHECK_ERR(sys_register(fd, IORING_REGISTER_BUFFERS, v, 2), EBUSY);
	CHECK_OK(sys_register(fd, IORING_UNREGISTER_BUFFERS, NULL, 0));
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_BUFFERS, NULL, 0), ENXIO);
	/* register again after unregistering */
	CHECK_OK(sys_register(fd, IORING_REGISTER_BUFFERS, v, 1));
	CHECK_OK(sys_register(fd, IORING_UNREGISTER_BUFFERS, NULL, 0));
	/* bad input */
	CHECK_ERR(sys_register(fd, IORING_REGISTER_BUFFERS, v, 0), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_BUFFERS, (void *)8, 1), EFAULT);
	struct iovec bad = { (void *)8, 4096 };
	CHECK_ERR(sys_register(fd, IORING_REGISTER_BUFFERS, &bad, 1), EFAULT);
	/* a failed registration leaves nothing registered */
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_BUFFERS, NULL, 0), ENXIO);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int files(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	int fd = r.ring_fd;
	int a = ut_tmpfile("a", O_RDWR, NULL), b = ut_tmpfile("b", O_RDWR, NULL);
	CHECK_OK(a);
	CHECK_OK(b);
	int fds[2] = { a, b };
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0), ENXIO);
	CHECK_OK(sys_register(fd, IORING_REGISTER_FILES, fds, 2));
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES, fds, 2), EBUSY);
	CHECK_OK(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0));
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0), ENXIO);
	/* bad input */
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES, fds, 0), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES, (void *)8, 2), EFAULT);
	int badfds[2] = { a, 999 };
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES, badfds, 2), EBADF);
	/* a ring cannot hold itself */
	int self[1] = { fd };
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES, self, 1), EBADF);
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0), ENXIO);
	close(a);
	close(b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int files_update(void)
{
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	int fd = r.ring_fd;
	int a = ut_tmpfile("a", O_RDWR, NULL), b = ut_tmpfile("b", O_RDWR, NULL);
	CHECK_OK(a);
	CHECK_OK(b);
	CHECK_EQ(write(a, "AAAA", 4), 4);
	CHECK_EQ(write(b, "BBBB", 4), 4);
	struct io_uring_files_update up;
	memset(&up, 0, sizeof up);
	int one[1] = { b };
	up.offset = 0;
	up.fds = (uint64_t)(uintptr_t)one;
	/* nothing registered yet */
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 1), ENXIO);
	int fds[3] = { a, -1, -1 };
	CHECK_OK(sys_register(fd, IORING_REGISTER_FILES, fds, 3));
	/* fill slot 1 with b: returns the number of slots updated */
	up.offset = 1;
	CHECK_EQ(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 1), 1);
	char buf[8];
	for (int slot = 0; slot < 3; slot++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		memset(buf, 0, sizeof buf);
		io_uring_prep_read(sqe, slot, buf, 4, 0);
		sqe->flags = IOSQE_FIXED_FILE;
		uint64_t ud;
		int res = ut_run1(&r, &ud);
		if (slot == 0) {
			CHECK_RES(res, 4);
			CHECK(memcmp(buf, "AAAA", 4) == 0);
		} else if (slot == 1) {
			CHECK_RES(res, 4);
			CHECK(memcmp(buf, "BBBB", 4) == 0);
		} else {
			CHECK_RES(res, -EBADF);
		}
	}
	/* clear slot 0 with -1, skip slot 1 with IORING_REGISTER_FILES_SKIP */
	int two[2] = { -1, IORING_REGISTER_FILES_SKIP };
	up.offset = 0;
	up.fds = (uint64_t)(uintptr_t)two;
	CHECK_EQ(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 2), 2);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, 0, buf, 4, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	uint64_t ud;
	CHECK_RES(ut_run1(&r, &ud), -EBADF);
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, 1, buf, 4, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run1(&r, &ud), 4);
	/* out of range */
	up.offset = 2;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 2), EINVAL);
	up.offset = 3;
	up.fds = (uint64_t)(uintptr_t)one;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 1), EINVAL);
	/* reserved field */
	up.offset = 0;
	up.resv = 1;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_FILES_UPDATE, &up, 1), EINVAL);
	CHECK_OK(sys_register(fd, IORING_UNREGISTER_FILES, NULL, 0));
	close(a);
	close(b);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int eventfd_counts(void)
{
	GATE(IORING_OP_NOP);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int fd = r.ring_fd;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	CHECK_OK(efd);
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_EVENTFD, NULL, 0), ENXIO);
	CHECK_OK(sys_register(fd, IORING_REGISTER_EVENTFD, &efd, 1));
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, &efd, 1), EBUSY);
	/* three NOPs, each in its own submission */
	for (int i = 0; i < 3; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
		io_uring_prep_nop(sqe);
		CHECK_EQ(io_uring_submit(&r), 1);
	}
	CHECK_OK(ut_reap(&r, 3, NULL));
	uint64_t v = 0;
	CHECK_EQ(read(efd, &v, 8), 8);
	CHECK_EQ(v, 3);
	/* nothing completed since: the counter is 0 */
	CHECK_ERR(read(efd, &v, 8), EAGAIN);
	CHECK_OK(sys_register(fd, IORING_UNREGISTER_EVENTFD, NULL, 0));
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_EVENTFD, NULL, 0), ENXIO);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_nop(sqe);
	uint64_t ud;
	CHECK_RES(ut_run1(&r, &ud), 0);
	CHECK_ERR(read(efd, &v, 8), EAGAIN);
	close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int eventfd_bad(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	int fd = r.ring_fd;
	int efd = eventfd(0, EFD_CLOEXEC);
	CHECK_OK(efd);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, &efd, 2), EINVAL);
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, (void *)8, 1), EFAULT);
	int bad = 999;
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, &bad, 1), EBADF);
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	CHECK_ERR(sys_register(fd, IORING_REGISTER_EVENTFD, &p[0], 1), EINVAL);
	close(p[0]);
	close(p[1]);
	CHECK_ERR(sys_register(fd, IORING_UNREGISTER_EVENTFD, NULL, 0), ENXIO);
	close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int unknown_opcode(void)
{
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 2));
	CHECK_ERR(sys_register(r.ring_fd, 200, NULL, 0), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, 0x7fffffff, NULL, 0), EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int not_a_ring(void)
{
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int ret = sys_register(p[0], IORING_REGISTER_PROBE, &pb, 0);
	int e = errno;
	close(p[0]);
	close(p[1]);
	CHECK_EQ(ret, -1);
	CHECK_EQ(e, EOPNOTSUPP);
	CHECK_ERR(sys_register(999, IORING_REGISTER_PROBE, &pb, 0), EBADF);
	CHECK_ERR(sys_register(999, IORING_UNREGISTER_BUFFERS, NULL, 0), EBADF);
	return UT_OK;
}

/* The registered eventfd's own wakeup may complete a request parked on that eventfd. */
static int eventfd_with_a_parked_read_on_it(void)
{
	GATE(IORING_OP_READ);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int efd = eventfd(0, 0);
	CHECK(efd >= 0);
	CHECK_OK(io_uring_register_eventfd(&r, efd));
	uint64_t v = 0;
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, efd, &v, 8, 0);
	sqe->user_data = 1;
	CHECK_EQ(io_uring_submit(&r), 1);
	sqe = ut_sqe(&r);
	io_uring_prep_nop(sqe);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_reap(&r, 2, c));
	int read_res = c[0].user_data == 1 ? c[0].res : c[1].res;
	CHECK_RES(read_res, 8);
	close(efd);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(register, T(eventfd_with_a_parked_read_on_it), T(probe), T(probe_small), T(probe_nonzero_input), T(buffers), T(files),
	  T(files_update), T(eventfd_counts), T(eventfd_bad), T(unknown_opcode),
	  T(not_a_ring));
