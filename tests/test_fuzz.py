"""Hostile-input fuzzing of the MicroTetherDB API, executed in MicroPython.

Hypothesis generates programs (1..12 API calls each) with random arguments:
wrong types, huge and deep documents, NaN/inf/objects/bytes/sets inside
documents, odd keys (empty, 128/129-byte, binary, invalid UTF-8, the reserved
0xFF prefix, non-str), bad ttls and tags, malformed queries and iteration
ranges, unknown keyword arguments, calls on a closed database, clock jumps,
reopen and purge. At least 1,000 programs per run; they are batched into a few
MicroPython runs (one process runs many programs, each on a fresh database,
alternating in-memory and file mode).

Checked for every call: it either returns or raises a documented exception
(TypeError, ValueError, DBError and subclasses, MemoryError); a call on a
closed database raises DBError; calls whose validity is clear are predicted
(must fail / must succeed); reads (get, len, in, keys) agree with a model.
The model applies only the calls that returned, so a call that raised must
have written nothing. After each program the database contents (in file mode:
after close + reopen) must equal the model. A crash or hang of MicroPython
fails the run (missing END lines / timeout).

Examples are generated first, then run in batches, so a failure is reported
with its program (no shrinking); set MTDB_FUZZ_EXAMPLES to run more.
"""

import ast
import json
import math
import os

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

N_EXAMPLES = int(os.environ.get("MTDB_FUZZ_EXAMPLES", "1000"))
T0 = 1000

RUNNER = r'''
from microtetherdb import MicroTetherDB, DBError, filestore
import os


class L:
    def __init__(s, f, a):
        s.f = f
        s.a = a


def _deep(n):
    d = 0
    for i in range(n):
        d = {"d": d}
    return d


def _huge(n):
    return "y" * n


def _obj(a):
    return object()


def _nan(a):
    return float("nan")


def _inf(a):
    return float("inf") * a


def R(x):
    t = type(x)
    if t is L:
        return x.f(x.a)
    if t is list:
        return [R(v) for v in x]
    if t is tuple:
        return tuple([R(v) for v in x])
    if t is dict:
        o = {}
        for k in x:
            o[k] = R(x[k])
        return o
    return x


T = [0]


def clk():
    return T[0]


def ex(e):
    ok = isinstance(e, (TypeError, ValueError, DBError, MemoryError))
    return "EX %s %d %d" % (type(e).__name__, 1 if ok else 0, 1 if isinstance(e, DBError) else 0)


def run(pi, mem, path, calls):
    T[0] = @T0@
    # on flash, every third program uses file format 1 (a single file)
    kw = {} if mem or pi % 3 != 2 else {"file_format": 1}
    db = MicroTetherDB(path, in_memory=mem, clock=clk, **kw)
    for ci in range(len(calls)):
        c = calls[ci]
        op = c[0]
        try:
            a = R(c[1])
            kw = R(c[2])
            if op == "tick":
                T[0] += a[0]
                r = None
            elif op == "reopen":
                db.close()
                db = MicroTetherDB(path, in_memory=mem, clock=clk)
                r = None
            elif op == "len":
                r = len(db)
            elif op == "contains":
                r = a[0] in db
            elif op == "keys":
                r = list(db.keys(*a, **kw))
            elif op == "items":
                r = list(db.items(*a, **kw))
            else:
                r = getattr(db, op)(*a, **kw)
            print("%d %d OK %r" % (pi, ci, r))
        except Exception as e:
            print("%d %d %s" % (pi, ci, ex(e)))
    try:
        db.close()
    except Exception as e:
        print("%d C %s" % (pi, ex(e)))
    if mem:
        print("%d END -" % pi)
    else:
        db = MicroTetherDB(path, in_memory=False, clock=clk)
        print("%d END %r" % (pi, list(db.items())))
        db.close()
        filestore.drop(path)


'''.replace("@T0@", str(T0))

# --- values: host form and MicroPython source -------------------------------


class Lazy:
    """A value built inside MicroPython (deep/huge/NaN/inf/object)."""

    def __init__(self, kind, arg):
        self.kind, self.arg = kind, arg

    def src(self):
        return "L(_%s, %r)" % (self.kind, self.arg)

    def host(self):
        if self.kind == "deep":
            d = 0
            for _ in range(self.arg):
                d = {"d": d}
            return d
        if self.kind == "huge":
            return "y" * self.arg
        if self.kind == "nan":
            return math.nan
        if self.kind == "inf":
            return math.inf * self.arg
        return object()

    def __repr__(self):
        return self.src()


def src(v):
    """MicroPython source text of a generated value."""
    if isinstance(v, Lazy):
        return v.src()
    if isinstance(v, list):
        return "[" + ", ".join(src(x) for x in v) + "]"
    if isinstance(v, tuple):
        return "(" + "".join(src(x) + ", " for x in v) + ")"
    if isinstance(v, dict):
        return "{" + ", ".join(src(k) + ": " + src(x) for k, x in v.items()) + "}"
    if isinstance(v, set):
        return "{" + ", ".join(src(x) for x in sorted(v)) + "}" if v else "set()"
    if isinstance(v, float):
        assert math.isfinite(v)
        return repr(v)
    return repr(v)  # None, bool, int, str, bytes


def host(v):
    if isinstance(v, Lazy):
        return v.host()
    if isinstance(v, list):
        return [host(x) for x in v]
    if isinstance(v, tuple):
        return tuple(host(x) for x in v)
    if isinstance(v, dict):
        return {k: host(x) for k, x in v.items()}
    return v


# --- strategies ---------------------------------------------------------------

nice_str = st.text(alphabet="abcdefghijklmnop xyz", max_size=12)
nice_key = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
nice_float = st.sampled_from([0.5, -1.25, 3.0, 1e10, -0.0, 2.75])
nice_scalar = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                        st.just(2 ** 40), nice_float, nice_str)
nice_value = st.recursive(
    nice_scalar,
    lambda c: st.one_of(st.lists(c, max_size=4),
                        st.dictionaries(st.text(alphabet="abcn", min_size=1, max_size=3), c, max_size=4)),
    max_leaves=12)
nice_doc = st.dictionaries(st.text(alphabet="abcn", min_size=1, max_size=3), nice_value, max_size=5)

odd_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=8)
bad_scalar = st.one_of(
    st.builds(Lazy, st.just("nan"), st.just(0)),
    st.builds(Lazy, st.just("inf"), st.sampled_from([1, -1])),
    st.builds(Lazy, st.just("obj"), st.just(0)),
    st.binary(max_size=4),
    st.just({1, 2}),
)
hostile_value = st.one_of(
    nice_value, odd_text, bad_scalar,
    st.builds(Lazy, st.just("deep"), st.integers(28, 40)),
    st.builds(Lazy, st.just("huge"), st.sampled_from([100, 8000, 8170, 8180, 8200, 20000])),
    st.tuples(nice_scalar, nice_scalar),
    st.dictionaries(st.integers(0, 3), nice_scalar, min_size=1, max_size=2),  # non-str keys
)
hostile_doc = st.one_of(
    nice_doc,
    st.dictionaries(st.text(max_size=4), hostile_value, max_size=4),
    hostile_value,  # often not a dict at all
)
odd_key = st.one_of(
    st.just(""), st.just(b""), odd_text, st.binary(min_size=1, max_size=6),
    st.just("\xff"), st.just(b"\xffm"), st.just(b"\xfft\x00\x00\x00\x01a"), st.just(b"\xc3"),
    st.just("k" * 128), st.just("k" * 129), st.just("\u00e9" * 64), st.just("\u00e9" * 65),
    st.integers(-2, 2), st.none(), st.just([1]), st.just(1.5), st.just(True),
    st.just(bytearray(b"ba")),
)
key = st.one_of(nice_key, nice_key, nice_key, odd_key)
ttl = st.one_of(st.sampled_from([None, None, 0, 1, 5, 100, 2.5]),
                st.sampled_from([-1, "5", True, [1], 1e12, float(2 ** 33)]))
tags = st.one_of(st.none(), st.lists(nice_str.filter(bool), max_size=3),
                 st.sampled_from(["t", "", 5, ["a", 1], [""], ("x",), ["z" * 300]]))
query = st.one_of(
    st.dictionaries(st.sampled_from(["n", "a", "b.c", "$limit", "$or", "$bad", "", "tags"]),
                    st.one_of(nice_value, hostile_value,
                              st.dictionaries(st.sampled_from(["$gt", "$in", "$eq", "$regex", "$exists",
                                                               "$nope", "$contains", "$all"]),
                                              hostile_value, max_size=2)),
                    max_size=3),
    hostile_value,
)
kwargs_extra = st.one_of(st.just({}), st.just({}), st.just({}), st.just({"bogus": 1}))


def call(op, *args, **kw):
    return (op, list(args), kw)


put_a = st.builds(lambda d, t, g, k, x: call("put", d, **dict({"ttl": t, "tags": g, "key": k}, **x)),
                  hostile_doc, ttl, tags, st.one_of(st.none(), key), kwargs_extra)
put_b = st.builds(lambda k, d, t, g: call("put", k, d, ttl=t, tags=g), key, hostile_doc, ttl, tags)
put_nice = st.builds(lambda k, d, t: call("put", k, d, ttl=t), nice_key, nice_doc,
                     st.sampled_from([None, 0, 3, 50]))
batch_item = st.one_of(hostile_doc, st.tuples(key, hostile_doc), st.tuples(nice_key, nice_doc), nice_doc)
put_batch = st.builds(lambda items, t: call("put_batch", items, ttls=t),
                      st.lists(batch_item, max_size=5),
                      st.one_of(ttl, st.lists(st.sampled_from([None, 0, 4, -1]), max_size=5)))
calls = st.one_of(
    put_a, put_b, put_nice, put_nice, put_batch,
    st.builds(lambda k: call("get", k), key),
    st.builds(lambda k: call("get", k, {"dflt": 1}), key),
    st.builds(lambda k: call("delete", k), key),
    st.builds(lambda ks: call("delete_batch", ks), st.one_of(st.lists(key, max_size=4), key)),
    st.builds(lambda q: call("query", q), query),
    st.builds(lambda k: call("contains", k), key),
    st.just(call("len")), st.just(call("cleanup")), st.just(call("flush")),
    st.builds(lambda a, b: call("keys", a, b), st.one_of(st.none(), key), st.one_of(st.none(), key)),
    st.builds(lambda p: call("items", prefix=p), st.one_of(st.none(), key)),
    st.builds(lambda n: call("tick", n), st.sampled_from([1, 3, 10, 1000])),
    st.just(call("close")), st.just(call("reopen")), st.just(call("delete", purge=True)),
    st.just(call("stats")),
)
program = st.tuples(st.booleans(), st.lists(calls, min_size=1, max_size=12))

# --- predictions ----------------------------------------------------------------

DOCUMENTED = ("TypeError", "ValueError", "DBError", "DBLock", "CorruptDBError", "MemoryError",
              "DBFullError", "UnicodeError")


def norm_key(k):
    """Stored str key for a valid key, else None."""
    if isinstance(k, bool) or not isinstance(k, (str, bytes, bytearray)):
        return None
    if isinstance(k, str):
        b = k.encode("utf-8")
    else:
        b = bytes(k)
        if b[:1] == b"\xff":
            return None
        try:
            b.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not b or len(b) > 128:
        return None
    return b.decode("utf-8")


def json_ok(v, depth=0):
    """True / False (not JSON-serialisable as the DB accepts it)."""
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if depth > 32:
        return False
    if isinstance(v, dict):
        return all(isinstance(k, str) and json_ok(x, depth + 1) for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return all(json_ok(x, depth + 1) for x in v)
    return False


def canon(d):
    return json.loads(json.dumps(d))


def doc_verdict(d):
    """False: must be refused; True: small and valid; None: depends on size."""
    if not isinstance(d, dict) or not json_ok(d):
        return False
    n = len(json.dumps(d, ensure_ascii=False).encode())
    if n <= 4000:
        return True
    if n > 40000:
        return False
    return None


def ttl_verdict(t):
    if t is None:
        return True
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
        return False
    return True if t < 1e9 else None


def tags_verdict(g):
    if g is None:
        return True
    if isinstance(g, str):
        g = [g]
    if not isinstance(g, (list, tuple)):
        return False
    for t in g:
        if not isinstance(t, str) or not t or len(t.encode()) > 255:
            return False
    return True


def expiry(t, now):
    if t is None or t == 0:
        return None
    return now + math.ceil(t)


class Model:
    def __init__(self):
        self.now = T0
        self.d = {}  # key -> (doc, expiry)
        self.closed = False

    def live(self):
        return {k: v[0] for k, v in self.d.items() if v[1] is None or v[1] > self.now}


def all_and(*vs):
    if any(v is False for v in vs):
        return False
    if all(v is True for v in vs):
        return True
    return None


def check_program(pi, prog, lines, end):
    mem, cs = prog
    m = Model()
    where = "program %d (%s mode): %r" % (pi, "memory" if mem else "file", prog)
    for ci, (op, args, kw) in enumerate(cs):
        line = lines.get(ci)
        assert line is not None, "no output for call %d; %s" % (ci, where)
        ok = line.startswith("OK ")
        ctx = "call %d %s%r%r -> %s; %s" % (ci, op, args, kw, line[:300], where)
        if not ok:
            parts = line.split()
            assert parts[0] == "EX" and parts[2] == "1", "undocumented exception: " + ctx
        res = ast.literal_eval(line[3:]) if ok else None
        a = host(args)
        k = host(kw)
        if op == "tick":
            assert ok, ctx
            m.now += a[0]
            continue
        if op == "reopen":
            assert ok, ctx
            m.closed = False
            if mem:
                m.d = {}
            continue
        if m.closed:
            if op == "close":
                assert ok, ctx
            elif "bogus" in k:
                assert not ok and line.split()[1] == "TypeError", ctx
            else:
                assert not ok, "a call on a closed database must raise: " + ctx
                # arguments that are wrong on their own may be refused first
                # (TypeError/ValueError); a well-formed call raises DBError
                plain = op in ("len", "flush", "cleanup", "stats") or (
                    op in ("get", "contains", "delete") and len(a) == 1 and norm_key(a[0]) is not None)
                if plain:
                    assert line.split()[3] == "1", "call on a closed database must raise DBError: " + ctx
            continue
        if op == "close":
            assert ok, ctx
            m.closed = True
            continue
        if "bogus" in k:
            assert not ok and line.split()[1] == "TypeError", "unknown keyword must raise TypeError: " + ctx
            continue
        if op == "put":
            if len(a) == 1:
                data, kk = a[0], k.get("key")
            else:
                kk, data = a
                if isinstance(kk, dict):
                    continue  # put(dict, x): the dict is the data; not generated
            kn = None if kk is None else norm_key(kk)
            verdict = all_and(doc_verdict(data), ttl_verdict(k.get("ttl")), tags_verdict(k.get("tags")),
                              True if kk is None or kn is not None else False)
            if verdict is not None:
                assert ok == verdict, ("must succeed: " if verdict else "must fail: ") + ctx
            if ok:
                if kk is not None:
                    assert res == kn, ctx
                else:
                    assert isinstance(res, str) and res not in m.live(), ctx
                m.d[res] = (canon(data), expiry(k.get("ttl"), m.now))
        elif op == "put_batch":
            items, ttls = a[0], k.get("ttls")
            if ok:
                assert isinstance(res, list) and len(res) == len(items), ctx
                for i, (it, rk) in enumerate(zip(items, res)):
                    if isinstance(it, dict):
                        d = it
                    else:
                        assert rk == norm_key(it[0]), ctx
                        d = it[1]
                    t = ttls[i] if isinstance(ttls, list) else ttls
                    m.d[rk] = (canon(d), expiry(t, m.now))
            else:
                good = all(isinstance(it, dict) and doc_verdict(it) is True or
                           isinstance(it, tuple) and norm_key(it[0]) is not None and doc_verdict(it[1]) is True
                           for it in items)
                tv = (all(ttl_verdict(t) is True for t in ttls) and len(ttls) == len(items)) \
                    if isinstance(ttls, list) else ttl_verdict(ttls) is True
                assert not (good and tv), "must succeed: " + ctx
        elif op == "get":
            kn = norm_key(a[0])
            if kn is None:
                assert not ok, "must fail: " + ctx
            else:
                assert ok, "must succeed: " + ctx
                want = m.live().get(kn, a[1] if len(a) > 1 else None)
                assert res == want, "get disagrees with the model: " + ctx
        elif op == "contains":
            kn = norm_key(a[0])
            if kn is not None:
                assert ok and res == (kn in m.live()), ctx
        elif op == "delete":
            if k.get("purge"):
                assert ok and res == 1, ctx
                m.d = {}
                continue
            kn = norm_key(a[0])
            if kn is None:
                assert not ok, "must fail: " + ctx
            else:
                assert ok, "must succeed: " + ctx
                assert res == (1 if kn in m.live() else 0), ctx
                m.d.pop(kn, None)
        elif op == "delete_batch":
            ks = a[0] if isinstance(a[0], list) else [a[0]]
            kns = [norm_key(x) for x in ks]
            if all(x is not None for x in kns):
                assert ok, "must succeed: " + ctx
                n = 0
                live = m.live()
                for x in kns:
                    if x in live:
                        n += 1
                        del live[x]
                    m.d.pop(x, None)
                assert res == n, ctx
            else:
                assert not ok, "must fail (an invalid key): " + ctx
        elif op == "len":
            assert ok and res == len(m.live()), ctx
        elif op == "cleanup":
            assert ok, ctx
            dead = [x for x, v in m.d.items() if v[1] is not None and v[1] <= m.now]
            assert res == len(dead), ctx
            for x in dead:
                del m.d[x]
        elif op == "keys":
            if ok and a[0] is None and a[1] is None:
                assert res == sorted(m.live(), key=lambda s: s.encode()), ctx
        elif op == "items":
            if ok and k.get("prefix") is None:
                live = m.live()
                assert res == [(x, live[x]) for x in sorted(live, key=lambda s: s.encode())], ctx
        elif op in ("flush", "stats"):
            assert ok, ctx
        elif op == "query":
            if ok:
                assert isinstance(res, list), ctx
    if mem:
        assert end == "-", where
    else:
        got = ast.literal_eval(end)
        live = m.live()
        assert got == [(x, live[x]) for x in sorted(live, key=lambda s: s.encode())], \
            "contents after reopen differ from the model: %r vs %r; %s" % (got, live, where)


def collect_programs(n):
    progs = []

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(program)
    def gen(p):
        progs.append(p)

    gen()
    return progs


def batches(progs, target):
    limit = 12000 if target.name == "qemu" else 400000
    cur, size = [], 0
    for i, p in enumerate(progs):
        s = "run(%d, %r, TMP + %r, [%s])\n" % (
            i, p[0], "/f%d.db" % i, ", ".join("(%r, %s, %s)" % (op, src(a), src(kw)) for op, a, kw in p[1]))
        if cur and size + len(s) > limit:
            yield cur
            cur, size = [], 0
        cur.append((i, s))
        size += len(s)
    if cur:
        yield cur


def test_fuzz_api(target):
    progs = collect_programs(N_EXAMPLES)
    assert len(progs) >= min(N_EXAMPLES, 1000)
    ncalls = sum(len(p[1]) for p in progs)
    runs = 0
    outcomes = {"OK": 0, "EX": 0}
    for batch in batches(progs, target):
        runs += 1
        code = "TMP = %r\n" % target.tmpdir() + RUNNER + "".join(s for _, s in batch) + "print('ALLDONE')\n"
        out = target.run_code(code, timeout=600)
        lines = {}
        ends = {}
        for ln in out.splitlines():
            parts = ln.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit():
                pi = int(parts[0])
                if parts[1] == "END":
                    ends[pi] = parts[2]
                elif parts[1] == "C":
                    raise AssertionError("close() failed: %s; program %r" % (ln, progs[pi]))
                else:
                    lines.setdefault(pi, {})[int(parts[1])] = parts[2]
                    outcomes[parts[2][:2]] = outcomes.get(parts[2][:2], 0) + 1
        for pi, _ in batch:
            assert pi in ends, "MicroPython stopped in program %d %r; output tail:\n%s" % (
                pi, progs[pi], out[-3000:])
            check_program(pi, progs[pi], lines.get(pi, {}), ends[pi])
        assert "ALLDONE" in out, out[-2000:]
    print("fuzz: %d programs, %d calls (%d returned, %d raised documented errors) in %d MicroPython runs"
          % (len(progs), ncalls, outcomes.get("OK", 0), outcomes.get("EX", 0), runs))
