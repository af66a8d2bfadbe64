"""Smoke test of the benchmark suite (scripts/bench): the whole pipeline at a
tiny size on the chosen target (unix by default; `--target qemu` runs it in
the qemu image). Checks that every operation was measured and that the
database and the raw baseline agree on results; no timing asserts."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_OPS = {"open", "put", "get", "delete", "put_batch", "delete_batch", "query", "close"}
SCALED_OPS = {"open", "put", "get", "overwrite", "query_eq", "query_range", "query_tag",
              "put_batch10", "delete_batch10", "put_batch100", "delete_batch100", "delete",
              "cleanup_half"}
SEED_COUNTS = {"put": 13, "get": 4, "delete": 1, "put_batch": 4, "delete_batch": 2, "query": 20}


@pytest.fixture(scope="module")
def bench(request, tmp_path_factory):
    spec = request.config.getoption("--target")
    if spec not in ("unix", "qemu"):
        pytest.skip("the bench smoke test runs on unix or qemu")
    out = tmp_path_factory.mktemp("bench")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench", "run.py"),
                        "--smoke", "--target", spec, "--out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    with open(out / "benchmarks.json") as f:
        data = json.load(f)
    md = (out / "benchmarks.md").read_text()
    return spec, data[spec], md


def _ops(sec, work, mode, impl):
    return {r["op"]: r for r in sec["records"]
            if r["t"] == "op" and r["work"] == work and r["mode"] == mode and r["impl"] == impl}


def _val(sec, work, mode, impl, name):
    for r in sec["records"]:
        if (r["t"] == "val" and r["work"] == work and r["mode"] == mode and r["impl"] == impl
                and r["name"] == name):
            return r["v"]
    return None


def test_no_failures(bench):
    _, sec, _ = bench
    assert sec["failures"] == []
    assert not [r for r in sec["records"] if r["t"] == "err"]
    ends = [r for r in sec["records"] if r["t"] == "end"]
    assert len(ends) == 8  # (seed, n20) x (mem, file) x (raw, db)


@pytest.mark.parametrize("mode", ["mem", "file"])
@pytest.mark.parametrize("impl", ["db", "raw"])
def test_seed_every_op(bench, impl, mode):
    _, sec, _ = bench
    ops = _ops(sec, "seed", mode, impl)
    assert SEED_OPS <= set(ops)
    for op, rec in ops.items():
        assert rec["n"] > 0 and rec["max"] >= rec["median"] >= rec["min"] >= 0, rec
        assert rec["p95"] >= rec["median"]
    for op, count in SEED_COUNTS.items():
        assert ops[op]["n"] == count, op  # --smoke: one repetition
    assert ops["put_batch"]["items"] == 43 and ops["delete_batch"]["items"] == 12
    assert _val(sec, "seed", mode, impl, "records_left") == 43
    counts = ops["query"]["counts"]
    assert len(counts) == 20 and None not in counts, ops["query"].get("errors")
    assert max(counts) == 15 and min(counts) == 0


@pytest.mark.parametrize("mode", ["mem", "file"])
def test_seed_db_matches_raw(bench, mode):
    _, sec, _ = bench
    db = _ops(sec, "seed", mode, "db")["query"]["counts"]
    raw = _ops(sec, "seed", mode, "raw")["query"]["counts"]
    assert db == raw


@pytest.mark.parametrize("mode", ["mem", "file"])
@pytest.mark.parametrize("impl", ["db", "raw"])
def test_scaled_every_op(bench, impl, mode):
    _, sec, _ = bench
    ops = _ops(sec, "n20", mode, impl)
    want = SCALED_OPS | ({"reopen", "close"} if mode == "file" else {"close"})
    assert want <= set(ops), want - set(ops)
    assert ops["get"]["n"] == 20
    for op in ("put", "overwrite", "delete"):  # even records plain, odd ones with tags + TTL
        assert ops[op]["n"] == 10 and ops[op + "_tt"]["n"] == 10, op
    assert ops["query_eq"]["results"] == 1
    # documents hold value (i*37)%100, + 1 after the overwrite phase
    assert ops["query_range"]["results"] == sum(1 for i in range(20) if 10 <= (i * 37) % 100 + 1 < 20)
    assert ops["query_tag"]["results"] == sum(1 for i in range(20) if i % 8 == 3)
    assert ops["cleanup_half"]["items"] == 10
    if mode == "file":
        assert _val(sec, "n20", mode, impl, "file_size") > 0
    else:
        # >= 0: on unix btree's page cache (libc malloc) may still hold all 20 records
        assert _val(sec, "n20", mode, impl, "heap_per_record") >= 0


def test_markdown_tables(bench):
    spec, sec, md = bench
    assert "## Target `%s`" % spec in md
    assert "### Seed workload" in md and "### 20 documents" in md and "### Goals" in md
    for op in ("put_batch", "delete_batch", "query"):
        assert "| %s |" % op in md
