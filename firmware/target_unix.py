"""Host firmware: MicroPython's unix port with btree and the frozen database.

Output: build/unix/micropython. Options the database does not need and that
would need extra libraries are off: ffi (libffi), ssl (mbedtls/axtls), all
absent from the Debian source tarball.
"""

import os

from .port_make import port_make
from .system import BUILD, ROOT, jobs, log, run

OUTPUT = os.path.join(BUILD, "unix", "micropython")

MAKE_OPTIONS = [
    "VARIANT=standard",
    "MICROPY_PY_BTREE=1",
    "MICROPY_PY_FFI=0",
    "MICROPY_PY_SSL=0",
    "MICROPY_SSL_AXTLS=0",
    "MICROPY_SSL_MBEDTLS=0",
    "MICROPY_PY_BLUETOOTH=0",
    "MICROPY_VFS_FAT=1",
    "MICROPY_VFS_LFS1=0",
    "MICROPY_VFS_LFS2=1",
]


def build_mpy_cross(src):
    """The in-tree cross compiler, used to freeze modules (and by the ESP32 checks)."""
    exe = os.path.join(src, "mpy-cross", "build", "mpy-cross")
    log("build mpy-cross")
    run(["make", "-s", "-C", os.path.join(src, "mpy-cross"), "-j", jobs()])
    return exe


def build(src, manifest=None):
    """Build the unix port; returns the path of the binary."""
    build_mpy_cross(src)
    log("build unix port -> %s" % os.path.relpath(OUTPUT, ROOT))
    port_make(src, "unix", os.path.dirname(OUTPUT),   # objects beside the binary
              manifest or os.path.join(ROOT, "manifest.py"),
              options=MAKE_OPTIONS + ["PROG=" + os.path.basename(OUTPUT)])  # PROG is relative to BUILD
    return OUTPUT
