"""Runs the device-side tests (tests/device/test_*.py) on the chosen target.

A device test file is MicroPython code defining ``test_*`` functions that use
plain ``assert``. Each file runs once, in one MicroPython process (or one
``mpremote run`` on a board), with a footer appended that defines the globals
``TMP`` (a fresh writable directory per test, removed after it), ``TARGET`` ('unix', 'qemu',
'serial') and ``skip(reason)``, then calls the tests in file order and prints
one status line each. Every test function becomes its own pytest item here.
Before the footer comes ``tests/device/support.py`` (helpers such as
``raises`` and ``exists``) and every ``tests/device/<name>.py`` that the file
names in a ``# uses: <name>`` line. All of it comes after the file, so line
numbers in tracebacks are the file's own (and the test files may use these
names inside functions only).
"""

import ast
import glob
import os
import re

import pytest

DEVICE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "device")

FOOTER = '''

# ---- appended by tests/test_device.py ----
class _Skip(Exception):
    pass


def skip(reason=""):
    raise _Skip(reason)


def _rm_tree(p):
    import os
    try:
        for e in os.ilistdir(p):
            if e[1] == 0x4000:
                _rm_tree(p + "/" + e[0])
            else:
                os.remove(p + "/" + e[0])
        os.rmdir(p)
    except OSError:
        pass


def _run_tests(base, target, names):
    import gc, os, sys
    global TMP, TARGET
    TARGET = target
    path = ""
    for part in base.split("/"):
        if not part:
            continue
        path = path + "/" + part if (path or base[0] == "/") else part
        try:
            os.mkdir(path)
        except OSError:
            pass
    for i, name in enumerate(names):
        TMP = base + "/t" + str(i)
        try:
            os.mkdir(TMP)
        except OSError:
            pass
        gc.collect()
        try:
            globals()[name]()
            print("@@PASS", name)
        except _Skip as e:
            print("@@SKIP", name, e.args[0] if e.args else "")
        except Exception as e:
            print("@@FAIL", name)
            sys.print_exception(e)
            print("@@END", name)
        # One board runs every file: leave its flash as empty as it was.
        _rm_tree(TMP)
    _rm_tree(base)
    print("@@DONE")


_run_tests(%r, %r, %r)
'''


def _device_tests():
    """(file, test name) pairs, in file order, found without running anything."""
    out = []
    for path in sorted(glob.glob(os.path.join(DEVICE_DIR, "test_*.py"))):
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                out.append((os.path.basename(path), node.name))
    return out


def _parse(output):
    """Map test name -> (status, detail) from the footer's status lines. A
    failure's detail is its traceback, after what the test printed."""
    results, current, lines, printed = {}, None, [], []
    for line in output.splitlines():
        if line.startswith("@@PASS "):
            results[line[7:].strip()] = ("pass", "")
            printed = []
        elif line.startswith("@@SKIP "):
            name, _, why = line[7:].partition(" ")
            results[name] = ("skip", why)
            printed = []
        elif line.startswith("@@FAIL "):
            current, lines = line[7:].strip(), []
        elif line.startswith("@@END ") and current:
            out = ("printed:\n" + "\n".join(printed[-40:]) + "\n") if printed else ""
            results[current] = ("fail", out + "\n".join(lines))
            current, printed = None, []
        elif current:
            lines.append(line)
        else:
            printed.append(line)
    return results


_file_results = {}


def _results_for(target, filename):
    if filename not in _file_results:
        with open(os.path.join(DEVICE_DIR, filename)) as f:
            src = f.read()
        names = [n for fn, n in _device_tests() if fn == filename]
        program = src
        for name in ["support"] + re.findall(r"^# uses: (\w+)", src, re.M):
            with open(os.path.join(DEVICE_DIR, name + ".py")) as f:
                program += "\n\n" + f.read()
        program += FOOTER % (target.tmpdir(), target.name, names)
        # "# timeout: N" in a device file: its program may run N seconds
        # (long sweeps on the qemu board; the target's default otherwise)
        m = re.search(r"^# timeout: (\d+)", src, re.M)
        output = target.run_code(program, int(m.group(1)) if m else None)
        _file_results[filename] = (_parse(output), output)
    return _file_results[filename]


@pytest.mark.parametrize("filename,name", _device_tests(),
                         ids=["%s::%s" % t for t in _device_tests()])
def test_device(target, filename, name):
    results, output = _results_for(target, filename)
    if name not in results:
        pytest.fail("%s did not report (crash, MemoryError at import, or hang?); "
                    "end of output:\n%s" % (name, output[-3000:]))
    status, detail = results[name]
    if status == "skip":
        pytest.skip(detail)
    if status == "fail":
        pytest.fail(detail, pytrace=False)
