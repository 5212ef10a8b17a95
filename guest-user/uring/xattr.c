/*
 * Extended attributes: the xattr syscalls (by path, by path without following a final
 * symlink, by descriptor) and IORING_OP_FSETXATTR/SETXATTR/FGETXATTR/GETXATTR (5.19),
 * in the `user.` namespace, with Linux's errors. Run with --dir on a 9p share too (the
 * tests set no empty value: 9P2000.L removes with one).
 */
#include "ut.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/xattr.h>

#define OP_FSETXATTR 41
#define OP_SETXATTR 42
#define OP_FGETXATTR 43
#define OP_GETXATTR 44

/* Whether `list` (n bytes of NUL-terminated names) holds `name`. */
static int listed(const char *list, ssize_t n, const char *name)
{
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
		if (!strcmp(list + i, name))
			return 1;
	return 0;
}

static int roundtrip(void)
{
	/*
	 * setxattr/getxattr/listxattr/removexattr on a file by path, by fd and with the
	 * l-variants: XATTR_CREATE of an existing name EEXIST, XATTR_REPLACE of a missing
	 * one ENODATA; get with size 0 gives the length, with a short buffer ERANGE; list
	 * likewise; remove makes get ENODATA, and a second remove ENODATA too.
	 */
	char path[256];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	int r = setxattr(path, "user.first", "one", 3, 0);
	if (r < 0 && errno == ENOTSUP)
		return UT_UNSUP; /* a host file system without user attributes */
	CHECK_OK(r);
	CHECK_ERR(setxattr(path, "user.first", "two", 3, XATTR_CREATE), EEXIST);
	CHECK_ERR(setxattr(path, "user.none", "x", 1, XATTR_REPLACE), ENODATA);
	CHECK_OK(fsetxattr(fd, "user.second", "second!", 7, XATTR_CREATE));
	CHECK_OK(lsetxattr(path, "user.first", "uno", 3, XATTR_REPLACE));
	char buf[64];
	CHECK_EQ(getxattr(path, "user.first", NULL, 0), 3);
	CHECK_EQ(getxattr(path, "user.first", buf, sizeof buf), 3);
	CHECK(!memcmp(buf, "uno", 3));
	CHECK_EQ(fgetxattr(fd, "user.second", buf, sizeof buf), 7);
	CHECK(!memcmp(buf, "second!", 7));
	CHECK_ERR(lgetxattr(path, "user.second", buf, 3), ERANGE);
	CHECK_ERR(getxattr(path, "user.none", buf, sizeof buf), ENODATA);
	ssize_t n = listxattr(path, NULL, 0);
	CHECK(n >= 23); /* user.first, user.second (and any other namespace's names) */
	char list[512];
	CHECK_EQ(flistxattr(fd, list, sizeof list), n);
	CHECK(listed(list, n, "user.first") && listed(list, n, "user.second"));
	CHECK_ERR(llistxattr(path, list, 5), ERANGE);
	CHECK_OK(removexattr(path, "user.first"));
	CHECK_ERR(getxattr(path, "user.first", buf, sizeof buf), ENODATA);
	CHECK_ERR(removexattr(path, "user.first"), ENODATA);
	CHECK_OK(fremovexattr(fd, "user.second"));
	CHECK_ERR(lremovexattr(path, "user.second"), ENODATA);
	close(fd);
	return UT_OK;
}

static int errors(void)
{
	/*
	 * An empty name or one over 255 bytes: ERANGE. An unknown namespace: EOPNOTSUPP.
	 * Flags other than CREATE/REPLACE: EINVAL. A value over 64 KiB: E2BIG; an unreadable
	 * one EFAULT. `user.` attributes of a symlink: EPERM to set, ENODATA to read. An
	 * O_PATH descriptor: EBADF. A missing file: ENOENT.
	 */
	char path[256], link[300];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	if (setxattr(path, "user.probe", "x", 1, 0) < 0 && errno == ENOTSUP)
		return UT_UNSUP;
	char longname[300];
	memset(longname, 'a', sizeof longname);
	memcpy(longname, "user.", 5);
	longname[256] = 0;
	CHECK_ERR(setxattr(path, "", "x", 1, 0), ERANGE);
	CHECK_ERR(setxattr(path, longname, "x", 1, 0), ERANGE);
	CHECK_ERR(getxattr(path, longname, NULL, 0), ERANGE);
	CHECK_ERR(setxattr(path, "nosuch.ns", "x", 1, 0), ENOTSUP);
	CHECK_ERR(getxattr(path, "nosuch.ns", NULL, 0), ENOTSUP);
	CHECK_ERR(setxattr(path, "user.x", "x", 1, 4), EINVAL);
	char *big = calloc(1, 65537);
	CHECK(big != NULL);
	CHECK_ERR(setxattr(path, "user.x", big, 65537, 0), E2BIG);
	free(big);
	CHECK_ERR(setxattr(path, "user.x", NULL, 4, 0), EFAULT);
	snprintf(link, sizeof link, "%s.lnk", path);
	CHECK_OK(symlink(path, link));
	CHECK_ERR(lsetxattr(link, "user.x", "x", 1, 0), EPERM);
	CHECK_ERR(lgetxattr(link, "user.x", NULL, 0), ENODATA);
	CHECK_EQ(getxattr(link, "user.probe", NULL, 0), 1); /* followed to the file */
	int o = open(path, O_PATH);
	CHECK_OK(o);
	CHECK_ERR(fsetxattr(o, "user.x", "x", 1, 0), EBADF);
	CHECK_ERR(fgetxattr(o, "user.x", NULL, 0), EBADF);
	close(o);
	CHECK_ERR(setxattr("/nonexistent/file", "user.x", "x", 1, 0), ENOENT);
	unlink(link);
	close(fd);
	return UT_OK;
}

static int large_and_dirs(void)
{
	/* A larger value round-trips; a directory takes user attributes too. */
	char path[256];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	if (setxattr(path, "user.probe", "x", 1, 0) < 0 && errno == ENOTSUP)
		return UT_UNSUP;
	/* 2000 bytes: ext4 keeps a file's attributes in one block */
	char v[2000], back[2000];
	ut_pattern(v, sizeof v, 9);
	CHECK_OK(fsetxattr(fd, "user.big", v, sizeof v, 0));
	CHECK_EQ(fgetxattr(fd, "user.big", back, sizeof back), sizeof v);
	CHECK(!memcmp(v, back, sizeof v));
	CHECK_OK(setxattr(ut_dir, "user.dirattr", "d", 1, 0));
	char b[4];
	CHECK_EQ(getxattr(ut_dir, "user.dirattr", b, sizeof b), 1);
	CHECK_OK(removexattr(ut_dir, "user.dirattr"));
	close(fd);
	return UT_OK;
}

static struct io_uring_sqe *q_xattr(struct io_uring *r, int op, int fd, const char *path, const char *name,
				    void *value, unsigned len, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe);
	sqe->opcode = op;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)name;
	sqe->off = (uintptr_t)value;
	sqe->len = len;
	sqe->rw_flags = (int)flags;
	sqe->addr3 = (uintptr_t)path;
	sqe->user_data = ud;
	return sqe;
}

static int ops(void)
{
	/*
	 * The io_uring ops answer as the syscalls: sets 0, gets the length (size 0: only
	 * that), ERANGE, ENODATA, EEXIST; flags on a get EINVAL. FGETXATTR takes a fixed
	 * file; the path ops with IOSQE_FIXED_FILE are EBADF.
	 */
	GATE(OP_FSETXATTR);
	char path[256];
	int fd = ut_tmpfile("f", O_RDWR, path);
	CHECK_OK(fd);
	if (setxattr(path, "user.probe", "x", 1, 0) < 0 && errno == ENOTSUP)
		return UT_UNSUP;
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	char val[] = "via ring", buf[32];
	q_xattr(&r, OP_FSETXATTR, fd, NULL, "user.a", val, 8, 0, 1);
	CHECK_RES(ut_run_ud(&r, 1), 0);
	CHECK_EQ(getxattr(path, "user.a", buf, sizeof buf), 8);
	CHECK(!memcmp(buf, "via ring", 8));
	q_xattr(&r, OP_SETXATTR, -1, path, "user.a", val, 3, XATTR_CREATE, 2);
	CHECK_RES(ut_run_ud(&r, 2), -EEXIST);
	q_xattr(&r, OP_SETXATTR, -1, path, "user.b", val, 3, 0, 3);
	CHECK_RES(ut_run_ud(&r, 3), 0);
	memset(buf, 0, sizeof buf);
	q_xattr(&r, OP_FGETXATTR, fd, NULL, "user.b", buf, sizeof buf, 0, 4);
	CHECK_RES(ut_run_ud(&r, 4), 3);
	CHECK(!memcmp(buf, "via", 3));
	q_xattr(&r, OP_GETXATTR, -1, path, "user.a", NULL, 0, 0, 5);
	CHECK_RES(ut_run_ud(&r, 5), 8);
	q_xattr(&r, OP_GETXATTR, -1, path, "user.a", buf, 2, 0, 6);
	CHECK_RES(ut_run_ud(&r, 6), -ERANGE);
	q_xattr(&r, OP_FGETXATTR, fd, NULL, "user.none", buf, sizeof buf, 0, 7);
	CHECK_RES(ut_run_ud(&r, 7), -ENODATA);
	q_xattr(&r, OP_FGETXATTR, fd, NULL, "user.a", buf, sizeof buf, 1, 8);
	CHECK_RES(ut_run_ud(&r, 8), -EINVAL);
	CHECK_OK(io_uring_register_files(&r, &fd, 1));
	q_xattr(&r, OP_FGETXATTR, 0, NULL, "user.a", buf, sizeof buf, 0, 9)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run_ud(&r, 9), 8);
	q_xattr(&r, OP_GETXATTR, 0, path, "user.a", buf, sizeof buf, 0, 11)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run_ud(&r, 11), -EBADF);
	q_xattr(&r, OP_SETXATTR, 0, path, "user.a", buf, 3, 0, 12)->flags = IOSQE_FIXED_FILE;
	CHECK_RES(ut_run_ud(&r, 12), -EBADF);
	q_xattr(&r, OP_GETXATTR, -1, "/nonexistent/file", "user.a", buf, sizeof buf, 0, 10);
	CHECK_RES(ut_run_ud(&r, 10), -ENOENT);
	io_uring_queue_exit(&r);
	close(fd);
	return UT_OK;
}

UT_FAMILY(xattr, T(roundtrip), T(errors), T(large_and_dirs), T(ops));
