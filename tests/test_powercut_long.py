"""Longer power-cut sweep (opt-in): random workloads, a cut at every write.

`make test` runs the fixed workload of tests/device/test_powercut_db.py. This
file reuses that harness with workloads generated here from a seed (random
puts of random sizes, overwrites, deletes, batches, delete_batch, TTL puts,
clock jumps, cleanup, compaction), on LittleFS and on FAT (journal), and
applies the same checks after every cut point.

    MTDB_POWERCUT_LONG=20 python3 -m pytest tests/test_powercut_long.py -s

runs 20 workloads (seeds 0..19; MTDB_POWERCUT_SEED0 shifts them). Skipped when
the variable is not set.
"""

import os
import random

import pytest

N = int(os.environ.get("MTDB_POWERCUT_LONG", "0"))
SEED0 = int(os.environ.get("MTDB_POWERCUT_SEED0", "0"))
DEVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device", "test_powercut_db.py")

FOOTER = r'''

# ---- appended by tests/test_powercut_long.py ----
TMP = %r
TARGET = %r


def skip(reason=""):
    raise Exception("skip: " + reason)


def _doc(i, n):
    return {"n": i, "s": "r" * n}


def gput(k, i, n, ttl):
    def f(db, m, clk):
        d = _doc(i, n)
        m[k] = (d, None if not ttl else clk[0] + ttl)
        assert db.put(k, d, ttl=ttl) == k
    return f


def gdel(k):
    def f(db, m, clk):
        live = visible(m, clk[0])
        m.pop(k, None)
        assert db.delete(k) == (1 if k in live else 0)
    return f


def gbatch(specs):
    def f(db, m, clk):
        items = [(k, _doc(i, n)) for k, i, n in specs]
        for k, d in items:
            m[k] = (d, None)
        assert db.put_batch(items) == [k for k, d in items]
    return f


def gdelb(keys):
    def f(db, m, clk):
        live = visible(m, clk[0])
        n = 0
        for k in keys:
            if k in live:
                n += 1
                del live[k]
            m.pop(k, None)
        assert db.delete_batch(keys) == n
    return f


def gtick(s):
    def f(db, m, clk):
        clk[0] += s
    return f


def gcleanup(db, m, clk):
    dead = [k for k in m if m[k][1] is not None and m[k][1] <= clk[0]]
    for k in dead:
        del m[k]
    assert db.cleanup() == len(dead)


OPS = [%s]
res = {}
for kind in ("lfs", "fat"):
    total, tried, r = sweep(kind, False)
    res[kind] = (total, tried, r)
print("LONGDONE", repr(res))
'''


def workload(seed):
    rnd = random.Random(seed)
    keys = ["k%d" % i for i in range(12)]
    ops = []
    ops.append("op_index" if rnd.random() < 0.5 else "gput('k0', 0, 5, None)")
    for _ in range(rnd.randint(10, 22)):
        r = rnd.random()
        k = rnd.choice(keys)
        if r < 0.35:
            n = rnd.choice([3, 40, 200, 700, 1500])
            ttl = rnd.choice([None, None, None, 5, 50])
            ops.append("gput(%r, %d, %d, %r)" % (k, rnd.randint(0, 5), n, ttl))
        elif r < 0.5:
            ops.append("gdel(%r)" % k)
        elif r < 0.62:
            specs = [(rnd.choice(keys), rnd.randint(0, 5), rnd.choice([5, 60, 300]))
                     for _ in range(rnd.randint(1, 6))]
            seen, uniq = set(), []
            for s in specs:  # one key once per batch (keeps the model simple)
                if s[0] not in seen:
                    seen.add(s[0])
                    uniq.append(s)
            ops.append("gbatch(%r)" % (uniq,))
        elif r < 0.72:
            ops.append("gdelb(%r)" % (rnd.sample(keys, rnd.randint(1, 4)),))
        elif r < 0.8:
            ops.append("gtick(%d)" % rnd.choice([3, 10, 60]))
        elif r < 0.88:
            ops.append("gcleanup")
        elif r < 0.94:
            ops.append("op_compact")
        else:
            ops.append("op_gen")
    return ", ".join(ops)


@pytest.mark.skipif(not N, reason="opt-in: set MTDB_POWERCUT_LONG=<number of random workloads>")
@pytest.mark.parametrize("seed", range(SEED0, SEED0 + max(N, 1)))
def test_random_workload_cut_at_every_write(target, seed):
    with open(DEVICE) as f:
        src = f.read()
    code = src + FOOTER % (target.tmpdir(), target.name, workload(seed))
    out = target.run_code(code, timeout=3000)
    assert "LONGDONE" in out, out[-3000:]
    for line in out.splitlines():
        if line.startswith("MicroTetherDB on"):
            print("seed %d: %s" % (seed, line))
    import ast

    res = ast.literal_eval(out.split("LONGDONE", 1)[1].strip().splitlines()[0])
    for kind, (total, tried, r) in res.items():
        assert r["ok"] == tried, (seed, kind, r, out[-3000:])
