"""mpy-cross and the package as .mpy files (for boards that keep their firmware).

``mpy_cross(src)`` is the one way every build and check gets the in-tree
cross compiler. Commands (registered on ``python3 -m firmware``):

  mpy [--march ARCH]  compile modules/microtetherdb/*.py into
                      build/mpy/microtetherdb/*.mpy, plus build/mpy/package.json
                      for ``mpremote mip install build/mpy/package.json``
  mpy-cross           build the in-tree mpy-cross and print its path
  package-json        rewrite package.json (mip, .py sources) from the package,
                      and the stubs' version (stubs/pyproject.toml)
"""

import hashlib
import json
import os
import re
import shutil

from . import source
from .system import BUILD, ROOT, jobs, log, run
from .version import version

MPY_OUT = os.path.join(BUILD, "mpy")
PACKAGE_DIR = os.path.join(ROOT, "modules", "microtetherdb")


def mpy_cross(src=None):
    """Path of the in-tree mpy-cross of ``src`` (default: the pinned tree),
    built or brought up to date first (a no-op when it is)."""
    src = src or source.ensure_source()
    log("build mpy-cross")
    run(["make", "-s", "-C", os.path.join(src, "mpy-cross"), "-j", jobs()])
    return os.path.join(src, "mpy-cross", "build", "mpy-cross")


def package_files():
    """The package's .py files, relative to modules/ (e.g. microtetherdb/keys.py)."""
    names = sorted(n for n in os.listdir(PACKAGE_DIR) if n.endswith(".py"))
    return ["microtetherdb/" + n for n in names]


def build_mpy(march=None, out=MPY_OUT):
    """Compile the package to .mpy in ``out``; write ``out``/package.json for mip.

    Without ``march`` the files are plain bytecode (no native code), which
    every port with the same .mpy version loads; ``march`` (xtensawin, rv32imc)
    is only needed for @micropython.native/viper code.
    """
    exe = mpy_cross()
    if os.path.isdir(out):
        shutil.rmtree(out)
    urls = []
    for rel in package_files():
        src = os.path.join(ROOT, "modules", rel)
        dst = os.path.join(out, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        cmd = [exe, "-o", dst, "-s", rel]
        if march:
            cmd.append("-march=" + march)
        run(cmd + [src])
        urls.append([rel[:-3] + ".mpy", rel[:-3] + ".mpy"])
    with open(os.path.join(out, "package.json"), "w") as f:
        f.write(format_package_json({"urls": urls, "deps": [], "version": version()}))
    with open(os.path.join(out, "SHA256SUMS"), "w") as f:
        for rel, _ in urls:
            with open(os.path.join(out, rel), "rb") as g:
                f.write("%s  %s\n" % (hashlib.sha256(g.read()).hexdigest(), rel))
    total = sum(os.path.getsize(os.path.join(out, u[0])) for u in urls)
    log("%d .mpy files (%d bytes) in %s" % (len(urls), total, os.path.relpath(out, ROOT)))
    return out


def package_json():
    """The mip package.json for the repository's top level (source .py files).

    URLs are relative: mip resolves them against where package.json came from,
    so `mpremote mip install github:<org>/<repo>` fetches
    github:<org>/<repo>/modules/microtetherdb/<file>.py (any fork, any
    branch with @branch), and `mpremote mip install ./package.json` installs
    from a local clone.
    """
    return {"urls": [[rel, "modules/" + rel] for rel in package_files()],
            "deps": [],
            "version": version()}


STUBS_PROJECT = os.path.join(ROOT, "stubs", "pyproject.toml")


def write_package_json():
    """Rewrite package.json, and the version of the type stubs' pyproject.toml."""
    path = os.path.join(ROOT, "package.json")
    with open(path, "w") as f:
        f.write(format_package_json(package_json()))
    with open(STUBS_PROJECT) as f:
        text = f.read()
    with open(STUBS_PROJECT, "w") as f:
        f.write(re.sub(r'^version = "[^"]*"$', 'version = "%s"' % version(), text, count=1,
                       flags=re.M))
    return path


def format_package_json(pkg):
    """JSON text with one [target, url] pair per line (stable, diff-friendly)."""
    pairs = ",\n".join("    " + json.dumps(u) for u in pkg["urls"])
    return ('{\n  "urls": [\n%s\n  ],\n  "deps": %s,\n  "version": %s\n}\n'
            % (pairs, json.dumps(pkg["deps"]), json.dumps(pkg["version"])))


def _cmd_mpy(args):
    out = build_mpy(args.march)
    rel = os.path.relpath(out, os.getcwd())
    print("\nInstall on a board (no reflash):\n"
          "  mpremote connect /dev/ttyUSB0 mip install %s/package.json\n"
          "or copy:  mpremote connect /dev/ttyUSB0 cp -r %s/microtetherdb :lib/" % (rel, rel))


def add_commands(sub):
    """Register mpy, mpy-cross and package-json on the driver's subparsers."""
    m = sub.add_parser("mpy", help="compile the package to .mpy in build/mpy (for mip/mpremote)")
    m.add_argument("--march", default=None, help="native arch (xtensawin, rv32imc); default: bytecode only")
    m.set_defaults(func=_cmd_mpy)
    j = sub.add_parser("package-json", help="rewrite package.json (mip) from modules/microtetherdb "
                                            "and the version of stubs/pyproject.toml")
    j.set_defaults(func=lambda a: print(write_package_json()))
    c = sub.add_parser("mpy-cross", help="build the in-tree mpy-cross and print its path")
    c.set_defaults(func=lambda a: print(mpy_cross()))
