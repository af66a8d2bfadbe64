"""ESP32 firmware: Docker build of the MTDB_ESP32_* boards, and .mpy packages.

Commands (registered on ``python3 -m firmware`` by ``add_commands``):

  esp32 --board B|all [--allow-network] [--no-cache]
        docker build the builder image (Dockerfile at the top of the repo),
        then docker run it with the repo mounted read-only; images land in
        firmware/dist/<BOARD>[-<VARIANT>].bin with SHA256SUMS and BUILDINFO.
  mpy [--march ARCH]
        compile modules/microtetherdb/*.py with the in-tree mpy-cross into
        build/mpy/microtetherdb/*.mpy, plus build/mpy/package.json for
        ``mpremote mip install build/mpy/package.json``.
  mpy-cross
        build the in-tree mpy-cross (also done by every unix build).

The board table is the boards themselves: every ``boards/MTDB_ESP32*``
directory is a board, each ``mpconfigvariant_<V>.cmake`` in it a variant,
and its ``board.json`` gives the chip (``mcu``) and flash offset
(``deploy_options.flash_offset``), read by scripts/flash.py too.
"""

import datetime
import glob
import hashlib
import json
import os
import shutil
import subprocess

from . import pins
from .system import ROOT, BUILD, log, run

BOARDS_DIR = os.path.join(ROOT, "boards")
DIST = os.path.join(ROOT, "firmware", "dist")
MPY_OUT = os.path.join(BUILD, "mpy")
PACKAGE_DIR = os.path.join(ROOT, "modules", "microtetherdb")


# ---------------------------------------------------------------- boards

def boards():
    """Names of the ESP32 board directories, sorted."""
    return sorted(os.path.basename(os.path.dirname(p)) for p in
                  glob.glob(os.path.join(BOARDS_DIR, "MTDB_ESP32*", "mpconfigboard.cmake")))


def variants(board):
    """Variant names of a board (from its mpconfigvariant_<V>.cmake files)."""
    pat = os.path.join(BOARDS_DIR, board, "mpconfigvariant_*.cmake")
    return sorted(os.path.basename(p)[len("mpconfigvariant_"):-len(".cmake")]
                  for p in glob.glob(pat))


def image_specs():
    """Every image a release holds: BOARD and BOARD-VARIANT names."""
    out = []
    for b in boards():
        out.append(b)
        out.extend("%s-%s" % (b, v) for v in variants(b))
    return out


def split_spec(spec):
    """'BOARD-VARIANT' -> ('BOARD', 'VARIANT'); 'BOARD' -> ('BOARD', None)."""
    board, _, variant = spec.partition("-")
    return board, (variant or None)


def board_json(board):
    with open(os.path.join(BOARDS_DIR, board, "board.json")) as f:
        return json.load(f)


def resolve_specs(board):
    """The image names meant by --board (a name, BOARD-VARIANT, or 'all')."""
    if board == "all":
        return image_specs()
    specs = image_specs()
    if board not in specs:
        raise SystemExit("unknown ESP32 board %r; known: %s, all" % (board, ", ".join(specs)))
    return [board]


# ---------------------------------------------------------------- docker build

def _docker():
    exe = shutil.which("docker")
    if not exe:
        raise SystemExit("docker is not installed: see docs/esp32.md (Docker Engine 20.10+ "
                         "with BuildKit) or build with ESP-IDF v5.2.2 by hand")
    r = subprocess.run([exe, "info", "--format", "{{.ServerVersion}}"],
                       capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("docker cannot reach its daemon:\n" + (r.stderr or r.stdout).strip())
    return exe


def docker_build_command(docker="docker", no_cache=False):
    """The `docker build` command line (its --build-args are the pins)."""
    e = pins.ESP32
    cmd = [docker, "build", "-t", e["image"], "-f", os.path.join(ROOT, "Dockerfile"),
           "--build-arg", "IDF_IMAGE=" + e["idf_image"],
           "--build-arg", "MICROPY_REPO=" + e["micropython_repo"],
           "--build-arg", "MICROPY_TAG=" + e["micropython_tag"],
           "--build-arg", "MICROPY_COMMIT=" + e["micropython_commit"],
           "--build-arg", "MICROPY_TREE_SHA256=" + e["micropython_tree_sha256"]]
    if no_cache:
        cmd.append("--no-cache")
    return cmd + [ROOT]


def docker_run_command(specs, docker="docker", allow_network=False):
    """The `docker run` command line that builds ``specs`` into firmware/dist."""
    cmd = [docker, "run", "--rm"]
    if not allow_network:
        cmd += ["--network", "none"]
    cmd += ["-v", "%s:/project:ro" % ROOT,
            "-v", "%s:/out" % DIST,
            "-e", "HOST_UID=%d" % os.getuid(), "-e", "HOST_GID=%d" % os.getgid(),
            pins.ESP32["image"], "/opt/mtdb/docker-build.sh", "build"]
    return cmd + list(specs)


def build(board="all", allow_network=False, no_cache=False):
    """Build ``board`` (a spec or 'all') with Docker; returns the image paths."""
    specs = resolve_specs(board)
    docker = _docker()
    os.makedirs(DIST, exist_ok=True)
    log("docker build %s (ESP-IDF image, MicroPython %s, submodules, mpy-cross, "
        "IDF components; the first time downloads several GB)" % (pins.ESP32["image"], pins.ESP32["micropython_tag"]))
    cmd = docker_build_command(docker, no_cache)
    print("$ " + " ".join(cmd), flush=True)
    run(cmd)
    log("docker run: build %s (offline)" % ", ".join(specs) if not allow_network
        else "docker run: build %s" % ", ".join(specs))
    cmd = docker_run_command(specs, docker, allow_network)
    print("$ " + " ".join(cmd), flush=True)
    run(cmd)
    _write_buildinfo(docker, specs)
    outs = [os.path.join(DIST, s + ".bin") for s in specs]
    for p in outs:
        log("image %s (%d bytes)" % (os.path.relpath(p, ROOT), os.path.getsize(p)))
    log("checksums: %s" % os.path.relpath(os.path.join(DIST, "SHA256SUMS"), ROOT))
    return outs


def _write_buildinfo(docker, specs):
    """firmware/dist/BUILDINFO: what went into the images, for the release notes."""
    def out(args):
        r = subprocess.run([docker] + args, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "unknown"
    idf = pins.ESP32["idf_image"]
    lines = [
        "built_utc=%s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "images=%s" % " ".join(specs),
        "idf_image=%s" % idf,
        "idf_image_digest=%s" % out(["image", "inspect", "--format",
                                     "{{join .RepoDigests \" \"}}", idf]),
        "builder_image_id=%s" % out(["image", "inspect", "--format", "{{.Id}}",
                                     pins.ESP32["image"]]),
        "project_commit=%s" % _git(["rev-parse", "HEAD"]),
        "project_dirty=%s" % ("yes" if _git(["status", "--porcelain", "--", "modules",
                                             "boards", "Dockerfile", "scripts/esp32"]) else "no"),
    ]
    container = os.path.join(DIST, "BUILDINFO.container")
    if os.path.exists(container):
        with open(container) as f:
            lines += [l.rstrip("\n") for l in f]
        os.remove(container)
    with open(os.path.join(DIST, "BUILDINFO"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _git(args):
    r = subprocess.run(["git", "-C", ROOT] + args, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "unknown"


# ---------------------------------------------------------------- mpy-cross / .mpy

def mpy_cross_path(src):
    return os.path.join(src, "mpy-cross", "build", "mpy-cross")


def ensure_mpy_cross():
    """Path of the in-tree mpy-cross, building the source tree and it if needed."""
    from . import source, target_unix
    src = source.ensure_source()
    exe = mpy_cross_path(src)
    if not os.path.exists(exe):
        target_unix.build_mpy_cross(src)
    return src, exe


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
    _, exe = ensure_mpy_cross()
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
        f.write(format_package_json({"urls": urls, "deps": [],
                                     "version": package_json()["version"]}))
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
    with open(os.path.join(PACKAGE_DIR, "__init__.py")) as f:
        version = "0"
        for line in f:
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    return {"urls": [[rel, "modules/" + rel] for rel in package_files()],
            "deps": [],
            "version": version}


def write_package_json():
    path = os.path.join(ROOT, "package.json")
    with open(path, "w") as f:
        f.write(format_package_json(package_json()))
    return path


def format_package_json(pkg):
    """JSON text with one [target, url] pair per line (stable, diff-friendly)."""
    pairs = ",\n".join("    " + json.dumps(u) for u in pkg["urls"])
    return ('{\n  "urls": [\n%s\n  ],\n  "deps": %s,\n  "version": %s\n}\n'
            % (pairs, json.dumps(pkg["deps"]), json.dumps(pkg["version"])))


# ---------------------------------------------------------------- CLI

def _cmd_esp32(args):
    outs = build(args.board, args.allow_network, args.no_cache)
    print("\nFlash one:  python3 scripts/flash.py %s --port /dev/ttyUSB0 --erase"
          % os.path.basename(outs[0])[:-4])


def _cmd_mpy(args):
    out = build_mpy(args.march)
    rel = os.path.relpath(out, os.getcwd())
    print("\nInstall on a board (no reflash):\n"
          "  mpremote connect /dev/ttyUSB0 mip install %s/package.json\n"
          "or copy:  mpremote connect /dev/ttyUSB0 cp -r %s/microtetherdb :lib/" % (rel, rel))


def _cmd_mpy_cross(args):
    print(ensure_mpy_cross()[1])


def add_commands(sub):
    """Register esp32, mpy and mpy-cross on the driver's subparsers."""
    e = sub.add_parser("esp32", help="build ESP32 images with Docker into firmware/dist")
    e.add_argument("--board", default="all",
                   help="BOARD, BOARD-VARIANT or all (default); known: " + ", ".join(image_specs()))
    e.add_argument("--allow-network", action="store_true",
                   help="do not run the build container with --network none")
    e.add_argument("--no-cache", action="store_true", help="rebuild the builder image from scratch")
    e.set_defaults(func=_cmd_esp32)
    m = sub.add_parser("mpy", help="compile the package to .mpy in build/mpy (for mip/mpremote)")
    m.add_argument("--march", default=None, help="native arch (xtensawin, rv32imc); default: bytecode only")
    m.set_defaults(func=_cmd_mpy)
    j = sub.add_parser("package-json", help="rewrite package.json (mip) from modules/microtetherdb")
    j.set_defaults(func=lambda a: print(write_package_json()))
    c = sub.add_parser("mpy-cross", help="build the in-tree mpy-cross and print its path")
    c.set_defaults(func=_cmd_mpy_cross)
