/*
 * uring-leak: ring teardown leaves nothing behind (guest only: it reads the kernel's
 * own accounting in /proc/meminfo, KernelHeapBytes and MemFree).
 *
 *   uring-leak [CYCLES] [DISKFILE|-] [KIND] [WHAT]
 *   uring-leak --pressure
 *
 * Each cycle builds a ring with requests pending on it (a read of an empty pipe, a poll,
 * a far timeout, a linked chain behind the read, and with DISKFILE a read of it) and
 * ends it a different way: closing the ring, or a child process that exits, is killed
 * with SIGKILL, or execs. After a warm-up, the kernel heap in use and the free memory
 * must come back to where they were. Prints "leak: ok ..." or "leak: FAILED ..." and
 * exits 0 or 1. KIND (to look for a leak) picks one ending: 0 close, 1 exit, 2 SIGKILL,
 * 3 exec; WHAT the pending requests: R (read and link), P (poll), T (timeout), N (no
 * ring at all); default all of them.
 *
 * --pressure parks polls until the kernel refuses more (io_uring_enter: -EAGAIN, as
 * Linux when it cannot allocate a request) rather than run out of memory, then closes
 * the ring and checks the memory comes back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *disk;
static const char *what = "TPR";
static int only = -1; /* KIND: 0 close, 1 exit, 2 SIGKILL, 3 exec; default all */
static const char *self;

static long meminfo(const char *key)
{
	char line[128];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	fclose(f);
	return v;
}

/* A ring with requests that will never complete on their own. */
static int arm(struct io_uring *ring, int p[2], int q[2], char *buf)
{
	static struct __kernel_timespec hour = { .tv_sec = 3600 };
	struct io_uring_sqe *sqe;
	if (strchr(what, 'N'))
		return 0;
	if (io_uring_queue_init(16, ring, 0) < 0 || pipe(p) < 0 || pipe(q) < 0)
		return -1;
	if (strchr(what, 'R')) { sqe = io_uring_get_sqe(ring);
	io_uring_prep_read(sqe, p[0], buf, 64, 0);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_nop(sqe); }
	if (strchr(what, 'P')) { sqe = io_uring_get_sqe(ring);
	io_uring_prep_poll_add(sqe, q[0], POLLIN); }
	if (strchr(what, 'T')) { sqe = io_uring_get_sqe(ring);
	io_uring_prep_timeout(sqe, &hour, 0, 0); }
	if (disk) {
		int fd = open(disk, O_RDONLY);
		if (fd >= 0) {
			sqe = io_uring_get_sqe(ring);
			io_uring_prep_read(sqe, fd, buf + 64, 4096, 0);
			io_uring_submit(ring);
			close(fd);
		}
	}
	return io_uring_submit(ring) < 0 ? -1 : 0;
}

static int cycle(int kind)
{
	static char buf[8192];
	struct io_uring ring;
	int p[2], q[2], status;
	pid_t pid;
	if (kind == 0) {
		if (arm(&ring, p, q, buf) < 0)
			return -1;
		io_uring_queue_exit(&ring);
		close(p[0]), close(p[1]), close(q[0]), close(q[1]);
		return 0;
	}
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (arm(&ring, p, q, buf) < 0)
			_exit(2);
		if (kind == 1)
			_exit(0);
		if (kind == 3)
			execl(self, self, "--exit", (char *)0);
		pause();
		_exit(3);
	}
	if (kind == 2) {
		usleep(1000);
		kill(pid, SIGKILL);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (kind == 2)
		return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int run(int n)
{
	for (int i = 0; i < n; i++) {
		/* Mostly in-process teardown; every fourth cycle a child process. */
		int kind = only >= 0 ? only : i % 4 == 3 ? 1 + (i / 4) % 3 : 0;
		if (cycle(kind) < 0) {
			printf("leak: FAILED: cycle %d (kind %d) did not end as expected\n", i, kind);
			return -1;
		}
	}
	return 0;
}

/* Parks POLL_ADDs on a pipe that never becomes ready until enter says -EAGAIN. */
static int pressure(void)
{
	struct io_uring ring;
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 8192 };
	int fds[2];
	long heap0 = meminfo("KernelHeapBytes:"), parked = 0, ret = 0;
	if (heap0 < 0 || io_uring_queue_init_params(4096, &ring, &p) < 0 || pipe(fds) < 0) {
		printf("pressure: FAILED: setup\n");
		return 1;
	}
	while (parked < 4000000) {
		struct io_uring_sqe *sqe;
		while ((sqe = io_uring_get_sqe(&ring)))
			io_uring_prep_poll_add(sqe, fds[0], POLLIN);
		ret = io_uring_submit(&ring);
		if (ret < 0)
			break;
		parked += ret;
		if (ret == 0)
			break;
	}
	long heap1 = meminfo("KernelHeapBytes:");
	printf("pressure: %ld polls parked, then %ld; kernel heap %ld -> %ld bytes\n", parked, ret, heap0, heap1);
	if (ret != -EAGAIN) {
		printf("pressure: FAILED: expected -EAGAIN\n");
		return 1;
	}
	io_uring_queue_exit(&ring);
	close(fds[0]), close(fds[1]);
	long heap2 = meminfo("KernelHeapBytes:");
	printf("pressure: after close: %ld bytes\n", heap2);
	if (heap2 - heap0 > 65536) {
		printf("pressure: FAILED: memory not given back\n");
		return 1;
	}
	printf("pressure: ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	int cycles = argc > 1 ? atoi(argv[1]) : 1000;
	long heap0, free0, heap1, free1;
	self = argv[0];
	if (argc > 1 && !strcmp(argv[1], "--exit"))
		return 0;
	if (argc > 1 && !strcmp(argv[1], "--pressure"))
		return pressure();
	disk = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;
	only = argc > 3 ? atoi(argv[3]) : -1;
	if (argc > 4) what = argv[4];
	if (run(cycles / 10 + 8) < 0) /* warm-up: caches and workers settle */
		return 1;
	/* io-wq workers idle for 5 s end: let the ones of each run go before measuring, so
	 * that a worker alive at one measurement and not the other is not counted */
	sleep(6);
	heap0 = meminfo("KernelHeapBytes:"), free0 = meminfo("MemFree:");
	if (heap0 < 0 || free0 < 0) {
		printf("leak: FAILED: no KernelHeapBytes/MemFree in /proc/meminfo\n");
		return 1;
	}
	if (run(cycles) < 0)
		return 1;
	/* Growth per cycle would show as thousands of bytes; allow a few stray objects. What
	 * is still being torn down on a loaded host (a worker about to end its idle time)
	 * gets two more chances; a leak stays. */
	for (int tries = 0; tries < 3; tries++) {
		sleep(6);
		heap1 = meminfo("KernelHeapBytes:"), free1 = meminfo("MemFree:");
		printf("leak: %d cycles: kernel heap %ld -> %ld bytes, free memory %ld -> %ld kB\n", cycles, heap0,
		       heap1, free0, free1);
		if (heap1 - heap0 <= 4096 && free0 - free1 <= 64)
			break;
	}
	if (heap1 - heap0 > 4096 || free0 - free1 > 64) {
		printf("leak: FAILED: memory grew\n");
		return 1;
	}
	printf("leak: ok\n");
	return 0;
}
