# Memory exhaustion: the MicroPython heap is filled until MemoryError, then a
# little is handed back (a different amount each round, so the call runs out
# at a different point inside put / put_batch / delete_batch / query /
# cleanup / compact). After each round, with the filler released:
#   * the call either succeeded or raised MemoryError (or OSError(ENOMEM)
#     where btree's C malloc shares the heap and fails inside btree);
#   * the database holds the state from before the call, or after it (never a
#     half-applied call), len() and the TTL index agree with the records;
#   * it accepts new writes; in file mode, what it holds survives reopening
#     (a failed call is not committed later by the next write).
# uses: heapfill
import gc
from microtetherdb import MicroTetherDB, codec

IDX = b"\xfft"
ROUNDS_QEMU = 16  # headroom 32 B .. 36 KB (factor 1.6)
ROUNDS = 22  # headroom 32 B .. 78 KB (factor 1.45)
DEBUG = 0


def consistent(db, model, now):
    # records == model, len() agrees, TTL index <-> record expiries agree
    got = {}
    for k, d in db.items():
        got[k] = d
    if got != model:
        return "records differ: %r vs %r" % (sorted(got), sorted(model))
    if len(db) != len(model):
        return "len %d != %d" % (len(db), len(model))
    bt = db._bt
    idx = {}
    for ik in bt.keys(IDX, b"\xfft\xff\xff\xff\xff\xff"):
        idx[bytes(ik[6:])] = int.from_bytes(ik[2:6], "big")
    for k in model:
        e = codec.expiry(bt.get(k.encode()))
        if idx.get(k.encode()) != e:
            return "TTL index of %s: %r != %r" % (k, idx.get(k.encode()), e)
    for kb in idx:
        if str(kb, "utf-8") not in model and bt.get(kb) is not None and idx[kb] > now:
            return "TTL index entry without live record %r" % kb
    return None


def ops(clk):
    # (name, fn(db, m)): fn first changes the model m (key -> doc) as the
    # call will, then makes the call
    st = {"i": 0}

    def nxt():
        st["i"] += 1
        return st["i"]

    def put(db, m):
        i = nxt()
        d = {"n": i, "s": "x" * (i % 50), "l": [1, 2, {"a": i}]}
        k = "p%d" % i
        m[k] = d
        db.put(k, d, ttl=1000, tags=["a", "b"])

    def batch(db, m):
        i = nxt()
        items = [("b%d_%d" % (i, j), {"n": j, "t": "batch" * j}) for j in range(8)]
        for k, d in items:
            m[k] = d
        db.put_batch(items, ttls=[None, 500] * 4)

    def delb(db, m):
        ks = sorted(m)[:3]
        for k in ks:
            del m[k]
        db.delete_batch(ks)

    def query(db, m):
        r = db.query({"n": {"$gt": 3}})
        want = [d for d in m.values() if type(d.get("n")) is int and d["n"] > 3]
        assert len(r) == len(want), (len(r), len(want))

    def expiring(db):
        # outside the memory pressure: two records that expire now
        i = nxt()
        db.put_batch([("e%d" % i, {"n": -i}), ("f%d" % i, {"n": -i})], ttls=1)
        clk[0] += 2

    def cleanup(db, m):
        db.cleanup()

    out = [("put", None, put), ("put_batch", None, batch), ("delete_batch", None, delb),
           ("query", None, query), ("cleanup", expiring, cleanup)]
    if hasattr(MicroTetherDB, "compact"):
        out.append(("compact", None, lambda db, m: db.compact()))
    return out


def sweep(in_memory):
    path = TMP + "/oom.db"
    clk = [1000]
    clock = lambda: clk[0]
    kw = {"in_memory": in_memory, "clock": clock}
    if in_memory:
        kw["ram_percentage"] = 100
    db = MicroTetherDB(path, **kw)
    model = {}
    fl = Filler()
    rounds = ROUNDS_QEMU if TARGET == "qemu" else ROUNDS
    fac = 1.6 if TARGET == "qemu" else 1.45
    stats = {}
    enomem = 0
    for name, prep, fn in ops(clk):
        fails = 0
        for i in range(20):
            db.put("s%02d" % i, {"n": i})
            model["s%02d" % i] = {"n": i}
        for r in range(rounds):
            if prep is not None:
                prep(db)
            before = dict(model)
            after = dict(model)
            ok = True
            fl.fill(int(32 * fac ** r))
            try:
                fn(db, after)
            except MemoryError:
                ok = False
            except OSError as e:
                # btree's own malloc failed (ports whose C malloc shares the
                # MicroPython heap, e.g. the qemu board): Berkeley DB reports
                # ENOMEM; anything else is a failure
                if e.errno != 12:
                    raise
                ok = False
                enomem += 1
            finally:
                fl.release()
            if not ok:
                fails += 1
            if DEBUG:
                print(name, r, int(32 * fac ** r), ok)
            why = consistent(db, after if ok else before, clk[0])
            if why and not ok:
                why2 = consistent(db, after, clk[0])
                if why2 is None:
                    why = None  # the call completed before running out
                    ok = True
            assert why is None, "%s round %d (%s): %s / as if done: %s" % (name, r, "ok" if ok else "MemoryError", why, consistent(db, after, clk[0]))
            model = after if ok else before
            db.put("z", {"round": r})  # usable, and commits (file mode)
            model["z"] = {"round": r}
            if not in_memory and r % 8 == 7:
                db.close()
                db = MicroTetherDB(path, **kw)
                why = consistent(db, model, clk[0])
                assert why is None, "%s after reopen: %s" % (name, why)
        stats[name] = fails
    db.close()
    if not in_memory:
        db = MicroTetherDB(path, **kw)
        assert consistent(db, model, clk[0]) is None
        db.close()
    print("out-of-memory rounds (of %d each, %s mode): %r; %d of them OSError(ENOMEM) from btree" % (
        rounds, "memory" if in_memory else "file", stats, enomem))
    return stats


def test_oom_file_mode():
    stats = sweep(False)
    assert sum(stats.values()) > 0, "the heap filler never caused a MemoryError"


def test_oom_memory_mode():
    stats = sweep(True)
    assert sum(stats.values()) > 0, "the heap filler never caused a MemoryError"


def test_heap_locked_calls_fail_cleanly():
    # with the heap locked every allocation fails at once
    import micropython

    if not hasattr(micropython, "heap_lock"):
        skip("no micropython.heap_lock")
    db = MicroTetherDB(TMP + "/lock.db", in_memory=False)
    db.put("a", {"n": 1})
    calls = (lambda: db.put("b", {"n": 2}), lambda: db.put_batch([("c", {"n": 3})]),
             lambda: db.query({"n": 1}), lambda: db.get("a"), lambda: db.cleanup())
    for c in calls:
        micropython.heap_lock()
        try:
            c()
        except MemoryError:
            pass
        finally:
            micropython.heap_unlock()
    assert db.get("b") is None and db.get("c") is None
    assert db.get("a") == {"n": 1}
    assert len(db) == 1
    db.put("d", {"n": 4})
    db.close()
    db = MicroTetherDB(TMP + "/lock.db", in_memory=False)
    assert sorted(db.keys()) == ["a", "d"]
    db.close()
