# Helpers shared by the device-side tests. tests/test_device.py appends this
# file after each test file (before running the tests), so test functions can
# call these names; keep it small: on qemu it is compiled on the device too.
import os


def raises(exc, fn, *a, **k):
    """Call fn(*a, **k), which must raise exc; return the exception's message."""
    try:
        fn(*a, **k)
    except exc as e:
        return str(e)
    raise AssertionError("%s not raised" % exc.__name__)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
