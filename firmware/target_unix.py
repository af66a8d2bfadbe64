"""Host firmware: MicroPython's unix port with btree and the frozen database.

Output: build/unix/micropython. Options the database does not need and that
would need extra libraries are off: ffi (libffi), ssl (mbedtls/axtls), all
absent from the Debian source tarball.
"""

import os

from .mpy import mpy_cross
from .port_make import port_make
from .system import BUILD, ROOT, log

APT_PACKAGES = []
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


def build(src, manifest=None):
    """Build the unix port; returns the path of the binary."""
    mpy_cross(src)   # freezing needs it
    log("build unix port -> %s" % os.path.relpath(OUTPUT, ROOT))
    port_make(src, "unix", os.path.dirname(OUTPUT),   # objects beside the binary
              manifest or os.path.join(ROOT, "manifest.py"),
              options=MAKE_OPTIONS + ["PROG=" + os.path.basename(OUTPUT)])  # PROG is relative to BUILD
    return OUTPUT


def next_step(out):
    return "Run it:  %s\n  >>> import microtetherdb" % os.path.relpath(out, os.getcwd())
