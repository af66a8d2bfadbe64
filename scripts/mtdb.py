#!/usr/bin/env python3
"""Get MicroTetherDB data off and onto devices; check, repair, migrate files.

  python3 scripts/mtdb.py export DB [--since KEY] [--csv] > records.jsonl
  python3 scripts/mtdb.py import DB < records.jsonl
  python3 scripts/mtdb.py stats DB | check DB | repair DB
  python3 scripts/mtdb.py migrate SRC DST      (a file of the earlier MicroTetherDB)

Without --device the file is on this computer and the work is done by the host
firmware build/unix/micropython (built by `python3 -m firmware firmware` if it
is missing: CPython has no btree). With --device PORT the file is on a board
(DB is a path there) and the same code runs on the board through mpremote's
raw REPL: records stream over the serial line one at a time, the file is never
copied. Records are JSON lines:

  {"key": "...", "doc": {...}, "tags": [...], "expires": 812345678}

("tags" and "expires" are left out when empty; expires is in the clock of the
device, see --epoch). Details: docs/cli.md.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_FIRMWARE = os.path.join(ROOT, "build", "unix", "micropython")
VENV_PYTHON = os.path.join(ROOT, "build", "venv", "bin", "python")
DEVICE_CODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mtdb_device.py")
EPOCH_2000 = 946684800  # 2000-01-01 in seconds since 1970


class Failed(Exception):
    """The command failed; the message says why (exit status 1)."""


# ---------------------------------------------------------------- links

class HostLink:
    """The host firmware as a child process that runs code sent on its stdin,
    one JSON-encoded chunk per line, and prints its output on stdout."""

    LOOP = (
        "import sys, json\n"
        "G = {}\n"
        "while True:\n"
        " l = sys.stdin.readline()\n"
        " if not l:\n"
        "  break\n"
        " try:\n"
        "  exec(json.loads(l), G)\n"
        "  print('@@OK')\n"
        " except BaseException as e:\n"
        "  print('@@EXC')\n"
        "  sys.print_exception(e, sys.stdout)\n"
        "  print('@@END')\n"
    )

    def __init__(self, binary=HOST_FIRMWARE):
        if not os.path.exists(binary):
            log("%s is missing: building it (python3 -m firmware firmware)" % os.path.relpath(binary))
            r = subprocess.run([sys.executable, "-m", "firmware", "firmware"], cwd=ROOT,
                               stdout=sys.stderr)
            if r.returncode or not os.path.exists(binary):
                raise Failed("could not build the host firmware %s" % binary)
        # MICROPYPATH empty: the frozen package only, never files from a work tree.
        self.p = subprocess.Popen([binary, "-c", self.LOOP], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=dict(os.environ, MICROPYPATH=""),
                                  bufsize=0)

    def run(self, code, on_line):
        self.p.stdin.write(json.dumps(code).encode() + b"\n")
        self.p.stdin.flush()
        exc = None
        while True:
            raw = self.p.stdout.readline()
            if not raw:
                raise Failed("the host firmware stopped (exit status %s)" % self.p.wait())
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if exc is not None:
                if line == "@@END":
                    raise Failed(_last_line(exc))
                exc.append(line)
            elif line == "@@OK":
                return
            elif line == "@@EXC":
                exc = []
            else:
                on_line(line)

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait()


class DeviceLink:
    """A board on a serial port, through mpremote's raw REPL (Python API)."""

    def __init__(self, port, reset=True, timeout=120):
        try:
            from mpremote.transport_serial import SerialTransport
            from mpremote.transport import TransportError
        except ImportError:
            raise Failed("--device needs mpremote: pip install mpremote")
        self.TransportError = TransportError
        self.timeout = timeout
        try:
            self.t = SerialTransport(port, baudrate=115200)
            # Soft reset (as mpremote does): stops the running program, fresh heap.
            self.t.enter_raw_repl(soft_reset=reset)
        except (TransportError, OSError) as e:
            raise Failed("cannot talk to the board on %s: %s" % (port, e))

    def run(self, code, on_line):
        buf = bytearray()

        def consume(b):
            buf.extend(b)
            if b == b"\n":
                on_line(buf.decode("utf-8", "replace").rstrip("\r\n"))
                buf[:] = b""

        try:
            self.t.exec_raw_no_follow(code)
            _, err = self.t.follow(self.timeout, consume)
        except self.TransportError as e:
            raise Failed("the board stopped answering (%s)" % e)
        if buf.strip(b"\x04\r\n"):
            on_line(buf.decode("utf-8", "replace").rstrip("\r\n\x04"))
        if err:
            raise Failed(_last_line(err.decode("utf-8", "replace").splitlines()))

    def close(self):
        try:
            self.t.exit_raw_repl()
            self.t.close()
        except Exception:
            pass


def _last_line(lines):
    """A MicroPython traceback -> its last line ('OSError: [Errno 2] ...')."""
    lines = [l for l in lines if l.strip()]
    return lines[-1] if lines else "failed on the device"


class Session:
    """The device-side code (scripts/mtdb_device.py) loaded on a link, and its
    line protocol: @R record, @D result, @P skipped record; anything else the
    board prints goes to stderr."""

    def __init__(self, args):
        if args.device:
            if args.epoch is not None:
                raise Failed("--epoch is for files on this computer; a board uses its own clock")
            self.link = DeviceLink(args.device, reset=not args.no_reset, timeout=args.timeout)
            offset = 0
        else:
            self.link = HostLink()
            # The host firmware counts from 1970; boards (ESP32, qemu) from 2000.
            offset = EPOCH_2000 if (args.epoch or 2000) == 2000 else 0
        try:
            self.call("_CLOCK_OFFSET = %d\n%s" % (offset, device_code(args.cmd)))
        except BaseException:
            self.close()
            raise

    def call(self, code, on_record=None, on_problem=None):
        """Run code; return the object of its @D line."""
        result = []

        def on_line(line):
            tag, _, rest = line.partition(" ")
            if tag == "@R" and on_record:
                on_record(json.loads(rest))
            elif tag == "@D":
                result.append(json.loads(rest))
            elif tag == "@P" and on_problem:
                on_problem(json.loads(rest))
            elif line.strip():
                log("device: " + line)

        self.link.run(code, on_line)
        return result[-1] if result else None

    def close(self):
        self.link.close()


def device_code(command):
    """scripts/mtdb_device.py: its common part and the section of `command`."""
    with open(DEVICE_CODE) as f:
        parts = f.read().split("\n# --- ")
    keep = [parts[0]]
    for part in parts[1:]:
        name, _, body = part.partition("\n")
        if name == command:
            keep.append(body)
    return "\n".join(keep)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- commands

def record_line(r):
    """The export line of one record: key, doc, then tags/expires if any."""
    o = {"key": r["key"], "doc": r["doc"]}
    if r.get("tags"):
        o["tags"] = r["tags"]
    if r.get("expires") is not None:
        o["expires"] = r["expires"]
    return json.dumps(o, ensure_ascii=False)


def cmd_export(s, args, out):
    if not args.csv:
        res = s.call("export(%r, %r)" % (args.db, args.since),
                     on_record=lambda r: out.write(record_line(r) + "\n"))
    else:
        # Columns are only known at the end: spool the records first.
        with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
            cols = {}

            def keep(r):
                flat = flatten(r["doc"])
                for c in flat:
                    cols.setdefault(c, None)
                spool.write(json.dumps([r["key"], r.get("expires"), r.get("tags") or [], flat],
                                       ensure_ascii=False) + "\n")

            res = s.call("export(%r, %r)" % (args.db, args.since), on_record=keep)
            spool.seek(0)
            w = csv.writer(out, lineterminator="\n")
            w.writerow(["key", "expires", "tags"] + list(cols))
            for line in spool:
                key, exp, tags, flat = json.loads(line)
                w.writerow([key, "" if exp is None else exp, cell(tags or None)]
                           + [cell(flat.get(c)) for c in cols])
    log("exported %d records" % res["exported"])


def flatten(doc, prefix=""):
    """Nested dicts -> dotted paths (as in queries); other values stay."""
    out = {}
    for k, v in doc.items():
        path = prefix + k
        if isinstance(v, dict) and v:
            out.update(flatten(v, path + "."))
        else:
            out[path] = v
    return out


def cell(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def parse_line(text):
    """One import line -> [key, doc, tags, expires]; ValueError says what is wrong."""
    def no_constant(name):
        raise ValueError("%s is not JSON" % name)
    try:
        o = json.loads(text, parse_constant=no_constant)
    except ValueError as e:
        raise ValueError("not JSON (%s)" % e)
    if not isinstance(o, dict):
        raise ValueError("not a JSON object")
    extra = set(o) - {"key", "doc", "tags", "expires"}
    if extra:
        raise ValueError("unknown field %r" % sorted(extra)[0])
    key, doc = o.get("key"), o.get("doc")
    tags, exp = o.get("tags"), o.get("expires")
    if not isinstance(key, str) or not key:
        raise ValueError('"key" must be a non-empty string')
    if not isinstance(doc, dict):
        raise ValueError('"doc" must be a JSON object')
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ValueError('"tags" must be a list of strings')
    if exp is not None and (type(exp) is not int or exp < 0):
        raise ValueError('"expires" must be whole seconds >= 0 or null')
    return [key, doc, tags or [], exp]


def cmd_import(s, args, inp):
    res = s.call("import_open(%r)" % args.db)
    if res is None:
        raise Failed("could not open %s" % args.db)
    done = expired = 0
    batch, lines, size = [], [], 0

    def send():
        nonlocal done, expired
        text = json.dumps(batch, ensure_ascii=False)
        r = s.call("import_batch(%r)" % text)
        if r is None:
            raise Failed("the device gave no answer for lines %d-%d" % (lines[0], lines[-1]))
        if "failed" in r:
            raise Failed("line %d: %s; nothing of lines %d-%d was written (%d records "
                         "imported before them)" % (lines[r["failed"]], r["error"],
                                                    lines[0], lines[-1], done))
        done += r["written"]
        expired += r["expired"]
        batch.clear()
        lines.clear()

    ok = False
    try:
        for n, text in enumerate(inp, 1):
            if not text.strip():
                continue
            try:
                item = parse_line(text)
            except ValueError as e:
                where = "lines %d-%d" % (lines[0], n) if lines else "line %d" % n
                raise Failed("line %d: %s; nothing of %s was written (%d records imported "
                             "before them)" % (n, e, where, done))
            batch.append(item)
            lines.append(n)
            size += len(text)
            if len(batch) >= args.batch or size >= args.batch_bytes:
                send()
                size = 0
        if batch:
            send()
        ok = True
    finally:
        try:
            s.call("import_close()")
        except Failed:
            if ok:
                raise
    log("imported %d records%s" % (done, ", skipped %d already expired" % expired if expired else ""))


def cmd_stats(s, args, out):
    out.write(json.dumps(s.call("stats(%r)" % args.db), indent=1, sort_keys=True) + "\n")


def cmd_check(s, args, out):
    r = s.call("check(%r)" % args.db)
    out.write(json.dumps(r, indent=1, sort_keys=True) + "\n")
    if not r["ok"]:
        raise Failed("%s: damaged%s" % (args.db, " (%s)" % r["error"] if "error" in r else
                                        "; run: mtdb.py repair %s" % args.db))


def cmd_repair(s, args, out):
    out.write(json.dumps(s.call("repair(%r)" % args.db), indent=1, sort_keys=True) + "\n")


def cmd_migrate(s, args, out):
    r = s.call("migrate(%r, %r)" % (args.src, args.dst),
               on_problem=lambda p: log("skipped %s: %s" % (p["key"], p["reason"])))
    out.write(json.dumps(r, sort_keys=True) + "\n")


# ---------------------------------------------------------------- main

def parser():
    p = argparse.ArgumentParser(prog="mtdb.py", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", "-d", metavar="PORT",
                   help="the file is on the board on PORT (e.g. /dev/ttyUSB0), through mpremote")
    p.add_argument("--no-reset", action="store_true",
                   help="--device: do not soft-reset the board first (keeps mounts made by hand)")
    p.add_argument("--timeout", type=float, default=120,
                   help="--device: seconds the board may stay silent (default 120)")
    p.add_argument("--epoch", type=int, choices=(1970, 2000), default=None,
                   help="without --device: the epoch of the clock that wrote the file's expiry "
                        "times: 2000 (default: ESP32 and most boards) or 1970 (the unix port); "
                        "decides what counts as expired")
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the live records as JSON lines (or CSV) to stdout")
    e.add_argument("db")
    e.add_argument("--since", metavar="KEY", help="only keys after KEY (new since a last export)")
    e.add_argument("--csv", action="store_true",
                   help="CSV: key, expires, tags, then one column per document field (dotted paths)")
    i = sub.add_parser("import", help="write JSON lines from stdin into DB (created if missing)")
    i.add_argument("db")
    i.add_argument("--batch", type=int, default=50, help="records per commit (default 50)")
    i.add_argument("--batch-bytes", type=int, default=4096,
                   help="bytes of input per commit at most (default 4096; the board holds a batch in RAM)")
    for name, what in (("stats", "stats() of DB as JSON"),
                       ("check", "check every page and record of DB; exit status 1 if damaged"),
                       ("repair", "salvage a damaged DB (keeps it as DB.corrupt)")):
        sub.add_parser(name, help=what).add_argument("db")
    m = sub.add_parser("migrate", help="convert a file of the earlier MicroTetherDB into a new DST")
    m.add_argument("src")
    m.add_argument("dst")
    return p


COMMANDS = {"export": cmd_export, "import": cmd_import, "stats": cmd_stats, "check": cmd_check,
            "repair": cmd_repair, "migrate": cmd_migrate}


def main(argv=None):
    args = parser().parse_args(argv)
    if args.device:
        _need_mpremote(argv)
    if args.cmd == "import" and (args.batch < 1 or args.batch_bytes < 1):
        raise SystemExit("mtdb.py: --batch and --batch-bytes must be >= 1")
    try:
        s = Session(args)
        try:
            if args.cmd == "import":
                cmd_import(s, args, sys.stdin)
            else:
                COMMANDS[args.cmd](s, args, sys.stdout)
        finally:
            s.close()
    except Failed as e:
        print("mtdb.py: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _need_mpremote(argv):
    """--device needs mpremote's Python API: use build/venv's Python if this
    one has no mpremote (make test / make venv installs it there)."""
    try:
        import mpremote  # noqa: F401
        return
    except ImportError:
        pass
    if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PYTHON):
        os.execv(VENV_PYTHON, [VENV_PYTHON, os.path.abspath(__file__)]
                 + (sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    sys.stdout.reconfigure(encoding="utf-8")
    sys.stdin.reconfigure(encoding="utf-8")
    sys.exit(main())
