"""MCU firmware: MicroPython's qemu port, board boards/MTDB_QEMU_AN385.

The board is QEMU's mps2-an385 (Cortex-M3, ~140 KB GC heap) with btree,
LittleFS v2, a SysTick `time` module and the project's frozen manifest; see
boards/MTDB_QEMU_AN385/ and docs/qemu.md. Output: build/qemu/firmware.elf,
run with scripts/qemu_run.py (a REPL, a file, or pytest's --target qemu).
"""

import os

from .mpy import mpy_cross
from .port_make import port_make
from .system import BUILD, ROOT, log

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
    mpy_cross(src)
    log("build qemu port (board MTDB_QEMU_AN385) -> %s" % os.path.relpath(output, ROOT))
    port_make(src, "qemu", os.path.dirname(output),   # firmware.elf lands in BUILD
              manifest or os.path.join(ROOT, "manifest.py"),
              options=["BOARD_DIR=" + BOARD_DIR],
              inputs=[os.path.join(BOARD_DIR, "mpconfigboard.mk")])
    return output


def build_bare(src):
    """The image without the frozen package, for the flash-cost comparison."""
    return build(src, BARE_MANIFEST, BARE_OUTPUT)


def next_step(out):
    return "Run it:  python3 scripts/qemu_run.py --repl"
