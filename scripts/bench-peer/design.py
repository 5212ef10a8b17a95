#!/usr/bin/env python3
"""Writes bench-peer's table into a document between its markers.

    design.py DOC.md PEER.csv NOTE

Replaces everything between the lines `<!-- bench-peer: begin -->` and
`<!-- bench-peer: end -->` in DOC.md with NOTE and a Markdown table made from PEER.csv
(as table.py writes it), so that the figures in the document come from a run.
"""

import csv
import sys

BEGIN, END = "<!-- bench-peer: begin -->", "<!-- bench-peer: end -->"


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: design.py DOC.md PEER.csv NOTE")
    doc, table, note = sys.argv[1:]
    rows = list(csv.DictReader(open(table)))
    cell = lambda v: f"{float(v):.0f}" if v else "FAILED"
    lines = [note, "", "| operation | this kernel | Linux 6.1 | Linux/this |", "|---|---|---|---|"]
    for r in rows:
        ratio = f"{float(r['linux_over_ours']):.2f}x" if r["linux_over_ours"] else "-"
        lines.append(f"| {r['figure']} | {cell(r['ours_instr_per_op'])} | {cell(r['linux_instr_per_op'])} | {ratio} |")
    text = open(doc).read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{doc}: no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    open(doc, "w").write(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)
    print(f"written: the table in {doc}")


if __name__ == "__main__":
    main()
