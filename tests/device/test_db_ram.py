# In-memory mode honours ram_percentage: DBFullError before writing, DB usable.
import gc
from microtetherdb import MicroTetherDB, DBFullError


def _pct(budget=20000):
    # ram_percentage giving a budget of about `budget` bytes on this heap
    gc.collect()
    return budget * 100 / (gc.mem_free() + gc.mem_alloc())


def _fill(db, prefix, pad=40):
    n = 0
    try:
        while True:
            db.put("%s%05d" % (prefix, n), {"n": n, "pad": "x" * pad})
            n += 1
    except DBFullError:
        pass
    return n


def test_budget_is_share_of_heap():
    gc.collect()
    total = gc.mem_free() + gc.mem_alloc()
    db = MicroTetherDB(ram_percentage=10)
    assert abs(db.stats()["budget"] - total // 10) <= total // 100
    db.close()
    db = MicroTetherDB(TMP + "/f.db", in_memory=False)
    assert db.stats()["budget"] is None
    db.close()


def test_full_raises_and_nothing_half_written():
    db = MicroTetherDB(ram_percentage=_pct())
    budget = db.stats()["budget"]
    n = _fill(db, "k")
    assert n > 20
    assert len(db) == n
    assert db.get("k%05d" % n) is None  # the refused record is not there
    assert db.get("k%05d" % (n - 1)) == {"n": n - 1, "pad": "x" * 40}
    assert db.stats()["bytes_used"] <= budget
    assert sum(1 for _ in db.keys()) == n
    # still usable: reads, deletes, queries
    assert db.delete("k00000") == 1 and len(db) == n - 1
    assert len(db.query({"n": 5})) == 1
    db.close()


def test_space_reused_after_delete():
    db = MicroTetherDB(ram_percentage=_pct())
    budget = db.stats()["budget"]
    n = _fill(db, "a")
    assert db.delete_batch(list(db.keys())) == n and len(db) == 0
    m = _fill(db, "b")
    assert m >= n * 9 // 10, (n, m)
    assert db.stats()["bytes_used"] <= budget
    db.close()


def test_ttl_records_and_cleanup_free_space():
    t = [100]
    db = MicroTetherDB(ram_percentage=_pct(), clock=lambda: t[0])
    n = 0
    try:
        while True:
            db.put({"n": n, "pad": "y" * 40}, ttl=10)
            n += 1
    except DBFullError:
        pass
    assert len(db) == n
    t[0] = 200
    assert db.cleanup() == n
    m = 0
    try:
        while m < n // 2:
            db.put({"m": m, "pad": "y" * 40})
            m += 1
    except DBFullError:
        pass
    assert m == n // 2
    db.close()


def test_batch_over_budget_writes_nothing():
    db = MicroTetherDB(ram_percentage=_pct(6000))
    db.put("pre", {"v": 1})
    try:
        db.put_batch([{"i": i, "pad": "z" * 100} for i in range(80)])
    except DBFullError:
        pass
    else:
        raise AssertionError("no DBFullError")
    assert list(db.keys()) == ["pre"] and len(db) == 1
    db.close()


def test_batch_past_the_estimate_is_undone():
    # If the batch's estimate lets it through but its records do not fit
    # (each record reserves its worst case before it is written), the batch
    # is undone and DBFullError raised.
    db = MicroTetherDB(ram_percentage=_pct(6000))
    db.put("pre", {"v": 1})
    db._st.fits = lambda pages: True  # defeat the estimate
    try:
        db.put_batch([{"i": i, "pad": "z" * 100} for i in range(80)])
    except DBFullError:
        pass
    else:
        raise AssertionError("no DBFullError")
    assert list(db.keys()) == ["pre"] and len(db) == 1
    assert db.get("pre") == {"v": 1}
    n = _fill(db, "c")  # usable afterwards
    assert n > 5
    db.close()


def test_big_documents_counted():
    db = MicroTetherDB(ram_percentage=_pct())
    budget = db.stats()["budget"]
    n = 0
    try:
        while True:
            db.put({"s": "q" * 4000})
            n += 1
    except DBFullError:
        pass
    assert 0 < n < budget // 4000 + 1
    assert db.stats()["bytes_used"] <= budget
    db.close()


def test_pool_grows_between_writes_and_failed_batches_leave_nothing():
    # The store's pages (btree's page cache) are a pool that grows between
    # writes, up to the budget, so no write allocates a page inside btree; a
    # batch that does not fit raises DBFullError and leaves nothing.
    db = MicroTetherDB(ram_percentage=_pct(30000))
    s = db.stats()
    assert abs(s["budget"] - 30000) < 1000 and 0 < s["free_pages"] * 512 < s["budget"], s
    n = 0
    full = 0
    for attempt in range(12):
        try:
            db.put_batch([{"i": i, "pad": "y" * 40} for i in range(40)])
            n += 40
        except DBFullError:
            full += 1
        assert len(db) == n
        assert sum(1 for _ in db.keys()) == n
    assert full and n  # some batches fitted, then the budget was reached
    assert db.stats()["bytes_used"] <= db.stats()["budget"]
    assert db._st.f.spilled == 0  # btree never had to evict a page
    db.close()
