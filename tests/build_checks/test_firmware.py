"""The firmware itself: real btree (MicroPython's own btree tests) and the frozen package."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from firmware import pins  # noqa: E402


def micropython_tree():
    return os.environ.get("MICROPY_DIR") or os.path.join(
        ROOT, "build", "src", pins.MICROPYTHON["topdir"])


BTREE_TESTS = sorted(glob.glob(os.path.join(micropython_tree(), "tests", "extmod", "btree*.py")))


def test_btree_tests_exist():
    # MicroPython 1.25 ships four: btree1, btree_closed, btree_error, btree_gc.
    assert len(BTREE_TESTS) >= 4, BTREE_TESTS


@pytest.mark.parametrize("path", BTREE_TESTS, ids=[os.path.basename(p) for p in BTREE_TESTS])
def test_micropython_btree_suite(target, path):
    """MicroPython's own btree tests give exactly their expected output."""
    with open(path + ".exp") as f:
        expected = f.read()
    out = target.run_file(path).replace("\r\n", "\n")
    assert out == expected


def test_frozen_package(target):
    out = target.run_code(
        "import sys, btree, microtetherdb\n"
        "print('frozen' if '.frozen' in sys.path else 'no-frozen-path')\n"
        "print(microtetherdb.__name__, hasattr(microtetherdb, 'MicroTetherDB'))\n")
    assert "frozen\nmicrotetherdb True" in out.replace("\r\n", "\n"), out


def test_import_from_empty_dir_with_empty_micropypath(tmp_path, target):
    """The package is frozen: no file of it needs to exist anywhere on the path."""
    if target.name != "unix":
        pytest.skip("host binary only")
    env = dict(os.environ, MICROPYPATH="")
    p = subprocess.run([target.binary, "-c",
                        "import sys, btree, microtetherdb; print(sys.path)"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "['', '.frozen']"
    modules = subprocess.run([target.binary, "-c", "help('modules')"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=60).stdout
    assert "microtetherdb/__init__" in modules or "microtetherdb" in modules.split()


def test_round_trip_through_frozen_module(target):
    out = target.run_code(
        "from microtetherdb import MicroTetherDB\n"
        "db = MicroTetherDB(in_memory=True)\n"
        "k = db.put({'t': 21.5, 'ok': True})\n"
        "print(repr(db.get(k)))\n"
        "db.close()\n")
    assert "{'t': 21.5, 'ok': True}" in out or "{'ok': True, 't': 21.5}" in out, out
