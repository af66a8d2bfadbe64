"""Where device-side code runs: the host firmware, the qemu board, a real board.

Every target offers the same methods, so one test file runs on all of them:
``run_code(src, timeout)`` and ``run_file(path, timeout)`` return what the
program printed (a MicroPython traceback is part of that text, not raised),
``name`` is 'unix', 'qemu' or 'serial', and ``tmpdir()`` gives a fresh
writable directory on the device's filesystem.
"""

import itertools
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIX_BINARY = os.path.join(ROOT, "build", "unix", "micropython")


class TargetError(Exception):
    """The target itself failed (did not boot, hung, vanished)."""


class _Target:
    """What every target shares: run_code() goes through run_file()."""

    def run_code(self, src, timeout=None):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
        try:
            return self.run_file(f.name, timeout)
        finally:
            os.unlink(f.name)

    def close(self):
        pass


class UnixTarget(_Target):
    """The host firmware, build/unix/micropython, one process per run."""

    name = "unix"
    default_timeout = 300

    def __init__(self, binary=UNIX_BINARY):
        if not os.path.exists(binary):
            raise TargetError("%s is missing: run 'make firmware' first" % binary)
        self.binary = binary
        self._top = tempfile.mkdtemp(prefix="mtdb-test-")
        self._n = itertools.count()

    def tmpdir(self):
        d = os.path.join(self._top, "d%d" % next(self._n))
        os.makedirs(d)
        return d

    def run_file(self, path, timeout=None):
        # MICROPYPATH empty: only frozen modules, never files from the work tree.
        env = dict(os.environ, MICROPYPATH="")
        try:
            p = subprocess.run([self.binary, os.path.abspath(path)], cwd=self.tmpdir(),
                               env=env, capture_output=True, text=True,
                               errors="replace", timeout=timeout or self.default_timeout)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            raise TargetError("timed out after %ss; output so far:\n%s"
                              % (e.timeout, out[-4000:]))
        out = p.stdout + p.stderr
        if p.returncode < 0:
            raise TargetError("micropython died with signal %d; output:\n%s"
                              % (-p.returncode, out[-4000:]))
        return out



# --- QemuTarget and SerialTarget (qemu part; see scripts/qemu_run.py). ---
# They offer the same methods as UnixTarget: name, default_timeout, tmpdir(),
# run_file(path, timeout), run_code(src, timeout), close().

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import qemu_run  # noqa: E402


class QemuTarget(_Target):
    """The MCU image build/qemu/firmware.elf: one QEMU boot per pytest session,
    one ``mpremote run`` per file; /flash (LittleFS on a RAM disk) is the cwd."""

    name = "qemu"
    default_timeout = 300

    def __init__(self, image=qemu_run.IMAGE):
        if not os.path.exists(image):
            raise TargetError("%s is missing: run 'make firmware TARGET=qemu' first" % image)
        self.session = qemu_run.QemuSession(image)
        self._n = itertools.count()
        try:
            self.session.start()
        except qemu_run.QemuError as e:
            raise TargetError(str(e))

    def tmpdir(self):
        # Created by the program that uses it (the device-test footer does).
        return "/flash/d%d" % next(self._n)

    def run_file(self, path, timeout=None):
        try:
            return self.session.run_file(path, timeout or self.default_timeout)
        except qemu_run.QemuError as e:
            raise TargetError(str(e))

    def run_code(self, src, timeout=None):
        try:
            return self.session.run_code(src, timeout or self.default_timeout)
        except qemu_run.QemuError as e:
            raise TargetError(str(e))

    def close(self):
        self.session.stop()


class SerialTarget(_Target):
    """A real board on a serial port (e.g. an ESP32 on /dev/ttyUSB0), through
    ``mpremote connect PORT run FILE``. Test directories live under
    <cwd>/mtdb-test on the board's filesystem and are removed at the start."""

    name = "serial"
    default_timeout = 600

    CLEAN = (
        "import os\n"
        "def _rm(p):\n"
        " try:\n"
        "  for e in os.ilistdir(p):\n"
        "   _rm(p + '/' + e[0]) if e[1] == 0x4000 else os.remove(p + '/' + e[0])\n"
        "  os.rmdir(p)\n"
        " except OSError:\n"
        "  pass\n"
        "_rm('mtdb-test')\n"
        "print(os.getcwd())\n"
    )

    def __init__(self, port):
        self.port = port
        self.mpremote = qemu_run.find_mpremote()
        self._n = itertools.count()
        out = self._run(["exec", self.CLEAN], 120).strip().splitlines()
        if not out or not out[-1].startswith("/"):
            raise TargetError("board on %s did not answer:\n%s" % (port, "\n".join(out)))
        self.base = out[-1].rstrip("/") + "/mtdb-test"

    def tmpdir(self):
        return "%s/d%d" % (self.base, next(self._n))

    def _run(self, args, timeout):
        try:
            p = subprocess.run(self.mpremote + ["connect", self.port] + args,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = ((e.stdout or b"") + (e.stderr or b"")).decode("utf-8", "replace")
            raise TargetError("timed out after %ss; output so far:\n%s" % (timeout, out[-4000:]))
        out = (p.stdout + p.stderr).decode("utf-8", "replace").replace("\r\n", "\n")
        if p.returncode and qemu_run._mpremote_failed(out):
            raise TargetError("mpremote could not talk to %s:\n%s" % (self.port, out[-4000:]))
        return out

    def run_file(self, path, timeout=None):
        return self._run(["run", os.path.abspath(path)], timeout or self.default_timeout)



def make_target(spec):
    """Build the target named by pytest's --target option."""
    if spec == "unix":
        return UnixTarget()
    if spec == "qemu":
        return globals()["QemuTarget"]()
    if spec.startswith("serial:"):
        return globals()["SerialTarget"](spec.split(":", 1)[1])
    raise ValueError("unknown --target %r (unix, qemu, serial:/dev/ttyUSB0)" % spec)
