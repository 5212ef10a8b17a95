#!/usr/bin/env python3
"""Copies kernel modules and everything they depend on into an initramfs tree.

    modules.py MODULES_DIR OUT_DIR NAME...

MODULES_DIR is a kernel's lib/modules/VERSION as unpacked from its package (no
modules.dep there: depmod runs at install). Each module's dependencies come from the
`depends=` entry of its .modinfo strings. Modules are written to OUT_DIR as plain NAME.ko
(a .ko.xz or .ko.zst is decompressed: busybox insmod takes an uncompressed file), and the
names are printed one a line in an order that loads each after its dependencies.
"""

import gzip
import lzma
import os
import subprocess
import sys


def find_modules(root: str) -> dict[str, str]:
    """Module name (dashes as underscores, as the kernel spells them) -> file."""
    found = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
                if f.endswith(ext):
                    found[f[: -len(ext)].replace("-", "_")] = os.path.join(dirpath, f)
    return found


def read_module(path: str) -> bytes:
    if path.endswith(".xz"):
        return lzma.decompress(open(path, "rb").read())
    if path.endswith(".gz"):
        return gzip.decompress(open(path, "rb").read())
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    return open(path, "rb").read()


def depends(image: bytes) -> list[str]:
    """The `depends=a,b` modinfo string (NUL-terminated, in .modinfo)."""
    at = image.find(b"\0depends=")
    if at < 0:
        return []
    value = image[at + len(b"\0depends="): image.index(b"\0", at + 1)].decode()
    return [d.replace("-", "_") for d in value.split(",") if d]


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit("usage: modules.py MODULES_DIR OUT_DIR NAME...")
    mods, out, wanted = find_modules(sys.argv[1]), sys.argv[2], sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            sys.exit(f"modules.py: dependency cycle through {name}")
        if name not in mods:
            sys.exit(f"modules.py: no module {name} under {sys.argv[1]}")
        visiting.add(name)
        image = read_module(mods[name])
        for dep in depends(image):
            visit(dep)
        with open(os.path.join(out, name + ".ko"), "wb") as f:
            f.write(image)
        order.append(name)

    for name in wanted:
        visit(name.replace("-", "_"))
    print("\n".join(order))


if __name__ == "__main__":
    main()
