"""The in-memory store on small and large heaps: the device tests of the
memory mode (tests/device/test_memstore.py, test_db_ram.py) run by the host
firmware with `-X heapsize=` set, the default heap being covered by
test_device.py. A small heap is what a device has; on a large one the budget
(a share of the heap) holds thousands of pages."""

import os
import re
import subprocess

import pytest

import test_device as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "build", "unix", "micropython")
# (heap, file): the heap-filling tests of test_memstore.py take minutes on a
# 32 MB heap, so there only test_db_ram.py runs (a budget of ~9,000 pages)
RUNS = (("96k", "test_memstore.py"), ("256k", "test_memstore.py"),
        ("96k", "test_db_ram.py"), ("32M", "test_db_ram.py"))

_cache = {}


def _run(heap, filename, tmp):
    key = (heap, filename)
    if key not in _cache:
        names = [n for f, n in T._device_tests() if f == filename]
        with open(os.path.join(T.DEVICE_DIR, filename)) as f:
            program = f.read()
        for helper in ["support"] + re.findall(r"^# uses: (\w+)", program, re.M):
            with open(os.path.join(T.DEVICE_DIR, helper + ".py")) as f:
                program += "\n\n" + f.read()
        program += T.FOOTER % (str(tmp), "unix", names)
        path = os.path.join(str(tmp), "prog.py")
        with open(path, "w") as f:
            f.write(program)
        # MICROPYPATH empty: only the frozen package, never files from the work tree
        p = subprocess.run([BINARY, "-X", "heapsize=" + heap, path], cwd=str(tmp),
                           env=dict(os.environ, MICROPYPATH=""), capture_output=True,
                           text=True, errors="replace", timeout=600)
        out = p.stdout + p.stderr
        _cache[key] = (T._parse(out), out, p.returncode)
    return _cache[key]


def _cases():
    return [(h, f, n) for h, f in RUNS for fn, n in T._device_tests() if fn == f]


@pytest.mark.parametrize("heap,filename,name", _cases(),
                         ids=["%s-%s::%s" % c for c in _cases()])
def test_memory_mode_on_heap(request, tmp_path_factory, heap, filename, name):
    if request.config.getoption("--target") != "unix":
        pytest.skip("host firmware only (the qemu board has one heap size)")
    if not os.path.exists(BINARY):
        pytest.fail("%s is missing: run 'make firmware' first" % BINARY)
    results, out, rc = _run(heap, filename, tmp_path_factory.mktemp("heap"))
    assert rc >= 0, "micropython died with signal %d:\n%s" % (-rc, out[-3000:])
    if name not in results:
        pytest.fail("%s did not report; end of output:\n%s" % (name, out[-3000:]))
    status, detail = results[name]
    if status == "skip":
        pytest.skip(detail)
    assert status == "pass", detail
