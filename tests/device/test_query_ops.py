# Query language on the device: every operator, logic, tags, options,
# missing fields, type mismatches, expiry and error cases.
from microtetherdb import MicroTetherDB

T = [1000]


def _db():
    T[0] = 1000
    db = MicroTetherDB(in_memory=True, clock=lambda: T[0])
    db.put("a1", {"n": 1, "s": "apple", "l": [1, 2, "x"], "d": {"e": [{"f": 5}], "g": None}}, tags=["red", "fruit"])
    db.put("a2", {"n": 2.5, "s": "banana", "b": True, "l": []}, tags=["yellow", "fruit"])
    db.put("a3", {"n": "3", "s": "cherry", "d": {"e": [{"f": 6}, {"f": 5}]}}, tags=["red"])
    db.put("b1", {"n": True, "s": "Apple pie"})
    db.put("b2", {"s": "date", "n": None})
    db.put("c1", {"n": 7, "s": "elder"}, ttl=10)          # expires at 1010
    return db


def _k(db, q):
    return [k for k, _ in db.find(q)]


def test_equality_and_strict_types():
    db = _db()
    assert _k(db, {}) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert _k(db, {"n": 1}) == ["a1"]            # True is not 1
    assert _k(db, {"n": True}) == ["b1"]
    assert _k(db, {"n": 2.5}) == ["a2"]
    assert _k(db, {"n": "3"}) == ["a3"]          # "3" is not 3
    assert _k(db, {"n": None}) == ["b2"]         # missing is not null
    assert _k(db, {"n": {"$eq": 1.0}}) == ["a1"]  # 1 == 1.0
    assert _k(db, {"l": [1, 2, "x"]}) == ["a1"]   # whole-list equality
    assert _k(db, {"l": []}) == ["a2"]
    assert _k(db, {"d": {"e": [{"f": 5}], "g": None}}) == ["a1"]  # literal dict
    assert _k(db, {"d.g": None}) == ["a1"]
    assert db.query({"s": "apple"}) == [db.get("a1")]
    db.close()


def test_comparisons_and_mismatches():
    db = _db()
    assert _k(db, {"n": {"$gt": 1}}) == ["a2", "c1"]         # "3", True, None never compare
    assert _k(db, {"n": {"$gte": 1}}) == ["a1", "a2", "c1"]
    assert _k(db, {"n": {"$lt": 2.5}}) == ["a1"]
    assert _k(db, {"n": {"$lte": 2.5, "$gt": 1}}) == ["a2"]
    assert _k(db, {"s": {"$gte": "b", "$lt": "d"}}) == ["a2", "a3"]
    assert _k(db, {"n": {"$gt": "2"}}) == ["a3"]             # only strings compare with strings
    assert _k(db, {"zz": {"$lt": 100}}) == []                # missing never compares
    assert _k(db, {"n": {"$ne": 1}}) == ["a2", "a3", "b1", "b2", "c1"]
    assert _k(db, {"b": {"$ne": True}}) == ["a1", "a3", "b1", "b2", "c1"]  # missing matches $ne
    db.close()


def test_membership_exists_contains():
    db = _db()
    assert _k(db, {"n": {"$in": [1, "3", None]}}) == ["a1", "a3", "b2"]
    assert _k(db, {"n": {"$in": [True]}}) == ["b1"]
    assert _k(db, {"n": {"$in": []}}) == []
    assert _k(db, {"n": {"$nin": [1, 2.5]}}) == ["a3", "b1", "b2", "c1"]
    assert _k(db, {"b": {"$nin": [True]}}) == ["a1", "a3", "b1", "b2", "c1"]
    assert _k(db, {"b": {"$exists": True}}) == ["a2"]
    assert _k(db, {"d.g": {"$exists": True}}) == ["a1"]      # null exists
    assert _k(db, {"d": {"$exists": False}}) == ["a2", "b1", "b2", "c1"]
    assert _k(db, {"l": {"$contains": "x"}}) == ["a1"]
    assert _k(db, {"l": {"$contains": 1}}) == ["a1"]
    assert _k(db, {"s": {"$contains": "an"}}) == ["a2"]       # substring
    assert _k(db, {"n": {"$contains": 1}}) == []
    assert _k(db, {"s": {"$startswith": "Apple"}}) == ["b1"]
    assert _k(db, {"s": {"$startswith": ""}}) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    db.close()


def test_regex():
    db = _db()
    assert _k(db, {"s": {"$regex": "^[ab]"}}) == ["a1", "a2"]
    assert _k(db, {"s": {"$regex": "rr"}}) == ["a3"]
    assert _k(db, {"s": {"$regex": "e$"}}) == ["a1", "b1", "b2"]
    assert _k(db, {"s": {"$regex": "a.a"}}) == ["a2"]
    assert _k(db, {"n": {"$regex": "3"}}) == ["a3"]           # non-strings never match
    assert _k(db, {"s": {"$regex": "^[^a-c]\\w+$"}}) == ["b2", "c1"]
    assert _k(db, {"s": {"$regex": "(?:an)+a$"}}) == ["a2"]
    # compiled by MicroPython's re but not implemented there: refused
    for p in ("a{2}", "p{1,2}", "(a)\\1"):
        m = raises(ValueError, db.query, {"s": {"$regex": p}})
        assert "$regex" in m and "'s'" in m, m
    db.close()


def test_regex_on_long_strings():
    # MicroPython's re recurses once per character a loop consumes and runs
    # out of stack on long strings; the query falls back to an iterative
    # matcher with the same syntax, so the answer is the same as on short ones.
    db = MicroTetherDB()
    db.put("long", {"s": "x" * 3000 + "needle" + "y" * 1000})
    db.put("short", {"s": "xxneedleyy"})
    db.put("plain", {"s": "x" * 3000})
    for pat, want in (("^x*needley*$", ["long", "short"]), ("needle", ["long", "short"]),
                      ("^x+$", ["plain"]), ("(x|y)*ne+dle", ["long", "short"]),
                      ("[^xy]", ["long", "short"]), ("^.*z", []), ("d\\w+y$", ["long", "short"])):
        got = sorted(k for k, _ in db.find({"s": {"$regex": pat}}))
        assert got == want, (pat, got)
    db.close()


def test_regex_fallback_matches_re():
    # The fallback against re itself, on strings short enough for re.
    import re
    from microtetherdb import regex
    pats = ("a", "abc", "a*", "a+b", "^ab", "b$", "^$", "a|b", "ab|cd|ef", "(ab)+c", "(?:ab)*c",
            "[a-c]+", "[^a-c]", "\\d+", "\\D", "\\w+\\s", "[\\d_]x", "a.c", "x?y", "x??y", "a+?b",
            "(a|b)*c$", "^(a|bc)+$", "[]a]", "[a-]", "\\.", "a\\*", "^a.*z$", "(x)(y)?z",
            "((a|b)c)*d", "[\\s\\S]", "a|", "(|a)b", "^.$")
    subj = ("", "a", "b", "ab", "abc", "xabcx", "aab", "cd", "ababc", "123", "x1", "a b", "_x",
            "axc", "xy", "xxy", "aaab", "bc", "acbcd", "]", "-", "a.", "a*", "az", "xyz", "\n",
            "\u00e9", "aaaaaaaab")
    n = 0
    for p in pats:
        r = re.compile(p)
        prog = regex.compile(p)
        for s in subj:
            assert (r.search(s) is not None) == regex.search(prog, s), (p, s)
            n += 1
    assert n == len(pats) * len(subj)


def test_dotted_paths():
    db = _db()
    assert _k(db, {"d.e.0.f": 5}) == ["a1"]
    assert _k(db, {"d.e.1.f": 5}) == ["a3"]
    assert _k(db, {"d.e.2.f": {"$exists": True}}) == []
    assert _k(db, {"l.2": "x"}) == ["a1"]
    assert _k(db, {"s.0": "a"}) == []                          # strings are not walked
    assert _k(db, {"d.e.f": 5}) == []                          # list needs an index
    db.close()


def test_logic():
    db = _db()
    assert _k(db, {"$or": [{"n": 1}, {"s": "date"}]}) == ["a1", "b2"]
    assert _k(db, {"$and": [{"n": {"$gt": 0}}, {"n": {"$lt": 5}}]}) == ["a1", "a2"]
    assert _k(db, {"$not": {"n": {"$gt": 2}}}) == ["a1", "a3", "b1", "b2"]
    assert _k(db, {"$or": [{"$and": [{"tags": "red"}, {"n": 1}]}, {"$not": {"s": {"$regex": "^[a-d]"}}}]}) == ["a1", "b1", "c1"]
    assert _k(db, {"n": {"$not": {"$gt": 2}}}) == ["a1", "a3", "b1", "b2"]
    assert _k(db, {"n": {"$or": [1, {"$gt": 5}]}}) == ["a1", "c1"]
    assert _k(db, {"n": {"$and": [{"$gt": 0}, {"$ne": 7}]}}) == ["a1", "a2"]
    assert _k(db, {"$or": [{}, {"n": 1}]}) == _k(db, {})        # empty branch matches all
    assert _k(db, {"$not": {}}) == []
    db.close()


def test_tags():
    db = _db()
    assert _k(db, {"$tags": "red"}) == ["a1", "a3"]
    assert _k(db, {"$tags": {"$all": ["red", "fruit"]}}) == ["a1"]
    assert _k(db, {"$tags": ["red", "fruit"]}) == ["a1"]
    assert _k(db, {"$tags": {"$in": ["yellow", "red"]}}) == ["a1", "a2", "a3"]
    assert _k(db, {"$tags": {"$nin": ["red"]}}) == ["a2", "b1", "b2", "c1"]
    # compatibility with the earlier MicroTetherDB
    assert _k(db, {"tags": "fruit"}) == ["a1", "a2"]
    assert _k(db, {"_tags": "yellow"}) == ["a2"]
    assert _k(db, {"tags": "red", "n": 1}) == ["a1"]
    # the documents never contain the tags
    assert "_tags" not in db.get("a1") and "tags" not in db.get("a1")
    db.close()


def test_options():
    db = _db()
    assert _k(db, {"$limit": 2}) == ["a1", "a2"]
    assert _k(db, {"$limit": 0}) == []
    assert _k(db, {"$skip": 4}) == ["b2", "c1"]
    assert _k(db, {"$skip": 1, "$limit": 2}) == ["a2", "a3"]
    assert _k(db, {"$sort": "s"}) == ["b1", "a1", "a2", "a3", "b2", "c1"]
    assert _k(db, {"$sort": ("s", -1), "$limit": 2}) == ["c1", "b2"]
    assert _k(db, {"$sort": ["n", 1]}) == ["b2", "b1", "a1", "a2", "c1", "a3"]   # null < bool < numbers < strings
    assert _k(db, {"$sort": ("n", -1)}) == ["a3", "c1", "a2", "a1", "b1", "b2"]
    assert _k(db, {"$sort": ("b", -1)}) == ["a2", "a1", "a3", "b1", "b2", "c1"]   # ties stay in key order
    assert _k(db, {"$sort": ("$key", -1), "$limit": 2}) == ["c1", "b2"]          # newest generated keys first
    assert _k(db, {"$sort": "s", "$skip": 2, "$limit": 2}) == ["a2", "a3"]
    assert _k(db, {"$keys": "a"}) == ["a1", "a2", "a3"]
    assert _k(db, {"$keys": {"$gte": "a2", "$lt": "b2"}}) == ["a2", "a3", "b1"]
    assert _k(db, {"$keys": {"$gt": "a2", "$lte": "b2"}}) == ["a3", "b1", "b2"]
    assert _k(db, {"$keys": {"$prefix": "b"}, "n": True}) == ["b1"]
    assert _k(db, {"$keys": {"$gte": "b", "$lt": "a"}}) == []
    assert _k(db, {"$keys": {"$gte": ""}}) == _k(db, {})
    assert _k(db, {"$keys": {"$lt": ""}}) == []
    db.close()


def test_expired_never_appear():
    db = _db()
    assert _k(db, {"n": 7}) == ["c1"]
    T[0] = 1010
    assert _k(db, {"n": 7}) == []
    assert _k(db, {}) == ["a1", "a2", "a3", "b1", "b2"]
    assert _k(db, {"$sort": ("n", -1)})[:2] == ["a3", "a2"]
    assert db.explain({})["touch"] == 6                        # still stored, not returned
    db.close()


def test_find_is_lazy_and_query_returns_docs():
    db = MicroTetherDB(in_memory=True)
    for i in range(200):
        db.put("k%03d" % i, {"i": i})
    it = db.find({"i": {"$gte": 10}})
    assert next(it) == ("k010", {"i": 10})
    assert next(it) == ("k011", {"i": 11})
    assert len(db.query({"i": {"$lt": 50}})) == 50
    assert db.query({"i": {"$gte": 198}}) == [{"i": 198}, {"i": 199}]
    db.close()


def test_explain_scan():
    db = _db()
    e = db.explain({"n": 1})
    assert e["plan"] == "scan" and e["touch"] == 6 and e["filter"] is True
    e = db.explain({"$keys": "a", "n": 1})
    assert e["plan"] == "scan" and e["touch"] == 3
    assert db.explain({})["filter"] is False
    db.close()


def test_errors_name_operator_and_path():
    db = _db()
    m = raises(ValueError, db.find, {"n": {"$gtx": 1}})
    assert "$gtx" in m and "'n'" in m, m
    m = raises(ValueError, db.query, {"$nor": []})
    assert "$nor" in m, m
    m = raises(ValueError, db.query, {"a.b": {"$in": 5}})
    assert "$in" in m and "a.b" in m, m
    m = raises(ValueError, db.query, {"a": {"$gt": [1]}})
    assert "$gt" in m, m
    m = raises(ValueError, db.query, {"a": {"$exists": 1}})
    assert "$exists" in m, m
    m = raises(ValueError, db.query, {"a": {"$regex": "("}})
    assert "$regex" in m, m
    m = raises(ValueError, db.query, {"a": {"$gt": 1, "b": 2}})
    assert "a" in m, m
    m = raises(ValueError, db.query, {"$or": [{"$limit": 1}]})
    assert "$limit" in m, m
    for bad in ({"$or": []}, {"$and": {}}, {"$limit": -1}, {"$limit": "1"}, {"$skip": 1.5},
                {"$sort": ("a", 2)}, {"$sort": 5}, {"$keys": 5}, {"$keys": {"$foo": "a"}},
                {"a..b": 1}, {"": 1}, {"$tags": 5}, {"$tags": {"$bad": ["x"]}},
                {"a": {"$startswith": 1}}, {"a": {"$or": []}}, {"$plan": "fast"}):
        raises(ValueError, db.query, bad)
    raises(ValueError, db.query, [1])
    db.close()


def test_error_raised_before_any_scan():
    db = _db()
    calls = []
    orig = db._records

    def rec(*a):
        calls.append(a)
        return orig(*a)
    db._records = rec
    raises(ValueError, db.find, {"n": 1, "m": {"$bogus": 1}})   # not even next()
    assert calls == []
    raises(ValueError, db.explain, {"$or": [{"n": 1}, {"m": {"$bogus": 1}}]})
    assert calls == []
    db.close()


def test_mismatch_does_not_abort():
    db = MicroTetherDB(in_memory=True)
    vals = [1, "x", None, True, [1], {"a": 1}, 2.5, "y", 3]
    for i in range(len(vals)):
        db.put("k%d" % i, {"v": vals[i]})
    assert _k(db, {"v": {"$gt": 1}}) == ["k6", "k8"]
    assert _k(db, {"v": {"$gt": "a"}}) == ["k1", "k7"]
    assert _k(db, {"v": {"$contains": 1}}) == ["k4"]
    assert _k(db, {"v.a": 1}) == ["k5"]
    assert len(db.query({"v": {"$regex": "."}})) == 2
    db.close()
