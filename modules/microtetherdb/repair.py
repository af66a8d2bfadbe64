# MicroTetherDB: structural check and salvage of a Berkeley DB 1.85 btree file.
#
# Reads the file page by page in pure Python (never through the btree module,
# which can crash on a corrupt page), so it can
#   * check(f): prove a file is a sound btree before btree.open() touches it
#     (raises CorruptDBError naming the first problem), and
#   * salvage(path, dest): copy every record it can still read into a new
#     btree file and report what could not be read.
#
# On-disk format (Berkeley DB 1.85, host byte order, little-endian on every
# target we build for):
#   page 0, meta : u32 magic 0x053162, version 3, psize, free, nrecs, flags
#   other pages  : u32 pgno, prevpg, nextpg, flags; u16 lower, upper;
#                  u16 linp[(lower - 20) // 2]  (entry offsets)
#   leaf entry   : u32 ksize, dsize; u8 flags; key bytes, data bytes
#   internal     : u32 ksize, pgno; u8 flags; key bytes
#   big item     : entry bytes hold u32 first overflow page, u32 size; overflow
#                  pages (flag 0x04) carry psize - 20 bytes each, chained by nextpg
# Root is page 1; freed pages keep their old contents and are chained from
# meta.free through nextpg.

import struct

MAGIC = 0x053162
VERSION = 3
HDR = 20
P_BINTERNAL = 0x01
P_BLEAF = 0x02
P_OVERFLOW = 0x04
P_TYPE = 0x1F
P_BIGDATA = 0x01
P_BIGKEY = 0x02
P_INVALID = 0
MAX_DEPTH = 32

try:
    from .errors import CorruptDBError
except ImportError:  # pragma: no cover - the core defines it

    class CorruptDBError(Exception):
        pass


class _Bad(Exception):
    # internal: one page or entry cannot be read
    pass


def _fsize(f):
    pos = f.seek(0, 2)
    if pos is None:  # some streams return None
        pos = f.tell()
    return pos


class Pages:
    # Random access to the pages of an open btree file (binary, seekable).

    def __init__(self, f, name="database", strict=True):
        self.f = f
        self.name = name
        size = _fsize(f)
        if size == 0:
            raise CorruptDBError("%s: empty file is not a database" % name)
        head = bytearray(24)
        f.seek(0)
        n = f.readinto(head)
        if n != 24:
            raise CorruptDBError("%s: file too short (%d bytes) to be a database" % (name, size))
        magic, version, psize, free, nrecs, flags = struct.unpack("<IIIIII", head)
        if magic != MAGIC:
            raise CorruptDBError("%s: not a database (bad magic 0x%x)" % (name, magic))
        if version != VERSION:
            raise CorruptDBError("%s: unsupported btree version %d" % (name, version))
        if psize < 512 or psize > 65536 or psize & (psize - 1):
            raise CorruptDBError("%s: bad page size %d in header" % (name, psize))
        self.tail = size % psize
        if self.tail and strict:
            raise CorruptDBError(
                "%s: truncated (size %d is not a multiple of page size %d)" % (name, size, psize))
        self.psize = psize
        self.npages = size // psize
        if self.npages < 2:
            raise CorruptDBError("%s: truncated (%d page)" % (name, self.npages))
        self.free = free
        self.flags = flags
        self.buf = bytearray(psize)
        self.cur = -1

    def load(self, pg):
        # read page pg into self.buf; return it
        if pg == self.cur:
            return self.buf
        if pg < 1 or pg >= self.npages:
            raise _Bad("page number %d out of range" % pg)
        self.f.seek(pg * self.psize)
        if self.f.readinto(self.buf) != self.psize:
            raise _Bad("page %d: short read" % pg)
        self.cur = pg
        return self.buf

    def header(self, pg, want):
        # validate the header of page pg; return (flags, nentries, nextpg)
        b = self.load(pg)
        pgno, prev, nxt, flags, lower, upper = struct.unpack_from("<IIIIHH", b, 0)
        if pgno != pg:
            raise _Bad("page %d: header says page %d" % (pg, pgno))
        t = flags & P_TYPE
        if want and not (t & want):
            raise _Bad("page %d: unexpected page type 0x%x" % (pg, t))
        if t == P_OVERFLOW:
            return t, 0, nxt
        if lower < HDR or lower > upper or upper > self.psize or lower & 1:
            raise _Bad("page %d: bad bounds %d..%d" % (pg, lower, upper))
        return t, (lower - HDR) >> 1, nxt

    def entry(self, pg, t, i, data=True):
        # entry i of the (already validated, loaded) page: returns
        # leaf: (key_bytes_or_ref, data_bytes_or_ref, flags)
        # internal: (key_bytes_or_ref, child_pgno, flags)
        # a "ref" is a tuple (first_overflow_page, size)
        b = self.buf
        psize = self.psize
        off = struct.unpack_from("<H", b, HDR + 2 * i)[0]
        if off < HDR or off + 9 > psize:
            raise _Bad("page %d: entry %d offset %d" % (pg, i, off))
        a, c, fl = struct.unpack_from("<IIB", b, off)
        p = off + 9
        if t == P_BLEAF:
            kl = 8 if fl & P_BIGKEY else a
            dl = 8 if fl & P_BIGDATA else c
            if fl & ~3 or p + kl + dl > psize:
                raise _Bad("page %d: entry %d size %d+%d" % (pg, i, a, c))
            if fl & P_BIGKEY:
                k = struct.unpack_from("<II", b, p)
            else:
                k = bytes(b[p:p + kl])
            p += kl
            if fl & P_BIGDATA:
                d = struct.unpack_from("<II", b, p)
            elif data:
                d = bytes(b[p:p + dl])
            else:
                d = None
            return k, d, fl
        kl = 8 if fl & P_BIGKEY else a
        if fl & ~3 or p + kl > psize:
            raise _Bad("page %d: entry %d key size %d" % (pg, i, a))
        if fl & P_BIGKEY:
            k = struct.unpack_from("<II", b, p)
        else:
            k = bytes(b[p:p + kl])
        return k, c, fl

    def big(self, ref, seen=None, copy=True):
        # read (or, copy=False, only check) an overflow chain; ref = (first
        # page, size); seen: bytearray marking the pages used
        pg, size = ref
        if size > self.npages * self.psize:
            raise _Bad("overflow item size %d" % size)
        out = bytearray(size) if copy else None
        pos = 0
        per = self.psize - HDR
        hops = 0
        while pos < size:
            self.header(pg, P_OVERFLOW)
            if seen is not None:
                if seen[pg]:
                    raise _Bad("page %d used twice" % pg)
                seen[pg] = 1
            n = min(per, size - pos)
            if copy:
                out[pos:pos + n] = memoryview(self.buf)[HDR:HDR + n]
            pos += n
            hops += 1
            if pos < size:
                pg = struct.unpack_from("<I", self.buf, 8)[0]
                if hops > self.npages:
                    raise _Bad("overflow chain loops")
        self.cur = -1
        return bytes(out) if copy else None

    def free_pages(self):
        # page numbers on the free list (stops at the first bad link)
        out = {}
        pg = self.free
        while pg != P_INVALID and pg < self.npages and pg not in out:
            out[pg] = 1
            self.f.seek(pg * self.psize + 8)
            nb = bytearray(4)
            if self.f.readinto(nb) != 4:
                break
            pg = struct.unpack("<I", nb)[0]
        return out

    def walk(self, on_bad=None, data=True):
        # Yield (key, data) of every leaf entry reachable from the root, in
        # page order (data=False: data is None, big items only checked).
        # A bad page/entry raises _Bad, or, if on_bad is given, is reported
        # to on_bad(msg, pg) and skipped. Pages reached are marked in
        # self.seen (bytearray, one byte per page).
        seen = self.seen = bytearray(self.npages)
        stack = [(1, 0)]
        prev = 0  # previous leaf: leaves must be chained left to right
        nxt_want = None
        while stack:
            pg, depth = stack.pop()
            if pg < 1 or pg >= self.npages or seen[pg]:
                msg = "page %d out of range or reached twice" % pg
                if on_bad is None:
                    raise _Bad(msg)
                on_bad(msg, pg)
                continue
            seen[pg] = 1
            try:
                if depth > MAX_DEPTH:
                    raise _Bad("tree deeper than %d" % MAX_DEPTH)
                t, n, nxt = self.header(pg, P_BLEAF | P_BINTERNAL)
                if t == P_BINTERNAL:
                    if n == 0:
                        raise _Bad("page %d: empty internal page" % pg)
                    kids = []
                    for i in range(n):
                        kids.append(self.entry(pg, t, i)[1])
                    # depth-first, left to right
                    for i in range(n - 1, -1, -1):
                        stack.append((kids[i], depth + 1))
                    continue
                pp = struct.unpack_from("<I", self.buf, 4)[0]
                if pp != prev or (nxt_want is not None and nxt_want != pg):
                    prev = pg
                    nxt_want = nxt
                    raise _Bad("page %d: broken leaf chain" % pg)
                prev = pg
                nxt_want = nxt
                ents = []
                for i in range(n):
                    ents.append(self.entry(pg, t, i, data))
            except _Bad as e:
                if on_bad is None:
                    raise
                on_bad(str(e), pg)
                continue
            for k, d, fl in ents:
                try:
                    if fl & P_BIGKEY:
                        k = self.big(k, seen)
                    if fl & P_BIGDATA:
                        d = self.big(d, seen, data)
                    elif not data:
                        d = None
                except _Bad as e:
                    if on_bad is None:
                        raise
                    on_bad(str(e), pg)
                    continue
                yield k, d
        if nxt_want:
            msg = "page %d: leaf chain runs past the last leaf" % prev
            if on_bad is None:
                raise _Bad(msg)
            on_bad(msg, prev)


def check(f, name="database"):
    # Full structural check of an open btree file. Returns the number of
    # records; raises CorruptDBError naming the file and the first problem.
    # Reads every reachable page once (pure Python; O(file size)).
    try:
        p = Pages(f, name)
        n = 0
        last = None
        for k, d in p.walk(None, False):
            if last is not None and k <= last:
                raise _Bad("keys out of order")
            last = k
            n += 1
        # the free list must stay clear of the tree (btree reuses its pages)
        seen = p.seen
        pg = p.free
        hops = 0
        nb = bytearray(4)
        while pg != P_INVALID:
            if pg >= p.npages or seen[pg] or hops > p.npages:
                raise _Bad("free list broken at page %d" % pg)
            hops += 1
            f.seek(pg * p.psize + 8)
            f.readinto(nb)
            pg = struct.unpack("<I", nb)[0]
        return n
    except _Bad as e:
        raise CorruptDBError("%s: corrupt (%s)" % (name, e))
    except (ValueError, MemoryError) as e:
        if isinstance(e, MemoryError):
            raise
        raise CorruptDBError("%s: corrupt (%s)" % (name, e))
    finally:
        try:
            f.seek(0)
        except Exception:
            pass


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
        self.free = P_INVALID
        self.flags = 0
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
        size = _fsize(f)
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
                free = p.free_pages()
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
                    except _Bad:
                        continue
            db.flush()
            db.close()
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
    # `backup` (default path + ".corrupt") and the new one takes its name.
    # Returns a report: recovered, lost (records the old metadata counted that
    # could not be read, None if unknown), unreadable (records found but not
    # decodable), bad_pages, notes, backup.
    import os
    import btree
    from . import codec
    from .journal import recover, _exists

    if backup is None:
        backup = path + ".corrupt"
    if not _exists(path):
        raise OSError(2, "no such file: %s" % path)
    recover(path)
    tmp = path + ".rep"
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
        except Exception:
            info["unreadable"] += 1
            return False
        if e is not None:
            info["exp"].append(e.to_bytes(4, "big") + k)
        return True

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
        db.close()
    finally:
        f.close()
    if _exists(backup):
        os.remove(backup)
    os.rename(path, backup)
    os.rename(tmp, path)
    c = info["count"]
    return {
        "path": path,
        "backup": backup,
        "recovered": n,
        "lost": None if c is None else (c - n if c > n else 0),
        "unreadable": info["unreadable"],
        "bad_pages": rep["bad_pages"],
        "orphans": rep["orphans"],
        "notes": rep["notes"],
    }
