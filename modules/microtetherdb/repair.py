# MicroTetherDB: salvage of a damaged database file.
#
# Reads the damaged file page by page in pure Python through btpage.Pages
# (never through the btree module, which can crash on a corrupt page) and
# copies every record it can still read into a new btree file, reporting what
# could not be read. repair() does that in place for a MicroTetherDB file.

import struct

from .btpage import P_BIGDATA, P_BIGKEY, P_BLEAF, Bad, Pages, free_pages, fsize
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


def salvage_pages(f, name, db, accept=None):
    # Copy every readable record of the btree pages in stream `f` (seek,
    # readinto) into the btree `db`. accept(key, data) -> bool may reject
    # records the caller cannot decode. Returns a report dict:
    #   recovered, bad_pages (list), bad_entries, rejected, orphans, notes
    rep = {"recovered": 0, "bad_pages": [], "bad_entries": 0, "rejected": 0,
           "orphans": 0, "notes": []}
    size = fsize(f)
    try:
        p = Pages(f, name, False)
        if p.tail:
            rep["notes"].append("file truncated: %d bytes after the last whole page ignored" % p.tail)
    except CorruptDBError as e:
        ps = _guess_psize(f, size)
        if not ps:
            raise
        rep["notes"].append("header unreadable (%s); page size guessed %d" % (e, ps))
        p = _Guess(f, name, ps, size)
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
        # the tree is damaged: look for leaf pages it no longer reaches (not
        # on the free list) and take their records
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
    rep["keys"] = keys
    rep["bad_entries"] = len(rep["notes"])
    return rep


def salvage(src, dest, pagesize=None, accept=None):
    # Format 1: every readable record of the btree file `src` into a new
    # btree file `dest` (overwritten); the report of salvage_pages.
    import btree

    f = open(src, "rb")
    try:
        if not pagesize:  # the damaged file's own page size
            try:
                pagesize = Pages(f, src, False).psize
            except CorruptDBError:
                pagesize = _guess_psize(f, fsize(f)) or 512
        out = open(dest, "w+b")
        try:
            db = btree.open(out, pagesize=pagesize)
            rep = salvage_pages(f, src, db, accept)
            if db.close() != 0:
                raise OSError(5, "%s: writing the salvaged copy failed" % dest)
            out.flush()
        finally:
            out.close()
    finally:
        f.close()
    return rep


class FolderPages:
    # The btree pages of a (damaged) format-2 database folder as one stream
    # for Pages: every chunk whose tail still reads, the newest copy of each
    # page winning; CRCs are not required. .log: the commit records after
    # the newest chunk (those whose parts check out), for repair to apply.
    def __init__(self, path, notes):
        import os
        from . import chunkstore as cs

        self.path = path
        hd = b""
        try:
            with open(path + "/h", "rb") as f:
                hd = f.read(24)
        except OSError:
            pass
        psize = dbid = 0
        if len(hd) >= 20 and hd[:6] == cs.HEAD[:6]:  # (also a development version's)
            psize, dbid = struct.unpack_from("<II", hd, 8)
        if psize < 512 or psize > 65536 or psize & (psize - 1):
            notes.append("header unreadable: page size taken as 512")
            psize = 512
        self.psize = psize
        self.map = {}
        self.pos = 0
        npages = 0
        logseq = 0
        # chunks in c/ (and beside it: a development version's layout)
        names = []
        for d in (path, path + "/c"):
            if cs.fs.isdir(d):
                names.extend((n, d + "/" + n) for n in os.listdir(d) if cs.fs.is_chunk(n))
        names.sort()
        for name, fn in names:
            try:
                with open(fn, "rb") as f:
                    size = f.seek(0, 2)
                    f.seek(size - cs.TAILLEN)
                    t = f.read(cs.TAILLEN)
                    n, seq, ls, np = struct.unpack_from("<IIII", t, 0)
                    if t[24:] != cs.TAIL or size != n * psize + 4 * n + cs.TAILLEN:
                        raise ValueError
                    f.seek(n * psize)
                    tab = f.read(4 * n)
            except (OSError, ValueError):
                notes.append("%s: unreadable chunk, skipped" % name)
                continue
            for j in range(n):
                self.map[struct.unpack_from("<I", tab, 4 * j)[0]] = (fn, j)
            npages = np
            logseq = ls
        for pg in [pg for pg in self.map if pg >= npages]:
            del self.map[pg]
        self.size = npages * psize
        self.log = []
        if dbid:
            try:
                v = struct.unpack_from("<I", hd, 16)[0]  # ring size | slots per subfolder << 16
                self.log = cs.read_log(path, v & 0xFFFF, v >> 16, dbid, logseq)[0]
            except Exception as e:  # noqa: BLE001 - salvage what there is
                notes.append("commit log: %s" % e)

    def seek(self, off, whence=0):
        if whence == 2:
            off += self.size
        elif whence == 1:
            off += self.pos
        self.pos = off
        return off

    def tell(self):
        return self.pos

    def readinto(self, buf):
        pg = self.pos // self.psize
        o = self.pos - pg * self.psize
        ent = self.map.get(pg)
        if ent is None or self.pos >= self.size:
            return 0
        with open(ent[0], "rb") as f:
            f.seek(ent[1] * self.psize + o)
            r = f.readinto(buf) or 0
        self.pos += r
        return r


def repair(path, backup=None):
    # Salvage the MicroTetherDB database `path` in place: every readable
    # record whose key and document decode is copied into a new database of
    # the same format, the expiry index and the metadata record are rebuilt,
    # the damaged one is kept as `backup` (default path + ".corrupt") and the
    # new one takes its name (filestore's replace protocol: a power cut
    # leaves one of them complete). Format 2: the pages of every readable
    # chunk, then the commit records after them.
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
        filestore.recover_dir(path)
        folder = filestore.isdir(path)
        if not folder:
            filestore.recover(path)
        info = {"count": None, "exp": {}, "unreadable": 0, "meta": None}

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
                codec.key(k)
                codec.doc(d)
                e = codec.expiry(d)
            except Exception:  # noqa: BLE001
                info["unreadable"] += 1
                return False
            if e is not None:
                info["exp"][k] = e
            return True

        tmp = filestore.begin_replace(path)
        try:
            if folder:
                from .chunkstore import ChunkStore

                notes = []
                src = FolderPages(path, notes)
                out = ChunkStore(tmp, src.psize, 0)
                try:
                    db = out.bt
                    rep = salvage_pages(src, path, db, accept)
                    rep["notes"] = notes + rep["notes"]
                    for rec in src.log:  # the calls after the last checkpoint
                        for kb, raw in codec.log_entries(rec):
                            if raw is None:
                                if kb in rep["keys"]:
                                    del db[kb]
                                    del rep["keys"][kb]
                                    rep["recovered"] -= 1
                                info["exp"].pop(kb, None)
                            elif accept(kb, raw):
                                if kb not in rep["keys"]:
                                    rep["recovered"] += 1
                                rep["keys"][kb] = 1
                                db[kb] = raw
                                if codec.expiry(raw) is None:
                                    info["exp"].pop(kb, None)
                    _finish(db, info, rep["recovered"])
                    out.checkpoint()
                    out.close()
                except BaseException:
                    out.abandon()
                    raise
            else:
                rep = salvage(path, tmp, None, accept)
                f = open(tmp, "r+b")
                try:
                    db = btree.open(f)
                    _finish(db, info, rep["recovered"])
                    if db.close() != 0:
                        raise OSError(filestore.EIO, "%s: writing the repaired copy failed" % tmp)
                    f.flush()
                finally:
                    f.close()
            rep["rejected"] -= info["unreadable"]  # internal records, not losses
            n = rep["recovered"]
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


def _finish(db, info, n):
    # the expiry index and the metadata record of the repaired database
    for kb in info["exp"]:
        db[b"\xfft" + info["exp"][kb].to_bytes(4, "big") + kb] = b""
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
