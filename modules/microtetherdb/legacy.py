# Files of the earlier MicroTetherDB -> this database (imported only when used).
#
# The earlier format: a raw btree whose values are JSON documents. Generated
# keys are "<seconds>:<ttl>:<random 16-bit>" (ttl 0 = no expiry; expiry =
# seconds + ttl, in the clock of the device that wrote it), custom keys any
# string (never expire). A record's tags are inside its document as "_tags".
import btree
import json

from . import btpage
from .db import META, MicroTetherDB


def _digits(s):
    if not s:
        return False
    for c in s:
        if c < "0" or c > "9":
            return False
    return True


def key_expiry(key):
    # Expiry (int seconds) of a generated key of the earlier format, None for
    # ttl 0 or any other key.
    p = key.split(":")
    if len(p) != 3 or not (_digits(p[0]) and _digits(p[1]) and _digits(p[2])):
        return None
    if int(p[2]) > 0xFFFF or int(p[1]) == 0:
        return None
    return int(p[0]) + int(p[1])


def convert(kb, raw):
    # One record of the earlier format -> (key str, doc, tags list, expiry or
    # None). Raises ValueError saying what is wrong with it.
    try:
        key = str(kb, "utf-8")
    except ValueError:
        raise ValueError("key is not UTF-8")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValueError("value is not JSON")
    if not isinstance(doc, dict):
        raise ValueError("value is not a JSON object")
    tags = doc.pop("_tags", None)
    if tags is None:
        tags = []
    elif type(tags) is str:
        tags = [tags]
    elif type(tags) is not list:
        raise ValueError("_tags is not a list")
    return key, doc, tags, key_expiry(key)


def _print_problem(key, why):
    print("migrate: skipped %r: %s" % (key, why))


def migrate(src, dst, clock=None, report=_print_problem):
    # Copy every live record of the earlier MicroTetherDB file `src` into a
    # new MicroTetherDB file `dst`; returns the number of records written.
    # Keys stay as they were; "_tags" moves out of the document into the
    # record's tags; the expiry of generated keys is carried over and records
    # already expired are skipped. A record that cannot be read or stored is
    # passed to report(key, reason) (key: str, or bytes if it is not UTF-8)
    # and skipped; expired ones as report(key, "expired"), if report is not the
    # default. `src` is only read. `dst` must not exist; if the migration
    # fails it is removed. All records are committed at once, at the end.
    import os

    if clock is None:
        import time

        clock = time.time
    try:
        os.stat(dst)
        raise OSError(17, "%s exists: migrate writes a new database" % dst)
    except OSError as e:
        if e.errno != 2:
            raise
    from . import filestore

    if filestore.isdir(src):  # a database folder: format 2, one of ours
        raise ValueError("%s is already a MicroTetherDB database" % src)
    f = open(src, "rb")
    try:
        btpage.check(f, src)  # btree trusts its pages: prove the file sound first
        old = btree.open(f)
        try:
            if (old.get(META) or b"")[:4] == b"MTDB":
                raise ValueError("%s is already a MicroTetherDB database" % src)
            return _copy(old, dst, int(clock()), report)
        finally:
            old.close()
    finally:
        f.close()


def _copy(old, dst, now, report):
    quiet = report is _print_problem
    db = MicroTetherDB(dst, in_memory=False, autoflush=False, clock=lambda: now)
    n = 0
    try:
        for kb, raw in old.items():
            try:
                key, doc, tags, exp = convert(kb, raw)
                if exp is not None and exp <= now:
                    if not quiet:
                        report(key, "expired")
                    continue
                # bytes key: put checks it is valid UTF-8 (str() here does not)
                db.put(key=kb, data=doc, tags=tags or None, ttl=None if exp is None else exp - now)
                n += 1
            except (ValueError, TypeError) as e:
                report(_name(kb), e.args[0] if e.args else repr(e))
        db.close()
    except BaseException:
        try:
            db.close()
        finally:
            from . import filestore

            filestore.drop(dst)
        raise
    return n


def _name(kb):
    try:
        return str(kb, "utf-8")
    except ValueError:
        return bytes(kb)
