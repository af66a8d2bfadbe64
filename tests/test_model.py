"""Model-based test of the database core.

Hypothesis generates sequences of put / get / delete / batch / TTL (clock
advance) / cleanup / reopen / flush operations.  Each sequence runs inside
MicroPython (the `target` fixture) as one small program that prints one line
per operation; the same sequence runs against a plain-dict model here in
CPython, and every line must match.

Generated keys are unpredictable text, so the program prints them as symbols
G0, G1, ... in creation order; a key reference that is an int means "the
n-th generated key" (modulo how many exist).  Custom keys are letters, which
sort after the digits generated keys start with, and generated keys sort by
creation (also across reopen), so the expected key order is: generated keys
in creation order, then custom keys sorted.
"""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROGRAM = r'''
from microtetherdb import MicroTetherDB
T = [1000]
def clk():
    return T[0]
FN = %r
MEM = %r
AF = %r
def opn():
    return MicroTetherDB(FN, in_memory=MEM, clock=clk, autoflush=AF)
db = opn()
G = []
S = {}
def K(r):
    if type(r) is int:
        return G[r %% len(G)] if G else "a"
    return r
def sym(k):
    return S.get(k, k)
def gen(k):
    S[k] = "G%%d" %% len(G)
    G.append(k)
for o in %r:
    c = o[0]
    try:
        if c == "p":
            k = db.put({"v": o[2]}, ttl=o[3], key=None if o[1] is None else K(o[1]))
            if o[1] is None:
                gen(k)
            r = sym(k)
        elif c == "g":
            r = db.get(K(o[1]))
        elif c == "h":
            r = K(o[1]) in db
        elif c == "d":
            r = db.delete(K(o[1]))
        elif c == "pb":
            items = [{"v": v} if ref is None else (K(ref), {"v": v}) for ref, v in o[1]]
            ks = db.put_batch(items, o[2])
            for (ref, v), k in zip(o[1], ks):
                if ref is None:
                    gen(k)
            r = [sym(k) for k in ks]
        elif c == "db":
            r = db.delete_batch([K(x) for x in o[1]])
        elif c == "t":
            T[0] += o[1]
            r = T[0]
        elif c == "r":
            if not MEM:
                db.close()
                db = opn()
            r = "-"
        elif c == "f":
            r = db.flush()
        elif c == "l":
            r = len(db)
        elif c == "k":
            r = [sym(k) for k in db.keys()]
        elif c == "i":
            r = [(sym(k), v) for k, v in db.items()]
        elif c == "c":
            r = db.cleanup()
    except Exception as e:
        r = "E:" + type(e).__name__
    print(repr(r))
db.close()
print("END")
'''


class Model:
    def __init__(self):
        self.t = 1000
        self.d = {}  # key -> (doc, expiry or None)
        self.g = []  # generated keys (symbols), creation order
        self.ng = 0

    def ref(self, r):
        if isinstance(r, int):
            return self.g[r % len(self.g)] if self.g else "a"
        return r

    def live(self, k):
        e = self.d.get(k)
        return e is not None and (e[1] is None or e[1] > self.t)

    def exp(self, ttl):
        return None if not ttl else self.t + ttl

    def newkey(self):
        k = "G%d" % self.ng
        self.ng += 1
        self.g.append(k)
        return k

    def order(self, keys):
        gen = [k for k in keys if k.startswith("G")]
        return sorted(gen, key=lambda k: int(k[1:])) + sorted(k for k in keys if not k.startswith("G"))

    def apply(self, o):
        c = o[0]
        if c == "p":
            k = self.newkey() if o[1] is None else self.ref(o[1])
            self.d[k] = ({"v": o[2]}, self.exp(o[3]))
            return k
        if c == "g":
            k = self.ref(o[1])
            return self.d[k][0] if self.live(k) else None
        if c == "h":
            return self.live(self.ref(o[1]))
        if c == "d":
            k = self.ref(o[1])
            r = 1 if self.live(k) else 0
            self.d.pop(k, None)
            return r
        if c == "pb":
            items, ttls = o[1], o[2]
            # refs resolve before any key of this batch is generated
            ks = [None if ref is None else self.ref(ref) for ref, v in items]
            out = []
            for i, ((ref, v), k) in enumerate(zip(items, ks)):
                if k is None:
                    k = self.newkey()
                ttl = ttls[i] if isinstance(ttls, list) else ttls
                self.d[k] = ({"v": v}, self.exp(ttl))
                out.append(k)
            return out
        if c == "db":
            n = 0
            for x in o[1]:
                k = self.ref(x)
                if self.live(k):
                    n += 1
                self.d.pop(k, None)
            return n
        if c == "t":
            self.t += o[1]
            return self.t
        if c == "r":
            return "-"
        if c == "f":
            return None
        if c == "l":
            return sum(1 for k in self.d if self.live(k))
        if c == "k":
            return self.order([k for k in self.d if self.live(k)])
        if c == "i":
            return [(k, self.d[k][0]) for k in self.order([k for k in self.d if self.live(k)])]
        if c == "c":
            dead = [k for k in self.d if not self.live(k)]
            for k in dead:
                del self.d[k]
            return len(dead)
        raise AssertionError(c)


keyref = st.one_of(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(0, 20))
putref = st.one_of(st.none(), keyref)
ttl = st.sampled_from([None, None, 0, 1, 3, 10])
val = st.integers(-5, 1000)
op = st.one_of(
    st.tuples(st.just("p"), putref, val, ttl),
    st.tuples(st.just("p"), st.none(), val, ttl),
    st.tuples(st.just("g"), keyref),
    st.tuples(st.just("h"), keyref),
    st.tuples(st.just("d"), keyref),
    st.lists(st.tuples(putref, val), min_size=0, max_size=6).flatmap(
        lambda items: st.tuples(
            st.just("pb"),
            st.just(items),
            st.one_of(ttl, st.lists(ttl, min_size=len(items), max_size=len(items))),
        )
    ),
    st.tuples(st.just("db"), st.lists(keyref, max_size=5)),
    st.tuples(st.just("t"), st.sampled_from([1, 2, 5, 20])),
    st.tuples(st.just("r")),
    st.tuples(st.just("f")),
    st.tuples(st.just("l")),
    st.tuples(st.just("k")),
    st.tuples(st.just("i")),
    st.tuples(st.just("c")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(op, min_size=1, max_size=30),
    in_memory=st.booleans(),
    autoflush=st.sampled_from([True, False, 3]),
)
def test_model(target, ops, in_memory, autoflush):
    fn = target.tmpdir() + "/m.db"
    src = PROGRAM % (fn, in_memory, autoflush, ops)
    out = target.run_code(src).splitlines()
    model = Model()
    expected = [repr(model.apply(o)) for o in ops] + ["END"]
    for i, (o, want) in enumerate(zip(ops, expected)):
        got = out[i] if i < len(out) else "<missing>"
        assert got == want, "op %d %r: MicroPython %s, model %s\nprogram output:\n%s" % (
            i, o, got, want, "\n".join(out[-40:]))
    assert out[len(ops)] == "END", "\n".join(out[-20:])
