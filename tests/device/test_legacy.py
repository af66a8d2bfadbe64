# microtetherdb.legacy.migrate: files of the earlier MicroTetherDB (a raw btree
# of JSON documents, page size 512) into this database, on the device.
import btree
import json
import sys

from microtetherdb import CorruptDBError, MicroTetherDB

NOW = 100000


def _legacy(path, records):
    f = open(path, "w+b")
    db = btree.open(f, pagesize=512)
    for k, v in records:
        db[k] = v
    db.close()
    f.close()


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _sample(path):
    _legacy(path, [
        (b"%d:0:123" % (NOW - 50), json.dumps({"t": 1, "_tags": ["a", "b"]})),   # no ttl
        (b"%d:3600:7" % (NOW - 10), json.dumps({"t": 2, "n": {"x": [1, 2.5]}})),  # live, ttl
        (b"%d:10:9" % (NOW - 100), json.dumps({"t": 3, "_tags": ["old"]})),      # expired
        (b"custom", json.dumps({"c": 1, "_tags": "x"})),                         # one tag as str
        (b"1:2:3:4", json.dumps({"c": 2})),                                      # custom: never expires
        (b"99:5:70000", json.dumps({"c": 3})),                                   # random > 16 bits: custom
        ("ü-key".encode(), json.dumps({"s": "é"})),
        (b"bad json", b"{nope"),
        (b"list", b"[1, 2]"),
        (b"badtags", json.dumps({"_tags": 5})),
        (b"\xc3\x28", json.dumps({"k": 1})),                                     # key not UTF-8
        (b"k" * 129, json.dumps({"k": 2})),                                      # key too long
        (b"big", json.dumps({"s": "x" * 9000})),                                 # over max_doc_size
    ])


def test_not_imported_with_the_package():
    # first test of the file: nothing has imported it yet in this process
    db = MicroTetherDB()
    db.put("k", {"a": 1})
    db.close()
    assert "microtetherdb.legacy" not in sys.modules


def test_migrate_keeps_keys_tags_expiry_and_reports_bad_records():
    from microtetherdb.legacy import migrate

    src, dst = TMP + "/old.db", TMP + "/new.db"
    _sample(src)
    before = _read(src)
    problems = []
    n = migrate(src, dst, clock=lambda: NOW, report=lambda k, why: problems.append((k, why)))
    assert n == 6, n
    assert _read(src) == before  # the source is only read
    why = dict(problems)
    assert len(problems) == 7, problems
    assert why["%d:10:9" % (NOW - 100)] == "expired"
    assert "JSON" in why["bad json"] and "object" in why["list"] and "_tags" in why["badtags"]
    assert why[b"\xc3\x28"] == "key is not UTF-8"
    assert "128" in why["k" * 129] and "max_doc_size" in why["big"]
    db = MicroTetherDB(dst, in_memory=False, clock=lambda: NOW)
    try:
        recs = {r[0]: r[1:] for r in db.records()}
        assert recs["%d:0:123" % (NOW - 50)] == ({"t": 1}, ["a", "b"], None)
        assert recs["%d:3600:7" % (NOW - 10)] == ({"t": 2, "n": {"x": [1, 2.5]}}, [], NOW - 10 + 3600)
        assert recs["custom"] == ({"c": 1}, ["x"], None)
        assert recs["1:2:3:4"] == ({"c": 2}, [], None)
        assert recs["99:5:70000"] == ({"c": 3}, [], None)
        assert recs["ü-key"] == ({"s": "é"}, [], None)
        assert len(recs) == 6 and len(db) == 6
        assert db.query({"$tags": "a"}) == [{"t": 1}]   # tags are real tags (indexed)
    finally:
        db.close()
    # the expiry carried over is the earlier one: the record expires then
    db = MicroTetherDB(dst, in_memory=False, clock=lambda: NOW - 10 + 3600)
    try:
        assert db.get("%d:3600:7" % (NOW - 10)) is None and len(db) == 5
    finally:
        db.close()


def test_migrate_refuses_what_is_not_a_legacy_file():
    from microtetherdb.legacy import migrate

    src, dst = TMP + "/old.db", TMP + "/new.db"
    with open(src, "wb") as f:
        f.write(b"this is not a btree file at all, just text" * 20)
    assert "not a database" in raises(CorruptDBError, migrate, src, dst)
    assert not exists(dst)
    # one of ours: already migrated
    db = MicroTetherDB(TMP + "/ours.db", in_memory=False)
    db.put("k", {"a": 1})
    db.close()
    assert "already" in raises(ValueError, migrate, TMP + "/ours.db", dst)
    assert not exists(dst)
    # the destination must be new
    _sample(src)
    open(dst, "w").close()
    raises(OSError, migrate, src, dst)
    assert _read(dst) == b""


def test_failed_migration_leaves_no_destination():
    from microtetherdb.legacy import migrate

    src, dst = TMP + "/old.db", TMP + "/new.db"
    _sample(src)

    def report(key, why):
        raise RuntimeError("stop")

    assert raises(RuntimeError, migrate, src, dst, lambda: NOW, report) == "stop"
    assert not exists(dst)
    assert migrate(src, dst, lambda: NOW, lambda k, w: None) == 6


def test_migrate_with_the_default_report_prints_bad_records():
    from microtetherdb.legacy import migrate

    src = TMP + "/old.db"
    _legacy(src, [(b"a", json.dumps({"x": 1})), (b"b", b"nope"), (b"1:5:1", b"{}")])
    n = migrate(src, TMP + "/new.db", clock=lambda: NOW)  # prints "migrate: skipped 'b': ..."
    assert n == 1
