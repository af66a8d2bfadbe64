# Power-cut harness against RAW btree (no MicroTetherDB): what do btree.flush()
# and the filesystem's commit guarantee? A RAM block device counts every write
# event (LittleFS prog/erase, FAT sector write) and cuts the power at the N-th:
# the durable image keeps every earlier write (and, when torn, the first half
# of the N-th); the running program still sees its own writes so the current
# call can finish. The filesystem is then remounted from the durable image and
# the btree file reopened and compared with the acknowledged states.
#
# Finding (asserted below): on LittleFS a btree file is exactly the state of its
# last btree.flush() (LittleFS commits a file's new contents atomically at
# sync, which btree.flush() calls), so every flush is an atomic commit. On FAT
# sectors are overwritten in place: a cut inside a flush leaves a mix of old
# and new pages, i.e. a corrupt btree (detected by microtetherdb.btpage.check,
# which reads the pages in Python so a broken file cannot crash btree); through
# microtetherdb's file layer (filestore.FileStore: redo journal on FAT) every
# commit is atomic again.
import btree
import vfs
import os
import gc

BS = 512
MP = "/pc_raw"
NBLOCKS_QEMU = 64  # 32 KB filesystem on qemu (heap)
STEP_QEMU = 8  # qemu is slower: every 8th cut point there

from microtetherdb.btpage import check as _check
from microtetherdb import filestore


# uses: powercut_dev  (the block device Dev, appended by the harness)


def val(i, n):
    # deterministic value of n bytes
    return (b"%05d:" % i) * (n // 6 + 1)


def make_ops():
    # list of transactions; each is a list of (key, value or None=delete),
    # applied and then committed with one btree.flush()
    ops = []
    for i in range(8):
        ops.append([(b"k%02d" % i, val(i, 20 + 13 * i))])
    ops.append([(b"b%02d" % i, val(100 + i, 40)) for i in range(6)])  # batch
    ops.append([(b"k01", val(200, 900))])  # overflow value
    ops.append([(b"k03", None)])
    ops.append([(b"k05", val(201, 30)), (b"b02", None), (b"b03", None)])
    ops.append([(b"k01", val(202, 10))])  # overflow page freed
    for i in range(8, 14):
        ops.append([(b"k%02d" % i, val(i, 60))])
    ops.append([(b"k%02d" % i, None) for i in range(8, 12)])
    ops.append([(b"big", val(300, 1500))])
    return ops


OPS = make_ops()


def run(kind, image, cut_at, torn, jnl=False):
    # run the workload; return (allowed states, stopped early?)
    dev = new_dev(image)
    dev.cut_at = cut_at
    dev.torn = torn
    mount(kind, dev)
    model = {}
    allowed = None
    filestore.forget()
    st = None
    try:
        if jnl:
            st = filestore.FileStore(MP + "/t.db", 512, 2048)
            db = st.bt
            flush = st.commit
        else:
            f = open(MP + "/t.db", "w+b")
            db = btree.open(f, pagesize=512, cachesize=2048)
            flush = db.flush
        flush()
        if dev.undo is not None:
            allowed = [{}]
        else:
            for tx in OPS:
                new = dict(model)
                for k, v in tx:
                    if v is None:
                        del db[k]
                        del new[k]
                    else:
                        db[k] = v
                        new[k] = v
                flush()
                if dev.undo is not None:
                    allowed = [model, new]
                    break
                model = new
        if jnl:
            st.close()
        else:
            db.close()
            f.close()
        if allowed is None:
            allowed = [model]
    finally:
        umount()
    dev.total = dev.count
    dev.power_cut()
    return dev, allowed


def verify(kind, dev, allowed, jnl=False):
    # 'ok', 'mount', 'open' (corrupt / cannot open) or 'lost'
    try:
        mount(kind, dev)
    except OSError:
        return "mount"
    filestore.forget()
    try:
        if jnl:
            filestore.recover(MP + "/t.db")
        try:
            f = open(MP + "/t.db", "r+b")
        except OSError:
            return "ok" if {} in allowed else "open"
        f.seek(0, 2)
        empty = f.tell() == 0
        f.seek(0)
        if not empty:
            try:
                _check(f, "t.db")
            except Exception:
                f.close()
                return "open"
        if jnl:
            f.close()
            st = filestore.FileStore(MP + "/t.db", 512, 0)
            db = st.bt
        else:
            db = btree.open(f, pagesize=512)
        got = {}
        for k, v in db.items():
            got[k] = v
        state = "ok" if got in allowed else "lost"
        db[b"new"] = b"after the cut"
        if jnl:
            st.close()
        else:
            db.flush()
            db.close()
            f.close()
        return state
    finally:
        umount()


def sweep(kind, nblocks, torn, jnl=False):
    if TARGET == "qemu":
        nblocks = NBLOCKS_QEMU
    image = fresh_image(kind, nblocks)
    dev, allowed = run(kind, image, 0, False, jnl)  # count the writes
    total = dev.total
    dev, allowed = run(kind, image, total + 1, False, jnl)
    assert verify(kind, dev, allowed, jnl) == "ok"
    dev.close()
    res = {"ok": 0, "mount": 0, "open": 0, "lost": 0}
    tried = 0
    step = STEP_QEMU if TARGET == "qemu" else 1
    for n in range(1 + (step >> 1), total + 1, step):
        dev, allowed = run(kind, image, n, torn, jnl)
        res[verify(kind, dev, allowed, jnl)] += 1
        dev.close()
        tried += 1
        if n % 50 == 0:
            gc.collect()
    print("raw btree %s%s torn=%s: write events %d, cut points %d, ok %d, mount fail %d, "
          "open/corrupt %d, lost %d" % (kind, " + journal" if jnl else "", torn, total, tried, res["ok"], res["mount"],
                                         res["open"], res["lost"]))
    return total, tried, res


def test_raw_btree_littlefs_every_cut():
    total, tried, res = sweep("lfs", 128, False)
    assert tried > (6 if TARGET == "qemu" else 50), total
    assert res["ok"] == tried, res


def test_raw_btree_littlefs_torn_writes():
    total, tried, res = sweep("lfs", 128, True)
    assert tried > (6 if TARGET == "qemu" else 50), total
    assert res["ok"] == tried, res


def test_raw_btree_fat_is_not_atomic():
    # characterisation: the harness must SEE damage on FAT (else it is blind)
    total, tried, res = sweep("fat", 128, False)
    assert tried > (6 if TARGET == "qemu" else 50), total
    assert res["ok"] < tried, res


def test_raw_btree_fat_with_journal():
    # microtetherdb's file layer (redo journal) makes each commit atomic on FAT
    total, tried, res = sweep("fat", 128, False, True)
    assert tried > (6 if TARGET == "qemu" else 50), total
    assert res["ok"] == tried, res


def test_raw_btree_fat_with_journal_torn():
    total, tried, res = sweep("fat", 128, True, True)
    assert res["ok"] == tried, res
