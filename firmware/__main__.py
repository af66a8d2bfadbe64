"""Command line of the build driver: ``python3 -m firmware <command> [options]``.

Commands:
  source                      fetch, verify and patch the MicroPython tree
  firmware [--target T]       build firmware for T (unix, qemu)
  test [--target T] [-- ARGS] install test tools, build, run pytest (all targets
                              of TEST_TARGETS unless --target is given)
  esp32 --board B|all         ESP32 images with Docker into firmware/dist
  mpy [--march A]             the package as .mpy (+ package.json) in build/mpy
  mpy-cross                   build the in-tree mpy-cross
  venv                        create build/venv with the test tools (no tests run)
"""

import argparse
import importlib
import os
import subprocess
import sys

from . import pins, source, target_esp32
from .system import ROOT, ensure_apt, ensure_pip, log

# Targets that `make test` builds and runs the device-side suite on.
TEST_TARGETS = ("unix", "qemu")


def _target_module(name):
    try:
        return importlib.import_module("firmware.target_" + name)
    except ImportError:
        raise SystemExit("unknown target %r" % name)


def build_firmware(target):
    mod = _target_module(target)
    ensure_apt(pins.APT_BUILD + list(getattr(mod, "APT_PACKAGES", [])))
    src = source.ensure_source()
    out = mod.build(src)
    log("built %s" % os.path.relpath(out, ROOT))
    return out


def cmd_firmware(args):
    out = build_firmware(args.target)
    if args.target == "unix":
        print("\nRun it:  %s\n  >>> import microtetherdb" % os.path.relpath(out, os.getcwd()))
    else:
        print("\nRun it:  python3 scripts/qemu_run.py --repl")


def cmd_test(args):
    targets = [args.target] if args.target else list(TEST_TARGETS)
    vpy = ensure_pip(os.path.join(ROOT, "tests", "requirements.txt"))
    failed = []
    for target in targets:
        build_firmware(target)
        # The whole suite on the host firmware; the device-side suite on the others.
        paths = ["tests"] if target == "unix" else ["tests/test_device.py"]
        if target == "qemu":
            paths.append("tests/test_qemu.py")   # the runner and image themselves
            paths.append("tests/test_mtdb_cli.py")   # scripts/mtdb.py --device
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
    f = sub.add_parser("firmware")
    f.add_argument("--target", default="unix")
    f.set_defaults(func=cmd_firmware)
    t = sub.add_parser("test")
    t.add_argument("--target", default=None)
    t.add_argument("pytest_args", nargs="*")
    t.set_defaults(func=cmd_test)
    v = sub.add_parser("venv")
    v.set_defaults(func=lambda a: print(ensure_pip(os.path.join(ROOT, "tests", "requirements.txt"))))
    target_esp32.add_commands(sub)  # esp32, mpy, mpy-cross
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
