# The in-memory store (in_memory=True).
#
# btree's own page cache holds every page; there is no byte stream holding
# the database. The pages are a pool that grows with the data (by half its
# size at a time, GROW pages at least) up to the budget (ram_percentage of
# the MicroPython heap at open):
#   * no big contiguous allocation: each page is one malloc of about
#     pagesize + 30 bytes made by btree (on the ESP32 and unix ports that is
#     the C heap, outside the MicroPython heap, which the garbage collector
#     neither scans nor walks past; on boards whose C malloc is the
#     MicroPython heap, as on the qemu board, page-sized blocks there);
#   * btree allocates no page inside a write: every write first reserves its
#     worst case from the free pages (reserve()); the pool grows between
#     writes by filler records with large values, inserted then deleted,
#     which leave their pages on btree's free list, where writes take them
#     from (grow()); when the budget is reached, or the heap has no more, the
#     write raises DBFullError before anything is written;
#   * the cache is larger than the budget, so btree never evicts a page and
#     never reads one back; no page passes through Python on its way.
# The stream below btree is a _Sink: it keeps no data. When the store
# flushes (measure(), stats(), close()), btree writes its dirty pages to it,
# and the sink keeps what the accounting needs from each: the page count,
# the free-list head (meta page) and each page's free-list link, fill level
# and the flush it was last written in. Counting the free list after a
# flush then walks only the pages pushed onto it since the previous count
# (the free list is a stack). Sink methods are called from btree's C code:
# they never raise and never allocate.
import array
import btree
import io

from .errors import DBFullError

SLACK = 8  # pages kept free beyond the reservations: undo of a failed call, deep cascades
INSERT_PAGES = 4  # worst case of one insert: leaf split cascading up 3 levels + new root
GROW = 16  # pages the pool starts with, and grows by at least (or by its size)
_STEP = 8  # pages per filler record
_HDR = 20  # page header bytes


class _Sink(io.IOBase):
    def __init__(self, npg):
        self.gen = bytearray(0)  # flush (mod 256) that last wrote the page
        self.ensure(npg)
        self.cur = 1  # current flush number
        self.npages = 0
        self.head = 0  # free-list head from the meta page
        self.spilled = 0  # page writes outside a flush (the cache evicted: never)
        self.flushing = False

    def ensure(self, npg):
        # Tables for page numbers below npg, grown (copied) by the store
        # between writes, never from btree's calls: 7 bytes per page.
        old = len(self.gen)
        if npg <= old:
            return
        npg = max(npg, 2 * old)
        t, w = ("H", 2) if npg < 0xFFFF else ("i", 4)
        nxt = array.array(t, bytes(w * npg))  # free-list link per page
        dep = array.array(t, bytes(w * npg))  # free pages from here to the end
        room = array.array("H", bytes(2 * npg))  # free bytes inside the page
        gen = bytearray(npg)
        for i in range(old):
            nxt[i] = self.nxt[i]
            dep[i] = self.dep[i]
            room[i] = self.room[i]
            gen[i] = self.gen[i]
        self.nxt = nxt
        self.dep = dep
        self.room = room
        self.gen = gen

    def readinto(self, buf):
        return 0  # nothing is read back (a new, empty stream at open)

    def write(self, b):
        n = len(b)
        if b[0] == 0x62 and b[1] == 0x31 and b[2] == 5 and b[3] == 0:  # meta page
            if not b[15]:
                self.head = b[12] | (b[13] << 8) | (b[14] << 16)
            if not self.npages:
                self.npages = 1
            return n
        if b[3]:
            return -22  # page numbers are below 2**24 here
        pg = b[0] | (b[1] << 8) | (b[2] << 16)
        if not self.flushing:
            self.spilled += 1
        top = len(self.gen)
        if pg < top:
            nx = 0 if b[11] else b[8] | (b[9] << 8) | (b[10] << 16)
            self.nxt[pg] = nx if nx < top else 0  # (past the tables: counted as the end)
            u = (b[18] | (b[19] << 8)) - (b[16] | (b[17] << 8))
            self.room[pg] = u if 0 <= u < n else 0
            self.gen[pg] = self.cur
        if pg >= self.npages:
            self.npages = pg + 1
        return n

    def ioctl(self, op, arg):
        # seek: btree seeks before each page write; the page number is in the
        # page itself, so the offset is not needed (and SEEK_END at open
        # returns 0: an empty stream)
        return 0

    def count_free(self):
        # Length of the free list as of the last flush. Pages written in that
        # flush may have been pushed onto it; the first page on the way that
        # was not is part of the list as counted before, with its depth.
        cur = self.cur
        gen = self.gen
        nxt = self.nxt
        dep = self.dep
        top = len(gen)
        k = 0
        pg = self.head
        while 0 < pg < top and gen[pg] == cur and k < top:
            k += 1
            pg = nxt[pg]
        base = dep[pg] if 0 < pg < top else 0
        pg = self.head
        i = k
        while i > 0:
            dep[pg] = base + i
            i -= 1
            pg = nxt[pg]
        self.cur = cur + 1 if cur < 255 else 1
        return base + k


class MemStore:
    # The Storage interface of the database (commit, reopen, close, purge,
    # size, bt, budget, ...), plus the page accounting of in-memory writes:
    # take(pages) before each btree insert (room: pages that may be taken
    # without measuring; reserve() measures, grows the pool or raises
    # DBFullError); fits(pages) for a batch's estimate.
    mem = True
    new = True
    logs = False        # never durable: no commit log, nothing to roll back
    rolled_back = False
    closed = False

    def __init__(self, pagesize, budget, filename=None):
        self.psize = pagesize
        self.csize = 0
        self.flushes = 0
        self.filename = filename
        self.budget = budget
        # the pool may hold the budget's pages plus SLACK; btree's cache
        # covers twice that, so nothing is ever evicted
        self.max = budget // pagesize + SLACK
        self.inline = (pagesize - _HDR) // 2 - 16  # largest record btree keeps in a leaf
        self.bt = None
        self.f = None
        self._open()

    def _open(self, fill=True):
        s = _Sink(2 * GROW + 16)
        try:
            self.bt = btree.open(s, pagesize=self.psize, cachesize=(2 * self.max + 64) * self.psize)
        except OSError as e:
            if e.args and e.args[0] == 12:  # btree's own malloc (see filestore._bt_open)
                raise MemoryError("btree.open: out of memory")
            raise
        self.f = s
        self._fid = 0
        self._free = 0
        self.room = 0
        self.measure()
        if not fill:
            return
        try:
            self.grow(GROW)
        except BaseException:
            self.close()
            raise

    # --- the pool -------------------------------------------------------------
    def grow(self, n, step=_STEP):
        # Add up to n pages to the pool (fewer at the budget, or when the heap
        # has no more) -> pages added. The fillers' values fill `step` overflow
        # pages each. If btree's malloc of a page fails (a board whose C heap
        # is the MicroPython heap), that insert fails before the tree changes,
        # leaving the pages of its chain allocated before it unused for good
        # (counted as used: a little less room, never a damaged tree).
        # btree takes free pages first: fillers for those, then for n more.
        s = self.f
        n = min(n, self.max - s.npages)
        if n <= 0:
            return 0
        self.measure()
        s.ensure(s.npages + 2 * n + 16)  # the new pages, and the fillers' leaf pages
        n += self._free  # pages the fillers must take
        bt = self.bt
        d = self.psize - _HDR
        try:
            v = memoryview(bytes(step * d))
        except MemoryError:
            step = 1  # a fragmented heap: one page per filler
            try:
                v = memoryview(bytes(d))
            except MemoryError:
                return 0  # no heap: reserve() raises DBFullError
        big = n // step  # fillers of `step` pages, then of one page for the rest
        n = big + n - big * step
        i0 = self._fid
        made = 0
        try:
            for i in range(n):
                bt[b"\xff~%d" % (i0 + i)] = v if i < big else v[:d]
                made += 1
        except OSError as e:
            if not e.args or e.args[0] != 12:
                raise
        except MemoryError:
            pass
        finally:
            for i in range(made):
                del bt[b"\xff~%d" % (i0 + i)]
            self._fid = i0 + made
        before = s.npages
        self.measure()
        return s.npages - before

    # --- accounting -----------------------------------------------------------
    def _flush(self):
        s = self.f
        s.flushing = True
        try:
            r = self.bt.flush()
        finally:
            s.flushing = False
        if r:
            raise MemoryError("in-memory database: btree flush failed (%r)" % (r,))

    def used(self):
        # pages in use as of the last measure
        return self.f.npages - self._free

    def measure(self):
        # Exact room (pages a write may take without growing the pool) ->
        # int; flushes btree's dirty pages into the sink first.
        self._flush()
        s = self.f
        self._free = s.count_free()
        self.room = r = self._free - SLACK - max(0, s.npages - self.max)
        return r

    def reserve(self, pages):
        # Make sure `pages` pages are free for the next write (growing the
        # pool if need be), or raise DBFullError before anything is written.
        r = self.room - pages
        if r < 0:
            r = self.measure() - pages
            if r < 0:
                # (by the pool's size: room for many writes before the next
                # measure, whose flush passes each dirty page through Python)
                self.grow(max(-r, self.f.npages, GROW))
                r = self.room - pages
                if r < 0:
                    self.full()
        self.room = r

    def take(self, pages):
        # reserve(), with the common case (enough room) first
        r = self.room - pages
        if r < 0:
            self.reserve(pages)
        else:
            self.room = r

    def fits(self, pages):
        # A batch's estimate: True if `pages` pages are free (after growing).
        if self.room >= pages:
            return True
        if self.measure() < pages:
            self.grow(max(pages - self.room + INSERT_PAGES, self.f.npages, GROW))
        return self.room >= pages

    def full(self):
        raise DBFullError("in-memory database full: %d of %d bytes used (ram_percentage)"
                          % (self.used() * self.psize, self.budget))

    def ovfl_pages(self, nbytes):
        # Overflow pages of a record of at most nbytes (key + value + btree's
        # entry header): 0 while it fits in a leaf page (nbytes <= inline).
        if nbytes <= self.inline:
            return 0
        d = self.psize - _HDR
        return (nbytes + d - 1) // d

    # --- the Storage interface of the database ----------------------------------
    def commit(self):
        pass

    def suspect(self):
        return False

    def read_error(self):
        return None

    def abandon(self):
        self.close()

    def reopen(self):
        pass

    def size(self):
        # bytes in use (pages in use x page size), as of the last measure
        return self.used() * self.psize

    def usage(self):
        # For stats(), as for a file but over the pages in use (the free pages
        # are the pool kept ready, not waste): live_bytes + dead_bytes ==
        # size(); dead_bytes = unused room inside pages in use (about what
        # compact() reclaims); free_pages = free pages in the pool.
        self.measure()
        s = self.f
        top = min(s.npages, len(s.gen))
        room = s.room
        onlist = bytearray(top)  # free pages keep the fill level of their last use
        pg = s.head
        k = 0
        while 0 < pg < top and k < top:
            onlist[pg] = 1
            k += 1
            pg = s.nxt[pg]
        dead = 0
        for pg in range(1, top):
            if not onlist[pg]:
                dead += room[pg]
        return {"live_bytes": self.size() - dead, "dead_bytes": dead, "free_pages": self._free}

    def close(self):
        bt = self.bt
        self.bt = None
        if bt is not None:
            s = self.f
            s.flushing = True
            try:
                bt.close()  # frees every page
            finally:
                s.flushing = False
        self.f = None

    def purge(self):
        self.close()
        self._open()

    def compact(self):
        # Copy every key into a fresh store (sorted inserts pack its pages;
        # btree allocates them as it goes: a failure only loses the copy),
        # then drop the old one -> bytes reclaimed. Needs room for the copy
        # while it runs; a MemoryError leaves the old store, restored
        # without allocating (the heap may be full).
        before = self.size()
        old_bt = self.bt
        old_f = self.f
        fid = self._fid
        free = self._free
        room = self.room
        self.bt = None
        self.f = None
        try:
            self._open(False)
            self.f.ensure(old_f.npages + 64)  # the copy needs fewer pages than the original
            nb = self.bt
            for k, v in old_bt.items():
                nb[k] = v
            self.grow(GROW)  # free pages again for the next writes
        except BaseException as e:
            self.close()
            self.bt = old_bt
            self.f = old_f
            self._fid = fid
            self._free = free
            self.room = room
            if isinstance(e, OSError) and e.args and e.args[0] == 12:
                raise MemoryError("compact: out of memory")
            raise e
        new_bt = self.bt
        new_f = self.f
        self.bt = old_bt
        self.f = old_f
        self.close()
        self.bt = new_bt
        self.f = new_f
        return before - self.size()
