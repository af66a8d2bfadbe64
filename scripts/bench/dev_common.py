# Benchmark device code, part 1: timing, statistics, heap sampling, output.
# MicroPython 1.25 (also runs on the unix port). The host driver
# (scripts/bench/run.py) concatenates: a line `CFG = {...}`, this file, one
# implementation file (dev_raw.py or dev_db.py) and one workload file
# (dev_seed.py or dev_scaled.py), and runs the result in the target.
#
# Output protocol: every result is one line `@@B <json object>` on stdout.
#   {"t": "op", ...}    per-operation statistics (times in target microseconds)
#   {"t": "heap", ...}  heap figures of one phase (bytes)
#   {"t": "val", ...}   a single measured value (file size, result counts...)
#   {"t": "err", ...}   a phase that failed (MemoryError on a small heap...)
#   {"t": "end"}        the program finished
import gc
import json
import time

try:
    _ticks = time.ticks_us
    _diff = time.ticks_diff
except AttributeError:  # CPython, only for syntax checks
    _ticks = lambda: int(time.perf_counter() * 1000000)
    _diff = lambda a, b: a - b

_BASE = {"impl": CFG["impl"], "mode": CFG["mode"], "work": CFG["work"]}


def emit(rec):
    for k in _BASE:
        if k not in rec:
            rec[k] = _BASE[k]
    print("@@B", json.dumps(rec))


def _calibrate():
    # median cost of an empty ticks_us() pair, subtracted from every sample
    s = [0] * 101
    for i in range(101):
        t0 = _ticks()
        t1 = _ticks()
        s[i] = _diff(t1, t0)
    s.sort()
    return s[50]


# Flash accounting (qemu, CFG["fc"]): remount /flash over a block device that
# counts LittleFS's block reads, bytes programmed and block erases. The Python
# wrapper costs time, so such a run is only used for the counts.
FC = None
if CFG.get("fc"):
    import vfs
    import ramdisk

    class _CountBD:
        def __init__(self, bd):
            self.bd = bd

        def readblocks(self, n, buf, off=0):
            FC[0] += 1
            return self.bd.readblocks(n, buf, off)

        def writeblocks(self, n, buf, off=None):
            FC[1] += len(buf)
            if off is None:  # simple interface: erase + program whole blocks
                FC[2] += len(buf) // 4096
                return self.bd.writeblocks(n, buf)
            return self.bd.writeblocks(n, buf, off)

        def ioctl(self, op, arg):
            if op == 6:
                FC[2] += 1
            return self.bd.ioctl(op, arg)

    try:
        vfs.umount("/flash")
    except OSError:
        pass
    FC = [0, 0, 0]  # block reads, bytes programmed, block erases
    vfs.mount(vfs.VfsLfs2(_CountBD(ramdisk.RAMDisk())), "/flash")


class Op:
    # Collects per-call times of one operation into a preallocated list
    # (small ints: one machine word each, no allocation per sample).
    # Every `every`-th call is a heap sample: gc.collect() first (untimed),
    # then the bytes allocated by that call are measured. `peak` is the
    # largest gc.mem_alloc() seen right after a sampled call = live heap
    # before it + everything it allocated (an upper bound of the true peak).
    def __init__(self, name, n, samples=20):
        self.name = name
        self.t = [0] * n
        self.i = 0
        self.every = n // samples if n > samples else 1
        self.alloc = 0
        self.amax = 0
        self.ns = 0
        self.peak = 0
        self.items = 0
        self.fc = [0, 0, 0]

    def _pre(self):
        if FC:
            f = self.fc
            f[0] -= FC[0]
            f[1] -= FC[1]
            f[2] -= FC[2]
        if self.i % self.every == 0:
            gc.collect()
            return gc.mem_alloc()
        return -1

    def _post(self, m0, t0, t1):
        if FC:
            f = self.fc
            f[0] += FC[0]
            f[1] += FC[1]
            f[2] += FC[2]
        if m0 >= 0:
            m1 = gc.mem_alloc()
            d = m1 - m0
            if d < 0:  # the call freed memory explicitly (m_free)
                d = 0
            self.alloc += d
            self.ns += 1
            if d > self.amax:
                self.amax = d
            if m1 > self.peak:
                self.peak = m1
        self.t[self.i] = _diff(t1, t0) - OVERHEAD
        self.i += 1

    # run/run2/run3 call fn directly (no wrapper between the timer and the
    # function under test), with 1, 2 or 3 positional arguments.
    def run(self, fn, a):
        m0 = self._pre()
        t0 = _ticks()
        r = fn(a)
        t1 = _ticks()
        self._post(m0, t0, t1)
        return r

    def run2(self, fn, a, b):
        m0 = self._pre()
        t0 = _ticks()
        r = fn(a, b)
        t1 = _ticks()
        self._post(m0, t0, t1)
        return r

    def run3(self, fn, a, b, c):
        m0 = self._pre()
        t0 = _ticks()
        r = fn(a, b, c)
        t1 = _ticks()
        self._post(m0, t0, t1)
        return r

    def run4(self, fn, a, b, c, d):
        m0 = self._pre()
        t0 = _ticks()
        r = fn(a, b, c, d)
        t1 = _ticks()
        self._post(m0, t0, t1)
        return r

    def run0(self, fn):
        m0 = self._pre()
        t0 = _ticks()
        r = fn()
        t1 = _ticks()
        self._post(m0, t0, t1)
        return r

    def done(self, extra=None):
        n = self.i
        t = self.t
        if n < len(t):
            t = t[:n]
        self.t = None
        for j in range(n):
            if t[j] < 0:
                t[j] = 0
        t.sort()
        tot = 0
        for v in t:
            tot += v
        p95 = (95 * n + 99) // 100 - 1
        if n % 2:
            med = t[n // 2]
        else:
            med = (t[n // 2 - 1] + t[n // 2]) / 2
        rec = {
            "t": "op", "op": self.name, "n": n,
            "mean": tot / n, "median": med,
            "p95": t[p95 if p95 > 0 else 0], "min": t[0], "max": t[-1],
            "total": tot,
            "alloc": (self.alloc // self.ns) if self.ns else None,
            "alloc_max": self.amax, "peak": self.peak,
        }
        if self.items:
            rec["items"] = self.items
        if FC:
            rec["flash"] = self.fc  # totals over the n calls
        if extra:
            for k in extra:
                rec[k] = extra[k]
        emit(rec)
        gc.collect()


def timed_once(name, fn, extra=None):
    o = Op(name, 1)
    r = o.run0(fn)
    o.done(extra)
    return r


def live():
    gc.collect()
    return gc.mem_alloc()


def heap_rec(phase, before, after, extra=None):
    rec = {"t": "heap", "phase": phase, "before": before, "after": after,
           "free": gc.mem_free()}
    if extra:
        for k in extra:
            rec[k] = extra[k]
    emit(rec)


def val(name, v, extra=None):
    rec = {"t": "val", "name": name, "v": v}
    if extra:
        for k in extra:
            rec[k] = extra[k]
    emit(rec)


def oom(e):
    # out of heap: MemoryError, or ENOMEM from btree's malloc (an OSError)
    return isinstance(e, MemoryError) or (isinstance(e, OSError) and e.args and e.args[0] == 12)


def err(phase, e):
    # MemoryError (and the database's DBFullError, a MemoryError subclass):
    # the phase does not fit this heap -- reported, not a benchmark failure
    t = "nofit" if oom(e) else "err"
    emit({"t": t, "phase": phase, "error": "%s: %s" % (type(e).__name__, e)})


# A fake clock for TTL: the database and the raw baseline both read it.
CLOCK = [1700000000]


def clock():
    return CLOCK[0]


def path_for(tag):
    return "%s/%s_%s.db" % (CFG["dir"], CFG["impl"], tag)


def rm(p):
    # a database file (format 1, raw btree) or folder (format 2)
    import os
    try:
        if os.stat(p)[0] & 0x4000:
            for e in os.ilistdir(p):
                rm(p + "/" + e[0])
            os.rmdir(p)
        else:
            os.remove(p)
    except OSError:
        pass


def fsize(p):
    # bytes of a database file, or of all files of a database folder
    import os
    try:
        st = os.stat(p)
    except OSError:
        return None
    if not st[0] & 0x4000:
        return st[6]
    return sum(fsize(p + "/" + e[0]) or 0 for e in os.ilistdir(p))


# Documents: small sensor readings, ~100 bytes of JSON, deterministic.
TYPES = ("temp", "hum", "pres", "co2")
ROOMS = ("kitchen", "hall", "lab", "attic", "garage")


def doc(i):
    return {"name": "sensor%d" % i, "type": TYPES[i % 4], "value": (i * 37) % 100,
            "room": ROOMS[i % 5], "meta": {"floor": i % 3, "ok": i % 7 != 0}}


def tags(i):
    return ["t%d" % (i % 8), "even" if i % 2 == 0 else "odd"]


OVERHEAD = _calibrate()
gc.collect()
