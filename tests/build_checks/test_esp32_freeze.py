"""The DB freezes for the ESP32 architectures with the in-tree mpy-cross.

Runs MicroPython's own tools/makemanifest.py exactly as the esp32 port's
py/mkrules.cmake does (-v MPY_DIR/PORT_DIR/BOARD_DIR/MPY_LIB_DIR, -b BUILD,
-f-march=ARCH), on the shared modules/manifest.py and on each board's
effective manifest, for xtensawin (ESP32, ESP32-S3) and rv32imc (ESP32-C3).
"""

import json
import os
import re
import subprocess
import sys

import pytest

from esp32_support import BOARDS_DIR, ROOT, esp32_boards, mpy_cross, source_tree

# esp32_common.cmake: CONFIG_IDF_TARGET_ARCH_XTENSA -> -march=xtensawin,
# CONFIG_IDF_TARGET_ARCH_RISCV -> -march=rv32imc.
ARCH_OF_CHIP = {"esp32": "xtensawin", "esp32s2": "xtensawin", "esp32s3": "xtensawin",
                "esp32c3": "rv32imc", "esp32c6": "rv32imc"}
# py/persistentcode.h: MP_NATIVE_ARCH_* and the .mpy version of MicroPython 1.25.
MPY_VERSION = 6


def package_modules():
    d = os.path.join(ROOT, "modules", "microtetherdb")
    return sorted("microtetherdb/" + n for n in os.listdir(d) if n.endswith(".py"))


def qstr_header(build):
    """genhdr/qstrdefs.preprocessed.h as the esp32 build would hand it to mpy-tool.

    Only the QSTR configuration matters for freezing: the esp32 port uses
    MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES, i.e. 1 length byte and 2 hash
    bytes (checked below against the pinned headers); with no Q() lines every
    non-static qstr goes into the frozen pool, which is a superset.
    """
    src = source_tree()
    port = open(os.path.join(src, "ports", "esp32", "mpconfigport.h")).read()
    assert "MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES" in port
    cfg = open(os.path.join(src, "py", "mpconfig.h")).read()
    assert re.search(r"EXTRA_FEATURES\s*\n#define MICROPY_QSTR_BYTES_IN_HASH \(2\)", cfg)
    os.makedirs(os.path.join(build, "genhdr"), exist_ok=True)
    with open(os.path.join(build, "genhdr", "qstrdefs.preprocessed.h"), "w") as f:
        f.write("QCFG(BYTES_IN_LEN, (1))\nQCFG(BYTES_IN_HASH, (2))\n")


def makemanifest(manifest, arch, build, port_dir=None, board_dir=None):
    src = source_tree()
    mpy_cross()  # built if missing
    qstr_header(build)
    out = os.path.join(build, "frozen_content.c")
    cmd = [sys.executable, os.path.join(src, "tools", "makemanifest.py"), "-o", out,
           "-v", "MPY_DIR=" + src,
           "-v", "PORT_DIR=" + (port_dir or os.path.join(src, "ports", "esp32")),
           "-v", "BOARD_DIR=" + (board_dir or os.path.join(BOARDS_DIR, "MTDB_ESP32_GENERIC")),
           "-v", "MPY_LIB_DIR=" + os.path.join(build, "no-micropython-lib"),
           "-b", build, "-f-march=" + arch, "--mpy-tool-flags=", manifest]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=build)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out) as f:
        return f.read()


def frozen_names(c_source):
    """Module names listed in mp_frozen_names[] of a frozen_content.c."""
    m = re.search(r"const char mp_frozen_names\[\] = \{(.*?)\};", c_source, re.S)
    assert m, "no mp_frozen_names in frozen content"
    body = m.group(1)
    # The list ends with an empty name (the terminator); order is the manifest's.
    return sorted(n for n in re.findall(r'"((?:[^"\\]|\\.)*)\\0"', body) if n)


@pytest.mark.parametrize("arch", ["xtensawin", "rv32imc"])
def test_shared_db_manifest_freezes(arch, tmp_path):
    build = str(tmp_path)
    c = makemanifest(os.path.join(ROOT, "modules", "manifest.py"), arch, build)
    assert frozen_names(c) == package_modules()
    # One compiled .mpy per module, made by mpy-cross for a 32-bit target.
    for mod in package_modules():
        mpy = os.path.join(build, "frozen_mpy", mod[:-3] + ".mpy")
        with open(mpy, "rb") as f:
            header = f.read(4)
        assert header[0:1] == b"M" and header[1] == MPY_VERSION, header
        assert header[3] == 31, "small-int bits of a 32-bit arch expected, got %d" % header[3]
    # The generated C defines the frozen modules' code objects.
    assert "mp_frozen_mpy_content" in c
    assert c.count("const mp_frozen_module_t frozen_module_") == len(package_modules())


def test_frozen_names_detects_a_missing_module(tmp_path):
    """The name check above is real: a manifest missing a module is caught."""
    pkg = tmp_path / "pkg" / "microtetherdb"
    pkg.mkdir(parents=True)
    src = os.path.join(ROOT, "modules", "microtetherdb")
    for n in sorted(os.listdir(src))[:-1]:
        if n.endswith(".py"):
            (pkg / n).write_bytes(open(os.path.join(src, n), "rb").read())
    man = tmp_path / "pkg" / "manifest.py"
    man.write_text('package("microtetherdb")\n')
    build = tmp_path / "build"
    build.mkdir()
    c = makemanifest(str(man), "xtensawin", str(build))
    assert frozen_names(c) != package_modules()


def test_native_code_gets_the_arch_in_its_header(tmp_path):
    """mpy-cross really targets the arch we pass (a native function records it)."""
    src = tmp_path / "nat.py"
    src.write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    for arch, code in (("xtensawin", 10), ("rv32imc", 11)):
        out = tmp_path / ("nat_%s.mpy" % arch)
        subprocess.run([mpy_cross(), "-march=" + arch, "-o", str(out), str(src)], check=True)
        header = out.read_bytes()[:4]
        assert header[2] >> 2 == code, (arch, header)


@pytest.mark.parametrize("board", ["MTDB_ESP32_GENERIC", "MTDB_ESP32_GENERIC_S3",
                                   "MTDB_ESP32_GENERIC_C3"])
def test_board_manifest_freezes_for_its_arch(board, tmp_path):
    """The board's own manifest, through makemanifest, for the board's chip.

    PORT_DIR is a stand-in with an empty boards/manifest.py: the port's real
    one requires micropython-lib packages, which are fetched only in the
    Docker build (the Debian tarball has no micropython-lib).
    """
    assert board in esp32_boards()
    with open(os.path.join(BOARDS_DIR, board, "board.json")) as f:
        chip = json.load(f)["mcu"]
    fake_port = tmp_path / "port"
    (fake_port / "boards").mkdir(parents=True)
    (fake_port / "boards" / "manifest.py").write_text("# stand-in for ports/esp32/boards/manifest.py\n")
    build = tmp_path / "build"
    build.mkdir()
    c = makemanifest(os.path.join(BOARDS_DIR, board, "manifest.py"), ARCH_OF_CHIP[chip],
                     str(build), port_dir=str(fake_port), board_dir=os.path.join(BOARDS_DIR, board))
    assert frozen_names(c) == package_modules()
