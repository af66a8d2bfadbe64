# Basic CRUD, put forms, iteration, len, stats, context manager, closed DB.
from microtetherdb import MicroTetherDB, DBError, codec


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
