# put_batch / delete_batch: alignment, validation before writing, all-or-nothing.
from microtetherdb import MicroTetherDB


def test_keys_aligned_with_items():
    db = MicroTetherDB()
    items = [{"i": 0}, ("mine", {"i": 1}), {"i": 2}, ["other", {"i": 3}], (b"raw", {"i": 4})]
    ks = db.put_batch(items)
    assert len(ks) == 5
    assert ks[1] == "mine" and ks[3] == "other" and ks[4] == "raw"
    for k, i in zip(ks, range(5)):
        assert db.get(k) == {"i": i}
    assert len(set(ks)) == 5 and len(db) == 5
    db.close()


def test_generated_batch_keys_unique_same_second():
    t = [5000]
    db = MicroTetherDB(clock=lambda: t[0], ram_percentage=40)
    ks = db.put_batch([{"i": i} for i in range(120)])
    ks += db.put_batch([{"i": i} for i in range(120, 240)])
    assert len(set(ks)) == 240 and ks == sorted(ks)
    assert len(db) == 240
    db.close()


def test_invalid_item_writes_nothing():
    db = MicroTetherDB()
    db.put("pre", {"v": 0})
    bad_batches = [
        [{"i": 0}, {"i": 1}, "not a dict", {"i": 3}],
        [{"i": 0}, ("k", {"i": object()})],
        [{"i": 0}, ("", {"i": 1})],
        [{"i": 0}, {"s": "x" * 9000}],
        [{"i": 0}, (b"\xffx", {"i": 1})],
        [{"i": 0}, ("a", {"i": 1}, "extra")],
    ]
    for b in bad_batches:
        try:
            db.put_batch(b)
        except (TypeError, ValueError) as e:
            assert "items[" in str(e), str(e)
        else:
            raise AssertionError("accepted %r" % (b,))
    assert list(db.keys()) == ["pre"] and len(db) == 1
    db.close()


def test_ttls_validation():
    db = MicroTetherDB()
    assert "ttls" in raises(ValueError, db.put_batch, [{"i": 0}, {"i": 1}], [1])
    raises(ValueError, db.put_batch, [{"i": 0}, {"i": 1}], [1, -1])
    raises(ValueError, db.put_batch, [{"i": 0}], "10")
    raises(TypeError, db.put_batch, {"i": 0})
    raises(TypeError, db.put_batch, 5)
    assert len(db) == 0
    assert db.put_batch([]) == []
    assert db.put_batch(({"i": i} for i in range(3)))[0] is not None  # any iterable
    assert len(db) == 3
    db.close()


def test_failure_mid_batch_is_undone():
    db = MicroTetherDB()
    db.put("a", {"v": "old-a"}, ttl=1000)
    db.put("b", {"v": "old-b"})
    before = sorted(db._bt.items())
    real = db._write_record
    calls = [0]

    def flaky(kb, old, new):
        calls[0] += 1
        if calls[0] == 4:
            raise MemoryError("simulated")
        real(kb, old, new)

    db._write_record = flaky
    items = [("a", {"v": "new-a"}), ("x", {"v": 1}), ("b", {"v": "new-b"}), ("y", {"v": 2})]
    raises(MemoryError, db.put_batch, items, [5, 5, 5, 5])
    db._write_record = real
    assert sorted(db._bt.items()) == before
    assert db.get("a") == {"v": "old-a"} and db.get("b") == {"v": "old-b"}
    assert db.get("x") is None and len(db) == 2
    assert db.cleanup() == 0
    db.close()


def test_failure_mid_delete_batch_is_undone():
    db = MicroTetherDB()
    for k in ("a", "b", "c", "d"):
        db.put(k, {"k": k}, ttl=100)
    before = sorted(db._bt.items())
    real = db._delete_record
    calls = [0]

    def flaky(kb, old):
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("simulated")
        real(kb, old)

    db._delete_record = flaky
    raises(MemoryError, db.delete_batch, ["a", "b", "c", "d"])
    db._delete_record = real
    assert sorted(db._bt.items()) == before and len(db) == 4
    db.close()


def test_failed_batch_in_file_mode_not_committed():
    fn = TMP + "/fb.db"
    db = MicroTetherDB(fn, in_memory=False)
    db.put("keep", {"v": 1})
    f0 = db.stats()["flushes"]
    real = db._write_record
    calls = [0]

    def flaky(kb, old, new):
        calls[0] += 1
        if calls[0] == 30:
            raise MemoryError("simulated")
        real(kb, old, new)

    db._write_record = flaky
    raises(MemoryError, db.put_batch, [{"i": i} for i in range(50)])
    db._write_record = real
    assert db.stats()["flushes"] == f0  # nothing committed
    assert len(db) == 1
    db.close()
    db = MicroTetherDB(fn, in_memory=False)
    assert list(db.keys()) == ["keep"]
    db.close()


def test_delete_batch_forms():
    db = MicroTetherDB()
    ks = db.put_batch([{"i": i} for i in range(10)])
    assert db.delete_batch(ks[:3]) == 3
    assert db.delete_batch(ks[:3]) == 0
    assert db.delete_batch(ks[3]) == 1  # one key
    assert db.delete_batch(k for k in ks[4:6]) == 2  # any iterable
    assert db.delete_batch([ks[6], ks[6], "nope"]) == 1
    assert db.delete_batch(()) == 0
    assert len(db) == 3 and list(db.keys()) == ks[7:]
    db.close()


def test_big_batch_file_one_flush():
    fn = TMP + "/big.db"
    db = MicroTetherDB(fn, in_memory=False)
    f0 = db.stats()["flushes"]
    ks = db.put_batch([{"i": i, "pad": "p" * 20} for i in range(200)])
    assert db.stats()["flushes"] == f0 + 1
    assert db.delete_batch(ks[::2]) == 100
    assert db.stats()["flushes"] == f0 + 2
    db.close()
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == 100 and db.get(ks[1]) == {"i": 1, "pad": "p" * 20}
    db.close()


def test_single_put_and_delete_undone_on_failure():
    import btree

    db = MicroTetherDB()
    db.put("k", {"v": 1}, ttl=50)
    before = sorted(db._bt.items())

    class Flaky:
        # wraps the btree: fails the n-th write
        def __init__(self, bt, n):
            self.bt, self.n = bt, n

        def _tick(self):
            self.n -= 1
            if self.n == 0:
                raise MemoryError("simulated")

        def __setitem__(self, k, v):
            self._tick()
            self.bt[k] = v

        def __delitem__(self, k):
            self._tick()
            del self.bt[k]

        def get(self, k, d=None):
            return self.bt.get(k, d)

        def __getitem__(self, k):
            return self.bt[k]

    real = db._bt
    for n in (1, 2, 3):
        db._bt = Flaky(real, n)
        try:
            db.put("k", {"v": 2}, ttl=100)  # del old index entry, put record, put new index entry
        except MemoryError:
            pass
        db._bt = real
        assert sorted(db._bt.items()) == before, n
        assert db.get("k") == {"v": 1} and len(db) == 1
    for n in (1, 2):
        db._bt = Flaky(real, n)
        try:
            db.delete("k")
        except MemoryError:
            pass
        db._bt = real
        assert sorted(db._bt.items()) == before, n
        assert len(db) == 1
    db.close()
