# Argument validation and error types.
from microtetherdb import MicroTetherDB, DBError, DBLock, DBFullError, CorruptDBError


def test_exception_hierarchy():
    assert issubclass(DBLock, DBError)
    assert issubclass(CorruptDBError, DBError)
    assert issubclass(DBFullError, MemoryError)


def test_unknown_kwarg_typeerror():
    assert "bogus" in raises(TypeError, MicroTetherDB, bogus=1)


def test_constructor_values_named():
    bad = [
        ("filename", ""),
        ("filename", 3),
        ("ram_percentage", 0),
        ("ram_percentage", 101),
        ("ram_percentage", "15"),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("retry_delay", -0.1),
        ("lock_timeout", -1),
        ("ttl_check_interval", -5),
        ("cleanup_interval", "x"),
        ("btree_cachesize", -1),
        ("btree_pagesize", 100),
        ("btree_pagesize", 1000),
        ("autoflush", 0),
        ("autoflush", "x"),
        ("clock", 5),
        ("max_doc_size", 0),
    ]
    for name, v in bad:
        kw = {name: v}
        msg = raises(ValueError, MicroTetherDB, **kw)
        assert name in msg, (name, msg)


def test_boolean_flags_take_only_bool():
    # A truthy non-bool (a key passed by mistake, 1, "yes") switches nothing on.
    for name, v in (("in_memory", "yes"), ("in_memory", 1), ("in_memory", 0),
                    ("adaptive_threshold", 5), ("adaptive_threshold", 1), ("adaptive_threshold", None)):
        kw = {name: v}
        assert name in raises(TypeError, MicroTetherDB, **kw), (name, v)
    db = MicroTetherDB()
    db.put("a", {"v": 1})
    db.put("b", {"v": 2})
    assert "purge" in raises(TypeError, db.delete, "a", "b")
    assert "purge" in raises(TypeError, db.delete, "a", 1)
    assert "purge" in raises(TypeError, db.delete, purge=1)
    assert "purge" in raises(TypeError, db.delete, purge="yes")
    raises(TypeError, db.delete, "a", True)  # a key and purge: refused, not a purge
    assert len(db) == 2
    assert db.delete("a", False) == 1 and len(db) == 1
    assert db.delete(purge=True) == 1 and len(db) == 0
    db.close()


def test_attributes_readable():
    db = MicroTetherDB(
        "x.db", True, 10, 4, 0.5, 2.0, 30, 8192, 1024, False, None, cleanup_interval=20
    )
    assert db.filename == "x.db" and db.in_memory is True and db.ram_percentage == 10
    assert db.max_retries == 4 and db.retry_delay == 0.5 and db.lock_timeout == 2.0
    assert db.ttl_check_interval == 20 and db.cleanup_interval == 20
    assert db.btree_cachesize == 8192 and db.btree_pagesize == 1024
    assert db.adaptive_threshold is False and db.event_loop is None
    assert db.autoflush is False and db.max_doc_size == 8192
    db.close()
    db = MicroTetherDB()
    assert db.filename == "microtether.db" and db.ram_percentage == 15
    assert db.max_retries == 3 and db.retry_delay == 0.1 and db.lock_timeout == 5.0
    assert db.ttl_check_interval == 60 and db.btree_pagesize == 512 and db.btree_cachesize == 4096
    db.close()


def test_bad_keys():
    db = MicroTetherDB()
    raises(ValueError, db.put, "", {"a": 1})
    raises(ValueError, db.put, b"", {"a": 1})
    assert "128" in raises(ValueError, db.put, "x" * 129, {"a": 1})
    db.put("x" * 128, {"a": 1})
    assert "reserved" in raises(ValueError, db.put, b"\xffm", {"a": 1})
    assert "reserved" in raises(ValueError, db.get, b"\xfft")
    raises(ValueError, db.put, b"\xc3(", {"a": 1})  # invalid UTF-8
    raises(TypeError, db.get, 5)
    raises(ValueError, db.delete, "")
    raises(ValueError, db.delete_batch, ["ok", ""])
    assert len(db) == 1
    db.close()


def test_bad_documents_write_nothing():
    db = MicroTetherDB()
    raises(TypeError, db.put, [1, 2])
    raises(TypeError, db.put, "k", "not a dict")
    raises(TypeError, db.put, "k", {"a": object()})
    raises(TypeError, db.put, "k", {"a": {1: 2}})
    raises(TypeError, db.put, "k", {"a": b"bytes"})
    raises(TypeError, db.put, "k", {"a": {"b": [set()]}})
    raises(ValueError, db.put, "k", {"a": float("nan")})
    raises(ValueError, db.put, "k", {"a": float("inf")})
    raises(TypeError, db.put)
    raises(TypeError, db.delete)
    assert len(db) == 0 and db.get("k") is None
    db.close()


def test_doc_size_limit():
    db = MicroTetherDB()
    db.put("ok", {"s": "x" * (8192 - 8)})  # {"s":"..."} (compact JSON) is exactly 8192 bytes
    msg = raises(ValueError, db.put, "big", {"s": "x" * 8200})
    assert "8192" in msg and "8208" in msg, msg
    assert db.get("big") is None
    assert db.get("ok")["s"] == "x" * (8192 - 8)
    db.close()
    db = MicroTetherDB(max_doc_size=100)
    raises(ValueError, db.put, {"s": "x" * 100})
    db.put({"s": "x" * 50})
    db.close()


def test_bad_ttl_and_tags():
    db = MicroTetherDB()
    assert "ttl" in raises(ValueError, db.put, "k", {"a": 1}, -1)
    assert "ttl" in raises(ValueError, db.put, "k", {"a": 1}, "10")
    assert "ttl" in raises(ValueError, db.put, "k", {"a": 1}, 1 << 40)
    raises(TypeError, db.put, "k", {"a": 1}, None, [1])
    raises(TypeError, db.put, "k", {"a": 1}, None, 5)
    raises(ValueError, db.put, "k", {"a": 1}, None, [""])
    assert len(db) == 0
    db.close()


def test_infinite_ttl_and_clock_values_refused():
    db = MicroTetherDB()
    inf = float("inf")
    for bad in (inf, -inf, float("nan")):
        assert "ttl" in raises(ValueError, db.put, "k", {"a": 1}, bad)
        assert "ttl" in raises(ValueError, db.put_batch, [{"a": 1}], bad)
        assert "ttl" in raises(ValueError, db.put_batch, [{"a": 1}, {"a": 2}], [5, bad])
    assert len(db) == 0
    db.close()
    t = [inf]
    db = MicroTetherDB(clock=lambda: t[0])
    for v in (inf, float("nan"), "1000", None):
        t[0] = v
        assert "clock" in raises(ValueError, db.put, {"a": 1})
        assert "clock" in raises(ValueError, db.put, "k", {"a": 1}, 10)
    t[0] = 1000.5
    db.put("k", {"a": 1}, 10)
    assert db.get("k") == {"a": 1} and len(db) == 1
    db.close()


def test_clock_past_ten_digits_refused():
    # Generated keys hold 10 digits of seconds: an 11-digit clock would make
    # keys that sort before older ones. Refused, nothing written.
    t = [9999999999]
    db = MicroTetherDB(clock=lambda: t[0])
    k1 = db.put({"a": 1})
    assert k1.startswith("9999999999-")
    t[0] = 10000000000
    assert "1e10" in raises(ValueError, db.put, {"a": 2})
    assert "1e10" in raises(ValueError, db.put_batch, [{"a": 2}])
    assert len(db) == 1 and list(db.keys()) == [k1]
    assert db.put("custom", {"a": 4}) == "custom"  # reads and custom keys still work
    assert db.get(k1) == {"a": 1} and db.delete("custom") == 1
    t[0] = 9999999999
    k2 = db.put({"a": 3})
    assert k2 > k1 and len(k2) == len(k1)
    db.close()


def test_query_none_refused():
    db = MicroTetherDB()
    db.put("a", {"v": 1})
    for fn in (db.query, db.find, db.explain):
        raises(ValueError, fn, None)
    db.close()


def test_no_mutation_on_error():
    db = MicroTetherDB()
    d = {"a": object()}
    try:
        db.put(d, tags=["t"])
    except TypeError:
        pass
    assert list(d.keys()) == ["a"]
    db.close()


def test_bytes_keys_must_be_strict_utf8():
    # MicroPython's own decoder lets these through; the database must not.
    db = MicroTetherDB()
    for bad in (b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf0\x8f\xbf\xbf",
                b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\x80"):
        assert "UTF-8" in raises(ValueError, db.put, bad, {"a": 1}), bad
        assert "UTF-8" in raises(ValueError, db.get, bad), bad
    assert db.put(b"a\xc3\xa9", {"a": 1}) == "a\u00e9"
    assert db.get("a\u00e9") == {"a": 1}
    db.close()
