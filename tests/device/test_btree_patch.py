# Our Berkeley DB patch (firmware/patches/berkeley-db-micropython.patch), seen from Python.
import btree
import io


class LoggingStream(io.IOBase):
    """A BytesIO that records the offset of every write btree makes."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.writes = []
        self.syncs = 0

    def readinto(self, b):
        return self.buf.readinto(b)

    def write(self, b):
        self.writes.append(self.buf.seek(0, 1))
        return self.buf.write(b)

    def ioctl(self, cmd, arg):
        if cmd == 1:  # MP_STREAM_FLUSH
            self.syncs += 1
        elif cmd == 2:  # MP_STREAM_SEEK: arg is the address of an mp_stream_seek_t
            req = uctypes.struct(arg, SEEK_LAYOUT)
            req.offset = self.buf.seek(req.offset, req.whence)
        return 0


def _seek_layout():
    # mp_stream_seek_t is {mp_off_t offset; int whence;}: off_t is 64-bit on
    # the 64-bit unix port, a 32-bit long on the 32-bit MCU ports.
    if sys.maxsize > 1 << 32:
        return {"offset": 0 | uctypes.INT64, "whence": 8 | uctypes.INT32}
    return {"offset": 0 | uctypes.INT32, "whence": 4 | uctypes.INT32}


try:
    import sys
    import uctypes
    SEEK_LAYOUT = _seek_layout()
except ImportError:
    uctypes = None


def test_flush_writes_page0_only_when_meta_changes():
    if uctypes is None:
        skip("no uctypes on this firmware")
    s = LoggingStream()
    db = btree.open(s, pagesize=512)
    db[b"a"] = b"1"
    db.flush()
    assert 0 in s.writes  # a new tree: its meta page is written once
    s.writes = []
    for i in range(5):
        db[b"k%d" % i] = b"v"
        db.flush()
    # Unpatched 1.85 never cleared B_METADIRTY and rewrote page 0 at every flush.
    assert 0 not in s.writes, s.writes
    assert s.writes == [512] * 5, s.writes
    db.close()


def test_close_leaves_the_stream_open():
    s = io.BytesIO()
    db = btree.open(s)
    db[b"x"] = b"y"
    db.close()
    s.seek(0)
    assert len(s.read()) >= 1024  # meta page + root page, and s still usable
    db = btree.open(s)
    assert db[b"x"] == b"y"
    db.close()


def test_not_a_database_is_refused():
    s = io.BytesIO(b"this is not a btree file" * 40)
    try:
        btree.open(s)
    except OSError as e:
        # EFTYPE: newlib (qemu) has its own (79); with glibc it is EINVAL (22).
        assert e.errno in (22, 79), e.errno
    else:
        assert False, "opened a non-database"


def test_split_with_a_big_entry_keeps_the_tree_whole():
    # bt_psplit's fix (skip = MAX_PAGE_OFFSET): a big new entry that a split
    # puts alone on the left page left the right page's first index unset
    # (a page header read as a key, then a crash). The writes a memory-mode
    # database made for five puts, then random writes of values up to ~300
    # bytes on 512-byte pages, checked against a dict (before the fix: wrong
    # within a few hundred writes; see tests/repro/).
    ops = [(b"\xffi\x00", 12), (b"\xffm", 12), (b"0000001000-00000", 74),
           (b"\xfft\x00\x00\x03\xec0000001000-00000", 0), (b"\xffi\x01\x05t1\x000000001000-00000", 0),
           (b"\xffi\x01\x05t2\x000000001000-00000", 0), (b"\xffi\x01\x05" + b"x" * 40 + b"\x000000001000-00000", 0),
           (b"0000001000-00001", 30), (b"\xfft\x00\x00\x03\xea0000001000-00001", 0), (b"zzz", 2),
           (b"1", 77), (b"zzz", 229)]
    bt = btree.open(io.BytesIO(), pagesize=512, cachesize=0)
    want = {}
    for k, n in ops:
        bt[k] = want[k] = b"v" * n
    assert sorted(bt.keys()) == sorted(want)
    bt.close()
    import random
    nk = 40 if TARGET == "qemu" else 90  # (qemu: the BytesIO in one heap block)
    for seed in range(4):
        random.seed(seed)
        bt = btree.open(io.BytesIO(), pagesize=512, cachesize=2048)
        want = {}
        for i in range(500):
            k = b"k%03d" % random.randint(0, nk)
            if random.randint(0, 3):
                bt[k] = want[k] = b"v" * random.randint(1, 300)
            elif k in want:
                del bt[k]
                del want[k]
        assert dict(bt.items()) == want, seed
        bt.close()


def test_a_freed_page_is_not_the_fast_insert_page():
    # __bt_free's fix: after inserts that split a leaf and deletes that
    # emptied it, the freed page was still bt_fast's page of the last insert
    # (sorted inserts) and a put of a new smallest key went into it: lost.
    # The writes a soak recorded, then sorted inserts at both ends with
    # deletes that empty pages, checked against a dict.
    OPS = [
        (b'\xffi\x00', 12),
        (b'\xffm', 12),
        (b'e', 194),
        (b'0948996054-10848', 16),
        (b'0948996049-80191', 22),
        (b'0948996054-10849', 48),
        (b'c0', 22),
        (b'd', 18),
        (b'\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9', 9),
        (b'c60', 77),
        (b'0948996054-10850', 18),
        (b'\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9', 17),
        (b'0948996054-10851', 19),
        (b'0948996054-10852', 39),
        (b'\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9', 51),
        (b'0948996049-80191', None),
        (b'0948996054-10848', None),
        (b'0948996054-10849', None),
        (b'0948996054-10850', None),
        (b'0948996054-10851', None),
        (b'0948996054-10852', None),
        (b'c0', None),
        (b'e', None),
        (b'd', None),
        (b'c60', None),
        (b'bk3', 15),
        (b'bk3', None),
        (b'\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9', None),
    ]
    bt = btree.open(io.BytesIO(), pagesize=1024, cachesize=512)
    for k, n in OPS:
        if n is None:
            del bt[k]
        else:
            bt[k] = b"x" * n
    bt[b"0"] = b"v"
    assert bt.get(b"0") == b"v"
    bt.close()
    import random
    for seed in range(6):
        random.seed(seed)
        bt = btree.open(io.BytesIO(), pagesize=512, cachesize=2048)
        want = {}
        lo = hi = 50000
        for i in range(400):
            r = random.randint(0, 9)
            if r < 4:
                hi += 1
                k = b"%06d" % hi
            elif r < 8:
                lo -= 1
                k = b"%06d" % lo
            else:  # delete a run at one end (empties leaves)
                ks = sorted(want)
                run = ks[:random.randint(1, 30)] if r == 8 else ks[-random.randint(1, 30):]
                for k in run:
                    del bt[k]
                    del want[k]
                continue
            bt[k] = want[k] = b"v" * random.randint(1, 60)
            if bt.get(k) != want[k]:
                raise AssertionError("seed %d: put %r lost" % (seed, k))
        assert dict(bt.items()) == want, seed
        bt.close()
