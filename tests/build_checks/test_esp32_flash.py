"""scripts/flash.py: the esptool commands it prints and runs, per board.

The printed commands are also handed to the real esptool (PyPI, pinned in
tests/requirements.txt) with a serial port that does not exist: esptool must
get as far as opening the port, i.e. accept chip, command, offset and file.
"""

import hashlib
import json
import os
import shlex
import subprocess
import sys

import pytest

from esp32_support import BOARDS_DIR, ROOT, image_specs

from firmware.version import image_name

FLASH = os.path.join(ROOT, "scripts", "flash.py")
EXPECTED = {  # chip and offset per board, as the issue states them
    "MTDB_ESP32_GENERIC": ("esp32", "0x1000"),
    "MTDB_ESP32_GENERIC_S3": ("esp32s3", "0x0"),
    "MTDB_ESP32_GENERIC_C3": ("esp32c3", "0x0"),
}


CHIP_IDS = {"esp32": 0, "esp32s3": 9, "esp32c3": 5}  # esp_chip_id_t, ESP-IDF


def fake_image(path, chip, offset, table_at=0x8000):
    """An image file as the build writes it: bootloader header (magic 0xE9,
    chip id) at its start, partition table where table_at lands once the
    file is written at offset."""
    head = bytes([0xE9, 3, 2, 0x20]) + b"\0" * 4 + bytes([0xEE, 0, 0, 0]) \
        + CHIP_IDS[chip].to_bytes(2, "little") + b"\0" * 10
    data = bytearray(head + b"\xff" * (table_at - int(offset, 16) + 32 - len(head)))
    at = table_at - int(offset, 16)
    data[at:at + 2] = b"\xaa\x50"
    path.write_bytes(bytes(data))
    return str(path)


def run(*args):
    return subprocess.run([sys.executable, FLASH] + list(args), capture_output=True, text=True)


def dry_run(*args):
    r = run(*(list(args) + ["--dry-run"]))
    assert r.returncode == 0, r.stdout + r.stderr
    return [shlex.split(l[2:]) for l in r.stdout.splitlines() if l.startswith("$ ")]


def expected_for(spec):
    return EXPECTED[spec.partition("-")[0]]


@pytest.mark.parametrize("spec", image_specs())
def test_dry_run_prints_the_right_commands(spec, tmp_path):
    chip, offset = expected_for(spec)
    image = fake_image(tmp_path / image_name(spec), chip, offset)
    cmds = dry_run(spec, "--port", "/dev/ttyUSB0", "--erase", "--esptool-major", "5",
                   "--image", image)
    assert len(cmds) == 3
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", "/dev/ttyUSB0"]
    assert cmds[0] == base + ["erase-flash"]
    assert cmds[1] == base + ["--baud", "460800", "write-flash", offset, image]
    assert cmds[2] == base + ["--baud", "460800", "verify-flash", offset, image]
    # Same offset as the board's board.json (the table the flash script reads).
    with open(os.path.join(BOARDS_DIR, spec.partition("-")[0], "board.json")) as f:
        info = json.load(f)
    assert int(info["deploy_options"]["flash_offset"], 0) == int(offset, 16)
    assert info["mcu"] == chip


def test_options_change_the_commands(tmp_path):
    img = fake_image(tmp_path / "x.bin", "esp32c3", "0x0")
    cmds = dry_run("MTDB_ESP32_GENERIC_C3", "--port", "COM3", "--no-verify", "--baud", "115200",
                   "--image", img, "--esptool-major", "4")
    assert cmds == [[sys.executable, "-m", "esptool", "--chip", "esp32c3", "--port", "COM3",
                     "--baud", "115200", "write_flash", "0x0", img]]


def test_missing_image_is_an_error_even_in_a_dry_run():
    r = run("MTDB_ESP32_GENERIC", "--port", "p", "--dry-run")
    assert r.returncode != 0 and "$ " not in r.stdout
    assert "no image " in r.stderr
    assert os.path.join("firmware", "dist", image_name("MTDB_ESP32_GENERIC")) in r.stderr


@pytest.mark.parametrize("board,chip,offset,why", [
    ("MTDB_ESP32_GENERIC", "esp32s3", "0x1000", "is an image for esp32s3, the board MTDB_ESP32_GENERIC is esp32"),
    ("MTDB_ESP32_GENERIC_S3", "esp32", "0x0", "is an image for esp32, the board MTDB_ESP32_GENERIC_S3 is esp32s3"),
    ("MTDB_ESP32_GENERIC_C3", "esp32c3", "0x1000", "no partition table at 0x8000 once written at 0x0"),
])
def test_image_for_another_chip_or_offset_is_refused(tmp_path, board, chip, offset, why):
    # e.g. an S3 image (made for 0x0) queued for an ESP32 at 0x1000
    img = fake_image(tmp_path / "x.bin", chip, offset)
    r = run(board, "--port", "p", "--image", img, "--dry-run")
    assert r.returncode != 0 and why in r.stderr and "refusing to flash" in r.stderr, r.stderr
    assert "$ " not in r.stdout
    r = run(board, "--port", "p", "--image", img, "--dry-run", "--force")
    assert r.returncode == 0 and "$ " in r.stdout
    (tmp_path / "junk.bin").write_bytes(b"PK\3\4" + b"\0" * 100)
    r = run(board, "--port", "p", "--image", str(tmp_path / "junk.bin"), "--dry-run")
    assert r.returncode != 0 and "not an ESP32 firmware image" in r.stderr


def test_unknown_board_or_variant_is_refused():
    for bad in ("ESP32_GENERIC", "MTDB_ESP32_GENERIC-OCT"):
        r = subprocess.run([sys.executable, FLASH, bad, "--port", "p", "--dry-run"],
                           capture_output=True, text=True)
        assert r.returncode != 0 and ("unknown board" in r.stderr or "no variant" in r.stderr)


def test_checksum_mismatch_refuses_to_flash(tmp_path):
    img = tmp_path / "MTDB_ESP32_GENERIC.bin"
    fake_image(img, "esp32", "0x1000")
    (tmp_path / "SHA256SUMS").write_text("%s  MTDB_ESP32_GENERIC.bin\n" % ("0" * 64))
    r = subprocess.run([sys.executable, FLASH, "MTDB_ESP32_GENERIC", "--port", "/dev/nonexistent",
                        "--image", str(img), "--esptool-major", "5"], capture_output=True, text=True)
    assert r.returncode != 0 and "refusing to flash" in r.stderr
    assert "$ " not in r.stdout  # nothing was run


@pytest.mark.parametrize("spec", ["MTDB_ESP32_GENERIC", "MTDB_ESP32_GENERIC_S3-SPIRAM_OCT",
                                  "MTDB_ESP32_GENERIC_C3"])
def test_esptool_accepts_the_commands(spec, tmp_path):
    esptool = pytest.importorskip("esptool", reason="pip install -r tests/requirements.txt")
    from importlib.metadata import version
    major = int(version("esptool").split(".")[0])
    img = tmp_path / image_name(spec)
    fake_image(img, *expected_for(spec))
    (tmp_path / "SHA256SUMS").write_text(
        "%s  %s\n" % (hashlib.sha256(img.read_bytes()).hexdigest(), img.name))
    port = str(tmp_path / "no-such-port")
    # Not a dry run: flash.py checks the sum, prints and runs esptool, which
    # parses everything and then fails to open the port.
    r = subprocess.run([sys.executable, FLASH, spec, "--port", port, "--image", str(img),
                        "--erase", "--esptool-major", str(major)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert "sha256 OK" in out
    assert r.returncode != 0
    assert "could not open" in out.lower() and port in out, out
    for bad in ("Usage:", "invalid choice", "No such command", "No such option", "Deprecated"):
        assert bad not in out, out
    # Each step alone reaches the port too (flash.py stops at the first failure).
    for cmd in dry_run(spec, "--port", port, "--image", str(img), "--erase",
                       "--esptool-major", str(major)):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        assert "could not open" in out.lower(), (cmd, out)
        for bad in ("Usage:", "invalid choice", "No such command", "No such option", "Deprecated"):
            assert bad not in out, (cmd, out)
    assert esptool
