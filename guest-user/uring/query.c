/*
 * IORING_REGISTER_QUERY (Linux 6.18): io_uring_register(-1 or a ring, 35, hdr, 0) answers a
 * chain of struct io_uring_query_hdr (next_entry, query_data, query_op, size, result,
 * resv). Per entry: an unknown query is result -EOPNOTSUPP; resv or result set, or size 0,
 * -EINVAL; else the answer, cut to `size`, whose bytes past the answer (all of them, on an
 * error) are zeroed. An unreadable header or buffer is -EFAULT for the call; the 1000th
 * entry of a chain is -ERANGE. IO_URING_QUERY_OPCODES must agree with what setup, enter,
 * SQEs, register and the probe accept. IO_URING_QUERY_SCQ is Linux 6.19 (the host before
 * it says -EOPNOTSUPP, and the test says so); ZCRX and ZCRX_NOTIF answer -EOPNOTSUPP where
 * there is no zero-copy receive.
 */
#include "ut.h"

#include <stdlib.h>
#include <sys/mman.h>

#define REG_QUERY 35
#define USE_REGISTERED_RING (1U << 31)
#define Q_OPCODES 0
#define Q_ZCRX 1
#define Q_SCQ 2
#define Q_ZCRX_NOTIF 3

struct qhdr {
	uint64_t next_entry, query_data;
	uint32_t query_op, size;
	int32_t result;
	uint32_t resv[3];
};

struct qopcode {
	uint32_t nr_request_opcodes, nr_register_opcodes;
	uint64_t feature_flags, ring_setup_flags, enter_flags, sqe_flags;
	uint32_t nr_query_opcodes, pad;
};

struct qscq {
	uint64_t hdr_size, hdr_alignment;
};

static struct qhdr hdr_for(unsigned op, void *data, unsigned size)
{
	struct qhdr h;
	memset(&h, 0, sizeof h);
	h.query_op = op;
	h.query_data = (uint64_t)(uintptr_t)data;
	h.size = size;
	return h;
}

/* Blind QUERY of one entry; the syscall's return (0 or -errno). */
static int query1(int fd, struct qhdr *h)
{
	return sys_register(fd, REG_QUERY, h, 0) < 0 ? -errno : 0;
}

/* IO_URING_QUERY_OPCODES, blind: 0, or UT_UNSUP if this Linux has no QUERY. */
static int opcodes(struct qopcode *o, const char *file, int line)
{
	memset(o, 0, sizeof *o);
	struct qhdr h = hdr_for(Q_OPCODES, o, sizeof *o);
	int ret = query1(-1, &h);
	if (ret == -EINVAL)
		return UT_UNSUP; /* before 6.18 */
	if (ret != 0 || h.result != 0 || h.size != sizeof *o)
		return ut_fail(file, line, "OPCODES: ret %d result %d size %u", ret, h.result, h.size);
	return UT_OK;
}
#define OPCODES(o) TRY(opcodes((o), __FILE__, __LINE__))

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static int opcodes_blind(void)
{
	/* Counts and masks that agree with the probe and setup's features. */
	struct qopcode o;
	OPCODES(&o);
	ut_info("nr_request_opcodes=%u nr_register_opcodes=%u features=0x%llx setup=0x%llx enter=0x%llx sqe=0x%llx nr_query_opcodes=%u",
		o.nr_request_opcodes, o.nr_register_opcodes, (unsigned long long)o.feature_flags,
		(unsigned long long)o.ring_setup_flags, (unsigned long long)o.enter_flags,
		(unsigned long long)o.sqe_flags, o.nr_query_opcodes);
	CHECK_EQ(o.nr_request_opcodes, ut_probe_last_op() + 1);
	CHECK_EQ(o.feature_flags, ut_features);
	CHECK(o.nr_register_opcodes > REG_QUERY);
	CHECK(o.nr_query_opcodes >= 1);
	CHECK_EQ(o.pad, 0);
	/* The flags every io_uring since 5.x has: FIXED_FILE..CQE_SKIP_SUCCESS. */
	CHECK_EQ(o.sqe_flags & 0x7f, 0x7f);
	CHECK_EQ(o.enter_flags & 0xf, 0xf); /* GETEVENTS, SQ_WAKEUP, SQ_WAIT, EXT_ARG */
	CHECK(o.ring_setup_flags & IORING_SETUP_SQPOLL);
	/* The same answer on a ring, and through a registered ring index. */
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	struct qopcode o2;
	memset(&o2, 0xee, sizeof o2);
	struct qhdr h = hdr_for(Q_OPCODES, &o2, sizeof o2);
	CHECK_EQ(query1(r.ring_fd, &h), 0);
	CHECK_EQ(h.result, 0);
	CHECK(!memcmp(&o, &o2, sizeof o));
	struct io_uring_rsrc_update u = { .offset = 3, .data = (uint64_t)r.ring_fd };
	CHECK_EQ(sys_register(r.ring_fd, IORING_REGISTER_RING_FDS, &u, 1), 1);
	memset(&o2, 0xee, sizeof o2);
	h = hdr_for(Q_OPCODES, &o2, sizeof o2);
	CHECK_OK(sys_register(3, REG_QUERY | USE_REGISTERED_RING, &h, 0));
	CHECK_EQ(h.result, 0);
	CHECK(!memcmp(&o, &o2, sizeof o));
	u.data = 0;
	CHECK_EQ(sys_register(r.ring_fd, IORING_UNREGISTER_RING_FDS, &u, 1), 1);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int opcodes_true(void)
{
	/*
	 * What OPCODES reports is what is accepted: setup flags (those that need no partner),
	 * enter flags, SQE flags, request and register opcodes; one past each is refused.
	 */
	struct qopcode o;
	OPCODES(&o);
	static const unsigned alone[] = {
		IORING_SETUP_IOPOLL,	    IORING_SETUP_SQPOLL,	IORING_SETUP_CQSIZE,
		IORING_SETUP_CLAMP,	    IORING_SETUP_R_DISABLED,	IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN, IORING_SETUP_SQE128,	IORING_SETUP_CQE32,
		IORING_SETUP_SINGLE_ISSUER, 1U << 16 /* NO_SQARRAY */, 1U << 18 /* CQE_MIXED */,
	};
	for (unsigned i = 0; i < sizeof alone / sizeof alone[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = alone[i];
		p.cq_entries = 8;
		int fd = sys_setup(4, &p);
		int e = errno;
		if (o.ring_setup_flags & alone[i]) {
			if (fd < 0)
				FAIL("setup flag 0x%x is reported but refused: %s", alone[i], ut_errname(e));
			close(fd);
		} else if (fd >= 0 || e != EINVAL) {
			FAIL("setup flag 0x%x is not reported but setup answers %d (%s)", alone[i], fd,
			     fd < 0 ? ut_errname(e) : "-");
		}
	}
	for (int bit = 0; bit < 32; bit++) {
		if (o.ring_setup_flags & (1ULL << bit))
			continue;
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = 1U << bit;
		CHECK_ERR(sys_setup(4, &p), EINVAL);
	}
	CHECK_EQ(o.ring_setup_flags >> 32, 0);
	struct io_uring r;
	CHECK_OK(ut_ring(&r, 4));
	for (int bit = 0; bit < 32; bit++) {
		unsigned f = 1U << bit;
		if (!(o.enter_flags & f))
			CHECK_ERR(sys_enter(r.ring_fd, 0, 0, f, NULL, 0), EINVAL);
		else if (f == IORING_ENTER_GETEVENTS || f == IORING_ENTER_SQ_WAKEUP ||
			 f == IORING_ENTER_SQ_WAIT)
			CHECK_EQ(sys_enter(r.ring_fd, 0, 0, f, NULL, 0), 0);
	}
	/* SQE flags: a bit not reported fails the SQE; the last request opcode + 1 too. */
	for (int bit = 0; bit < 8; bit++) {
		if (o.sqe_flags & (1U << bit))
			continue;
		ut_q_nop(&r, 100 + bit, 1U << bit);
		CHECK_RES(ut_run_ud(&r, 100 + bit), -EINVAL);
	}
	struct io_uring_sqe *sqe = ut_q_nop(&r, 200, 0);
	sqe->opcode = (uint8_t)o.nr_request_opcodes;
	CHECK_RES(ut_run_ud(&r, 200), -EINVAL);
	CHECK_ERR(sys_register(r.ring_fd, o.nr_register_opcodes, NULL, 0), EINVAL);
	CHECK_ERR(sys_register(-1, o.nr_register_opcodes, NULL, 0), EINVAL);
	/* An opcode past the last is refused before the descriptor is looked at. */
	CHECK_ERR(sys_register(1000, o.nr_register_opcodes, NULL, 0), EINVAL);
	CHECK_ERR(sys_register(1000, REG_QUERY, NULL, 0), EBADF);
	io_uring_queue_exit(&r);
	return UT_OK;
}

static int sizes(void)
{
	/*
	 * The answer is cut to the caller's size; a larger buffer gets the answer and zeroes
	 * up to its size, nothing beyond; size 0 is -EINVAL and writes nothing.
	 */
	struct qopcode ref;
	OPCODES(&ref);
	unsigned char buf[128];
	memset(buf, 0xaa, sizeof buf);
	struct qhdr h = hdr_for(Q_OPCODES, buf, 8);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_EQ(h.result, 0);
	CHECK_EQ(h.size, 8);
	CHECK(!memcmp(buf, &ref, 8));
	CHECK(all_bytes(buf + 8, sizeof buf - 8, 0xaa));
	/* 6.18's first struct ended before nr_query_opcodes: 40 bytes. */
	memset(buf, 0xaa, sizeof buf);
	h = hdr_for(Q_OPCODES, buf, 40);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_EQ(h.size, 40);
	CHECK(!memcmp(buf, &ref, 40));
	CHECK(all_bytes(buf + 40, sizeof buf - 40, 0xaa));
	memset(buf, 0xaa, sizeof buf);
	h = hdr_for(Q_OPCODES, buf, 100);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_EQ(h.result, 0);
	CHECK_EQ(h.size, sizeof ref);
	CHECK(!memcmp(buf, &ref, sizeof ref));
	CHECK(all_bytes(buf + sizeof ref, 100 - sizeof ref, 0));
	CHECK(all_bytes(buf + 100, sizeof buf - 100, 0xaa));
	memset(buf, 0xaa, sizeof buf);
	h = hdr_for(Q_OPCODES, buf, 0);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_RES(h.result, -EINVAL);
	CHECK_EQ(h.size, 0);
	CHECK(all_bytes(buf, sizeof buf, 0xaa));
	/* A buffer larger than any answer, at the end of a mapping: zeroed to its end. */
	unsigned char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED);
	CHECK_OK(munmap(m + 8192, 4096)); /* nothing mapped after it */
	memset(m, 0xaa, 8192);
	h = hdr_for(Q_OPCODES, m + 100, 8192 - 100);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_EQ(h.size, sizeof ref);
	CHECK(all_bytes(m, 100, 0xaa));
	CHECK(all_bytes(m + 100 + sizeof ref, 8192 - 100 - sizeof ref, 0));
	/* One byte more than the mapping: -EFAULT, and the answer is not written (the tail
	 * is zeroed first). */
	memset(m, 0xaa, 8192);
	h = hdr_for(Q_OPCODES, m + 100, 8192 - 99);
	CHECK_EQ(query1(-1, &h), -EFAULT);
	CHECK(all_bytes(m + 100, sizeof ref, 0xaa));
	CHECK_EQ(h.size, 8192 - 99);
	munmap(m, 8192);
	return UT_OK;
}

static int errors(void)
{
	/* Per-entry errors (in `result`), and the call's own. */
	struct qopcode ref;
	OPCODES(&ref);
	unsigned char buf[64];
	/* An unknown query: -EOPNOTSUPP, size 0, the buffer zeroed to its size. */
	unsigned ops[] = { ref.nr_query_opcodes, 0x7fffffff, 0xffffffff };
	for (unsigned i = 0; i < 3; i++) {
		memset(buf, 0xaa, sizeof buf);
		struct qhdr h = hdr_for(ops[i], buf, 32);
		h.resv[0] = 1; /* not looked at for an unknown query */
		CHECK_EQ(query1(-1, &h), 0);
		CHECK_RES(h.result, -EOPNOTSUPP);
		CHECK_EQ(h.size, 0);
		CHECK(all_bytes(buf, 32, 0));
		CHECK(all_bytes(buf + 32, sizeof buf - 32, 0xaa));
	}
	/* resv or result set: -EINVAL, the buffer zeroed too. */
	for (int i = 0; i < 4; i++) {
		memset(buf, 0xaa, sizeof buf);
		struct qhdr h = hdr_for(Q_OPCODES, buf, 48);
		if (i < 3)
			h.resv[i] = 1;
		else
			h.result = -1;
		CHECK_EQ(query1(-1, &h), 0);
		CHECK_RES(h.result, -EINVAL);
		CHECK_EQ(h.size, 0);
		CHECK(all_bytes(buf, 48, 0));
		CHECK(all_bytes(buf + 48, sizeof buf - 48, 0xaa));
	}
	/* nr_args must be 0; the header is left as it was. */
	struct qhdr h = hdr_for(Q_OPCODES, buf, 48);
	CHECK_ERR(sys_register(-1, REG_QUERY, &h, 1), EINVAL);
	CHECK_EQ(h.size, 48);
	/* fd -1 is the blind form even with USE_REGISTERED_RING. */
	memset(buf, 0xaa, sizeof buf);
	h = hdr_for(Q_OPCODES, buf, 48);
	CHECK_EQ(sys_register(-1, REG_QUERY | USE_REGISTERED_RING, &h, 0), 0);
	CHECK_EQ(h.result, 0);
	CHECK(!memcmp(buf, &ref, 48));
	/* No header at all: nothing to answer. */
	CHECK_EQ(sys_register(-1, REG_QUERY, NULL, 0), 0);
	/* Headers and buffers that cannot be read or written. */
	CHECK_ERR(sys_register(-1, REG_QUERY, (void *)8, 0), EFAULT);
	h = hdr_for(Q_OPCODES, NULL, 48);
	CHECK_ERR(sys_register(-1, REG_QUERY, &h, 0), EFAULT);
	h = hdr_for(Q_OPCODES, NULL, 0); /* nothing to read or clear */
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_RES(h.result, -EINVAL);
	h = hdr_for(0x7fffffff, NULL, 16); /* 16 bytes to clear */
	CHECK_ERR(sys_register(-1, REG_QUERY, &h, 0), EFAULT);
	h = hdr_for(0x7fffffff, NULL, 0);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_RES(h.result, -EOPNOTSUPP);
	/* A header that can be read but not written back: -EFAULT after the answer. */
	struct qhdr *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED);
	memset(buf, 0xaa, sizeof buf);
	*ro = hdr_for(Q_OPCODES, buf, 48);
	CHECK_OK(mprotect(ro, 4096, PROT_READ));
	CHECK_ERR(sys_register(-1, REG_QUERY, ro, 0), EFAULT);
	CHECK(!memcmp(buf, &ref, 48));
	CHECK_EQ(ro->size, 48);
	CHECK_EQ(ro->result, 0);
	munmap(ro, 4096);
	/* Other opcodes have no blind form. */
	CHECK_ERR(sys_register(-1, IORING_REGISTER_PROBE, buf, 0), EINVAL);
	CHECK_ERR(sys_register(-1, IORING_REGISTER_BUFFERS, NULL, 0), EINVAL);
	return UT_OK;
}

static int chain(void)
{
	/*
	 * Entries linked by next_entry are answered in turn; one entry's error does not stop
	 * the chain. A bad link ends the call with -EFAULT after the entries before it.
	 */
	struct qopcode ref;
	OPCODES(&ref);
	struct qopcode a, c;
	unsigned char b[16];
	memset(&a, 0xaa, sizeof a);
	memset(b, 0xaa, sizeof b);
	memset(&c, 0xaa, sizeof c);
	struct qhdr h[3] = { hdr_for(Q_OPCODES, &a, sizeof a), hdr_for(0x7fffffff, b, sizeof b),
			     hdr_for(Q_OPCODES, &c, 12) };
	h[0].next_entry = (uint64_t)(uintptr_t)&h[1];
	h[1].next_entry = (uint64_t)(uintptr_t)&h[2];
	CHECK_EQ(sys_register(-1, REG_QUERY, &h[0], 0), 0);
	CHECK_EQ(h[0].result, 0);
	CHECK_EQ(h[0].size, sizeof a);
	CHECK(!memcmp(&a, &ref, sizeof a));
	CHECK_EQ(h[0].next_entry, (uint64_t)(uintptr_t)&h[1]);
	CHECK_RES(h[1].result, -EOPNOTSUPP);
	CHECK(all_bytes(b, sizeof b, 0));
	CHECK_EQ(h[2].result, 0);
	CHECK_EQ(h[2].size, 12);
	CHECK(!memcmp(&c, &ref, 12));
	CHECK(all_bytes((unsigned char *)&c + 12, sizeof c - 12, 0xaa));
	/* A bad link: the first entry is answered, then -EFAULT. */
	memset(&a, 0xaa, sizeof a);
	h[0] = hdr_for(Q_OPCODES, &a, sizeof a);
	h[0].next_entry = 16;
	CHECK_ERR(sys_register(-1, REG_QUERY, &h[0], 0), EFAULT);
	CHECK_EQ(h[0].result, 0);
	CHECK(!memcmp(&a, &ref, sizeof a));
	return UT_OK;
}

static int chain_limit(void)
{
	/* 999 entries are answered; the 1000th ends the call with -ERANGE (after its answer). */
	enum { N = 1000 };
	struct qhdr *h = calloc(N, sizeof *h);
	struct qopcode *o = calloc(N, sizeof *o);
	CHECK(h && o);
	for (int n = N - 1; n <= N; n++) {
		for (int i = 0; i < n; i++) {
			h[i] = hdr_for(Q_OPCODES, &o[i], sizeof o[i]);
			h[i].next_entry = i + 1 < n ? (uint64_t)(uintptr_t)&h[i + 1] : 0;
		}
		int ret = query1(-1, &h[0]);
		ut_info("%d entries: %d", n, ret);
		CHECK_EQ(ret, n < N ? 0 : -ERANGE);
		CHECK_EQ(h[n - 1].size, sizeof o[0]);
		CHECK_EQ(o[n - 1].nr_request_opcodes, ut_probe_last_op() + 1);
	}
	/* A loop: -ERANGE. */
	h[0] = hdr_for(Q_OPCODES, &o[0], sizeof o[0]);
	h[0].next_entry = (uint64_t)(uintptr_t)&h[0];
	CHECK_EQ(query1(-1, &h[0]), -ERANGE);
	free(h);
	free(o);
	return UT_OK;
}

static int on_ring(void)
{
	/*
	 * On a descriptor: a ring answers as blind; another file is -EOPNOTSUPP, a bad one
	 * -EBADF; a restricted ring answers only if its restrictions list QUERY (-EACCES).
	 */
	struct qopcode ref, o;
	OPCODES(&ref);
	int p[2];
	CHECK_OK(pipe(p));
	struct qhdr h = hdr_for(Q_OPCODES, &o, sizeof o);
	CHECK_ERR(sys_register(p[0], REG_QUERY, &h, 0), EOPNOTSUPP);
	close(p[0]);
	close(p[1]);
	CHECK_ERR(sys_register(p[0], REG_QUERY, &h, 0), EBADF);
	for (int allow = 0; allow < 2; allow++) {
		struct io_uring_params prm;
		memset(&prm, 0, sizeof prm);
		prm.flags = IORING_SETUP_R_DISABLED;
		int fd = sys_setup(4, &prm);
		CHECK_OK(fd);
		/* Disabled, not yet restricted: answered. */
		memset(&o, 0, sizeof o);
		h = hdr_for(Q_OPCODES, &o, sizeof o);
		CHECK_EQ(query1(fd, &h), 0);
		CHECK(!memcmp(&o, &ref, sizeof o));
		struct io_uring_restriction res[2];
		memset(res, 0, sizeof res);
		res[0].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[0].register_op = IORING_REGISTER_ENABLE_RINGS;
		res[1].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[1].register_op = REG_QUERY;
		CHECK_OK(sys_register(fd, IORING_REGISTER_RESTRICTIONS, res, allow ? 2 : 1));
		CHECK_OK(sys_register(fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0));
		memset(&o, 0, sizeof o);
		h = hdr_for(Q_OPCODES, &o, sizeof o);
		if (allow) {
			CHECK_EQ(query1(fd, &h), 0);
			CHECK(!memcmp(&o, &ref, sizeof o));
		} else {
			CHECK_EQ(query1(fd, &h), -EACCES);
			CHECK_EQ(h.result, 0);
			CHECK_EQ(h.size, sizeof o);
		}
		/* The blind form knows no ring and no restrictions. */
		h = hdr_for(Q_OPCODES, &o, sizeof o);
		CHECK_EQ(query1(-1, &h), 0);
		close(fd);
	}
	return UT_OK;
}

static int scq(void)
{
	/*
	 * IO_URING_QUERY_SCQ (Linux 6.19): the size and alignment of the rings' header, where
	 * the CQEs start (cq_off.cqes). A Linux without it answers -EOPNOTSUPP.
	 */
	struct qopcode ref;
	OPCODES(&ref);
	unsigned char buf[32];
	memset(buf, 0xaa, sizeof buf);
	struct qhdr h = hdr_for(Q_SCQ, buf, sizeof buf);
	CHECK_EQ(query1(-1, &h), 0);
	if (ref.nr_query_opcodes <= Q_SCQ) {
		CHECK_RES(h.result, -EOPNOTSUPP);
		CHECK(all_bytes(buf, sizeof buf, 0));
		ut_info("IO_URING_QUERY_SCQ is not known here (nr_query_opcodes %u)", ref.nr_query_opcodes);
		ut_unsup_reason = "-EOPNOTSUPP";
		return UT_UNSUP;
	}
	CHECK_EQ(h.result, 0);
	CHECK_EQ(h.size, sizeof(struct qscq));
	CHECK(all_bytes(buf + 16, sizeof buf - 16, 0));
	struct qscq s;
	memcpy(&s, buf, sizeof s);
	ut_info("hdr_size=%llu hdr_alignment=%llu", (unsigned long long)s.hdr_size,
		(unsigned long long)s.hdr_alignment);
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	int fd = sys_setup(4, &p);
	CHECK_OK(fd);
	close(fd);
	CHECK_EQ(s.hdr_size, p.cq_off.cqes);
	CHECK(s.hdr_alignment && !(s.hdr_alignment & (s.hdr_alignment - 1)));
	CHECK_EQ(s.hdr_size % s.hdr_alignment, 0);
	/* Cut to 8 bytes: hdr_size only. */
	memset(buf, 0xaa, sizeof buf);
	h = hdr_for(Q_SCQ, buf, 8);
	CHECK_EQ(query1(-1, &h), 0);
	CHECK_EQ(h.size, 8);
	CHECK(!memcmp(buf, &s.hdr_size, 8));
	CHECK(all_bytes(buf + 8, sizeof buf - 8, 0xaa));
	return UT_OK;
}

static int zcrx(void)
{
	/*
	 * IO_URING_QUERY_ZCRX and ZCRX_NOTIF describe zero-copy receive. Where there is none
	 * (or the query is unknown) the answer is -EOPNOTSUPP with the buffer zeroed; else the
	 * structs (40 and 48 bytes).
	 */
	unsigned ops[] = { Q_ZCRX, Q_ZCRX_NOTIF };
	unsigned want[] = { 40, 48 };
	int supported = 0;
	for (int i = 0; i < 2; i++) {
		unsigned char buf[64];
		memset(buf, 0xaa, sizeof buf);
		struct qhdr h = hdr_for(ops[i], buf, sizeof buf);
		CHECK_EQ(query1(-1, &h), 0);
		ut_info("query %u: result %d size %u", ops[i], h.result, h.size);
		if (h.result == 0) {
			CHECK_EQ(h.size, want[i]);
			CHECK(all_bytes(buf + want[i], sizeof buf - want[i], 0));
			supported++;
		} else {
			CHECK_RES(h.result, -EOPNOTSUPP);
			CHECK_EQ(h.size, 0);
			CHECK(all_bytes(buf, sizeof buf, 0));
		}
	}
	if (!supported) {
		ut_unsup_reason = "-EOPNOTSUPP";
		return UT_UNSUP;
	}
	return UT_OK;
}

UT_FAMILY(query, T(opcodes_blind), T(opcodes_true), T(sizes), T(errors), T(chain), T(chain_limit),
	  T(on_ring), T(scq), T(zcrx));
