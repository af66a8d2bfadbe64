# Raw btree module (no MicroTetherDB code): random puts, overwrites and deletes
# on a btree over io.BytesIO, checked against a dict. It found the split bug
# fixed in our Berkeley DB patch on 2026-12-02 (512-byte pages, values up to
# 230 bytes: wrong after a few hundred operations, then a crash; now 0 of 40
# seeds wrong up to 400 bytes; test_btree_patch.py keeps a short version).
# Not run by the test suite. Run:
#   MICROPYPATH= build/unix/micropython tests/repro/btree_raw_fuzz.py VMAX [PSIZE]
import btree, io, random, sys
VMAX = int(sys.argv[1]); PSIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 512
bad = 0
for seed in range(40):
    random.seed(seed)
    bt = btree.open(io.BytesIO(), pagesize=PSIZE, cachesize=4096)
    m = {}
    err = None
    for i in range(1500):
        k = b"k%03d" % random.randint(0, 150)
        if random.randint(0, 3):
            v = b"v" * random.randint(1, VMAX)
            bt[k] = v; m[k] = v
        else:
            try:
                del bt[k]
            except KeyError:
                pass
            m.pop(k, None)
        if i % 50 == 0:
            try:
                got = dict(bt.items())
            except Exception as e:
                err = "op %d: items() raised %r" % (i, e); break
            if got != m:
                err = "op %d: btree has %d keys, dict %d; missing %r extra %r wrong %d" % (
                    i, len(got), len(m), sorted(set(m) - set(got))[:3], sorted(set(got) - set(m))[:3],
                    sum(1 for k in m if k in got and got[k] != m[k]))
                break
    if err:
        bad += 1
        print("seed %d: %s" % (seed, err))
print("VMAX %d psize %d: %d of 40 seeds wrong" % (VMAX, PSIZE, bad))
