#!/usr/bin/env python3
"""Content digest of the parts of a MicroPython source tree the ESP32 build uses.

Runs on the host (CPython 3.11, tests) and inside the ESP32 Docker image
(the IDF image's python3). It ties the upstream git checkout used for ESP32
images to the sha256-verified Debian source tarball the host firmware is
built from: both must give the same digest (firmware/pins.py
MICROPY_ESP32_TREE_SHA256).

What is hashed: every regular file (and symlink, by its target text) under
DIGEST_PATHS, by relative path and content; build output directories
(build, build-*), __pycache__, the IDF component manager's files and empty
directories are skipped. Git submodules (lib/lwip, lib/berkeley-db-1.xx, ...)
are not part of it: they are empty in the Debian tarball; their commits are
pinned by the superproject commit and recorded in BUILDINFO.

Usage: tree_digest.py MICROPY_DIR            print the digest
       tree_digest.py MICROPY_DIR --list     print "sha256  path" per file
       tree_digest.py MICROPY_DIR --expect HEX   exit 1 (with a diff hint) on mismatch
"""

import hashlib
import os
import sys

# Core, port and in-repo (non-submodule) libraries compiled into ESP32 images,
# plus the tools that freeze Python code into them.
DIGEST_PATHS = (
    "py",
    "extmod",
    "shared",
    "drivers",
    "mpy-cross",
    "ports/esp32",
    "lib/littlefs",
    "lib/oofatfs",
    "lib/mbedtls_errors",
    "lib/uzlib",
    "lib/re1.5",
    "lib/crypto-algorithms",
    "lib/libm",
    "lib/libm_dbl",
    "tools/makemanifest.py",
    "tools/manifestfile.py",
    "tools/mpy-tool.py",
    "tools/mpy_cross_all.py",
)

SKIP_DIRS = ("__pycache__", "managed_components", ".git")
SKIP_FILES = ("dependencies.lock",)


def _skip_dir(name):
    return name in SKIP_DIRS or name == "build" or name.startswith("build-")


def file_hashes(root):
    """Return {relative_path: sha256_hex} for the digested part of root."""
    out = {}
    for top in DIGEST_PATHS:
        path = os.path.join(root, top)
        if os.path.islink(path) or os.path.isfile(path):
            out[top] = _hash_entry(path)
            continue
        if not os.path.isdir(path):
            raise FileNotFoundError("missing in MicroPython tree: " + top)
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not _skip_dir(d))
            for name in sorted(filenames):
                if name in SKIP_FILES or name.endswith(".pyc"):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                out[rel] = _hash_entry(full)
    return out


def _hash_entry(path):
    h = hashlib.sha256()
    if os.path.islink(path):
        h.update(b"symlink:" + os.readlink(path).encode())
    else:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(65536), b""):
                h.update(chunk)
    return h.hexdigest()


def digest(root):
    """One sha256 over the sorted "sha256  path" lines of file_hashes(root)."""
    lines = "".join("%s  %s\n" % (v, k) for k, v in sorted(file_hashes(root).items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = argv[1]
    if "--list" in argv:
        for k, v in sorted(file_hashes(root).items()):
            print("%s  %s" % (v, k))
        return 0
    got = digest(root)
    if "--expect" in argv:
        want = argv[argv.index("--expect") + 1]
        if got != want:
            print("MicroPython tree digest MISMATCH in %s" % root, file=sys.stderr)
            print("  expected %s" % want, file=sys.stderr)
            print("  got      %s" % got, file=sys.stderr)
            print("  compare: tree_digest.py DIR --list on both trees", file=sys.stderr)
            return 1
        print("MicroPython tree digest OK: %s" % got)
        return 0
    print(got)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
