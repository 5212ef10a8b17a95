/*
 * IORING_OP_MSG_RING: one ring posts a CQE to another (IORING_MSG_DATA) or passes it a
 * registered file (IORING_MSG_SEND_FD). sqe->fd is the target ring, sqe->addr the
 * command, sqe->off the target CQE's user_data, sqe->len its res (MSG_DATA),
 * sqe->addr3 the sender's fixed slot and sqe->file_index the target slot plus one
 * (SEND_FD) or the CQE flags (MSG_DATA with FLAGS_PASS), msg_ring_flags the flags.
 */
#include "ut.h"

#include <fcntl.h>

#ifndef IORING_MSG_RING_CQE_SKIP
#define IORING_MSG_RING_CQE_SKIP (1U << 0)
#endif
#define MSG_RING_FLAGS_PASS (1U << 1) /* Linux 6.3; liburing 2.3 lacks it */
#define MSG_DATA 0
#define MSG_SEND_FD 1

/* Queue a MSG_RING to ring fd `target`: command `cmd`, len, off (target user_data). */
static struct io_uring_sqe *q_msg(struct io_uring *r, int target, uint64_t cmd, uint32_t len,
				  uint64_t off, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = IORING_OP_MSG_RING;
	sqe->fd = target;
	sqe->addr = cmd;
	sqe->len = len;
	sqe->off = off;
	sqe->user_data = ud;
	return sqe;
}

/* Submit what is queued and wait for the sender's CQE (user_data `ud`): its res. */
static int send1(struct io_uring *r, uint64_t ud, struct io_uring_cqe *out)
{
	return ut_submit1_ud(r, ud, out);
}


static int data_to_other_ring(void)
{
	/* the target gets user_data = off, res = len, flags 0; the sender res 0 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	static const uint32_t lens[] = { 77, 0, 0x7fffffff, (uint32_t)-5 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		uint64_t data = 0xdead000000000000ull | i;
		q_msg(&a, b.ring_fd, MSG_DATA, lens[i], data, 0x10 + i);
		struct io_uring_cqe s, t;
		CHECK_RES(send1(&a, 0x10 + i, &s), 0);
		CHECK_EQ(s.flags, 0);
		WAIT_UD(&b, data, 5000, &t);
		CHECK_RES(t.res, (int)lens[i]);
		CHECK_EQ(t.flags, 0);
	}
	EMPTY(&a);
	EMPTY(&b);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int data_to_self(void)
{
	/*
	 * A ring may message itself: two CQEs, the message first (posted while the
	 * MSG_RING is issued), then the sender's own completion.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a;
	CHECK_OK(ut_ring(&a, 4));
	q_msg(&a, a.ring_fd, MSG_DATA, 9, 0x5e1f, 0x20);
	CHECK_EQ(io_uring_submit(&a), 1);
	struct io_uring_cqe c[2];
	CHECK_OK(ut_wait_cqe_ms(&a, &c[0], 5000));
	CHECK_OK(ut_wait_cqe_ms(&a, &c[1], 5000));
	CHECK_EQ(c[0].user_data, 0x5e1f);
	CHECK_RES(c[0].res, 9);
	CHECK_EQ(c[1].user_data, 0x20);
	CHECK_RES(c[1].res, 0);
	EMPTY(&a);
	io_uring_queue_exit(&a);
	return UT_OK;
}

static int not_a_ring(void)
{
	/* a target that is open but no ring: -EBADFD; a closed descriptor: -EBADF */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a;
	CHECK_OK(ut_ring(&a, 4));
	int fd = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(fd);
	q_msg(&a, fd, MSG_DATA, 1, 1, 0x30);
	CHECK_RES(send1(&a, 0x30, NULL), -EBADFD);
	q_msg(&a, fd, MSG_SEND_FD, 0, 1, 0x31);
	CHECK_RES(send1(&a, 0x31, NULL), -EBADFD);
	q_msg(&a, 1000, MSG_DATA, 1, 1, 0x32);
	CHECK_RES(send1(&a, 0x32, NULL), -EBADF);
	EMPTY(&a);
	close(fd);
	io_uring_queue_exit(&a);
	return UT_OK;
}

static int bad_fields(void)
{
	/*
	 * -EINVAL, and nothing posted to the target: an unknown command (addr), unknown
	 * msg_ring_flags, buf_index or personality set, and for MSG_DATA: addr3 set,
	 * file_index set without FLAGS_PASS, or CQE_SKIP (it only applies to SEND_FD).
	 * Only the low 32 bits of addr name the command.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	for (int k = 0; k < 8; k++) {
		if (k == 1)
			continue;
		struct io_uring_sqe *sqe = q_msg(&a, b.ring_fd, MSG_DATA, 3, 0x99, 0x40 + k);
		const char *what = "";
		switch (k) {
		case 0: sqe->addr = 2; what = "addr 2"; break;
		case 2: sqe->msg_ring_flags = 1U << 2; what = "msg_ring_flags 1<<2"; break;
		case 3: sqe->buf_index = 1; what = "buf_index"; break;
		case 4: sqe->personality = 1; what = "personality"; break;
		case 5: sqe->addr3 = 1; what = "addr3 (MSG_DATA)"; break;
		case 6: sqe->file_index = 1; what = "file_index without FLAGS_PASS"; break;
		case 7: sqe->msg_ring_flags = IORING_MSG_RING_CQE_SKIP; what = "CQE_SKIP with MSG_DATA"; break;
		}
		int res = send1(&a, 0x40 + k, NULL);
		if (res != -EINVAL)
			FAIL("%s: %d (%s), expected EINVAL", what, res, ut_resname(res));
	}
	EMPTY(&b);
	/* the command is the low 32 bits of addr: 1<<32 is MSG_DATA */
	q_msg(&a, b.ring_fd, 0x100000000ull, 3, 0x9a, 0x48);
	CHECK_RES(send1(&a, 0x48, NULL), 0);
	struct io_uring_cqe t;
	WAIT_UD(&b, 0x9a, 5000, &t);
	CHECK_RES(t.res, 3);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int flags_pass(void)
{
	/* FLAGS_PASS: the target CQE's flags are sqe->file_index, verbatim */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	static const uint32_t fl[] = { 0x1234, 0, 0xabcd0003u, 0xffffffffu };
	for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
		struct io_uring_sqe *sqe = q_msg(&a, b.ring_fd, MSG_DATA, 5, 0x700 + i, 0x50 + i);
		sqe->msg_ring_flags = MSG_RING_FLAGS_PASS;
		sqe->file_index = fl[i];
		struct io_uring_cqe s, t;
		CHECK_RES(send1(&a, 0x50 + i, &s), 0);
		CHECK_EQ(s.flags, 0);
		WAIT_UD(&b, 0x700 + i, 5000, &t);
		CHECK_RES(t.res, 5);
		CHECK_EQ(t.flags, fl[i]);
	}
	EMPTY(&b);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int target_cq_overflow(void)
{
	/*
	 * A full target CQ does not fail the sender (IORING_FEAT_NODROP): every MSG_RING
	 * completes with 0, the target's extra CQEs wait in its overflow list
	 * (IORING_SQ_CQ_OVERFLOW set, cq overflow counter 0) and come out in order.
	 */
	GATE(IORING_OP_MSG_RING);
	if (!(ut_features & IORING_FEAT_NODROP))
		FAIL("no IORING_FEAT_NODROP");
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 16));
	CHECK_OK(ut_ring(&b, 4)); /* CQ holds 8 */
	CHECK_EQ(*b.cq.kring_entries, 8);
	for (int i = 0; i < 12; i++)
		q_msg(&a, b.ring_fd, MSG_DATA, (uint32_t)i, 0x800 + i, 0x60 + i);
	CHECK_EQ(io_uring_submit(&a), 12);
	for (int i = 0; i < 12; i++) {
		struct io_uring_cqe s;
		CHECK_OK(ut_wait_cqe_ms(&a, &s, 5000));
		CHECK_EQ(s.user_data, 0x60 + i);
		CHECK_RES(s.res, 0);
	}
	CHECK_EQ(io_uring_cq_ready(&b), 8);
	CHECK(__atomic_load_n(b.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW);
	CHECK_EQ(*b.cq.koverflow, 0);
	for (int i = 0; i < 12; i++) {
		struct io_uring_cqe t;
		WAIT_UD(&b, 0x800 + i, 5000, &t);
		CHECK_RES(t.res, i);
	}
	CHECK(!(__atomic_load_n(b.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW));
	EMPTY(&b);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int data_to_defer_taskrun(void)
{
	/*
	 * A DEFER_TASKRUN target gets the message as task work of its own: the sender
	 * completes with 0 at once, the CQE shows up only when the target's task enters
	 * the kernel to wait for completions.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	CHECK_OK(io_uring_queue_init_params(4, &b, &p));
	q_msg(&a, b.ring_fd, MSG_DATA, 11, 0xd7, 0x70);
	CHECK_RES(send1(&a, 0x70, NULL), 0);
	struct io_uring_cqe *peek;
	CHECK_EQ(io_uring_peek_cqe(&b, &peek), -EAGAIN);
	CHECK_EQ(ut_enter_ms(b.ring_fd, 0, 1, 5000), 0);
	struct io_uring_cqe t;
	WAIT_UD(&b, 0xd7, 5000, &t);
	CHECK_RES(t.res, 11);
	CHECK_EQ(t.flags, 0);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

/* ---- IORING_MSG_SEND_FD ---------------------------------------------------- */

/* A file holding `text`, its offset at 0. */
static int text_file(const char *tag, const char *text)
{
	int fd = ut_tmpfile(tag, O_RDWR, NULL);
	if (fd < 0)
		return fd;
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n)
		return -EIO;
	return fd;
}

/* READ 8 bytes at offset 0 through fixed slot `slot` of `r`: the res; data to buf. */
static int read_slot(struct io_uring *r, int slot, char *buf)
{
	memset(buf, 0, 9);
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	io_uring_prep_read(sqe, slot, buf, 8, 0);
	sqe->flags = IOSQE_FIXED_FILE;
	sqe->user_data = 0x7ead;
	uint64_t ud = 0;
	int res = ut_run1_ms(r, &ud, 5000);
	return ud == 0x7ead ? res : -9999;
}

static struct io_uring_sqe *q_send_fd(struct io_uring *r, int target, unsigned src_slot,
				      unsigned file_index, uint64_t off, uint64_t ud)
{
	struct io_uring_sqe *sqe = q_msg(r, target, MSG_SEND_FD, 0, off, ud);
	sqe->addr3 = src_slot;
	sqe->file_index = file_index;
	return sqe;
}

static int send_fd(void)
{
	/*
	 * file_index is the target slot plus one. The sender completes with 0, the
	 * target gets a CQE (user_data = off, res 0, flags 0), and the slot reads the
	 * sender's file; the sender keeps its own. A filled target slot is replaced.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	int f1 = text_file("one", "hello-01"), f2 = text_file("two", "second-2");
	CHECK_OK(f1);
	CHECK_OK(f2);
	int afds[2] = { f1, f2 };
	CHECK_OK(io_uring_register_files(&a, afds, 2));
	int bfds[4] = { -1, -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&b, bfds, 4));
	close(f1);
	close(f2); /* only the tables hold them now */
	char buf[9];
	CHECK_RES(read_slot(&b, 2, buf), -EBADF);

	q_send_fd(&a, b.ring_fd, 0, 3, 0xfd01, 0x80);
	struct io_uring_cqe s, t;
	CHECK_RES(send1(&a, 0x80, &s), 0);
	CHECK_EQ(s.flags, 0);
	WAIT_UD(&b, 0xfd01, 5000, &t);
	CHECK_RES(t.res, 0);
	CHECK_EQ(t.flags, 0);
	CHECK_RES(read_slot(&b, 2, buf), 8);
	CHECK(memcmp(buf, "hello-01", 8) == 0);
	CHECK_RES(read_slot(&a, 0, buf), 8);
	CHECK(memcmp(buf, "hello-01", 8) == 0);

	/* the same target slot again, from the sender's slot 1: replaced */
	q_send_fd(&a, b.ring_fd, 1, 3, 0xfd02, 0x81);
	CHECK_RES(send1(&a, 0x81, NULL), 0);
	WAIT_UD(&b, 0xfd02, 5000, &t);
	CHECK_RES(t.res, 0);
	CHECK_RES(read_slot(&b, 2, buf), 8);
	CHECK(memcmp(buf, "second-2", 8) == 0);
	/* slot 0 (file_index 1) */
	q_send_fd(&a, b.ring_fd, 0, 1, 0xfd03, 0x82);
	CHECK_RES(send1(&a, 0x82, NULL), 0);
	WAIT_UD(&b, 0xfd03, 5000, &t);
	CHECK_RES(read_slot(&b, 0, buf), 8);
	CHECK(memcmp(buf, "hello-01", 8) == 0);
	EMPTY(&a);
	EMPTY(&b);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int send_fd_alloc(void)
{
	/*
	 * file_index IORING_FILE_INDEX_ALLOC: the target picks a free slot; the sender's
	 * res and the target CQE's res are both that slot's index.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	int f1 = text_file("one", "alloc-01"), f0 = text_file("zero", "target-0");
	CHECK_OK(f1);
	CHECK_OK(f0);
	CHECK_OK(io_uring_register_files(&a, &f1, 1));
	int bfds[3] = { f0, -1, -1 };
	CHECK_OK(io_uring_register_files(&b, bfds, 3));
	close(f0);
	close(f1);
	char buf[9];
	for (int want = 1; want <= 2; want++) {
		q_send_fd(&a, b.ring_fd, 0, IORING_FILE_INDEX_ALLOC, 0xa100 + want, 0x90 + want);
		CHECK_RES(send1(&a, 0x90 + want, NULL), want);
		struct io_uring_cqe t;
		WAIT_UD(&b, 0xa100 + want, 5000, &t);
		CHECK_RES(t.res, want);
		CHECK_EQ(t.flags, 0);
		CHECK_RES(read_slot(&b, want, buf), 8);
		CHECK(memcmp(buf, "alloc-01", 8) == 0);
	}
	/* the table is full: -ENFILE, no target CQE */
	q_send_fd(&a, b.ring_fd, 0, IORING_FILE_INDEX_ALLOC, 0xa1ff, 0x9f);
	CHECK_RES(send1(&a, 0x9f, NULL), -ENFILE);
	EMPTY(&b);
	CHECK_RES(read_slot(&b, 0, buf), 8);
	CHECK(memcmp(buf, "target-0", 8) == 0);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int send_fd_cqe_skip(void)
{
	/* CQE_SKIP suppresses the target's CQE; the sender still gets its own (res 0) */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	int f1 = text_file("one", "skipped!");
	CHECK_OK(f1);
	CHECK_OK(io_uring_register_files(&a, &f1, 1));
	int bfds[3] = { -1, -1, -1 };
	CHECK_OK(io_uring_register_files(&b, bfds, 3));
	close(f1);
	struct io_uring_sqe *sqe = q_send_fd(&a, b.ring_fd, 0, 1, 0x5c1, 0xa0);
	sqe->msg_ring_flags = IORING_MSG_RING_CQE_SKIP;
	CHECK_RES(send1(&a, 0xa0, NULL), 0);
	EMPTY(&b);
	char buf[9];
	CHECK_RES(read_slot(&b, 0, buf), 8);
	CHECK(memcmp(buf, "skipped!", 8) == 0);
	/* with ALLOC the sender still learns the slot (the first free one, 1) */
	sqe = q_send_fd(&a, b.ring_fd, 0, IORING_FILE_INDEX_ALLOC, 0x5c2, 0xa1);
	sqe->msg_ring_flags = IORING_MSG_RING_CQE_SKIP;
	CHECK_RES(send1(&a, 0xa1, NULL), 1);
	EMPTY(&b);
	CHECK_RES(read_slot(&b, 1, buf), 8);
	CHECK(memcmp(buf, "skipped!", 8) == 0);
	EMPTY(&a);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return UT_OK;
}

static int send_fd_errors(void)
{
	/*
	 * Source slot empty or past the table, or no source table: -EBADF. Target slot past
	 * its table: -EINVAL; target without a table: -ENXIO; the target is the sender
	 * itself: -EINVAL; len set: -EINVAL. The target gets no CQE for any of them.
	 */
	GATE(IORING_OP_MSG_RING);
	struct io_uring a, b, none, bare;
	CHECK_OK(ut_ring(&a, 4));
	CHECK_OK(ut_ring(&b, 4));
	CHECK_OK(ut_ring(&none, 4));
	CHECK_OK(ut_ring(&bare, 4));
	int f1 = text_file("one", "errors-1");
	CHECK_OK(f1);
	int afds[2] = { f1, -1 };
	CHECK_OK(io_uring_register_files(&a, afds, 2));
	int bfds[2] = { -1, -1 };
	CHECK_OK(io_uring_register_files(&b, bfds, 2));
	close(f1);
	struct {
		struct io_uring *from;
		int to;
		unsigned src, idx, len;
		int want;
		const char *what;
	} cases[] = {
		{ &a, b.ring_fd, 1, 1, 0, -EBADF, "empty source slot" },
		{ &a, b.ring_fd, 2, 1, 0, -EBADF, "source slot past the table" },
		{ &a, b.ring_fd, 0x10000, 1, 0, -EBADF, "source slot 1<<16" },
		{ &bare, b.ring_fd, 0, 1, 0, -EBADF, "sender without a table" },
		{ &a, b.ring_fd, 0, 3, 0, -EINVAL, "target slot past the table" },
		{ &a, b.ring_fd, 0, 0, 0, -EINVAL, "file_index 0 (slot -1)" },
		{ &a, none.ring_fd, 0, 1, 0, -ENXIO, "target without a table" },
		{ &a, a.ring_fd, 0, 2, 0, -EINVAL, "target is the sender" },
		{ &a, b.ring_fd, 0, 1, 1, -EINVAL, "len 1" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct io_uring_sqe *sqe =
			q_send_fd(cases[i].from, cases[i].to, cases[i].src, cases[i].idx, 0xe0, 0xb0 + i);
		sqe->len = cases[i].len;
		int res = send1(cases[i].from, 0xb0 + i, NULL);
		if (res != cases[i].want)
			FAIL("%s: %d (%s), expected %d (%s)", cases[i].what, res, ut_resname(res),
			     cases[i].want, ut_resname(cases[i].want));
	}
	EMPTY(&a);
	EMPTY(&b);
	EMPTY(&none);
	char buf[9];
	CHECK_RES(read_slot(&b, 0, buf), -EBADF);
	CHECK_RES(read_slot(&b, 1, buf), -EBADF);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	io_uring_queue_exit(&none);
	io_uring_queue_exit(&bare);
	return UT_OK;
}

UT_FAMILY(msgring, T(data_to_other_ring), T(data_to_self), T(not_a_ring), T(bad_fields),
	  T(flags_pass), T(target_cq_overflow), T(data_to_defer_taskrun), T(send_fd),
	  T(send_fd_alloc), T(send_fd_cqe_skip), T(send_fd_errors));
