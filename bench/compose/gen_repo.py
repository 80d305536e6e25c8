#!/usr/bin/env python3
"""Writes a git fast-import stream for the compose benchmark: a main branch
with COMMITS commits spread over SERVICES service directories, and CARDS card
branches, each one commit off main's tip touching one service."""
import sys

commits, services, cards = (int(a) for a in sys.argv[1:4])
out = sys.stdout.buffer
mark = 0
t = 1_700_000_000


def blob(data: bytes) -> int:
    global mark
    mark += 1
    out.write(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
    return mark


def commit(ref: str, msg: str, files: dict, parent=None) -> int:
    global mark, t
    marks = {path: blob(data) for path, data in files.items()}
    mark += 1
    t += 60
    msg = msg.encode()
    out.write(b"commit %s\nmark :%d\n" % (ref.encode(), mark))
    out.write(b"committer bench <bench@localhost> %d +0000\n" % t)
    out.write(b"data %d\n%s\n" % (len(msg), msg))
    if parent:
        out.write(b"from :%d\n" % parent)
    for path, m in marks.items():
        out.write(b"M 100644 :%d %s\n" % (m, path.encode()))
    return mark


files = {}
for s in range(services):
    files[f"services/svc{s:02}/app.py"] = b"print('svc%02d')\n" % s
tip = commit("refs/heads/main", "initial", files)
for i in range(1, commits):
    s = i % services
    tip = commit("refs/heads/main", f"change {i}", {f"services/svc{s:02}/data.txt": b"%d\n" % i}, tip)
for c in range(cards):
    s = c % services
    commit(f"refs/heads/card/{c:02}", f"card {c}",
           {f"services/svc{s:02}/card{c:02}.txt": b"card %d\n" % c}, tip)
out.write(b"done\n")
