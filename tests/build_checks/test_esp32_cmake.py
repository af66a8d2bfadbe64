"""Run MicroPython 1.25's real ports/esp32/CMakeLists.txt on our board dirs.

ESP-IDF is not installed here, so IDF_PATH points at a stand-in whose
tools/cmake/project.cmake records the variables the port's CMakeLists.txt
has set up by the time it hands over to ESP-IDF: the board/variant checks,
the includes of mpconfigboard.cmake and mpconfigvariant_*.cmake, the frozen
manifest choice and the concatenation of SDKCONFIG_DEFAULTS (CMake's own
file(READ) path resolution) all run for real. The port's Makefile is run
with -n to show the idf.py command `make BOARD_DIR=...` would execute.
"""

import os
import re
import shutil
import subprocess

import pytest

from esp32_support import BOARDS_DIR, image_specs, parse_cmake_set, source_tree

STUB = """\
file(WRITE ${CMAKE_BINARY_DIR}/mtdb-vars.txt "")
foreach(v IDF_TARGET SDKCONFIG_DEFAULTS MICROPY_BOARD MICROPY_BOARD_DIR MICROPY_BOARD_VARIANT
          MICROPY_FROZEN_MANIFEST MICROPY_PY_BTREE MICROPY_DEF_BOARD)
  file(APPEND ${CMAKE_BINARY_DIR}/mtdb-vars.txt "${v}=${${v}}\\n")
endforeach()
macro(project)
endmacro()
"""

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")


def port():
    return os.path.join(source_tree(), "ports", "esp32")


def configure(tmp_path, board, variant=None, board_dir=None):
    idf = tmp_path / "idf"
    (idf / "tools" / "cmake").mkdir(parents=True)
    (idf / "tools" / "cmake" / "project.cmake").write_text(STUB)
    build = tmp_path / "build"
    cmd = ["cmake", "-S", port(), "-B", str(build), "-DMICROPY_BOARD=" + board,
           "-DMICROPY_BOARD_DIR=" + (board_dir or os.path.join(BOARDS_DIR, board))]
    if variant:
        cmd.append("-DMICROPY_BOARD_VARIANT=" + variant)
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, IDF_PATH=str(idf)))
    return r, build


def read_vars(build):
    out = {}
    for line in (build / "mtdb-vars.txt").read_text().splitlines():
        k, _, v = line.partition("=")
        out[k] = v
    return out


@pytest.mark.parametrize("spec", image_specs())
def test_port_cmakelists_accepts_the_board(spec, tmp_path):
    board, _, variant = spec.partition("-")
    r, build = configure(tmp_path, board, variant or None)
    assert r.returncode == 0, r.stdout + r.stderr
    v = read_vars(build)
    bdir = os.path.join(BOARDS_DIR, board)
    assert v["MICROPY_BOARD_DIR"] == bdir
    assert v["MICROPY_FROZEN_MANIFEST"] == bdir + "/manifest.py"
    assert v["MICROPY_PY_BTREE"] == "ON"
    target = parse_cmake_set(open(os.path.join(bdir, "mpconfigboard.cmake")).read(), "IDF_TARGET")
    assert v["IDF_TARGET"] == target[0]
    if variant:
        assert "MicroTetherDB" in v["MICROPY_DEF_BOARD"]
    # The combined sdkconfig is the fragments, read from where CMake found them.
    combined = (build / "sdkconfig.combined").read_text()
    assert v["SDKCONFIG_DEFAULTS"] == str(build / "sdkconfig.combined")
    mine = open(os.path.join(BOARDS_DIR, "sdkconfig.mtdb_esp32")).read()
    base = open(os.path.join(port(), "boards", "sdkconfig.base")).read()
    assert combined.startswith(base) and mine in combined
    assert "CONFIG_APP_REPRODUCIBLE_BUILD=y\n" in combined
    if variant == "SPIRAM_OCT":
        assert combined.rstrip().endswith("CONFIG_SPIRAM_MODE_OCT=y")


def test_port_cmakelists_rejects_what_is_wrong(tmp_path):
    """The same run fails on a bad variant or a board dir without mpconfigboard.cmake."""
    r, _ = configure(tmp_path / "a", "MTDB_ESP32_GENERIC", "NOPE")
    assert r.returncode != 0 and "Invalid MICROPY_BOARD_VARIANT" in r.stdout + r.stderr
    empty = tmp_path / "MTDB_EMPTY"
    empty.mkdir()
    r, _ = configure(tmp_path / "b", "MTDB_EMPTY", board_dir=str(empty))
    assert r.returncode != 0 and "Invalid MICROPY_BOARD" in r.stdout + r.stderr


@pytest.mark.parametrize("spec", ["MTDB_ESP32_GENERIC", "MTDB_ESP32_GENERIC_S3-SPIRAM_OCT"])
def test_port_makefile_passes_board_dir_and_variant(spec):
    board, _, variant = spec.partition("-")
    args = ["make", "-n", "-C", port(), "BOARD_DIR=" + os.path.join(BOARDS_DIR, board),
            "BUILD=/tmp/build-" + spec]
    if variant:
        args.append("BOARD_VARIANT=" + variant)
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    idf = [l for l in r.stdout.splitlines() if l.startswith("idf.py ")][0]
    assert "-D MICROPY_BOARD=%s " % board in idf
    assert '-D MICROPY_BOARD_DIR="%s"' % os.path.join(BOARDS_DIR, board) in idf
    assert ("-D MICROPY_BOARD_VARIANT=%s" % variant in idf) == bool(variant)
    assert re.search(r"-B /tmp/build-%s build" % re.escape(spec), idf)
    # makeimg.py combines bootloader, partition table and app into firmware.bin,
    # the file docker-build.sh copies out.
    assert "/tmp/build-%s/firmware.bin" % spec in r.stdout
