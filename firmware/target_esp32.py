"""ESP32 firmware: Docker build of the MTDB_ESP32_* boards.

``build(src, board="all", allow_network=False, no_cache=False)``, the target
interface (``python3 -m firmware firmware --target esp32 --board B``,
``make firmware TARGET=esp32`` or ``make esp32``): docker build the builder
image (Dockerfile at the top of the repo; its MicroPython checkout must have
the content of ``src``, the verified tree), then docker run it with the repo
mounted read-only. Images land in firmware/dist/microtetherdb-<version>-<BOARD>[-<VARIANT>].bin
with SHA256SUMS, BUILDINFO, LICENSE and THIRD-PARTY-NOTICES.md.

The board table is the boards themselves: every ``boards/MTDB_ESP32*``
directory is a board, each ``mpconfigvariant_<V>.cmake`` in it a variant,
and its ``board.json`` gives the chip (``mcu``) and flash offset
(``deploy_options.flash_offset``), read by scripts/flash.py too.
ESP-IDF component locks, one per chip, are committed under
boards/idf-components/<chip>/dependencies.lock (see docs/esp32.md).
"""

import datetime
import glob
import json
import os
import shutil
import subprocess

from . import pins
from .system import ROOT, log, run
from .version import image_name, image_prefix, version

BOARDS_DIR = os.path.join(ROOT, "boards")
DIST = os.path.join(ROOT, "firmware", "dist")
LOCKS_DIR = os.path.join(BOARDS_DIR, "idf-components")
# Files every release of images carries beside them.
NOTICES = ("LICENSE", "THIRD-PARTY-NOTICES.md")
APT_PACKAGES = []  # Docker brings the toolchain


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
            "-e", "MTDB_IMAGE_PREFIX=" + image_prefix(),
            pins.ESP32["image"], "/opt/mtdb/docker-build.sh", "build"]
    return cmd + list(specs)


def build(src, board="all", allow_network=False, no_cache=False):
    """Build ``board`` (a spec or 'all') with Docker; returns the image paths.

    ``src`` is the verified MicroPython tree: the Docker build checks out the
    same release and refuses to build unless its content digest is the one
    pinned for this tree (tests/build_checks/test_esp32_docker.py ties the two).
    """
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
    for name in NOTICES:
        shutil.copy(os.path.join(ROOT, name), os.path.join(DIST, name))
    outs = [os.path.join(DIST, image_name(s)) for s in specs]
    for p in outs:
        log("image %s (%d bytes)" % (os.path.relpath(p, ROOT), os.path.getsize(p)))
    log("checksums: %s" % os.path.relpath(os.path.join(DIST, "SHA256SUMS"), ROOT))
    _report_unpinned_locks()
    return outs


def _report_unpinned_locks():
    """Component locks resolved by this build for chips with no committed lock."""
    new = sorted(glob.glob(os.path.join(DIST, "idf-locks", "*", "dependencies.lock")))
    for path in new:
        chip = os.path.basename(os.path.dirname(path))
        if not os.path.exists(os.path.join(LOCKS_DIR, chip, "dependencies.lock")):
            log("ESP-IDF components of %s were resolved from version ranges: pin them with\n"
                "  mkdir -p boards/idf-components/%s && cp %s boards/idf-components/%s/\n"
                "and commit (docs/esp32.md)" % (chip, chip, os.path.relpath(path, ROOT), chip))


def _write_buildinfo(docker, specs):
    """firmware/dist/BUILDINFO: what went into the images, for the release notes."""
    def out(args):
        r = subprocess.run([docker] + args, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else "unknown"
    idf = pins.ESP32["idf_image"]
    lines = [
        "version=%s" % version(),
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


# ---------------------------------------------------------------- CLI

def add_arguments(parser):
    """The esp32 options of ``firmware --target esp32`` and of ``esp32``."""
    parser.add_argument("--board", default="all",
                        help="ESP32 image: BOARD, BOARD-VARIANT or all (default); known: "
                             + ", ".join(image_specs()))
    parser.add_argument("--allow-network", action="store_true",
                        help="esp32: do not run the build container with --network none")
    parser.add_argument("--no-cache", action="store_true",
                        help="esp32: rebuild the builder image from scratch")


def build_options(args):
    return {"board": args.board, "allow_network": args.allow_network, "no_cache": args.no_cache}


def next_step(outs):
    return ("Flash one:  python3 scripts/flash.py %s --port /dev/ttyUSB0 --erase"
            % os.path.basename(outs[0])[len(image_prefix()):-4])
