#!/usr/bin/env python3
"""Writes the seed corpora of the VMM fuzz targets (corpus/<target>/seed-*): a few valid
inputs per target, in the formats their fuzz_targets/*.rs describe."""
import os, struct, sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
F_NEXT, F_WRITE = 1, 2

def layout(size):  # as src/lib.rs `layout`
    avail = 16 * size
    used = (avail + 6 + 2 * size + 3) & ~3
    data = (used + 6 + 8 * size + 15) & ~15
    return 0, avail, used, data

class Mem:
    def __init__(self, size):
        self.b = bytearray(); self.size = size
        _, self.avail, self.used, self.free = layout(size)
        self.ndesc = 0; self.nchain = 0
    def put(self, at, data):
        if len(self.b) < at + len(data): self.b.extend(b"\0" * (at + len(data) - len(self.b)))
        self.b[at:at + len(data)] = data
    def alloc(self, n):
        at = self.free; self.free = (self.free + n + 15) & ~15; return at
    def chain(self, bufs):  # bufs: [(bytes or int length, writable)]
        head = self.ndesc
        for i, (data, w) in enumerate(bufs):
            n = data if isinstance(data, int) else len(data)
            at = self.alloc(n)
            if not isinstance(data, int): self.put(at, data)
            last = i == len(bufs) - 1
            flags = (0 if last else F_NEXT) | (F_WRITE if w else 0)
            self.put(16 * self.ndesc, struct.pack("<QIHH", at, n, flags, 0 if last else self.ndesc + 1))
            self.ndesc += 1
        self.put(self.avail + 4 + 2 * self.nchain, struct.pack("<H", head))
        self.nchain += 1
        self.put(self.avail, struct.pack("<HH", 0, self.nchain))
        self.put(self.used + 6 + 8 * self.size, b"\0\0")  # used ring's end in the image
        return head

def write(target, name, data):
    d = os.path.join(OUT, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "seed-" + name), "wb").write(bytes(data))

# ---- virtio-blk requests ----
def blk(ty, sector=0): return struct.pack("<IIQ", ty, 0, sector)
IN, OUT_, FLUSH, GET_ID, DISCARD = 0, 1, 4, 8, 11

def qflags(size, p9=False, event_idx=True, ro=False, engine=0):  # engine: 0 mem, 1 sync, 2 uring, 3 uring O_DIRECT
    return engine << 6 | (size.bit_length() - 1) << 3 | (4 if ro else 0) | (2 if event_idx else 0) | (1 if p9 else 0)

def blk_seeds():
    seeds = {}
    m = Mem(16); m.chain([(blk(IN, 1), 0), (512, 1), (1, 1)]); seeds["blk-read"] = m
    m = Mem(16); m.chain([(blk(OUT_, 2), 0), (b"\xab" * 1024, 0), (1, 1)]); seeds["blk-write"] = m
    m = Mem(16); m.chain([(blk(FLUSH), 0), (1, 1)]); m.chain([(blk(GET_ID), 0), (20, 1), (1, 1)]); seeds["blk-flush-id"] = m
    m = Mem(16); m.chain([(blk(DISCARD), 0), (struct.pack("<QII", 4, 8, 0), 0), (1, 1)]); seeds["blk-discard"] = m
    m = Mem(8)
    m.chain([(blk(IN, 0), 0), (256, 1), (256, 1), (1, 1)])
    m.chain([(blk(OUT_, 63), 0), (b"\x11" * 512, 0), (1, 1)])
    m.chain([(blk(IN, 64), 0), (512, 1), (1, 1)])  # beyond the disk: IOERR
    seeds["blk-mixed"] = m
    return seeds

for name, m in blk_seeds().items():
    write("virtq", name, bytes([qflags(m.size)]) + m.b)
    write("virtq", name + "-noidx-ro", bytes([qflags(m.size, event_idx=False, ro=True)]) + m.b)
    for engine, ename in ((1, "sync"), (2, "uring"), (3, "uring-direct")):
        write("virtq", name + "-" + ename, bytes([qflags(m.size, engine=engine)]) + m.b)

# ---- 9P2000.L ----
def s(x): x = x.encode() if isinstance(x, str) else x; return struct.pack("<H", len(x)) + x
def msg(ty, body, tag=1): return struct.pack("<IBH", 7 + len(body), ty, tag) + body
u32 = lambda v: struct.pack("<I", v); u64 = lambda v: struct.pack("<Q", v)
def version(): return msg(100, u32(8192) + s("9P2000.L"), tag=0xffff)
def attach(fid=0): return msg(104, u32(fid) + u32(0xffffffff) + s("root") + s("") + u32(0))
def walk(fid, newfid, *names): return msg(110, u32(fid) + u32(newfid) + struct.pack("<H", len(names)) + b"".join(s(n) for n in names))
def lopen(fid, flags): return msg(12, u32(fid) + u32(flags))
def lcreate(fid, name, flags, mode): return msg(14, u32(fid) + s(name) + u32(flags) + u32(mode) + u32(0))
def read(fid, off, n): return msg(116, u32(fid) + u64(off) + u32(n))
def write_(fid, off, data): return msg(118, u32(fid) + u64(off) + u32(len(data)) + data)
def clunk(fid): return msg(120, u32(fid))
def remove(fid): return msg(122, u32(fid))
def getattr_(fid): return msg(24, u32(fid) + u64(0x3fff))
def setattr(fid, valid, mode=0, uid=0, gid=0, size=0): return msg(26, u32(fid) + u32(valid) + u32(mode) + u32(uid) + u32(gid) + u64(size) + u64(0) * 4)
def readdir(fid, off, n): return msg(40, u32(fid) + u64(off) + u32(n))
def mkdir(dfid, name, mode): return msg(72, u32(dfid) + s(name) + u32(mode) + u32(0))
def symlink(fid, name, target): return msg(16, u32(fid) + s(name) + s(target) + u32(0))
def link(dfid, fid, name): return msg(70, u32(dfid) + u32(fid) + s(name))
def renameat(od, on, nd, nn): return msg(74, u32(od) + s(on) + u32(nd) + s(nn))
def rename(fid, dfid, name): return msg(20, u32(fid) + u32(dfid) + s(name))
def unlinkat(d, name, flags): return msg(76, u32(d) + s(name) + u32(flags))
def readlink(fid): return msg(22, u32(fid))
def statfs(fid): return msg(8, u32(fid))
def mknod(d, name, mode): return msg(18, u32(d) + s(name) + u32(mode) + u32(0) + u32(0) + u32(0))
def xattrwalk(fid, newfid, name): return msg(30, u32(fid) + u32(newfid) + s(name))
def xattrcreate(fid, name, size, flags): return msg(32, u32(fid) + s(name) + u64(size) + u32(flags))
def fsync(fid): return msg(50, u32(fid) + u32(0))
def getlock(fid): return msg(54, u32(fid) + b"\0" + u64(0) + u64(10) + u32(1) + s("c"))
def lock(fid): return msg(52, u32(fid) + b"\0" + u32(0) + u64(0) + u64(10) + u32(1) + s("c"))

O_RDONLY, O_RDWR, O_CREAT, O_TRUNC, O_DIRECTORY = 0, 2, 0o100, 0o1000, 0o200000
p9 = {
    "basic": [version(), attach(), walk(0, 1, "file"), lopen(1, O_RDWR), read(1, 0, 100), write_(1, 5, b"xyz"),
              getattr_(1), fsync(1), statfs(0), clunk(1)],
    "create": [version(), attach(), walk(0, 1), lcreate(1, "new", O_RDWR | O_CREAT, 0o644), write_(1, 0, b"data"),
               setattr(1, 0x8, size=2), setattr(1, 0x1, mode=0o600), getattr_(1), lock(1), getlock(1), clunk(1),
               mkdir(0, "d", 0o755), symlink(0, "ln", "new"), walk(0, 2, "ln"), readlink(2), mknod(0, "fifo", 0o10644)],
    "dirs": [version(), attach(), walk(0, 1, "dir"), lopen(1, O_RDONLY | O_DIRECTORY), readdir(1, 0, 4096),
             readdir(1, 3, 100), walk(0, 2, "dir", "inner"), link(0, 2, "hard"), renameat(0, "file", 1, "moved"),
             rename(2, 0, "inner2"), unlinkat(0, "hard", 0), unlinkat(0, "dir", 0x200), walk(0, 3, "moved"), remove(3)],
    "escape": [version(), attach(), walk(0, 1, ".."), walk(0, 2, "escape"), walk(0, 3, "escape", "secret"),
               lopen(3, O_RDWR | O_TRUNC), write_(3, 0, b"pwned"), walk(0, 4, "abs"), lopen(4, O_RDWR),
               renameat(0, "file", 0, "../evil"), lcreate(0, "../evil", O_RDWR | O_CREAT, 0o644),
               symlink(0, "../x", "y"), mkdir(0, "/tmp/z", 0o755), walk(0, 5, "escape"), setattr(5, 0x7f, mode=0o777),
               unlinkat(0, "escape/secret", 0), walk(0, 6, "dir", "..", ".."), getattr_(6)],
    "xattr": [version(), attach(), walk(0, 1, "file"), xattrwalk(1, 2, ""), read(2, 0, 100),
              walk(0, 3, "file"), xattrcreate(3, "user.k", 3, 0), write_(3, 0, b"val"), clunk(3),
              xattrwalk(1, 4, "user.k"), read(4, 0, 10), clunk(4), clunk(2)],
}
for name, msgs in p9.items():
    write("p9", name, b"\0" + b"".join(msgs))
    write("p9", name + "-ro-small", bytes([1 | 3 << 1]) + b"".join(msgs))

# 9p through descriptor chains: one chain per message, request readable, reply writable.
for name in ("basic", "escape"):
    m = Mem(32)
    for x in p9[name]:
        m.chain([(x, 0), (512, 1)])
    write("virtq", "p9-" + name, bytes([qflags(32, p9=True)]) + m.b)

# ---- virtio-net: a flags byte, a host byte, then 8-byte operations (src/targets/net.rs) ----
N_DESC, N_POST, N_KICK, N_FRAME, N_WAKE, N_POKE, N_EVENT, N_HOST = range(8)
RXQ, TXQ = 0, 1
D_NEXT, D_WRITE, D_INDIRECT = 1, 2, 4
NET_INDIRECT = (0x4000, 0x5000)  # as src/targets/net.rs INDIRECT
def nflags(rx=16, tx=16, mrg=True, event_idx=True):
    return (tx.bit_length() - 1) << 5 | (rx.bit_length() - 1) << 2 | (2 if event_idx else 0) | (1 if mrg else 0)
def ndesc(q, i, addr, n, flags=0, nxt=0, indirect=False):
    return struct.pack("<BBBHHB", N_DESC, q | flags << 1 | (0x10 if indirect else 0), i, addr, n, nxt)
def npost(q, head): return struct.pack("<BBH4x", N_POST, q, head)
def nkick(q): return struct.pack("<BB6x", N_KICK, q)
def nframe(total, flags=0, gso=0, fill=0, field=0):  # total: the datagram, header included
    return struct.pack("<BBBHBBB", N_FRAME, flags, gso, total & 0xffff, total >> 16, fill, field)
def nwake(times=4): return struct.pack("<BB6x", N_WAKE, times - 1)
def npoke(addr, value): return struct.pack("<BHI1x", N_POKE, addr, value)
def nevent(q, value, used_event=False): return struct.pack("<BBH4x", N_EVENT, q | (2 if used_event else 0), value)
def nhost(): return struct.pack("<B7x", N_HOST)
def rxb(k): return 0x8000 + 0x800 * k  # receive buffers, 2 KiB apart
def rx_post(d, n, addr=None, kick=True):
    return ndesc(RXQ, d, rxb(d) if addr is None else addr, n, D_WRITE) + npost(RXQ, d) + (nkick(RXQ) if kick else b"")
def tx_chain(d, bufs):  # bufs: [(addr, len[, writable])] chained from descriptor d, then posted
    ops = b""
    for i, b in enumerate(bufs):
        last = i == len(bufs) - 1
        flags = (0 if last else D_NEXT) | (D_WRITE if len(b) > 2 and b[2] else 0)
        ops += ndesc(TXQ, d + i, b[0], b[1], flags, 0 if last else d + i + 1)
    return ops + npost(TXQ, d)
HDR, TXH, TXD = 12, 0x6000, 0x6100
NEEDS_CSUM, DATA_VALID = 1, 2

net = {}
basic_tx = tx_chain(0, [(TXH, HDR), (TXD, 60)]) + nkick(TXQ) + nhost()
net["basic"] = (nflags(), rx_post(0, 1526) + nframe(HDR + 60, fill=1) + nwake() + basic_tx)
net["basic-noidx-noirq"] = (nflags(mrg=False, event_idx=False),
                            nevent(RXQ, 1) + nevent(TXQ, 1) + rx_post(0, 1526) + nframe(HDR + 60) + nwake() + basic_tx)
net["basic-used-event"] = (nflags(), nevent(RXQ, 3, used_event=True) + nevent(TXQ, 0, used_event=True) + rx_post(0, 1526)
                           + nframe(HDR + 60) + nwake() + rx_post(1, 1526) + nframe(HDR + 70) + nwake() + basic_tx)
# A frame over three chains, then a small one in the fourth (MRG_RXBUF).
net["mrg-spread"] = (nflags(), b"".join(rx_post(k, 1024, kick=False) for k in range(4)) + nkick(RXQ)
                     + nframe(HDR + 3000, fill=2) + nframe(HDR + 50, fill=3) + nwake())
# A frame waits for the driver to post enough chains.
net["mrg-pending"] = (nflags(), rx_post(0, 1024) + nframe(HDR + 3000) + nwake() + rx_post(1, 1024) + nwake()
                      + rx_post(2, 2048) + nwake())
# Without MRG_RXBUF: a frame too big for the first chain is dropped, the chain kept.
net["nomrg"] = (nflags(mrg=False), rx_post(0, 100) + rx_post(1, 1526) + nframe(HDR + 200) + nwake()
                + nframe(HDR + 60) + nframe(HDR + 1400) + nwake())
# Tap headers that ask for offloads, DATA_VALID (delivered, cleared), a header alone, a short datagram.
net["tap-odd"] = (nflags(), b"".join(rx_post(k, 2048, kick=False) for k in range(4)) + nkick(RXQ)
                  + nframe(HDR + 100, flags=NEEDS_CSUM, field=20) + nframe(HDR + 100, gso=1, field=0x40)
                  + nframe(HDR + 100, gso=0x80) + nframe(HDR + 100, flags=DATA_VALID) + nframe(HDR) + nframe(5)
                  + nframe(HDR + 80, flags=0xff, gso=0xff, field=0xff) + nframe(HDR + 90) + nwake())
# Frames longer than the bounce buffer: one descriptor posted thrice (aliased buffers).
net["tap-long"] = (nflags(), ndesc(RXQ, 0, 0x8000, 0x6000, D_WRITE) + npost(RXQ, 0) + npost(RXQ, 0) + npost(RXQ, 0)
                   + nkick(RXQ) + nframe(HDR + 70000) + nwake() + nframe(HDR + 65550) + nwake() + rx_post(1, 2048) + nwake())
# More frames than one wake takes (RX_BUDGET 64), on chains posted over and over.
net["rx-flood"] = (nflags(rx=128), b"".join(ndesc(RXQ, k, rxb(k), 256, D_WRITE) for k in range(4))
                   + b"".join(npost(RXQ, k % 4) for k in range(100)) + nkick(RXQ)
                   + b"".join(nframe(HDR + 60 + k, fill=k) for k in range(80)) + nwake(1) + nwake(1) + nwake())
# A receive chain through an indirect table, its header split over two buffers.
net["rx-indirect"] = (nflags(), ndesc(RXQ, 0, NET_INDIRECT[RXQ], 32, D_INDIRECT)
                      + ndesc(RXQ, 0, rxb(0), 6, D_WRITE | D_NEXT, 1, indirect=True)
                      + ndesc(RXQ, 1, rxb(0) + 6, 1500, D_WRITE, indirect=True) + npost(RXQ, 0) + nkick(RXQ)
                      + nframe(HDR + 100) + nwake())
# Driver bugs on the receive queue: each needs a reset.
net["rx-readable"] = (nflags(), ndesc(RXQ, 0, rxb(0), 64, D_NEXT, 1) + rx_post(1, 1500)[:8] + npost(RXQ, 0) + nkick(RXQ))
net["rx-short"] = (nflags(), rx_post(0, 11))
net["rx-overpost"] = (nflags(), ndesc(RXQ, 0, rxb(0), 1526, D_WRITE) + (npost(RXQ, 0) + nkick(RXQ)) * 257)
# Transmit chains: good ones (split header, header and frame in one buffer, indirect, the
# longest frame), and refused ones (no frame, offloads, flags, hdr_len, too long); then a
# writable buffer, which needs a reset.
tx = (tx_chain(0, [(TXH, HDR)])
      + tx_chain(1, [(TXH, 5), (TXH + 5, 7), (TXD, 60)])
      + npoke(0x6040, NEEDS_CSUM) + tx_chain(4, [(0x6040, HDR), (TXD, 60)])
      + npoke(0x6080, 61 << 16) + tx_chain(6, [(0x6080, HDR), (TXD, 60)])
      + npoke(0x60c0, DATA_VALID) + tx_chain(8, [(0x60c0, HDR), (TXD, 60)])
      + npoke(0x6200, 1 << 8) + tx_chain(10, [(0x6200, HDR), (TXD, 60)])
      + tx_chain(12, [(TXH, HDR + 48)])
      + ndesc(TXQ, 13, NET_INDIRECT[TXQ], 32, D_INDIRECT) + ndesc(TXQ, 0, TXH, HDR, D_NEXT, 1, indirect=True)
      + ndesc(TXQ, 1, TXD, 100, indirect=True) + npost(TXQ, 13)
      + tx_chain(14, [(TXH, HDR), (0x6000, 40000), (0x6000, 40000)])
      + tx_chain(17, [(TXH, HDR), (0x6000, 32768), (0x6000, 32767)])
      + nkick(TXQ) + nhost()
      + tx_chain(20, [(TXH, HDR), (TXD, 60, True)]) + nkick(TXQ))
net["tx-odd"] = (nflags(tx=32), tx)
# The host's side of the socket fills (the host does not read): frames refused, counted.
net["tx-full"] = (nflags(), b"".join(tx_chain(k, [(TXH, HDR), (0x6000, 0x8000)]) for k in range(0, 16, 2)) + nkick(TXQ)
                  + b"".join(tx_chain(k, [(TXH, HDR), (0x6000, 0x8000)]) for k in range(0, 16, 2)) + nkick(TXQ) + nhost())
# Each seed twice: on the host's io_uring (host byte 0), and on the fallback (1: epoll,
# readv, writev) as "<name>-epoll".
for name, (flags, ops) in net.items():
    write("net", name, bytes([flags, 0]) + ops)
    write("net", name + "-epoll", bytes([flags, 1]) + ops)

# ---- virtio-mmio register sequences ----
W32, W8, W16, W64, R, POKE, WAIT, REGW = range(8)
def op(kind, offset, value): return struct.pack("<BHI", kind, offset, value)
def driver(size, m, ro_flag=0, features_hi=1, kick=True, p9flag=0):
    ops = [op(W32, 0x70, 0), op(W32, 0x70, 1), op(W32, 0x70, 3), op(R, 0x10, 2), op(W32, 0x14, 1), op(R, 0x10, 2),
           op(W32, 0x24, 0), op(W32, 0x20, 1 << 29), op(W32, 0x24, 1), op(W32, 0x20, features_hi),
           op(W32, 0x70, 0xb), op(R, 0x70, 2), op(W32, 0x30, 0), op(R, 0x34, 2), op(W32, 0x38, size)]
    d, a, u, _ = layout(size)
    ops += [op(W32, 0x80, d), op(W32, 0x84, 0), op(W32, 0x90, a), op(W32, 0x94, 0), op(W32, 0xa0, u),
            op(W32, 0xa4, 0), op(W32, 0x44, 1)]
    b = bytes(m.b) + b"\0" * (-len(m.b) % 4)
    ops += [op(POKE, i // 4, struct.unpack_from("<I", b, i)[0]) for i in range(0, len(b), 4) if b[i:i + 4] != b"\0\0\0\0"]
    ops += [op(W32, 0x70, 0xf), op(R, 0x100, 3), op(R, 0xfc, 2)]
    if kick:
        ops += [op(W32, 0x50, 0), op(WAIT, 0, 0), op(WAIT, 0, 0), op(R, 0x60, 2), op(W32, 0x64, 1), op(WAIT, 0, 0)]
    ops += [op(W32, 0x70, 0), op(R, 0x70, 2)]
    return bytes([p9flag | ro_flag]) + b"".join(ops)

bs = blk_seeds()
write("mmio", "blk-read", driver(16, bs["blk-read"]))
write("mmio", "blk-mixed", driver(8, bs["blk-mixed"]))
write("mmio", "blk-write-ro", driver(16, bs["blk-write"], ro_flag=2))
write("mmio", "blk-no-version1", driver(16, bs["blk-read"], features_hi=0))
m = Mem(16)
for x in p9["basic"][:4]:
    m.chain([(x, 0), (256, 1)])
write("mmio", "p9-basic", driver(16, m, p9flag=1))
write("mmio", "regs-only", b"\0" + b"".join(op(R, o, 2) for o in range(0, 0x110, 4)) + op(W32, 0x70, 0x80))
print("seeds written under", OUT)
