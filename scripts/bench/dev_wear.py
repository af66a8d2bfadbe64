# Flash-wear scenarios (device side). The host driver scripts/bench/wear.py
# concatenates: a line `CFG = {...}`, dev_common.py (emit, doc, tags, clock),
# dev_wear_dev.py (the counting block device) and this file, and runs the
# result in a fresh interpreter. CFG["sc"] picks the scenario:
#   put    durable puts at N records: raw btree+json or MicroTetherDB (part 2)
#   prim   LittleFS / FAT primitive costs (part 3), CFG["only"] = sub-cases
#   proto  one small file per commit, deleted every K commits (part 5)
# Every figure is one line `@@B {"t": "wear", "sc": .., "case": .., ...}` with
# the flash counters per operation (see dev_wear_dev.NAMES) plus "n" (number of
# operations averaged), "max_erases"/"max_pr_bytes" (worst single operation)
# and "erase_ops" (share of operations that erased at least one block).
import os

MP = CFG.get("mp", "/fl")
FS = CFG.get("fs", "lfs")
BS = CFG.get("bs", 4096)
_LABEL = "%s%s" % (FS, "4k" if BS == 4096 else str(BS))
for _k in sorted(CFG.get("fsopts", {})):
    _LABEL += " %s=%s" % (_k, CFG["fsopts"][_k])
REC = b"r" * 4096  # file contents


def fs_mount(n4k):
    # a fresh volume of n4k * 4 KB (nblocks of BS bytes)
    nblocks = n4k * 4096 // BS
    back = None
    if CFG.get("backing") == "ramdisk":  # qemu board: count over its RAM disk
        import ramdisk

        umount("/flash")
        back = ramdisk.RAMDisk()
        nblocks = min(nblocks, back.ioctl(4, 0))
    return mount(FS, MP, nblocks=nblocks, bs=BS, backing=back, **CFG.get("fsopts", {}))


def out(case, d, extra=None):
    d["t"] = "wear"
    d["sc"] = CFG["sc"]
    d["fs"] = _LABEL
    d["case"] = case
    if extra:
        for k in extra:
            d[k] = extra[k]
    emit(d)


def ops(dev, n, fn, pre=None, split=None):
    # run fn(i) for i in 0..n-1 (pre(i) first, not counted): counters per op
    # plus the worst single op; split(i) true: op i also counted apart
    # ("sp_n", "sp_pr_bytes", "sp_erases", "sp_er_bytes", "sp_pr_cmds")
    c = dev.c
    k = len(c)
    tot = [0] * k
    sp = [0] * k
    nsp = 0
    mxe = 0
    mxp = 0
    ne = 0
    for i in range(n):
        if pre is not None:
            pre(i)
        a = list(c)
        fn(i)
        for j in range(k):
            tot[j] += c[j] - a[j]
        if split is not None and split(i):
            nsp += 1
            for j in range(k):
                sp[j] += c[j] - a[j]
        e = c[5] - a[5]
        p = c[3] - a[3]
        if e:
            ne += 1
            if e > mxe:
                mxe = e
        if p > mxp:
            mxp = p
    d = {}
    for j in range(k):
        d[NAMES[j]] = tot[j] / n
    d["n"] = n
    d["max_erases"] = mxe
    d["max_pr_bytes"] = mxp
    d["erase_ops"] = ne / n
    if split is not None:
        d["sp_n"] = nsp
        for j in (2, 3, 4, 5, 6):
            d["sp_" + NAMES[j]] = sp[j] / nsp if nsp else 0
    return d


def used_blocks():
    st = os.statvfs(MP)
    return st[2] - st[3]


def wfile(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def wdata(path, size, mode="wb"):
    # a file of `size` bytes written in chunks of at most 4 KB (small heaps)
    with open(path, mode) as f:
        while size > 0:
            k = size if size < 4096 else 4096
            f.write(REC if k == 4096 else REC[:k])
            size -= k


def files_size(d=None):
    # bytes in the files of the volume (a format-2 database is a folder)
    d = d or MP
    t = 0
    for name in os.listdir(d):
        st = os.stat(d + "/" + name)
        t += files_size(d + "/" + name) if st[0] & 0x4000 else st[6]
    return t


# --- part 2: durable puts at N records ------------------------------------
def copy(src, dst):
    # a file, or a database folder (format 2), then the source is removed
    if src == dst:
        return
    if os.stat(src)[0] & 0x4000:
        os.mkdir(dst)
        for name in os.listdir(src):
            copy(src + "/" + name, dst + "/" + name)
        os.rmdir(src)
        return
    buf = bytearray(4096)
    with open(src, "rb") as a:
        with open(dst, "wb") as b:
            while True:
                k = a.readinto(buf)
                if not k:
                    break
                b.write(buf if k == 4096 else buf[:k])
    os.remove(src)


_P = 7919


def put_main():
    import gc

    t0 = time.ticks_ms()
    n = CFG["n"]
    m = CFG.get("ops", 200)
    impl = CFG["impl"]
    var = CFG.get("var", "plain")
    dev = fs_mount(CFG["nblocks"])
    path = MP + "/bench.db"
    # CFG["tmp"]: fill the file on the host filesystem (fast), then copy it
    # onto the counted volume in one sequential write. On LittleFS a fill in
    # place costs O(N^2) (every scattered page write copies the file's tail);
    # the measured puts run on the copy, whose content is the same.
    fpath = CFG["tmp"] + "/bench.db" if CFG.get("tmp") else path
    tagged = var in ("tagttl", "tagfill")
    fillt = var == "tagfill"
    keys = [None] * n
    if impl == "raw":
        import btree
        import json

        f = open(fpath, "w+b")
        h = btree.open(f, pagesize=512, cachesize=4096)
        for i in range(n):
            k = "r%08d" % i
            keys[i] = k
            h[k] = json.dumps(doc(i))
            if i % 100 == 99:
                h.flush()
        h.close()
        f.close()
        copy(fpath, path)
        f = open(path, "r+b")
        h = btree.open(f, pagesize=512, cachesize=4096)

        def one(i):
            if i % 4 == 3:
                k = keys[(i * _P) % n]
            else:
                k = "r%08d" % (n + i)
            h[k] = json.dumps(doc(n + i))
            if h.flush() == -1:
                raise OSError("flush failed")

        def close():
            h.close()
            f.close()
    else:
        from microtetherdb import MicroTetherDB

        # impl "db": format 2 (a folder of chunks and a commit log, the
        # default); "db1": format 1 (one btree file)
        kw = {"filename": fpath, "in_memory": False, "clock": clock,
              "file_format": 1 if impl == "db1" else 2}
        db = MicroTetherDB(autoflush=False, **kw)
        for i in range(n):
            if fillt:
                keys[i] = db.put(doc(i), ttl=3600, tags=tags(i))
            else:
                keys[i] = db.put(doc(i))
            if i % 100 == 99:
                db.flush()
        db.close()
        copy(fpath, path)
        kw["filename"] = path
        db = MicroTetherDB(**kw)  # file mode default: autoflush, a durable put
        ttl = 3600 if tagged else None

        def one(i):
            tg = tags(n + i) if tagged else None
            if i % 4 == 3:
                db.put(keys[(i * _P) % n], doc(n + i), ttl=ttl, tags=tg)
            else:
                db.put(doc(n + i), ttl=ttl, tags=tg)

        def close():
            db.close()

    size0 = files_size()
    gc.collect()
    t1 = time.ticks_ms()
    d = ops(dev, m, one, split=lambda i: i % 4 == 3)  # apart: the overwrites
    close()
    t2 = time.ticks_ms()
    out("put", d, {"impl": impl, "var": var, "records": n, "file_bytes": size0,
                   "file_bytes_end": files_size(), "used_blocks": used_blocks(),
                   "nblocks": CFG["nblocks"], "wear_max": dev.max_wear(),
                   "fill_s": time.ticks_diff(t1, t0) / 1000, "run_s": time.ticks_diff(t2, t1) / 1000})
    umount(MP)


# --- part 3: primitives -----------------------------------------------------


def prim_create_size(sizes, count):
    # create+close `count` new files of each size in a fresh directory
    for s in sizes:
        dev = fs_mount(512)
        os.mkdir(MP + "/d")
        data = REC[:s]
        u0 = used_blocks()
        first = ops(dev, 1, lambda i: wfile(MP + "/d/f%05d" % i, data))
        d = ops(dev, count - 1, lambda i: wfile(MP + "/d/f%05d" % (i + 1), data))
        out("create", d, {"size": s, "first_pr_bytes": first["pr_bytes"],
                          "first_erases": first["erases"],
                          "blocks_per_file": (used_blocks() - u0) / count})
        umount(MP)


def prim_inline_limit(lo, hi):
    # largest file size that allocates no block (stored inline in its directory)
    dev = fs_mount(512)
    limit = None
    for s in range(lo, hi + 1):
        p = MP + "/i%d" % s
        u0 = used_blocks()
        wfile(p, REC[:s])
        if used_blocks() == u0:
            limit = s
        os.remove(p)
    out("inline_limit", {"limit": limit, "lo": lo, "hi": hi})
    umount(MP)


def prim_rewrite(sizes, count):
    # rewrite one existing small file (open "wb", write, close)
    for s in sizes:
        dev = fs_mount(512)
        p = MP + "/r"
        data = REC[:s]
        wfile(p, data)
        d = ops(dev, count, lambda i: wfile(p, data))
        out("rewrite", d, {"size": s})
        umount(MP)


def prim_append(starts, sizes, count):
    # append `a` bytes to a file of `s0` bytes: reopen+write+close, or one open
    # file with write+flush
    for s0 in starts:
        for a in sizes:
            for how in ("close", "flush"):
                dev = fs_mount(512)
                p = MP + "/log"
                wdata(p, s0)
                data = REC[:a]
                if how == "close":
                    d = ops(dev, count, lambda i: wfile(p, data, "ab"))
                else:
                    f = open(p, "ab")

                    def app(i):
                        f.write(data)
                        f.flush()

                    d = ops(dev, count, app)
                    f.close()
                out("append_" + how, d, {"start": s0, "size": a})
                umount(MP)


def prim_many(where, total, bucket):
    # create `total` small files in one directory, cost per bucket of creates;
    # listing and reading them all; deleting them, cost per bucket of deletes
    # (4 MB: on FAT every file takes a whole cluster)
    dev = fs_mount(1024)
    wdata(MP + "/bench.db", 65536)  # a 64 KB data file beside them
    d0 = MP if where == "root" else MP + "/log"
    if where != "root":
        os.mkdir(d0)
    data = REC[:100]
    for b in range(0, total, bucket):
        d = ops(dev, bucket, lambda i: wfile(d0 + "/L%07d" % (b + i), data))
        out("many_create", d, {"dir": where, "files_before": b})
    s0 = dev.snap()
    names = os.listdir(d0)
    out("many_listdir", dev.delta(s0), {"dir": where, "files": len(names)})
    s0 = dev.snap()
    buf = bytearray(100)
    for nm in names:
        if nm.startswith("L"):
            with open(d0 + "/" + nm, "rb") as f:
                f.readinto(buf)
    out("many_readall", dev.delta(s0, total), {"dir": where, "files": total})
    for b in range(0, total, bucket):
        d = ops(dev, bucket, lambda i: os.remove(d0 + "/L%07d" % (b + i)))
        out("many_delete", d, {"dir": where, "files_before": total - b, "first": b})
    umount(MP)


def prim_rename(count):
    dev = fs_mount(512)
    p = MP + "/m"
    wfile(p, REC[:100])

    def mv(i):
        q = MP + "/m%d" % (i & 1)
        os.rename(p if i == 0 else MP + "/m%d" % ((i - 1) & 1), q)

    out("rename_small", ops(dev, count, mv), {"size": 100})

    def switch(i):  # new small manifest, renamed over the old one
        wfile(MP + "/man.new", REC[:64])
        os.rename(MP + "/man.new", MP + "/man")

    wfile(MP + "/man", REC[:64])
    out("manifest_switch", ops(dev, count, switch), {"size": 64})
    wdata(MP + "/big", 65536)

    def mvbig(i):
        os.rename(MP + "/big" if i % 2 == 0 else MP + "/big2",
                  MP + "/big2" if i % 2 == 0 else MP + "/big")

    out("rename_big", ops(dev, count, mvbig), {"size": 65536})
    umount(MP)


def prim_segment(sizes, count):
    # one segment file of s bytes: rewritten in place, truncated and
    # rewritten, or written as a new file and renamed over the old one
    for s in sizes:
        for how in ("inplace", "truncate", "newrename", "newname"):
            dev = fs_mount(512)
            wdata(MP + "/bench.db", 65536)
            p = MP + "/seg0"
            u = used_blocks()
            wdata(p, s)
            u = used_blocks() - u
            if how == "inplace":
                def fn(i):
                    wdata(p, s, "r+b")
            elif how == "truncate":
                def fn(i):
                    wdata(p, s)
            elif how == "newrename":
                def fn(i):
                    wdata(p + ".new", s)
                    os.rename(p + ".new", p)
            else:
                def fn(i):  # write seg<i+1>, delete seg<i>
                    wdata(MP + "/seg%d" % (i + 1), s)
                    os.remove(MP + "/seg%d" % i)
            d = ops(dev, count, fn)
            out("segment_" + how, d, {"size": s, "blocks": u})
            umount(MP)


def prim_midpage(blocks, page, count):
    # write one page at the start / middle / end of a file of b blocks' data
    for b in blocks:
        for where in ("start", "mid", "end"):
            dev = fs_mount(max(512, 3 * b + 64))
            p = MP + "/f"
            size = b * 4096
            wdata(p, size)
            off = {"start": 0, "mid": (size // 2) & ~(page - 1), "end": size - page}[where]
            data = REC[:page]

            def fn(i):
                with open(p, "r+b") as f:
                    f.seek(off)
                    f.write(data)

            out("page_write", ops(dev, count, fn), {"file_blocks": b, "where": where,
                                                    "page": page, "offset": off})
            umount(MP)


def prim_delete_big(count):
    # delete a 64 KB file (writing it again before each delete is not counted)
    dev = fs_mount(512)
    p = MP + "/big"
    d = ops(dev, count, lambda i: os.remove(p), lambda i: wdata(p, 65536))
    out("delete_big", d, {"size": 65536})
    umount(MP)


def prim_main():
    only = CFG.get("only") or ("inline_limit", "create", "rewrite", "append", "many",
                               "rename", "segment", "page_write", "delete_big")
    cnt = CFG.get("count", 32)
    for case in only:
        if case == "inline_limit":
            if FS == "lfs":
                prim_inline_limit(CFG.get("lim_lo", 96), CFG.get("lim_hi", 640))
        elif case == "create":
            prim_create_size(CFG.get("sizes", (16, 32, 64, 96, 100, 128, 129, 160, 256, 512)), 64)
        elif case == "rewrite":
            prim_rewrite(CFG.get("rw_sizes", (16, 100, 128, 200)), 4 * cnt)
        elif case == "append":
            prim_append(CFG.get("app_starts", (0, 1000, 4096, 16384, 65536)),
                        CFG.get("app_sizes", (32, 100, 512)), 2 * cnt)
        elif case == "many":
            for where in ("log", "root"):
                prim_many(where, CFG.get("many", 500), 50)
        elif case == "rename":
            prim_rename(cnt)
        elif case == "segment":
            prim_segment(CFG.get("seg_sizes", (1024, 4096, 8188, 8192, 16384)), cnt)
        elif case == "page_write":
            prim_midpage(CFG.get("page_blocks", (1, 2, 4, 8, 16, 32, 64)), 512, 8)
        elif case == "delete_big":
            prim_delete_big(16)


# --- part 5: one small file per commit --------------------------------------
def proto_main():
    import struct
    from binascii import crc32

    n = CFG.get("commits", 500)
    rs = CFG.get("rec", 100)  # record bytes, 12-byte header (seq, size, crc32) included
    body = REC[:rs - 12]
    for K in CFG.get("ks", (0, 16, 64, 256)):
        for how in CFG.get("hows", ("files", "append", "ring")):
            if how == "ring" and not K:
                continue
            dev = fs_mount(CFG.get("nblocks", 1024))
            wdata(MP + "/bench.db", 65536)  # the database file beside the log
            d0 = MP + "/log"
            os.mkdir(d0)
            live = []
            f = [None]
            hdr = bytearray(12)

            def rec(i):
                struct.pack_into("<III", hdr, 0, i, rs, crc32(body, i))
                return bytes(hdr) + body

            if how == "ring":  # K slot files rewritten in turn, never deleted
                def commit(i):
                    wfile(d0 + "/%02x" % (i % K), rec(i))
            elif how == "files":
                def commit(i):
                    p = d0 + "/%08x" % i
                    wfile(p, rec(i))
                    live.append(p)
                    if K and len(live) == K:  # checkpoint done: drop the log
                        for q in live:
                            os.remove(q)
                        live.clear()
            else:  # one log file, append + flush; recreated at each checkpoint
                f[0] = open(d0 + "/log", "wb")

                def commit(i):
                    f[0].write(rec(i))
                    f[0].flush()
                    if K and (i + 1) % K == 0:
                        f[0].close()
                        f[0] = open(d0 + "/log", "wb")

            half = n // 2
            d1 = ops(dev, half, commit)
            d2 = ops(dev, n - half, lambda i: commit(i + half))
            if f[0] is not None:
                f[0].close()
            allc = {}
            for k in NAMES:
                allc[k] = (d1[k] * half + d2[k] * (n - half)) / n
            allc["n"] = n
            allc["max_erases"] = max(d1["max_erases"], d2["max_erases"])
            allc["max_pr_bytes"] = max(d1["max_pr_bytes"], d2["max_pr_bytes"])
            allc["erase_ops"] = (d1["erase_ops"] * half + d2["erase_ops"] * (n - half)) / n
            ex = {"how": how, "K": K, "rec": rs, "commits": n, "wear_max": dev.max_wear()}
            out("proto_all", allc, ex)
            out("proto_steady", d2, ex)
            umount(MP)


try:
    sc = CFG["sc"]
    if sc == "put":
        put_main()
    elif sc == "prim":
        prim_main()
    elif sc == "proto":
        proto_main()
    else:
        raise ValueError("unknown scenario %r" % sc)
except Exception as e:
    err(CFG["sc"], e)
    import sys

    sys.print_exception(e)
emit({"t": "end"})
