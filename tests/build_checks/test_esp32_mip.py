"""package.json for mip, and the .mpy build for boards that are not reflashed.

- package.json lists every module of the package (relative URLs, so
  `mpremote mip install github:<org>/<repo>` fetches
  github:<org>/<repo>/modules/microtetherdb/<file>.py);
- installing it with mpremote's own mip code (local package.json, a stand-in
  for the board's filesystem) reproduces the package byte for byte;
- `python3 -m firmware mpy` output (.mpy + package.json) installs the same
  way and the .mpy package works in the real MicroPython binary, imported
  from the filesystem instead of the frozen copy;
- `mpremote mip install` (the real command, over the raw REPL) installs both
  onto the qemu board's /flash, where they work; the RAM each form costs is
  printed (the only size asserts: frozen < .mpy < .py, what the docs claim).
"""

import json
import os
import subprocess

import pytest

from esp32_support import ROOT

from firmware import mpy, target_unix  # noqa: E402

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
    assert pkg == mpy.package_json(), \
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


def fresh_py_package(tmp_path):
    """A package.json for the current .py files (URLs relative to tmp_path).

    The RAM measurements use it so that they measure the package as it is,
    independent of whether the top-level package.json is current (that is
    test_package_json_is_current_and_complete's job).
    """
    pkg = mpy.package_json()
    pkg["urls"] = [[t, os.path.relpath(os.path.join(ROOT, u), str(tmp_path))]
                   for t, u in pkg["urls"]]
    path = tmp_path / "py-package.json"
    path.write_text(json.dumps(pkg))
    return str(path)


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
    out = mpy.build_mpy(out=str(tmp_path / "mpy"))
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
    mpy_lib = mip_install_local(os.path.join(mpy.build_mpy(out=str(tmp_path / "mpy")),
                                             "package.json"), str(tmp_path / "fs_mpy"))
    py_lib = mip_install_local(fresh_py_package(tmp_path), str(tmp_path / "fs_py"))
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


QEMU_ROUND_TRIP = """
import sys, gc
sys.path[:] = ['', '%s']
gc.collect()
a0 = gc.mem_alloc()
filler = bytearray(max(0, gc.mem_free() - %d))
gc.collect()
try:
    import microtetherdb
    from microtetherdb import MicroTetherDB
    gc.collect()
    a1 = gc.mem_alloc() - len(filler)
    db = MicroTetherDB()
    k = db.put({"t": 21.5, "s": "ok"})
    assert db.get(k) == {"t": 21.5, "s": "ok"}
    db.close()
    print("FILE", microtetherdb.__file__)
    print("IMPORT_BYTES", a1 - a0)
    print("RESULT ok")
except MemoryError:
    print("RESULT oom")
"""


def test_mip_install_and_ram_on_a_32_bit_board(tmp_path):
    """mpremote mip install onto the qemu board (32-bit, ~140 KB heap), then use it.

    Real mpremote, real raw REPL, real MicroPython filesystem (/flash): the
    .mpy package.json from `python3 -m firmware mpy` and the top-level .py one
    both install into /flash, import from there (".frozen" taken off
    sys.path) and do a put/get. Prints, for frozen/.mpy/.py, the heap held
    after import and the least free heap that import + put/get needs (found
    by filling the rest of the heap).
    """
    import sys
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import qemu_run
    finally:
        sys.path.pop(0)
    if not os.path.exists(qemu_run.IMAGE):
        from firmware.__main__ import build_firmware
        build_firmware("qemu")  # make test builds it next anyway (cached)
    mpy_pkg = os.path.join(mpy.build_mpy(out=str(tmp_path / "mpy")), "package.json")
    s = qemu_run.QemuSession()
    s.start()
    try:
        out = s.mpremote_do(["mip", "install", "--target", "/flash/lib", mpy_pkg], timeout=180)
        assert "Installing: /flash/lib/microtetherdb/__init__.mpy" in out, out
        out = s.mpremote_do(["mip", "install", "--target", "/flash/libpy",
                             fresh_py_package(tmp_path)], timeout=180)
        assert "Installing: /flash/libpy/microtetherdb/__init__.py" in out, out
        rows = []
        for label, path, file in ((("frozen", ".frozen", "microtetherdb/__init__.py")),
                                  (".mpy", "/flash/lib", "/flash/lib/microtetherdb/__init__.mpy"),
                                  (".py", "/flash/libpy", "/flash/libpy/microtetherdb/__init__.py")):
            out = s.run_code(QEMU_ROUND_TRIP % (path, 1 << 30), timeout=120)
            assert "RESULT ok" in out, out
            assert value(out, "FILE") == file
            imported = int(value(out, "IMPORT_BYTES"))
            lo, hi = 1024, 131072
            while hi - lo > 512:
                mid = (lo + hi) // 2
                if "RESULT ok" in s.run_code(QEMU_ROUND_TRIP % (path, mid), timeout=120):
                    hi = mid
                else:
                    lo = mid
            rows.append((label, imported, hi))
    finally:
        s.stop()
    print("\nMicroTetherDB heap cost on the qemu board (32-bit ARM, MicroPython 1.25):")
    print("%-8s %16s %30s" % ("form", "after import (B)", "least free heap, import+put/get"))
    for label, imp, need in rows:
        print("%-8s %16d %30d" % (label, imp, need))
    # What docs/esp32.md tells users: frozen < .mpy < .py.
    assert rows[0][2] < rows[1][2] < rows[2][2]
