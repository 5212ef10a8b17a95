/*
 * IORING_OP_PIPE (Linux 6.16): pipe2(2) as a request. sqe->addr points to int[2],
 * pipe_flags (the word READ/WRITE call rw_flags) takes O_CLOEXEC, O_NONBLOCK and
 * O_DIRECT; with sqe->file_index the two ends go to fixed slots instead of the file
 * table: file_index - 1 for the read end and file_index for the write end, or two free
 * slots with IORING_FILE_INDEX_ALLOC.
 */
#include "ut.h"

#include <fcntl.h>

#define OP_PIPE 62

/* Queue a PIPE into `fds` with `flags` (and file_index `slot`). */
static struct io_uring_sqe *q_pipe(struct io_uring *r, int *fds, unsigned flags, unsigned slot,
				   uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = OP_PIPE;
	sqe->fd = 0;
	sqe->addr = (uint64_t)(uintptr_t)fds;
	sqe->rw_flags = (int)flags; /* pipe_flags */
	sqe->file_index = slot;
	sqe->user_data = ud;
	return sqe;
}

/* Write 5 bytes into w, read them back from r (both normal descriptors). */
static int pipe_works(int rd, int wr, const char *file, int line)
{
	char buf[8] = { 0 };
	if (write(wr, "pipe!", 5) != 5)
		return ut_fail(file, line, "write to %d: %s", wr, ut_errname(errno));
	if (read(rd, buf, sizeof buf) != 5 || memcmp(buf, "pipe!", 5))
		return ut_fail(file, line, "read from %d: %s", rd, ut_errname(errno));
	return UT_OK;
}

static int plain(void)
{
	/* res 0; the two lowest free descriptors, as pipe(2) would pick; no flags */
	GATE(OP_PIPE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int want[2];
	CHECK_OK(pipe(want));
	close(want[0]);
	close(want[1]);
	int fds[2] = { -7, -7 };
	q_pipe(&r, fds, 0, 0, 0x10);
	CHECK_RES(ut_run_ud(&r, 0x10), 0);
	CHECK_EQ(fds[0], want[0]);
	CHECK_EQ(fds[1], want[1]);
	TRY(pipe_works(fds[0], fds[1], __FILE__, __LINE__));
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(fcntl(fds[i], F_GETFD), 0);
		int fl = fcntl(fds[i], F_GETFL);
		CHECK_EQ(fl & O_ACCMODE, i == 0 ? O_RDONLY : O_WRONLY);
		CHECK_EQ(fl & (O_NONBLOCK | O_DIRECT), 0);
	}
	/* the write end, once closed, gives the reader EOF */
	close(fds[1]);
	char c;
	CHECK_EQ(read(fds[0], &c, 1), 0);
	close(fds[0]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int flags(void)
{
	/*
	 * O_CLOEXEC -> FD_CLOEXEC and O_NONBLOCK in F_GETFL on both ends; O_DIRECT (packet
	 * mode) in the write end's F_GETFL only, as pipe2(2) does
	 */
	GATE(OP_PIPE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	static const unsigned sets[] = { O_CLOEXEC, O_NONBLOCK, O_DIRECT,
					 O_CLOEXEC | O_NONBLOCK | O_DIRECT };
	for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
		unsigned f = sets[k];
		int fds[2] = { -1, -1 };
		q_pipe(&r, fds, f, 0, 0x20 + k);
		CHECK_RES(ut_run_ud(&r, 0x20 + k), 0);
		CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1]);
		for (int i = 0; i < 2; i++) {
			CHECK_EQ(fcntl(fds[i], F_GETFD), (f & O_CLOEXEC) ? FD_CLOEXEC : 0);
			int fl = fcntl(fds[i], F_GETFL);
			CHECK_EQ(fl & O_NONBLOCK, f & O_NONBLOCK);
			/* as pipe2(2): O_DIRECT shows on the write end only */
			CHECK_EQ(fl & O_DIRECT, i == 1 ? (f & O_DIRECT) : 0);
		}
		char c;
		if (f & O_NONBLOCK)
			CHECK_ERR(read(fds[0], &c, 1), EAGAIN);
		TRY(pipe_works(fds[0], fds[1], __FILE__, __LINE__));
		if (f & O_DIRECT) {
			/* packet mode: one write, one read, however large the buffer */
			char buf[16];
			CHECK_EQ(write(fds[1], "ab", 2), 2);
			CHECK_EQ(write(fds[1], "cde", 3), 3);
			CHECK_EQ(read(fds[0], buf, sizeof buf), 2);
			CHECK_EQ(read(fds[0], buf, sizeof buf), 3);
		}
		close(fds[0]);
		close(fds[1]);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_input(void)
{
	/*
	 * -EINVAL for a pipe_flags bit other than O_CLOEXEC/O_NONBLOCK/O_DIRECT (and
	 * O_NOTIFICATION_PIPE), and for sqe->fd, off or addr3 set; -EFAULT for an
	 * unwritable addr. None of them leaves a descriptor behind.
	 */
	GATE(OP_PIPE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int before = ut_lowest_free_fd();
	int fds[2] = { -1, -1 };
	for (int k = 0; k < 7; k++) {
		struct io_uring_sqe *sqe = q_pipe(&r, fds, 0, 0, 0x30 + k);
		int want = -EINVAL;
		const char *what = "";
		switch (k) {
		case 0: sqe->rw_flags = O_APPEND; what = "O_APPEND"; break;
		case 1: sqe->rw_flags = (int)(1U << 31); what = "1<<31"; break;
		case 2: sqe->rw_flags = O_CLOEXEC | O_SYNC; what = "O_CLOEXEC|O_SYNC"; break;
		case 3: sqe->fd = 3; what = "fd 3"; break;
		case 4: sqe->off = 1; what = "off 1"; break;
		case 5: sqe->addr3 = 1; what = "addr3 1"; break;
		case 6: sqe->addr = 8; want = -EFAULT; what = "addr 8"; break;
		}
		int res = ut_run_ud(&r, 0x30 + k);
		if (res != want)
			FAIL("%s: %d (%s), expected %d (%s)", what, res, ut_resname(res), want,
			     ut_resname(want));
		CHECK_EQ(fds[0], -1);
		CHECK_EQ(fds[1], -1);
	}
	/* addr 8 with O_CLOEXEC too: the half-made pipe is undone */
	q_pipe(&r, (int *)8, O_CLOEXEC, 0, 0x3f);
	CHECK_RES(ut_run_ud(&r, 0x3f), -EFAULT);
	CHECK_EQ(ut_lowest_free_fd(), before);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* READ (or WRITE) `n` bytes through fixed slot `slot`: the res. */
static int rw_slot(struct io_uring *r, int write_op, int slot, void *buf, unsigned n)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	if (write_op)
		io_uring_prep_write(sqe, slot, buf, n, 0);
	else
		io_uring_prep_read(sqe, slot, buf, n, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x7a;
	return ut_run_ud(r, 0x7a);
}

/* Slots rd and wr of `r` are the two ends of one pipe. */
static int fixed_pipe_works(struct io_uring *r, int rd, int wr, const char *file, int line)
{
	char buf[8] = { 0 };
	int res = rw_slot(r, 1, wr, (char *)"fixed", 5);
	if (res != 5)
		return ut_fail(file, line, "WRITE to slot %d: %d (%s)", wr, res, ut_resname(res));
	res = rw_slot(r, 0, rd, buf, sizeof buf);
	if (res != 5 || memcmp(buf, "fixed", 5))
		return ut_fail(file, line, "READ from slot %d: %d (%s)", rd, res, ut_resname(res));
	/* and not the other way round */
	res = rw_slot(r, 0, wr, buf, sizeof buf);
	if (res != -EBADF)
		return ut_fail(file, line, "READ from the write end (slot %d): %d (%s), expected EBADF",
			       wr, res, ut_resname(res));
	return UT_OK;
}

static int fixed_slots(void)
{
	/*
	 * file_index N: the read end in slot N-1, the write end in slot N; res 0, the
	 * int[2] gets the two slot indices (N-1, N); nothing in the file table. Filled
	 * slots are replaced.
	 */
	GATE(OP_PIPE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int table[4] = { -1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int before = ut_lowest_free_fd();
	int fds[2] = { -7, -7 };
	q_pipe(&r, fds, 0, 2, 0x40);
	CHECK_RES(ut_run_ud(&r, 0x40), 0);
	CHECK_EQ(fds[0], 1);
	CHECK_EQ(fds[1], 2);
	CHECK_EQ(ut_lowest_free_fd(), before);
	TRY(fixed_pipe_works(&r, 1, 2, __FILE__, __LINE__));
	char c;
	CHECK_RES(rw_slot(&r, 0, 0, &c, 1), -EBADF);
	CHECK_RES(rw_slot(&r, 0, 3, &c, 1), -EBADF);
	/* again over slots 2 and 3: slot 2 (the old write end) is replaced */
	q_pipe(&r, fds, O_NONBLOCK, 3, 0x41);
	CHECK_RES(ut_run_ud(&r, 0x41), 0);
	CHECK_EQ(fds[0], 2);
	CHECK_EQ(fds[1], 3);
	TRY(fixed_pipe_works(&r, 2, 3, __FILE__, __LINE__));
	/*
	 * O_NONBLOCK or not, an io_uring READ of an empty pipe waits (Linux arms a poll)
	 * until a WRITE fills it
	 */
	struct io_uring_sqe *sqe = ut_sqe(&r);
	io_uring_prep_read(sqe, 2, &c, 1, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x42;
	SUBMIT_NONE(&r, 1);
	struct io_uring_cqe cqe;
	CHECK_EQ(ut_wait_cqe_ms(&r, &cqe, 20), -ETIME);
	sqe = ut_sqe(&r);
	io_uring_prep_write(sqe, 3, "z", 1, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x43;
	CHECK_EQ(io_uring_submit(&r), 1);
	int seen = 0;
	for (int i = 0; i < 2; i++) {
		CHECK_OK(ut_wait_cqe_ms(&r, &cqe, 5000));
		CHECK(cqe.user_data == 0x42 || cqe.user_data == 0x43);
		CHECK_RES(cqe.res, 1);
		seen |= 1 << (cqe.user_data - 0x42);
	}
	CHECK_EQ(seen, 3);
	CHECK_EQ(c, 'z');
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_alloc(void)
{
	/* IORING_FILE_INDEX_ALLOC: two free slots, their indices written to int[2] */
	GATE(OP_PIPE);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int table[4] = { 0, -1, -1, -1 }; /* slot 0 taken (stdin) */
	CHECK_OK(io_uring_register_files(&r, table, 4));
	int fds[2] = { -7, -7 };
	q_pipe(&r, fds, 0, IORING_FILE_INDEX_ALLOC, 0x50);
	CHECK_RES(ut_run_ud(&r, 0x50), 0);
	CHECK_EQ(fds[0], 1);
	CHECK_EQ(fds[1], 2);
	TRY(fixed_pipe_works(&r, 1, 2, __FILE__, __LINE__));
	/* one slot left: -ENFILE, and the slot it took for the read end is free again */
	fds[0] = fds[1] = -7;
	q_pipe(&r, fds, 0, IORING_FILE_INDEX_ALLOC, 0x51);
	CHECK_RES(ut_run_ud(&r, 0x51), -ENFILE);
	CHECK_EQ(fds[0], -7);
	char c;
	CHECK_RES(rw_slot(&r, 0, 3, &c, 1), -EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int fixed_errors(void)
{
	/*
	 * With file_index: O_CLOEXEC is -EINVAL; no table -ENXIO; a write end past the
	 * table -EINVAL (the read end's slot is emptied again); an unwritable addr -EFAULT
	 * (both slots emptied again).
	 */
	GATE(OP_PIPE);
	struct io_uring r, none;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&none, 4));
	int fds[2] = { -7, -7 };
	q_pipe(&none, fds, 0, 1, 0x60);
	CHECK_RES(ut_run_ud(&none, 0x60), -ENXIO);
	int table[3] = { -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&r, table, 3));
	q_pipe(&r, fds, O_CLOEXEC, 1, 0x61);
	CHECK_RES(ut_run_ud(&r, 0x61), -EINVAL);
	q_pipe(&r, fds, 0, 3, 0x62); /* slots 2 and 3; 3 is past the end */
	CHECK_RES(ut_run_ud(&r, 0x62), -EINVAL);
	q_pipe(&r, fds, 0, 4, 0x63); /* slots 3 and 4 */
	CHECK_RES(ut_run_ud(&r, 0x63), -EINVAL);
	CHECK_EQ(fds[0], -7);
	q_pipe(&r, (int *)8, 0, 1, 0x64);
	CHECK_RES(ut_run_ud(&r, 0x64), -EFAULT);
	char c;
	for (int s = 0; s < 3; s++)
		CHECK_RES(rw_slot(&r, 0, s, &c, 1), -EBADF);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&none);
	return UT_OK;
}

UT_FAMILY(pipeop, T(plain), T(flags), T(bad_input), T(fixed_slots), T(fixed_alloc),
	  T(fixed_errors));
