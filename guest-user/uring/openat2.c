/*
 * openat2(2) and IORING_OP_OPENAT2 (Linux 5.6): struct open_how of any size that is
 * at least the first version's 24 bytes (larger ones must be zero past what the kernel
 * knows: E2BIG), flags checked strictly (unlike openat), and the RESOLVE_* limits on the
 * walk: BENEATH (no escape from dirfd: EXDEV), IN_ROOT (dirfd is "/" for the walk),
 * NO_SYMLINKS (ELOOP), CACHED (EAGAIN where the walk or open would have to wait).
 * Also direct descriptors: OPENAT/OPENAT2 with sqe->file_index open into the fixed
 * table (a 1-based slot, or IORING_FILE_INDEX_ALLOC), and CLOSE with file_index empties
 * a slot.
 */
#include "ut.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/stat.h>

#define OP_OPENAT2 28

static long sys_openat2(int dirfd, const char *path, const void *how, size_t size)
{
	return syscall(SYS_openat2, dirfd, path, how, size);
}

/*
 * A directory tree for the test, under ut_dir:
 *   D/f       "in-tree!"     D/s/       D/up -> ../    D/abs -> /f
 *   D/rel -> s/../f          ut_dir/TEST.out  "outside!"
 * Returns an O_DIRECTORY fd of D, or -errno.
 */
static char tree[256], outside[300];

static int put(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return -errno;
	int n = (int)write(fd, text, strlen(text));
	close(fd);
	return n == (int)strlen(text) ? 0 : -EIO;
}

static void remove_tree(void)
{
	char p[400];
	static const char *names[] = { "f", "up", "abs", "rel", "new" };
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", tree, names[i]);
		unlink(p);
	}
	snprintf(p, sizeof p, "%s/s", tree);
	rmdir(p);
	rmdir(tree);
	unlink(outside);
}

static int make_tree(void)
{
	const char *name = strstr(ut_current, "::");
	name = name ? name + 2 : ut_current;
	snprintf(tree, sizeof tree, "%s/%s.d", ut_dir, name);
	snprintf(outside, sizeof outside, "%s/%s.out", ut_dir, name);
	remove_tree();
	char p[400];
	if (mkdir(tree, 0755))
		return -errno;
	snprintf(p, sizeof p, "%s/s", tree);
	if (mkdir(p, 0755))
		return -errno;
	snprintf(p, sizeof p, "%s/f", tree);
	int e = put(p, "in-tree!");
	if (e)
		return e;
	if ((e = put(outside, "outside!")))
		return e;
	struct { const char *name, *target; } links[] = {
		{ "up", "../" }, { "abs", "/f" }, { "rel", "s/../f" },
	};
	for (unsigned i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", tree, links[i].name);
		if (symlink(links[i].target, p))
			return -errno;
	}
	int fd = open(tree, O_DIRECTORY | O_RDONLY);
	return fd < 0 ? -errno : fd;
}

/* The first 8 bytes of `fd` (closed) must be `text`. */
static int reads(int fd, const char *text)
{
	char b[9] = { 0 };
	int n = (int)pread(fd, b, 8, 0);
	close(fd);
	if (n != 8 || memcmp(b, text, 8))
		FAIL("read %d bytes '%s', expected '%s'", n, b, text);
	return UT_OK;
}

static int how_checks(void)
{
	/*
	 * The struct's size: below 24 EINVAL, above a page E2BIG, larger with a non-zero
	 * byte past the known fields E2BIG, larger with zeros fine. Unknown flag or resolve
	 * bits, BENEATH with IN_ROOT, a mode without O_CREAT or beyond 07777, O_CREAT with
	 * O_DIRECTORY, O_PATH with other flags: EINVAL. RESOLVE_CACHED with O_CREAT or
	 * O_TRUNC: EAGAIN without trying.
	 */
	int d = make_tree();
	CHECK_OK(d);
	struct { struct open_how how; uint64_t extra[2]; } big = { { O_RDONLY, 0, 0 }, { 0, 0 } };
	CHECK_ERR(sys_openat2(d, "f", &big, 16), EINVAL);
	CHECK_ERR(sys_openat2(d, "f", &big, 4097), E2BIG);
	int fd = (int)sys_openat2(d, "f", &big, sizeof big);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	big.extra[1] = 1;
	CHECK_ERR(sys_openat2(d, "f", &big, sizeof big), E2BIG);
	struct open_how bad[] = {
		{ O_RDONLY | (1ULL << 40), 0, 0 },
		{ O_RDONLY | 0x80000000u, 0, 0 },
		{ O_RDONLY, 0, 0x40 },
		{ O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT },
		{ O_RDONLY, 0644, 0 },
		{ O_RDWR | O_CREAT, 010000, 0 },
		{ O_RDONLY | O_CREAT | O_DIRECTORY, 0644, 0 },
		{ O_PATH | O_RDWR, 0, 0 },
		{ O_PATH | O_APPEND, 0, 0 },
	};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		errno = 0;
		long r = sys_openat2(d, "f", &bad[i], sizeof bad[i]);
		if (r != -1 || errno != EINVAL)
			FAIL("how #%u: %ld %s, expected EINVAL", i, r, ut_errname(errno));
	}
	struct open_how cached = { O_RDWR | O_CREAT, 0644, RESOLVE_CACHED };
	CHECK_ERR(sys_openat2(d, "new", &cached, sizeof cached), EAGAIN);
	cached.flags = O_RDWR | O_TRUNC;
	cached.mode = 0;
	CHECK_ERR(sys_openat2(d, "f", &cached, sizeof cached), EAGAIN);
	/* openat(2) drops unknown flags and a stray mode instead */
	fd = openat(d, "f", O_RDONLY | 0x80000000u, 0644);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	close(d);
	remove_tree();
	return UT_OK;
}

static int beneath(void)
{
	/*
	 * RESOLVE_BENEATH: the walk may not leave dirfd, by "..", by an absolute path or
	 * by a symlink (EXDEV); going down and back up inside is fine.
	 */
	int d = make_tree();
	CHECK_OK(d);
	struct open_how how = { O_RDONLY, 0, RESOLVE_BENEATH };
	int fd = (int)sys_openat2(d, "s/../f", &how, sizeof how);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	fd = (int)sys_openat2(d, "rel", &how, sizeof how);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	const char *name = strrchr(outside, '/') + 1;
	char esc[300];
	snprintf(esc, sizeof esc, "../%s", name);
	CHECK_ERR(sys_openat2(d, esc, &how, sizeof how), EXDEV);
	CHECK_ERR(sys_openat2(d, outside, &how, sizeof how), EXDEV);
	CHECK_ERR(sys_openat2(d, "abs", &how, sizeof how), EXDEV);
	snprintf(esc, sizeof esc, "up/%s", name);
	CHECK_ERR(sys_openat2(d, esc, &how, sizeof how), EXDEV);
	/* without the flag, the same paths get out */
	how.resolve = 0;
	snprintf(esc, sizeof esc, "up/%s", name);
	fd = (int)sys_openat2(d, esc, &how, sizeof how);
	CHECK_OK(fd);
	TRY(reads(fd, "outside!"));
	close(d);
	remove_tree();
	return UT_OK;
}

static int in_root(void)
{
	/*
	 * RESOLVE_IN_ROOT: dirfd is the root of the walk: "/f", "../../f" and a symlink
	 * to "/f" all name dirfd's f.
	 */
	int d = make_tree();
	CHECK_OK(d);
	struct open_how how = { O_RDONLY, 0, RESOLVE_IN_ROOT };
	static const char *paths[] = { "/f", "../../f", "abs", "up/up/f", "s/../../f" };
	for (unsigned i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		int fd = (int)sys_openat2(d, paths[i], &how, sizeof how);
		if (fd < 0)
			FAIL("%s: %s", paths[i], ut_errname(errno));
		TRY(reads(fd, "in-tree!"));
	}
	close(d);
	remove_tree();
	return UT_OK;
}

static int no_symlinks(void)
{
	/*
	 * RESOLVE_NO_SYMLINKS: any symlink the walk would follow is ELOOP; O_PATH |
	 * O_NOFOLLOW still opens the link itself. RESOLVE_NO_XDEV within one file system
	 * and RESOLVE_CACHED on a file just created succeed.
	 */
	int d = make_tree();
	CHECK_OK(d);
	struct open_how how = { O_RDONLY, 0, RESOLVE_NO_SYMLINKS };
	CHECK_ERR(sys_openat2(d, "rel", &how, sizeof how), ELOOP);
	CHECK_ERR(sys_openat2(d, "up/f", &how, sizeof how), ELOOP);
	int fd = (int)sys_openat2(d, "s/../f", &how, sizeof how);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	how.flags = O_PATH | O_NOFOLLOW;
	fd = (int)sys_openat2(d, "rel", &how, sizeof how);
	CHECK_OK(fd);
	struct stat st;
	CHECK_OK(fstatat(fd, "", &st, AT_EMPTY_PATH));
	CHECK(S_ISLNK(st.st_mode));
	close(fd);
	struct open_how xdev = { O_RDONLY, 0, RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS };
	fd = (int)sys_openat2(d, "rel", &xdev, sizeof xdev);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	struct open_how cached = { O_RDONLY, 0, RESOLVE_CACHED };
	fd = (int)sys_openat2(d, "f", &cached, sizeof cached);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	close(d);
	remove_tree();
	return UT_OK;
}

/* Queue an OPENAT2 of `path` from `dirfd` with `how` (`size` bytes), file_index `slot`. */
static struct io_uring_sqe *q_openat2(struct io_uring *r, int dirfd, const char *path, const void *how,
		      unsigned size, unsigned slot, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = OP_OPENAT2;
	sqe->fd = dirfd;
	sqe->addr = (uintptr_t)path;
	sqe->off = (uintptr_t)how; /* addr2 */
	sqe->len = size;
	sqe->file_index = slot;
	sqe->user_data = ud;
	return sqe;
}

static int op_openat2(void)
{
	/*
	 * IORING_OP_OPENAT2 answers as openat2(2): res is the descriptor, or the errors
	 * above (the struct's size at prep, its flags and the walk at issue).
	 */
	GATE(OP_OPENAT2);
	int d = make_tree();
	CHECK_OK(d);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	struct { struct open_how how; uint64_t extra; } big = { { O_RDONLY, 0, RESOLVE_BENEATH }, 0 };
	q_openat2(&r, d, "s/../f", &big, sizeof big.how, 0, 1);
	int fd = ut_run_ud(&r, 1);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	q_openat2(&r, d, "f", &big, 16, 0, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EINVAL);
	big.extra = 7;
	q_openat2(&r, d, "f", &big, sizeof big, 0, 3);
	CHECK_RES(ut_run_ud(&r, 3), -E2BIG);
	q_openat2(&r, d, "up/f", &big, sizeof big.how, 0, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EXDEV);
	struct open_how bad = { O_RDONLY, 0, 0x40 };
	q_openat2(&r, d, "f", &bad, sizeof bad, 0, 5);
	CHECK_RES(ut_run_ud(&r, 5), -EINVAL);
	struct open_how in_root = { O_RDONLY, 0, RESOLVE_IN_ROOT };
	q_openat2(&r, d, "/f", &in_root, sizeof in_root, 0, 6);
	fd = ut_run_ud(&r, 6);
	CHECK_OK(fd);
	TRY(reads(fd, "in-tree!"));
	q_openat2(&r, d, "f", &in_root, sizeof in_root, 0, 7)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run_ud(&r, 7), -EBADF);
	io_uring_queue_exit(&r);
	close(d);
	remove_tree();
	return UT_OK;
}

/* READ 8 bytes at 0 from fixed slot `slot` must give `text`. */
static int slot_reads(struct io_uring *r, int slot, const char *text)
{
	char b[9] = { 0 };
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_read(sqe, slot, b, 8, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x5107;
	int res = ut_run_ud(r, 0x5107);
	if (text == NULL) {
		CHECK_RES(res, -EBADF);
		return UT_OK;
	}
	CHECK_RES(res, 8);
	if (memcmp(b, text, 8))
		FAIL("slot %d reads '%s', expected '%s'", slot, b, text);
	return UT_OK;
}

static void q_openat(struct io_uring *r, int dirfd, const char *path, int flags, unsigned slot, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_openat(sqe, dirfd, path, flags, 0);
	sqe->file_index = slot;
	sqe->user_data = ud;
}

static struct io_uring_sqe *q_close_slot(struct io_uring *r, int fd, unsigned slot, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_close(sqe, fd);
	sqe->file_index = slot;
	sqe->user_data = ud;
	return sqe;
}

static int direct_open(void)
{
	/*
	 * OPENAT and OPENAT2 with file_index: slot file_index - 1 gets the file (res 0,
	 * no descriptor is made), or with IORING_FILE_INDEX_ALLOC a free slot (res is its
	 * index). O_CLOEXEC with a slot: EINVAL. A slot past the table: EINVAL; no table:
	 * ENXIO for a slot, ENFILE for ALLOC (no free slot), as for a full table.
	 */
	GATE(IORING_OP_OPENAT);
	int d = make_tree();
	CHECK_OK(d);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	q_openat(&r, d, "f", O_RDONLY, 1, 1);
	CHECK_RES(ut_run_ud(&r, 1), -ENXIO);
	q_openat(&r, d, "f", O_RDONLY, IORING_FILE_INDEX_ALLOC, 2);
	CHECK_RES(ut_run_ud(&r, 2), -ENFILE);
	int table[3] = { -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 3));
	int lowest = ut_lowest_free_fd();
	q_openat(&r, d, "f", O_RDONLY, 2, 3);
	CHECK_RES(ut_run_ud(&r, 3), 0);
	CHECK_EQ(ut_lowest_free_fd(), lowest);
	TRY(slot_reads(&r, 1, "in-tree!"));
	/* ALLOC searches from just past the slot filled last, then wraps */
	q_openat(&r, d, "rel", O_RDONLY, IORING_FILE_INDEX_ALLOC, 4);
	CHECK_RES(ut_run_ud(&r, 4), 2);
	TRY(slot_reads(&r, 2, "in-tree!"));
	q_openat(&r, d, "f", O_RDONLY, IORING_FILE_INDEX_ALLOC, 5);
	CHECK_RES(ut_run_ud(&r, 5), 0);
	q_openat(&r, d, "f", O_RDONLY, IORING_FILE_INDEX_ALLOC, 6);
	CHECK_RES(ut_run_ud(&r, 6), -ENFILE);
	q_openat(&r, d, "f", O_RDONLY, 4, 7);
	CHECK_RES(ut_run_ud(&r, 7), -EINVAL);
	q_openat(&r, d, "f", O_RDONLY | O_CLOEXEC, 1, 8);
	CHECK_RES(ut_run_ud(&r, 8), -EINVAL);
	/* a slot that holds a file is replaced */
	int o = open(outside, O_RDONLY);
	CHECK_OK(o);
	struct open_how how = { O_RDONLY, 0, 0 };
	char path[400];
	snprintf(path, sizeof path, "%s", outside);
	q_openat2(&r, AT_FDCWD, path, &how, sizeof how, 3, 9);
	if (ut_op_supported(OP_OPENAT2)) {
		CHECK_RES(ut_run_ud(&r, 9), 0);
		TRY(slot_reads(&r, 2, "outside!"));
	} else {
		CHECK_RES(ut_run_ud(&r, 9), -EINVAL);
	}
	close(o);
	/* a missing file leaves the slot as it was */
	q_openat(&r, d, "nothing", O_RDONLY, 1, 10);
	CHECK_RES(ut_run_ud(&r, 10), -ENOENT);
	TRY(slot_reads(&r, 0, "in-tree!"));
	io_uring_queue_exit(&r);
	close(d);
	remove_tree();
	return UT_OK;
}

static int close_slot(void)
{
	/*
	 * CLOSE with file_index empties slot file_index - 1 (res 0); an empty slot is
	 * EBADF, one past the table EINVAL, no table ENXIO; fd and file_index together
	 * EINVAL; IOSQE_FIXED_FILE EBADF. The file stays open where else it is held.
	 */
	GATE(IORING_OP_CLOSE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	q_close_slot(&r, 0, 1, 1);
	CHECK_RES(ut_run_ud(&r, 1), -ENXIO);
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	CHECK_EQ(pwrite(f, "closing!", 8, 0), 8);
	int table[2] = { f, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 2));
	q_close_slot(&r, 0, 2, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EBADF);
	q_close_slot(&r, 0, 3, 3);
	CHECK_RES(ut_run_ud(&r, 3), -EINVAL);
	q_close_slot(&r, f, 1, 4);
	CHECK_RES(ut_run_ud(&r, 4), -EINVAL);
	TRY(slot_reads(&r, 0, "closing!"));
	q_close_slot(&r, 0, 1, 5);
	CHECK_RES(ut_run_ud(&r, 5), 0);
	TRY(slot_reads(&r, 0, NULL));
	char b[8];
	CHECK_EQ(pread(f, b, 8, 0), 8);
	q_close_slot(&r, 0, 1, 6)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run_ud(&r, 6), -EBADF);
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(openat2, T(how_checks), T(beneath), T(in_root), T(no_symlinks), T(op_openat2),
	  T(direct_open), T(close_slot));
