"""Get the pinned MicroPython source tree, with lib/berkeley-db-1.xx filled in.

Sources come from Debian's source packages, resolved by apt with a private
configuration (the machine's own apt sources are never touched), downloaded
once into the cache and refused unless their sha256 matches ``pins``.
``MICROPY_DIR=/path/to/micropython`` (an upstream v1.25.0 checkout with its
submodules) skips all of this.
"""

import hashlib
import os
import shutil
import subprocess
import tarfile
import urllib.request

from . import pins
from .system import log, run, ROOT


def cache_dir():
    """Where downloads are kept between builds (not in the work tree)."""
    d = os.environ.get("MTDB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "microtetherdb")
    os.makedirs(d, exist_ok=True)
    return d


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _apt_options(state):
    """apt-get options for a private deb-src configuration under ``state``."""
    lists = os.path.join(state, "lists")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    os.makedirs(os.path.join(state, "cache", "archives", "partial"), exist_ok=True)
    sources = os.path.join(state, "sources.list")
    with open(sources, "w") as f:
        f.write("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                "%s %s main\n" % (pins.DEBIAN_MIRROR, pins.DEBIAN_SUITE))
    opts = [
        "-o", "Dir::Etc::SourceList=" + sources,
        "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", "Dir::State::Lists=" + lists,
        "-o", "Dir::Cache=" + os.path.join(state, "cache"),
    ]
    if os.geteuid() == 0:
        opts += ["-o", "APT::Sandbox::User=root"]
    return opts


def _orig_url(pin, state):
    """Ask apt (private config) where the package's orig tarball is."""
    opts = _apt_options(state)
    lists = os.path.join(state, "lists")
    if not any(n.endswith("_Sources") or "_Sources" in n for n in os.listdir(lists)):
        log("apt: reading the %s source index (private configuration)" % pins.DEBIAN_SUITE)
        run(["apt-get"] + opts + ["-q", "update"])
    out = subprocess.run(
        ["apt-get"] + opts + ["-q", "--print-uris", "source", "--download-only",
                              "%s=%s" % (pin["package"], pin["version"])],
        check=True, capture_output=True, text=True, cwd=state).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == pin["orig"]:
            return parts[0].strip("'")
    raise SystemExit("apt does not know %s %s (its output:\n%s)"
                     % (pin["package"], pin["version"], out))


def fetch(pin):
    """Return the path of the pin's verified orig tarball, downloading it once."""
    path = os.path.join(cache_dir(), pin["orig"])
    if not (os.path.exists(path) and sha256_of(path) == pin["sha256"]):
        url = _orig_url(pin, os.path.join(cache_dir(), "apt"))
        log("download %s" % url)
        tmp = path + ".part"
        with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        os.replace(tmp, path)
    digest = sha256_of(path)
    if digest != pin["sha256"]:
        os.remove(path)
        raise SystemExit("sha256 mismatch for %s: got %s, pinned %s; refusing to build"
                         % (pin["orig"], digest, pin["sha256"]))
    return path


# Where each file of db1-compat goes in lib/berkeley-db-1.xx (before the patch).
_BDB_LAYOUT = [
    ("db/btree/", "btree/", lambda n: n.endswith(".c")),
    ("db/mpool/", "mpool/", lambda n: n == "mpool.c"),
    ("db/btree/", "include/berkeley-db/", lambda n: n in ("btree.h", "extern.h")),
    ("db/", "include/berkeley-db/", lambda n: n in ("db.h", "mpool.h", "compat.h")),
]


def fill_berkeley_db(tarball, dest):
    """Lay db1-compat's btree and mpool out as MicroPython expects, then patch."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    with tarfile.open(tarball) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for src_dir, dst_dir, wanted in _BDB_LAYOUT:
            for name, member in members.items():
                d, base = os.path.split(name)
                if d + "/" == src_dir and wanted(base):
                    out = os.path.join(dest, dst_dir, base)
                    os.makedirs(os.path.dirname(out), exist_ok=True)
                    with tar.extractfile(member) as f, open(out, "wb") as o:
                        o.write(f.read())
    patch = os.path.join(ROOT, pins.BERKELEY_DB_PATCH)
    run(["patch", "-s", "-p1", "--no-backup-if-mismatch", "-d", dest, "-i", patch])


def empty_micropython_lib():
    """MPY_LIB_DIR for builds that freeze nothing from micropython-lib.

    The Debian tarball has no micropython-lib (a submodule upstream) and our
    manifests need none of it, but the frozen-content rule insists that the
    directory exists; give it an empty one that says why.
    """
    d = os.path.join(ROOT, "build", "micropython-lib-empty")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("Intentionally empty: MicroTetherDB's firmware freezes nothing "
                "from micropython-lib.\n")
    return d


def _stamp():
    """Changes whenever the pins or our patches change: the tree is then redone."""
    h = hashlib.sha256()
    for pin in (pins.MICROPYTHON, pins.DB1_COMPAT):
        h.update(pin["sha256"].encode())
    for patch in [pins.BERKELEY_DB_PATCH] + pins.MICROPYTHON_PATCHES:
        with open(os.path.join(ROOT, patch), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def ensure_source():
    """Return the path of a ready MicroPython source tree (fetched, verified, patched).

    With MICROPY_DIR set, that tree is used as it is (our MicroPython patches
    are not applied to a user's checkout).
    """
    user_dir = os.environ.get("MICROPY_DIR")
    if user_dir:
        user_dir = os.path.abspath(user_dir)
        if not os.path.exists(os.path.join(user_dir, "lib/berkeley-db-1.xx/btree/bt_open.c")):
            raise SystemExit("MICROPY_DIR=%s has no lib/berkeley-db-1.xx; run "
                             "'git submodule update --init lib/berkeley-db-1.xx' there" % user_dir)
        return user_dir
    top = os.path.join(ROOT, "build", "src")
    tree = os.path.join(top, pins.MICROPYTHON["topdir"])
    stamp_file = os.path.join(tree, ".mtdb-stamp")
    stamp = _stamp()
    if os.path.exists(stamp_file) and open(stamp_file).read() == stamp:
        return tree
    mp_tar = fetch(pins.MICROPYTHON)
    db_tar = fetch(pins.DB1_COMPAT)
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    log("unpack %s" % os.path.basename(mp_tar))
    os.makedirs(top, exist_ok=True)
    with tarfile.open(mp_tar) as tar:
        tar.extractall(top)
    for patch in pins.MICROPYTHON_PATCHES:
        log("apply %s" % patch)
        run(["patch", "-s", "-p1", "--no-backup-if-mismatch", "-d", tree,
             "-i", os.path.join(ROOT, patch)])
    log("fill lib/berkeley-db-1.xx from %s + %s"
        % (os.path.basename(db_tar), os.path.basename(pins.BERKELEY_DB_PATCH)))
    fill_berkeley_db(db_tar, os.path.join(tree, "lib", "berkeley-db-1.xx"))
    with open(stamp_file, "w") as f:
        f.write(stamp)
    return tree
