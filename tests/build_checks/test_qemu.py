"""The qemu runner (scripts/qemu_run.py) and board image, seen from the host.

Run with --target qemu (``make test`` does); skipped on other targets. These
use their own QEMU sessions where they break things on purpose.
"""

import os
import subprocess
import sys
import time

import pytest

import targets

qemu_run = targets.qemu_run


@pytest.fixture(autouse=True)
def _qemu_only(request):
    if request.config.getoption("--target") != "qemu":
        pytest.skip("needs --target qemu")


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_output_and_traceback_come_back_as_text(target):
    out = target.run_code("print('hi')\nimport sys\nprint(sys.platform)\n1/0\n")
    assert "hi\nqemu\n" in out
    assert "ZeroDivisionError" in out


def test_frozen_package_btree_and_flash(target):
    out = target.run_code(
        "import microtetherdb, btree, os, vfs\n"
        "print(microtetherdb.__file__.startswith('microtetherdb/'))\n"
        "print(os.getcwd(), type(vfs.VfsLfs2))\n"
        "db = microtetherdb.MicroTetherDB('q.db', in_memory=False)\n"
        "db.put('k', {'a': 1}); db.close()\n"
        "print('q.db' in os.listdir('/flash'))\n")
    assert "True\n/flash" in out and out.rstrip().endswith("True"), out


def test_btree_left_open_does_not_hurt_the_next_program(target):
    # btree's memory on this board is tracked GC-heap allocations; a handle
    # left open at a soft reset must not leave the list of them pointing
    # into the next program's heap (which then wrote into live objects).
    target.run_code("import btree, io\n"
                    "keep = [btree.open(io.BytesIO()) for _ in range(3)]\n"
                    "keep[0][b'k'] = b'v' * 300\n")
    out = target.run_code(
        "import btree, io, gc\n"
        "objs = []\n"
        "try:\n"                      # the whole heap in small objects
        "    while True:\n"
        "        objs.append(bytearray(28))\n"
        "except MemoryError:\n"
        "    pass\n"
        "del objs[-200:]\n"
        "gc.collect()\n"
        "db = btree.open(io.BytesIO())\n"
        "db[b'a'] = b'b' * 20\n"
        "db.close()\n"
        "print('damaged', sum(1 for b in objs if type(b) is not bytearray or any(b)), len(objs))\n")
    assert "damaged 0 " in out, out


def test_files_on_flash_persist_between_runs(target):
    target.run_code("open('/flash/persist.txt', 'w').write('still here')")
    assert "still here" in target.run_code("print(open('/flash/persist.txt').read())")


def test_hang_times_out_and_session_recovers():
    with qemu_run.QemuSession() as s:
        pid = s.proc.pid
        t = time.monotonic()
        with pytest.raises(qemu_run.QemuError, match="timed out"):
            s.run_code("print('start')\nwhile True:\n    pass\n", timeout=3)
        assert time.monotonic() - t < 20
        # Ctrl-C interrupted the loop: same QEMU, usable again.
        assert s.proc.pid == pid
        assert "42" in s.run_code("print(6 * 7)")
    assert not _alive(pid)


def test_keyboard_interrupt_reaches_running_code():
    # The board's UART interrupt turns Ctrl-C into KeyboardInterrupt even in
    # time.sleep (WFI) - that is what lets the runner recover without a reboot.
    with qemu_run.QemuSession() as s:
        pid = s.proc.pid
        with pytest.raises(qemu_run.QemuError):
            s.run_code("import time\ntime.sleep(600)\n", timeout=2)
        assert s.proc.pid == pid
        assert "ok" in s.run_code("print('ok')")


def test_cpu_fault_is_reported_and_qemu_restarted():
    # A bus fault (read of unmapped memory) ends in the port's fault handler,
    # which prints the registers and stops: the runner sees it at once.
    with qemu_run.QemuSession() as s:
        pid = s.proc.pid
        t = time.monotonic()
        with pytest.raises(qemu_run.QemuError, match="crashed") as e:
            s.run_code("import machine\nprint('before')\nmachine.mem32[0x70000000]\n",
                       timeout=120)
        assert time.monotonic() - t < 60
        assert "before" in str(e.value) and "HardFault" in str(e.value)
        assert s.proc.pid != pid and not _alive(pid)
        assert "alive" in s.run_code("print('alive')")


def test_qemu_dies_with_a_killed_runner(tmp_path):
    # Even when the process that started QEMU is SIGKILLed (no atexit), QEMU
    # goes too: the runner sets PR_SET_PDEATHSIG in the child.
    pidfile = tmp_path / "pid"
    code = ("import os, signal, sys\nsys.path.insert(0, %r)\nimport qemu_run\n"
            "s = qemu_run.QemuSession().start()\n"
            "open(%r, 'w').write(str(s.proc.pid))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n"
            % (os.path.dirname(qemu_run.__file__), str(pidfile)))
    p = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert p.returncode == -9
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def test_image_that_does_not_boot_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.elf"
    with open(qemu_run.IMAGE, "rb") as f:
        bad.write_bytes(f.read()[:4096])   # truncated image
    s = qemu_run.QemuSession(str(bad), boot_timeout=5)
    with pytest.raises(qemu_run.QemuError, match="did not boot"):
        s.start()
    assert s.proc is None


def test_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(qemu_run.QemuError, match="make firmware TARGET=qemu"):
        qemu_run.QemuSession(str(tmp_path / "none.elf")).start()


def test_missing_qemu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(qemu_run, "QEMU", "/nonexistent/qemu-system-arm")
    with pytest.raises(qemu_run.QemuError, match="cannot run /nonexistent/qemu-system-arm"):
        qemu_run.QemuSession().start()


def test_command_line_exit_status(tmp_path):
    """0 when the program ran, 1 when it raised, 2 for a missing file or a bad
    image; errors as one line, never a Python traceback of the runner."""
    runner = os.path.join(os.path.dirname(qemu_run.__file__), "qemu_run.py")

    def run(*args):
        p = subprocess.run([sys.executable, runner] + list(args), capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr

    (tmp_path / "ok.py").write_text("print('fine')\n")
    (tmp_path / "bad.py").write_text("print('before')\n1/0\n")
    rc, out, err = run(str(tmp_path / "ok.py"), str(tmp_path / "bad.py"))
    assert rc == 1 and "fine\nbefore\n" in out and "ZeroDivisionError" in out, err
    assert "bad.py: " in err and ", raised" in err
    rc, out, _ = run("-c", "print(6 * 7)")
    assert rc == 0 and out.strip() == "42"
    rc, out, err = run(str(tmp_path / "none.py"))
    assert rc == 2 and "no file" in err and "Traceback" not in err
    for image in (str(tmp_path / "none.elf"), str(tmp_path)):
        rc, out, err = run("--image", image, "-c", "1")
        assert rc == 2 and "[qemu] error:" in err and "Traceback" not in err, err


def test_clock_is_deterministic_under_icount():
    # With -icount the SysTick counts instructions: the same code takes the
    # same number of ticks every time (used for reproducible benchmarks).
    code = ("import time\nx = 0\nt = time.ticks_cpu()\n"
            "for i in range(2000):\n    x += i * i\n"
            "print('@', time.ticks_diff(time.ticks_cpu(), t))\n")
    with qemu_run.QemuSession(icount=2) as s:
        runs = []
        for _ in range(3):
            out = s.run_code(code)
            runs.append(int(out.split("@")[1].split()[0]))
    assert runs[0] > 0
    # Exact but for a SysTick interrupt more or less inside the loop (its
    # phase depends on the idle time before the run): a few cycles. At host
    # speed the same loop varies by ~1000 cycles between runs.
    assert max(runs) - min(runs) <= 10, runs
