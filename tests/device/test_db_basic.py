# Basic CRUD, put forms, iteration, len, stats, context manager, closed DB.
from microtetherdb import MicroTetherDB, DBError, codec, filestore


def test_put_get_generated_key():
    db = MicroTetherDB()
    k = db.put({"a": 1, "s": "h\u00e9llo", "l": [1, 2.5, None, True], "d": {"x": {"y": 0}}})
    assert type(k) is str
    assert db.get(k) == {"a": 1, "s": "h\u00e9llo", "l": [1, 2.5, None, True], "d": {"x": {"y": 0}}}
    assert db.get("missing") is None
    assert db.get("missing", 42) == 42
    assert len(db) == 1
    db.close()


def test_put_key_forms():
    db = MicroTetherDB()
    assert db.put("k1", {"v": 1}) == "k1"
    assert db.put({"v": 2}, key="k2") == "k2"
    assert db.put({"v": 3}, None, None, "k3") == "k3"
    assert db.put(b"k4", {"v": 4}) == "k4"
    assert db.put({"v": 5}, 60) != "60"  # 2nd positional of put(data, ...) is ttl
    assert db.put("k6", {"v": 6}, 60, ["t"]) == "k6"
    assert db.put(data={"v": 7}, key="k7") == "k7"
    assert db.put("k8", data={"v": 8}) == "k8"
    assert db.get("k1") == {"v": 1} and db.get("k2") == {"v": 2} and db.get("k3") == {"v": 3}
    assert db.get(b"k4") == {"v": 4} and db.get("k4") == {"v": 4}
    assert db.get("k6") == {"v": 6} and db.get("k7") == {"v": 7} and db.get("k8") == {"v": 8}
    assert len(db) == 8
    db.close()


def test_overwrite_and_delete():
    db = MicroTetherDB()
    db.put("a", {"v": 1})
    db.put("a", {"v": 2})
    assert db.get("a") == {"v": 2}
    assert len(db) == 1
    assert db.delete("a") == 1
    assert db.delete("a") == 0
    assert db.get("a") is None
    assert len(db) == 0
    assert db.delete("never") == 0
    db.close()


def test_put_does_not_mutate_caller_dict():
    db = MicroTetherDB()
    d = {"x": 1}
    k = db.put(d, tags=["red", "big"])
    assert d == {"x": 1}
    assert db.get(k) == {"x": 1}
    assert codec.header(db._bt[k.encode()])[1] == ("red", "big")
    d["x"] = 2
    assert db.get(k) == {"x": 1}
    db.close()


def test_tags_single_str():
    db = MicroTetherDB()
    db.put("a", {"v": 1}, tags="solo")
    exp, tags, doc = codec.decode(db._bt[b"a"])
    assert exp is None and tags == ("solo",) and doc == {"v": 1}
    db.close()


def test_generated_keys_unique_and_ordered():
    t = [1000]
    db = MicroTetherDB(clock=lambda: t[0])
    ks = [db.put({"i": i}) for i in range(150)]
    t[0] = 1001
    ks += [db.put({"i": i}) for i in range(150, 160)]
    assert len(set(ks)) == 160
    assert ks == sorted(ks)
    assert list(db.keys()) == ks
    assert [d["i"] for d in db.values()] == list(range(160))
    # clock going backwards: still unique and increasing
    t[0] = 900
    k = db.put({"i": -1})
    assert k > ks[-1]
    db.close()


def test_generated_key_skips_taken_custom_key():
    t = [1000]
    db = MicroTetherDB(clock=lambda: t[0])
    db.put("0000001000-00000", {"custom": True})
    k = db.put({"gen": True})
    assert k != "0000001000-00000"
    assert db.get("0000001000-00000") == {"custom": True}
    assert db.get(k) == {"gen": True}
    db.close()


def test_generated_keys_above_custom_keys_of_their_shape():
    # No lookup per put: a custom key shaped like a generated one moves the
    # generator above it (put, put_batch), and so does one found on opening
    # (written by an earlier version, or by a put whose metadata was older).
    fn = TMP + "/g.db"
    t = [1000]
    db = MicroTetherDB(fn, in_memory=False, clock=lambda: t[0], file_format=1)  # (raw btree below)
    db.put("0000001000-00007", {"c": 1})
    k = db.put({"g": 1})
    assert k == "0000001000-00008", k
    ks = db.put_batch([{"g": 2}, ("0000001005-00003", {"c": 2}), {"g": 3}])
    assert ks[1] == "0000001005-00003" and ks[0] > "0000001005-00003" and ks[2] > ks[0], ks
    db.put(b"0000001009-12345", {"c": 3})
    db.close()
    import btree
    f = open(fn, "r+b")
    b = btree.open(f, pagesize=512)
    b[b"0000002000-00001"] = b'{"c": 4}'  # behind the database's back: metadata not updated
    b.close()
    f.close()
    db = MicroTetherDB(fn, in_memory=False, clock=lambda: t[0])
    k = db.put({"g": 4})
    assert k > "0000002000-00001", k
    assert len(db) == 7 and db.get("0000002000-00001") == {"c": 4}
    assert list(db.keys()) == sorted(db.keys())
    db.close()


def test_put_arguments_given_twice_refused():
    db = MicroTetherDB()
    raises(TypeError, db.put, {"v": 1}, 5, ttl=6)
    raises(TypeError, db.put, {"v": 1}, None, ["a"], tags=["b"])
    raises(TypeError, db.put, {"v": 1}, None, None, "k", key="j")
    raises(TypeError, db.put, "k", {"v": 1}, key="j")
    raises(TypeError, db.put, "k", {"v": 1}, 5, ttl=6)
    raises(TypeError, db.put, "k", {"v": 1}, None, ["a"], tags=["b"])
    raises(TypeError, db.put, {"v": 1}, data={"v": 2})
    raises(TypeError, db.put, "k", data={"v": 2}, key="j")
    raises(TypeError, db.put)
    assert len(db) == 0
    db.close()


def test_contains_len_iteration():
    db = MicroTetherDB()
    for k in ("b", "a", "c", "ab", "b2"):
        db.put(k, {"k": k})
    assert "a" in db and b"ab" in db and "zz" not in db
    assert len(db) == 5
    assert list(db) == ["a", "ab", "b", "b2", "c"]
    assert list(db.keys(start="ab")) == ["ab", "b", "b2", "c"]
    assert list(db.keys(start="ab", end="b2")) == ["ab", "b"]
    assert list(db.keys(prefix="b")) == ["b", "b2"]
    assert list(db.keys(prefix="a", end="ab")) == ["a"]
    assert list(db.items(prefix="b")) == [("b", {"k": "b"}), ("b2", {"k": "b2"})]
    assert list(db.values(end="ab")) == [{"k": "a"}]
    assert list(db.keys(prefix="zz")) == []
    # keys after the prefix's every byte below 0xff ("b\\", "b~", "bz", "b\u00e9")
    for k in ("b\\", "b~", "bz", "b\u00e9", "c0"):
        db.put(k, {"k": k})
    assert list(db.keys(prefix="b")) == ["b", "b2", "b\\", "bz", "b~", "b\u00e9"]
    assert list(db.keys(prefix=b"b\xc3\xa9")) == ["b\u00e9"]
    db.close()


def test_iteration_tolerates_writes():
    db = MicroTetherDB()
    for i in range(100):
        db.put("k%03d" % i, {"i": i})
    seen = []
    for k in db.keys():
        seen.append(k)
        db.delete(k)
    assert len(seen) == 100 and len(db) == 0
    db.close()


def test_iterators_raise_after_close():
    # keys()/items()/values() say the database closed under them, as find()
    # does, instead of stopping as if the data had ended.
    for what in ("keys", "items", "values", "find"):
        db = MicroTetherDB()
        for i in range(40):
            db.put("k%03d" % i, {"i": i})
        it = db.find({}) if what == "find" else getattr(db, what)()
        next(it)
        db.close()
        n = 0
        try:
            for _ in it:
                n += 1
        except DBError:
            pass
        else:
            raise AssertionError("%s: no DBError after close (%d more items)" % (what, n))
        raises(DBError, getattr(db, what), *(({},) if what == "find" else ()))


def test_internal_keys_invisible():
    db = MicroTetherDB()
    db.put("a", {"v": 1}, ttl=100)
    assert list(db.keys()) == ["a"]
    assert [k for k, v in db._records()] == [b"a"]
    assert len(db) == 1
    db.close()


def test_stats():
    t = [1000]
    db = MicroTetherDB(clock=lambda: t[0])
    db.put("a", {"v": 1})
    db.put("b", {"v": 2}, ttl=10)
    s = db.stats()
    assert s["records"] == 2 and s["expired_pending"] == 0
    assert s["in_memory"] is True and s["bytes_used"] > 0 and s["budget"] > 0
    t[0] = 1010
    s = db.stats()
    assert s["records"] == 1 and s["expired_pending"] == 1
    db.close()


def test_with_and_closed_errors():
    with MicroTetherDB() as db:
        db.put("a", {"v": 1})
    assert "closed" in raises(DBError, db.get, "a")
    raises(DBError, db.put, {"v": 1})
    raises(DBError, db.delete, "a")
    raises(DBError, db.put_batch, [{"v": 1}])
    raises(DBError, db.delete_batch, ["a"])
    raises(DBError, db.cleanup)
    raises(DBError, db.flush)
    raises(DBError, db.stats)
    raises(DBError, db.keys)
    raises(DBError, db.items)
    raises(DBError, len, db)
    raises(DBError, lambda: "a" in db)
    raises(DBError, db.query, {})
    db.close()  # closing twice is allowed


def test_query_equality_and_limit():
    db = MicroTetherDB()
    for i in range(10):
        db.put("k%d" % i, {"i": i, "even": i % 2 == 0})
    r = db.query({"even": True})
    assert sorted(d["i"] for d in r) == [0, 2, 4, 6, 8]
    assert len(db.query({"even": True, "$limit": 2})) == 2
    assert len(db.query({})) == 10
    db.close()


def test_delete_purge_memory():
    db = MicroTetherDB()
    for i in range(20):
        db.put({"i": i}, ttl=100)
    assert db.delete(purge=True) == 1
    assert len(db) == 0 and list(db.keys()) == []
    k = db.put({"x": 1})
    assert db.get(k) == {"x": 1} and len(db) == 1
    db.close()


def test_key_of_16_utf8_bytes_but_fewer_characters():
    # "é" * 8 is 16 bytes of UTF-8 (the length of a generated key) in 8
    # characters: written as str or bytes, in a batch, replayed from the log
    # and seen by the open-time scan, it is a custom key like any other
    # (it raised IndexError, and a file database holding it did not open).
    k = "\u00e9" * 8
    for mem in (True, False):
        fn = TMP + "/u16.db"
        if not mem:
            filestore.drop(fn)
        db = MicroTetherDB(fn, in_memory=mem)
        assert db.put(k.encode(), {"v": 1}) == k
        assert db.put_batch([(k.encode(), {"v": 2}), ("0" + "\u65e5" * 5, {"v": 3})]) == [k, "0" + "\u65e5" * 5]
        g = db.put({"v": 4})
        assert db.get(k) == {"v": 2} and len(db) == 3
        if not mem:
            db.close()
            db = MicroTetherDB(fn, in_memory=False)  # the log replayed
            assert db.get(k) == {"v": 2} and db.get(g) == {"v": 4}
            db.compact()
            db.close()
            db = MicroTetherDB(fn, in_memory=False)  # the open-time scan
            assert db.get("0" + "\u65e5" * 5) == {"v": 3} and len(db) == 3
            assert db.put({"v": 5}) > g
        db.close()
