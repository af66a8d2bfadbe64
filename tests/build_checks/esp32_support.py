"""Shared helpers of the tests/build_checks/test_esp32_*.py checks (host-side only).

The ESP32 toolchain and Docker are not needed: these checks read the board
files, the Dockerfile and the scripts against the pinned MicroPython 1.25
source tree (build/src/micropython-1.25.0, or MICROPY_DIR) and run the pieces
that can run on the host (mpy-cross, makemanifest.py, esptool's CLI, mip).
"""

import functools
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BOARDS_DIR = os.path.join(ROOT, "boards")


@functools.lru_cache(maxsize=None)
def source_tree():
    """The pinned MicroPython tree (fetched/verified by the build driver if needed)."""
    from firmware import source
    return source.ensure_source()


def upstream_copy(dst):
    """A copy of the digested part of the pinned tree (scripts/esp32/
    tree_digest.py's DIGEST_PATHS) without our MicroPython patches: what the
    upstream tag holds, which the Docker build checks before patching."""
    import importlib.util
    import shutil
    import subprocess

    from firmware import pins
    src = source_tree()
    spec = importlib.util.spec_from_file_location(
        "tree_digest", os.path.join(ROOT, "scripts", "esp32", "tree_digest.py"))
    td = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(td)
    for top in td.DIGEST_PATHS:
        s, d = os.path.join(src, top), os.path.join(dst, top)
        if os.path.isdir(s):
            shutil.copytree(s, d, symlinks=True, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("build", "build-*", "__pycache__"))
        elif os.path.exists(s):
            os.makedirs(os.path.dirname(d), exist_ok=True)
            shutil.copy(s, d)
    for patch in pins.MICROPYTHON_PATCHES:
        text = open(os.path.join(ROOT, patch)).read()
        files = [l[6:].split()[0] for l in text.splitlines() if l.startswith("+++ b/")]
        if all(os.path.exists(os.path.join(dst, f)) for f in files):
            subprocess.run(["patch", "-s", "-R", "-p1", "-d", dst, "-i", os.path.join(ROOT, patch)],
                           check=True)
    return td


@functools.lru_cache(maxsize=None)
def mpy_cross():
    from firmware import mpy
    return mpy.mpy_cross()


def esp32_boards():
    from firmware import target_esp32
    return target_esp32.boards()


def image_specs():
    from firmware import target_esp32
    return target_esp32.image_specs()


def strip_cmake_comments(text):
    """Drop # comments (outside double quotes) from CMake text."""
    out = []
    for line in text.splitlines():
        quoted = False
        for i, c in enumerate(line):
            if c == '"':
                quoted = not quoted
            elif c == "#" and not quoted:
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def parse_cmake_set(text, var):
    """Items of `set(VAR item...)` / `list(APPEND VAR item...)` in a cmake file.

    Enough CMake for board files: comments stripped, no nested parentheses,
    ${VAR} references kept as text.
    """
    import re
    body = strip_cmake_comments(text)
    items = []
    for m in re.finditer(r"\b(set|list)\s*\(\s*(APPEND\s+)?%s\b([^)]*)\)" % re.escape(var), body):
        items.extend(re.findall(r'(?:[^\s"]|"[^"]*")+', m.group(3)))
    return items
