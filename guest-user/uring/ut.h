/*
 * uring-test: a tiny test framework shared by the io_uring conformance suite.
 *
 * A test is `static int name(void)` returning UT_OK, UT_UNSUP (the probe said the
 * opcode is unsupported and it completed with -EINVAL), or UT_FAIL (ut_msg holds the
 * reason and file:line). The same binary runs on host Linux and in the guest kernel.
 */
#ifndef UT_H
#define UT_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <pthread.h>
#include <unistd.h>
#include <liburing.h>

#define UT_OK 0
#define UT_UNSUP 1
#define UT_FAIL (-1)

struct ut_test {
	const char *name;
	int (*fn)(void);
};

struct ut_family {
	const char *name;
	const struct ut_test *tests;
	int count;
};

#define UT_FAMILY(fam, ...)                                                    \
	static const struct ut_test fam##_tests[] = { __VA_ARGS__ };           \
	const struct ut_family ut_family_##fam = {                             \
		#fam, fam##_tests, sizeof(fam##_tests) / sizeof(fam##_tests[0]) }
#define T(fn) { #fn, fn }

extern char ut_msg[512];
extern const char *ut_dir;
/* A scratch block device (--disk) for tests that need one (IOPOLL); NULL without. */
extern const char *ut_disk;
extern const char *ut_current; /* "family::test" */
/* What `ok (unsupported: ...)` names for a test returning UT_UNSUP (default "-EINVAL"). */
extern const char *ut_unsup_reason;

int ut_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ut_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define FAIL(...) return ut_fail(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			FAIL("check failed: %s", #c);                          \
	} while (0)
#define CHECK_EQ(a, b)                                                         \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		if (_a != _b)                                                  \
			FAIL("%s == %lld, expected %lld", #a, _a, _b);        \
	} while (0)
/* a raw syscall `call` must fail with errno `e` */
#define CHECK_ERR(call, e)                                                     \
	do {                                                                   \
		errno = 0;                                                     \
		long _r = (long)(call);                                        \
		int _e = errno;                                                \
		if (_r != -1 || _e != (e))                                     \
			FAIL("%s returned %ld errno %s, expected %s", #call,  \
			     _r, _r == -1 ? ut_errname(_e) : "-",              \
			     ut_errname(e));                                   \
	} while (0)
/* a call must return >= 0 (raw syscall, or liburing's -errno style) */
#define CHECK_OK(call)                                                         \
	do {                                                                   \
		errno = 0;                                                     \
		long _r = (long)(call);                                        \
		if (_r < 0)                                                    \
			FAIL("%s returned %ld (%s)", #call, _r,               \
			     ut_errname(_r == -1 && errno ? errno : (int)-_r));  \
	} while (0)
/* a CQE result: res must equal `want` (a -errno or a count) */
#define CHECK_RES(res, want)                                                   \
	do {                                                                   \
		int _g = (res), _w = (want);                                   \
		if (_g != _w)                                                  \
			FAIL("%s = %d (%s), expected %d (%s)", #res, _g,      \
			     ut_resname(_g), _w, ut_resname(_w));              \
	} while (0)

/* Run `body` (an int expression); propagate anything that is not UT_OK. */
#define TRY(body)                                                              \
	do {                                                                   \
		int _t = (body);                                               \
		if (_t != UT_OK)                                               \
			return _t;                                             \
	} while (0)

const char *ut_errname(int e);
const char *ut_resname(int res);

/* raw syscalls: return -1 and set errno like libc */
int sys_setup(unsigned entries, struct io_uring_params *p);
int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags,
	      const void *arg, size_t argsz);
int sys_register(int fd, unsigned op, const void *arg, unsigned nr);

/* the probe, read once at start-up with a raw ring */
int ut_probe_init(void);
int ut_op_supported(int op);
int ut_probe_last_op(void);
/*
 * Gate a test on the probe: returns UT_OK (0) when `op` is supported; when not, submits
 * `op` on a fresh ring and returns UT_UNSUP if it completed with -EINVAL, else UT_FAIL.
 */
int ut_gate(int op, const char *file, int line);
#define GATE(op) TRY(ut_gate((op), __FILE__, __LINE__))
extern unsigned ut_features; /* io_uring_params.features of the probe ring */

/* Files under ut_dir, named after the current test; removed after the test. */
int ut_tmpfile(const char *tag, int flags, char *path_out);
/* The name ut_tmpfile would use for `tag` (a stale one unlinked), not created: for bind(2)
 * of an AF_UNIX socket. Removed after the test like the files; 0 or -ENAMETOOLONG. */
int ut_tmppath(const char *tag, char *path_out, size_t size);
void ut_cleanup_files(void);
/* SIGPIPE: main ignores it; a test that looks for it counts it in ut_sigpipes from
 * ut_catch_sigpipe() on (the count starts at 0). */
extern volatile sig_atomic_t ut_sigpipes;
void ut_catch_sigpipe(void);
/* Fill `n` bytes with a pattern that depends on `seed`. */
void ut_pattern(void *buf, size_t n, unsigned seed);

/* liburing helpers */
int ut_ring(struct io_uring *r, unsigned entries); /* 0 or -errno */
struct io_uring_sqe *ut_sqe(struct io_uring *r);  /* never NULL (submits if full) */
/* Wait for `n` CQEs, copy them to out[] in arrival order; 0 or -errno. */
int ut_reap(struct io_uring *r, unsigned n, struct io_uring_cqe *out);
/* Submit what is queued and wait for one CQE: returns its res; stores user_data. */
int ut_run1(struct io_uring *r, uint64_t *ud);
/* Submit what is queued (expecting n), then enter with a 0-wait: no CQE may be there. */
int ut_submit_expect_none(struct io_uring *r, int n, const char *file, int line);
#define SUBMIT_NONE(r, n) TRY(ut_submit_expect_none((r), (n), __FILE__, __LINE__))

/* Wait at most `ms` for one CQE: copy it to *out and mark it seen; 0, -ETIME or -errno. */
int ut_wait_cqe_ms(struct io_uring *r, struct io_uring_cqe *out, int ms);
/* ut_wait_cqe_ms that must succeed with a CQE whose user_data is `ud` (copied to *out) */
int ut_wait_ud(struct io_uring *r, uint64_t ud, int ms, struct io_uring_cqe *out,
	       const char *file, int line);
#define WAIT_UD(r, ud, ms, out) TRY(ut_wait_ud((r), (ud), (ms), (out), __FILE__, __LINE__))
/* Queue a NOP (io_uring_get_sqe) with sqe->flags `flags` and `ud`; returns the SQE. */
struct io_uring_sqe *ut_q_nop(struct io_uring *r, uint64_t ud, unsigned flags);
/* ut_run1 that gives up after `ms` (then returns -10000 - ETIME) */
int ut_run1_ms(struct io_uring *r, uint64_t *ud, int ms);
/* io_uring_enter(GETEVENTS) that waits at most `ms` (EXT_ARG timeout) */
int ut_enter_ms(int fd, unsigned to_submit, unsigned min_complete, int ms);
/* CLOCK_MONOTONIC in milliseconds */
long long ut_now_ms(void);
void ut_sleep_ms(int ms);
/* A thread that sleeps `delay_ms`, then writes `len` bytes of `buf` to `fd`. */
struct ut_writer {
	pthread_t th;
	int fd, delay_ms;
	const void *buf;
	size_t len;
	ssize_t ret;
};
int ut_writer_start(struct ut_writer *w, int fd, const void *buf, size_t len, int delay_ms);
ssize_t ut_writer_join(struct ut_writer *w); /* the write's return value */
/* read(2) from `fd`, which must be O_NONBLOCK, retrying every 1 ms for at most `ms`
 * (no poll(2): the suite needs nothing beyond io_uring and basic syscalls) */
ssize_t ut_read_within(int fd, void *buf, size_t n, int ms);
/* argv[0] of uring-test, for tests that exec it again */
extern const char *ut_argv0;

/* A ring mapped by hand, for tests that play with ring memory directly. */
struct rring {
	int fd;
	struct io_uring_params p;
	void *sq_ring, *cq_ring;
	size_t sq_sz, cq_sz, sqes_sz;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_entries, *sq_flags, *sq_dropped,
		*sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask, *cq_entries, *cq_overflow;
	struct io_uring_cqe *cqes;
	struct io_uring_sqe *sqes;
};
int rring_init(struct rring *r, unsigned entries, struct io_uring_params *p);
void rring_exit(struct rring *r);
/* Map the rings of r->fd as r->p describes them (again after a resize), or unmap them. */
int rring_map(struct rring *r);
void rring_unmap(struct rring *r);
/* Queue `sqe` at SQ slot (tail & mask), point the array at it, advance the tail. */
void rring_push(struct rring *r, const struct io_uring_sqe *sqe);
/* Pop one CQE if there is one (1), else 0. */
int rring_pop(struct rring *r, struct io_uring_cqe *out);
/* rring_pop that must find a CQE, with user_data `ud` (copied to *out) */
int rring_pop_ud(struct rring *r, uint64_t ud, struct io_uring_cqe *out, const char *file,
		 int line);
#define RRING_POP_UD(r, ud, out) TRY(rring_pop_ud((r), (ud), (out), __FILE__, __LINE__))
/* A NOP SQE by value (for rring_push or r->sqes[i]), with `flags` and `ud`. */
struct io_uring_sqe ut_nop_sqe(uint64_t ud, unsigned flags);

/* A file "f" holding `n` pattern bytes of `seed` (also left in data[]); fd or -errno. */
int ut_data_file(void *data, size_t n, unsigned seed);
/* Give the queued `sqe` user_data `ud`, submit it alone and wait at most 5 s for its CQE
 * (copied to *out if out): its res; below -9000 when no CQE or a stray one came. */
int ut_run_sqe(struct io_uring *r, struct io_uring_sqe *sqe, uint64_t ud,
	       struct io_uring_cqe *out);
/* ut_run_sqe for what is already queued (one SQE, user_data `ud` set by the caller). */
int ut_submit1_ud(struct io_uring *r, uint64_t ud, struct io_uring_cqe *out);
/* Queue a READ of up to `len` bytes at `off` into a buffer selected from `group`. */
struct io_uring_sqe *ut_q_sel_read(struct io_uring *r, int fd, unsigned len, uint64_t off,
				   int group);
/* ut_run1_ms(5000) whose CQE must carry user_data `ud`: its res, else below -9000. */
int ut_run_ud(struct io_uring *r, uint64_t ud);
/* The descriptor the next open/dup/pipe would get (the lowest free one). */
int ut_lowest_free_fd(void);

/* Set IOSQE_BUFFER_SELECT and buf_group `group` on `sqe` (other flags cleared); returns it. */
struct io_uring_sqe *ut_sel(struct io_uring_sqe *sqe, int group);
/* Queue a READV of `n` iovecs at `off` with a buffer selected from `group`. */
struct io_uring_sqe *ut_q_sel_readv(struct io_uring *r, int fd, const struct iovec *iov,
				    unsigned n, uint64_t off, int group);
/* A thread writes `len` bytes of `msg` to `fd` 10 ms from now; wait at most 5 s for the next
 * CQE (into *c); the write must have written them all. */
int ut_feed_wait(struct io_uring *r, int fd, const void *msg, size_t len,
		 struct io_uring_cqe *c, const char *file, int line);
#define FEED_WAIT(r, fd, msg, len, c)                                          \
	TRY(ut_feed_wait((r), (fd), (msg), (len), (c), __FILE__, __LINE__))
/* ASYNC_CANCEL (user_data `ud`) the waiting request `target`, submitted alone; of the two
 * CQEs (each shown by ut_info), target's must be -ECANCELED with flags `want_flags`, the
 * cancel's res 0. */
int ut_cancel_waiting(struct io_uring *r, uint64_t target, uint64_t ud, unsigned want_flags,
		      const char *file, int line);
#define CANCEL_WAITING(r, target, ud, want_flags)                              \
	TRY(ut_cancel_waiting((r), (target), (ud), (want_flags), __FILE__, __LINE__))
/*
 * READV with BUFFER_SELECT from `group` (user_data `ud`) of a file holding data[], whose next
 * buffers are b0 (id bid, >= 100 bytes) and b1 (id bid + 1, 128 bytes): one iovec of 100 at
 * 300 reads 100 into b0; two iovecs are -EINVAL with flags 0 (no buffer used); one iovec of
 * 4096 at 0 reads 128 (the buffer's size) into b1. exact_flags: CQE flags must be exactly
 * F_BUFFER and the id; else the id must be there.
 */
int ut_sel_readv_cases(struct io_uring *r, int fd, int group, uint64_t ud, const void *data,
		       const void *b0, const void *b1, unsigned bid, int exact_flags);

/* No CQE may come within 20 ms. */
int ut_expect_empty(struct io_uring *r, const char *file, int line);
#define EMPTY(r) TRY(ut_expect_empty((r), __FILE__, __LINE__))
/*
 * ASYNC_CANCEL (user_data `ud`) the parked request `target`: it ends with -ECANCELED and
 * the cancel answers 1 (Linux's futex and waitid lists answer with a count, not 0).
 */
int ut_cancel_one(struct io_uring *r, uint64_t target, uint64_t ud, const char *file, int line);
#define CANCEL_ONE(r, target, ud) TRY(ut_cancel_one((r), (target), (ud), __FILE__, __LINE__))
/* The next CQE (within 2 s) must be `ud` with `res` and F_MORE as `more`; copied to *out. */
int ut_expect_cqe(struct io_uring *r, uint64_t ud, int res, int more, struct io_uring_cqe *out,
		  const char *file, int line);
#define EXPECT_CQE(r, ud, res, more, out) TRY(ut_expect_cqe((r), (ud), (res), (more), (out), __FILE__, __LINE__))

#endif
