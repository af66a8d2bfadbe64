"""MCU firmware: MicroPython's qemu port, board boards/MTDB_QEMU_AN385.

The board is QEMU's mps2-an385 (Cortex-M3, ~140 KB GC heap) with btree,
LittleFS v2, a SysTick `time` module and the project's frozen manifest; see
boards/MTDB_QEMU_AN385/ and docs/qemu.md. Output: build/qemu/firmware.elf,
run with scripts/qemu_run.py (a REPL, a file, or pytest's --target qemu).
"""

import hashlib
import os
import shutil

from .source import empty_micropython_lib
from .system import BUILD, ROOT, jobs, log, run
from .target_unix import build_mpy_cross

# Debian packages: the cross compiler, its C library headers, the emulator.
APT_PACKAGES = ["gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"]

BOARD_DIR = os.path.join(ROOT, "boards", "MTDB_QEMU_AN385")
OUTPUT = os.path.join(BUILD, "qemu", "firmware.elf")

# The same image without the frozen microtetherdb package (memory facts only).
BARE_MANIFEST = os.path.join(BOARD_DIR, "manifest_bare.py")
BARE_OUTPUT = os.path.join(BUILD, "qemu-bare", "firmware.elf")


def build(src, manifest=None, output=OUTPUT):
    """Build the qemu board image; returns the path of the ELF file."""
    # Built first on its own: the port's make would otherwise build it with our BUILD=.
    build_mpy_cross(src)
    manifest = manifest or os.path.join(ROOT, "manifest.py")
    _clean_if_changed(src, os.path.dirname(output))
    log("build qemu port (board MTDB_QEMU_AN385) -> %s" % os.path.relpath(output, ROOT))
    run(["make", "-s", "-C", os.path.join(src, "ports", "qemu"), "-j", jobs(),
         "BOARD_DIR=" + BOARD_DIR,
         "BUILD=" + os.path.dirname(output),   # firmware.elf lands in BUILD
         "FROZEN_MANIFEST=" + manifest,
         "MPY_LIB_DIR=" + empty_micropython_lib()],
        # Stop makeversionhdr.py's `git describe` at the source tree: it would
        # otherwise find this project's repository and call the firmware
        # "MicroPython <our commit>" instead of v1.25.0.
        env=dict(os.environ, GIT_CEILING_DIRECTORIES=os.path.dirname(src)))
    return output


def _clean_if_changed(src, build_dir):
    """Rebuild from scratch when make cannot see a change: mpconfigboard.mk
    (its options become -D flags and source lists), or a re-made source tree
    (unpacked files keep the tarball's old dates, older than our objects)."""
    h = hashlib.sha256()
    with open(os.path.join(BOARD_DIR, "mpconfigboard.mk"), "rb") as f:
        h.update(f.read())
    tree_stamp = os.path.join(src, ".mtdb-stamp")   # rewritten when source.py redoes the tree
    h.update(open(tree_stamp, "rb").read() if os.path.exists(tree_stamp) else src.encode())
    digest = h.hexdigest()
    stamp = os.path.join(build_dir, ".inputs-sha256")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return
    if os.path.isdir(build_dir):
        log("board options changed: clean %s" % os.path.relpath(build_dir, ROOT))
        shutil.rmtree(build_dir)
    os.makedirs(build_dir)
    with open(stamp, "w") as f:
        f.write(digest)


def build_bare(src):
    """The image without the frozen package, for the flash-cost comparison."""
    return build(src, BARE_MANIFEST, BARE_OUTPUT)
