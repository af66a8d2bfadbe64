# The in-memory store's effect on the rest of the program (device code,
# MicroPython): how long a gc.collect() takes and what multi-block
# allocations cost (each scans the heap's allocation table from the first
# free block) with no database, with the earlier store (one BytesIO of the
# whole budget, preallocated at open) and with memstore.py (btree's page
# cache as the store, grown with the data), both holding the same records.
# Prints one line per setup:  @@M {json}. Run by scripts/bench/run.py
# --memfx (host and qemu); see docs/benchmarks.md.
import btree
import gc
import io
import json
import time

from microtetherdb import MicroTetherDB

try:
    PCT = CFG["pct"]  # noqa: F821 (set by the driver)
    NREC = CFG["nrec"]  # noqa: F821
except NameError:
    PCT, NREC = 15, 60
DOC = {"name": "sensor1", "type": "temp", "value": 5, "room": "lab", "meta": {"floor": 1, "ok": True}}
BIG = json.dumps({"k%d" % i: "v" * 20 for i in range(24)})  # ~700 bytes: multi-block


def _t(fn, n):
    t0 = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t0) / n


def measure(name, extra):
    gc.collect()
    free = gc.mem_free()
    out = {"setup": name, "heap_free": free, "heap_used": gc.mem_alloc()}
    out["gc_collect_us"] = _t(gc.collect, 5)
    gc.collect()
    out["loads_700B_us"] = _t(lambda: json.loads(BIG), 50)
    gc.collect()
    out["alloc_600B_us"] = _t(lambda: bytearray(600), 50)
    gc.collect()
    out["alloc_32B_us"] = _t(lambda: bytearray(32), 50)
    out.update(extra)
    print("@@M", json.dumps(out))


def main():
    gc.collect()
    total = gc.mem_free() + gc.mem_alloc()
    budget = total * PCT // 100
    keep = [bytearray(48) for _ in range(200)]  # the program's own small objects
    measure("no database", {})

    # the earlier store: io.BytesIO preallocated to the budget (+ 8 pages)
    f = io.BytesIO(budget + 8 * 512)
    bt = btree.open(f, pagesize=512, cachesize=4096)
    for i in range(NREC):
        bt[b"%016d" % i] = json.dumps(DOC)
    bt.flush()
    measure("BytesIO of the budget (before)", {"store_bytes": budget + 8 * 512})
    bt.close()
    f = bt = None

    db = MicroTetherDB(ram_percentage=PCT)
    for i in range(NREC):
        db.put(DOC)
    s = db.stats()
    measure("memstore (after)", {"store_bytes": db._st.f.npages * 532, "pages": db._st.f.npages,
                                 "bytes_used": s["bytes_used"]})
    db.close()
    keep = None


main()
print("@@M {\"end\": true}")
