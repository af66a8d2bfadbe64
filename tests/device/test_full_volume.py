# A full volume is a normal event for a logging device. A database on a small
# LittleFS or FAT volume (512-byte and 4 KB blocks) beside a filler file is
# written by every kind of write call until the volume is full, and further:
#   * every call either returns or raises OSError ENOSPC (nothing else), and a
#     failing call is applied whole or not at all (checked in the session);
#   * the database stays open: reads work after ENOSPC, deletes return or
#     raise ENOSPC cleanly, compact() refuses with ENOSPC naming the bytes it
#     needs and the bytes free;
#   * once the filler is removed, every kind of write works again;
#   * after close, unmount, mount and reopen, the contents are exactly the
#     acknowledged state: with autoflush on, every call that returned; with
#     autoflush off, the state of the last flush() that returned.
import gc
import os
import vfs
from microtetherdb import MicroTetherDB, filestore

MP = "/fullvol"
ENOSPC = 28
ENOMEM = 12
FREE = [None]  # heap free before the first configuration
CONFIGS = (  # (filesystem, block size, blocks on unix, blocks on qemu)
    # (qemu: the RAM disk lives in the ~140 KB heap: 0 = too big to run there)
    ("lfs", 512, 128, 64),
    ("lfs", 4096, 40, 0),  # (format 2's folders cost LittleFS 6 blocks of metadata)
    ("fat", 512, 160, 80),
    ("fat", 4096, 40, 0),
)


class RamDev:
    # block device in RAM (extended protocol: offsets, erase); one bytearray
    # per block (qemu's heap, fragmented by the earlier configurations, may
    # have no single free run the size of the volume)
    def __init__(self, bs, n):
        self.bs = bs
        self.n = n
        self.blocks = [bytearray(bs) for _ in range(n)]

    def _io(self, b, buf, off, write):
        bs = self.bs
        mv = memoryview(buf)
        p = 0
        while p < len(mv):
            o = off % bs
            k = min(bs - o, len(mv) - p)
            blk = self.blocks[b + off // bs]
            if write:
                blk[o:o + k] = mv[p:p + k]
            else:
                mv[p:p + k] = memoryview(blk)[o:o + k]
            p += k
            off += k

    def readblocks(self, b, buf, off=0):
        self._io(b, buf, off, False)

    def writeblocks(self, b, buf, off=None):
        self._io(b, buf, off or 0, True)
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            blk = self.blocks[arg]
            for i in range(self.bs):
                blk[i] = 0xFF
        return 0


def mount(kind, dev, mk=False):
    cls = vfs.VfsLfs2 if kind == "lfs" else vfs.VfsFat
    if mk:
        cls.mkfs(dev)
    vfs.mount(cls(dev), MP)


def umount():
    try:
        vfs.umount(MP)
    except OSError:
        pass


def doc(i):
    # smaller on qemu, where the RAM disk and this test's model share the heap
    return {"i": i, "v": "x" * (20 + (i * 37) % (60 if TARGET == "qemu" else 230))}


def contents(db):
    return dict(db.items())


class Run:
    # applies calls to the database and to a model of what it must hold:
    # key -> (doc, expiry or None); visible() is what reads must show
    def __init__(self, db, autoflush):
        self.db = db
        self.af = autoflush
        self.model = {}        # acknowledged calls, in the session
        self.durable = {}      # what a reopen must show
        self.clock = [1000]
        self.i = 0
        self.ok = 0
        self.enospc = 0
        self.nomem = 0
        self.first_full = None

    def visible(self, m):
        now = self.clock[0]
        return {k: v[0] for k, v in m.items() if v[1] is None or v[1] > now}

    def call(self, name, fn, change):
        # fn() does the call; change(model) applies it to a copy of the model
        before = dict(self.model)
        after = dict(before)
        change(after)
        try:
            fn()
        except (OSError, MemoryError) as e:
            # MemoryError: documented too (on qemu the RAM disk itself takes
            # a third of the heap); held to the same whole-or-nothing rule
            if isinstance(e, MemoryError) or e.args[0] == ENOMEM:
                self.nomem += 1  # (ENOMEM: btree's own malloc, on the qemu board)
            else:
                assert e.args[0] == ENOSPC, "%s: %r" % (name, e)
                self.enospc += 1
                if self.first_full is None:
                    self.first_full = self.i
            gc.collect()
            got = contents(self.db)   # reads work; applied whole or not at all
            if got == self.visible(after):
                self.model = after
            elif got == self.visible(self.durable) and got != self.visible(before):
                # autoflush off: the commit had to give up the pending
                # calls, and the message says so
                assert "discarded" in str(e), "%s: %r" % (name, e)
                self.model = dict(self.durable)
            else:
                assert got == self.visible(before), "%s half applied: %r" % (
                    name, sorted(set(got) ^ set(self.visible(before))))
            return False
        self.model = after
        self.ok += 1
        if self.af or name in ("flush", "close"):
            self.durable = dict(after)
        return True

    def step(self):
        # one write call of a kind chosen by the step number
        db = self.db
        i = self.i = self.i + 1
        k = i % 11
        keys = sorted(self.visible(self.model))
        now = self.clock[0]
        if k in (0, 1, 2, 3) or len(keys) < 4:
            key = "k%04d" % i
            d = doc(i)
            ttl = 5 if i % 9 == 0 else None
            self.call("put", lambda: db.put(key, d, ttl=ttl, tags=["t%d" % (i % 3)]),
                      lambda m: m.__setitem__(key, (d, now + 5 if ttl else None)))
        elif k == 4:
            key = keys[i % len(keys)]
            d = doc(i)
            self.call("overwrite", lambda: db.put(key, d), lambda m: m.__setitem__(key, (d, None)))
        elif k == 5:
            items = [("b%04d_%d" % (i, j), doc(i + j)) for j in range(4)]
            self.call("put_batch", lambda: db.put_batch(items),
                      lambda m: m.update([(x, (y, None)) for x, y in items]))
        elif k == 6:
            key = keys[i % len(keys)]
            self.call("delete", lambda: db.delete(key), lambda m: m.pop(key))
        elif k == 7:
            ks = keys[:3]
            self.call("delete_batch", lambda: db.delete_batch(ks), lambda m: [m.pop(x) for x in ks])
        elif k == 8:
            self.clock[0] += 10   # records with ttl=5 expire: cleanup removes them
            self.call("cleanup", lambda: db.cleanup(), lambda m: None)
        elif k == 9:
            if i % 2:
                self.call("create_index", lambda: db.create_index("i"), lambda m: None)
            else:
                self.call("reindex", lambda: db.reindex(), lambda m: None)
        else:
            if not self.af:
                self.call("flush", lambda: db.flush(), lambda m: None)
            else:
                self.call("compact", lambda: db.compact(), lambda m: None)


def run_config(kind, bs, nblocks, autoflush, fmt):
    gc.collect()
    umount()
    filestore.forget()
    gc.collect()
    # nothing of the earlier configurations stays behind (a btree handle
    # whose close failed keeps its cache for good on a board)
    free = gc.mem_free()
    if FREE[0] is None:
        FREE[0] = free
    assert free > FREE[0] - 4096, "format %d %s/%d: %d bytes free at the start, %d now" % (
        fmt, kind, bs, FREE[0], free)
    dev = RamDev(bs, nblocks)
    mount(kind, dev, True)
    path = MP + "/d/t.db"
    filler = MP + "/filler"
    st = os.statvfs(MP)
    with open(filler, "wb") as f:  # half of the free space, freed later (on
        # LittleFS a commit may need room for a copy of the file's tail)
        chunk = b"F" * 512
        for _ in range(st[1] * st[4] // 1024):
            f.write(chunk)
    r = None
    try:
        db = MicroTetherDB(path, in_memory=False, autoflush=autoflush, clock=lambda: r.clock[0],
                           file_format=fmt)
        r = Run(db, autoflush)
        n = 0
        while r.enospc < 12 and n < 3000:
            r.step()
            n += 1
        assert r.first_full is not None, "format %d %s/%d: volume never filled (%d calls)" % (fmt, kind, bs, n)
        # reads work
        vis = r.visible(r.model)
        assert contents(db) == vis
        for key in list(vis)[:10]:
            assert db.get(key) == vis[key]
        assert len(db.query({"i": {"$gte": 0}})) == len(vis)
        # compact refuses (or succeeds) and loses nothing: ENOSPC from its
        # room check names the bytes needed and free; with autoflush off it
        # may fail earlier, committing the pending calls
        try:
            db.compact()
        except OSError as e:
            assert e.args[0] == ENOSPC and path in str(e), e
            assert ("needs" in str(e) and "free" in str(e)) or not autoflush, e
        assert contents(db) == r.visible(r.model)
        # deletes return or raise ENOSPC cleanly
        for key in sorted(r.visible(r.model))[:3]:
            r.call("delete", lambda: db.delete(key), lambda m: m.pop(key))
        # free space: every kind of write works again
        os.remove(filler)
        for j in range(11):
            assert_ok = r.enospc
            r.step()
            assert r.enospc == assert_ok, "format %d %s/%d: ENOSPC after space was freed (step %d)" % (
                fmt, kind, bs, r.i)
        r.call("compact", db.compact, lambda m: None)  # (MemoryError possible on qemu)
        db.put("last", {"n": 1})
        r.model["last"] = ({"n": 1}, None)
        if autoflush:
            r.durable = dict(r.model)
        r.call("close", db.close, lambda m: None)
        umount()
        mount(kind, dev)
        db = MicroTetherDB(path, in_memory=False, clock=lambda: r.clock[0])
        got = contents(db)
        db.close()
        want = r.visible(r.durable)
        assert got == want, "after reopen: missing %r, extra %r" % (
            sorted(set(want) - set(got)), sorted(set(got) - set(want)))
        return n, r.first_full, r.ok, r.enospc, r.nomem
    finally:
        umount()


def matrix(autoflush):
    # (the modules the calls import on first use, so that the memory check
    # in run_config sees only what the calls leave behind)
    from microtetherdb import chunkstore, compact, query, planner, paths, btpage  # noqa: F401
    import errno  # noqa: F401
    out = []
    for fmt in (2, 1):
        for kind, bs, nb, nbq in CONFIGS:
            if TARGET == "qemu":
                nb = nbq
                if not nb:
                    continue
            calls, full, ok, nos, nomem = run_config(kind, bs, nb, autoflush, fmt)
            out.append("format %d %s/%d x%d: %d calls, full at %d, %d ok, %d ENOSPC, %d MemoryError" % (
                fmt, kind, bs, nb, calls, full, ok, nos, nomem))
    print("full volume (autoflush=%s): %s" % (autoflush, "; ".join(out)))


def test_full_volume_autoflush():
    matrix(True)


def test_full_volume_autoflush_off():
    matrix(False)
