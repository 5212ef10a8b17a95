#!/usr/bin/env python3
"""Writes the uncompressed vmlinux (an ELF with a PVH note) held inside an XZ bzImage.

    vmlinux.py VMLINUZ OUT

The compressed payload starts at an XZ stream header (FD 37 7A 58 5A 00); the bytes after
the stream (the payload's size field, the rest of the setup code) are ignored. Each
occurrence of the magic is tried in turn until one decompresses to an ELF.
"""

import lzma
import sys

XZ_MAGIC = b"\xfd7zXZ\x00"


def extract(image: bytes) -> bytes:
    at = image.find(XZ_MAGIC)
    while at >= 0:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            # Stops at the end of the first stream: trailing bytes go to dec.unused_data.
            out = dec.decompress(image[at:])
        except lzma.LZMAError:
            out = b""
        if dec.eof and out.startswith(b"\x7fELF"):
            return out
        at = image.find(XZ_MAGIC, at + 1)
    sys.exit("vmlinux.py: no XZ stream holding an ELF (not an XZ-compressed bzImage?)")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: vmlinux.py VMLINUZ OUT")
    with open(sys.argv[1], "rb") as f:
        elf = extract(f.read())
    with open(sys.argv[2], "wb") as f:
        f.write(elf)


if __name__ == "__main__":
    main()
