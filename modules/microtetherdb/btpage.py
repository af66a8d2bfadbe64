# The Berkeley DB 1.85 btree page format, read in pure Python.
#
# The one place that knows the on-disk format. Everything here reads pages
# through a seekable binary stream and never goes through the btree module,
# which trusts its pages and can crash on a damaged one. Used to
#   * check(f): prove a file is a sound btree before btree.open() touches it,
#     reading it the way btree itself does (raises CorruptDBError);
#   * Pages.walk(): read every record of a (possibly damaged) file (repair);
#   * free_pages(), usage(): the free list and a page-level space account.
# Imports nothing from the package but errors.py.
#
# Format (host byte order: little-endian on every target we build for):
#   page 0, meta : u32 magic 0x053162, version 3, psize, free, nrecs, flags
#   other pages  : u32 pgno, prevpg, nextpg, flags; u16 lower, upper;
#                  u16 linp[(lower - 20) // 2]  (entry offsets)
#   leaf entry   : u32 ksize, dsize; u8 flags; key bytes, data bytes
#   internal     : u32 ksize, pgno; u8 flags; key bytes
#   big item     : entry bytes hold u32 first overflow page, u32 size; overflow
#                  pages (flag 0x04) carry psize - 20 bytes each, chained by nextpg
# Root is page 1; freed pages keep their old contents and are chained from
# meta.free through nextpg.
#
# How btree reads a page decides what must be checked: its search takes a
# page without the P_BLEAF bit for an internal page, its sequential scan
# takes P_BLEAF or P_RLEAF for a leaf, an internal page with no entry is read
# at index 0 anyway, an overflow chain is followed for its stated size
# whatever the pages say. So a tree page must carry exactly P_BINTERNAL or
# P_BLEAF, an internal page at least one entry, every entry must lie inside
# its page, every page number must be in the file, and each page must be
# reached once.

import struct

from .errors import CorruptDBError

MAGIC = 0x053162
VERSION = 3
B_NODUPS = 0x20
HDR = 20
P_BINTERNAL = 0x01
P_BLEAF = 0x02
P_OVERFLOW = 0x04
P_PRESERVE = 0x20
P_BIGDATA = 0x01
P_BIGKEY = 0x02
MAX_DEPTH = 32


class Bad(Exception):
    # one page or entry cannot be read (internal to the readers)
    pass


def fsize(f):
    pos = f.seek(0, 2)
    if pos is None:  # some streams return None
        pos = f.tell()
    return pos


def meta(head, name="database"):
    # Validate a meta page header (24 bytes) -> (psize, free).
    magic, version, psize, free, nrecs, flags = struct.unpack_from("<IIIIII", head, 0)
    if magic != MAGIC:
        raise CorruptDBError("%s: not a database (bad magic 0x%x)" % (name, magic))
    if version != VERSION:
        raise CorruptDBError("%s: unsupported btree version %d" % (name, version))
    if psize < 512 or psize > 65536 or psize & (psize - 1):
        raise CorruptDBError("%s: bad page size %d in header" % (name, psize))
    if flags & ~B_NODUPS:
        raise CorruptDBError("%s: unsupported btree flags 0x%x" % (name, flags))
    return psize, free


def free_pages(f, psize, head, npages):
    # The free list from `head`: dict page -> 1 (stops at the first bad link).
    out = {}
    nb = bytearray(4)
    pg = head
    while 0 < pg < npages and pg not in out:
        out[pg] = 1
        f.seek(pg * psize + 8)
        if f.readinto(nb) != 4:
            break
        pg = struct.unpack("<I", nb)[0]
    return out


class Pages:
    # Random access to the pages of an open btree file (binary, seekable).

    def __init__(self, f, name="database", strict=True):
        self.f = f
        self.name = name
        size = fsize(f)
        if size == 0:
            raise CorruptDBError("%s: empty file is not a database" % name)
        head = bytearray(24)
        f.seek(0)
        n = f.readinto(head)
        if n != 24:
            raise CorruptDBError("%s: file too short (%d bytes) to be a database" % (name, size))
        psize, free = meta(head, name)
        self.tail = size % psize
        if self.tail and strict:
            raise CorruptDBError(
                "%s: truncated (size %d is not a multiple of page size %d)" % (name, size, psize))
        self.psize = psize
        self.npages = size // psize
        if self.npages < 2:
            raise CorruptDBError("%s: truncated (%d page)" % (name, self.npages))
        self.free = free
        self.buf = bytearray(psize)
        self.cur = -1

    def load(self, pg):
        # read page pg into self.buf; return it
        if pg == self.cur:
            return self.buf
        if pg < 1 or pg >= self.npages:
            raise Bad("page number %d out of range" % pg)
        self.f.seek(pg * self.psize)
        if self.f.readinto(self.buf) != self.psize:
            raise Bad("page %d: short read" % pg)
        self.cur = pg
        return self.buf

    def header(self, pg, want):
        # Validate the header of page pg as a page of type `want` (one of
        # P_BINTERNAL, P_BLEAF, P_OVERFLOW; 0 = a tree page, either tree type)
        # -> (type, nentries, nextpg).
        b = self.load(pg)
        pgno, prev, nxt, flags, lower, upper = struct.unpack_from("<IIIIHH", b, 0)
        if pgno != pg:
            raise Bad("page %d: header says page %d" % (pg, pgno))
        if want == P_OVERFLOW:
            if flags & ~P_PRESERVE != P_OVERFLOW:
                raise Bad("page %d: flags 0x%x, not an overflow page" % (pg, flags))
            if nxt >= self.npages:
                raise Bad("page %d: next page %d out of range" % (pg, nxt))
            return P_OVERFLOW, 0, nxt
        if flags != P_BINTERNAL and flags != P_BLEAF:
            raise Bad("page %d: flags 0x%x, not a tree page" % (pg, flags))
        if want and flags != want:
            raise Bad("page %d: flags 0x%x where 0x%x was expected" % (pg, flags, want))
        if lower < HDR or lower > upper or upper > self.psize or lower & 1:
            raise Bad("page %d: bad bounds %d..%d" % (pg, lower, upper))
        if prev >= self.npages or nxt >= self.npages:
            raise Bad("page %d: sibling link out of range" % pg)
        return flags, (lower - HDR) >> 1, nxt

    def entry(self, pg, t, i, data=True):
        # entry i of the (already validated, loaded) page: returns
        # leaf: (key_bytes_or_ref, data_bytes_or_ref, flags)
        # internal: (key_bytes_or_ref, child_pgno, flags)
        # a "ref" is a tuple (first_overflow_page, size)
        # btree sizes an entry from its stored sizes (8 for a big item) as
        # LALIGN(9 + ksize [+ dsize]) and reads its u32 fields in place (an
        # unaligned one faults on ESP32): both are checked here.
        b = self.buf
        psize = self.psize
        off = struct.unpack_from("<H", b, HDR + 2 * i)[0]
        upper = struct.unpack_from("<H", b, 18)[0]
        if off < upper or off & 3 or off + 9 > psize:
            raise Bad("page %d: entry %d offset %d" % (pg, i, off))
        a, c, fl = struct.unpack_from("<IIB", b, off)
        p = off + 9
        if t == P_BLEAF:
            self.span = (off, (9 + a + c + 3) & ~3)
            if fl & ~3 or (fl & P_BIGKEY and a != 8) or (fl & P_BIGDATA and c != 8) \
                    or off + self.span[1] > psize:
                raise Bad("page %d: entry %d size %d+%d" % (pg, i, a, c))
            if fl & P_BIGKEY:
                k = self._ref(pg, p)
            else:
                k = bytes(b[p:p + a])
            p += a
            if fl & P_BIGDATA:
                d = self._ref(pg, p)
            elif data:
                d = bytes(b[p:p + c])
            else:
                d = None
            return k, d, fl
        self.span = (off, (9 + a + 3) & ~3)
        if fl & ~P_BIGKEY or (fl & P_BIGKEY and a != 8) or off + self.span[1] > psize:
            raise Bad("page %d: entry %d key size %d" % (pg, i, a))
        if c < 1 or c >= self.npages:
            raise Bad("page %d: entry %d child page %d out of range" % (pg, i, c))
        if fl & P_BIGKEY:
            k = self._ref(pg, p)
        else:
            k = bytes(b[p:p + a])
        return k, c, fl

    def tiled(self, pg, spans):
        # btree keeps a page's entries packed: they tile [upper, psize)
        # exactly, and its delete arithmetic relies on it (overlapping
        # entries make it move bytes past the page).
        spans.sort()
        at = struct.unpack_from("<H", self.buf, 18)[0]
        for off, n in spans:
            if off != at:
                raise Bad("page %d: entries overlap or leave a gap at %d" % (pg, at))
            at += n
        if at != self.psize:
            raise Bad("page %d: entries end at %d" % (pg, at))

    def _ref(self, pg, p):
        r = struct.unpack_from("<II", self.buf, p)
        if r[0] < 1 or r[0] >= self.npages or r[1] == 0 or r[1] > self.npages * self.psize:
            raise Bad("page %d: overflow reference %d/%d" % (pg, r[0], r[1]))
        return r

    def big(self, ref, seen=None, copy=True):
        # Read (or, copy=False, only check) an overflow chain; ref = (first
        # page, size). seen: bytearray marking the pages used (None: the
        # chain may be shared, as a key an internal page refers to).
        pg, size = ref
        out = bytearray(size) if copy else None
        pos = 0
        per = self.psize - HDR
        hops = 0
        while pos < size:
            if hops > self.npages:
                raise Bad("overflow chain loops")
            self.header(pg, P_OVERFLOW)
            if seen is not None:
                if seen[pg]:
                    raise Bad("page %d used twice" % pg)
                seen[pg] = 1
            n = min(per, size - pos)
            if copy:
                out[pos:pos + n] = memoryview(self.buf)[HDR:HDR + n]
            pos += n
            hops += 1
            if pos < size:
                pg = struct.unpack_from("<I", self.buf, 8)[0]
                if pg == 0:
                    raise Bad("overflow chain ends early")
        self.cur = -1
        return bytes(out) if copy else None

    def walk(self, on_bad=None, data=True):
        # Yield (key, data) of every leaf entry reachable from the root, in
        # key order (data=False: data is None, big items only checked).
        # Checks what btree relies on: page types, bounds, entries inside
        # their page, every page reached once, leaves chained left to right,
        # keys in order and inside the range their parent's separators give.
        # A bad page/entry raises Bad, or, if on_bad is given, is reported to
        # on_bad(msg, pg) and skipped. Pages reached are marked in self.seen.
        seen = self.seen = bytearray(self.npages)
        stack = [(1, 0, None, None)]  # page, depth, low key (incl.), high key (excl.)
        prev = 0  # previous leaf: leaves must be chained left to right
        nxt_want = None
        last = None
        while stack:
            pg, depth, lo, hi = stack.pop()
            if pg < 1 or pg >= self.npages or seen[pg]:
                msg = "page %d out of range or reached twice" % pg
                if on_bad is None:
                    raise Bad(msg)
                on_bad(msg, pg)
                continue
            seen[pg] = 1
            try:
                if depth > MAX_DEPTH:
                    raise Bad("tree deeper than %d" % MAX_DEPTH)
                t, n, nxt = self.header(pg, 0)
                if t == P_BINTERNAL:
                    if n == 0:
                        raise Bad("page %d: internal page without entries" % pg)
                    kids = []
                    spans = []
                    for i in range(n):
                        k, c, fl = self.entry(pg, t, i)
                        spans.append(self.span)
                        if fl & P_BIGKEY:
                            k = self.big(k)  # shared with a leaf's big key
                            self.load(pg)
                        kids.append((c, k))
                    self.tiled(pg, spans)
                    # separators ascend; entry 0's key is never compared
                    for i in range(2, n):
                        if kids[i][1] <= kids[i - 1][1]:
                            raise Bad("page %d: separator keys out of order" % pg)
                    for i in range(n - 1, -1, -1):
                        klo = lo if i == 0 else kids[i][1]
                        khi = hi if i == n - 1 else kids[i + 1][1]
                        if (lo is not None and i and klo < lo) or (hi is not None and khi is not None and khi > hi):
                            raise Bad("page %d: separator outside its parent's range" % pg)
                        stack.append((kids[i][0], depth + 1, klo, khi))
                    continue
                pp = struct.unpack_from("<I", self.buf, 4)[0]
                if pp != prev or (nxt_want is not None and nxt_want != pg):
                    prev = pg
                    nxt_want = nxt
                    raise Bad("page %d: broken leaf chain" % pg)
                prev = pg
                nxt_want = nxt
                ents = []
                spans = []
                for i in range(n):
                    ents.append(self.entry(pg, t, i, data))
                    spans.append(self.span)
                self.tiled(pg, spans)
            except Bad as e:
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
                    if on_bad is None:  # (salvage takes what it can read)
                        if (lo is not None and k < lo) or (hi is not None and k >= hi):
                            raise Bad("page %d: key outside its parent's range" % pg)
                        if last is not None and k <= last:
                            raise Bad("page %d: keys out of order" % pg)
                        last = k
                except Bad as e:
                    if on_bad is None:
                        raise
                    on_bad(str(e), pg)
                    continue
                yield k, d
        if nxt_want:
            msg = "page %d: leaf chain runs past the last leaf" % prev
            if on_bad is None:
                raise Bad(msg)
            on_bad(msg, prev)


def check(f, name="database"):
    # Full structural check of an open btree file, as btree will read it.
    # Returns the number of records; raises CorruptDBError naming the file
    # and the first problem. Reads every reachable page once (O(file size)).
    try:
        p = Pages(f, name)
        n = 0
        for _ in p.walk(None, False):
            n += 1
        # the free list must stay clear of the tree (btree reuses its pages)
        seen = p.seen
        pg = p.free
        hops = 0
        nb = bytearray(4)
        while pg != 0:
            if pg >= p.npages or seen[pg] or hops > p.npages:
                raise Bad("free list broken at page %d" % pg)
            seen[pg] = 1
            hops += 1
            f.seek(pg * p.psize + 8)
            f.readinto(nb)
            pg = struct.unpack("<I", nb)[0]
        return n
    except Bad as e:
        raise CorruptDBError("%s: corrupt (%s)" % (name, e))
    except ValueError as e:
        raise CorruptDBError("%s: corrupt (%s)" % (name, e))
    finally:
        try:
            f.seek(0)
        except Exception:
            pass


def usage(f, size, psize):
    # Page-level account of a btree stream of `size` bytes: dead_bytes =
    # unused room inside tree pages + free-list pages (about what compact()
    # would reclaim); live_bytes = the rest.
    n = size // psize
    buf = bytearray(20)
    free = {}
    dead = 0
    if n:
        f.seek(0)
        f.readinto(buf)
        if int.from_bytes(buf[0:4], "little") == MAGIC:
            free = free_pages(f, psize, int.from_bytes(buf[12:16], "little"), n)
    for pg in range(1, n):
        if pg in free:
            continue
        f.seek(pg * psize)
        f.readinto(buf)
        flags = buf[12]
        if flags & (P_BINTERNAL | P_BLEAF):
            lower = buf[16] | (buf[17] << 8)
            upper = buf[18] | (buf[19] << 8)
            if upper >= lower:
                dead += upper - lower
    dead += len(free) * psize
    return {"live_bytes": size - dead, "dead_bytes": dead, "free_pages": len(free)}
