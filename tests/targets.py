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
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIX_BINARY = os.path.join(ROOT, "build", "unix", "micropython")


class TargetError(Exception):
    """The target itself failed (did not boot, hung, vanished)."""


class UnixTarget:
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

    def run_code(self, src, timeout=None):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
        try:
            return self.run_file(f.name, timeout)
        finally:
            os.unlink(f.name)

    def close(self):
        pass


# --- QemuTarget and SerialTarget go here (qemu part; see scripts/qemu_run.py). ---
# They offer the same methods as UnixTarget: name, default_timeout, tmpdir(),
# run_file(path, timeout), run_code(src, timeout), close().


def make_target(spec):
    """Build the target named by pytest's --target option."""
    if spec == "unix":
        return UnixTarget()
    if spec == "qemu":
        return globals()["QemuTarget"]()
    if spec.startswith("serial:"):
        return globals()["SerialTarget"](spec.split(":", 1)[1])
    raise ValueError("unknown --target %r (unix, qemu, serial:/dev/ttyUSB0)" % spec)
