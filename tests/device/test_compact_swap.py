# compact(): reclaims space, keeps every record/tag/expiry/index entry, and
# survives a power cut at every step of the file swap; stats() live/dead bytes.
import os
from microtetherdb import MicroTetherDB
from microtetherdb import compact as C

T = [1000]
STEPS = ["start", "copy", "copied", "written", "renamed-new", "closed", "removed", "swapped"]


def raw_items(db):
    # every key/value in the btree (records, TTL index, indexes, metadata)
    return [(bytes(k), bytes(v)) for k, v in db._bt.items()]


def make(fn, mem, n=150):
    T[0] = 1000
    for s in ("", ".new", ".swp", ".jnl"):
        if exists(fn + s):
            os.remove(fn + s)
    # memory mode: the budget is allocated at open, and compact() needs room
    # for a second store beside it on qemu's heap
    kw = {"ram_percentage": 35} if mem else {"autoflush": False}   # one flush below
    db = MicroTetherDB(fn, in_memory=mem, clock=lambda: T[0], **kw)
    db.create_index("n")
    for i in range(n):
        db.put("k%03d" % i, {"n": i % 9, "pad": "x" * (i % 40)}, tags=["t%d" % (i % 4)],
               ttl=(50 if i % 5 == 0 else None))
    for i in range(0, n, 3):
        db.delete("k%03d" % i)
    for i in range(1, n, 3):
        db.put("k%03d" % i, {"n": -i})
    db.flush()
    return db


def test_compact_file_and_memory():
    for mem in (False, True):
        fn = TMP + "/c.db"
        n = 60 if mem and TARGET == "qemu" else 150   # qemu: ~140 KB heap
        live = n - len(range(0, n, 3))
        ttl = len([i for i in range(n) if i % 15 == 5])   # TTL kept: not deleted, not overwritten
        db = make(fn, mem, n)
        before = raw_items(db)
        s0 = db.stats()
        assert s0["live_bytes"] + s0["dead_bytes"] == s0["bytes_used"], s0
        assert s0["dead_bytes"] > s0["bytes_used"] // 3, s0
        got = db.compact()
        s1 = db.stats()
        assert got > 0 and got == s0["bytes_used"] - s1["bytes_used"], (got, s0, s1)
        assert s1["dead_bytes"] < s0["dead_bytes"] // 4, (s0, s1)
        assert s1["free_pages"] == 0 or mem  # memory: the free pages are the budget's pool
        assert raw_items(db) == before                    # byte-identical contents
        assert len(db) == live and db.get("k001") == {"n": -1}
        assert [k for k, _ in db.find({"n": -4})] == ["k004"]
        assert db.explain({"n": 2})["plan"] == "index"
        T[0] = 1100
        assert db.cleanup() == ttl and len(db) == live - ttl   # TTL index came along
        db.put("new", {"n": 1})
        assert db.compact() >= 0
        assert not exists(fn + ".new") and not exists(fn + ".swp")
        db.close()
        if not mem:
            db = MicroTetherDB(fn, in_memory=False, clock=lambda: T[0])
            assert len(db) == live - ttl + 1 and db.get("new") == {"n": 1}
            assert db.indexes() == ["$tags", "n"]
            db.close()


def test_compact_power_cut_at_every_step():
    fn = TMP + "/p.db"
    seen = []
    for step in STEPS:
        db = make(fn, False)
        want = raw_items(db)

        def hook(name, step=step):
            if name == step:
                seen.append(name)
                raise C.Cut(name)

        C._hook = hook
        try:
            db.compact()
            raise AssertionError("no cut at " + step)
        except C.Cut:
            pass
        finally:
            C._hook = None
        db = None  # power gone: the old object is never used or closed again
        db2 = MicroTetherDB(fn, in_memory=False, clock=lambda: T[0])
        assert raw_items(db2) == want, step               # old or new file, complete
        assert not exists(fn + ".new") and not exists(fn + ".swp"), step
        assert len(db2) == 100
        assert [k for k, _ in db2.find({"n": -4})] == ["k004"]
        db2.put("after", {"n": 0})
        assert db2.compact() > 0 or step in ("closed", "removed", "swapped")
        db2.close()
        db2 = MicroTetherDB(fn, in_memory=False, clock=lambda: T[0])
        assert db2.get("after") == {"n": 0} and len(db2) == 101, step
        db2.close()
    assert seen == STEPS, seen


def test_leftovers_are_cleaned_on_open():
    fn = TMP + "/l.db"
    db = make(fn, False)
    want = raw_items(db)
    db.close()
    with open(fn + ".new", "wb") as f:       # an unfinished copy
        f.write(b"garbage")
    db = MicroTetherDB(fn, in_memory=False)
    assert raw_items(db) == want and not exists(fn + ".new")
    db.close()


def test_compact_failure_keeps_database_usable():
    fn = TMP + "/f.db"
    db = make(fn, False)
    want = raw_items(db)

    def hook(name):
        if name == "copied":
            raise OSError(28)   # ENOSPC while writing the copy
    C._hook = hook
    try:
        db.compact()
        raise AssertionError("no error")
    except OSError:
        pass
    finally:
        C._hook = None
    assert not exists(fn + ".new")
    assert raw_items(db) == want
    db.put("x", {"n": 1})
    db.close()
    db = MicroTetherDB(fn, in_memory=False, clock=lambda: T[0])
    assert db.get("x") == {"n": 1} and len(db) == 101
    db.close()


def test_stats_on_empty_and_closed():
    db = MicroTetherDB(in_memory=True)
    s = db.stats()
    assert s["live_bytes"] + s["dead_bytes"] == s["bytes_used"]
    assert s["free_pages"] > 0  # memory: the pool of free pages, grown as needed
    assert db.compact() >= 0
    db.close()
    try:
        db.compact()
        raise AssertionError("compact on a closed database")
    except Exception as e:
        assert "closed" in str(e)


def test_iterating_across_compact_and_close():
    for mem in (True, False):
        db = make(TMP + "/i.db", mem, 60)
        for q in ({"n": {"$lt": 0}}, {"n": {"$lt": 0}, "$plan": "scan"},
                  {"n": {"$lt": 0}, "$sort": ("n", 1)}):
            want = [k for k, _ in db.find(q)]
            assert len(want) == 20, (q, want)
            it = db.find(q)
            got = [next(it)[0] for _ in range(3)]
            db.compact()
            got += [k for k, _ in it]
            assert got == want, (q, got)
        it = db.find({"n": {"$lt": 0}})
        next(it)
        db.close()
        try:
            list(it)
            raise AssertionError("iterating a closed database")
        except Exception as e:
            assert "closed" in str(e), e
