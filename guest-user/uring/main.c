/*
 * uring-test [--dir DIR] [FAMILY|FAMILY::TEST...]
 *
 * The io_uring conformance suite: one file per opcode family, each test gated on the
 * probe. Prints `test FAMILY::NAME ... ok` (or `ok (unsupported: -EINVAL)`, or
 * `FAILED: reason (file:line)`) per test, then `N passed, M failed`; exits with M.
 */
#include "ut.h"

#include <signal.h>
#include <stdlib.h>

extern const struct ut_family ut_family_setup, ut_family_nop, ut_family_rw,
	ut_family_fsync, ut_family_link, ut_family_overflow, ut_family_register,
	ut_family_enter, ut_family_errors, ut_family_fs, ut_family_advise,
	ut_family_timeout, ut_family_poll, ut_family_cancel, ut_family_sqpoll,
	ut_family_nonblock, ut_family_taskrun, ut_family_linkfail, ut_family_teardown, ut_family_teardown2, ut_family_teardown3,
	ut_family_threads, ut_family_smp, ut_family_cancel2, ut_family_eventfd2, ut_family_rsrc, ut_family_linktimeout,
	ut_family_fileops, ut_family_kbuf, ut_family_nopflags, ut_family_msgring,
	ut_family_pipeop, ut_family_fixedfd, ut_family_vfixed, ut_family_disabled,
	ut_family_nosqarray, ut_family_regring, ut_family_splice, ut_family_pbuf,
	ut_family_openat2, ut_family_rsrctags, ut_family_readmshot,
	ut_family_mtimeout, ut_family_pollupd, ut_family_epoll,
	ut_family_enter2, ut_family_nommap, ut_family_bigring,
	ut_family_regmisc, ut_family_futex, ut_family_waitid,
	ut_family_xattr, ut_family_iopoll, ut_family_blkcmd,
	ut_family_attachwq, ut_family_cqemixed, ut_family_sqe128ops,
	ut_family_memregion, ut_family_resize, ut_family_sqemixed,
	ut_family_query, ut_family_personality, ut_family_buffered,
	ut_family_unix, ut_family_net, ut_family_inet, ut_family_netbuf;

static const struct ut_family *families[] = {
	&ut_family_setup,    &ut_family_nop,	  &ut_family_rw,
	&ut_family_fsync,    &ut_family_link,	  &ut_family_overflow,
	&ut_family_register, &ut_family_enter,	  &ut_family_errors,
	&ut_family_fs,	     &ut_family_advise,	  &ut_family_timeout,
	&ut_family_poll,     &ut_family_cancel,    &ut_family_sqpoll,
	&ut_family_nonblock, &ut_family_taskrun,  &ut_family_linkfail,
	&ut_family_teardown, &ut_family_teardown2, &ut_family_teardown3, &ut_family_threads,  &ut_family_smp, &ut_family_cancel2,
	&ut_family_eventfd2, &ut_family_rsrc,    &ut_family_linktimeout,
	&ut_family_fileops,  &ut_family_kbuf,     &ut_family_nopflags,
	&ut_family_msgring,  &ut_family_pipeop,   &ut_family_fixedfd,
	&ut_family_vfixed,   &ut_family_disabled, &ut_family_nosqarray,
	&ut_family_regring,  &ut_family_splice,   &ut_family_pbuf,
	&ut_family_openat2,  &ut_family_rsrctags, &ut_family_readmshot,
	&ut_family_mtimeout, &ut_family_pollupd, &ut_family_epoll,
	&ut_family_enter2, &ut_family_nommap, &ut_family_bigring,
	&ut_family_regmisc, &ut_family_futex,    &ut_family_waitid,
	&ut_family_xattr, &ut_family_iopoll, &ut_family_blkcmd,
	&ut_family_attachwq, &ut_family_cqemixed, &ut_family_sqe128ops,
	&ut_family_memregion, &ut_family_resize, &ut_family_sqemixed,
	&ut_family_query, &ut_family_personality, &ut_family_buffered,
	&ut_family_unix, &ut_family_net, &ut_family_inet, &ut_family_netbuf,
};
#define NFAM (int)(sizeof families / sizeof families[0])

/* Seconds a test may take before it is reported as hung (the guest is slow). */
#define TEST_TIMEOUT 90

static int passed, failed;
static char current[128];

static void on_alarm(int sig)
{
	(void)sig;
	char buf[256];
	int n = snprintf(buf, sizeof buf,
			 "test %s ... FAILED: timed out after %d s (main.c)\n%d passed, %d failed\n",
			 current, TEST_TIMEOUT, passed, failed + 1);
	write(1, buf, (size_t)n);
	_exit(failed + 1 > 255 ? 255 : failed + 1);
}

static int selected(const char *fam, const char *test, int argc, char **argv,
		    int first)
{
	if (first >= argc)
		return 1;
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		const char *sep = strstr(a, "::");
		if (!sep) {
			if (!strcmp(a, fam))
				return 1;
		} else if ((size_t)(sep - a) == strlen(fam) && !strncmp(a, fam, (size_t)(sep - a)) &&
			   !strcmp(sep + 2, test)) {
			return 1;
		}
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: uring-test [--dir DIR] [--disk BLOCKDEV] [FAMILY|FAMILY::TEST...]\nfamilies:");
	for (int f = 0; f < NFAM; f++)
		fprintf(stderr, " %s", families[f]->name);
	fprintf(stderr, "\n");
	exit(2);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 0)
		ut_argv0 = argv[0];
	/* hidden: `uring-test --exit N` exits at once with N (teardown execs it) */
	if (argc == 3 && !strcmp(argv[1], "--exit"))
		return atoi(argv[2]);
	int first = 1;
	while (first < argc && argv[first][0] == '-') {
		if (!strcmp(argv[first], "--dir") && first + 1 < argc) {
			ut_dir = argv[first + 1];
			first += 2;
		} else if (!strcmp(argv[first], "--disk") && first + 1 < argc) {
			ut_disk = argv[first + 1];
			first += 2;
		} else {
			usage();
		}
	}
	/* every selector must name something */
	for (int i = first; i < argc; i++) {
		int found = 0;
		for (int f = 0; f < NFAM && !found; f++)
			for (int t = 0; t < families[f]->count && !found; t++)
				found = selected(families[f]->name, families[f]->tests[t].name,
						 i + 1, argv, i);
		if (!found) {
			fprintf(stderr, "uring-test: no test matches '%s'\n", argv[i]);
			usage();
		}
	}

	int pr = ut_probe_init();
	if (pr < 0)
		printf("info probe: unavailable (%s): every opcode is assumed supported\n",
		       ut_errname(-pr));

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int f = 0; f < NFAM; f++) {
		const struct ut_family *fam = families[f];
		for (int t = 0; t < fam->count; t++) {
			const struct ut_test *test = &fam->tests[t];
			if (!selected(fam->name, test->name, argc, argv, first))
				continue;
			snprintf(current, sizeof current, "%s::%s", fam->name, test->name);
			ut_current = current;
			ut_msg[0] = 0;
			ut_unsup_reason = "-EINVAL";
			alarm(TEST_TIMEOUT);
			int r = test->fn();
			alarm(0);
			ut_cleanup_files();
			if (r == UT_OK) {
				passed++;
				printf("test %s ... ok\n", current);
			} else if (r == UT_UNSUP) {
				passed++;
				printf("test %s ... ok (unsupported: %s)\n", current, ut_unsup_reason);
			} else {
				failed++;
				printf("test %s ... FAILED: %s\n", current,
				       ut_msg[0] ? ut_msg : "(no reason given)");
				/* a failed test may leak descriptors: close them */
				for (int fd = 3; fd < 128; fd++)
					close(fd);
			}
		}
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 255 ? 255 : failed;
}
