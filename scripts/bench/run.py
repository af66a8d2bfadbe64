#!/usr/bin/env python3
"""Benchmark driver (host side, CPython 3.11).

Runs the device-side benchmark programs (dev_*.py beside this file) inside
the built MicroPython -- the unix port (build/unix/micropython) or the qemu
Cortex-M3 image (build/qemu/firmware.elf, under `-icount`) -- collects the
`@@B {json}` lines they print and writes, into build/bench (--out DIR):

  benchmarks.json  all records plus a summary, one section per target
  benchmarks.md    tables (seed workload, scaled workloads, heap, goals)
  bench.png        per-operation cost vs database size (matplotlib)

With --docs (make bench DOCS=1) it also updates the tracked copies in docs/:
benchmarks.md, bench.png and benchmarks.json, the latter with the summary
only (no raw samples). matplotlib (and mpremote for qemu) are installed into
build/venv when missing, never into the system Python.

Each program is one (implementation, storage mode, workload) triple:
implementation `raw` (btree + json by a minimal loop, the floor) or `db`
(MicroTetherDB), mode `mem` (BytesIO) or `file`, workload `seed` (the
earlier report's mix) or `nN` (scaled, N documents). Every program runs in
a fresh interpreter (unix: a new process; qemu: a soft reset).

    python3 scripts/bench/run.py --target unix --sizes 100,1000,10000 --runs 5
    python3 scripts/bench/run.py --target qemu --sizes 100,1000
    python3 scripts/bench/run.py --target qemu --docs     # ... and update docs/
    python3 scripts/bench/run.py --smoke --out /tmp/x    # tiny, for tests
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import report  # noqa: E402

UNIX_BIN = os.path.join(ROOT, "build", "unix", "micropython")
OUT = os.path.join(ROOT, "build", "bench")
DOCS = os.path.join(ROOT, "docs")
VENV_PYTHON = os.path.join(ROOT, "build", "venv", "bin", "python")
QEMU_ELF = os.path.join(ROOT, "build", "qemu", "firmware.elf")
UNIX_HEAP = "32M"
ICOUNT_SHIFT = 0  # 1 instruction = 2**0 ns of virtual time: us * 1000 = instructions
MARK = "@@B "
QEMU_MEM_RAM_PERCENTAGE = 50
# unix, memory mode: 10,000 records with tags/TTL and two secondary indexes
# take ~5.5 MB of btree pages (pages half full: see docs/benchmarks.md);
# the store grows with the data, so a larger budget costs nothing until used
UNIX_MEM_RAM_PERCENTAGE = 30


def need(wanted, argv):
    """Make the modules of `wanted` ((module, pip spec) pairs) importable: if one
    is missing, install it into build/venv (created first if needed) and run
    this script again under build/venv's Python. Never touches the system Python."""
    import importlib.util
    missing = [spec for module, spec in wanted if importlib.util.find_spec(module) is None]
    if not missing:
        return
    sys.path.insert(0, ROOT)
    from firmware.system import venv_python
    vpy = venv_python()
    print("[bench] pip install %s into build/venv" % " ".join(missing), flush=True)
    subprocess.run([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + missing,
                   check=True)
    if os.path.realpath(sys.executable) == os.path.realpath(vpy):
        importlib.invalidate_caches()
        return
    os.execv(vpy, [vpy, os.path.abspath(__file__)] + list(argv))


def program(cfg, impl, work):
    """The device program: CFG line + common + implementation + workload."""
    parts = ["CFG = %r\n" % (cfg,)]
    for name in ("dev_common.py", "dev_%s.py" % impl,
                 "dev_seed.py" if work.startswith("seed") else "dev_scaled.py"):
        with open(os.path.join(HERE, name)) as f:
            parts.append(f.read())
    return "\n".join(parts)


def parse(text):
    recs = []
    for line in text.splitlines():
        i = line.find(MARK)
        if i >= 0:
            try:
                recs.append(json.loads(line[i + len(MARK):]))
            except ValueError:
                pass
    return recs


class UnixRunner:
    name = "unix"

    def __init__(self, binary=UNIX_BIN, heap=UNIX_HEAP):
        if not os.path.exists(binary):
            raise SystemExit("no %s: run `make firmware` first" % binary)
        self.heap = heap
        # tmpfs when there is one: fsync() of a real disk would make file mode
        # measure the host's disk, not the code (the device figures come from qemu)
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.tmp = tempfile.mkdtemp(prefix="mtdb-bench-", dir=shm)
        # a private copy: a rebuild during the run must not mix firmware versions
        self.binary = os.path.join(self.tmp, "micropython")
        shutil.copy2(binary, self.binary)
        self.sha = sha(self.binary)
        self.devdir = self.tmp

    def run(self, src, timeout):
        path = os.path.join(self.tmp, "prog.py")
        with open(path, "w") as f:
            f.write(src)
        # MICROPYPATH empty: only the frozen package, never files from the work tree
        env = dict(os.environ, MICROPYPATH="")
        p = subprocess.run([self.binary, "-X", "heapsize=" + self.heap, path], env=env,
                           capture_output=True, text=True, errors="replace",
                           timeout=timeout, cwd=self.tmp)
        return p.stdout + p.stderr

    def version(self):
        src = "import sys; print(sys.implementation, sys.version)"
        return self.run(src, 30).strip()

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class QemuRunner:
    """Runs programs in the qemu image through scripts/qemu_run.py's QemuSession,
    with -icount so that time on the board is virtual and deterministic."""
    name = "qemu"

    def __init__(self, elf=QEMU_ELF, shift=ICOUNT_SHIFT):
        if not os.path.exists(elf):
            raise SystemExit("no %s: run `make firmware TARGET=qemu` first" % elf)
        sys.path.insert(0, os.path.join(ROOT, "scripts"))
        import qemu_run
        self.shift = shift
        # a private copy: QEMU reloads the image if it has to restart
        self.tmp = tempfile.mkdtemp(prefix="mtdb-bench-")
        elf_copy = os.path.join(self.tmp, "firmware.elf")
        shutil.copy2(elf, elf_copy)
        self.sha = sha(elf_copy)
        self.session = qemu_run.QemuSession(elf_copy, icount=shift)
        self.session.start()
        self.devdir = "/flash/bench"
        self.session.run_code("import os\ntry:\n os.mkdir('/flash/bench')\nexcept OSError:\n pass\n")

    def run(self, src, timeout):
        import qemu_run
        try:
            return self.session.run_code(src, timeout=timeout)
        except qemu_run.QemuError as e:
            return "QemuError: %s" % e

    def version(self):
        return self.run("import sys; print(sys.implementation, sys.version)", 60).strip()

    def close(self):
        try:
            self.session.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def sha(path):
    import hashlib
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return None


def git_commit():
    # HEAD, with "-dirty" when the measured code (package, boards, firmware
    # driver, benchmark programs) differs from it
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip() or None
        if c and subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "modules", "boards",
                                 "firmware", "scripts/bench"], cwd=ROOT).returncode:
            c += "-dirty"
        return c
    except OSError:
        return None


def machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def plan(args):
    """The list of (work, mode, impl, cfg-extra) programs of one run."""
    progs = []
    for mode in args.modes:
        for impl in ("raw", "db"):
            progs.append(("seed", mode, impl, {"reps": args.reps}))
    lazy = {"sync": False, "dbopts": {"autoflush": False}}
    if "file" in args.modes and not args.smoke:
        # file mode without a flush per write call (durable at close/flush())
        for impl in ("raw", "db"):
            progs.append(("seedlazy", "file", impl, dict(lazy, reps=args.reps)))
    if args.target == "qemu" and "file" in args.modes and not args.smoke:
        # flash traffic of the seed workload: /flash remounted over a counting
        # block device (its Python wrapper costs time: only the counts are used)
        for impl in ("raw", "db"):
            progs.append(("seedflash", "file", impl, {"reps": 1, "fc": True}))
        for impl in ("raw", "db"):
            progs.append(("seedlazyflash", "file", impl, dict(lazy, reps=1, fc=True)))
    for n in args.sizes:
        for mode in args.modes:
            if args.target == "qemu" and mode == "mem" and n > args.qemu_mem_max:
                continue
            for impl in ("raw", "db"):
                extra = {"n": n, "qreps": 3 if n >= 10000 else 5}
                if args.target == "qemu" and mode == "file" and n > 100:
                    extra["ops"] = args.qemu_file_ops
                if args.smoke:
                    extra.update({"qreps": 2, "b10": 2, "b100": 1})
                progs.append(("n%d" % n, mode, impl, extra))
    return progs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="unix", choices=("unix", "qemu"))
    ap.add_argument("--sizes", default="", help="default unix 100,1000,10000; qemu 50,100,300,1000")
    ap.add_argument("--modes", default="mem,file")
    ap.add_argument("--runs", type=int, default=None,
                    help="repeat every program (unix default 5; qemu 1: deterministic)")
    ap.add_argument("--reps", type=int, default=None, help="seed workload repetitions per program")
    ap.add_argument("--qemu-mem-max", type=int, default=100,
                    help="largest N run in memory mode on qemu (~140 KB heap)")
    ap.add_argument("--qemu-file-ops", type=int, default=50,
                    help="qemu file mode, N > 100: time this many put/get/overwrite/delete "
                         "calls (the rest is written in batches): each flush on LittleFS "
                         "rewrites the file's tail, so N single puts cost O(N^2)")
    ap.add_argument("--out", default=OUT, help="where results go (default build/bench)")
    ap.add_argument("--docs", action="store_true",
                    help="also update docs/benchmarks.md, docs/bench.png and docs/benchmarks.json (summary)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run, no plot")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--only", default="", help="comma list of workloads to run (seed,seedflash,n100...,"
                                                "memfx: the memory store's effect)")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--dbopts", default="{}", help="JSON dict of extra MicroTetherDB kwargs")
    args = ap.parse_args(argv)
    if not args.sizes:
        args.sizes = "50,100,300,1000" if args.target == "qemu" else "100,1000,10000"
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.modes = [m for m in args.modes.split(",") if m]
    if args.smoke:
        args.sizes = [20]
        args.runs = 1
        args.reps = 1
        args.no_plot = True
    if args.runs is None:
        args.runs = 1 if args.target == "qemu" else 5
    if args.reps is None:
        args.reps = 3 if args.target == "qemu" else 5
    dbopts = json.loads(args.dbopts)
    argv_ = sys.argv[1:] if argv is None else list(argv)
    need(([("mpremote", "mpremote==1.25.0")] if args.target == "qemu" else [])
         + ([] if args.no_plot else [("matplotlib", "matplotlib==3.11.2")]), argv_)

    # SIGTERM (a CI timeout, kill) -> SystemExit, so that `finally` stops QEMU
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    runner = UnixRunner() if args.target == "unix" else QemuRunner()
    t_start = time.time()
    records = []
    failures = []
    try:
        version = runner.version()
        progs = plan(args)
        if args.only:
            keep = args.only.split(",")
            progs = [p for p in progs if p[0] in keep]
        for run in range(args.runs):
            for work, mode, impl, extra in progs:
                opts = dict(dbopts)
                if args.target == "qemu" and mode == "mem":
                    # the default 15 % of a ~140 KB heap (~21 KB) holds ~60 records
                    opts.setdefault("ram_percentage", QEMU_MEM_RAM_PERCENTAGE)
                elif mode == "mem":
                    opts.setdefault("ram_percentage", UNIX_MEM_RAM_PERCENTAGE)
                cfg = {"impl": impl, "mode": mode, "work": work, "dir": runner.devdir,
                       "target": args.target, "sync": True, "dbopts": opts}
                cfg.update(extra)
                t0 = time.time()
                try:
                    out = runner.run(program(cfg, impl, work), args.timeout)
                except subprocess.TimeoutExpired:
                    out = "timeout after %ds" % args.timeout
                recs = parse(out)
                ok = any(r.get("t") == "end" for r in recs)
                errs = [r for r in recs if r.get("t") == "err"]
                for r in recs:
                    if r.get("t") == "nofit":
                        print("  does not fit: %s: %s" % (r["phase"], r["error"]), flush=True)
                for r in recs:
                    r["run"] = run
                    r.setdefault("impl", impl)
                    r.setdefault("mode", mode)
                    r.setdefault("work", work)
                records.extend(recs)
                status = "ok" if ok and not errs else "FAILED"
                print("[bench %s run %d] %-6s %-4s %-3s %5.1fs %s" % (
                    args.target, run, work, mode, impl, time.time() - t0, status), flush=True)
                if not ok or errs:
                    tail = "\n".join(out.strip().splitlines()[-12:])
                    failures.append({"run": run, "work": work, "mode": mode, "impl": impl,
                                     "errors": [e["error"] for e in errs], "tail": tail})
                    print(tail, file=sys.stderr)
        memfx = []
        if "mem" in args.modes and not args.smoke and (not args.only or "memfx" in args.only.split(",")):
            # the memory store's effect on the rest of the program (memfx.py)
            with open(os.path.join(HERE, "memfx.py")) as f:
                src = "CFG = %r\n" % ({"pct": 15, "nrec": 60},) + f.read()
            out = runner.run(src, args.timeout)
            for line in out.splitlines():
                i = line.find("@@M ")
                if i >= 0:
                    try:
                        r = json.loads(line[i + 4:])
                    except ValueError:
                        continue
                    if "setup" in r:
                        memfx.append(r)
            print("[bench %s] memfx: %d setups" % (args.target, len(memfx)), flush=True)
    finally:
        runner.close()

    section = {
        "meta": {
            "target": args.target,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "micropython": version,
            "commit": git_commit(),
            "qemu_file_ops": args.qemu_file_ops if args.target == "qemu" else None,
            "qemu_mem_max": args.qemu_mem_max if args.target == "qemu" else None,
            "runs": args.runs, "seed_reps": args.reps, "sizes": args.sizes, "modes": args.modes,
            "unix_heap": UNIX_HEAP if args.target == "unix" else None,
            "icount_shift": runner.shift if args.target == "qemu" else None,
            "dbopts": dbopts,
            "firmware_sha256": runner.sha,
            "qemu_mem_ram_percentage": QEMU_MEM_RAM_PERCENTAGE if args.target == "qemu" else None,
            "mem_ram_percentage": QEMU_MEM_RAM_PERCENTAGE if args.target == "qemu" else UNIX_MEM_RAM_PERCENTAGE,
            "seconds": round(time.time() - t_start, 1),
            "command": "scripts/bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "failures": failures,
        "records": records,
        "memfx": memfx,
    }
    section["summary"] = report.summarize(section)
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, "benchmarks.json")
    data = {}
    if os.path.exists(jpath) and not args.smoke:
        try:
            with open(jpath) as f:
                data = json.load(f)
        except ValueError:
            data = {}
    old = data.get(args.target)
    if args.only and old:
        # a partial run replaces only its workloads in the existing section
        keep = set(args.only.split(","))
        section["records"] = [r for r in old["records"] if r.get("work") not in keep] + records
        section["failures"] = [f for f in old.get("failures", []) if f["work"] not in keep] + failures
        parts = old["meta"].get("parts") or [{k: old["meta"].get(k) for k in
                                              ("date", "command", "firmware_sha256", "micropython")}]
        section["meta"]["parts"] = parts + [{k: section["meta"].get(k) for k in
                                             ("date", "command", "firmware_sha256", "micropython")}]
        section["summary"] = report.summarize(section)
        if not memfx and old.get("memfx"):
            section["memfx"] = old["memfx"]
    data[args.target] = section
    with open(jpath, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    report.render(data, args.out, with_plot=not args.no_plot)
    wrote = [jpath]
    if args.docs:
        wrote += report.update_docs(data, DOCS, with_plot=not args.no_plot)
    print(report.console(section))
    print("wrote %s (%d records, %d failures, %.0fs)" % (", ".join(os.path.relpath(p) for p in wrote),
                                                         len(records), len(failures),
                                                         time.time() - t_start))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
