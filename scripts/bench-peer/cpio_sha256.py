#!/usr/bin/env python3
"""Prints the SHA-256 of one file inside a newc cpio archive (as scripts/mkcpio.py writes).

    cpio_sha256.py ARCHIVE PATH
"""

import hashlib
import sys


def find(data: bytes, path: str) -> bytes:
    at = 0
    while data[at:at + 6] == b"070701":
        fields = [int(data[at + 6 + 8 * k: at + 14 + 8 * k], 16) for k in range(13)]
        size, namesize = fields[6], fields[11]
        name = data[at + 110: at + 110 + namesize - 1].decode()
        body = at + 110 + namesize
        body += -body % 4
        if name == "TRAILER!!!":
            break
        if name == path:
            return data[body: body + size]
        at = body + size
        at += -at % 4
    sys.exit(f"cpio_sha256.py: no {path} in the archive")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: cpio_sha256.py ARCHIVE PATH")
    with open(sys.argv[1], "rb") as f:
        print(hashlib.sha256(find(f.read(), sys.argv[2])).hexdigest())


if __name__ == "__main__":
    main()
