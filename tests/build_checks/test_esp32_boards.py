"""ESP32 board definitions (boards/MTDB_ESP32_*) against MicroPython 1.25's esp32 port.

No ESP-IDF here: these checks read what ports/esp32/CMakeLists.txt and
esp32_common.cmake read from a board directory and check that it exists in
the pinned source, matches the upstream generic boards it is derived from,
and that the board manifest freezes exactly the DB package on top of the
port's manifest.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from esp32_support import (BOARDS_DIR, ROOT, esp32_boards, image_specs, parse_cmake_set,
                           source_tree)

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import flash  # noqa: E402  (scripts/flash.py)

# Our board -> the upstream 1.25 board whose ESP-IDF configuration it reuses.
UPSTREAM = {
    "MTDB_ESP32_GENERIC": "ESP32_GENERIC",
    "MTDB_ESP32_GENERIC_S3": "ESP32_GENERIC_S3",
    "MTDB_ESP32_GENERIC_C3": "ESP32_GENERIC_C3",
}
EXPECTED_CHIP = {
    "MTDB_ESP32_GENERIC": "esp32",
    "MTDB_ESP32_GENERIC_S3": "esp32s3",
    "MTDB_ESP32_GENERIC_C3": "esp32c3",
}
# Where the chip's ROM loads the 2nd-stage bootloader from, i.e. where the
# combined firmware.bin (bootloader first) must be written.
BOOTLOADER_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0,
                     "esp32c6": 0x0}


def port_dir():
    return os.path.join(source_tree(), "ports", "esp32")


def read(path):
    with open(path) as f:
        return f.read()


def board_cmake(board, variant=None):
    name = "mpconfigvariant_%s.cmake" % variant if variant else "mpconfigboard.cmake"
    return read(os.path.join(BOARDS_DIR, board, name))


def resolve_fragment(entry, board_dir):
    """Path of one SDKCONFIG_DEFAULTS entry, as the port's CMakeLists.txt reads it.

    CMake's file(READ) resolves relative paths against the current source
    directory, which is ports/esp32 (the project CMakeLists.txt).
    """
    entry = entry.replace("${MICROPY_BOARD_DIR}", board_dir)
    assert "${" not in entry, "unexpected variable in %s" % entry
    return os.path.normpath(entry if os.path.isabs(entry) else os.path.join(port_dir(), entry))


def sdkconfig_fragments(board, variant=None):
    """Ordered fragment paths for a board (+ variant), like CMakeLists.txt builds them."""
    bdir = os.path.join(BOARDS_DIR, board)
    items = parse_cmake_set(board_cmake(board), "SDKCONFIG_DEFAULTS")
    if variant:
        v = parse_cmake_set(board_cmake(board, variant), "SDKCONFIG_DEFAULTS")
        assert v[0] == "${SDKCONFIG_DEFAULTS}", "variant must extend the board's list"
        items = items + v[1:]
    return [resolve_fragment(e, bdir) for e in items]


def combined_sdkconfig(paths):
    """Last value of each CONFIG_ option over the fragments (what kconfgen sees)."""
    opts = {}
    for p in paths:
        for line in read(p).splitlines():
            line = line.strip()
            if line.startswith("CONFIG_") and "=" in line:
                k, v = line.split("=", 1)
                opts[k] = v
    return opts


def upstream_cmake(board, variant=None):
    name = "mpconfigvariant_%s.cmake" % variant if variant else "mpconfigboard.cmake"
    return read(os.path.join(port_dir(), "boards", board, name))


def all_board_variants():
    out = []
    for spec in image_specs():
        b, _, v = spec.partition("-")
        out.append((b, v or None))
    return out


def test_the_three_generic_boards_exist():
    assert set(UPSTREAM) <= set(esp32_boards())
    assert set(esp32_boards()) <= set(UPSTREAM), "new board: add it to UPSTREAM/EXPECTED_CHIP"
    assert "MTDB_ESP32_GENERIC_S3-SPIRAM_OCT" in image_specs()


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_board_dir_has_what_the_port_reads(board):
    bdir = os.path.join(BOARDS_DIR, board)
    # CMakeLists.txt: include(mpconfigboard.cmake); C sources: #include "mpconfigboard.h"
    # (board dir is on the include path); the frozen manifest; board.json (tools, flash.py).
    for name in ("mpconfigboard.cmake", "mpconfigboard.h", "manifest.py", "board.json"):
        assert os.path.isfile(os.path.join(bdir, name)), name
    # The port's Makefile takes the board name from the directory name.
    assert re.fullmatch(r"[A-Z0-9_]+", board)


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_idf_target_matches_board_json(board):
    target = parse_cmake_set(board_cmake(board), "IDF_TARGET")
    assert target == [EXPECTED_CHIP[board]]
    info = json.loads(read(os.path.join(BOARDS_DIR, board, "board.json")))
    assert info["mcu"] == EXPECTED_CHIP[board]
    # The upstream board for the same chip declares the same target (esp32 by default).
    up = parse_cmake_set(upstream_cmake(UPSTREAM[board]), "IDF_TARGET") or ["esp32"]
    assert up == target


@pytest.mark.parametrize("board,variant", all_board_variants())
def test_sdkconfig_fragments_exist_and_are_well_formed(board, variant):
    paths = sdkconfig_fragments(board, variant)
    assert paths
    for p in paths:
        assert os.path.isfile(p), "missing sdkconfig fragment %s" % p
        text = read(p)
        # CMakeLists.txt concatenates the fragments as they are: a missing final
        # newline would glue two options onto one line.
        assert text.endswith("\n"), "%s does not end with a newline" % p
        for n, line in enumerate(text.splitlines(), 1):
            s = line.strip()
            assert not s or s.startswith("#") or re.fullmatch(r"CONFIG_[A-Z0-9_]+=.*", s), \
                "%s:%d: %r" % (p, n, line)


@pytest.mark.parametrize("board,variant", all_board_variants())
def test_same_idf_configuration_as_upstream_plus_reproducible_build(board, variant):
    ours = sdkconfig_fragments(board, variant)
    ours_no_mtdb = [p for p in ours if not p.endswith("sdkconfig.mtdb_esp32")]
    assert len(ours) - len(ours_no_mtdb) == 1
    up = UPSTREAM[board]
    up_items = parse_cmake_set(upstream_cmake(up), "SDKCONFIG_DEFAULTS")
    if variant:
        up_items += parse_cmake_set(upstream_cmake(up, variant), "SDKCONFIG_DEFAULTS")[1:]
    upstream = [resolve_fragment(e, os.path.join(port_dir(), "boards", up)) for e in up_items]
    assert ours_no_mtdb == upstream
    opts = combined_sdkconfig(ours)
    assert opts["CONFIG_APP_REPRODUCIBLE_BUILD"] == "y"


@pytest.mark.parametrize("board,variant", all_board_variants())
def test_partition_table_fits_the_flash(board, variant):
    opts = combined_sdkconfig(sdkconfig_fragments(board, variant))
    assert opts.get("CONFIG_PARTITION_TABLE_CUSTOM") == "y"
    csv = os.path.join(port_dir(), opts["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"].strip('"'))
    assert os.path.isfile(csv), csv
    sizes = [int(k[len("CONFIG_ESPTOOLPY_FLASHSIZE_"):-2]) for k, v in opts.items()
             if re.fullmatch(r"CONFIG_ESPTOOLPY_FLASHSIZE_\d+MB", k) and v == "y"]
    assert len(sizes) == 1, sizes
    end = 0
    app = None
    for line in read(csv).splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, typ, sub, off, size = [c.strip() for c in line.split(",")[:5]]
        end = max(end, int(off, 0) + int(size, 0))
        if typ == "app" and app is None:
            app = int(size, 0)
    assert end <= sizes[0] << 20
    # No board may shrink the app partition below upstream's 0x1F0000: the
    # frozen DB (~30 KB of bytecode) comes on top of upstream's image.
    assert app and app >= 0x1F0000


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_btree_is_explicitly_on(board):
    assert parse_cmake_set(board_cmake(board), "MICROPY_PY_BTREE") == ["ON"]
    # The 1.25 port forces it on as well; if a future port stops doing so,
    # the board setting above is what keeps btree in the image.
    common = read(os.path.join(port_dir(), "esp32_common.cmake"))
    assert re.search(r"set\(MICROPY_PY_BTREE ON\)", common)
    # extmod.cmake turns the cmake option into the C define modbtree.c tests.
    ext = read(os.path.join(source_tree(), "extmod", "extmod.cmake"))
    assert "if(MICROPY_PY_BTREE)" in ext and "MICROPY_PY_BTREE=1" in ext


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_board_name_says_microtetherdb(board):
    h = read(os.path.join(BOARDS_DIR, board, "mpconfigboard.h"))
    names = re.findall(r'#define\s+MICROPY_HW_BOARD_NAME\s+"([^"]*)"', h)
    assert names and all("MicroTetherDB" in n for n in names)
    for v in [v for b, v in all_board_variants() if b == board and v]:
        defs = parse_cmake_set(board_cmake(board, v), "MICROPY_DEF_BOARD")
        vnames = [d for d in defs if d.startswith("MICROPY_HW_BOARD_NAME=")]
        assert vnames and all("MicroTetherDB" in d for d in vnames)
        # A variant can only rename the board if the header leaves the name open.
        assert "#ifndef MICROPY_HW_BOARD_NAME" in h


def _macros(header, cwd):
    """#defines of a header after the preprocessor (gcc -dM), minus the compiler's own."""
    def run(src):
        r = subprocess.run(["gcc", "-E", "-dM", "-x", "c", "-"], input=src, cwd=cwd,
                           capture_output=True, text=True, check=True)
        return set(r.stdout.splitlines())
    return sorted(run('#include "%s"\n' % header) - run(""))


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_board_header_compiles_and_matches_upstream(board):
    ours = _macros(os.path.join(BOARDS_DIR, board, "mpconfigboard.h"), BOARDS_DIR)
    up = _macros(os.path.join(port_dir(), "boards", UPSTREAM[board], "mpconfigboard.h"), port_dir())

    def without_name(ms):
        return [m for m in ms if not m.startswith("#define MICROPY_HW_BOARD_NAME ")]
    assert without_name(ours) == without_name(up)
    assert any(m.startswith("#define MICROPY_HW_MCU_NAME ") for m in ours)


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_board_manifest_freezes_port_manifest_plus_the_db(board, tmp_path):
    """Run the board manifest with MicroPython's manifestfile (as makemanifest does).

    PORT_DIR is a stand-in whose boards/manifest.py freezes one marker module,
    so the check needs no micropython-lib (absent from the Debian tarball)
    while still proving the port manifest is included.
    """
    assert parse_cmake_set(board_cmake(board), "MICROPY_FROZEN_MANIFEST") == \
        ["${MICROPY_BOARD_DIR}/manifest.py"]
    text = read(os.path.join(BOARDS_DIR, board, "manifest.py"))
    assert 'include("$(PORT_DIR)/boards/manifest.py")' in text
    fake_port = tmp_path / "port"
    (fake_port / "boards").mkdir(parents=True)
    (fake_port / "port_marker.py").write_text("x = 1\n")
    (fake_port / "boards" / "manifest.py").write_text('module("port_marker.py", base_path="..")\n')
    sys.path.insert(0, os.path.join(source_tree(), "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    cwd = os.getcwd()
    try:
        m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
            "MPY_DIR": source_tree(), "PORT_DIR": str(fake_port),
            "BOARD_DIR": os.path.join(BOARDS_DIR, board), "MPY_LIB_DIR": str(tmp_path / "nolib")})
        m.execute(os.path.join(BOARDS_DIR, board, "manifest.py"))
    finally:
        os.chdir(cwd)
    frozen = sorted(r.target_path for r in m.files())
    package = sorted("microtetherdb/" + n for n in os.listdir(os.path.join(ROOT, "modules", "microtetherdb"))
                     if n.endswith(".py"))
    assert frozen == sorted(["port_marker.py"] + package)
    for r in m.files():
        if r.target_path.startswith("microtetherdb/"):
            assert os.path.samefile(r.full_path, os.path.join(ROOT, "modules", r.target_path))


@pytest.mark.parametrize("board", sorted(UPSTREAM))
def test_board_json_offset_matches_chip_and_flash_script(board):
    info = json.loads(read(os.path.join(BOARDS_DIR, board, "board.json")))
    chip = info["mcu"]
    offset = int(info["deploy_options"]["flash_offset"], 0)
    assert offset == BOOTLOADER_OFFSET[chip]
    # ESP32 0x1000, S3 and C3 0x0, as the issue and upstream's board.json say.
    up = json.loads(read(os.path.join(port_dir(), "boards", UPSTREAM[board], "board.json")))
    assert int(up["deploy_options"]["flash_offset"], 0) == offset and up["mcu"] == chip
    assert flash.board_flash_info(board) == (chip, hex(offset))
    for v in info.get("variants", {}):
        assert flash.board_flash_info("%s-%s" % (board, v)) == (chip, hex(offset))
        assert os.path.isfile(os.path.join(BOARDS_DIR, board, "mpconfigvariant_%s.cmake" % v))
    declared = set(info.get("variants", {}))
    files = {n[len("mpconfigvariant_"):-len(".cmake")] for n in os.listdir(os.path.join(BOARDS_DIR, board))
             if n.startswith("mpconfigvariant_")}
    assert declared == files
    for doc in info["deploy"]:
        assert os.path.isfile(os.path.join(BOARDS_DIR, board, doc)), doc


def test_upstream_variants_we_mirror_exist_in_the_pinned_port():
    for board, variant in all_board_variants():
        if variant:
            assert os.path.isfile(os.path.join(port_dir(), "boards", UPSTREAM[board],
                                               "mpconfigvariant_%s.cmake" % variant))
