"""The project's one version number, and the names that carry it.

It is written once, as ``__version__`` in modules/microtetherdb/__init__.py
(what ``microtetherdb.__version__`` says on a board); package.json, the ESP32
image file names and BUILDINFO take it from here. docs/releasing.md says how
a release is cut.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_INIT = os.path.join(ROOT, "modules", "microtetherdb", "__init__.py")


def version():
    """__version__ of the package, e.g. '2.0.0'."""
    with open(PACKAGE_INIT) as f:
        m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
    if not m:
        raise SystemExit("no __version__ = \"X.Y.Z\" line in %s" % PACKAGE_INIT)
    return m.group(1)


def image_prefix():
    """What every ESP32 image file name starts with: 'microtetherdb-2.0.0-'."""
    return "microtetherdb-%s-" % version()


def image_name(spec):
    """File name of the image of BOARD or BOARD-VARIANT ``spec``."""
    return image_prefix() + spec + ".bin"
