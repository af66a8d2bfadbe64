# The in-memory store (memstore.py) on any heap state: on a fragmented heap,
# a small one or a large one, a write that cannot fit raises DBFullError
# before anything is written, a MemoryError from inside a call leaves the
# database as it was, and the page accounting stays exact. Runs on the host
# firmware's default heap and the qemu board here, and under small and large
# heaps through tests/test_memstore_heaps.py.
# uses: heapfill
import gc
from microtetherdb import MicroTetherDB, DBFullError


def fragment(hole, keep):
    # Fill 60 % of the free heap with pairs (a block of `hole` bytes, a block
    # of `keep` bytes), then drop the first of each pair: holes of `hole`
    # bytes between live blocks, where first-fit allocation looks first.
    # Returns the live blocks (keep them referenced).
    gc.collect()
    n = gc.mem_free() * 6 // 10 // (hole + keep + 32)
    live = [None] * n
    for i in range(n):
        a = bytearray(hole)
        live[i] = bytearray(keep)
        a = None
    gc.collect()
    return live


def _fill_batches(db, size, pad, have=0):
    # put_batch of `size` records until DBFullError; after every call the
    # database holds exactly the `have` records before and the acknowledged
    # ones -> their keys.
    acked = []
    for _ in range(400):
        items = [{"i": len(acked) + j, "pad": "x" * pad} for j in range(size)]
        try:
            acked += db.put_batch(items)
        except DBFullError:
            assert len(db) == have + len(acked), (len(db), have, len(acked))
            return acked
        assert len(db) == have + len(acked)
    raise AssertionError("no DBFullError after %d records" % len(acked))


def _same(db, keys):
    got = sorted(db.keys())
    assert got == sorted(keys), (len(got), len(keys))
    for k in keys[:: max(1, len(keys) // 20)]:
        assert db.get(k) is not None, k


def _pct(nbytes):
    gc.collect()
    return nbytes * 100 / (gc.mem_free() + gc.mem_alloc())


def test_full_raises_before_write_on_fragmented_heap():
    # Holes just under a page (a btree page on boards whose C malloc is the
    # MicroPython heap needs about 540 bytes) and just over one.
    for hole in (400, 800):
        live = fragment(hole, 96)
        db = MicroTetherDB(ram_percentage=_pct(16000))
        acked = _fill_batches(db, 20, 40)
        # (qemu: btree's pages come from the MicroPython heap, and holes
        # smaller than a page give it none: DBFullError from the start)
        assert acked or (TARGET == "qemu" and hole < 540), hole
        _same(db, acked)
        # single writes: each fits or raises DBFullError, nothing half-written
        for i in range(60):
            try:
                acked.append(db.put({"i": -1 - i, "pad": "y" * 60}, tags=["a", "b"], ttl=1000))
            except DBFullError:
                pass
            assert len(db) == len(acked)
        _same(db, acked)
        assert db.query({"tags": "a"}) == [d for d in db.values() if d["i"] < 0]
        assert db._st.f.spilled == 0
        s = db.stats()
        assert s["bytes_used"] <= s["budget"], s
        db.close()
        live = None
        gc.collect()


def test_memory_error_inside_a_call_changes_nothing():
    # The heap itself runs out part-way through calls (a filler takes all
    # of it but a little): each call is applied whole or not at all.
    db = MicroTetherDB(ram_percentage=_pct(20000), clock=lambda: 1000)
    base = db.put_batch([{"i": i} for i in range(30)])
    db.create_index("i")
    model = dict((k, db.get(k)) for k in base)
    rounds = 0
    for leave in range(0, 6000, 150):
        # the call and the state it would make, all built before the heap fills
        k = "r%d" % leave
        op = leave // 150 % 4
        if op >= 2 and len(model) < 4:
            op = 0
        after = dict(model)
        if op == 0:
            d = {"i": leave, "s": "z" * 30}
            args = (k, d, 500, ["t"])
            after[k] = d
        elif op == 1:
            args = ([("%s_%d" % (k, j), {"i": j}) for j in range(6)],)
            for kk, d in args[0]:
                after[kk] = d
        elif op == 2:
            args = (sorted(model)[:3],)
            for g in args[0]:
                del after[g]
        else:
            args = (sorted(model)[-1],)
            del after[args[0]]
        fn = (db.put, db.put_batch, db.delete_batch, db.delete)[op]
        fl = Filler()
        fl.fill(leave)
        ok = True
        try:
            fn(*args)
        except MemoryError:  # (btree's ENOMEM on the qemu board too)
            ok = False
        fl.release()
        rounds += not ok
        want = after if ok else model
        got = dict(db.items())
        assert got == want, (leave, op, ok, sorted(got), sorted(want))
        assert len(db) == len(want)
        for key in want:  # the field index agrees with the records
            assert key in [kk for kk, _ in db.find({"i": want[key]["i"]})], (key, want[key])
        model = want
    assert rounds, "the heap never ran out"
    db.close()


def test_free_page_count_is_exact():
    # The incremental count of btree's free list (after each flush) against
    # a walk of the whole list, through random writes and deletes.
    db = MicroTetherDB(ram_percentage=_pct(40000))
    st = db._st
    seed = [7]

    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (seed[0] >> 8) % n

    for r in range(600):
        op = rnd(10)
        try:
            if op < 6:
                db.put("k%04d" % rnd(400), {"v": "x" * rnd(300)}, tags=(["a"] if op == 0 else None))
            elif op < 9:
                db.delete("k%04d" % rnd(400))
            else:
                db.delete_batch(["k%04d" % rnd(400) for _ in range(15)])
        except DBFullError:
            pass
        if r % 40 == 0:
            st.measure()
            s = st.f
            n = 0
            pg = s.head
            while 0 < pg < len(s.nxt):
                n += 1
                pg = s.nxt[pg]
            assert n == st._free, (r, n, st._free)
            assert s.npages <= st.max + (st.max >> 3) + 16
    assert st.f.spilled == 0
    db.close()


def test_pool_grows_to_the_budget_and_compact_shrinks_it():
    db = MicroTetherDB(ram_percentage=_pct(24000))
    st = db._st
    start = st.f.npages
    keys = _fill_batches(db, 10, 100)
    assert st.f.npages > start
    assert st.used() * st.psize <= db.stats()["budget"]
    full = st.f.npages
    db.delete_batch(keys[: len(keys) * 3 // 4])
    assert db.compact() > 0
    assert st.f.npages < full
    left = keys[len(keys) * 3 // 4 :]
    _same(db, left)
    more = _fill_batches(db, 10, 100, len(left))  # grows again, up to the budget
    _same(db, left + more)
    db.close()
