#!/usr/bin/env python3
"""Writes a cpio "newc" archive (the initramfs format) of a directory tree.

    scripts/mkcpio.py OUT.cpio SRC_DIR

Every entry under SRC_DIR (not SRC_DIR itself) is stored with its path relative to
SRC_DIR, without a leading "./": directories, regular files, symlinks (the target is the
data), and device nodes and FIFOs if present. The archive is deterministic: entries
sorted by path components (so a directory precedes its contents), inode numbers counted
from 1, mtime 0, uid and gid 0, every link count 1 for files (no hard links).

newc layout, per entry: the magic "070701", 13 fields of 8 hex digits (ino, mode, uid,
gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize
including the NUL, check = 0), the NUL-terminated name padded to a multiple of 4 bytes
(counting from the start of the header), then the data padded to 4. The last entry is
"TRAILER!!!".
"""

import os
import stat
import sys

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def entry(ino: int, mode: int, nlink: int, rdev: int, name: str, data: bytes) -> bytes:
    name_bytes = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
              os.major(rdev), os.minor(rdev), len(name_bytes), 0)
    header = MAGIC + b"".join(b"%08X" % f for f in fields)
    out = header + name_bytes
    return out + pad4(len(out)) + data + pad4(len(data))


def tree(src: str) -> list[str]:
    """Relative paths of everything under src, parents before children."""
    paths = []
    for root, dirs, files in os.walk(src):
        for name in dirs + files:
            paths.append(os.path.relpath(os.path.join(root, name), src))
    return sorted(paths, key=lambda p: p.split(os.sep))


def archive(src: str) -> bytes:
    out = bytearray()
    for ino, rel in enumerate(tree(src), start=1):
        st = os.lstat(os.path.join(src, rel))
        mode, rdev, nlink, data = st.st_mode, 0, 1, b""
        if stat.S_ISDIR(mode):
            nlink = 2
        elif stat.S_ISREG(mode):
            with open(os.path.join(src, rel), "rb") as f:
                data = f.read()
        elif stat.S_ISLNK(mode):
            data = os.readlink(os.path.join(src, rel)).encode()
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            rdev = st.st_rdev
        elif not stat.S_ISFIFO(mode):
            sys.exit(f"mkcpio: {rel}: cannot archive a socket")
        out += entry(ino, mode, nlink, rdev, rel.replace(os.sep, "/"), data)
    out += entry(0, 0, 1, 0, TRAILER, b"")
    return bytes(out)


def main() -> None:
    if len(sys.argv) != 3 or not os.path.isdir(sys.argv[2]):
        sys.exit("usage: mkcpio.py OUT.cpio SRC_DIR")
    data = archive(sys.argv[2])
    with open(sys.argv[1], "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
