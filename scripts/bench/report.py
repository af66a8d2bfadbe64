"""Benchmark results -> summary, Markdown and PNG (host side, CPython).

Used by run.py; also runnable alone to render a results file again, e.g. the
summary in docs/ (the tracked benchmarks.json holds summaries, no raw samples):
    python3 scripts/bench/report.py docs/benchmarks.json docs/
    python3 scripts/bench/report.py build/bench/benchmarks.json build/bench/
"""
import json
import os
import statistics
import sys

# The earlier MicroTetherDB's report (seed-performance-report.md), ms averages.
SEED_MS = {
    "put": (9.46, 8.31), "get": (5.75, 6.00), "delete": (6.00, 6.00),
    "put_batch": (36.75, 924.25), "delete_batch": (9.00, 1506.00), "query": (46.25, 61.45),
}
# ESP32 estimate from qemu instruction counts (see ASSUMPTION).
ESP32_MHZ = 240
ESP32_CPI = 1.5
ASSUMPTION = (
    "ESP32 time = Cortex-M3 instructions x %.1f cycles per instruction / %d MHz: one Thumb-2 "
    "instruction taken as one Xtensa LX6 instruction, with 1.5 cycles each on average for "
    "flash-cache misses and pipeline stalls (a plain assumption, not a measurement; CPI 1.0 "
    "gives 2/3 of these figures, CPI 2.0 gives 4/3). It covers CPU time only: /flash on qemu "
    "is RAM-backed, so SPI-flash program/erase time of a real ESP32 is not included."
    % (ESP32_CPI, ESP32_MHZ))

SEED_OPS = ("put", "get", "delete", "put_batch", "delete_batch", "query", "open", "close")
SCALED_OPS = ("put", "put_tt", "get", "overwrite", "overwrite_tt", "delete", "delete_tt", "query_eq", "query_range", "query_tag",
              "create_index", "query_eq_idx", "query_range_idx",
              "put_batch10", "delete_batch10", "put_batch100", "delete_batch100",
              "cleanup_half", "open", "close", "reopen")
GOALS = (
    ("file/memory ratio, batch put", "<= 2x (seed 25.15x)"),
    ("file/memory ratio, batch delete", "<= 2x (seed 167.33x)"),
    ("overhead over raw btree+json, put", "<= 1.5x"),
    ("overhead over raw btree+json, get", "<= 1.5x"),
    ("estimated ESP32 time per put", "< 1 ms (seed 9.46 / 8.31 ms)"),
    ("estimated ESP32 time per get", "< 1 ms (seed 5.75 / 6.00 ms)"),
)


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _key(*parts):
    return "|".join(str(p) for p in parts)


def summarize(section):
    """Aggregate the records of all runs: median over runs of each statistic."""
    recs = section["records"]
    meta = section["meta"]
    shift = meta.get("icount_shift")
    ops, vals, heaps = {}, {}, {}
    for r in recs:
        t = r.get("t")
        if t == "op":
            ops.setdefault(_key(r["work"], r["mode"], r["impl"], r["op"]), []).append(r)
        elif t == "val":
            vals.setdefault(_key(r["work"], r["mode"], r["impl"], r["name"]), []).append(r)
        elif t == "heap":
            heaps.setdefault(_key(r["work"], r["mode"], r["impl"], r["phase"]), []).append(r)
    out = {"ops": {}, "vals": {}, "heap": {}, "ratio": {}, "filemem": {}}
    for k, rs in ops.items():
        e = {
            "n": rs[0]["n"], "runs": len(rs),
            "mean": _med([r["mean"] for r in rs]),
            "median": _med([r["median"] for r in rs]),
            "p95": _med([r["p95"] for r in rs]),
            "max": max(r["max"] for r in rs),
            "median_lo": min(r["median"] for r in rs),
            "median_hi": max(r["median"] for r in rs),
            "alloc": _med([r.get("alloc") for r in rs]),
            "peak": max(r.get("peak") or 0 for r in rs),
        }
        for extra in ("items", "results", "counts", "errors", "flash", "plan"):
            if extra in rs[0]:
                e[extra] = rs[0][extra]
        if shift is not None:
            e["insns"] = e["median"] * 1000 / 2 ** shift
            e["esp32_ms_mean"] = e["mean"] * 1000 / 2 ** shift * ESP32_CPI / ESP32_MHZ / 1000
            e["esp32_ms_median"] = e["insns"] * ESP32_CPI / ESP32_MHZ / 1000
        out["ops"][k] = e
    for k, rs in vals.items():
        v = [r["v"] for r in rs if isinstance(r.get("v"), (int, float))]
        e = {"v": _med(v) if v else rs[0].get("v")}
        for extra in ("open_empty", "heap_n", "records"):
            if extra in rs[0]:
                e[extra] = _med([r.get(extra) for r in rs])
        out["vals"][k] = e
    for k, rs in heaps.items():
        out["heap"][k] = {f: _med([r.get(f) for r in rs]) for f in ("before", "after", "peak", "free")}
    # DB / raw, per run on medians (and means), then the median over runs + spread
    for k, rs in ops.items():
        work, mode, impl, op = k.split("|")
        if impl != "db":
            continue
        # an indexed query (db only) is compared with the raw scan of the same query
        rop = op[:-4] if op.endswith("_idx") else op
        raw = {r["run"]: r for r in ops.get(_key(work, mode, "raw", rop), [])}
        rat = [r["median"] / raw[r["run"]]["median"] for r in rs
               if r["run"] in raw and raw[r["run"]]["median"] > 0]
        ratm = [r["mean"] / raw[r["run"]]["mean"] for r in rs
                if r["run"] in raw and raw[r["run"]]["mean"] > 0]
        if rat:
            out["ratio"][_key(work, mode, op)] = {
                "median": _med(rat), "lo": min(rat), "hi": max(rat), "mean": _med(ratm)}
    # file / memory for the database (means, as the seed report did)
    for k, rs in ops.items():
        work, mode, impl, op = k.split("|")
        if mode != "file":
            continue
        mem = {r["run"]: r for r in ops.get(_key(work, "mem", impl, op), [])}
        rat = [r["mean"] / mem[r["run"]]["mean"] for r in rs
               if r["run"] in mem and mem[r["run"]]["mean"] > 0]
        if rat:
            out["filemem"][_key(work, impl, op)] = {"median": _med(rat), "lo": min(rat), "hi": max(rat)}
    return out


# ---------------------------------------------------------------- formatting
def _f(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, float) and abs(x) >= 100:
        return "%.0f" % x
    if isinstance(x, float):
        return ("%." + str(nd) + "f") % x
    return str(x)


def _x(r, spread=True):
    if not r:
        return "-"
    s = "%.2fx" % r["median"]
    if spread and r.get("hi") is not None and r["hi"] - r["lo"] > 0.005:
        s += " (%.2f-%.2f)" % (r["lo"], r["hi"])
    return s


def _ms(us):
    return "-" if us is None else "%.3f" % (us / 1000.0)


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out) + "\n"


def _unit(sec):
    return "virtual µs" if sec["meta"]["target"] == "qemu" else "µs"


def _sizes(sec):
    ns = set()
    for k in sec["summary"]["ops"]:
        w = k.split("|")[0]
        if w.startswith("n"):
            ns.add(int(w[1:]))
    return sorted(ns)


def goals(sec):
    """[(goal, target, measured text, status)] for one target section."""
    s = sec["summary"]
    ops, ratio, fm = s["ops"], s["ratio"], s["filemem"]
    q = sec["meta"]["target"] == "qemu"
    rows = []

    def fm_row(label, op, opsz):
        parts, worst = [], None
        for w, o in [("seed", op)] + [("n%d" % n, opsz) for n in _sizes(sec)]:
            r = fm.get(_key(w, "db", o))
            if r:
                parts.append("%s %.2fx" % (w, r["median"]))
                worst = r["median"] if worst is None else max(worst, r["median"])
        return parts, worst

    for i, (op, opsz) in enumerate((("put_batch", "put_batch100"), ("delete_batch", "delete_batch100"))):
        parts, worst = fm_row(GOALS[i][0], op, opsz)
        rows.append((GOALS[i][0], GOALS[i][1], ", ".join(parts) or "-", _status(worst, 2.0)))
    for j, op in enumerate(("put", "get")):
        parts, worst = [], None
        for w in ["seed"] + ["n%d" % n for n in _sizes(sec)]:
            for mode in ("mem", "file"):
                r = ratio.get(_key(w, mode, op))
                if r:
                    parts.append("%s/%s %.2fx" % (w, mode, r["median"]))
                    worst = r["median"] if worst is None else max(worst, r["median"])
        rows.append((GOALS[2 + j][0], GOALS[2 + j][1], ", ".join(parts) or "-", _status(worst, 1.5)))
    for j, op in enumerate(("put", "get")):
        if not q:
            rows.append((GOALS[4 + j][0], GOALS[4 + j][1], "qemu target only", "-"))
            continue
        parts, worst = [], None
        for w in ["seed"] + ["n%d" % n for n in _sizes(sec)]:
            for mode in ("mem", "file"):
                e = ops.get(_key(w, mode, "db", op))
                if e:
                    parts.append("%s/%s %.3f ms" % (w, mode, e["esp32_ms_mean"]))
                    worst = e["esp32_ms_mean"] if worst is None else max(worst, e["esp32_ms_mean"])
        rows.append((GOALS[4 + j][0], GOALS[4 + j][1], ", ".join(parts) or "-",
                     _status(worst, 1.0, strict=True)))
    return rows


# Memory mode against the raw floor, per database size (the CPU hot path):
# (op, label, ratio limit). "_tt" = with 2 tags and a TTL; batches of 10.
MEM_GOALS = (
    ("put", "put", 1.5), ("get", "get", 1.2), ("delete", "delete", 1.5),
    ("put_batch10", "put_batch (10 items)", 1.3), ("delete_batch10", "delete_batch (10 items)", 1.5),
    ("put_tt", "put with 2 tags + TTL", 2.0), ("delete_tt", "delete of a tags + TTL record", None),
    ("overwrite", "overwrite", None), ("overwrite_tt", "overwrite with 2 tags + TTL", None),
)
# qemu: estimated ESP32 ms (median) of memory-mode calls
MEM_MS_GOALS = (("put", 0.6), ("delete", 0.6), ("get", 0.4))


def mem_rows(sec):
    """[(label, limit, {n: ratio or None}, worst)] plus the alloc/put and ESP32 rows."""
    s = sec["summary"]
    ratio, ops = s["ratio"], s["ops"]
    ns = [n for n in _sizes(sec) if _key("n%d" % n, "mem", "db", "put") in ops]
    rows = []
    for op, label, lim in MEM_GOALS:
        cells = {}
        for n in ns:
            r = ratio.get(_key("n%d" % n, "mem", op))
            cells[n] = r
        rows.append((label, lim, cells))
    cells = {}
    for n in ns:
        d = ops.get(_key("n%d" % n, "mem", "db", "put"))
        r = ops.get(_key("n%d" % n, "mem", "raw", "put"))
        if d and r and d.get("alloc") is not None and r.get("alloc"):
            cells[n] = {"median": d["alloc"] / r["alloc"], "text": "%.2fx (%d / %d B)" % (
                d["alloc"] / r["alloc"], d["alloc"], r["alloc"])}
    rows.append(("bytes allocated per put", 2.0, cells))
    if sec["meta"]["target"] == "qemu":
        for op, lim in MEM_MS_GOALS:
            cells = {}
            for n in ns:
                e = ops.get(_key("n%d" % n, "mem", "db", op))
                if e:
                    cells[n] = {"median": e["esp32_ms_median"], "text": "%.3f ms" % e["esp32_ms_median"],
                                "strict": True}
            rows.append(("ESP32 est. %s (ms, median)" % op, lim, cells))
    return ns, rows


def mem_table(sec):
    ns, rows = mem_rows(sec)
    if not ns:
        return ""
    head = ["memory mode, DB / raw"] + ["%d records" % n for n in ns] + ["goal", "status"]
    out = []
    for label, lim, cells in rows:
        row = [label]
        worst = None
        strict = False
        for n in ns:
            c = cells.get(n)
            if not c:
                row.append("-")
                continue
            row.append(c.get("text") or _x(c))
            strict = c.get("strict", False)
            worst = c["median"] if worst is None else max(worst, c["median"])
        row.append("-" if lim is None else ("< %s" % lim if strict else "<= %s" % lim))
        row.append("-" if lim is None else _status(worst, lim, strict))
        out.append(row)
    return _table(head, out)


def memfx_table(sec):
    """The memory store's effect on the rest of the program (memfx.py)."""
    rows = sec.get("memfx") or []
    if not rows:
        return ""
    u = _unit(sec)
    head = ["setup", "store (B)", "heap used (B)", "gc.collect() (%s)" % u,
            "json.loads of 700 B (%s)" % u, "bytearray(600) (%s)" % u, "bytearray(32) (%s)" % u]
    out = []
    for r in rows:
        out.append([r["setup"], _f(r.get("store_bytes")), _f(r.get("heap_used")), _f(r["gc_collect_us"]),
                    _f(r["loads_700B_us"]), _f(r["alloc_600B_us"], 2), _f(r["alloc_32B_us"], 2)])
    return _table(head, out)


def _status(worst, limit, strict=False):
    if worst is None:
        return "not measured"
    ok = worst < limit if strict else worst <= limit
    if ok:
        return "met (worst %.2f)" % worst
    return "MISSED by %.0f%% (worst %.2f)" % ((worst / limit - 1) * 100, worst)


def seed_table(sec):
    s = sec["summary"]
    ops, ratio, fm = s["ops"], s["ratio"], s["filemem"]
    q = sec["meta"]["target"] == "qemu"
    u = _unit(sec)
    head = ["op", "n", "DB mem mean / median / p95 / max (%s)" % u,
            "DB file mean / median / p95 / max (%s)" % u, "DB file/mem",
            "raw mem mean", "raw file mean", "DB/raw mem", "DB/raw file"]
    if q:
        head += ["ESP32 est. mem / file (ms)"]
    head += ["seed mem / file (ms)", "seed file/mem"]
    rows = []
    for op in SEED_OPS:
        dm = ops.get(_key("seed", "mem", "db", op))
        df = ops.get(_key("seed", "file", "db", op))
        rm = ops.get(_key("seed", "mem", "raw", op))
        rf = ops.get(_key("seed", "file", "raw", op))
        if not (dm or df):
            continue

        def st(e):
            return "-" if not e else " / ".join(_f(e[k]) for k in ("mean", "median", "p95", "max"))
        n = (dm or df)["n"]
        row = [op, str(n), st(dm), st(df), _x(fm.get(_key("seed", "db", op))),
               _f(rm and rm["mean"]), _f(rf and rf["mean"]),
               _x(ratio.get(_key("seed", "mem", op))), _x(ratio.get(_key("seed", "file", op)))]
        if q:
            row.append("%s / %s" % (_f(dm and dm["esp32_ms_mean"], 3), _f(df and df["esp32_ms_mean"], 3)))
        sd = SEED_MS.get(op)
        row += ["%.2f / %.2f" % sd if sd else "-", "%.2fx" % (sd[1] / sd[0]) if sd else "-"]
        rows.append(row)
    return _table(head, rows)


def scaled_table(sec, n):
    s = sec["summary"]
    ops, ratio, fm = s["ops"], s["ratio"], s["filemem"]
    q = sec["meta"]["target"] == "qemu"
    w = "n%d" % n
    u = _unit(sec)
    head = ["op", "calls", "DB mem median / p95 (%s)" % u, "raw mem median", "DB/raw mem",
            "DB file median / p95 (%s)" % u, "raw file median", "DB/raw file", "DB file/mem"]
    if q:
        head.append("ESP32 est. mem / file (ms, median)")
    rows = []
    for op in SCALED_OPS:
        rop = op[:-4] if op.endswith("_idx") else op  # indexed: raw has only the scan
        dm = ops.get(_key(w, "mem", "db", op))
        df = ops.get(_key(w, "file", "db", op))
        rm = ops.get(_key(w, "mem", "raw", rop))
        rf = ops.get(_key(w, "file", "raw", rop))
        if not (dm or df) and rop != op:
            continue
        if not (dm or df or rm or rf):
            continue
        label = op
        e = dm or df or rm or rf
        if e.get("items"):
            label += " (%d items)" % (e["items"] // e["n"])
        if e.get("results") is not None:
            label += " (%d hits)" % e["results"]

        def mp(e):
            return "-" if not e else "%s / %s" % (_f(e["median"]), _f(e["p95"]))
        row = [label, str(e["n"]), mp(dm), _f(rm and rm["median"]), _x(ratio.get(_key(w, "mem", op))),
               mp(df), _f(rf and rf["median"]), _x(ratio.get(_key(w, "file", op))),
               _x(fm.get(_key(w, "db", op)))]
        if q:
            row.append("%s / %s" % (_f(dm and dm["esp32_ms_median"], 3), _f(df and df["esp32_ms_median"], 3)))
        rows.append(row)
    return _table(head, rows)


def heap_table(sec):
    s = sec["summary"]
    vals, ops, heap = s["vals"], s["ops"], s["heap"]
    head = ["workload", "impl", "heap/record, mem (B)", "open empty DB (B)",
            "put: alloc/call mem (B)", "get: alloc/call mem (B)", "put phase peak mem (B)",
            "file size, N records (B)", "file size after TTL cleanup (B)"]
    rows = []
    for w in ["seed"] + ["n%d" % n for n in _sizes(sec)]:
        for impl in ("db", "raw"):
            hp = vals.get(_key(w, "mem", impl, "heap_per_record"), {})
            fs = vals.get(_key(w, "file", impl, "file_size"), {})
            fe = vals.get(_key(w, "file", impl, "file_size_end"), {})
            pm = ops.get(_key(w, "mem", impl, "put"), {})
            gm = ops.get(_key(w, "mem", impl, "get"), {})
            hpk = heap.get(_key(w, "mem", impl, "put" if w != "seed" else "seed"), {})
            if not (hp or fs or pm):
                continue
            rows.append([w, impl, _f(hp.get("v")), _f(hp.get("open_empty")), _f(pm.get("alloc"), 0),
                         _f(gm.get("alloc"), 0), _f(hpk.get("peak")), _f(fs.get("v")), _f(fe.get("v"))])
    return _table(head, rows)


# SPI NOR flash figures for the ESP32 flash estimate (typical values of a
# W25Q32JV-class part as found on ESP32 modules: 4 KB sector erase 45 ms,
# 256-byte page program 0.4 ms; the maxima are 400 ms and 3 ms).
FLASH_ERASE_MS = 45.0
FLASH_PROG_MS_PER_256 = 0.4


def flash_table(sec, work="seedflash"):
    ops = sec["summary"]["ops"]
    head = ["op", "calls", "DB: KB programmed / erases per call", "raw: KB programmed / erases per call",
            "DB: est. ESP32 flash time per call (ms)", "raw: est. flash time (ms)"]
    rows = []
    for op in SEED_OPS:
        d = ops.get(_key(work, "file", "db", op))
        r = ops.get(_key(work, "file", "raw", op))
        if not (d and d.get("flash")) and not (r and r.get("flash")):
            continue

        def per(e):
            if not e or not e.get("flash"):
                return "-", None
            f, n = e["flash"], e["n"]
            kb, er = f[1] / 1024.0 / n, f[2] / float(n)
            ms = er * FLASH_ERASE_MS + f[1] / 256.0 / n * FLASH_PROG_MS_PER_256
            return "%.1f / %.1f" % (kb, er), ms
        dt, dms = per(d)
        rt, rms = per(r)
        rows.append([op, str((d or r)["n"]), dt, rt, _f(dms), _f(rms)])
    if not rows:
        return ""
    if work != "seedflash":
        return ("\nFlash traffic with `autoflush=False` (raw: no flush until close):\n\n"
                + _table(head, rows))
    return ("\n### Flash traffic of file mode (LittleFS, seed workload)\n\n"
            "Counted by remounting `/flash` over a Python block device that counts LittleFS's "
            "programs and erases (4 KB blocks, as on an ESP32). The flash time estimate uses "
            "typical SPI NOR figures (%.0f ms per 4 KB erase, %.1f ms per 256-byte page program; "
            "worst case about 9x more): this is the cost the qemu CPU figures above do not contain.\n\n"
            % (FLASH_ERASE_MS, FLASH_PROG_MS_PER_256)) + _table(head, rows)


def lazy_table(sec):
    s = sec["summary"]
    ops, ratio = s["ops"], s["ratio"]
    q = sec["meta"]["target"] == "qemu"
    u = _unit(sec)
    head = ["op", "n", "DB lazy file mean / median / p95 (%s)" % u, "raw lazy file mean", "DB/raw",
            "DB default file mean", "DB lazy/default"]
    if q:
        head.append("ESP32 est. DB lazy (ms, CPU)")
    rows = []
    for op in SEED_OPS:
        d = ops.get(_key("seedlazy", "file", "db", op))
        r = ops.get(_key("seedlazy", "file", "raw", op))
        e = ops.get(_key("seed", "file", "db", op))
        if not d:
            continue
        row = [op, str(d["n"]), " / ".join(_f(d[k]) for k in ("mean", "median", "p95")),
               _f(r and r["mean"]), _x(ratio.get(_key("seedlazy", "file", op))),
               _f(e and e["mean"]), "%.2fx" % (d["mean"] / e["mean"]) if e and e["mean"] else "-"]
        if q:
            row.append(_f(d["esp32_ms_mean"], 3))
        rows.append(row)
    if not rows:
        return ""
    return ("\n### Seed workload, file mode with `autoflush=False`\n\n"
            "The database opened with `autoflush=False` (durable after `flush()`/`close()`; the "
            "default flushes after every write call); the raw loop then never flushes before close. "
            "`close` includes the one flush.\n\n" + _table(head, rows))


def section_md(sec):
    m = sec["meta"]
    q = m["target"] == "qemu"
    out = []
    mc = m["machine"]
    out.append("## Target `%s`\n" % m["target"])
    out.append("- Run: %s, commit `%s`, `%s` (%.0f s).\n" % (m["date"], m["commit"], m["command"], m["seconds"]))
    out.append("- MicroPython: `%s`; firmware sha256 `%s...`%s.\n" % (
        m["micropython"], m.get("firmware_sha256"),
        " (**rebuilt during the run: mixed versions**)" if m.get("firmware_changed_during_run") else ""))
    for p in m.get("parts") or []:
        out.append("- Part of this section: %s, `%s`, firmware `%s...`.\n" % (
            p.get("date"), p.get("command"), p.get("firmware_sha256")))
    out.append("- Host: %s, %s cores, %s, load average %.2f at the end.\n" % (
        mc["cpu"], mc["cores"], mc["os"], mc["load"] or 0))
    if q:
        out.append("- qemu `mps2-an385` (Cortex-M3) with `-icount shift=%d`: 1 instruction = %d ns of "
                   "virtual time, so virtual µs x %d = instructions executed. Deterministic: one run. "
                   "File mode: LittleFS on the RAM-backed `/flash`.\n"
                   % (m["icount_shift"], 2 ** m["icount_shift"], 1000 // 2 ** m["icount_shift"]))
        out.append("- " + ASSUMPTION + "\n")
    else:
        out.append("- unix port, `-X heapsize=%s`, every program in a fresh process, %d runs; figures are "
                   "the median over runs of each run's statistic, ratios are per run (DB and raw from the "
                   "same run) then the median, with the range over runs in brackets. Absolute µs on a "
                   "shared 2-core machine are noise: read the ratios.\n" % (m["unix_heap"], m["runs"]))
    out.append("- Seed workload repeated %d times per program (fresh database each time).\n" % m["seed_reps"])
    if sec.get("failures"):
        out.append("\n**Failed programs:**\n")
        for f in sec["failures"]:
            out.append("- run %d %s/%s/%s: %s\n" % (f["run"], f["work"], f["mode"], f["impl"],
                                                    "; ".join(f["errors"]) or f["tail"].splitlines()[-1:]))
    nofit = {}
    for r in sec["records"]:
        if r.get("t") == "nofit":
            nofit.setdefault("%s/%s/%s: %s" % (r["work"], r["mode"], r["impl"], r["phase"]), r["error"])
    if nofit:
        out.append("\n**Did not fit the heap** (MemoryError or DBFullError; the rest of the program went on):\n")
        for k in sorted(nofit):
            out.append("- %s -- `%s`\n" % (k, nofit[k]))
    out.append("\n### Goals\n\n")
    out.append(_table(["goal", "target", "measured", "status"], [list(r) for r in goals(sec)]))
    mt = mem_table(sec)
    if mt:
        out.append("\n### Memory mode against the raw floor, by database size\n\n"
                   "Same run: each ratio is the database's median call over the raw btree+json loop's "
                   "median call%s. `_tt`: the odd records carry 2 tags and a TTL (raw: the same fields "
                   "inside the JSON document). Bytes allocated: mean over the heap-sampled calls.\n\n"
                   % ("" if sec["meta"]["target"] == "qemu" else " (median over runs, range in brackets)"))
        out.append(mt)
    mf = memfx_table(sec)
    if mf:
        out.append("\n### The memory store's effect on the rest of the program\n\n"
                   "`scripts/bench/memfx.py`: the same 60 records (`ram_percentage=15`) in the earlier "
                   "store (one `io.BytesIO` of the whole budget, preallocated at open) and in "
                   "`memstore.py` (btree's page cache, grown with the data), against no database; "
                   "the program also holds 200 small objects. A `gc.collect()` marks and scans every "
                   "live heap block; a multi-block allocation scans the allocation table from the "
                   "first free block.\n\n")
        out.append(mf)
    out.append("\n### Seed workload (the earlier report's mix)\n\n")
    out.append(seed_table(sec))
    qd = sec["summary"]["ops"].get(_key("seed", "mem", "db", "query"), {})
    qr = sec["summary"]["ops"].get(_key("seed", "mem", "raw", "query"), {})
    if qd.get("counts"):
        c = [x for x in qd["counts"] if x is not None]
        out.append("\nQuery result counts (DB, memory): %s (mean %.2f; seed: mean 2.60, range 0-15)."
                   % (qd["counts"], sum(c) / max(1, len(c))))
        if qr.get("counts") and qr["counts"] != qd["counts"]:
            out.append(" **Differs from the raw scan's counts %s.**" % qr["counts"])
        elif qr.get("counts"):
            out.append(" Same counts as the raw scan.")
        if qd.get("errors"):
            out.append(" Queries the engine rejected: %s." % qd["errors"])
        out.append("\n")
    for n in _sizes(sec):
        out.append("\n### %d documents\n\n" % n)
        out.append(scaled_table(sec, n))
    out.append(lazy_table(sec))
    out.append(flash_table(sec))
    out.append(flash_table(sec, "seedlazyflash"))
    out.append("\n### Heap and file size\n\n")
    out.append(heap_table(sec))
    return "".join(out)


def markdown(data):
    out = ["# MicroTetherDB benchmarks\n\n",
           "Generated by `make bench DOCS=1` (`scripts/bench/run.py --docs`); the tables and "
           "`benchmarks.json` (the summaries; raw samples stay in `build/bench/benchmarks.json`) are "
           "rewritten by each such run, the summary below comes from `scripts/bench/analysis.md`.\n\n"
           "Run: `make bench` (unix: 100, 1,000, 10,000 documents, 5 runs, ~6 min on 2 cores, then "
           "~8 min of flash-wear counting into `build/wear/wear.md`, see docs/storage.md) and "
           "`make bench TARGET=qemu` (50, 100, 300, 1,000 documents; memory mode up to 100; ~5 min) "
           "write their results to `build/bench/`; `DOCS=1` also updates this page. "
           "`SIZES=100,1000` and `RUNS=3` override; each run replaces its target's section. "
           "`python3 scripts/bench/report.py docs/benchmarks.json docs` re-renders from the JSON.\n\n",
           "**Method.** Each program runs inside the built MicroPython firmware. `DB` is MicroTetherDB "
           "(frozen); `raw` is the floor: the same operations done directly on `btree` with `json` by a "
           "minimal loop (counter keys, `json.dumps`/`json.loads`, queries and TTL cleanup as a full scan "
           "with a Python predicate; in file mode it flushes after every write call, like the database's "
           "default). Per call the time is `time.ticks_us()` around the bare call (the median cost of an "
           "empty timer pair is subtracted). Every 1/20th call is a heap sample: `gc.collect()` before it "
           "(untimed) and `gc.mem_alloc()` after gives the bytes it allocated (`alloc/call`) and the peak "
           "(live heap before + allocated, an upper bound). Other calls run with the collector on, so "
           "collection pauses land in the calls that trigger them (visible in p95/max). Heap per record: "
           "live heap of an in-memory database holding N records minus the empty one, / N. "
           "Workloads: `seed` = the earlier report's mix (13 puts with tags, 4 gets, 1 delete, 4 batch puts "
           "of 43 items, 2 batch deletes of 12, 20 queries of its kinds: equality, `$eq $ne $gt $gte $lt "
           "$lte $in $exists $contains`, dotted paths, tags, `$limit`, `$and`), repeated on a fresh database; "
           "`N documents` = put N (with tags), get N in scrambled order, overwrite N, close/reopen (file), "
           "queries (equality, range, tag; then equality and range on secondary indexes), 10 batches of 10 "
           "and 5 of 100 (each put then deleted), delete N singly, then N records of which half carry a TTL, "
           "the clock jumps, one `cleanup()`. Where `calls` is below N (qemu file mode above 100 records), "
           "the other records were written untimed in batches and only that many calls were timed.\n\n"]
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(notes):
        with open(notes) as f:
            out.append(f.read().rstrip() + "\n\n")
    for t in ("qemu", "unix"):
        if t in data:
            out.append(section_md(data[t]))
            out.append("\n")
    out.append("## Plot\n\n![per-operation cost vs database size](bench.png)\n")
    return "".join(out)


def console(sec):
    out = ["Goals (%s):" % sec["meta"]["target"]]
    out += ["  %-38s %-26s %s | %s" % r for r in goals(sec)]
    mt = mem_table(sec)
    if mt:
        out += ["Memory mode, DB / raw (same run):", mt]
    return "\n".join(out)


PLOT_OPS = (("put", 1), ("get", 1), ("overwrite", 1), ("delete", 1), ("query_range", 1),
            ("put_batch100", 100), ("delete_batch100", 100), ("cleanup_half", None))


def plot(data, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    targets = [t for t in ("qemu", "unix") if t in data]
    ncol = 4
    nrow = (len(PLOT_OPS) + ncol - 1) // ncol
    fig, axes = plt.subplots(len(targets) * nrow, ncol, figsize=(3.1 * ncol, 2.7 * nrow * len(targets)),
                             squeeze=False)
    styles = {("db", "mem"): ("tab:blue", "-", "o"), ("db", "file"): ("tab:red", "-", "s"),
              ("raw", "mem"): ("tab:blue", ":", "o"), ("raw", "file"): ("tab:red", ":", "s")}
    for row, t in enumerate(targets):
        sec = data[t]
        ops = sec["summary"]["ops"]
        ns = _sizes(sec)
        q = t == "qemu"
        for i, (op, per) in enumerate(PLOT_OPS):
            col = i % ncol
            ax = axes[row * nrow + i // ncol][col]
            for (impl, mode), (c, ls, mk) in styles.items():
                xs, ys = [], []
                for n in ns:
                    e = ops.get(_key("n%d" % n, mode, impl, op))
                    if not e:
                        continue
                    div = per if per else (n + 1) // 2
                    y = (e["esp32_ms_median"] * 1000 if q else e["median"]) / div
                    xs.append(n)
                    ys.append(max(y, 0.01))
                if xs:
                    ax.plot(xs, ys, color=c, linestyle=ls, marker=mk, label="%s %s" % (impl, mode))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title("%s: %s%s" % (t, op, " /item" if per != 1 else ""), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
            if col == 0:
                ax.set_ylabel("ESP32 est. µs (qemu)" if q else "host µs (unix)", fontsize=8)
            if row == len(targets) - 1 and i // ncol == nrow - 1:
                ax.set_xlabel("documents", fontsize=8)
        axes[row * nrow][0].legend(fontsize=7)
    fig.suptitle("MicroTetherDB per-operation cost (median) vs database size; dotted = raw btree+json floor",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render(data, out, with_plot=True):
    """benchmarks.md (and bench.png) of ``data`` into directory ``out``."""
    with open(os.path.join(out, "benchmarks.md"), "w") as f:
        f.write(markdown(data))
    if with_plot:
        plot(data, os.path.join(out, "bench.png"))


def summary_only(section):
    """A section without its raw samples: meta, failures, summary, and the
    records the Markdown lists by name (did not fit / errors)."""
    out = dict(section)
    out["records"] = [r for r in section["records"] if r.get("t") in ("nofit", "err")]
    return out


def update_docs(data, docs, with_plot=True):
    """Merge ``data``'s sections into docs/benchmarks.json (summaries only) and
    render docs/benchmarks.md and docs/bench.png from it; returns the paths."""
    path = os.path.join(docs, "benchmarks.json")
    merged = {}
    if os.path.exists(path):
        with open(path) as f:
            merged = json.load(f)
    for t, sec in data.items():
        merged[t] = summary_only(sec)
    with open(path, "w") as f:
        json.dump(merged, f, indent=0, sort_keys=True)
        f.write("\n")
    render(merged, docs, with_plot)
    return [path, os.path.join(docs, "benchmarks.md")] + ([os.path.join(docs, "bench.png")] if with_plot else [])


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(src)
    with open(src) as f:
        data = json.load(f)
    for t in data:
        if any(r.get("t") == "op" for r in data[t]["records"]):   # raw samples: summarize again
            data[t]["summary"] = summarize(data[t])
    render(data, dst)
