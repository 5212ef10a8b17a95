/*
 * Moving files between the fixed table and the file table by request:
 * IORING_OP_FIXED_FD_INSTALL (Linux 6.8) gives a fixed slot (sqe->fd with
 * IOSQE_FIXED_FILE) a normal descriptor, O_CLOEXEC unless install_fd_flags has
 * IORING_FIXED_FD_NO_CLOEXEC; IORING_OP_FILES_UPDATE fills slots from an int array
 * (addr, len entries) starting at slot off, or picks free slots when off is
 * IORING_FILE_INDEX_ALLOC and writes their indices back into the array.
 */
#include "ut.h"

#include <fcntl.h>

#define OP_FIXED_FD_INSTALL 54
#define FIXED_FD_NO_CLOEXEC (1U << 0)

/* A file holding 16 bytes: `text` (8 bytes) twice. */
static int text_file(const char *tag, const char *text)
{
	int fd = ut_tmpfile(tag, O_RDWR, NULL);
	if (fd < 0)
		return fd;
	if (write(fd, text, 8) != 8 || write(fd, text, 8) != 8)
		return -EIO;
	return fd;
}

/* READ 8 bytes at offset 0 through fixed slot `slot`: the res; the bytes in buf[9]. */
static int read_slot(struct io_uring *r, int slot, char *buf)
{
	memset(buf, 0, 9);
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_read(sqe, slot, buf, 8, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x7ead;
	return ut_run_ud(r, 0x7ead);
}
/* slot `slot` reads `text` */
#define SLOT_IS(r, slot, text)                                                 \
	do {                                                                   \
		char _b[9];                                                    \
		CHECK_RES(read_slot((r), (slot), _b), 8);                     \
		if (memcmp(_b, (text), 8))                                     \
			FAIL("slot %d reads '%s', expected '%s'", (slot), _b, (text)); \
	} while (0)
#define SLOT_EMPTY(r, slot)                                                    \
	do {                                                                   \
		char _b[9];                                                    \
		CHECK_RES(read_slot((r), (slot), _b), -EBADF);                \
	} while (0)

/* ---- IORING_OP_FIXED_FD_INSTALL -------------------------------------------- */

static struct io_uring_sqe *q_install(struct io_uring *r, int slot, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = OP_FIXED_FD_INSTALL;
	sqe->fd = slot;
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->rw_flags = (int)flags; /* install_fd_flags */
	sqe->user_data = ud;
	return sqe;
}

static int install(void)
{
	/*
	 * res is a new descriptor, the lowest free one, for the slot's file (the same
	 * open file: they share the offset); FD_CLOEXEC set by default, clear with
	 * NO_CLOEXEC. The slot keeps its file.
	 */
	GATE(OP_FIXED_FD_INSTALL);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f = text_file("f", "install!");
	CHECK_OK(f);
	CHECK_OK(io_uring_register_files(&r, &f, 1));
	close(f);
	int want = ut_lowest_free_fd();
	q_install(&r, 0, 0, 0x10);
	int fd1 = ut_run_ud(&r, 0x10);
	CHECK_EQ(fd1, want);
	CHECK_EQ(fcntl(fd1, F_GETFD), FD_CLOEXEC);
	CHECK_EQ(fcntl(fd1, F_GETFL) & O_ACCMODE, O_RDWR);
	q_install(&r, 0, FIXED_FD_NO_CLOEXEC, 0x11);
	int fd2 = ut_run_ud(&r, 0x11);
	CHECK(fd2 >= 0 && fd2 != fd1);
	CHECK_EQ(fcntl(fd2, F_GETFD), 0);
	/* one open file: a read through one descriptor moves the other's offset */
	CHECK_EQ(lseek(fd1, 0, SEEK_SET), 0);
	char buf[9] = { 0 };
	CHECK_EQ(read(fd1, buf, 4), 4);
	CHECK_EQ(read(fd2, buf + 4, 4), 4);
	CHECK(memcmp(buf, "install!", 8) == 0);
	CHECK_EQ(lseek(fd1, 0, SEEK_CUR), 8);
	close(fd1);
	close(fd2);
	SLOT_IS(&r, 0, "install!");
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int install_errors(void)
{
	/*
	 * Without IOSQE_FIXED_FILE: -EBADF. Slot empty, past the table, or no table:
	 * -EBADF. install_fd_flags other than NO_CLOEXEC, or off, addr, len, buf_index,
	 * splice_fd_in or addr3 set: -EINVAL. No descriptor appears for any of them.
	 */
	GATE(OP_FIXED_FD_INSTALL);
	struct io_uring r, none;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&none, 4));
	int f = text_file("f", "errors!!");
	CHECK_OK(f);
	int table[2] = { f, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 2));
	int before = ut_lowest_free_fd();
	for (int k = 0; k < 11; k++) {
		struct io_uring_sqe *sqe = q_install(&r, 0, 0, 0x20 + k);
		int want = -EINVAL;
		const char *what = "";
		switch (k) {
		case 0: sqe->flags = 0; sqe->fd = f; want = -EBADF; what = "no IOSQE_FIXED_FILE"; break;
		case 1: sqe->fd = 1; want = -EBADF; what = "empty slot"; break;
		case 2: sqe->fd = 2; want = -EBADF; what = "slot past the table"; break;
		case 3: sqe->rw_flags = 2; what = "install_fd_flags 2"; break;
		case 4: sqe->rw_flags = (int)(FIXED_FD_NO_CLOEXEC | (1U << 31)); what = "install_fd_flags 1|1<<31"; break;
		case 5: sqe->off = 1; what = "off"; break;
		case 6: sqe->addr = 1; what = "addr"; break;
		case 7: sqe->len = 1; what = "len"; break;
		case 8: sqe->buf_index = 1; what = "buf_index"; break;
		case 9: sqe->splice_fd_in = 1; what = "splice_fd_in"; break;
		case 10: sqe->addr3 = 1; what = "addr3"; break;
		}
		int res = ut_run_ud(&r, 0x20 + k);
		if (res != want)
			FAIL("%s: %d (%s), expected %d (%s)", what, res, ut_resname(res), want,
			     ut_resname(want));
	}
	q_install(&none, 0, 0, 0x2f);
	CHECK_RES(ut_run_ud(&none, 0x2f), -EBADF);
	CHECK_EQ(ut_lowest_free_fd(), before);
	close(f);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&none);
	return UT_OK;
}

/* ---- IORING_OP_FILES_UPDATE ------------------------------------------------ */

static struct io_uring_sqe *q_update(struct io_uring *r, int *fds, unsigned n, unsigned off,
				     uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = IORING_OP_FILES_UPDATE;
	sqe->fd = -1;
	sqe->addr = (uint64_t)(uintptr_t)fds;
	sqe->len = n;
	sqe->off = off;
	sqe->user_data = ud;
	return sqe;
}

static int update(void)
{
	/*
	 * res is the number of slots updated; fd -1 empties a slot, IORING_REGISTER_FILES_SKIP
	 * (-2) leaves it as it is. The array is not written.
	 */
	GATE(IORING_OP_FILES_UPDATE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f1 = text_file("one", "update-1"), f2 = text_file("two", "update-2");
	CHECK_OK(f1);
	CHECK_OK(f2);
	int table[4] = { -1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int fds[2] = { f1, f2 };
	q_update(&r, fds, 2, 1, 0x30);
	CHECK_RES(ut_run_ud(&r, 0x30), 2);
	CHECK_EQ(fds[0], f1);
	CHECK_EQ(fds[1], f2);
	SLOT_EMPTY(&r, 0);
	SLOT_IS(&r, 1, "update-1");
	SLOT_IS(&r, 2, "update-2");
	SLOT_EMPTY(&r, 3);
	/* the table holds its own references */
	close(f1);
	close(f2);
	SLOT_IS(&r, 2, "update-2");
	int clr[3] = { -1, IORING_REGISTER_FILES_SKIP, -1 };
	q_update(&r, clr, 3, 1, 0x31);
	CHECK_RES(ut_run_ud(&r, 0x31), 3);
	SLOT_EMPTY(&r, 1);
	SLOT_IS(&r, 2, "update-2");
	SLOT_EMPTY(&r, 3);
	/* -1 on an empty slot counts too */
	q_update(&r, clr, 1, 0, 0x32);
	CHECK_RES(ut_run_ud(&r, 0x32), 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int update_alloc(void)
{
	/*
	 * off = IORING_FILE_INDEX_ALLOC: each fd goes to a free slot and the array entry
	 * is overwritten with that slot's index; res is the count. When the table fills,
	 * the count so far (or -ENFILE if none).
	 */
	GATE(IORING_OP_FILES_UPDATE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f1 = text_file("one", "alloc--1"), f2 = text_file("two", "alloc--2");
	CHECK_OK(f1);
	CHECK_OK(f2);
	int table[4] = { f1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int fds[2] = { f2, f1 };
	q_update(&r, fds, 2, IORING_FILE_INDEX_ALLOC, 0x40);
	CHECK_RES(ut_run_ud(&r, 0x40), 2);
	CHECK_EQ(fds[0], 1);
	CHECK_EQ(fds[1], 2);
	SLOT_IS(&r, 1, "alloc--2");
	SLOT_IS(&r, 2, "alloc--1");
	/* one slot left for two */
	int more[2] = { f2, f2 };
	q_update(&r, more, 2, IORING_FILE_INDEX_ALLOC, 0x41);
	CHECK_RES(ut_run_ud(&r, 0x41), 1);
	CHECK_EQ(more[0], 3);
	CHECK_EQ(more[1], f2);
	SLOT_IS(&r, 3, "alloc--2");
	more[0] = f2;
	q_update(&r, more, 1, IORING_FILE_INDEX_ALLOC, 0x42);
	CHECK_RES(ut_run_ud(&r, 0x42), -ENFILE);
	CHECK_EQ(more[0], f2);
	close(f1);
	close(f2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int alloc_hint(void)
{
	/*
	 * Allocation is next-fit: the search starts at a hint and wraps around. Filling a
	 * slot (by registration, update or allocation) moves the hint just past it;
	 * emptying one moves the hint onto it.
	 */
	GATE(IORING_OP_FILES_UPDATE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f = text_file("f", "hinted!!");
	CHECK_OK(f);
	int table[4] = { -1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int one[1] = { f };
	q_update(&r, one, 1, 2, 0x70); /* slot 2: the hint moves to 3 */
	CHECK_RES(ut_run_ud(&r, 0x70), 1);
	static const int want[] = { 3, 0 }; /* then it wraps */
	for (int i = 0; i < 2; i++) {
		one[0] = f;
		q_update(&r, one, 1, IORING_FILE_INDEX_ALLOC, 0x71 + i);
		CHECK_RES(ut_run_ud(&r, 0x71 + i), 1);
		CHECK_EQ(one[0], want[i]);
	}
	one[0] = -1;
	q_update(&r, one, 1, 2, 0x73); /* empty slot 2: the hint moves to 2 */
	CHECK_RES(ut_run_ud(&r, 0x73), 1);
	static const int want2[] = { 2, 1 };
	for (int i = 0; i < 2; i++) {
		one[0] = f;
		q_update(&r, one, 1, IORING_FILE_INDEX_ALLOC, 0x74 + i);
		CHECK_RES(ut_run_ud(&r, 0x74 + i), 1);
		CHECK_EQ(one[0], want2[i]);
	}
	for (int s = 0; s < 4; s++)
		SLOT_IS(&r, s, "hinted!!");
	close(f);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int update_partial(void)
{
	/*
	 * A bad descriptor stops the update: res is the number done before it, or -EBADF
	 * if it was the first. An io_uring descriptor is refused the same way.
	 */
	GATE(IORING_OP_FILES_UPDATE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int f1 = text_file("one", "partial1"), f2 = text_file("two", "partial2");
	CHECK_OK(f1);
	CHECK_OK(f2);
	int table[4] = { -1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int fds[3] = { f1, 999, f2 };
	q_update(&r, fds, 3, 0, 0x50);
	CHECK_RES(ut_run_ud(&r, 0x50), 1);
	SLOT_IS(&r, 0, "partial1");
	SLOT_EMPTY(&r, 1);
	SLOT_EMPTY(&r, 2);
	q_update(&r, fds + 1, 2, 2, 0x51);
	CHECK_RES(ut_run_ud(&r, 0x51), -EBADF);
	SLOT_EMPTY(&r, 2);
	SLOT_EMPTY(&r, 3);
	int ringfd[2] = { f2, r.ring_fd };
	q_update(&r, ringfd, 2, 2, 0x52);
	CHECK_RES(ut_run_ud(&r, 0x52), 1);
	SLOT_IS(&r, 2, "partial2");
	SLOT_EMPTY(&r, 3);
	q_update(&r, ringfd + 1, 1, 3, 0x53);
	CHECK_RES(ut_run_ud(&r, 0x53), -EBADF);
	/*
	 * with ALLOC: the same, and the entries after the bad one are left alone (the
	 * free slot taken is 3, after slot 2 filled last: see alloc_hint)
	 */
	int al[3] = { f1, 999, f2 };
	q_update(&r, al, 3, IORING_FILE_INDEX_ALLOC, 0x54);
	CHECK_RES(ut_run_ud(&r, 0x54), 1);
	CHECK_EQ(al[0], 3);
	CHECK_EQ(al[1], 999);
	CHECK_EQ(al[2], f2);
	SLOT_IS(&r, 3, "partial1");
	SLOT_EMPTY(&r, 1);
	close(f1);
	close(f2);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int update_errors(void)
{
	/*
	 * No table: -ENXIO (with ALLOC too). len 0, a range past the table, or
	 * rw_flags/splice_fd_in set: -EINVAL. An unreadable array: -EFAULT.
	 */
	GATE(IORING_OP_FILES_UPDATE);
	struct io_uring r, none;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&none, 4));
	int f1 = text_file("one", "errors-1");
	CHECK_OK(f1);
	int table[2] = { -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 2));
	int fds[3] = { f1, f1, f1 };
	q_update(&none, fds, 1, 0, 0x60);
	CHECK_RES(ut_run_ud(&none, 0x60), -ENXIO);
	q_update(&none, fds, 1, IORING_FILE_INDEX_ALLOC, 0x61);
	CHECK_RES(ut_run_ud(&none, 0x61), -ENXIO);
	CHECK_EQ(fds[0], f1);
	q_update(&r, fds, 0, 0, 0x62);
	CHECK_RES(ut_run_ud(&r, 0x62), -EINVAL);
	q_update(&r, fds, 3, 0, 0x63);
	CHECK_RES(ut_run_ud(&r, 0x63), -EINVAL);
	q_update(&r, fds, 1, 2, 0x64);
	CHECK_RES(ut_run_ud(&r, 0x64), -EINVAL);
	q_update(&r, fds, 1, 0xfffffffe, 0x65);
	CHECK_RES(ut_run_ud(&r, 0x65), -EINVAL);
	struct io_uring_sqe *sqe = q_update(&r, fds, 1, 0, 0x66);
	sqe->rw_flags = 1;
	CHECK_RES(ut_run_ud(&r, 0x66), -EINVAL);
	sqe = q_update(&r, fds, 1, 0, 0x67);
	sqe->splice_fd_in = 1;
	CHECK_RES(ut_run_ud(&r, 0x67), -EINVAL);
	SLOT_EMPTY(&r, 0);
	SLOT_EMPTY(&r, 1);
	q_update(&r, (int *)8, 1, 0, 0x68);
	CHECK_RES(ut_run_ud(&r, 0x68), -EFAULT);
	q_update(&r, (int *)8, 1, IORING_FILE_INDEX_ALLOC, 0x69);
	CHECK_RES(ut_run_ud(&r, 0x69), -EFAULT);
	SLOT_EMPTY(&r, 0);
	SLOT_EMPTY(&r, 1);
	close(f1);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&none);
	return UT_OK;
}

UT_FAMILY(fixedfd, T(install), T(install_errors), T(update), T(update_alloc),
	  T(alloc_hint), T(update_partial), T(update_errors));
