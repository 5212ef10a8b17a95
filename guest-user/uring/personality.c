/*
 * IORING_REGISTER_PERSONALITY (9) and IORING_UNREGISTER_PERSONALITY (10), and the SQE's
 * `personality`. Register (arg NULL, nr_args 0) keeps the caller's credentials under a
 * new id, handed out cyclically from 1 up to 65535 (-EBUSY when all are taken: not in
 * the suite, 65535 registrations take two minutes under our KVM's slow ring 0); unregister
 * takes the id in nr_args (arg NULL): -EINVAL for one not registered. An SQE naming an id
 * not registered on its ring fails with -EINVAL (after the flag and restriction checks);
 * a registered one runs the request with those credentials. MSG_RING refuses any
 * personality. Setup reports IORING_FEAT_CUR_PERSONALITY; REGISTER_RESTRICTIONS can
 * leave both opcodes out (-EACCES). The credentials are real: a file the personality's
 * uid may not open is -EACCES, whoever submits.
 */
#include "ut.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define REG_PERS 9
#define UNREG_PERS 10
#define FEAT_CUR_PERSONALITY (1U << 4)
#define OP_MSG_RING 40
#define REG_SEND_MSG_RING 31

static int reg(int fd)
{
	int r = sys_register(fd, REG_PERS, NULL, 0);
	return r < 0 ? -errno : r;
}

static int unreg(int fd, unsigned id)
{
	return sys_register(fd, UNREG_PERS, NULL, id) < 0 ? -errno : 0;
}

/* A NOP with `personality` (and sqe flags `flags`): its CQE's res. */
static int nop_as(struct io_uring *r, unsigned personality, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_q_nop(r, ud, flags);
	sqe->personality = (uint16_t)personality;
	return ut_run_ud(r, ud);
}

static int feature(void)
{
	CHECK(ut_features & FEAT_CUR_PERSONALITY);
	return UT_OK;
}

static int ids(void)
{
	/* Ids from 1, cyclic (a freed id is not given again at once), per ring. */
	struct io_uring r, r2;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&r2, 4));
	CHECK_EQ(reg(r.ring_fd), 1);
	CHECK_EQ(reg(r.ring_fd), 2);
	CHECK_EQ(reg(r.ring_fd), 3);
	CHECK_EQ(unreg(r.ring_fd, 2), 0);
	CHECK_EQ(unreg(r.ring_fd, 2), -EINVAL);
	CHECK_EQ(reg(r.ring_fd), 4);
	CHECK_EQ(unreg(r.ring_fd, 0), -EINVAL);
	CHECK_EQ(unreg(r.ring_fd, 5), -EINVAL);
	CHECK_EQ(unreg(r.ring_fd, 65535), -EINVAL);
	/* The id is all of nr_args: 65536 + 1 is not 1. */
	CHECK_EQ(unreg(r.ring_fd, 65537), -EINVAL);
	CHECK_EQ(unreg(r.ring_fd, 0xffffffffu), -EINVAL);
	CHECK_RES(nop_as(&r, 1, 0, 1), 0);
	/* Another ring has its own ids. */
	CHECK_EQ(reg(r2.ring_fd), 1);
	CHECK_EQ(unreg(r2.ring_fd, 3), -EINVAL);
	CHECK_RES(nop_as(&r2, 3, 0, 2), -EINVAL);
	CHECK_RES(nop_as(&r, 3, 0, 3), 0);
	/* Arguments: register takes none, unregister only nr_args. */
	int x = 0;
	CHECK_ERR(sys_register(r.ring_fd, REG_PERS, &x, 0), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, REG_PERS, NULL, 1), EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, UNREG_PERS, &x, 1), EINVAL);
	CHECK_EQ(unreg(r.ring_fd, 1), 0);
	/* Not a ring; no ring at all. */
	int p[2];
	CHECK_OK(pipe(p));
	CHECK_ERR(sys_register(p[0], REG_PERS, NULL, 0), EOPNOTSUPP);
	close(p[0]);
	close(p[1]);
	CHECK_ERR(sys_register(-1, REG_PERS, NULL, 0), EINVAL);
	CHECK_ERR(sys_register(-1, UNREG_PERS, NULL, 1), EINVAL);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&r2);
	return UT_OK;
}

static int sqe_field(void)
{
	/*
	 * A registered personality runs the request (inline, through io-wq, a file op); an
	 * unknown one, or one unregistered since, is -EINVAL. Flag errors come first.
	 */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int id = reg(r.ring_fd);
	CHECK(id > 0);
	CHECK_RES(nop_as(&r, id, 0, 1), 0);
	CHECK_RES(nop_as(&r, id, IOSQE_ASYNC, 2), 0);
	CHECK_RES(nop_as(&r, id + 1, 0, 3), -EINVAL);
	CHECK_RES(nop_as(&r, 0xffff, IOSQE_ASYNC, 4), -EINVAL);
	/* BUFFER_SELECT on a NOP is -EOPNOTSUPP before the personality is looked at. */
	CHECK_RES(nop_as(&r, id + 1, IOSQE_BUFFER_SELECT, 5), -EOPNOTSUPP);
	/* A write and a read of a file, as that personality. */
	int f = ut_tmpfile("f", O_RDWR, NULL);
	CHECK_OK(f);
	char out[64], in[64];
	ut_pattern(out, sizeof out, 7);
	struct io_uring_sqe *s = ut_sqe(&r);
	io_uring_prep_write(s, f, out, sizeof out, 0);
	s->personality = (uint16_t)id;
	CHECK_RES(ut_run_sqe(&r, s, 6, NULL), (int)sizeof out);
	memset(in, 0, sizeof in);
	s = ut_sqe(&r);
	io_uring_prep_read(s, f, in, sizeof in, 0);
	s->personality = (uint16_t)id;
	s->flags = IOSQE_ASYNC;
	CHECK_RES(ut_run_sqe(&r, s, 7, NULL), (int)sizeof in);
	CHECK(!memcmp(in, out, sizeof in));
	close(f);
	/* After unregistering, the id is unknown. */
	CHECK_EQ(unreg(r.ring_fd, id), 0);
	CHECK_RES(nop_as(&r, id, 0, 8), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int in_link(void)
{
	/* A bad personality in a chain fails the chain: the members before it are cancelled. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	int id = reg(r.ring_fd);
	CHECK(id > 0);
	ut_q_nop(&r, 1, IOSQE_IO_LINK)->personality = (uint16_t)id;
	ut_q_nop(&r, 2, IOSQE_IO_LINK)->personality = (uint16_t)(id + 9);
	ut_q_nop(&r, 3, 0);
	CHECK_EQ(io_uring_submit(&r), 3);
	struct io_uring_cqe c[3];
	CHECK_OK(ut_reap(&r, 3, c));
	for (int i = 0; i < 3; i++) {
		int want = c[i].user_data == 2 ? -EINVAL : -ECANCELED;
		CHECK_RES(c[i].res, want);
	}
	/* A good one links as usual. */
	ut_q_nop(&r, 4, IOSQE_IO_LINK)->personality = (uint16_t)id;
	ut_q_nop(&r, 5, 0)->personality = (uint16_t)id;
	CHECK_EQ(io_uring_submit(&r), 2);
	CHECK_OK(ut_reap(&r, 2, c));
	CHECK_EQ(c[0].user_data, 4);
	CHECK_RES(c[0].res, 0);
	CHECK_EQ(c[1].user_data, 5);
	CHECK_RES(c[1].res, 0);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sqpoll(void)
{
	/* The SQ poller takes the ring's personalities too. */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SQPOLL;
	p.sq_thread_idle = 100;
	struct io_uring r;
	CHECK_OK(io_uring_queue_init_params(4, &r, &p));
	int id = reg(r.ring_fd);
	CHECK(id > 0);
	CHECK_RES(nop_as(&r, id, 0, 1), 0);
	CHECK_RES(nop_as(&r, id + 1, 0, 2), -EINVAL);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int msg_ring(void)
{
	/*
	 * MSG_RING refuses a personality, registered or not (-EINVAL), and so does the
	 * ring-less IORING_REGISTER_SEND_MSG_RING.
	 */
	GATE(OP_MSG_RING);
	struct io_uring r, t;
	CHECK_OK(ut_ring(&r, 4));
	CHECK_OK(ut_ring(&t, 4));
	int id = reg(r.ring_fd);
	CHECK(id > 0);
	for (int i = 0; i < 3; i++) {
		struct io_uring_sqe *s = ut_sqe(&r);
		io_uring_prep_nop(s);
		s->opcode = OP_MSG_RING;
		s->fd = t.ring_fd;
		s->off = 0x77;
		s->len = 5;
		s->personality = (uint16_t)(i == 0 ? 0 : i == 1 ? id : id + 1);
		CHECK_RES(ut_run_sqe(&r, s, 10 + i, NULL), i == 0 ? 0 : -EINVAL);
	}
	struct io_uring_cqe c;
	CHECK_OK(ut_reap(&t, 1, &c));
	CHECK_EQ(c.user_data, 0x77);
	struct io_uring_sqe m;
	memset(&m, 0, sizeof m);
	m.opcode = OP_MSG_RING;
	m.fd = t.ring_fd;
	m.off = 0x78;
	m.personality = 1;
	int ret = sys_register(-1, REG_SEND_MSG_RING, &m, 1);
	if (!(ret < 0 && errno == EINVAL))
		FAIL("SEND_MSG_RING with a personality: %d (%s)", ret, ret < 0 ? ut_errname(errno) : "-");
	EMPTY(&t);
	io_uring_queue_exit(&r);
	io_uring_queue_exit(&t);
	return UT_OK;
}

static int restricted(void)
{
	/*
	 * REGISTER_RESTRICTIONS may list one opcode and not the other: once the ring is
	 * enabled the other is -EACCES. An SQE the restrictions refuse is -EACCES before its
	 * personality is looked at.
	 */
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_R_DISABLED;
	struct io_uring r;
	int ret = io_uring_queue_init_params(4, &r, &p);
	if (ret == -EINVAL)
		return UT_UNSUP;
	CHECK_OK(ret);
	struct io_uring_restriction res[3];
	memset(res, 0, sizeof res);
	res[0].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[0].register_op = IORING_REGISTER_ENABLE_RINGS;
	res[1].opcode = IORING_RESTRICTION_REGISTER_OP;
	res[1].register_op = REG_PERS;
	res[2].opcode = IORING_RESTRICTION_SQE_OP;
	res[2].sqe_op = IORING_OP_NOP;
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_RESTRICTIONS, res, 3));
	/* Not enabled yet: the restrictions do not apply. */
	CHECK_EQ(reg(r.ring_fd), 1);
	CHECK_EQ(unreg(r.ring_fd, 1), 0);
	CHECK_OK(sys_register(r.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0));
	int id = reg(r.ring_fd);
	CHECK_EQ(id, 2);
	CHECK_EQ(unreg(r.ring_fd, id), -EACCES);
	CHECK_RES(nop_as(&r, id, 0, 1), 0);
	CHECK_RES(nop_as(&r, id + 1, 0, 2), -EINVAL);
	struct io_uring_sqe *s = ut_q_nop(&r, 3, 0);
	s->opcode = IORING_OP_TIMEOUT_REMOVE;
	s->personality = (uint16_t)(id + 1);
	CHECK_RES(ut_run_ud(&r, 3), -EACCES);
	io_uring_queue_exit(&r);
	return UT_OK;
}

/* An OPENAT of `path` for reading, with `personality` and sqe `flags`: its result. */
static int open_as(struct io_uring *r, const char *path, unsigned personality, unsigned flags, uint64_t ud)
{
	struct io_uring_sqe *s = ut_sqe(r);
	io_uring_prep_openat(s, AT_FDCWD, path, O_RDONLY, 0);
	s->personality = (uint16_t)personality;
	s->flags = (uint8_t)flags;
	int res = ut_run_sqe(r, s, ud, NULL);
	if (res >= 0)
		close(res);
	return res < 0 ? res : 0;
}

static int acts_as(const char *path)
{
	/* Run in a child whose saved uid is root: the effective uid moves back and forth. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 8));
	CHECK_OK(setresuid(-1, 1000, -1));
	int user = reg(r.ring_fd);
	CHECK(user > 0);
	CHECK_OK(setresuid(-1, 0, -1));
	int root = reg(r.ring_fd);
	CHECK(root > 0);
	/* As root, a user personality cannot open a root-only file, inline or in io-wq. */
	CHECK_RES(open_as(&r, path, 0, 0, 1), 0);
	CHECK_RES(open_as(&r, path, user, 0, 2), -EACCES);
	CHECK_RES(open_as(&r, path, user, IOSQE_ASYNC, 3), -EACCES);
	/* As the user, the root personality can. */
	CHECK_OK(setresuid(-1, 1000, -1));
	CHECK_RES(open_as(&r, path, 0, 0, 4), -EACCES);
	CHECK_RES(open_as(&r, path, root, 0, 5), 0);
	CHECK_RES(open_as(&r, path, root, IOSQE_ASYNC, 6), 0);
	/* The caller's own credentials are untouched by what its requests ran as. */
	CHECK_EQ(geteuid(), 1000);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int credentials(void)
{
	/*
	 * A request runs with the credentials its personality recorded: a personality
	 * registered as uid 1000 is refused a root-only file (-EACCES) even when root
	 * submits it, through io-wq too; a root personality opens it for a uid-1000 task.
	 */
	char path[256];
	int f = ut_tmpfile("secret", O_RDWR, path);
	CHECK_OK(f);
	close(f);
	CHECK_OK(chmod(path, 0600));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int ret = acts_as(path);
		if (ret != UT_OK)
			fprintf(stderr, "  child: %s\n", ut_msg);
		_exit(ret == UT_OK ? 0 : 1);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	return UT_OK;
}

UT_FAMILY(personality, T(feature), T(ids), T(sqe_field), T(in_link), T(sqpoll), T(msg_ring),
	  T(restricted), T(credentials));
