# Per-step profile of the memory-mode hot path (device code). On the qemu
# board under -icount, virtual microseconds x 1000 = instructions:
#   python3 scripts/qemu_run.py --icount 0 scripts/bench/steps.py
# (on the host: MICROPYPATH= build/unix/micropython scripts/bench/steps.py).
# Each line: mean time of one call of the step, over N calls, the collector
# off while timing (a clean heap; docs/benchmarks.md has the figures).
import btree
import gc
import io
import json
import time

from microtetherdb import MicroTetherDB, codec

N = 40
DOC = {"name": "sensor7", "type": "temp", "value": 55, "room": "lab", "meta": {"floor": 1, "ok": True}}


def tm(label, fn, nogc=True):
    # nogc: the collector off while timing (steps that allocate much run
    # with it on: their figures include collections)
    gc.collect()
    if nogc:
        gc.disable()
    t0 = time.ticks_us()
    for _ in range(N):
        fn()
    dt = time.ticks_diff(time.ticks_us(), t0)
    gc.enable()
    print("%-34s %8.1f" % (label, dt / N))


def main():
    tm("(empty loop)", lambda: None)
    print("-- raw btree + json")
    f = io.BytesIO()
    h = btree.open(f, pagesize=512, cachesize=4096)
    c = [0]

    def rput():
        c[0] += 1
        h["r%08d" % c[0]] = json.dumps(DOC)

    tm("raw put", rput)
    tm("  json.dumps", lambda: json.dumps(DOC))
    tm("  key 'r%08d' % n", lambda: "r%08d" % 5)
    c[0] = 0

    def rget():
        c[0] += 1
        return json.loads(h.get("r%08d" % c[0]))

    tm("raw get (incl. key format)", rget)
    c[0] = 0

    def rdel():
        c[0] += 1
        try:
            del h["r%08d" % c[0]]
        except KeyError:
            return 0
        return 1

    tm("raw delete (incl. key format)", rdel)
    print("-- MicroTetherDB, memory mode")
    db = MicroTetherDB(clock=lambda: 1700000000, ram_percentage=40)
    db._st.grow(100)
    s = codec.text(DOC)
    tm("put(doc)", lambda: db.put(DOC))
    tm("  codec.text (check + dumps)", lambda: codec.text(DOC))
    tm("    codec._check", lambda: codec._check(DOC))
    tm("  _now() (the clock)", db._now)
    tm("  key: KeyGen.next", lambda: db._gen.next(1700000000))
    tm("  memory: _pages (reserve)", lambda: db._pages(1, s, "1700000000-00001"))
    keys = [db._gen.next(1700000000) for _ in range(N)]
    it = iter(keys)
    tm("  _write_record (new, plain)", lambda: db._write_record(next(it), None, s))
    tm("  _after_write", db._after_write)
    keys = list(db.keys())[-N:]
    it = iter(keys)
    tm("get(key)", lambda: db.get(next(it)))
    it = iter(keys)
    tm("delete(key)", lambda: db.delete(next(it)))
    tm("put(doc, ttl, 2 tags)", lambda: db.put(DOC, 100000, ["t1", "odd"]), False)
    tm("  codec.tags_bytes", lambda: codec.tags_bytes(["t1", "odd"]))
    raw = codec.with_header(s, 1700100000, codec.tags_bytes(["t1", "odd"]))
    tm("  index changes (2 tags)", lambda: db._ix.changes("1700000000-00001", None, raw), False)
    keys = list(db.keys())[-N:]
    it = iter(keys)
    tm("delete (ttl, 2 tags)", lambda: db.delete(next(it)), False)
    db.close()


main()
