"""Damaged files never crash the interpreter.

A small real database (records with TTL and tags, a secondary index, an
overflow record, deleted records on the free list) is written by the host
firmware, in each file format. Then MTDB_FUZZ_CASES (default 2,000 per
format) damaged copies are made in CPython, each by one mutation. Format 1
(one btree file): aimed at what btree reads: bit flips, page header fields
(page number, sibling links, flags, lower/upper bounds), line pointers, entry
size fields, overflow references, the meta page, random 16-byte chunks,
truncation. Format 2 (a folder): one of its files (a chunk, mostly; the
header; a commit-log slot) gets bit flips, a random chunk, truncation,
garbage appended, or is deleted. Every copy is opened and used (reads, queries
through the index and the tags, writes, cleanup, reindex, compact, close,
reopen) in a fresh MicroPython process, so that a crash or a hang is caught
and counted, not lost.

Asserted: 0 crashes (signals), 0 hangs (timeouts), 0 exceptions of an
undocumented type (a damaged file raises CorruptDBError naming the file; a
write may also raise OSError/MemoryError as documented). Printed: how many
copies were refused at open, opened and read identical, opened with content
that differs from the original (records carry no checksum: a flipped byte
inside a JSON value reads back as a different value; a known limit).
"""

import concurrent.futures
import json
import os
import random
import struct
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "unix", "micropython")
CASES = int(os.environ.get("MTDB_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("MTDB_FUZZ_SEED", "20261201"))
TIMEOUT = 30

BUILD = r'''
import sys
from microtetherdb import MicroTetherDB
db = MicroTetherDB(sys.argv[1], in_memory=False, clock=lambda: 1000, file_format=int(sys.argv[2]))
db.create_index("n")
for i in range(90):
    d = {"n": i % 7, "name": "rec%03d" % i, "pad": "p" * (i % 31)}
    if i % 5 == 0:
        db.put("r%03d" % i, d, ttl=500 + i, tags=["even" if i % 2 == 0 else "odd", "t%d" % (i % 3)])
    elif i % 3 == 0:
        db.put("r%03d" % i, d, tags=["t%d" % (i % 3)])
    else:
        db.put("r%03d" % i, d)
db.put("big", {"n": 99, "blob": "b" * 1400})
for i in range(0, 90, 4):
    db.delete("r%03d" % i)
for i in range(5):  # (format 2: calls after the last checkpoint, in the log)
    db.put("late%d" % i, {"n": i}, tags=["t1"])
db.close()
'''

# One damaged copy, used every way a user would; prints one @@ line per
# outcome. Documented outcomes: the call works, or CorruptDBError naming the
# file; writes may also raise OSError or MemoryError.
PROBE = r'''
import sys
from microtetherdb import MicroTetherDB, CorruptDBError, DBError
path = sys.argv[1]
NOW = [1000]


def step(name, fn, writes=False):
    try:
        return True, fn()
    except CorruptDBError as e:
        if path not in str(e):
            print("@@UNNAMED", name, repr(e))
        print("@@CORRUPT", name)
    except (OSError, MemoryError) as e:
        if not writes:
            print("@@UNDOC", name, type(e).__name__, repr(e))
        else:
            print("@@WRITEERR", name, repr(e))
    except DBError as e:
        if "closed" not in str(e):
            print("@@UNDOC", name, type(e).__name__, repr(e))
    except Exception as e:
        print("@@UNDOC", name, type(e).__name__, repr(e))
    return False, None


ok, db = step("open", lambda: MicroTetherDB(path, in_memory=False, clock=lambda: NOW[0]))
if ok:
    ok, items = step("items", lambda: sorted(db.items()))
    if ok:
        print("@@ITEMS", repr(items))
    step("len", lambda: len(db))
    for k in ("r001", "r005", "r045", "big", "r089", "nope"):
        step("get", lambda: db.get(k))
    step("query-index", lambda: db.query({"n": 3}))
    step("query-range", lambda: db.query({"n": {"$gte": 2, "$lt": 5}}))
    step("query-tags", lambda: db.query({"$tags": "t1"}))
    step("query-scan", lambda: db.query({"name": {"$gte": "rec050"}}))
    step("keys-prefix", lambda: list(db.keys(prefix="r0")))
    step("put", lambda: db.put("r002", {"n": 3, "new": 1}, tags=["t1"]), True)
    step("put-new", lambda: db.put({"n": 5}, ttl=10), True)
    step("delete", lambda: db.delete("r007"), True)
    step("batch", lambda: db.put_batch([("x%d" % i, {"n": i}) for i in range(12)]), True)
    step("delete-batch", lambda: db.delete_batch(["r009", "r010", "x3"]), True)
    NOW[0] = 1600
    step("cleanup", lambda: db.cleanup(), True)
    step("reindex", lambda: db.reindex(), True)
    step("stats", lambda: db.stats())
    step("compact", lambda: db.compact(), True)
    step("close", lambda: db.close(), True)
    ok, db = step("reopen", lambda: MicroTetherDB(path, in_memory=False, clock=lambda: NOW[0]))
    if ok:
        step("items-after", lambda: list(db.items()))
        step("close-after", lambda: db.close())
print("@@DONE")
'''


def _pages(data):
    psize = struct.unpack_from("<I", data, 8)[0]
    return psize, len(data) // psize


def _tree_pages(data, psize, n):
    # (page, flags, lower, upper) of pages with a plausible tree header
    out = []
    for pg in range(1, n):
        o = pg * psize
        pgno, prev, nxt, flags, lower, upper = struct.unpack_from("<IIIIHH", data, o)
        if pgno == pg and flags in (1, 2, 4) and 20 <= lower <= upper <= psize:
            out.append((pg, flags, lower, upper))
    return out


def mutate(data, rng):
    """One damaged copy of `data` -> (kind, bytes)."""
    b = bytearray(data)
    psize, n = _pages(data)
    tree = _tree_pages(data, psize, n)
    kind = rng.choice(["bitflip", "bitflips", "header", "header", "flags", "linp", "linp",
                       "sizes", "sizes", "ovflref", "meta", "chunk", "truncate", "swap"])
    pg, flags, lower, upper = rng.choice(tree)
    o = pg * psize
    if kind == "bitflip":
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == "bitflips":
        for _ in range(rng.randrange(2, 9)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "header":
        field = rng.choice([(0, "I"), (4, "I"), (8, "I"), (16, "H"), (18, "H")])
        val = rng.choice([0, 1, 2, n - 1, n, n + 1, 0xFFFF, 0xFFFFFFFF if field[1] == "I" else 0xFFFF,
                          rng.randrange(0, 1 << (32 if field[1] == "I" else 16)), pg])
        struct.pack_into("<" + field[1], b, o + field[0], val & (0xFFFFFFFF if field[1] == "I" else 0xFFFF))
    elif kind == "flags":
        struct.pack_into("<I", b, o + 12, rng.choice([0, 1, 2, 3, 4, 6, 8, 0x10, 0x11, 0x12, 0x20, 0x22, 0xFF,
                                                      rng.randrange(1 << 32)]))
    elif kind == "linp":
        cnt = (lower - 20) // 2
        if cnt == 0:
            struct.pack_into("<H", b, o + 16, 22)
        else:
            i = rng.randrange(cnt)
            struct.pack_into("<H", b, o + 20 + 2 * i, rng.choice([0, 1, 19, 20, upper - 1, psize - 8, psize - 1,
                                                                   psize, 0xFFFF, rng.randrange(psize)]))
    elif kind == "sizes" or kind == "ovflref":
        cnt = (lower - 20) // 2
        if cnt:
            i = rng.randrange(cnt)
            e = struct.unpack_from("<H", data, o + 20 + 2 * i)[0]
            if e + 9 <= psize:
                if kind == "sizes":
                    off = rng.choice([0, 4, 8])  # ksize, dsize/pgno, entry flags
                    if off == 8:
                        b[o + e + 8] = rng.choice([0, 1, 2, 3, 4, 0xFF])
                    else:
                        struct.pack_into("<I", b, o + e + off, rng.choice(
                            [0, 1, psize, psize * 2, n, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32)]))
                else:
                    b[o + e + 8] |= rng.choice([1, 2, 3])  # claim an overflow key/data
                    if e + 17 <= psize:
                        struct.pack_into("<II", b, o + e + 9, rng.choice([0, 1, n - 1, n, 0xFFFFFFFF]),
                                         rng.choice([0, 1, 500, 1 << 20, 0xFFFFFFFF]))
    elif kind == "meta":
        field = rng.choice([0, 4, 8, 12, 16, 20])
        struct.pack_into("<I", b, field, rng.choice([0, 1, 2, 511, 513, 1024, n, n + 5, 0xFFFFFFFF,
                                                     rng.randrange(1 << 32)]))
    elif kind == "chunk":
        i = rng.randrange(len(b) - 16)
        b[i:i + 16] = bytes(rng.randrange(256) for _ in range(16))
    elif kind == "truncate":
        del b[rng.randrange(1, len(b)):]
    elif kind == "swap":  # two pages exchanged
        q = rng.choice(tree)[0]
        a, c = pg * psize, q * psize
        b[a:a + psize], b[c:c + psize] = data[c:c + psize], data[a:a + psize]
    return kind, bytes(b)


def mutate2(files, rng):
    """One damaged copy of a format-2 folder (dict name -> bytes) -> (kind, files)."""
    files = dict(files)
    names = sorted(files)
    chunks = [n for n in names if n.startswith("c")]
    logs = [n for n in names if n.startswith("l/")]
    name = rng.choice(chunks * 6 + ["h"] + logs)
    b = bytearray(files[name])
    kind = rng.choice(["bitflip", "bitflips", "chunk", "truncate", "append", "delete", "zero"])
    if kind == "bitflip" and b:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == "bitflips" and b:
        for _ in range(rng.randrange(2, 9)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "chunk" and len(b) > 16:
        i = rng.randrange(len(b) - 16)
        b[i:i + 16] = bytes(rng.randrange(256) for _ in range(16))
    elif kind == "truncate" and b:
        del b[rng.randrange(len(b)):]
    elif kind == "append":
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
    elif kind == "zero" and b:
        i = rng.randrange(len(b))
        b[i:i + 512] = bytes(len(b[i:i + 512]))
    elif kind == "delete":
        del files[name]
        return kind + " " + name[:1], files
    files[name] = bytes(b)
    return kind + " " + name[:1], files


def _read_tree(path):
    out = {}
    for root, _, fnames in os.walk(path):
        for fn in fnames:
            full = os.path.join(root, fn)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def _write_tree(path, files):
    os.makedirs(os.path.join(path, "l"))
    os.makedirs(os.path.join(path, "c"))
    for name, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


def _run(args):
    probe, path = args
    env = dict(os.environ, MICROPYPATH="")
    try:
        p = subprocess.run([BINARY, probe, path], capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT, env=env, cwd=os.path.dirname(path))
    except subprocess.TimeoutExpired:
        return "hang", ""
    if p.returncode < 0:
        return "crash %d" % -p.returncode, p.stdout[-2000:] + p.stderr[-2000:]
    out = p.stdout + p.stderr
    if "@@DONE" not in out:
        return "died", out[-3000:]
    return "done", out


@pytest.fixture(scope="module", params=[1, 2], ids=["format1", "format2"])
def original(request, tmp_path_factory):
    if not os.path.exists(BINARY):
        pytest.skip("build/unix/micropython missing: run make firmware")
    fmt = request.param
    d = tmp_path_factory.mktemp("fuzz%d" % fmt)
    src = d / "build.py"
    src.write_text(BUILD)
    path = str(d / "orig.db")
    subprocess.run([BINARY, str(src), path, str(fmt)], check=True, env=dict(os.environ, MICROPYPATH=""),
                   timeout=60)
    probe = d / "probe.py"
    probe.write_text(PROBE)
    os.mkdir(str(d / "intact"))
    copy = str(d / "intact" / "t.db")
    if fmt == 1:
        with open(path, "rb") as f:
            data = f.read()
        with open(copy, "wb") as f:
            f.write(data)
    else:
        data = _read_tree(path)
        assert any(n.startswith("l/") for n in data), "no commit-log slot to damage"
        _write_tree(copy, data)
    st, out = _run((str(probe), copy))  # the probe writes to the database it is given
    assert st == "done" and "@@UNDOC" not in out and "@@CORRUPT" not in out, out
    items = [line for line in out.splitlines() if line.startswith("@@ITEMS")]
    return fmt, data, items[0], str(probe), d


def test_damaged_files_never_crash(original):
    fmt, data, items0, probe, d = original
    rng = random.Random(SEED)
    jobs = []
    kinds = []
    for i in range(CASES):
        kind, bad = (mutate if fmt == 1 else mutate2)(data, rng)
        if bad == data:
            continue
        p = os.path.join(str(d), "c%05d" % i)
        os.mkdir(p)
        path = os.path.join(p, "t.db")
        if fmt == 1:
            with open(path, "wb") as f:
                f.write(bad)
        else:
            _write_tree(path, bad)
        jobs.append((probe, path))
        kinds.append(kind)
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(_run, jobs))
    tally = {"refused": 0, "identical": 0, "differs": 0, "crash": 0, "hang": 0, "undocumented": 0,
             "unnamed": 0, "write errors": 0}
    bad = []
    for (probe_, path), kind, (st, out) in zip(jobs, kinds, results):
        if st != "done":
            tally["hang" if st == "hang" else "crash"] += 1
            bad.append((kind, path, st, out))
            continue
        if "@@UNDOC" in out:
            tally["undocumented"] += 1
            bad.append((kind, path, "undocumented", [ln for ln in out.splitlines() if "@@UNDOC" in ln][:3]))
        if "@@UNNAMED" in out:
            tally["unnamed"] += 1
            bad.append((kind, path, "CorruptDBError not naming the file", out[-500:]))
        if "@@WRITEERR" in out:
            tally["write errors"] += 1
        if "@@ITEMS" not in out:
            tally["refused"] += 1
        elif items0 in out.splitlines():
            tally["identical"] += 1
        else:
            tally["differs"] += 1
    print("\ndamaged-file fuzz, format %d: %d copies (seed %d): %s" % (fmt, len(jobs), SEED, json.dumps(tally)))
    for b in [x for x in bad if x[2] != "CorruptDBError not naming the file"][:10] + bad[:2]:
        print("  ", b)
    assert not bad, "%d damaged copies crashed, hung or raised undocumented exceptions; first: %r" % (
        len(bad), bad[:3])
