"""One version number everywhere: the package's __version__ (also on the
frozen firmware), package.json, the ESP32 image names, BUILDINFO, CHANGELOG;
and the licence files a release carries."""

import json
import os
import re
import subprocess
import sys

import pytest

from esp32_support import ROOT

from firmware import mpy, target_esp32, version  # noqa: E402


def test_version_is_semantic_and_read_from_the_package():
    v = version.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v), v
    text = open(os.path.join(ROOT, "modules", "microtetherdb", "__init__.py")).read()
    assert text.count("__version__") == 1 and '__version__ = "%s"' % v in text


def test_firmware_reports_the_same_version(target):
    out = target.run_code("import microtetherdb\nprint(microtetherdb.__version__)\n")
    assert out.strip().splitlines()[-1] == version.version(), out


def test_package_json_carries_it():
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    assert pkg == mpy.package_json(), "run: python3 -m firmware package-json"
    assert pkg["version"] == version.version()


def test_changelog_has_an_entry_for_it():
    text = open(os.path.join(ROOT, "CHANGELOG.md")).read()
    assert re.search(r"^## %s( |$)" % re.escape(version.version()), text, re.M)
    assert "## Unreleased" in text


def test_image_names_and_buildinfo_carry_it(tmp_path, monkeypatch):
    v = version.version()
    assert version.image_name("MTDB_ESP32_GENERIC_S3-SPIRAM_OCT") == \
        "microtetherdb-%s-MTDB_ESP32_GENERIC_S3-SPIRAM_OCT.bin" % v
    run = target_esp32.docker_run_command(["MTDB_ESP32_GENERIC"])
    assert "MTDB_IMAGE_PREFIX=microtetherdb-%s-" % v in run
    # flash.py's default image is the build's file name
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "flash.py"),
                        "MTDB_ESP32_GENERIC", "--port", "p", "--dry-run"],
                       capture_output=True, text=True)
    assert version.image_name("MTDB_ESP32_GENERIC") in r.stderr
    # BUILDINFO as the driver writes it after a build (docker stand-in: `false`)
    monkeypatch.setattr(target_esp32, "DIST", str(tmp_path))
    (tmp_path / "BUILDINFO.container").write_text("micropython_commit=abc\n")
    target_esp32._write_buildinfo("false", ["MTDB_ESP32_GENERIC"])
    info = (tmp_path / "BUILDINFO").read_text().splitlines()
    assert info[0] == "version=%s" % v and "micropython_commit=abc" in info


def test_license_and_notices_travel_with_the_images():
    for name in target_esp32.NOTICES:
        assert os.path.getsize(os.path.join(ROOT, name)) > 500, name
    notices = open(os.path.join(ROOT, "THIRD-PARTY-NOTICES.md")).read()
    assert "Regents of the University of California" in notices   # Berkeley DB
    assert "Damien P. George" in notices                           # MicroPython
    assert "MIT License" in open(os.path.join(ROOT, "LICENSE")).read()


def test_notices_name_every_library_compiled_into_the_qemu_image():
    """Each lib/<name> whose objects are linked into the qemu image (the one
    built here that is shipped like a device image) has its notice."""
    objs = os.path.join(ROOT, "build", "qemu", "lib")
    if not os.path.isdir(objs):
        pytest.skip("the qemu image is not built yet (make test builds it after this pass)")
    notices = open(os.path.join(ROOT, "THIRD-PARTY-NOTICES.md")).read()
    libs = sorted(os.listdir(objs))
    assert "berkeley-db-1.xx" in libs
    # lib/re1.5 and lib/uzlib are compiled inside extmod (#include of their .c files)
    for name in libs + ["re1.5", "uzlib"]:
        assert "lib/%s" % name in notices, name
