# Index benchmark (device side, MicroPython 1.25; also the unix port):
#   micropython scripts/bench/bench_index.py [N ...] [--dir PATH] [--mem]
#   (qemu: prepend BENCH_ARGS = ["1000"] and run with scripts/qemu_run.py)
# For each N (default 1000 and 10000) builds a file database of N documents,
# then times the same queries through an index and as a full scan ("$plan":
# "scan"), and the storage each index costs
# (file sizes after compact(), so page slack does not blur the figures).
# Prints a table and one `@@B {json}` line per figure. Figures only, no asserts.
import gc
import json
import os
import sys
import time

from microtetherdb import MicroTetherDB

try:
    ticks, tdiff = time.ticks_us, time.ticks_diff
except AttributeError:  # CPython syntax check only
    ticks = lambda: int(time.perf_counter() * 1e6)
    tdiff = lambda a, b: a - b

RUNS = 3


def emit(**rec):
    print("@@B", json.dumps(rec))


def rm(p):
    for s in ("", ".new", ".swp", ".jnl"):
        try:
            os.remove(p + s)
        except OSError:
            pass


def doc(i):
    return {"id": i, "kind": i % 50, "val": (i * 7919) % 10000, "s": "sensor-%d" % (i % 20),
            "ok": i % 3 != 0}


def tags(i):
    t = ["t%d" % (i % 10)]
    if i % 500 == 0:
        t.append("rare")
    return t


def build(path, n, mem, indexes):
    rm(path)
    db = MicroTetherDB(path, in_memory=mem, autoflush=False)
    if "$tags" not in indexes:
        db.drop_index("$tags")
    for f in indexes:
        if f != "$tags":
            db.create_index(f)
    for i in range(n):
        db.put("%06d" % i, doc(i), tags=tags(i))
    db.flush()
    return db


def timed(db, q):
    best = None
    cnt = 0
    for _ in range(RUNS):
        gc.collect()
        t0 = ticks()
        cnt = 0
        for _kd in db.find(q):
            cnt += 1
        us = tdiff(ticks(), t0)
        if best is None or us < best:
            best = us
    return best, cnt


QUERIES = [
    ("eq indexed field (2%)", {"kind": 7}),
    ("$in indexed field (6%)", {"kind": {"$in": [1, 2, 3]}}),
    ("range indexed field (1%)", {"val": {"$gte": 5000, "$lt": 5100}}),
    ("tag (10%)", {"$tags": "t3"}),
    ("rare tag (0.2%)", {"$tags": "rare"}),
    ("tag + field", {"$tags": "t3", "kind": 13}),
]


def run(n, base, mem):
    path = base + "/bench_index.db"
    sizes = {}
    # storage: no index / tag index only / tag + kind + val
    for label, ix in (("none", ()), ("tags", ("$tags",)), ("tags+kind+val", ("$tags", "kind", "val"))):
        db = build(path, n, mem, ix)
        db.compact()
        sizes[label] = db.stats()["bytes_used"]
        if label != "tags+kind+val":
            db.close()
    per = lambda a, b: (sizes[a] - sizes[b]) / n
    print("N=%d storage (compacted): no index %d B, +tag index %d B (%.1f B/doc), +kind+val %d B (%.1f B/doc/field)"
          % (n, sizes["none"], sizes["tags"], per("tags", "none"), sizes["tags+kind+val"],
             per("tags+kind+val", "tags") / 2))
    emit(t="val", bench="index", n=n, mem=mem, name="bytes_no_index", value=sizes["none"])
    emit(t="val", bench="index", n=n, mem=mem, name="bytes_tag_index", value=sizes["tags"])
    emit(t="val", bench="index", n=n, mem=mem, name="bytes_tag_kind_val_index", value=sizes["tags+kind+val"])
    print("%-26s %8s %8s %10s %10s %8s" % ("query", "results", "touched", "index ms", "scan ms", "speedup"))
    for name, q in QUERIES:
        e = db.explain(q)
        ti, ci = timed(db, q)
        scan = dict(q)
        scan["$plan"] = "scan"
        ts, cs = timed(db, scan)
        assert_same = ci == cs
        print("%-26s %8d %8d %10.1f %10.1f %7.1fx%s" % (name, ci, e["touch"], ti / 1000, ts / 1000,
                                                   ts / ti if ti else 0, "" if assert_same else " MISMATCH"))
        emit(t="op", bench="index", n=n, mem=mem, name=name, plan=e["plan"], index=e.get("index"),
             results=ci, touched=e["touch"], index_us=ti, scan_us=ts, same=assert_same)
    db.close()
    rm(path)


def main(argv):
    ns = []
    base = "."      # the current directory (/flash on the qemu board)
    try:
        os.stat("/tmp")
        base = "/tmp"
    except OSError:
        pass
    mem = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--dir":
            base = argv[i + 1]
            i += 1
        elif a == "--mem":
            mem = True
        else:
            ns.append(int(a))
        i += 1
    for n in ns or [1000, 10000]:
        try:
            run(n, base, mem)
        except MemoryError as e:
            print("N=%d: MemoryError (%s)" % (n, e))
            emit(t="err", bench="index", n=n, mem=mem, error="MemoryError")
    emit(t="end", bench="index")


# Run with arguments from a prepended line `BENCH_ARGS = ["1000"]` where
# there is no command line (mpremote run, the qemu board).
main(globals().get("BENCH_ARGS") or sys.argv[1:])
