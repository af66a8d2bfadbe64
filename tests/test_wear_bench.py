"""The flash-wear instrument (scripts/bench/dev_wear_dev.py) and its driver.

1. The counting block device on the chosen target: data round trip, exact
   counters for known writes, the NOR check, FAT's read-modify-write of 4 KB
   sectors with 512-byte blocks, LittleFS and FAT mounted on it.
2. `wear.py --smoke` (unix): every scenario reports, no program ever hit
   bytes that were not erased, and the LittleFS figures keep their known
   shape (small files inline, cheaper than a file with a block).
No timing asserts: the benchmark prints figures, it does not judge them.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "scripts", "bench")

DEVICE_CHECKS = r'''
import os


def check_counts():
    d = FlashDev(16)
    s0 = d.snap()
    d.writeblocks(3, b"a" * 100, 0)          # 64 + 36 bytes: two program commands
    d.writeblocks(3, b"b" * 60, 250)         # crosses the page at 256: 6 + 54
    c = d.delta(s0)
    assert c["pr_ops"] == 2 and c["pr_bytes"] == 160 and c["pr_cmds"] == 4, c
    assert c["erases"] == 0 and c["bad"] == 0, c
    buf = bytearray(4096)
    d.readblocks(3, buf)
    assert buf[:100] == b"a" * 100 and buf[100:250] == b"\xff" * 150
    assert buf[250:310] == b"b" * 60 and buf[310:] == b"\xff" * (4096 - 310)
    d.readblocks(5, buf)
    assert buf == b"\xff" * 4096              # never written: erased
    s1 = d.snap()
    d.writeblocks(3, b"c", 0)                 # over programmed bytes: counted as bad
    assert d.delta(s1)["bad"] == 1
    d.ioctl(6, 3)
    d.readblocks(3, buf)
    assert buf == b"\xff" * 4096
    c = d.delta(s0)
    assert c["erases"] == 1 and c["er_bytes"] == 4096 and c["rd_ops"] == 3, c
    assert d.max_wear() == 1


def check_rmw():
    # 512-byte blocks on 4 KB sectors: one block written = its sector read,
    # erased and programmed whole; the other blocks of the sector survive
    d = FlashDev(64, bs=512)
    d.writeblocks(0, b"x" * 4096)
    s0 = d.snap()
    d.writeblocks(2, b"y" * 512)
    c = d.delta(s0)
    assert c["erases"] == 1 and c["er_bytes"] == 4096 and c["pr_bytes"] == 4096, c
    assert c["rd_bytes"] == 4096 and c["pr_cmds"] == 64, c
    buf = bytearray(4096)
    d.readblocks(0, buf)
    assert buf[:1024] == b"x" * 1024 and buf[1024:1536] == b"y" * 512
    assert buf[1536:] == b"x" * 2560


def check_fs(kind, bs, nblocks, backing=None):
    dev = mount(kind, "/wt", nblocks=nblocks, bs=bs, backing=backing)
    assert dev.snap() == [0] * len(NAMES)     # mkfs is not counted
    data = bytes(range(256)) * 8
    with open("/wt/f", "wb") as f:
        f.write(data)
    umount("/wt")
    import vfs
    vfs.mount(vfs.VfsLfs2(dev) if kind == "lfs" else vfs.VfsFat(dev), "/wt")
    with open("/wt/f", "rb") as f:
        assert f.read() == data
    c = dev.delta([0] * len(NAMES))
    assert c["pr_bytes"] >= len(data) and c["erases"] >= 1 and c["bad"] == 0, c
    umount("/wt")


check_counts()
check_rmw()
check_fs("lfs", 4096, 32)
check_fs("fat", 4096, 128)
check_fs("fat", 512, 256)
try:
    import ramdisk  # the qemu board's RAM disk: counting over a backing device
except ImportError:
    ramdisk = None
if ramdisk:
    umount("/flash")
    check_fs("lfs", 4096, 512, ramdisk.RAMDisk())
print("@@WEAR-OK")
'''


def test_flashdev_on_target(target):
    with open(os.path.join(BENCH, "dev_wear_dev.py")) as f:
        src = f.read()
    out = target.run_code(src + "\n" + DEVICE_CHECKS)
    assert "@@WEAR-OK" in out, out[-3000:]


@pytest.fixture(scope="module")
def smoke(request, tmp_path_factory):
    if request.config.getoption("--target") != "unix":
        pytest.skip("the wear driver smoke run uses the unix port")
    out = tmp_path_factory.mktemp("wear")
    p = subprocess.run([sys.executable, os.path.join(BENCH, "wear.py"), "--smoke",
                        "--out", str(out)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    with open(out / "wear.json") as f:
        return json.load(f), (out / "wear.md").read_text()


def test_smoke_every_scenario_reports(smoke):
    data, md = smoke
    recs = data["records"]
    assert not data["failures"]
    for fs in ("lfs4k", "fat4k", "fat512"):
        puts = [r for r in recs if r["case"] == "put" and r["fs"] == fs]
        assert {(r["impl"], r["var"]) for r in puts} == {
            ("raw", "plain"), ("db1", "plain"), ("db1", "tagttl"), ("db1", "tagfill"),
            ("db", "plain"), ("db", "tagttl"), ("db", "tagfill")}
        assert {r["case"] for r in recs if r["sc"] == "prim" and r["fs"] == fs} >= {
            "create", "rewrite", "append_close", "append_flush", "many_create",
            "many_delete", "rename_small", "segment_inplace", "page_write", "delete_big"}
    assert {r["how"] for r in recs if r["case"] == "proto_all"} == {"files", "append", "ring"}
    for r in recs:
        if "bad" in r:
            assert r["bad"] == 0, r  # no program over bytes that were not erased
    for r in recs:
        if r["case"] == "put":
            assert r["pr_bytes"] > 0, r  # a durable put reaches flash
            if r["impl"] != "db":
                # (format 2 appends to its log: a short run may erase nothing)
                assert r["erases"] > 0, r
    assert "| records |" in md and "Commit log prototype" in md


def test_smoke_littlefs_shape(smoke):
    recs = smoke[0]["records"]
    lim = [r for r in recs if r["case"] == "inline_limit"][0]["limit"]
    assert lim is not None
    creates = {r["size"]: r for r in recs if r["case"] == "create" and r["fs"] == "lfs4k"}
    small = [r for s, r in creates.items() if s <= lim]
    big = [r for s, r in creates.items() if s > lim]
    assert small and big
    # an inline file allocates no block of its own and erases less than one
    # with a data block
    assert max(r["blocks_per_file"] for r in small) < min(r["blocks_per_file"] for r in big)
    assert max(r["erases"] for r in small) < min(r["erases"] for r in big)
    fat = [r for r in recs if r["fs"] == "fat4k" and "erases" in r and r.get("n")]
    for r in fat:  # FAT on 4 KB sectors: every program is a whole erased sector
        assert r["pr_bytes"] == r["er_bytes"], r
