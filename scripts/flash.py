#!/usr/bin/env python3
"""Flash a MicroTetherDB ESP32 image with esptool (PyPI: pip install esptool).

    python3 scripts/flash.py MTDB_ESP32_GENERIC --port /dev/ttyUSB0 --erase
    python3 scripts/flash.py MTDB_ESP32_GENERIC_S3-SPIRAM_OCT --port /dev/ttyACM0
    python3 scripts/flash.py MTDB_ESP32_GENERIC_C3 --port /dev/ttyACM0 --dry-run

The chip and the flash offset come from the board's own
boards/<BOARD>/board.json ("mcu", "deploy_options.flash_offset": ESP32 0x1000,
S3 and C3 0x0), the same table the build uses. The image defaults to
firmware/dist/microtetherdb-<version>-<BOARD>[-<VARIANT>].bin. Before anything
runs (--dry-run too) the image must exist, be an image for the board's chip
(ESP image magic 0xE9 and chip id in its header) with its partition table
where that offset puts it (--force skips this), and match
firmware/dist/SHA256SUMS when that file lists it. Steps, each printed as the
exact command before it runs:

  1. erase the whole flash            (--erase; needed when coming from other firmware)
  2. write the image at the offset    (esptool checks each block's MD5 as it writes)
  3. read it back and compare         (verify-flash; skip with --no-verify)

--dry-run prints the commands and runs nothing. esptool 5 spells commands
with dashes (write-flash), esptool 4 with underscores (write_flash): the
installed version decides, --esptool-major overrides (default 5 when esptool
is not installed).
"""

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS = os.path.join(ROOT, "boards")
DIST = os.path.join(ROOT, "firmware", "dist")
# Chip id in the extended header of an ESP image (esp_chip_id_t in ESP-IDF).
CHIP_IDS = {"esp32": 0x0000, "esp32s2": 0x0002, "esp32c3": 0x0005, "esp32s3": 0x0009,
            "esp32c6": 0x000D}
CHIPS = tuple(CHIP_IDS)
IMAGE_MAGIC = 0xE9
PARTITION_TABLE_AT = 0x8000        # flash address of the partition table (ESP-IDF default)
PARTITION_MAGIC = b"\xaa\x50"

sys.path.insert(0, ROOT)
from firmware.version import image_name  # noqa: E402  (pure Python, no side effects)


def board_flash_info(spec):
    """(chip, offset as '0x...') of BOARD or BOARD-VARIANT, from its board.json."""
    board, _, variant = spec.partition("-")
    bdir = os.path.join(BOARDS, board)
    path = os.path.join(bdir, "board.json")
    if not os.path.isfile(path):
        raise SystemExit("unknown board %r (no %s)" % (board, os.path.relpath(path, ROOT)))
    if variant and not os.path.isfile(os.path.join(bdir, "mpconfigvariant_%s.cmake" % variant)):
        raise SystemExit("board %s has no variant %r" % (board, variant))
    with open(path) as f:
        info = json.load(f)
    chip = info["mcu"]
    if chip not in CHIPS:
        raise SystemExit("%s: unsupported mcu %r" % (path, chip))
    offset = int(str(info["deploy_options"]["flash_offset"]), 0)
    return chip, hex(offset)


def esptool_major():
    """Major version of the installed esptool, or None."""
    try:
        from importlib.metadata import version, PackageNotFoundError
    except ImportError:  # pragma: no cover
        return None
    try:
        return int(version("esptool").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def commands(spec, port, image, baud=460800, erase=False, verify=True, major=5,
             python=sys.executable):
    """The esptool command lines (lists of str) that flash ``image``."""
    chip, offset = board_flash_info(spec)
    def name(cmd):
        return cmd if major >= 5 else cmd.replace("-", "_")
    base = [python, "-m", "esptool", "--chip", chip, "--port", port]
    out = []
    if erase:
        out.append(base + [name("erase-flash")])
    out.append(base + ["--baud", str(baud), name("write-flash"), offset, image])
    if verify:
        out.append(base + ["--baud", str(baud), name("verify-flash"), offset, image])
    return out


def check_image(image, spec):
    """Refuse an image that is not for this board's chip or not for this offset."""
    chip, offset = board_flash_info(spec)
    offset = int(offset, 16)
    with open(image, "rb") as f:
        head = f.read(24)
        f.seek(PARTITION_TABLE_AT - offset)
        table = f.read(2)
    name = os.path.basename(image)
    if len(head) < 24 or head[0] != IMAGE_MAGIC:
        raise SystemExit("%s is not an ESP32 firmware image (no 0xE9 magic at its start): "
                         "refusing to flash" % name)
    found = int.from_bytes(head[12:14], "little")
    if found != CHIP_IDS[chip]:
        other = [c for c, i in CHIP_IDS.items() if i == found]
        raise SystemExit("%s is an image for %s, the board %s is %s: refusing to flash"
                         % (name, other[0] if other else "chip id %d" % found, spec, chip))
    if table != PARTITION_MAGIC:
        raise SystemExit("%s has no partition table at 0x%x once written at 0x%x: not a full "
                         "image for this offset, refusing to flash" % (name, PARTITION_TABLE_AT, offset))
    print("image OK: %s image, partition table at 0x%x" % (chip, PARTITION_TABLE_AT))


def check_sum(image):
    """Compare the image with firmware/dist/SHA256SUMS (or a SHA256SUMS beside it)."""
    sums = os.path.join(os.path.dirname(os.path.abspath(image)), "SHA256SUMS")
    if not os.path.exists(sums):
        print("note: no SHA256SUMS beside %s, checksum not checked" % image)
        return
    want = None
    with open(sums) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == os.path.basename(image):
                want = parts[0]
    if want is None:
        print("note: %s is not listed in %s" % (os.path.basename(image), sums))
        return
    h = hashlib.sha256()
    with open(image, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != want:
        raise SystemExit("sha256 of %s does not match %s: refusing to flash" % (image, sums))
    print("sha256 OK: %s" % want)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Boards: " + ", ".join(sorted(
                                    d for d in os.listdir(BOARDS) if d.startswith("MTDB_ESP32"))))
    p.add_argument("board", help="BOARD or BOARD-VARIANT, e.g. MTDB_ESP32_GENERIC_S3-SPIRAM_OCT")
    p.add_argument("--port", "-p", required=True, help="serial port, e.g. /dev/ttyUSB0, COM3")
    p.add_argument("--image", help="image to flash (default firmware/dist/<board>.bin)")
    p.add_argument("--baud", "-b", type=int, default=460800)
    p.add_argument("--erase", action="store_true", help="erase the whole flash first")
    p.add_argument("--no-verify", action="store_true", help="do not read the image back")
    p.add_argument("--dry-run", action="store_true", help="check the image, print the commands, run nothing")
    p.add_argument("--force", action="store_true",
                   help="flash even if the image header does not look like this board's")
    p.add_argument("--esptool-major", type=int, default=None,
                   help="command spelling of esptool 4 or 5 (default: installed version)")
    args = p.parse_args(argv)

    image = args.image or os.path.join(DIST, image_name(args.board))
    major = args.esptool_major or esptool_major()
    if major is None:
        if not args.dry_run:
            raise SystemExit("esptool is not installed: pip install esptool")
        major = 5
    cmds = commands(args.board, args.port, image, args.baud, args.erase,
                    not args.no_verify, major)
    if not os.path.isfile(image):
        raise SystemExit("no image %s: build it (make esp32 BOARD=%s) or pass --image"
                         % (os.path.relpath(image), args.board))
    if not args.force:
        check_image(image, args.board)
    check_sum(image)
    for cmd in cmds:
        print("$ " + shlex.join(cmd), flush=True)
        if not args.dry_run:
            r = subprocess.run(cmd)
            if r.returncode:
                raise SystemExit("esptool failed (exit %d)" % r.returncode)
    if not args.dry_run:
        print("Flashed. Check it:  mpremote connect %s exec \"import microtetherdb, sys; "
              "print(sys.implementation._build, microtetherdb.__version__)\"" % args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
