#!/usr/bin/env python3
"""Run MicroPython code on the qemu board image (build/qemu/firmware.elf).

The image boots in qemu-system-arm (machine mps2-an385) with its UART on a
pseudo-terminal, and files run on it through mpremote, exactly as on a real
board: ``mpremote connect <pty> exec <mount /flash> run <file>``.

  python3 scripts/qemu_run.py FILE.py [FILE.py ...]   run files, print output
                                                      (exit status 1 if one raised)
  python3 scripts/qemu_run.py -c "print(1)"           run a snippet
  python3 scripts/qemu_run.py --repl                  interactive REPL (mpremote)

On each run (mpremote soft-resets the board first) a RAM block device of
2 MiB, formatted as LittleFS at boot, is mounted at /flash and made the
current directory; its files persist until QEMU stops.

From Python (pytest's --target qemu uses this)::

    s = QemuSession(); s.start()
    out = s.run_file("x.py", timeout=60)   # printed text, tracebacks included
    out = s.run_code("print(1)")
    s.stop()
"""

import argparse
import atexit
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(ROOT, "build", "qemu", "firmware.elf")
QEMU = "qemu-system-arm"
MACHINE = "mps2-an385"

# Mounts the board's RAM disk at /flash (formats it if it holds no LittleFS)
# and leaves no names behind in the program's globals. It also re-enables the
# GC: on this port gc.disable() would outlive mpremote's soft reset.
MOUNT = (
    "import vfs, ramdisk, os, gc\n"
    "gc.enable()\n"
    "try:\n"
    " vfs.mount(vfs.VfsLfs2(ramdisk.RAMDisk()), '/flash')\n"
    "except OSError:\n"
    " vfs.VfsLfs2.mkfs(ramdisk.RAMDisk())\n"
    " vfs.mount(vfs.VfsLfs2(ramdisk.RAMDisk()), '/flash')\n"
    "os.chdir('/flash')\n"
    "del vfs, ramdisk, os, gc\n"
)
FORMAT = "import vfs, ramdisk\nvfs.VfsLfs2.mkfs(ramdisk.RAMDisk())\ndel vfs, ramdisk\n"

# What the port's fault handler (mcu/arm/errorhandler.c) prints before it stops.
FAULT = re.compile(rb"(NMI|HardFault|MemManage|BusFault|UsageFault|SVCall|DebugMonitor|"
                   rb"PendSV|SysTick|External interrupt)( -?\d+)? exception caught:")

_live = set()   # sessions to stop at interpreter exit: no stray QEMU


@atexit.register
def _stop_all():
    for s in list(_live):
        s.stop()


class QemuError(Exception):
    """QEMU or the image failed: no boot, a hang, a crash."""


class QemuSession:
    """One QEMU process running the board image; run files on it with mpremote.

    icount: None runs at host speed (fastest); an integer N makes QEMU
    execute one instruction every 2**N ns of virtual time (-icount shift=N),
    so time.ticks_us() counts instructions: deterministic timings.
    """

    def __init__(self, image=IMAGE, icount=None, boot_timeout=30, mpremote=None):
        self.image = image
        self.icount = icount
        self.boot_timeout = boot_timeout
        self.mpremote = mpremote or find_mpremote()
        self.proc = None
        self.pty = None
        self._fd = None
        self._log = None
        self._last_output = b""
        self._crashed = False
        self.boot_seconds = None   # start() to first REPL prompt
        self.last_failed = False   # the last program ended with an exception

    # -- life cycle ---------------------------------------------------------

    def command(self):
        cmd = [QEMU, "-machine", MACHINE, "-nographic", "-monitor", "none",
               "-semihosting", "-serial", "pty", "-kernel", self.image]
        if self.icount is not None:
            cmd += ["-icount", "shift=%d" % self.icount]
        return cmd

    def start(self):
        """Boot the image, wait for its REPL, format /flash. Raises QemuError."""
        if not os.path.exists(self.image):
            raise QemuError("%s is missing: run 'make firmware TARGET=qemu' first" % self.image)
        t0 = time.monotonic()
        # QEMU's own messages go to a file, not a pipe nobody reads later.
        self._log = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as e:
            self._log.close()
            self._log = None
            raise QemuError("cannot run %s: %s (make firmware TARGET=qemu installs it)" % (QEMU, e))
        _live.add(self)
        try:
            self.pty = self._read_pty_name()
            # Keep our own descriptor on the pty for the whole session: QEMU
            # then never sees the terminal hang up between two mpremote runs
            # (it would poll for the next connection only once a second).
            try:
                self._fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            except OSError as e:  # QEMU exited (e.g. a bad image) and took its pty along
                self.proc.wait(timeout=10)
                raise QemuError("QEMU exited with code %s before its serial port could be opened (%s); "
                                "QEMU said: %s" % (self.proc.returncode, e, self._qemu_output()))
            if not self._prompt(b"\r", self.boot_timeout):
                why = ("QEMU exited with code %s" % self.proc.returncode
                       if self.proc.poll() is not None else "no prompt within %ss" % self.boot_timeout)
                raise QemuError("the image did not boot to a REPL (%s); QEMU said: %s"
                                % (why, self._qemu_output()))
            self.boot_seconds = time.monotonic() - t0
            out = self._mpremote(["exec", FORMAT], 60)
            if out.strip():
                raise QemuError("formatting /flash failed:\n" + out)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop QEMU (SIGTERM, then SIGKILL) and release the pty."""
        _live.discard(self)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log, self._log = self._log, None
        if log is not None:
            self._last_output = self._read_log(log)
            log.close()

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- running code ------------------------------------------------------

    def run_file(self, path, timeout=60, mount=True):
        """Run a MicroPython file on the board; returns what it printed.

        A MicroPython exception is part of the returned text (not raised).
        On a timeout the program is interrupted (Ctrl-C; QEMU is restarted if
        the board does not answer) and QemuError is raised with the output.
        mount=False leaves /flash unmounted (the heap exactly as after a reset).
        """
        return self.mpremote_do(["run", os.path.abspath(path)], timeout, mount)

    def run_code(self, src, timeout=60, mount=True):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
        try:
            return self.run_file(f.name, timeout, mount)
        finally:
            os.unlink(f.name)

    def mpremote_do(self, args, timeout=60, mount=True):
        """Any mpremote commands (after its soft reset and the /flash mount),
        e.g. ["cp", "-r", "dir", ":/flash/"]; returns their output."""
        if self.proc is None or self.proc.poll() is not None:
            raise QemuError("QEMU is not running (start() it; it said: %s)" % self._qemu_output())
        try:
            return self._mpremote((["exec", MOUNT] if mount else []) + list(args), timeout)
        except QemuError:
            self._recover()
            raise

    # -- internals ---------------------------------------------------------

    def _mpremote(self, args, timeout):
        """Run mpremote, streaming its output: stop early if the board faults."""
        cmd = self.mpremote + ["connect", self.pty] + args
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        out, fault_at, timed_out = b"", None, False
        deadline = time.monotonic() + timeout
        try:
            fd = p.stdout.fileno()
            while True:
                now = time.monotonic()
                if fault_at is not None and now > fault_at + 0.5:
                    break   # the register dump is out; the board is stuck
                if now > deadline:
                    timed_out = True
                    break
                if select.select([fd], [], [], 0.2)[0]:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    out += chunk
                    if fault_at is None and FAULT.search(out[-8192:]):
                        fault_at = now
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
        text = out.decode("utf-8", "replace").replace("\r\n", "\n")
        if fault_at is not None:
            self._crashed = True
            raise QemuError("the board crashed (CPU fault); output:\n" + text[-4000:])
        if timed_out:
            raise QemuError("timed out after %ss; output so far:\n%s" % (timeout, text[-4000:]))
        if self.proc.poll() is not None:
            self._crashed = True
            raise QemuError("QEMU exited (code %s) while running; output:\n%s"
                            % (self.proc.returncode, text[-4000:]))
        if p.returncode and _mpremote_failed(text):
            raise QemuError("mpremote could not talk to the board:\n" + text[-4000:])
        self.last_failed = p.returncode != 0   # mpremote exits 1 when the program raised
        return text

    def _recover(self):
        """After a failure: interrupt the program (Ctrl-C), or restart QEMU."""
        crashed, self._crashed = self._crashed, False
        if (not crashed and self.proc is not None and self.proc.poll() is None
                and self._fd is not None):
            # Ctrl-C twice (KeyboardInterrupt), Ctrl-B (leave raw REPL), Enter.
            if self._prompt(b"\x03\x03\x02\r", 5):
                return
        self.restart()

    def _prompt(self, poke, timeout):
        """Send poke every half second until the friendly REPL prompt shows."""
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                os.write(self._fd, poke)
            except OSError:
                pass
            end = min(deadline, time.monotonic() + 0.5)
            while time.monotonic() < end:
                r, _, _ = select.select([self._fd], [], [], max(0, end - time.monotonic()))
                if r:
                    try:
                        buf = (buf + os.read(self._fd, 4096))[-256:]
                    except OSError:
                        pass
                    if b">>> " in buf:
                        self._drain()
                        return True
        return False

    def _drain(self):
        """Discard what the board prints until it is quiet for 50 ms."""
        while select.select([self._fd], [], [], 0.05)[0]:
            try:
                if not os.read(self._fd, 4096):
                    break
            except OSError:
                break

    def _read_pty_name(self):
        """QEMU prints 'char device redirected to /dev/pts/N (label serial0)'."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(rb"redirected to (/dev/\S+)", self._read_log(self._log))
            if m:
                return m.group(1).decode()
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise QemuError("QEMU did not open a serial pty: %s" % self._qemu_output())

    @staticmethod
    def _read_log(log):
        log.seek(0)
        return log.read()

    def _qemu_output(self):
        """What QEMU itself printed (errors such as a bad image or machine)."""
        if self._log is not None:
            text = self._read_log(self._log)
        else:
            text = self._last_output
        text = text.decode("utf-8", "replace").strip()
        return text or "(nothing)"


def _die_with_parent():
    """In the QEMU child: get SIGTERM if the parent dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so no QEMU outlives a killed test run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def find_mpremote():
    """mpremote of this Python, else of the test venv (build/venv), else on PATH."""
    import importlib.util
    import shutil
    if importlib.util.find_spec("mpremote"):
        return [sys.executable, "-m", "mpremote"]
    venv = os.path.join(ROOT, "build", "venv", "bin", "python")
    if os.path.exists(venv):
        return [venv, "-m", "mpremote"]
    if shutil.which("mpremote"):
        return ["mpremote"]
    raise QemuError("mpremote is not installed: pip install mpremote (or run 'make test' once)")


def _mpremote_failed(out):
    """mpremote's own failures, as opposed to a MicroPython traceback."""
    return ("could not enter raw repl" in out or "failed to access" in out
            or "TransportError" in out or "SerialException" in out
            or "no device found" in out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="MicroPython files to run, in order")
    ap.add_argument("-c", dest="code", help="run this code instead of files")
    ap.add_argument("--repl", action="store_true", help="open mpremote's REPL on the board")
    ap.add_argument("--image", default=IMAGE)
    ap.add_argument("--icount", type=int, default=None,
                    help="deterministic time: one instruction per 2**N ns (-icount shift=N)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per file")
    args = ap.parse_args(argv)
    if not (args.files or args.code or args.repl):
        ap.error("give files, -c CODE or --repl")
    for f in args.files:
        if not os.path.isfile(f):
            print("[qemu] error: no file %s" % f, file=sys.stderr)
            return 2

    # Stop QEMU on Ctrl-C / SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    rc = 0
    s = None
    try:
        s = QemuSession(args.image, icount=args.icount)
        s.start()
        print("[qemu] booted to REPL in %.2fs on %s" % (s.boot_seconds, s.pty), file=sys.stderr)
        if args.code is not None:
            sys.stdout.write(s.run_code(args.code, args.timeout))
            sys.stdout.flush()
            rc = rc or int(s.last_failed)
        for f in args.files:
            t = time.monotonic()
            sys.stdout.write(s.run_file(f, args.timeout))
            sys.stdout.flush()
            rc = rc or int(s.last_failed)
            print("[qemu] %s: %.2fs%s" % (f, time.monotonic() - t,
                                          ", raised" if s.last_failed else ""), file=sys.stderr)
        if args.repl:
            print("[qemu] mpremote REPL on %s; Ctrl-] to leave" % s.pty, file=sys.stderr)
            rc = subprocess.call(s.mpremote + ["connect", s.pty, "exec", MOUNT, "repl"])
    except QemuError as e:
        print("[qemu] error: %s" % e, file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        rc = 130
    finally:
        if s is not None:
            s.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
