"""package.json for mip, and the .mpy build for boards that are not reflashed.

- package.json lists every module of the package (relative URLs, so
  `mpremote mip install github:<org>/<repo>` fetches
  github:<org>/<repo>/modules/microtetherdb/<file>.py);
- installing it with mpremote's own mip code (local package.json, a stand-in
  for the board's filesystem) reproduces the package byte for byte;
- `python3 -m firmware mpy` output (.mpy + package.json) installs the same
  way and the .mpy package works in the real MicroPython binary, imported
  from the filesystem instead of the frozen copy; the RAM each way costs is
  printed (no timing or size asserts).
"""

import json
import os
import subprocess

import pytest

from esp32_support import ROOT

from firmware import target_esp32, target_unix  # noqa: E402

PKG = os.path.join(ROOT, "modules", "microtetherdb")


def micropython():
    exe = target_unix.OUTPUT
    if not os.path.exists(exe):
        pytest.fail("no %s: run `make firmware` first" % exe)
    return exe


class DirTransport:
    """The slice of mpremote's transport that mip uses, writing into a directory."""

    def __init__(self, root):
        self.root = root

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def fs_exists(self, path):
        return os.path.exists(self._p(path))

    def fs_mkdir(self, path):
        os.mkdir(self._p(path))

    def fs_writefile(self, path, data, progress_callback=None):
        with open(self._p(path), "wb") as f:
            f.write(data)


def mip_install_local(package_json, dest):
    mip = pytest.importorskip("mpremote.mip", reason="pip install -r tests/requirements.txt")
    os.makedirs(dest, exist_ok=True)
    mip._install_json(DirTransport(dest), package_json, "https://micropython.org/pi/v2",
                      "/lib", None, True)
    return os.path.join(dest, "lib")


def test_package_json_is_current_and_complete():
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    assert pkg == target_esp32.package_json(), \
        "package.json is stale: run `python3 -m firmware package-json`"
    targets = sorted(t for t, _ in pkg["urls"])
    assert targets == sorted("microtetherdb/" + n for n in os.listdir(PKG) if n.endswith(".py"))
    for target, url in pkg["urls"]:
        assert not url.startswith(("http:", "https:", "github:", "/")), url
        assert url == "modules/" + target
        assert os.path.isfile(os.path.join(ROOT, url))
    assert pkg["deps"] == []
    # mip turns relative URLs into github:<org>/<repo>/<url> for a github: package.
    from mpremote import mip
    base = "github:org/repo/package.json".rpartition("/")[0]
    assert mip._rewrite_url(base + "/" + pkg["urls"][0][1]) == \
        "https://raw.githubusercontent.com/org/repo/HEAD/modules/microtetherdb/__init__.py"


def test_mip_installs_the_package_byte_for_byte(tmp_path):
    lib = mip_install_local(os.path.join(ROOT, "package.json"), str(tmp_path / "fs"))
    got = sorted(os.listdir(os.path.join(lib, "microtetherdb")))
    assert got == sorted(n for n in os.listdir(PKG) if n.endswith(".py"))
    for n in got:
        with open(os.path.join(lib, "microtetherdb", n), "rb") as a, \
                open(os.path.join(PKG, n), "rb") as b:
            assert a.read() == b.read(), n


ROUND_TRIP = """
import sys, gc
gc.collect()
a0 = gc.mem_alloc()
import microtetherdb
gc.collect()
a1 = gc.mem_alloc()
from microtetherdb import MicroTetherDB
db = MicroTetherDB()
k = db.put({"t": 21.5, "s": "ok"})
assert db.get(k) == {"t": 21.5, "s": "ok"}
db.close()
print("FILE", getattr(microtetherdb, "__file__", "frozen"))
print("IMPORT_BYTES", a1 - a0)
"""


def run_mp(code, micropypath, heapsize=None):
    cmd = [micropython()]
    if heapsize:
        cmd += ["-X", "heapsize=%d" % heapsize]
    env = dict(os.environ, MICROPYPATH=micropypath)
    return subprocess.run(cmd + ["-c", code], capture_output=True, text=True, env=env,
                          cwd="/", timeout=60)


def value(out, key):
    for line in out.splitlines():
        if line.startswith(key + " "):
            return line.split(" ", 1)[1]
    raise AssertionError("%s not in output:\n%s" % (key, out))


def min_heap(micropypath):
    """Smallest -X heapsize (bytes, 256-byte steps) with which the round trip passes."""
    lo, hi = 1024, 1 << 20
    assert run_mp(ROUND_TRIP, micropypath, hi).returncode == 0
    while hi - lo > 256:
        mid = (lo + hi) // 2
        if run_mp(ROUND_TRIP, micropypath, mid).returncode == 0:
            hi = mid
        else:
            lo = mid
    return hi


def test_mpy_package_installs_and_runs_from_the_filesystem(tmp_path):
    out = target_esp32.build_mpy(out=str(tmp_path / "mpy"))
    with open(os.path.join(out, "package.json")) as f:
        pkg = json.load(f)
    assert sorted(t for t, _ in pkg["urls"]) == sorted(
        "microtetherdb/" + n[:-3] + ".mpy" for n in os.listdir(PKG) if n.endswith(".py"))
    lib = mip_install_local(os.path.join(out, "package.json"), str(tmp_path / "fs"))
    for t, _ in pkg["urls"]:
        with open(os.path.join(lib, t), "rb") as f:
            assert f.read(2) == b"M\x06"  # .mpy version 6 (MicroPython 1.25)
    # MICROPYPATH without ".frozen": the package comes from the installed .mpy files.
    r = run_mp(ROUND_TRIP, lib)
    assert r.returncode == 0, r.stdout + r.stderr
    assert value(r.stdout, "FILE").endswith("microtetherdb/__init__.mpy")


def test_ram_cost_frozen_vs_mpy_vs_py(tmp_path):
    """Prints the heap the DB costs when frozen, as .mpy and as .py (figures, no asserts on size)."""
    mpy_lib = mip_install_local(os.path.join(target_esp32.build_mpy(out=str(tmp_path / "mpy")),
                                             "package.json"), str(tmp_path / "fs_mpy"))
    py_lib = mip_install_local(os.path.join(ROOT, "package.json"), str(tmp_path / "fs_py"))
    rows = []
    # A frozen module's __file__ has no directory; the others come from their lib.
    for label, path, file in (("frozen", "", "microtetherdb/__init__.py"),
                              (".mpy", mpy_lib, mpy_lib + "/microtetherdb/__init__.mpy"),
                              (".py", py_lib, py_lib + "/microtetherdb/__init__.py")):
        r = run_mp(ROUND_TRIP, path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert value(r.stdout, "FILE") == file
        rows.append((label, int(value(r.stdout, "IMPORT_BYTES")), min_heap(path)))
    print("\nMicroTetherDB heap cost on the unix port (64-bit build; 32-bit boards use less"
          " for objects, the same for bytecode):")
    print("%-8s %16s %26s" % ("form", "after import (B)", "min heap for round trip (B)"))
    for label, imp, heap in rows:
        print("%-8s %16d %26d" % (label, imp, heap))
    # Frozen code is not in the heap at all: it must cost less than loading it.
    assert rows[0][1] < rows[1][1] and rows[0][1] < rows[2][1]
