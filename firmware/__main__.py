"""Command line of the build driver: ``python3 -m firmware <command> [options]``.

Commands:
  source                      fetch, verify and patch the MicroPython tree
  firmware [--target T]       build firmware for T: unix, qemu, esp32 (--board B|all)
  test [--target T] [-- ARGS] install test tools, build, run pytest (every target
                              of TEST_TARGETS unless --target is given)
  venv                        create build/venv with the test tools (no tests run)
  esp32 --board B|all         = firmware --target esp32 (ESP32 images with Docker)
  mpy [--march A]             the package as .mpy (+ package.json) in build/mpy
  mpy-cross                   build the in-tree mpy-cross
  package-json                rewrite package.json from modules/microtetherdb

Every target is a module firmware/target_<name>.py with the same interface:
APT_PACKAGES (Debian packages it needs), build(src, **options) -> the path(s)
it built from the verified source tree src, next_step(out) -> what to do
with it; optional add_arguments(parser) / build_options(args) for its own
options.
"""

import argparse
import importlib
import os
import subprocess
import sys

from . import mpy, pins, source, target_esp32
from .system import ROOT, ensure_apt, ensure_pip, log

TARGETS = ("unix", "qemu", "esp32")
# Targets that `make test` builds and runs the device-side suite on.
TEST_TARGETS = ("unix", "qemu")


def target_module(name):
    if name not in TARGETS:
        raise SystemExit("unknown target %r; known: %s" % (name, ", ".join(TARGETS)))
    return importlib.import_module("firmware.target_" + name)


def build_firmware(target, **options):
    mod = target_module(target)
    ensure_apt(pins.APT_BUILD + list(mod.APT_PACKAGES))
    src = source.ensure_source()
    out = mod.build(src, **options)
    for p in out if isinstance(out, list) else [out]:
        log("built %s" % os.path.relpath(p, ROOT))
    return out


def cmd_firmware(args):
    mod = target_module(args.target)
    opts = mod.build_options(args) if hasattr(mod, "build_options") else {}
    out = build_firmware(args.target, **opts)
    print("\n" + mod.next_step(out))


def cmd_test(args):
    targets = [args.target] if args.target else list(TEST_TARGETS)
    for t in targets:
        if t not in TEST_TARGETS:
            raise SystemExit("make test runs on %s, not %r" % (", ".join(TEST_TARGETS), t))
    vpy = ensure_pip(os.path.join(ROOT, "tests", "requirements.txt"))
    failed = []
    for target in targets:
        build_firmware(target)
        # The whole suite on the host firmware; the device-side suite on the others.
        paths = ["tests"] if target == "unix" else ["tests/test_device.py"]
        if target == "qemu":
            paths.append("tests/build_checks/test_qemu.py")   # the runner and image themselves
            paths.append("tests/test_mtdb_cli.py")     # scripts/mtdb.py --device
            paths.append("tests/build_checks/test_version.py")  # the version the image reports
            paths.append("tests/test_docs.py")   # the README's usage on a small heap
        cmd = [vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--target", target] + paths + args.pytest_args
        log("pytest on %s: %s" % (target, " ".join(cmd[1:])))
        if subprocess.run(cmd, cwd=ROOT).returncode:
            failed.append(target)
    if failed:
        raise SystemExit("tests failed on: " + ", ".join(failed))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m firmware", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("source").set_defaults(func=lambda a: print(source.ensure_source()))
    f = sub.add_parser("firmware", help="build firmware for a target")
    f.add_argument("--target", default="unix", help="unix (default), qemu or esp32")
    target_esp32.add_arguments(f)
    f.set_defaults(func=cmd_firmware)
    t = sub.add_parser("test")
    t.add_argument("--target", default=None)
    t.add_argument("pytest_args", nargs="*")
    t.set_defaults(func=cmd_test)
    v = sub.add_parser("venv")
    v.set_defaults(func=lambda a: print(ensure_pip(os.path.join(ROOT, "tests", "requirements.txt"))))
    e = sub.add_parser("esp32", help="= firmware --target esp32: ESP32 images with Docker")
    target_esp32.add_arguments(e)
    e.set_defaults(func=cmd_firmware, target="esp32")
    mpy.add_commands(sub)  # mpy, mpy-cross, package-json
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
