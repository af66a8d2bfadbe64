#!/usr/bin/env python3
"""Memory facts of the MCU image (qemu board MTDB_QEMU_AN385), as a table.

  python3 scripts/memfacts.py [--markdown docs/memfacts.md]

Each figure is measured in a fresh interpreter (mpremote soft-resets the board
before every run) after gc.collect(), with gc.mem_free():

  - free heap after boot, and with /flash (LittleFS on the RAM disk) mounted;
  - after `import microtetherdb` from the frozen package (in the image);
  - after opening an empty database: in memory, and as a file on /flash;
  - how much each import allocates in all, garbage included (GC disabled);
  - the same import from .py files and from .mpy files (in-tree mpy-cross)
    copied to /flash (a package in the current directory shadows the frozen
    one: sys.path is ['', '.frozen']);
  - flash: the image's text+data with and without the frozen package (the
    second image, build/qemu-bare/firmware.elf, is built if missing).
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import qemu_run  # noqa: E402

PKG = os.path.join(ROOT, "modules", "microtetherdb")

MEASURE = """
import gc
gc.collect()
_f0 = gc.mem_free()
%s
gc.collect()
print("@@", _f0, gc.mem_free(), gc.mem_free() + gc.mem_alloc())
"""


def measure(session, code, mount=True):
    """(free before, free after, heap size) around code, in a fresh interpreter."""
    out = session.run_code(MEASURE % code, timeout=300, mount=mount)
    for line in out.splitlines():
        if line.startswith("@@ "):
            before, after, total = (int(x) for x in line.split()[1:])
            return before, after, total
    raise RuntimeError("measurement failed:\n%s\n%s" % (code, out[-2000:]))


def allocated(session):
    """Bytes the import allocates in all (garbage included), with the GC off:
    the transient need on top of what stays (compiling .py costs most)."""
    out = session.run_code("import gc\ngc.collect()\ngc.disable()\nf = gc.mem_free()\n"
                           "try:\n import microtetherdb\n print('@@', f - gc.mem_free())\n"
                           "except MemoryError:\n print('@@ MemoryError')\n"
                           # gc.disable() outlives the soft reset on this port
                           "gc.enable()\n", timeout=300)
    for line in out.splitlines():
        if line.startswith("@@ "):
            v = line[3:].strip()
            return ("allocates %s bytes in all" % v if v.isdigit()
                    else "with the GC off: more than the free heap")
    return "allocation not measured: " + out.strip()[-200:]


def elf_size(path):
    """text + data of an ELF (what the image occupies in flash)."""
    out = subprocess.run(["arm-none-eabi-size", path], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1].split()
    return int(out[0]) + int(out[1])


def ensure_images():
    from firmware import source, target_qemu
    if not os.path.exists(target_qemu.OUTPUT) or not os.path.exists(target_qemu.BARE_OUTPUT):
        src = source.ensure_source()
        if not os.path.exists(target_qemu.OUTPUT):
            target_qemu.build(src)
        if not os.path.exists(target_qemu.BARE_OUTPUT):
            target_qemu.build_bare(src)
    return target_qemu.OUTPUT, target_qemu.BARE_OUTPUT


def mpy_cross():
    from firmware import source
    exe = os.path.join(source.ensure_source(), "mpy-cross", "build", "mpy-cross")
    if not os.path.exists(exe):
        raise SystemExit("%s missing: run 'make firmware TARGET=qemu'" % exe)
    return exe


def copy_package(session, kind):
    """Put the package on /flash/microtetherdb as .py or .mpy files."""
    tmp = tempfile.mkdtemp(prefix="mtdb-memfacts-")
    try:
        dst = os.path.join(tmp, "microtetherdb")
        os.makedirs(dst)
        for py in sorted(glob.glob(os.path.join(PKG, "*.py"))):
            name = os.path.basename(py)
            if kind == "py":
                shutil.copy(py, dst)
            else:
                subprocess.run([mpy_cross(), "-march=armv7m", "-o",
                                os.path.join(dst, name[:-3] + ".mpy"), "-s",
                                "microtetherdb/" + name, py], check=True)
        session.run_code("import os\n"
                         "for f in os.listdir('/flash/microtetherdb') if 'microtetherdb' in "
                         "os.listdir('/flash') else []:\n"
                         " os.remove('/flash/microtetherdb/' + f)\n")
        out = session.mpremote_do(["cp", "-r", dst, ":/flash/"], timeout=300)
        listing = session.run_code("import os; print(sorted(os.listdir('/flash/microtetherdb')))")
        ext = "." + kind
        want = sorted(os.path.basename(p)[:-3] + ext for p in glob.glob(os.path.join(PKG, "*.py")))
        if str(want) not in listing:
            raise RuntimeError("copy to /flash failed:\n%s\n%s" % (out, listing))
    finally:
        shutil.rmtree(tmp)


def remove_package(session):
    session.run_code("import os\n"
                     "for f in os.listdir('/flash/microtetherdb'):\n"
                     " os.remove('/flash/microtetherdb/' + f)\n"
                     "os.rmdir('/flash/microtetherdb')\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)

    image, bare = ensure_images()
    rows = []   # (what, free heap after, cost vs reference, note)

    with qemu_run.QemuSession(image) as s:
        f0, boot_free, total = measure(s, "pass", mount=False)
        rows.append(("free heap after boot (of %d)" % total, boot_free, None, "nothing mounted"))
        _, flash_free, _ = measure(s, "pass")
        rows.append(("/flash (LittleFS, RAM disk) mounted", flash_free, boot_free - flash_free,
                     "the baseline below"))
        _, imp, _ = measure(s, "import microtetherdb")
        frozen_cost = flash_free - imp
        rows.append(("`import microtetherdb` (frozen)", imp, frozen_cost, allocated(s)))
        _, mem_db, _ = measure(s, "import microtetherdb\n"
                                  "db = microtetherdb.MicroTetherDB(in_memory=True)")
        rows.append(("+ empty DB, in memory", mem_db, imp - mem_db, "vs frozen import"))
        _, file_db, _ = measure(s, "import microtetherdb, os\n"
                                   "try:\n os.remove('/flash/mf.db')\nexcept OSError:\n pass\n"
                                   "db = microtetherdb.MicroTetherDB('/flash/mf.db', in_memory=False)")
        rows.append(("+ empty DB, file on /flash", file_db, imp - file_db, "vs frozen import"))

        for kind in ("mpy", "py"):
            copy_package(s, kind)
            try:
                _, free, _ = measure(s, "import microtetherdb\n"
                                        "assert not microtetherdb.__file__.startswith('.frozen'),"
                                        " microtetherdb.__file__")
                note = "%+d bytes vs frozen" % (imp - free)
                rows.append(("`import microtetherdb` from .%s on /flash" % kind, free,
                             flash_free - free, note + "; " + allocated(s)))
            except RuntimeError as e:
                err = [l for l in str(e).splitlines() if "Error" in l]
                rows.append(("`import microtetherdb` from .%s on /flash" % kind, None, None,
                             "fails: " + (err[-1].strip() if err else "see output")))
            remove_package(s)

    flash_with, flash_bare = elf_size(image), elf_size(bare)

    lines = ["| Measurement (qemu mps2-an385, MicroPython 1.25) | free heap (bytes) | cost (bytes) | note |",
             "|---|---:|---:|---|"]
    for what, free, cost, note in rows:
        lines.append("| %s | %s | %s | %s |" % (what, "-" if free is None else free,
                                                 "" if cost is None else cost, note))
    lines += ["", "| Image (text+data) | bytes |", "|---|---:|",
              "| with the frozen package | %d |" % flash_with,
              "| without it (asyncio only) | %d |" % flash_bare,
              "| cost of the frozen package | %d |" % (flash_with - flash_bare)]
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
