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
