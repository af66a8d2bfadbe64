# MicroTetherDB: salvage of a damaged database file.
#
# Reads the damaged file page by page in pure Python through btpage.Pages
# (never through the btree module, which can crash on a corrupt page) and
# copies every record it can still read into a new btree file, reporting what
# could not be read. repair() does that in place for a MicroTetherDB file.

import struct

from .btpage import HDR, P_BIGDATA, P_BIGKEY, P_BLEAF, Bad, Pages, free_pages, fsize
from .errors import CorruptDBError


def _guess_psize(f, size):
    # meta page unreadable: find a page size whose page 1 looks like a root
    ps = 512
    hb = bytearray(4)
    while ps <= 65536:
        if size % ps == 0 and size >= 2 * ps:
            f.seek(ps)
            if f.readinto(hb) == 4 and struct.unpack("<I", hb)[0] == 1:
                return ps
        ps <<= 1
    return 0


class _Guess(Pages):
    # a Pages whose meta page is gone: page size guessed, free list unknown
    def __init__(self, f, name, psize, size):
        self.f = f
        self.name = name
        self.psize = psize
        self.npages = size // psize
        self.free = 0
        self.buf = bytearray(psize)
        self.cur = -1


def salvage(src, dest, pagesize=None, accept=None):
    # Copy every readable record of the btree file `src` into a new btree
    # file `dest` (overwritten). accept(key, data) -> bool may reject records
    # the caller cannot decode. Returns a report dict:
    #   recovered, bad_pages (list), bad_entries, rejected, orphans, notes
    import btree

    rep = {"recovered": 0, "bad_pages": [], "bad_entries": 0, "rejected": 0,
           "orphans": 0, "notes": []}
    f = open(src, "rb")
    try:
        size = fsize(f)
        try:
            p = Pages(f, src, False)
            if p.tail:
                rep["notes"].append("file truncated: %d bytes after the last whole page ignored" % p.tail)
        except CorruptDBError as e:
            ps = _guess_psize(f, size)
            if not ps:
                raise
            rep["notes"].append("header unreadable (%s); page size guessed %d" % (e, ps))
            p = _Guess(f, src, ps, size)
        out = open(dest, "w+b")
        try:
            db = btree.open(out, pagesize=pagesize or p.psize)
            keys = {}

            def bad(msg, pg):
                rep["notes"].append(msg)
                if pg not in rep["bad_pages"]:
                    rep["bad_pages"].append(pg)

            def put(k, d):
                if accept is not None and not accept(k, d):
                    rep["rejected"] += 1
                    return False
                db[k] = d
                keys[k] = 1
                rep["recovered"] += 1
                return True

            for k, d in p.walk(bad):
                if k not in keys:
                    put(k, d)
            if rep["bad_pages"]:
                # the tree is damaged: look for leaf pages it no longer
                # reaches (not on the free list) and take their records
                free = free_pages(f, p.psize, p.free, p.npages)
                for pg in range(1, p.npages):
                    if p.seen[pg] or pg in free:
                        continue
                    try:
                        t, n, nxt = p.header(pg, P_BLEAF)
                        ents = [p.entry(pg, t, i) for i in range(n)]
                        for k, d, fl in ents:
                            if fl & P_BIGKEY:
                                k = p.big(k)
                            if fl & P_BIGDATA:
                                d = p.big(d)
                            if k not in keys and put(k, d):
                                rep["orphans"] += 1
                    except Bad:
                        continue
            if db.close() != 0:
                raise OSError(5, "%s: writing the salvaged copy failed" % dest)
            out.flush()
        finally:
            out.close()
    finally:
        f.close()
    rep["bad_entries"] = len(rep["notes"])
    return rep


def repair(path, backup=None):
    # Salvage the MicroTetherDB file `path` in place: every readable record
    # whose key and document decode is copied into a new file, the expiry
    # index and the metadata record are rebuilt, the damaged file is kept as
    # `backup` (default path + ".corrupt") and the new one takes its name
    # (filestore's replace protocol: a power cut leaves one of them complete).
    # Returns a report: recovered, lost (records the old metadata counted that
    # could not be read, None if unknown), unreadable (records found but not
    # decodable), bad_pages, notes, backup.
    import btree
    from . import codec, filestore

    given = path  # reported as given; normalized for the owner check
    if backup is None:
        backup = path + ".corrupt"
    path = filestore.normpath(path)
    if not filestore.exists(path):
        raise OSError(filestore.ENOENT, "%s: no such file" % given)
    filestore.claim(path, repair)  # not while a MicroTetherDB has it open
    try:
        filestore.recover(path)
        info = {"count": None, "exp": [], "unreadable": 0, "meta": None}

        def accept(k, d):
            if k[:1] == b"\xff":
                if k == b"\xffm" and d[:4] == b"MTDB" and len(d) > 6:
                    try:
                        info["count"] = int(d[6:].split(b":")[0])
                        info["meta"] = d
                    except ValueError:
                        pass
                return False  # internal records are rebuilt below
            try:
                str(k, "utf-8")
                codec.doc(d)
                e = codec.expiry(d)
            except Exception:  # noqa: BLE001
                info["unreadable"] += 1
                return False
            if e is not None:
                info["exp"].append(e.to_bytes(4, "big") + k)
            return True

        tmp = filestore.begin_replace(path)
        try:
            rep = salvage(path, tmp, None, accept)
            rep["rejected"] -= info["unreadable"]  # internal records, not losses
            n = rep["recovered"]
            f = open(tmp, "r+b")
            try:
                db = btree.open(f)
                for ek in info["exp"]:
                    db[b"\xfft" + ek] = b""
                m = info["meta"]
                if m is not None:
                    # same metadata, record count replaced
                    rest = m[6:].split(b":")
                    rest[0] = str(n).encode()
                    m = m[:6] + b":".join(rest)
                else:
                    from .db import FORMAT

                    m = b"MTDB" + bytes((FORMAT,)) + b":" + str(n).encode() + b":0:0"
                db[b"\xffm"] = m
                if db.close() != 0:
                    raise OSError(filestore.EIO, "%s: writing the repaired copy failed" % tmp)
                f.flush()
            finally:
                f.close()
        except BaseException:
            filestore.abort_replace(path)
            raise
        filestore.finish_replace(path, filestore.normpath(backup))
    finally:
        filestore.release(path, repair)
    c = info["count"]
    return {
        "path": given,
        "backup": backup,
        "recovered": n,
        "lost": None if c is None else (c - n if c > n else 0),
        "unreadable": info["unreadable"],
        "bad_pages": rep["bad_pages"],
        "orphans": rep["orphans"],
        "notes": rep["notes"],
    }
