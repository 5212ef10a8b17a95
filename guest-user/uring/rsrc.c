/*
 * Registered resources under stress: a registered buffer whose mapping is replaced, a
 * fork with registered buffers, io_uring fds as fixed files, a FILES_UPDATE that fails
 * partway, and RLIMIT_MEMLOCK accounting.
 */
#include "ut.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>

#define PAGE 4096

static int data_file(unsigned seed, unsigned char *data)
{
	int fd = ut_tmpfile("data", O_RDWR, NULL);
	if (fd < 0)
		return fd;
	ut_pattern(data, PAGE, seed);
	if (write(fd, data, PAGE) != PAGE)
		return -EIO;
	return fd;
}

static int read_fixed(struct io_uring *r, int fd, void *addr, unsigned len, uint64_t ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read_fixed(sqe, fd, addr, len, 0, 0);
	sqe->user_data = ud;
	uint64_t got = 0;
	int res = ut_run1_ms(r, &got, 5000);
	return got == ud ? res : -10000;
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/*
 * A 4-entry ring, the data file (data_file(seed, data)) and an anonymous page filled
 * with `fill` and registered as buffer 0.
 */
static int page_setup(struct io_uring *r, unsigned seed, unsigned char *data, int fill,
		      int *fd, unsigned char **buf, const char *file, int line)
{
	int ret = ut_ring(r, 4);
	if (ret < 0)
		return ut_fail(file, line, "ring: %s", ut_errname(-ret));
	*fd = data_file(seed, data);
	if (*fd < 0)
		return ut_fail(file, line, "data file: %s", ut_errname(-*fd));
	*buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*buf == MAP_FAILED)
		return ut_fail(file, line, "mmap: %s", ut_errname(errno));
	memset(*buf, fill, PAGE);
	struct iovec iov = { *buf, PAGE };
	ret = io_uring_register_buffers(r, &iov, 1);
	if (ret < 0)
		return ut_fail(file, line, "register_buffers: %s", ut_errname(-ret));
	return UT_OK;
}
#define PAGE_SETUP(r, seed, data, fill, fd, buf)                                        \
	TRY(page_setup((r), (seed), (data), (fill), (fd), (buf), __FILE__, __LINE__))

static void page_teardown(struct io_uring *r, int fd, unsigned char *buf)
{
	munmap(buf, PAGE);
	close(fd);
	io_uring_queue_exit(r);
}

static int remapped_buffer(void)
{
	/*
	 * Register a page, munmap it, map a fresh zero page at the same address: Linux
	 * pinned the old page, so READ_FIXED succeeds into it and the new page stays zero.
	 */
	GATE(IORING_OP_READ_FIXED);
	struct io_uring r;
	static unsigned char data[PAGE];
	int fd;
	unsigned char *buf;
	PAGE_SETUP(&r, 7, data, 0x5a, &fd, &buf);
	CHECK_OK(munmap(buf, PAGE));
	unsigned char *again = mmap(buf, PAGE, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(again == buf);
	CHECK_RES(read_fixed(&r, fd, buf, PAGE, 1), PAGE);
	CHECK(all_zero(buf, PAGE));
	/* and a write from the old page puts the old page's bytes (the read's) in the file */
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_write_fixed(sqe, fd, buf, PAGE, PAGE, 0);
	sqe->user_data = 2;
	uint64_t ud;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), PAGE);
	static unsigned char back[PAGE];
	CHECK_EQ(pread(fd, back, PAGE, PAGE), PAGE);
	CHECK(memcmp(back, data, PAGE) == 0);
	page_teardown(&r, fd, buf);
	return UT_OK;
}

static int fork_registered(void)
{
	/*
	 * The parent registers a buffer and forks; the child submits READ_FIXED on the
	 * inherited ring. Linux: the child may use the ring; the data lands in the pinned
	 * page, which stays the parent's (a pinned page is copied for the child at fork),
	 * so the parent sees it and the child's copy does not change.
	 */
	GATE(IORING_OP_READ_FIXED);
	struct io_uring r;
	static unsigned char data[PAGE];
	int fd;
	unsigned char *buf;
	PAGE_SETUP(&r, 9, data, 0, &fd, &buf);
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0) {
		int res = read_fixed(&r, fd, buf, PAGE, 3);
		if (res != PAGE)
			_exit(res == -EINVAL ? 10 : res == -EFAULT ? 11 : 12);
		_exit(all_zero(buf, PAGE) ? 0 : 13);
	}
	int status = 0;
	long long end = ut_now_ms() + 10000;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (ut_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			FAIL("the child hung");
		}
		ut_sleep_ms(1);
	}
	ut_info("child status 0x%x; parent's buffer %s", status,
		memcmp(buf, data, PAGE) == 0 ? "has the data" :
		all_zero(buf, PAGE) ? "is zero" : "holds other bytes");
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(memcmp(buf, data, PAGE) == 0);
	page_teardown(&r, fd, buf);
	return UT_OK;
}

static int ring_as_fixed_file(void)
{
	/* io_uring fds cannot be registered files (they could form reference loops): -EBADF */
	struct io_uring r, r2;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&r2, 4));
	int files[2] = { r2.ring_fd, -1 };
	CHECK_RES(io_uring_register_files(&r, files, 2), -EBADF);
	files[0] = r.ring_fd;
	CHECK_RES(io_uring_register_files(&r, files, 2), -EBADF);
	/* a table registered sparse, then an update that tries the same */
	files[0] = -1;
	CHECK_OK(io_uring_register_files(&r, files, 2));
	files[0] = r2.ring_fd;
	CHECK_RES(io_uring_register_files_update(&r, 0, files, 1), -EBADF);
	io_uring_queue_exit(&r2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int files_update_partial(void)
{
	/* Linux: an update that fails partway returns how many it did (the error if none) */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe2(p, O_CLOEXEC));
	int files[3] = { -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, files, 3));
	int upd[3] = { p[0], 9999, p[1] };
	int ret = io_uring_register_files_update(&r, 0, upd, 3);
	ut_info("update [pipe, 9999, pipe]: %d", ret);
	CHECK_RES(ret, 1);
	upd[0] = 9999;
	CHECK_RES(io_uring_register_files_update(&r, 1, upd, 2), -EBADF);
	/* slot 0 took the pipe: a fixed read from it works */
	CHECK_EQ(write(p[1], "q", 1), 1);
	char c = 0;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
	io_uring_prep_read(sqe, 0, &c, 1, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	uint64_t ud;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), 1);
	CHECK_EQ(c, 'q');
	/* slots 1 and 2 are still empty */
	sqe = io_uring_get_sqe(&r);
	io_uring_prep_write(sqe, 2, "w", 1, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run1_ms(&r, &ud, 5000), -EBADF);
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* this thread's capabilities (capget, version 3): 0 or -errno */
static int caps_get(struct __user_cap_header_struct *h, struct __user_cap_data_struct d[2])
{
	h->version = _LINUX_CAPABILITY_VERSION_3;
	h->pid = 0;
	memset(d, 0, 2 * sizeof d[0]);
	return syscall(SYS_capget, h, d) < 0 ? -errno : 0;
}

static int has_ipc_lock(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[2];
	int ret = caps_get(&h, d);
	if (ret < 0)
		return ret;
	return (d[0].effective >> CAP_IPC_LOCK) & 1;
}

static int drop_ipc_lock(void)
{
	struct __user_cap_header_struct h;
	struct __user_cap_data_struct d[2];
	int ret = caps_get(&h, d);
	if (ret < 0)
		return ret;
	d[0].effective &= ~(1u << CAP_IPC_LOCK);
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

/* in a child: the register result for 1 MiB, with RLIMIT_MEMLOCK at 64 KiB */
static int register_1m(void)
{
	struct io_uring r;
	if (ut_ring(&r, 4) < 0)
		return 100;
	size_t len = 1 << 20;
	void *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 101;
	struct iovec iov = { buf, len };
	int ret = io_uring_register_buffers(&r, &iov, 1);
	io_uring_queue_exit(&r);
	munmap(buf, len);
	return ret == 0 ? 0 : ret == -ENOMEM ? 1 : 102;
}

static int memlock_limit(void)
{
	/*
	 * Registered buffers count against RLIMIT_MEMLOCK, unless the ring was created with
	 * CAP_IPC_LOCK (root has it): then Linux does no accounting. In a child: 64 KiB
	 * limit; with the capability a 1 MiB registration succeeds; without it (dropped
	 * with capset before the ring is created), -ENOMEM.
	 */
	GATE(IORING_OP_READ_FIXED);
	int cap = has_ipc_lock();
	ut_info("CAP_IPC_LOCK: %d", cap);
	if (cap < 0) /* no capget: a kernel without capabilities, so none to skip accounting */
		cap = 0;
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0) {
		struct rlimit rl = { 64 << 10, 64 << 10 };
		if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
			_exit(110);
		int with = register_1m();
		if (with != (cap ? 0 : 1))
			_exit(with == 0 ? 111 : with);
		if (cap && drop_ipc_lock() < 0)
			_exit(112);
		_exit(register_1m() == 1 ? 0 : 113);
	}
	int status = 0;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	return UT_OK;
}

UT_FAMILY(rsrc, T(remapped_buffer), T(fork_registered), T(ring_as_fixed_file),
	  T(files_update_partial), T(memlock_limit));
