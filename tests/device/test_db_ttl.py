# TTL with an injected clock: visibility, cleanup counts, reopen, overwrite.
from microtetherdb import MicroTetherDB, codec

T = [1000]


def clk():
    return T[0]


def _db(**kw):
    T[0] = 1000
    return MicroTetherDB(clock=clk, **kw)


def test_expiry_generated_and_custom_keys():
    db = _db()
    kg = db.put({"g": 1}, ttl=10)
    db.put("custom", {"c": 1}, ttl=10)
    db.put("forever", {"f": 1})
    T[0] = 1009
    assert db.get(kg) == {"g": 1} and db.get("custom") == {"c": 1}
    assert len(db) == 3
    T[0] = 1010  # expiry = 1010: expired when now >= expiry
    assert db.get(kg) is None and db.get("custom") is None
    assert db.get("custom", "dflt") == "dflt"
    assert kg not in db and "custom" not in db and "forever" in db
    assert len(db) == 1
    assert list(db.keys()) == ["forever"]
    assert list(db.items()) == [("forever", {"f": 1})]
    assert db.query({}) == [{"f": 1}]
    assert db.query({"c": 1}) == []
    db.close()


def test_cleanup_counts_and_removes():
    db = _db()
    for i in range(50):
        db.put("a%02d" % i, {"i": i}, ttl=5)
    for i in range(30):
        db.put("b%02d" % i, {"i": i}, ttl=20)
    db.put("z", {"z": 1})
    assert db.cleanup() == 0
    T[0] = 1005
    assert len(db) == 31
    assert db.stats()["expired_pending"] == 50
    assert db.cleanup() == 50
    assert db.cleanup() == 0
    assert db.stats()["expired_pending"] == 0 and len(db) == 31
    assert db._bt.get(b"a00") is None  # physically removed
    T[0] = 2000
    assert db.cleanup() == 30
    assert len(db) == 1 and list(db.keys()) == ["z"]
    # the expiry index is empty again
    assert [k for k in db._bt.keys(b"\xfft", b"\xfft\xff")] == []
    db.close()


def test_float_ttl_rounds_up_and_zero_means_none():
    db = _db()
    db.put("f", {"v": 1}, ttl=0.5)
    db.put("z", {"v": 1}, ttl=0)
    assert codec.header(db._bt[b"f"])[0] == 1001
    assert codec.header(db._bt[b"z"])[0] is None
    T[0] = 1001
    assert db.get("f") is None and db.get("z") == {"v": 1}
    db.close()


def test_overwrite_changes_expiry():
    db = _db()
    db.put("k", {"v": 1}, ttl=10)
    db.put("k", {"v": 2}, ttl=100)
    T[0] = 1050
    assert db.get("k") == {"v": 2}
    assert db.cleanup() == 0
    db.put("k", {"v": 3})  # no ttl: lives forever
    T[0] = 5000
    assert db.get("k") == {"v": 3} and db.cleanup() == 0 and len(db) == 1
    db.put("k", {"v": 4}, ttl=1)
    T[0] = 5001
    assert db.get("k") is None and len(db) == 0
    assert db.cleanup() == 1
    db.close()


def test_overwrite_expired_record():
    db = _db()
    db.put("k", {"v": 1}, ttl=10)
    T[0] = 1020
    assert len(db) == 0
    db.put("k", {"v": 2})
    assert db.get("k") == {"v": 2} and len(db) == 1
    assert db.cleanup() == 0
    db.close()


def test_delete_expired_returns_zero():
    db = _db()
    db.put("k", {"v": 1}, ttl=10)
    db.put("j", {"v": 1}, ttl=10)
    T[0] = 1010
    assert db.delete("k") == 0
    assert db.delete_batch(["j"]) == 0
    assert db.stats()["expired_pending"] == 0 and db.cleanup() == 0
    db.close()


def test_delete_before_and_after_the_first_header():
    # Memory mode deletes a plain database's records without reading them;
    # once a record with expiry or tags exists, deletes read again (expired:
    # 0, index entries dropped). Also after purge back to plain.
    for rnd in range(2):
        db = _db()
        a = db.put({"v": 1})
        assert db.delete(a) == 1 and db.delete(a) == 0 and db.delete("never") == 0
        b = db.put({"v": 2})
        db.put("t", {"v": 3}, ttl=10, tags=["x"])
        db.put("u", {"v": 4}, ttl=10)
        assert db.delete(b) == 1 and db.delete(b) == 0 and len(db) == 2
        assert db.delete("t") == 1 and db.query({"$tags": "x"}) == []
        T[0] = 1010
        assert db.delete("u") == 0 and db.delete("u") == 0
        assert len(db) == 0 and db.stats()["expired_pending"] == 0 and db.cleanup() == 0
        c = db.put({"v": 5})
        assert db.delete(c) == 1 and db.delete(c) == 0
        db.delete(purge=True)
        d = db.put({"v": 6})
        assert db.delete(d) == 1 and db.delete(d) == 0 and len(db) == 0
        db.close()


def test_batch_ttls():
    db = _db()
    ks = db.put_batch([{"i": 0}, {"i": 1}, {"i": 2}], ttls=[5, None, 15])
    ks2 = db.put_batch([{"j": 0}, {"j": 1}], ttls=7)
    T[0] = 1005
    assert [db.get(k) for k in ks] == [None, {"i": 1}, {"i": 2}]
    assert db.get(ks2[0]) == {"j": 0}
    T[0] = 1007
    assert db.get(ks2[0]) is None and db.get(ks2[1]) is None
    assert len(db) == 2
    assert db.cleanup() == 3
    db.close()


def test_ttl_survives_reopen():
    fn = TMP + "/ttl.db"
    db = _db(filename=fn, in_memory=False)
    db.put("short", {"v": 1}, ttl=10)
    kg = db.put({"v": 2}, ttl=100)
    db.put("long", {"v": 3})
    db.close()
    T[0] = 1050
    db = MicroTetherDB(filename=fn, in_memory=False, clock=clk)
    assert db.get("short") is None and db.get(kg) == {"v": 2}
    assert len(db) == 2
    assert db.cleanup() == 1
    db.close()
    db = MicroTetherDB(filename=fn, in_memory=False, clock=clk)
    assert len(db) == 2 and db.stats()["expired_pending"] == 0
    T[0] = 1100
    assert len(db) == 1 and db.cleanup() == 1
    db.close()


def test_clock_jump_backwards_keeps_records():
    db = _db()
    db.put("k", {"v": 1}, ttl=10)
    T[0] = 0  # RTC reset to epoch: record lives on until the clock passes expiry again
    assert db.get("k") == {"v": 1} and db.cleanup() == 0
    T[0] = 1010
    assert db.get("k") is None
    db.close()


def test_default_clock_real_time():
    import time

    db = MicroTetherDB()
    db.put("k", {"v": 1}, ttl=1000)
    e = codec.header(db._bt[b"k"])[0]
    assert abs(e - int(time.time()) - 1000) <= 2
    db.close()
