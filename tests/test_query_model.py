"""Model-based test of the query engine.

Hypothesis generates documents (with tags and TTLs) and queries; each example
loads the documents into an in-memory MicroTetherDB inside MicroPython (real
btree, real core, injected clock), runs a batch of queries there and compares
every result list (keys, in order) with tests/query_reference.py evaluated in
CPython over the same documents.
"""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import query_reference as ref

QUERIES_PER_CASE = 8
START = 1000          # device clock when the records are written
NOW = START + 50      # clock when queried: ttl 10 expired, ttl 100 live

FIELDS = ["a", "b", "c", "n", "l"]
PATHS = FIELDS + ["n.x", "n.y", "l.0", "l.1", "n.x.0", "a.a", "n.l.1"]
TAGS = ["t1", "t2", "t3"]
STRINGS = ["", "a", "ab", "abc", "b", "ba", "B", "t1"]
REGEXES = ["^a", "b$", "a.", "ab*", "[ab]c", "^$", "a|c", "^.b"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1000.0]),
    st.sampled_from(STRINGS),
)
values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y", "l", "a"]), kids, max_size=3),
    ),
    max_leaves=6,
)
ordered = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]),
                    st.sampled_from(STRINGS))

docs = st.dictionaries(st.sampled_from(FIELDS), values, max_size=5)
keys = st.text(alphabet="ab12-:", min_size=1, max_size=4)
records = st.lists(
    st.tuples(keys, docs, st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
              st.sampled_from([None, None, 10, 100])),
    max_size=14, unique_by=lambda r: r[0])


def op_specs(spec):
    """Operator dicts (one or two operators) built from `spec` for nesting."""
    single = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne", "$contains"]), values),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ordered),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=4)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$startswith"), st.sampled_from(STRINGS)),
        st.tuples(st.just("$regex"), st.sampled_from(REGEXES)),
        st.tuples(st.just("$not"), spec),
        st.tuples(st.sampled_from(["$and", "$or"]), st.lists(spec, min_size=1, max_size=3)),
    )
    return st.lists(single, min_size=1, max_size=2, unique_by=lambda p: p[0]).map(dict)


field_specs = st.recursive(
    st.one_of(scalars, st.lists(scalars, max_size=2)),
    lambda spec: op_specs(spec),
    max_leaves=4,
)

tag_specs = st.one_of(
    st.sampled_from(TAGS),
    st.lists(st.sampled_from(TAGS), max_size=2),
    st.dictionaries(st.sampled_from(["$all", "$in", "$nin"]),
                    st.lists(st.sampled_from(TAGS), max_size=2), min_size=1, max_size=2),
)


def _conditions(sub):
    return st.one_of(
        st.tuples(st.sampled_from(PATHS), field_specs),
        st.tuples(st.sampled_from(["$tags", "_tags"]), tag_specs),
        st.tuples(st.just("tags"), st.sampled_from(TAGS)),
        st.tuples(st.sampled_from(["$and", "$or"]), st.lists(sub, min_size=1, max_size=3)),
        st.tuples(st.just("$not"), sub),
    )


subqueries = st.recursive(
    st.lists(st.tuples(st.sampled_from(PATHS), field_specs), max_size=2,
             unique_by=lambda p: p[0]).map(dict),
    lambda sub: st.lists(_conditions(sub), max_size=3, unique_by=lambda p: p[0]).map(dict),
    max_leaves=5,
)

sorts = st.one_of(st.sampled_from(PATHS + ["$key"]),
                  st.tuples(st.sampled_from(PATHS + ["$key"]), st.sampled_from([1, -1])).map(list))
keyranges = st.one_of(
    st.sampled_from(["a", "b", "1", "a1", "-"]),
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$prefix"]),
                    st.text(alphabet="ab12-:", min_size=0, max_size=3), min_size=1, max_size=2),
)


@st.composite
def queries(draw):
    q = draw(st.lists(_conditions(subqueries), max_size=3, unique_by=lambda p: p[0]).map(dict))
    if draw(st.booleans()):
        q["$sort"] = draw(sorts)
    if draw(st.integers(0, 3)) == 0:
        q["$limit"] = draw(st.integers(0, 5))
    if draw(st.integers(0, 3)) == 0:
        q["$skip"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 3)) == 0:
        q["$keys"] = draw(keyranges)
    return q


DEVICE = r"""
import json
from microtetherdb import MicroTetherDB
T = [%d]
db = MicroTetherDB(in_memory=True, clock=lambda: T[0])
IX, LATE = json.loads(%r)
for f in IX if not LATE else ():
    db.create_index(f)
for k, doc, tags, ttl in json.loads(%r):
    db.put(k, doc, ttl=ttl, tags=tags or None)
for f in IX if LATE else ():
    db.create_index(f)
T[0] = %d
out = []
for q in json.loads(%r):
    try:
        out.append([k for k, d in db.find(q)])
    except ValueError as e:
        out.append("ValueError: %%s" %% e)
print("RESULT" + json.dumps(out))
db.close()
"""


def run_case(target, recs, qs, ix=(), late=False):
    src = DEVICE % (START, json.dumps([list(ix), late]), json.dumps(recs), NOW, json.dumps(qs))
    text = target.run_code(src, timeout=120)
    line = [ln for ln in text.splitlines() if ln.startswith("RESULT")]
    assert line, text
    return json.loads(line[-1][len("RESULT"):])


STATS = {"cases": 0, "queries": 0, "nonempty": 0}


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(recs=records, qs=st.lists(queries(), min_size=QUERIES_PER_CASE,
                                 max_size=QUERIES_PER_CASE),
       ix=st.lists(st.sampled_from(PATHS), unique=True, max_size=4), late=st.booleans())
def test_query_matches_reference(target, recs, qs, ix, late):
    # ix: secondary indexes (created before or after the puts), so the
    # planner's index scans are checked against the reference too
    recs = [list(r) for r in recs]
    model = [(k, d, t, None if ttl is None else START + ttl) for k, d, t, ttl in recs]
    got = run_case(target, recs, qs, ix, late)
    assert len(got) == len(qs)
    for q, res in zip(qs, got):
        want = ref.evaluate(q, model, NOW)
        assert res == want, "query %s\ndevice %s\nreference %s" % (json.dumps(q), res, want)
        STATS["queries"] += 1
        STATS["nonempty"] += bool(want)
    STATS["cases"] += 1


def test_query_model_ran_enough():
    # runs after the hypothesis test in file order; guards against silent no-op runs
    if STATS["cases"] == 0:
        pytest.skip("model test not run in this session")
    print("query model: %(cases)d cases, %(queries)d queries, %(nonempty)d non-empty" % STATS)
    assert STATS["cases"] >= 300
    assert STATS["nonempty"] >= STATS["queries"] // 10
