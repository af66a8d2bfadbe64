"""The hot calls keep their frames on the C stack.

MicroPython 1.25 allocates a function's frame on the heap at every call when
its state (locals and value stack, plus 3 words per active `try`) is over 11
words (py/objfun.c, VM_MAX_STATE_ON_STACK). On a fragmented heap that
allocation scans the allocation table: 17.7 us virtual instead of 0.7 us per
call on the qemu board (docs/benchmarks.md). One extra local or a tuple in an
`except` clause is enough to cross the line, and nothing else shows it: this
reads each function's frame size from the compiled bytecode (mpy-cross, and
mpy-tool.py of the pinned tree) for the functions on the paths of get, put
and delete.
"""

import os
import re
import subprocess
import sys

import pytest

from esp32_support import ROOT, mpy_cross, source_tree

LIMIT_WORDS = 11  # VM_MAX_STATE_ON_STACK / sizeof(mp_uint_t)
EXC_WORDS = 3  # sizeof(mp_exc_stack_t) / sizeof(mp_uint_t)

# module -> functions (simple names, each defined once in its module)
HOT = {
    "codec": ["_check", "text", "doc", "_hdr_doc", "body_offset", "fetch", "expiry", "flags"],
    "db": ["get", "put", "_put_new", "delete", "_del_plain", "_raw", "_now", "_pages", "_rec_pages",
           "_write_record", "_delete_record", "_after_write", "_value"],
    "keys": ["next", "stored"],
    "memstore": ["take"],
}


def frames(path, tmp_path):
    """{simple name: [state words, ...]} of the functions compiled from path."""
    out_mpy = os.path.join(str(tmp_path), os.path.basename(path)[:-3] + ".mpy")
    subprocess.run([mpy_cross(), "-o", out_mpy, path], check=True)
    tool = os.path.join(source_tree(), "tools", "mpy-tool.py")
    text = subprocess.run([sys.executable, tool, "-d", out_mpy], check=True,
                          capture_output=True, text=True).stdout
    got = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"simple_name: (\S+)", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"\s*prelude: \((\d+), (\d+),", line)
        if m and name is not None:
            got.setdefault(name, []).append(int(m.group(1)) + EXC_WORDS * int(m.group(2)))
            name = None
    return got


@pytest.mark.parametrize("module", sorted(HOT))
def test_hot_frames_stay_on_the_c_stack(module, tmp_path):
    got = frames(os.path.join(ROOT, "modules", "microtetherdb", module + ".py"), tmp_path)
    over = []
    for fn in HOT[module]:
        assert len(got.get(fn, ())) == 1, "%s.%s: defined %d times" % (module, fn, len(got.get(fn, ())))
        words = got[fn][0]
        if words > LIMIT_WORDS:
            over.append("%s.%s: %d words" % (module, fn, words))
    assert not over, "frames allocated on the heap at every call: " + ", ".join(over)


def test_the_check_sees_a_frame_over_the_limit(tmp_path):
    src = tmp_path / "sample.py"
    src.write_text(
        "def small(a):\n    return a + 1\n"
        "def big(a, b):\n    c = a + b\n    d = c * 2\n    try:\n"
        "        return (a, b, c, d, a, b)\n    except (ValueError, IndexError):\n        return None\n"
    )
    got = frames(str(src), tmp_path)
    assert got["small"][0] <= LIMIT_WORDS
    assert got["big"][0] > LIMIT_WORDS
