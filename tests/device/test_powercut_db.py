# Power cut at every write of a MicroTetherDB workload, on LittleFS (what an
# ESP32 uses) and on FAT (SD cards; the journal in microtetherdb/journal.py).
#
# A RAM block device counts every write event (LittleFS prog/erase, FAT
# sector write). The workload (puts, generated keys, overwrites incl. overflow
# pages, deletes, batches, TTL expiry + cleanup, tags, a secondary index,
# compaction, purge) runs once to
# count the events, then once per cut point N: the device keeps only the
# writes before N (torn variant: plus half of the N-th), the filesystem is
# remounted, the database reopened and checked:
#   * it opens (a CorruptDBError or any exception counts as an open failure);
#   * its contents equal the state after the last acknowledged call, or after
#     the call that was running when the power went (all of it: batches are
#     all-or-nothing) -- so nothing acknowledged is lost, nothing deleted
#     reappears, no half batch;
#   * len(), get(), keys() and equality queries on every value of the
#     indexed field agree with the records (so the index does);
#   * it accepts a new write that survives close + reopen.
# Contract checked: file mode with the default autoflush, so every write call
# is durable when it returns. Budget: every cut point on unix, every 4th on
# qemu (much slower).
# timeout: 900  (every 4th cut point of 16 sweeps: ~6 minutes on the qemu board)
import vfs
import gc
from microtetherdb import MicroTetherDB, chunkstore, filestore

FMT = [2]

BS = 512
MP = "/pc_db"
NBLOCKS = 128  # 64 KB filesystem
NBLOCKS_QEMU = 64  # 32 KB filesystem on qemu (heap)
NBLOCKS_QEMU_F2 = 96  # format 2 on qemu: FAT12's root directory takes 16 KB of
#                       32 and the log slots a cluster each; LittleFS's log
#                       subfolders take 2 blocks each
STEP_QEMU = 4  # qemu is slower: every 4th cut point there
PATH = MP + "/data/t.db"


# uses: powercut_dev  (the block device Dev, appended by the harness)


T0 = 1000000


def visible(m, now):
    out = {}
    for k in m:
        d, e = m[k]
        if e is None or e > now:
            out[k] = d
    return out


# --- the workload: each op(db, m, clk) applies one API call to db and the
# same change to the model m (key -> (doc, expiry)); clk = [now]


def op_put(i):
    def f(db, m, clk):
        k = "k%d" % i
        d = {"n": i, "s": "v" * (8 * i)}
        assert db.put(k, d) == k
        m[k] = (d, None)
    return f


def op_gen(db, m, clk):
    d = {"n": 100, "g": True}
    k = db.put(d)
    m[k] = (d, None)


def op_batch(db, m, clk):
    items = [("b%d" % i, {"n": 200 + i, "t": "batch"}) for i in range(6)]
    keys = db.put_batch(items)
    assert len(keys) == 6
    for k, d in items:
        m[k] = (d, None)


def op_big(db, m, clk):
    d = {"n": 1, "s": "w" * 900}  # overflow pages
    db.put("k1", d)
    m["k1"] = (d, None)


def op_shrink(db, m, clk):
    d = {"n": 1}
    db.put("k1", d)  # its overflow pages are freed
    m["k1"] = (d, None)


def op_del(db, m, clk):
    assert db.delete("k2") == 1
    del m["k2"]


def op_delb(db, m, clk):
    assert db.delete_batch(["b1", "b2", "nope"]) == 2
    del m["b1"]
    del m["b2"]


def op_ttl(db, m, clk):
    db.put("t1", {"n": 300}, ttl=10)
    m["t1"] = ({"n": 300}, clk[0] + 10)


def op_ttlb(db, m, clk):
    items = [("t%d" % i, {"n": 300 + i}) for i in range(2, 5)]
    db.put_batch(items, ttls=10)
    for k, d in items:
        m[k] = (d, clk[0] + 10)


def op_tick(db, m, clk):
    clk[0] += 30  # the TTL records expire: invisible at once, no write


def op_cleanup(db, m, clk):
    assert db.cleanup() == 4
    for k in list(m):
        if m[k][1] is not None and m[k][1] <= clk[0]:
            del m[k]


def op_tags(db, m, clk):
    d = {"n": 400}
    db.put("tg", d, tags=["red", "x"])
    m["tg"] = (d, None)


def op_over(db, m, clk):
    d = {"n": 3, "s": "changed"}
    db.put("k3", d)
    m["k3"] = (d, None)


def op_purge(db, m, clk):
    assert db.delete(purge=True) == 1
    m.clear()


def op_compact(db, m, clk):
    db.compact()


def op_index(db, m, clk):
    db.create_index("n")  # queries on n now go through the index


OPS = [op_put(0), op_put(1)]
if hasattr(MicroTetherDB, "create_index"):
    OPS.append(op_index)
OPS += [op_put(2), op_put(3), op_gen, op_batch, op_big,
       op_del, op_ttl, op_ttlb, op_delb, op_shrink, op_tick, op_cleanup,
       op_tags, op_over, op_put(5)]
if hasattr(MicroTetherDB, "compact"):
    OPS.append(op_compact)
OPS += [op_put(6), op_purge, op_put(7), op_batch]


# autoflush=False variant: data calls only (purge, compact and index builds
# commit by themselves), flush() after every GROUP calls
GROUP_OPS = [op_put(0), op_put(1), op_put(2), op_put(3), op_gen, op_batch, op_big,
             op_del, op_ttl, op_ttlb, op_delb, op_shrink, op_tick, op_cleanup,
             op_tags, op_over, op_put(5), op_put(6)]
GROUP = 3


def run_grouped(db, dev, clk):
    # calls between two flush() calls form one all-or-nothing group
    # -> (allowed states if the power was cut, else None; final state)
    flushed = {}
    cur = {}
    for i in range(len(GROUP_OPS)):
        new = dict(cur)
        GROUP_OPS[i](db, new, clk)
        cur = new
        if dev.undo is not None:
            return [flushed], cur  # cut before the group's flush began
        if (i + 1) % GROUP == 0 or i == len(GROUP_OPS) - 1:
            db.flush()
            if dev.undo is not None:
                return [flushed, cur], cur
            flushed = cur
    return None, cur


def run(kind, image, cut_at, torn, grouped=False):
    # -> (dev, total write events, allowed model states, clock at the end)
    filestore.forget()  # a power cut: nothing of the last run is open any more
    dev = new_dev(image)
    dev.cut_at = cut_at
    dev.torn = torn
    mount(kind, dev)
    clk = [T0]
    model = {}
    allowed = None
    try:
        db = MicroTetherDB(PATH, in_memory=False, clock=lambda: clk[0], autoflush=not grouped, file_format=FMT[0])
        if dev.undo is not None:
            allowed = [{}]
        elif grouped:
            allowed, model = run_grouped(db, dev, clk)
        else:
            for op in OPS:
                new = dict(model)
                op(db, new, clk)
                if dev.undo is not None:
                    allowed = [model, new]
                    break
                model = new
        db.close()
        if allowed is None:
            allowed = [model]
    finally:
        umount()
    total = dev.count
    dev.power_cut()
    return dev, total, allowed, clk[0]


def verify(kind, dev, allowed, now):
    # -> ("ok" | "mount" | "open" | "lost" | "bad", detail)
    filestore.forget()
    try:
        mount(kind, dev)
    except OSError as e:
        return "mount", repr(e)
    try:
        clock = lambda: now
        try:
            db = MicroTetherDB(PATH, in_memory=False, clock=clock, file_format=FMT[0])
        except Exception as e:
            return "open", repr(e)
        if kind == "fat" and FMT[0] == 1:  # the journal must have been chosen for FAT
            assert db._st.pager.fat, "FAT not detected"
        if FMT[0] == 2:  # the log's layout the sweep meant to test
            want_group = chunkstore.GROUP if kind == "lfs" and chunkstore.GROUP_MIN == 0 else 0
            assert db._st.group == want_group, "log slots: %d per subfolder" % db._st.group
        rec = getattr(db._st, "recovered", None)
        if rec:
            RECOVERED[rec] = RECOVERED.get(rec, 0) + 1
        try:
            got = {}
            for k, d in db.items():
                got[k] = d
            want = None
            for a in allowed:
                v = visible(a, now)
                if v == got:
                    want = v
            if want is None:
                return "lost", "got %r want one of %r" % (sorted(got), [sorted(visible(a, now)) for a in allowed])
        except Exception as e:
            db.close()
            return "lost", repr(e)
        try:
            assert len(db) == len(got), (len(db), len(got))
            assert list(db.keys()) == sorted(got), "keys() order"
            for k in got:
                assert db.get(k) == got[k], k
            # equality queries (through the index on n once it exists)
            ns = {}
            for k in got:
                v = got[k]["n"]
                ns[v] = ns.get(v, 0) + 1
            for v in ns:
                assert len(db.query({"n": v})) == ns[v], ("query n", v)
            assert db.query({"n": 12345}) == []
            db.put("zz", {"n": -1})
            db.close()
            db = MicroTetherDB(PATH, in_memory=False, clock=clock, file_format=FMT[0])
            assert db.get("zz") == {"n": -1}
            assert len(db) == len(got) + 1
        except Exception as e:
            return "bad", repr(e)
        finally:
            db.close()
        return "ok", None
    finally:
        umount()


RECOVERED = {}


def sweep(kind, torn, grouped=False, spill=False, fmt=2, subfolders=True):
    # fmt: the file format (2: chunks and a commit log, the default for new
    # databases; 1: one btree file, the format of databases made before).
    # spill: no RAM for the pages written between commits, so every page
    # btree writes goes to the file at once (format 1 LittleFS), to the
    # journal / past the durable end (format 1 FAT), or into the chunk being
    # prepared (format 2): the paths large batches take.
    # subfolders: format 2 on LittleFS keeps its log slots in subfolders of
    # l/ as on a volume of GROUP_MIN blocks or more (a real ESP32 partition;
    # this test volume is smaller); False: all in l/, as on small volumes
    old = filestore.BUDGET, chunkstore.BUDGET, chunkstore.GROUP_MIN
    if spill:
        filestore.BUDGET = chunkstore.BUDGET = 0
    if subfolders:
        chunkstore.GROUP_MIN = 0
    FMT[0] = fmt
    try:
        return _sweep(kind, torn, grouped, spill)
    finally:
        filestore.BUDGET, chunkstore.BUDGET, chunkstore.GROUP_MIN = old


def _sweep(kind, torn, grouped, spill):
    nblocks = NBLOCKS
    if TARGET == "qemu":
        nblocks = NBLOCKS_QEMU_F2 if FMT[0] == 2 else NBLOCKS_QEMU
    RECOVERED.clear()
    image = fresh_image(kind, nblocks)
    dev, total, allowed, now = run(kind, image, 0, False, grouped)
    assert verify(kind, dev, allowed, now)[0] == "ok"
    dev.close()
    res = {"ok": 0, "mount": 0, "open": 0, "lost": 0, "bad": 0}
    first = {}
    tried = 0
    step = STEP_QEMU if TARGET == "qemu" else 1
    for n in range(1 + (step >> 1), total + 1, step):
        dev, t, allowed, now = run(kind, image, n, torn, grouped)
        r, why = verify(kind, dev, allowed, now)
        dev.close()
        res[r] += 1
        if r != "ok" and r not in first:
            first[r] = (n, why)
        tried += 1
        if n % 20 == 0:
            gc.collect()
    print("MicroTetherDB (format %d) on %s%s%s%s: write events %d, cut points tried %d, opens failed %d "
          "(mount %d), acknowledged-state mismatches %d, inconsistent/unusable %d" % (
              FMT[0], "LittleFS" if kind == "lfs" else ("FAT (journal)" if FMT[0] == 1 else "FAT"),
              " torn writes" if torn else "",
              ", autoflush=False + flush() every %d calls" % GROUP if grouped else "",
              ", pages never held in RAM" if spill else "", total, tried, res["open"] + res["mount"], res["mount"], res["lost"], res["bad"]))
    if RECOVERED:
        print("  journal at reopen: %r" % RECOVERED)
    for r in first:
        print("  first %s at cut %d: %s" % (r, first[r][0], first[r][1]))
    return total, tried, res


def test_db_littlefs_cut_at_every_write():
    total, tried, res = sweep("lfs", False)
    assert tried > (15 if TARGET == "qemu" else 60), total
    assert res["ok"] == tried, res


def test_db_littlefs_torn_writes():
    total, tried, res = sweep("lfs", True)
    assert res["ok"] == tried, res


def test_db_littlefs_log_without_subfolders():
    # a small volume's layout (every log slot in l/)
    total, tried, res = sweep("lfs", True, subfolders=False)
    assert tried > (15 if TARGET == "qemu" else 60), total
    assert res["ok"] == tried, res


def test_db_fat_cut_at_every_write():
    total, tried, res = sweep("fat", False)
    assert tried > (15 if TARGET == "qemu" else 60), total
    assert res["ok"] == tried, res


def test_db_fat_torn_writes():
    total, tried, res = sweep("fat", True)
    assert res["ok"] == tried, res


def test_db_littlefs_autoflush_off_groups():
    # durable at flush(); the calls since the last flush are all lost or
    # (if the cut hit the flush) all kept
    total, tried, res = sweep("lfs", False, True)
    assert tried > (15 if TARGET == "qemu" else 60), total
    assert res["ok"] == tried, res


def test_db_fat_autoflush_off_groups():
    total, tried, res = sweep("fat", False, True)
    assert res["ok"] == tried, res


def test_db_littlefs_pages_spilled():
    total, tried, res = sweep("lfs", True, False, True)
    assert res["ok"] == tried, res


def test_db_fat_pages_spilled():
    total, tried, res = sweep("fat", True, False, True)
    assert res["ok"] == tried, res


def test_db_fat_spilled_autoflush_off():
    total, tried, res = sweep("fat", False, True, True)
    assert res["ok"] == tried, res


# format 1 (a single btree file: databases made before format 2, or
# file_format=1): the same workload, every cut point


def test_format1_littlefs_cut_at_every_write():
    total, tried, res = sweep("lfs", False, fmt=1)
    assert tried > (20 if TARGET == "qemu" else 100), total
    assert res["ok"] == tried, res


def test_format1_littlefs_torn_writes():
    total, tried, res = sweep("lfs", True, fmt=1)
    assert res["ok"] == tried, res


def test_format1_fat_journal_cut_at_every_write():
    total, tried, res = sweep("fat", False, fmt=1)
    assert tried > (20 if TARGET == "qemu" else 100), total
    assert res["ok"] == tried, res


def test_format1_fat_journal_torn_writes():
    total, tried, res = sweep("fat", True, fmt=1)
    assert res["ok"] == tried, res


def test_format1_autoflush_off_groups():
    total, tried, res = sweep("lfs", False, True, fmt=1)
    assert res["ok"] == tried, res
    total, tried, res = sweep("fat", False, True, fmt=1)
    assert res["ok"] == tried, res


def test_format1_pages_spilled():
    total, tried, res = sweep("lfs", True, False, True, fmt=1)
    assert res["ok"] == tried, res
    total, tried, res = sweep("fat", True, False, True, fmt=1)
    assert res["ok"] == tried, res
    total, tried, res = sweep("fat", False, True, True, fmt=1)
    assert res["ok"] == tried, res
