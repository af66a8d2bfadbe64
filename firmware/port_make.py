"""Running a MicroPython port's make the same way for every target we build here."""

import hashlib
import os
import shutil

from .source import empty_micropython_lib
from .system import ROOT, jobs, log, run


def port_make(src, port, build_dir, manifest, options=(), inputs=()):
    """Build ``ports/<port>`` of ``src`` into ``build_dir`` with our frozen ``manifest``.

    ``inputs`` are files whose change make cannot see (board .mk options that
    become -D flags); a change in them, or a re-made source tree, cleans
    ``build_dir`` first.
    """
    _clean_if_changed(src, build_dir, inputs)
    run(["make", "-s", "-C", os.path.join(src, "ports", port), "-j", jobs(),
         "BUILD=" + build_dir,
         "FROZEN_MANIFEST=" + manifest,
         "MPY_LIB_DIR=" + empty_micropython_lib()] + list(options),
        # Stop makeversionhdr.py's `git describe` at the source tree: it would
        # otherwise find this project's repository and call the firmware
        # "MicroPython <our commit>" instead of v1.25.0.
        env=dict(os.environ, GIT_CEILING_DIRECTORIES=os.path.dirname(src)))


def _clean_if_changed(src, build_dir, inputs):
    """Rebuild from scratch when make cannot see a change: an input file, or a
    re-made source tree (unpacked files keep the tarball's old dates, older
    than our objects)."""
    h = hashlib.sha256()
    for path in inputs:
        with open(path, "rb") as f:
            h.update(f.read())
    tree_stamp = os.path.join(src, ".mtdb-stamp")   # rewritten when source.py redoes the tree
    h.update(open(tree_stamp, "rb").read() if os.path.exists(tree_stamp) else src.encode())
    digest = h.hexdigest()
    stamp = os.path.join(build_dir, ".inputs-sha256")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return
    if os.path.isdir(build_dir):
        log("inputs changed: clean %s" % os.path.relpath(build_dir, ROOT))
        shutil.rmtree(build_dir)
    os.makedirs(build_dir)
    with open(stamp, "w") as f:
        f.write(digest)
