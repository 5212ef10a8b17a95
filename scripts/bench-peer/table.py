#!/usr/bin/env python3
"""Reads the serial logs of scripts/bench-peer.sh and prints Linux beside ours.

    table.py OUT.csv FIGURES LOG...

FIGURES: comma-separated GROUP:NAME pairs, in table order (NAME as uring-bench prints it).
Each LOG is one kernel's round, named KERNEL-rN.log (KERNEL is `linux` or `ours`); in it
each uring-bench run sits between `peer-run GROUP` and `peer-end GROUP rc=N` lines. A
figure's value is the median over rounds of uring-bench's ns_per_op (instructions per
operation under -icount shift=0). A figure missing from a run (or there twice) and a
run that exited non-zero are named on stderr, and the exit status is then 1 (after the
table and the CSV are written).
"""

import csv
import os
import re
import statistics
import sys

LINE = re.compile(r"^bench (\S+) ops=(\d+) total_ns=(\d+) ns_per_op=(\d+)")


def runs(path: str) -> dict[str, tuple[int | None, list[str]]]:
    """GROUP -> (its exit status, or None if it never ended; its lines)."""
    out: dict[str, tuple[int | None, list[str]]] = {}
    group = None
    for raw in open(path, errors="replace"):
        line = raw.strip().replace("\r", "")
        if m := re.match(r"^peer-run (\S+)$", line):
            group = m.group(1)
            out[group] = (None, [])
        elif m := re.match(r"^peer-end (\S+) rc=(\d+)$", line):
            if m.group(1) in out:
                out[m.group(1)] = (int(m.group(2)), out[m.group(1)][1])
            group = None
        elif group is not None:
            out[group][1].append(line)
    return out


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit("usage: table.py OUT.csv GROUP:NAME,... LOG...")
    figures = [tuple(f.split(":", 1)) for f in sys.argv[2].split(",")]
    values: dict[tuple[str, str, str], list[int]] = {}
    failures: list[str] = []
    for path in sys.argv[3:]:
        kernel = os.path.basename(path).split("-")[0]
        got = runs(path)
        where = f"on {kernel} ({os.path.basename(path)})"
        for group in dict.fromkeys(g for g, _ in figures):
            rc, lines = got.get(group, (None, []))
            said = next((l for l in lines if l.startswith("uring-bench: ")), None)
            if rc:
                failures.append(f"{group} run {where}: uring-bench exited {rc}" + (f" ({said})" if said else ""))
            elif group in got and rc is None:
                failures.append(f"{group} run {where}: did not end (the guest stopped or hung)")
            for name in (n for g, n in figures if g == group):
                hits = [m for m in map(LINE.match, lines) if m and m.group(1) == name]
                if len(hits) == 1:
                    values.setdefault((kernel, group, name), []).append(int(hits[0].group(4)))
                    continue
                if group not in got:
                    why = "the run never started"
                else:
                    why = f"{len(hits)} `bench {name}` lines"
                failures.append(f"{group}:{name} {where}: {why}")

    def median(kernel: str, group: str, name: str) -> float | None:
        v = values.get((kernel, group, name))
        return statistics.median(v) if v else None

    def spread(kernel: str, group: str, name: str) -> str:
        v = values.get((kernel, group, name), [])
        return f"{min(v)}-{max(v)}" if len(v) > 1 else ""

    rows = []
    for group, name in figures:
        lx, us = median("linux", group, name), median("ours", group, name)
        ratio = lx / us if lx is not None and us else None
        rows.append((f"{group} {name}", lx, us, ratio, spread("linux", group, name), spread("ours", group, name)))
    width = max(len(r[0]) for r in rows)
    cell = lambda v: "FAILED" if v is None else f"{v:.0f}"
    print(f"{'figure':<{width}} | {'Linux 6.1 instr/op':>18} | {'ours instr/op':>13} | {'Linux/ours':>10} | range Linux; ours")
    print(f"{'-' * width}-|-{'-' * 18}-|-{'-' * 13}-|-{'-' * 10}-|------------------")
    for fig, lx, us, ratio, sl, so in rows:
        r = "-" if ratio is None else f"{ratio:.2f}x"
        print(f"{fig:<{width}} | {cell(lx):>18} | {cell(us):>13} | {r:>10} | {sl or '-'}; {so or '-'}")
    with open(sys.argv[1], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "linux_instr_per_op", "ours_instr_per_op", "linux_over_ours", "linux_runs", "ours_runs"])
        for (fig, lx, us, ratio, _, _), (group, name) in zip(rows, figures):
            w.writerow([fig, "" if lx is None else lx, "" if us is None else us, "" if ratio is None else f"{ratio:.4f}",
                        " ".join(map(str, values.get(("linux", group, name), []))),
                        " ".join(map(str, values.get(("ours", group, name), [])))])
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
