# Damaged and foreign files (format 1, one btree file): the constructor raises
# CorruptDBError naming the file (never a crash, never a silently empty
# database); MicroTetherDB.repair() salvages what is readable, reports what
# was lost, and leaves a usable file. Format 2: test_corrupt_db2.py.
import os
from microtetherdb import MicroTetherDB, CorruptDBError

N = 60


class Rng:
    # small deterministic PRNG (same sequence on every target)
    def __init__(self, seed):
        self.s = seed

    def next(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n


def doc(i):
    return {"i": i, "name": "rec%d" % i, "pad": "p" * (i % 23)}


def build(path):
    # a real database: N records (some with TTL, some tags, one overflow)
    try:
        os.remove(path)
    except OSError:
        pass
    db = MicroTetherDB(path, in_memory=False, clock=lambda: 1000, file_format=1)
    for i in range(N):
        if i % 7 == 0:
            db.put("r%03d" % i, doc(i), ttl=100000)
        elif i % 5 == 0:
            db.put("r%03d" % i, doc(i), tags=["t"])
        else:
            db.put("r%03d" % i, doc(i))
    db.put("big", {"blob": "b" * 1500})
    db.close()
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def expect_corrupt(path):
    try:
        db = MicroTetherDB(path, in_memory=False)
    except CorruptDBError as e:
        assert path in str(e), str(e)
        return str(e)
    n = len(db)
    db.close()
    raise AssertionError("opened a damaged file (%d records)" % n)


def check_subset(path, full):
    # the file opens; every record in it is an original record, unchanged
    db = MicroTetherDB(path, in_memory=False, clock=lambda: 1000)
    got = 0
    try:
        for k, d in db.items():
            if k == "big":
                assert d == {"blob": "b" * 1500}
            else:
                assert d == doc(int(k[1:])), k
            got += 1
        assert len(db) == got
        db.put("after", {"ok": 1})
    finally:
        db.close()
    db = MicroTetherDB(path, in_memory=False, clock=lambda: 1000)
    assert db.get("after") == {"ok": 1}
    db.close()
    return got


def test_intact_file_opens():
    p = TMP + "/a.db"
    build(p)
    assert check_subset(p, True) == N + 1


def test_not_a_database():
    p = TMP + "/x.db"
    for data in (b"hello world, this is a text file\n" * 40, b'{"a": 1}', b"\x00" * 4096,
                 b"\xff" * 1024, b"MTDB"):
        write(p, data)
        expect_corrupt(p)


def test_random_bytes():
    p = TMP + "/r.db"
    rng = Rng(7)
    for n in (1, 24, 512, 1536, 4096):
        write(p, bytes(rng.next(256) for _ in range(n)))
        expect_corrupt(p)


def test_plain_btree_is_not_ours():
    import btree

    p = TMP + "/b.db"
    f = open(p, "w+b")
    db = btree.open(f)
    db[b"user"] = b"data"
    db.close()
    f.close()
    msg = expect_corrupt(p)
    assert "MicroTetherDB" in msg, msg


def test_truncated_everywhere():
    p = TMP + "/t.db"
    full = build(p)
    size = len(full)
    cuts = [24, 100, 511, 512, 513, 1024, size // 2, size - 512, size - 1]
    for c in cuts:
        write(p, full[:c])
        expect_corrupt(p)
    # a file cut to 0 bytes is indistinguishable from a new one: it opens empty
    write(p, b"")
    db = MicroTetherDB(p, in_memory=False)
    assert len(db) == 0
    db.close()


def test_zero_page_in_the_middle():
    p = TMP + "/z.db"
    full = build(p)
    npages = len(full) // 512
    assert npages > 4, npages
    opened = 0
    for pg in range(1, npages):
        data = bytearray(full)
        data[pg * 512:(pg + 1) * 512] = bytes(512)
        write(p, data)
        try:
            MicroTetherDB(p, in_memory=False).close()
            opened += 1  # an unused (free) page: then nothing may be missing
            assert check_subset(p, True) == N + 1
        except CorruptDBError as e:
            assert p in str(e)
    print("zero page: %d pages, %d detected as corrupt, %d unused" % (npages - 1, npages - 1 - opened, opened))


def test_random_byte_flips_never_crash():
    # single-byte damage anywhere: open raises CorruptDBError, or the file
    # opens and every call either works or raises CorruptDBError / ValueError
    # / btree's OSError (no crash;
    # values themselves carry no checksum, see docs/reliability.md)
    p = TMP + "/f.db"
    full = build(p)
    rng = Rng(11)
    detected = opened = btree_err = 0
    for _ in range(120):
        data = bytearray(full)
        for _ in range(1 + rng.next(3)):
            data[rng.next(len(data))] ^= 1 << rng.next(8)
        write(p, data)
        try:
            db = MicroTetherDB(p, in_memory=False, clock=lambda: 1000)
        except CorruptDBError:
            detected += 1
            continue
        opened += 1
        try:
            for k in list(db.keys()):
                db.get(k)
            len(db)
            db.query({"i": 3})
            db.put("new", {"x": 1})
            db.close()
        except (CorruptDBError, ValueError, KeyError):
            pass
        except OSError:
            btree_err += 1  # btree's own error on a page the check accepted
        finally:
            db.close()
    print("byte flips: 120 files, %d refused at open, %d opened (%d of them later raised OSError "
          "from btree)" % (detected, opened, btree_err))


def test_repair_zero_page():
    p = TMP + "/rz.db"
    full = build(p)
    npages = len(full) // 512
    total_rec = total_lost = unknown = 0
    fixed = 0
    for pg in range(1, npages):
        data = bytearray(full)
        data[pg * 512:(pg + 1) * 512] = bytes(512)
        write(p, data)
        try:
            MicroTetherDB(p, in_memory=False).close()
            continue
        except CorruptDBError:
            pass
        rep = MicroTetherDB.repair(p)
        assert rep["backup"] == p + ".corrupt"
        got = check_subset(p, False)
        assert got == rep["recovered"], (got, rep)
        # losses are exact when the metadata record was readable
        if rep["lost"] is None:
            assert rep["recovered"] <= N + 1
            unknown += 1
        else:
            assert rep["recovered"] + rep["lost"] == N + 1, rep
            total_lost += rep["lost"]
        assert rep["bad_pages"], rep
        total_rec += rep["recovered"]
        fixed += 1
    assert fixed > 0
    print("repair of %d zero-page files: %d records recovered, %d reported lost (of %d each; "
          "%d files had lost their metadata page: losses unknown)" % (
              fixed, total_rec, total_lost, N + 1, unknown))


def test_repair_truncated():
    p = TMP + "/rt.db"
    full = build(p)
    write(p, full[:len(full) // 2 + 100])
    rep = MicroTetherDB.repair(p)
    got = check_subset(p, False)
    assert got == rep["recovered"], (got, rep)
    assert rep["recovered"] > 0, rep
    # the metadata record sits in the lost half here: the loss is unknown
    assert rep["lost"] is None or rep["lost"] == N + 1 - rep["recovered"], rep
    assert rep["notes"] and rep["bad_pages"], rep
    print("repair of a half file: recovered %d of %d, reported lost %r" % (
        rep["recovered"], N + 1, rep["lost"]))


def test_repair_garbage_raises():
    p = TMP + "/rg.db"
    write(p, b"not a database at all" * 10)
    try:
        MicroTetherDB.repair(p)
    except CorruptDBError as e:
        assert p in str(e)
    else:
        raise AssertionError("repair of garbage did not raise")
