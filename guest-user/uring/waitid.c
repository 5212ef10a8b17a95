/*
 * IORING_OP_WAITID (Linux 6.7, opcode 50): waitid(2) that parks until a child changes state.
 * sqe->len the id type, sqe->fd the id, sqe->file_index the options, sqe->addr2 (off)
 * the siginfo_t to fill. It completes with 0 (the siginfo tells what happened) or
 * -errno. liburing 2.3 has no helper: SQEs are filled by hand.
 */
#include "ut.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#define OP_WAITID 50
#define ID_ALL 0
#define ID_PID 1
#define ID_PGID 2
#define ID_PIDFD 3

static struct io_uring_sqe *q_waitid(struct io_uring *r, int which, int id, unsigned options,
				     siginfo_t *si, uint64_t ud)
{
	struct io_uring_sqe *sqe = ut_sqe(r);
	io_uring_prep_nop(sqe); /* zeroes the SQE */
	sqe->opcode = OP_WAITID;
	sqe->len = (unsigned)which;
	sqe->fd = id;
	sqe->file_index = options;
	sqe->off = (uint64_t)(uintptr_t)si;
	sqe->user_data = ud;
	return sqe;
}

/* A child that exits with `code` once a byte arrives on *go (its write end, returned). */
static pid_t child_on_cue(int code, int *go)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char b;
		close(p[1]);
		if (read(p[0], &b, 1) != 1)
			_exit(99);
		_exit(code);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

/* No CQE may be waiting on `r` (nor arrive within 20 ms). */

static int exited_child(void)
{
	/* parked while the child lives; then 0, with the child's exit in the siginfo */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(7, &go);
	CHECK_OK(pid);
	siginfo_t si;
	memset(&si, 0xa5, sizeof si);
	q_waitid(&r, ID_PID, pid, WEXITED, &si, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(write(go, "g", 1), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 10000, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(si.si_signo, SIGCHLD);
	CHECK_EQ(si.si_errno, 0);
	CHECK_EQ(si.si_code, CLD_EXITED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_uid, getuid());
	CHECK_EQ(si.si_status, 7);
	/* reaped: nothing is left to wait for */
	CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int killed_child(void)
{
	/* a child killed by a signal: CLD_KILLED and the signal number (P_ALL) */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(0, &go);
	CHECK_OK(pid);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	q_waitid(&r, ID_ALL, 0, WEXITED, &si, 1);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(kill(pid, SIGKILL), 0);
	struct io_uring_cqe c;
	WAIT_UD(&r, 1, 10000, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(si.si_signo, SIGCHLD);
	CHECK_EQ(si.si_code, CLD_KILLED);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, SIGKILL);
	CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int wnowait_leaves_zombie(void)
{
	/* WNOWAIT reports the exit and leaves the child waitable; a NULL siginfo is fine */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(3, &go);
	CHECK_OK(pid);
	CHECK_EQ(write(go, "g", 1), 1);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	q_waitid(&r, ID_PID, pid, WEXITED | WNOWAIT, &si, 1);
	struct io_uring_cqe c;
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 1, 10000, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 3);
	q_waitid(&r, ID_PID, pid, WEXITED, NULL, 2);
	CHECK_RES(ut_run_ud(&r, 2), 0);
	CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_siginfo(void)
{
	/* a siginfo that cannot be written: -EFAULT, and the child is reaped all the same */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(2, &go);
	CHECK_OK(pid);
	CHECK_EQ(write(go, "g", 1), 1);
	q_waitid(&r, ID_PID, pid, WEXITED, (siginfo_t *)8, 1);
	CHECK_RES(ut_run_ud(&r, 1), -EFAULT);
	CHECK_ERR(waitpid(pid, NULL, WNOHANG), ECHILD);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int wnohang(void)
{
	/* WNOHANG with a live child: 0 at once, and a zeroed siginfo (si_signo 0) */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(0, &go);
	CHECK_OK(pid);
	siginfo_t si;
	memset(&si, 0xa5, sizeof si);
	struct io_uring_sqe *sqe = q_waitid(&r, ID_PID, pid, WEXITED | WNOHANG, &si, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), 0);
	CHECK_EQ(si.si_signo, 0);
	CHECK_EQ(si.si_pid, 0);
	CHECK_EQ(write(go, "g", 1), 1);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int no_children(void)
{
	/* nothing to wait for: -ECHILD (the siginfo zeroed), also for a pid that is not a child */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	siginfo_t si;
	memset(&si, 0xa5, sizeof si);
	struct io_uring_sqe *sqe = q_waitid(&r, ID_ALL, 0, WEXITED, &si, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -ECHILD);
	CHECK_EQ(si.si_signo, 0); /* written even on failure */
	CHECK_EQ(si.si_errno, 0);
	sqe = q_waitid(&r, ID_PID, getpid(), WEXITED | WNOHANG, NULL, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -ECHILD);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int bad_arguments(void)
{
	/* kernel_waitid_prepare's -EINVALs complete the request; prep's fail the SQE */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct { int which, id; unsigned options; } bad[] = {
		{ ID_ALL, 0, 0 },		/* none of WEXITED/WSTOPPED/WCONTINUED */
		{ ID_ALL, 0, WEXITED | 0x10 },	/* unknown option */
		{ 7, 0, WEXITED },		/* unknown id type */
		{ ID_PID, 0, WEXITED },		/* P_PID needs a pid > 0 */
		{ ID_PID, -1, WEXITED },
		{ ID_PGID, -1, WEXITED },
		{ ID_PIDFD, -1, WEXITED },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct io_uring_sqe *sqe = q_waitid(&r, bad[i].which, bad[i].id, bad[i].options, NULL, 1 + i);
		CHECK_RES(ut_run_sqe(&r, sqe, 1 + i, NULL), -EINVAL);
	}
	struct io_uring_sqe *sqe = q_waitid(&r, ID_ALL, 0, WEXITED, NULL, 0x20);
	sqe->addr = 1;
	CHECK_RES(ut_run_sqe(&r, sqe, 0x20, NULL), -EINVAL);
	sqe = q_waitid(&r, ID_ALL, 0, WEXITED, NULL, 0x21);
	sqe->rw_flags = 1; /* waitid_flags */
	CHECK_RES(ut_run_sqe(&r, sqe, 0x21, NULL), -EINVAL);
	sqe = q_waitid(&r, ID_ALL, 0, WEXITED, NULL, 0x22);
	sqe->addr3 = 1;
	CHECK_RES(ut_run_sqe(&r, sqe, 0x22, NULL), -EINVAL);
	/* a prep failure ends the submission; an issue failure does not */
	sqe = q_waitid(&r, ID_ALL, 0, WEXITED, NULL, 0x23);
	sqe->addr = 1;
	ut_q_nop(&r, 0x24, 0);
	CHECK_EQ(io_uring_submit(&r), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 0x23, 5000, &c);
	CHECK_EQ(io_uring_submit(&r), 1);
	WAIT_UD(&r, 0x24, 5000, &c);
	q_waitid(&r, 7, 0, WEXITED, NULL, 0x25);
	ut_q_nop(&r, 0x26, 0);
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe cs[2];
	CHECK_OK(ut_reap(&r, 2, cs));
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int pidfd_of_other_file(void)
{
	/* P_PIDFD with a descriptor that is no pidfd: -EBADF, as for a closed one */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int p[2];
	CHECK_OK(pipe(p));
	struct io_uring_sqe *sqe = q_waitid(&r, ID_PIDFD, p[0], WEXITED | WNOHANG, NULL, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -EBADF);
	close(p[0]);
	close(p[1]);
	sqe = q_waitid(&r, ID_PIDFD, p[0], WEXITED | WNOHANG, NULL, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int cancel_parked(void)
{
	/* ASYNC_CANCEL ends a parked WAITID; the child is then reaped by waitpid */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(5, &go);
	CHECK_OK(pid);
	q_waitid(&r, ID_PID, pid, WEXITED, NULL, 0x40);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CANCEL_ONE(&r, 0x40, 0x41);
	CHECK_EQ(write(go, "g", 1), 1);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 5);
	EMPTY(&r);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int link_timeout(void)
{
	/* a LINK_TIMEOUT ends a parked WAITID; it answers 1 (Linux's waitid list count) */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(6, &go);
	CHECK_OK(pid);
	struct io_uring_sqe *sqe = q_waitid(&r, ID_PID, pid, WEXITED, NULL, 1);
	sqe->flags |= IOSQE_IO_LINK;
	struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000000 };
	sqe = ut_sqe(&r);
	io_uring_prep_link_timeout(sqe, &ts, 0);
	sqe->user_data = 2;
	CHECK_EQ(io_uring_submit(&r), 2);
	struct io_uring_cqe cs[2];
	CHECK_OK(ut_reap(&r, 2, cs));
	for (int i = 0; i < 2; i++)
		CHECK_RES(cs[i].res, cs[i].user_data == 1 ? -ECANCELED : 1);
	CHECK_EQ(write(go, "g", 1), 1);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK_EQ(WEXITSTATUS(status), 6);
	EMPTY(&r);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int zombie_needs_wexited(void)
{
	/*
	 * An exited child reports only to WEXITED: a wait for WSTOPPED alone finds no child
	 * that could still report (-ECHILD), even with WNOHANG.
	 */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go;
	pid_t pid = child_on_cue(1, &go);
	CHECK_OK(pid);
	CHECK_EQ(write(go, "g", 1), 1);
	siginfo_t si;
	CHECK_EQ(waitid(P_PID, pid, &si, WEXITED | WNOWAIT), 0); /* now a zombie */
	struct io_uring_sqe *sqe = q_waitid(&r, ID_PID, pid, WSTOPPED | WNOHANG, NULL, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -ECHILD);
	sqe = q_waitid(&r, ID_PID, pid, WSTOPPED | WCONTINUED, NULL, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), -ECHILD);
	sqe = q_waitid(&r, ID_PID, pid, WEXITED | WSTOPPED, NULL, 3);
	CHECK_RES(ut_run_sqe(&r, sqe, 3, NULL), 0);
	close(go);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int process_group(void)
{
	/* P_PGID: 0 is the caller's group; a child that made its own group is not in it */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	int go, ready[2];
	CHECK_OK(pipe(ready));
	int p[2];
	CHECK_OK(pipe(p));
	pid_t pid = fork();
	CHECK_OK(pid);
	if (pid == 0) {
		char b;
		close(p[1]);
		setpgid(0, 0);
		if (write(ready[1], "r", 1) != 1 || read(p[0], &b, 1) != 1)
			_exit(99);
		_exit(4);
	}
	close(p[0]);
	go = p[1];
	setpgid(pid, pid);
	char b;
	CHECK_EQ(read(ready[0], &b, 1), 1);
	CHECK_EQ(getpgid(pid), pid);
	struct io_uring_sqe *sqe = q_waitid(&r, ID_PGID, 0, WEXITED | WNOHANG, NULL, 1);
	CHECK_RES(ut_run_sqe(&r, sqe, 1, NULL), -ECHILD);
	sqe = q_waitid(&r, ID_PGID, pid, WEXITED | WNOHANG, NULL, 2);
	CHECK_RES(ut_run_sqe(&r, sqe, 2, NULL), 0);
	siginfo_t si;
	memset(&si, 0, sizeof si);
	q_waitid(&r, ID_PGID, pid, WEXITED, &si, 3);
	CHECK_EQ(io_uring_submit(&r), 1);
	EMPTY(&r);
	CHECK_EQ(write(go, "g", 1), 1);
	struct io_uring_cqe c;
	WAIT_UD(&r, 3, 10000, &c);
	CHECK_RES(c.res, 0);
	CHECK_EQ(si.si_pid, pid);
	CHECK_EQ(si.si_status, 4);
	close(go);
	close(ready[0]);
	close(ready[1]);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int exit_while_arming(void)
{
	/* a child that exits while the request is being parked still completes it: the
	 * arming looks again once armed. On 2 CPUs the exit lands in that window rarely: this
	 * sweeps the submit time to make it likelier, it cannot force it */
	GATE(OP_WAITID);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	for (int i = 0; i < 12; i++) {
		int go;
		pid_t pid = child_on_cue(i, &go);
		CHECK_OK(pid);
		siginfo_t si;
		memset(&si, 0, sizeof si);
		q_waitid(&r, ID_PID, pid, WEXITED, &si, 1);
		CHECK_EQ(write(go, "g", 1), 1);
		/* the exit takes a while: submit a little later each round to sweep the window */
		for (volatile long spin = 0; spin < i * 300000L; spin++)
			;
		struct io_uring_cqe c;
		CHECK_EQ(io_uring_submit(&r), 1);
		WAIT_UD(&r, 1, 5000, &c);
		CHECK_RES(c.res, 0);
		CHECK_EQ(si.si_pid, pid);
		CHECK_EQ(si.si_status, i);
		close(go);
	}
	io_uring_queue_exit(&r);
	return UT_OK;
}

UT_FAMILY(waitid, T(exited_child), T(killed_child), T(wnowait_leaves_zombie), T(bad_siginfo), T(wnohang),
	  T(no_children), T(bad_arguments), T(pidfd_of_other_file), T(cancel_parked), T(link_timeout),
	  T(zombie_needs_wexited), T(process_group), T(exit_while_arming));
