# MicroPython side of scripts/mtdb.py: sent as text and run on the board (over
# mpremote's raw REPL) or in the host firmware. Every result is one line:
#   "@R <json>"  a record (export)      "@D <json>"  the command's result
#   "@P <json>"  a record that was skipped, with the reason
# Nothing here holds more than one record (or one import batch) in RAM. The
# host sends the common part and the one "# --- <command>" section it needs
# (compiling all of it would take heap the board may not have).
# _CLOCK_OFFSET (set by the host before this file) is subtracted from
# time.time(): the host firmware counts from 1970, boards from 2000.
import json
import time

from microtetherdb import MicroTetherDB


def _now():
    return int(time.time() - _CLOCK_OFFSET)


def _need(path):
    import os

    try:
        os.stat(path)
    except OSError:
        raise OSError(2, "no such file: %s" % path)


def _open(path, **kw):
    _need(path)
    return MicroTetherDB(path, in_memory=False, clock=_now, **kw)


def _out(tag, obj):
    print(tag, json.dumps(obj))


# --- export
def export(path, since):
    db = _open(path)
    n = 0
    try:
        for k, d, t, e in db.records(start=since):
            if k == since:
                continue
            o = {"key": k, "doc": d}
            if t:
                o["tags"] = t
            if e is not None:
                o["expires"] = e
            _out("@R", o)
            n += 1
    finally:
        db.close()
    _out("@D", {"exported": n})


# --- stats
def stats(path):
    db = _open(path)
    try:
        s = db.stats()
        s["indexes"] = db.indexes()
    finally:
        db.close()
    _out("@D", s)


# --- check
def check(path):
    # Opening checks every page of the file; then every record must decode
    # and the record count must agree with the records.
    from microtetherdb import CorruptDBError

    try:
        db = _open(path)
    except CorruptDBError as e:
        _out("@D", {"ok": False, "error": str(e)})
        return
    bad = []
    n = 0
    try:
        it = db.keys()
        while True:
            try:
                k = next(it)
            except StopIteration:
                break
            try:
                db.get(k)
                n += 1
            except Exception as e:
                bad.append([k, repr(e)])
        count = len(db)
    finally:
        db.close()
    _out("@D", {"ok": not bad and count == n, "records": n, "count": count, "bad": bad[:20]})


# --- repair
def repair(path):
    _need(path)
    _out("@D", MicroTetherDB.repair(path))


# --- migrate
def migrate(src, dst):
    from microtetherdb.legacy import migrate

    _need(src)
    skipped = [0]

    def report(key, why):
        skipped[0] += 1
        _out("@P", {"key": key if type(key) is str else repr(key), "reason": why})

    n = migrate(src, dst, clock=_now, report=report)
    _out("@D", {"written": n, "skipped": skipped[0]})


# --- import
# One open database, batches sent one at a time by the host. The
# database's clock stands still during a batch, so that ttl = expires - now
# gives back exactly `expires`.
_db = None
_T = [0]


def import_open(path):
    global _db
    _db = MicroTetherDB(path, in_memory=False, clock=lambda: _T[0], autoflush=False)
    _out("@D", {"open": path})


def _old(k):
    # (doc, tags, expiry) of the live record under k, or None
    for r in _db.records(start=k):
        return r[1:] if r[0] == k else None
    return None


def import_batch(text):
    # text: JSON list of [key, doc, tags, expires]. Written with one commit;
    # if any record fails, the ones written before it are undone first.
    now = _T[0] = _now()
    undo = []
    i = 0
    skipped = 0
    try:
        for k, d, t, e in json.loads(text):
            if e is not None and e <= now:
                skipped += 1
            else:
                undo.append((k, _old(k)))
                _db.put(k, d, ttl=None if e is None else e - now, tags=t or None)
            i += 1
    except Exception as ex:
        for k, old in reversed(undo):
            if old is None:
                _db.delete(k)
            else:
                _db.put(k, old[0], ttl=None if old[2] is None else old[2] - now, tags=old[1] or None)
        _db.flush()
        _out("@D", {"failed": i, "error": "%s: %s" % (type(ex).__name__, ex)})
        return
    _db.flush()
    _out("@D", {"written": len(undo), "expired": skipped})


def import_close():
    global _db
    if _db is not None:
        _db.close()
        _db = None
    _out("@D", {"closed": True})
