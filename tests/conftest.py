"""pytest set-up: choose the MicroPython target and hand it to the tests."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from targets import make_target  # noqa: E402

# tests/device/ holds MicroPython code, run by test_device.py, not by pytest.
collect_ignore_glob = ["device/*"]


def pytest_addoption(parser):
    parser.addoption("--target", default="unix",
                     help="where device-side code runs: unix (build/unix/micropython), "
                          "qemu (build/qemu/firmware.elf under qemu-system-arm) or "
                          "serial:/dev/ttyUSB0 (a real board, through mpremote)")


@pytest.fixture(scope="session")
def target(request):
    t = make_target(request.config.getoption("--target"))
    yield t
    t.close()
