#!/usr/bin/env python3
"""Does an ESP32 app fit its partition? Run by docker-build.sh after each build.

    check_app_size.py BUILD_DIR PORT_DIR NAME

Reads the app binary (BUILD_DIR/micropython.bin) and the app partition's size
from the partition table CSV the build used (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME
in BUILD_DIR/sdkconfig, relative to PORT_DIR), prints

    app_size NAME <app bytes> <partition bytes> <headroom bytes> <headroom %>

(the line goes into BUILDINFO) and exits 1 with a clear message if the app
does not fit. ESP-IDF checks this too, deep in its build output; this says
by how much, for every image, fitting or not.
"""

import os
import re
import sys


def app_partition_size(csv_path):
    """Size of the first app partition (factory or ota_0) in a partition CSV."""
    with open(csv_path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cols = [c.strip() for c in line.split(",")]
            if len(cols) >= 5 and cols[1] == "app":
                return _number(cols[4])
    raise SystemExit("%s: no app partition" % csv_path)


def _number(text):
    """0x1F0000, 2016K, 2M, 2031616 -> bytes."""
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)([KM]?)", text)
    if not m:
        raise SystemExit("partition size %r not understood" % text)
    return int(m.group(1), 0) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def partition_csv(build_dir, port_dir):
    with open(os.path.join(build_dir, "sdkconfig")) as f:
        m = re.search(r'^CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="([^"]+)"', f.read(), re.M)
    if not m:
        raise SystemExit("%s/sdkconfig names no custom partition table" % build_dir)
    return os.path.join(port_dir, m.group(1))


def main(argv):
    build_dir, port_dir, name = argv
    app = os.path.getsize(os.path.join(build_dir, "micropython.bin"))
    csv_path = partition_csv(build_dir, port_dir)
    part = app_partition_size(csv_path)
    room = part - app
    print("app_size %s %d %d %d %.1f" % (name, app, part, room, 100.0 * room / part))
    if room < 0:
        print("%s does not fit: the app is %d bytes, its partition (%s) %d bytes: %d bytes "
              "too many. Freeze less, or use a board with a bigger app partition."
              % (name, app, os.path.basename(csv_path), part, -room), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
