# File mode: persistence, parent folders, purge, corrupt files, flush policy,
# in both file formats (2: a folder of chunks and a commit log, the default;
# 1: one btree file) where the behaviour is the same.
import os
from microtetherdb import MicroTetherDB, CorruptDBError, DBError, codec, filestore


def disk_size(p):
    # bytes in a file, or in the files of a database folder
    if not filestore.isdir(p):
        return os.stat(p)[6]
    n = 0
    for name in os.listdir(p):
        n += disk_size(p + "/" + name)
    return n


def copy_tree(src, dst):
    if filestore.isdir(src):
        os.mkdir(dst)
        for name in os.listdir(src):
            copy_tree(src + "/" + name, dst + "/" + name)
        return
    buf = bytearray(512)
    with open(src, "rb") as f, open(dst, "wb") as g:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            g.write(memoryview(buf)[:n])


def test_reopen_persistence():
    fn = TMP + "/p.db"
    db = MicroTetherDB(fn, in_memory=False)
    ks = [db.put({"i": i}) for i in range(100)]
    db.put("custom", {"c": [1, 2]}, tags=["t"])
    db.delete(ks[0])
    db.close()
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == 100
    assert db.get(ks[0]) is None and db.get(ks[1]) == {"i": 1}
    assert db.get("custom") == {"c": [1, 2]}
    assert codec.header(db._bt[b"custom"])[1] == ("t",)
    assert list(db.keys())[:2] == [ks[1], ks[2]]
    # new generated keys do not collide with the stored ones
    k = db.put({"new": 1})
    assert k not in ks and len(db) == 101
    db.close()


def test_folder_layout_and_a_development_layout():
    # Format 2: header, chunks in c/ (the database folder stays small: a log
    # slot's path lookup does not grow with the chunks), log in l/. A folder
    # of a development version, chunks beside the header, is refused by name
    # (never opened as an empty database) and repair() salvages it.
    fn = TMP + "/lay.db"
    db = MicroTetherDB(fn, in_memory=False)
    ks = [db.put({"i": i}) for i in range(30)]
    db.put_batch([{"b": i, "pad": "x" * 60} for i in range(12)])  # a checkpoint
    db.close()
    assert sorted(os.listdir(fn)) == ["c", "h", "l"]
    chunks = os.listdir(fn + "/c")
    assert chunks and all(len(n) == 9 and n[0] == "c" for n in chunks)
    for n in chunks:  # the development layout: chunks beside the header...
        os.rename(fn + "/c/" + n, fn + "/" + n)
    os.rmdir(fn + "/c")
    try:
        MicroTetherDB(fn, in_memory=False)
        raise AssertionError("opened a folder without c/")
    except CorruptDBError as e:
        assert fn in str(e) and "c/ is missing" in str(e), e
    with open(fn + "/h", "r+b") as f:  # ... and its header
        f.seek(7)
        f.write(b"\x00")
    try:
        MicroTetherDB(fn, in_memory=False)
        raise AssertionError("opened a development version's folder")
    except CorruptDBError as e:
        assert fn in str(e) and "development version" in str(e) and "repair()" in str(e), e
    rep = MicroTetherDB.repair(fn)
    assert rep["recovered"] >= 30, rep
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == rep["recovered"] and all(db.get(k) == {"i": i} for i, k in enumerate(ks))
    db.close()
    assert sorted(os.listdir(fn)) == ["c", "h", "l"]
    filestore.drop(fn)
    filestore.drop(rep["backup"])  # (the development layout)
    assert not filestore.exists(fn) and not filestore.exists(rep["backup"])


def test_creates_parent_folders():
    fn = TMP + "/a/b/c/x.db"
    with MicroTetherDB(fn, in_memory=False) as db:
        db.put("k", {"v": 1})
    assert exists(fn)
    with MicroTetherDB(fn, in_memory=False) as db:
        assert db.get("k") == {"v": 1}


def test_relative_filename():
    os.chdir(TMP)
    with MicroTetherDB("rel.db", in_memory=False) as db:
        db.put("k", {"v": 1})
    assert exists(TMP + "/rel.db")


def test_purge_removes_file_and_resets():
    for fmt in (1, 2):
        fn = TMP + "/purge%d.db" % fmt
        db = MicroTetherDB(fn, in_memory=False, file_format=fmt)
        for i in range(50):
            db.put({"i": i}, ttl=100)
        db.flush()
        size1 = disk_size(fn)
        assert db.delete(purge=True) == 1
        assert len(db) == 0 and list(db.keys()) == []
        assert disk_size(fn) < size1, (fmt, disk_size(fn), size1)
        db.put("after", {"v": 1})
        db.close()
        db = MicroTetherDB(fn, in_memory=False)
        assert list(db.keys()) == ["after"] and len(db) == 1, fmt
        db.close()


def test_garbage_file_is_corrupt():
    fn = TMP + "/garbage.db"
    with open(fn, "wb") as f:
        f.write(b"this is not a database at all " * 40)
    msg = raises(CorruptDBError, MicroTetherDB, fn, in_memory=False)
    assert "garbage.db" in msg
    # the file is left untouched
    with open(fn, "rb") as f:
        assert f.read(8) == b"this is "


def test_short_file_is_corrupt():
    fn = TMP + "/short.db"
    with open(fn, "w") as f:
        f.write("hello")
    assert "short.db" in raises(CorruptDBError, MicroTetherDB, fn, in_memory=False)


def test_foreign_btree_is_corrupt():
    import btree

    fn = TMP + "/foreign.db"
    f = open(fn, "w+b")
    bt = btree.open(f)
    bt[b"somebody"] = b"else's data"
    bt.close()
    f.close()
    assert "foreign.db" in raises(CorruptDBError, MicroTetherDB, fn, in_memory=False)


def test_damaged_meta_is_corrupt():
    import btree

    fn = TMP + "/meta.db"
    MicroTetherDB(fn, in_memory=False, file_format=1).close()
    f = open(fn, "r+b")
    bt = btree.open(f)
    bt[b"\xffm"] = b"junk"
    bt.close()
    f.close()
    assert "meta.db" in raises(CorruptDBError, MicroTetherDB, fn, in_memory=False)
    f = open(fn, "r+b")
    bt = btree.open(f)
    bt[b"\xffm"] = b"MTDB\x09:0"
    bt.close()
    f.close()
    assert "format" in raises(CorruptDBError, MicroTetherDB, fn, in_memory=False)


def test_empty_file_is_new_db():
    fn = TMP + "/empty.db"
    open(fn, "wb").close()
    with MicroTetherDB(fn, in_memory=False) as db:
        assert len(db) == 0
        db.put("k", {"v": 1})
    with MicroTetherDB(fn, in_memory=False) as db:
        assert db.get("k") == {"v": 1}


def _reopen_count(fn):
    # What a fresh open sees on disk: format 1, the records read through a
    # second handle on the same file; format 2, the records of a copy of
    # the folder as it is now, opened as a database (chunks + log replay).
    if filestore.isdir(fn):
        cp = fn + ".copy"
        if exists(cp):
            filestore.rmtree(cp)
        copy_tree(fn, cp)
        db = MicroTetherDB(cp, in_memory=False)
        n = len(db)
        db.close()
        filestore.rmtree(cp)
        return n
    import btree

    f = open(fn, "rb")
    bt = btree.open(f)
    n = sum(1 for k in bt.keys(None, b"\xff"))
    bt.close()
    f.close()
    return n


def test_autoflush_true_flushes_each_call():
    for fmt in (1, 2):
        _autoflush_true(fmt)


def _autoflush_true(fmt):
    fn = TMP + "/af%d.db" % fmt
    db = MicroTetherDB(fn, in_memory=False, file_format=fmt)
    assert db.autoflush is True
    f0 = db.stats()["flushes"]
    db.put("a", {"v": 1})
    assert db.stats()["flushes"] == f0 + 1 and db.stats()["unflushed_writes"] == 0
    assert _reopen_count(fn) == 1
    db.put_batch([{"i": i} for i in range(40)])
    assert db.stats()["flushes"] == f0 + 2  # a batch is ONE flush
    assert _reopen_count(fn) == 41
    db.delete_batch(list(db.keys())[:10])
    assert db.stats()["flushes"] == f0 + 3
    assert _reopen_count(fn) == 31
    db.delete("nothing-here")  # no change, no flush
    assert db.stats()["flushes"] == f0 + 3
    db.close()


def test_autoflush_false_and_n():
    for fmt in (1, 2):
        _autoflush_false_and_n(fmt)


def _autoflush_false_and_n(fmt):
    fn = TMP + "/af2_%d.db" % fmt
    db = MicroTetherDB(fn, in_memory=False, autoflush=False, file_format=fmt)
    f0 = db.stats()["flushes"]
    for i in range(5):
        db.put("k%d" % i, {"i": i})
    assert db.stats()["flushes"] == f0 and db.stats()["unflushed_writes"] == 5
    db.flush()
    assert db.stats()["flushes"] == f0 + 1 and db.stats()["unflushed_writes"] == 0
    assert _reopen_count(fn) == 5
    db.close()
    db = MicroTetherDB(fn, in_memory=False, autoflush=3)
    f0 = db.stats()["flushes"]
    for i in range(7):
        db.put("n%d" % i, {"i": i})
    assert db.stats()["flushes"] == f0 + 2 and db.stats()["unflushed_writes"] == 1
    db.close()  # close commits the rest
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == 12
    db.close()


def test_count_persisted_in_meta():
    fn = TMP + "/count.db"
    db = MicroTetherDB(fn, in_memory=False, autoflush=False)
    for i in range(30):
        db.put("k%02d" % i, {"i": i})
    db.delete_batch(["k00", "k01"])
    db.close()
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == 28 and db._count == 28
    db.close()


def test_close_calls_btree_close():
    for fmt in (1, 2):
        _close_calls_btree_close(fmt)


def _close_calls_btree_close(fmt):
    fn = TMP + "/close%d.db" % fmt
    db = MicroTetherDB(fn, in_memory=False, autoflush=False, file_format=fmt)
    bt = db._bt
    db.put("k", {"v": 1})
    db.close()
    raises(Exception, bt.get, b"k")  # the btree handle itself is closed
    raises(DBError, db.put, "j", {"v": 1})
    assert _reopen_count(fn) == 1


def test_large_docs_file():
    fn = TMP + "/large.db"
    db = MicroTetherDB(fn, in_memory=False)
    big = {"s": "y" * 8000}
    for i in range(10):
        db.put("b%d" % i, big)
    db.close()
    db = MicroTetherDB(fn, in_memory=False)
    assert all(db.get("b%d" % i) == big for i in range(10))
    db.close()


def test_format_1_file_read_and_upgraded():
    # A database written before format 2 (every record has a header byte)
    # opens, reads, and after the next commit carries format 2 (a record
    # without expiry and tags is now stored as its bare JSON).
    import btree
    fn = TMP + "/f1.db"
    f = open(fn, "w+b")
    b = btree.open(f, pagesize=512)
    b[b"\xffm"] = b"MTDB\x01:3:1000:2"
    b[b"a"] = b'\x00{"v": 1}'
    b[b"t"] = b'\x01' + (2000).to_bytes(4, "big") + b'{"v": 2}'
    b[b"\xfft" + (2000).to_bytes(4, "big") + b"t"] = b""
    b[b"g"] = b'\x02\x01\x03red{"v": 3}'
    b.close()
    f.close()
    t = [1000]
    db = MicroTetherDB(fn, in_memory=False, clock=lambda: t[0])
    assert db.get("a") == {"v": 1} and db.get("t") == {"v": 2} and db.get("g") == {"v": 3}
    assert db.query({"tags": "red"}) == [{"v": 3}]  # tag index built on opening
    assert len(db) == 3
    db.put("a", {"v": 10})  # an overwrite: the count does not change
    db.close()
    f = open(fn, "rb")
    b = btree.open(f, pagesize=512)
    assert b[b"\xffm"][4] == 2 and b[b"a"] == b'{"v":10}'  # (compact JSON)
    b.close()
    f.close()
    db = MicroTetherDB(fn, in_memory=False, clock=lambda: t[0])
    assert db.get("a") == {"v": 10} and len(db) == 3
    t[0] = 3000
    assert db.cleanup() == 1 and db.get("t") is None and len(db) == 2
    db.close()


def _holes(hole):
    # Holes of `hole` bytes between small live blocks (~97 % of the heap
    # stays free, no free block is bigger than a hole): lists of a hole's
    # words, each shrunk to 4 items in place (the tail goes back to the
    # heap), what is left filled with small blocks. -> the live blocks.
    import gc
    import sys

    gc.collect()
    k = hole // (8 if sys.maxsize > 0x7FFFFFFF else 4) + 8  # (list items are words)
    head = small = None
    try:
        while True:
            n = [None] * k
            n[0] = head
            head = n
    except MemoryError:
        pass
    n = None
    for s in (hole // 2, 256, 128, 64, 32, 16, 8, 1, 0):
        try:
            while True:
                small = [bytearray(s), small]
        except MemoryError:
            pass
    p = head
    while p is not None:
        while len(p) > 4:
            p.pop()
        p = p[0]
    gc.collect()
    return head, small


def test_big_db_on_fragmented_heap():
    # A format-2 database of ~900 pages: its page map (4 bytes a page) and
    # the page table of its one chunk after compact() are ~3.6 KB each; the
    # store keeps them in 512-byte pieces, so it opens, reads, writes and
    # checkpoints on a heap whose free blocks are all 1.5 KB (the records
    # read there are small: a value is one block of its own size; 1.5 KB:
    # on the qemu board btree.open itself needs ~1.1 KB, see below).
    fn = TMP + "/big.db"
    db = MicroTetherDB(fn, in_memory=False)
    doc = {"s": "z" * 3000}
    for b in range(14):
        db.put_batch([dict(doc, i=b * 10 + j) for j in range(10)])
    small = [db.put({"i": i}) for i in range(20)]
    db.compact()
    pages = db._st.size() // 512
    assert pages > 800, pages
    db.close()
    import gc

    keep = _holes(1536)
    try:
        try:
            bytearray(2048)
            raise AssertionError("the heap still has a 2 KB block")
        except MemoryError:
            pass
        db = MicroTetherDB(fn, in_memory=False)
        assert [db.get(k) for k in small] == [{"i": i} for i in range(20)]
        assert db.delete(small[0]) == 1
        db.put("new", {"x": 1})
        db.close()  # a checkpoint
    finally:
        keep = None
        gc.collect()
    # (what was allocated meanwhile stays in the holes: a 3 KB value may
    # not fit now, small records are read)
    db = MicroTetherDB(fn, in_memory=False)
    assert len(db) == 160 and db.get(small[0]) is None and db.get("new") == {"x": 1}
    assert db.get(small[19]) == {"i": 19}
    db.close()


def test_open_out_of_memory_is_memory_error():
    # On the qemu board btree's own malloc takes the MicroPython heap, and
    # btree.open's buffer pool needs ~1.1 KB in one block: with every free
    # block 1 KB, opening fails -- as MemoryError (btree reports ENOMEM as
    # OSError 12), and the database opens once memory is back.
    if TARGET != "qemu":
        skip("btree's malloc is the C heap here")
    import gc

    fn = TMP + "/mem.db"
    db = MicroTetherDB(fn, in_memory=False)
    db.put("a", {"n": 1})
    db.close()
    db = None
    keep = _holes(1024)
    err = None
    try:
        try:
            db = MicroTetherDB(fn, in_memory=False)
        except Exception as e:  # noqa: BLE001 - the type is what is tested
            err = e
    finally:
        keep = None
        gc.collect()
    assert type(err) is MemoryError, repr(err)
    db = MicroTetherDB(fn, in_memory=False)
    assert db.get("a") == {"n": 1}
    db.close()
