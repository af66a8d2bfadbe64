#!/usr/bin/env python3
"""Flash-wear benchmark driver (host side, CPython 3.11).

Runs the device scenarios of dev_wear.py in the built MicroPython -- the unix
port (default) or the qemu board -- each in a fresh interpreter, over a RAM
block device with ESP32 flash geometry that counts the flash traffic
(dev_wear_dev.py: bytes programmed, program commands, blocks erased, bytes
read). Collects the `@@B {json}` lines (as run.py does) and prints markdown
tables with a flash-time estimate (see FLASH below).

Scenarios (--only):
  put    durable put at N records (new generated keys, every 4th an overwrite of
         an existing record), raw btree+json and MicroTetherDB (plain; 2 tags +
         TTL; tags + TTL on the filled records too), LittleFS and FAT
  prim   LittleFS / FAT primitives: inline limit, small-file create/rewrite,
         append, many files in a directory, delete, rename, segment rewrite,
         one page written into files of 1..64 blocks
  proto  one small (inline) file per commit, the files deleted every K commits

    python3 scripts/bench/wear.py                          # all, unix port
    python3 scripts/bench/wear.py --only put --sizes 100,1000 --fs lfs4k
    python3 scripts/bench/wear.py --only prim,proto --target qemu
    python3 scripts/bench/wear.py --smoke                  # tiny, for tests

Writes <out>/wear.json (all records) and <out>/wear.md (the tables);
default out: build/wear.
"""
import argparse
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import run  # noqa: E402  (runners and the @@B parser of the main benchmark)

# Flash-time model, ESP32 SPI NOR flash, typical datasheet values (sources in
# docs/storage-measurements.md). ESP-IDF programs at most 64 bytes per
# page-program command (never across a 256-byte page); a command of n bytes
# takes tBP1 + (n - 1) * tBP2 (Winbond's byte-program formula), capped at tPP.
# Reads and CPU time are not included.
FLASH = {
    "t_se_ms": 45.0,    # 4 KB sector erase (W25Q32JV/W25Q64JV/W25Q128JV, GD25Q128E: 45; XM25QH128A: 40)
    "t_bp1_us": 30.0,   # first byte of a program command (W25X40: 30 us)
    "t_bp2_us": 2.5,    # each further byte (W25X40: 2.5 us)
    "t_pp_ms": 0.5,     # whole 256-byte page (W25Q128JV 0.4, GD25Q128E/XM25QH128A 0.5): cap per command
}
FS_ALL = ("lfs4k", "fat4k", "fat512")


def flash_ms(r):
    """Estimated flash busy time (ms) of one operation's counters."""
    cmds = r.get("pr_cmds", 0)
    b = r.get("pr_bytes", 0)
    prog_us = cmds * FLASH["t_bp1_us"] + max(0.0, b - cmds) * FLASH["t_bp2_us"]
    # the tPP cap never binds for <= 64-byte commands (30 + 63 * 2.5 = 187.5 us)
    erase_ms = r.get("er_bytes", 0) / 4096.0 * FLASH["t_se_ms"]
    return prog_us / 1000.0 + erase_ms


def fs_cfg(fs, lfsopts=None):
    cfg = {"lfs4k": {"fs": "lfs", "bs": 4096}, "fat4k": {"fs": "fat", "bs": 4096},
           "fat512": {"fs": "fat", "bs": 512}}[fs]
    if lfsopts and cfg["fs"] == "lfs":
        cfg = dict(cfg, fsopts=lfsopts)
    return cfg


def labels(recs):
    # the filesystems of the records, in FS_ALL order, variants after their base
    seen = []
    for r in recs:
        if r.get("fs") and r["fs"] not in seen:
            seen.append(r["fs"])
    return sorted(seen, key=lambda f: (FS_ALL.index(f.split()[0]) if f.split()[0] in FS_ALL
                                       else 99, f))


def put_blocks(n):
    # volume for N records: ~600 B of file per tagged record, room for
    # LittleFS to copy the file's tail; in 4 KB blocks
    return max(256, int(math.ceil(n * 600 * 2.5 / 4096)) + 64)


# impl: raw btree+json; db1: the database, format 1 (one btree file); db: format 2
PUT_VARIANTS = (("raw", "plain"), ("db1", "plain"), ("db1", "tagttl"), ("db1", "tagfill"),
                ("db", "plain"), ("db", "tagttl"), ("db", "tagfill"))
PUT_HEADS = ("raw btree+json, flush per put", "format 1 plain put", "format 1 put, 2 tags + TTL",
             "format 1, tags at fill", "format 2 plain put", "format 2 put, 2 tags + TTL",
             "format 2, tags at fill")
PRIM_CASES = ("inline_limit", "create", "rewrite", "append", "many", "rename", "segment",
              "page_write", "delete_big")


def plan(args):
    progs = []
    if "put" in args.only:
        for fs in args.fs:
            for n in args.sizes:
                for impl, var in PUT_VARIANTS:
                    if args.target == "qemu" and n > 1000:
                        continue  # the board's 2 MiB RAM disk and ~140 KB heap
                    cfg = dict(fs_cfg(fs, args.lfsopts), sc="put", impl=impl, var=var, n=n,
                               ops=args.ops, nblocks=put_blocks(n) if args.target == "unix" else 512)
                    progs.append(("put %s %s/%s n=%d" % (fs, impl, var, n), cfg))
    if "prim" in args.only:
        for fs in args.fs:
            for case in PRIM_CASES:
                if case == "inline_limit" and not fs.startswith("lfs"):
                    continue
                cfg = dict(fs_cfg(fs, args.lfsopts), sc="prim", only=[case])
                if args.smoke:
                    cfg.update(count=4, many=20, sizes=(16, 128, 200), app_starts=(0, 4096),
                               app_sizes=(100,), seg_sizes=(4096,), page_blocks=(1, 4))
                progs.append(("prim %s %s" % (fs, case), cfg))
    if "proto" in args.only:
        for fs in args.fs:
            if fs == "fat512":
                continue
            cfg = dict(fs_cfg(fs, args.lfsopts), sc="proto", commits=args.commits, rec=args.rec,
                       ks=args.ks)
            if args.smoke:
                cfg.update(commits=40, ks=[0, 16])
            progs.append(("proto %s" % fs, cfg))
    return progs


def program(cfg):
    parts = ["CFG = %r\n" % (cfg,)]
    for name in ("dev_common.py", "dev_wear_dev.py", "dev_wear.py"):
        with open(os.path.join(HERE, name)) as f:
            parts.append(f.read())
    return "\n".join(parts)


# --- tables -------------------------------------------------------------------
def kb(b):
    if b >= 1024 * 1024:
        return "%.2f MB" % (b / 1048576.0)
    if b >= 1024:
        return "%.1f KB" % (b / 1024.0)
    return "%d B" % round(b)


def cell(r):
    if r is None:
        return "-"
    return "%s, %.2f er, %s ms" % (kb(r["pr_bytes"]), r["erases"], fms(flash_ms(r)))


def fms(ms):
    return "%.1f" % ms if ms < 100 else "%d" % round(ms)


def pick(recs, **kw):
    out = [r for r in recs if all(r.get(k) == v for k, v in kw.items())]
    return out


def one(recs, **kw):
    r = pick(recs, **kw)
    return r[-1] if r else None


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def split_put(r):
    """(new-key puts, overwrites) of a put record: counters per put, or None."""
    if not r.get("sp_n"):
        return None, None
    n, k = r["n"], r["sp_n"]
    ow = {"pr_bytes": r["sp_pr_bytes"], "erases": r["sp_erases"], "er_bytes": r["sp_er_bytes"],
          "pr_cmds": r["sp_pr_cmds"]}
    new = {}
    for f in ow:
        new[f] = (r[f] * n - ow[f] * k) / (n - k)
    return new, ow


def md_put(recs):
    parts = []
    for fs in labels(recs):
        rs = pick(recs, case="put", fs=fs)
        if not rs:
            continue
        sizes = sorted({r["records"] for r in rs})
        rows = []
        for n in sizes:
            row = ["{:,}".format(n)]
            for impl, var in PUT_VARIANTS:
                row.append(cell(one(rs, records=n, impl=impl, var=var)))
            rows.append(row)
        parts.append("### Durable put, %s (bytes programmed, 4 KB erases, est. flash ms per put)\n\n"
                     % fs + table(["records"] + list(PUT_HEADS), rows))
        rows = []
        for n in sizes:
            for impl, var in PUT_VARIANTS:
                r = one(rs, records=n, impl=impl, var=var)
                if r:
                    new, ow = split_put(r)
                    rows.append(["{:,}".format(n), "%s/%s" % (impl, var), kb(r["file_bytes"]),
                                 cell(new), cell(ow), "%d" % r["max_erases"],
                                 kb(r["rd_bytes"]), r["wear_max"], r["n"]])
        parts.append("Details (%s): file size after the fill; new-key puts and overwrites of a "
                     "random existing record (every 4th put) apart; the worst put's erases; "
                     "bytes read per put; most erases of one block; puts measured\n\n" % fs +
                     table(["records", "impl/variant", "file", "new-key put", "overwrite",
                            "max erases", "read", "max wear", "puts"], rows))
    return "\n\n".join(parts)


def md_prim(recs):
    parts = []
    for fs in labels(recs):
        rs = pick(recs, sc="prim", fs=fs)
        if not rs:
            continue
        sec = ["### Primitives, %s" % fs]
        lim = one(rs, case="inline_limit")
        if lim:
            sec.append("Inline limit: the largest file that allocates no block is **%s bytes** "
                       "(sizes %d..%d tried)." % (lim["limit"], lim["lo"], lim["hi"]))
        c = pick(rs, case="create")
        if c:
            sec.append("Create + close a new file in a fresh directory (mean of 63 creates "
                       "after the first; the first create shown apart):\n\n" + table(
                           ["size", "programmed", "erases", "erase share", "max erases",
                            "blocks/file", "est. ms", "first create"],
                           [[r["size"], kb(r["pr_bytes"]), "%.3f" % r["erases"],
                             "%.2f" % r["erase_ops"], r["max_erases"],
                             "%.2f" % r["blocks_per_file"], fms(flash_ms(r)),
                             "%s, %d er" % (kb(r["first_pr_bytes"]), r["first_erases"])]
                            for r in c]))
        c = pick(rs, case="rewrite")
        if c:
            sec.append("Rewrite one existing small file (open 'wb', write, close):\n\n" + table(
                ["size", "programmed", "erases", "erase share", "est. ms", "ops"],
                [[r["size"], kb(r["pr_bytes"]), "%.3f" % r["erases"], "%.2f" % r["erase_ops"],
                  fms(flash_ms(r)), r["n"]] for r in c]))
        c = pick(rs, case="append_close")
        if c:
            rows = []
            for r in c:
                f = one(rs, case="append_flush", start=r["start"], size=r["size"])
                rows.append([r["start"], r["size"], cell(r), cell(f)])
            sec.append("Append to a file of `start` bytes: reopen + write + close, or one open "
                       "file with write + flush (per append):\n\n" + table(
                           ["file size", "append", "reopen+write+close", "write+flush"], rows))
        for where in ("log", "root"):
            c = pick(rs, case="many_create", dir=where)
            if not c:
                continue
            rows = []
            for r in c:
                dl = one(rs, case="many_delete", dir=where, first=r["files_before"])
                rows.append(["%d..%d" % (r["files_before"], r["files_before"] + r["n"] - 1),
                             kb(r["pr_bytes"]), "%.3f" % r["erases"], r["max_erases"],
                             fms(flash_ms(r)), cell(dl)])
            ls = one(rs, case="many_listdir", dir=where)
            ra = one(rs, case="many_readall", dir=where)
            txt = ("%d files of 100 bytes created one by one in %s (a 64 KB file beside "
                   "them); per create, by bucket of files already there; and per delete "
                   "(the same bucket, deleted in creation order):\n\n"
                   % (sum(r["n"] for r in c), "a subdirectory /log" if where == "log"
                      else "the root directory"))
            txt += table(["files", "create: programmed", "erases", "max erases",
                          "est. ms", "delete (these files)"], rows)
            if ls and ra:
                txt += ("\n\nListing the directory read %s in %d reads; reading every file "
                        "read %s per file." % (kb(ls["rd_bytes"]), ls["rd_ops"],
                                               kb(ra["rd_bytes"])))
            sec.append(txt)
        rows = []
        for name, label in (("rename_small", "rename a 100-byte file (new name)"),
                            ("manifest_switch", "write a 64-byte file + rename over the old one"),
                            ("rename_big", "rename a 64 KB file"),
                            ("delete_big", "delete a 64 KB file")):
            r = one(rs, case=name)
            if r:
                rows.append([label, kb(r["pr_bytes"]), "%.3f" % r["erases"], r["max_erases"],
                             fms(flash_ms(r))])
        if rows:
            sec.append("Rename and delete (per operation):\n\n" + table(
                ["operation", "programmed", "erases", "max erases", "est. ms"], rows))
        c = pick(rs, case="segment_inplace")
        if c:
            rows = []
            for r in c:
                row = [r["size"], r["blocks"]]
                for how in ("inplace", "truncate", "newrename", "newname"):
                    row.append(cell(one(rs, case="segment_" + how, size=r["size"])))
                rows.append(row)
            sec.append("Rewrite one segment file of `size` bytes (blocks = blocks it uses); in "
                       "place (open 'r+b', write all, close), truncate+write ('wb'), write a "
                       "new file + rename over the old, write a file under a new name + "
                       "delete the old:\n\n" + table(
                           ["size", "blocks", "in place", "truncate+write", "new + rename",
                            "new name + delete"], rows))
        c = pick(rs, case="page_write", where="mid")
        if c:
            rows = []
            for r in c:
                row = [r["file_blocks"]]
                for where in ("start", "mid", "end"):
                    row.append(cell(one(rs, case="page_write", file_blocks=r["file_blocks"],
                                        where=where)))
                rows.append(row)
            sec.append("Write one 512-byte page into a file of N 4 KB blocks of data "
                       "(open 'r+b', seek, write, close), at its start, middle, end:\n\n" + table(
                           ["file blocks", "start", "middle", "end"], rows))
        parts.append("\n\n".join(sec))
    return "\n\n".join(parts)


PROTO_LOG = {"files": "one file per commit", "append": "append+flush, one file",
             "ring": "ring of K files, rewritten in turn"}


def md_proto(recs):
    rs = pick(recs, sc="proto")
    if not rs:
        return ""
    rows = []
    for r in pick(rs, case="proto_all"):
        st = one(rs, case="proto_steady", fs=r["fs"], how=r["how"], K=r["K"], rec=r["rec"])
        rows.append([r["fs"], r["rec"], PROTO_LOG[r["how"]], r["K"] or "never",
                     kb(r["pr_bytes"]), "%.3f" % r["erases"], "%.2f" % r["erase_ops"],
                     r["max_erases"], fms(flash_ms(r)),
                     "%s, %.3f er" % (kb(st["pr_bytes"]), st["erases"]) if st else "-",
                     r["wear_max"]])
    n = rs[0]["commits"]
    return ("### Commit log prototype: %d commits of a %s-byte record\n\nPer commit, averaged "
            "over all %d commits; 'delete every K': the log files are deleted after every K "
            "commits (the checkpoint; its deletes are counted, its btree writes are not); "
            "for the single log file it is truncated (reopened 'wb') instead; the ring "
            "rewrites file i %% K and deletes nothing. Steady = the second half only; max "
            "wear = most erases of one block over the run.\n\n"
            % (n, "/".join(str(x) for x in sorted({r["rec"] for r in rs})), n) +
            table(["fs", "record", "log", "delete every K", "programmed", "erases", "erase share",
                   "max erases", "est. ms", "steady half", "max wear"], rows))


def markdown(recs):
    parts = [md_put(recs), md_prim(recs), md_proto(recs)]
    return "\n\n".join(p for p in parts if p) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="unix", choices=("unix", "qemu"))
    ap.add_argument("--only", default="put,prim,proto")
    ap.add_argument("--sizes", default="100,1000,3000,10000", help="records, put scenario")
    ap.add_argument("--fs", default=",".join(FS_ALL), help="lfs4k,fat4k,fat512")
    ap.add_argument("--ops", type=int, default=200, help="puts measured per program")
    ap.add_argument("--commits", type=int, default=500, help="proto: commits per variant")
    ap.add_argument("--rec", type=int, default=100, help="proto: record bytes")
    ap.add_argument("--ks", default="0,4,8,16,32,64,256",
                    help="proto: delete the log every K commits (0: never)")
    ap.add_argument("--keep", action="store_true",
                    help="merge into <out>/wear.json: keep its records of other scenarios, "
                         "filesystems and record sizes")
    ap.add_argument("--lfsopts", default="{}",
                    help='JSON dict of vfs.VfsLfs2 options, e.g. {"progsize": 64, "readsize": 64}')
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "wear"))
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = ap.parse_args(argv)
    args.only = args.only.split(",")
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.fs = [f for f in args.fs.split(",") if f]
    args.lfsopts = json.loads(args.lfsopts)
    args.ks = [int(k) for k in args.ks.split(",") if k]
    for f in args.fs:
        if f not in FS_ALL:
            ap.error("unknown fs %r" % f)
    if args.smoke:
        args.sizes = [50]
        args.ops = 8
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    progs = plan(args)
    runner = run.UnixRunner() if args.target == "unix" else run.QemuRunner(shift=None)
    recs = []
    failures = []
    t_start = time.time()
    try:
        for label, cfg in progs:
            cfg.update({"impl": cfg.get("impl", "fs"), "mode": "file", "work": "wear"})
            if args.target == "unix":
                cfg["tmp"] = runner.devdir
                runner.heap = "%dM" % (32 + cfg.get("nblocks", 512) * 4096 * 2 // 1048576)
            else:
                cfg["backing"] = "ramdisk"
            t0 = time.time()
            try:
                out = runner.run(program(cfg), args.timeout)
            except subprocess.TimeoutExpired:
                out = "timeout after %ds" % args.timeout
            got = run.parse(out)
            ok = any(r.get("t") == "end" for r in got)
            errs = [r for r in got if r.get("t") in ("err", "nofit")]
            recs.extend(r for r in got if r.get("t") == "wear")
            status = "ok" if ok and not errs else "FAILED"
            print("[wear %s] %-40s %6.1fs %s" % (args.target, label, time.time() - t0, status),
                  flush=True)
            if status != "ok":
                failures.append({"program": label, "errors": errs,
                                 "tail": "\n".join(out.strip().splitlines()[-12:])})
                print(failures[-1]["tail"], file=sys.stderr)
    finally:
        runner.close()
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, "wear.json")
    if args.keep and os.path.exists(jpath):
        with open(jpath) as f:
            old = json.load(f)["records"]
        mine = {(r["sc"], r["fs"], r.get("rec")) for r in recs}
        recs = [r for r in old if (r["sc"], r["fs"], r.get("rec")) not in mine] + recs
    md = markdown(recs)
    meta = {"target": args.target, "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"), "commit": run.git_commit(),
            "firmware_sha256": runner.sha, "flash_model": FLASH,
            "command": "scripts/bench/wear.py " + " ".join(argv if argv is not None
                                                           else sys.argv[1:]),
            "seconds": round(time.time() - t_start, 1)}
    with open(jpath, "w") as f:
        json.dump({"meta": meta, "records": recs, "failures": failures}, f, indent=1,
                  sort_keys=True)
    with open(os.path.join(args.out, "wear.md"), "w") as f:
        f.write(md)
    print(md)
    print("wrote %s/wear.{json,md} (%d records, %d failures, %.0fs)" % (
        args.out, len(recs), len(failures), time.time() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
