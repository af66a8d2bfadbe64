# The in-memory store: btree over io.BytesIO, the memory budget
# (ram_percentage), closing and purging. File mode is filestore.py.
import btree
import gc
import os

from .errors import CorruptDBError, DBFullError

# Pages one btree insert may allocate at worst (leaf split cascading up a
# tree of depth <= 3, plus a new root).  Overflow pages are added on top.
_INSERT_PAGES = 4


_SLACK_PAGES = 8  # preallocated beyond the memory budget
PREALLOC_HEADROOM = 16384  # heap left free after preallocating the store


class Storage:
    def __init__(self, filename, in_memory, pagesize, cachesize, budget):
        self.filename = filename
        self.mem = in_memory
        self.psize = pagesize
        self.csize = cachesize
        self.budget = budget  # bytes, memory mode only (None = unlimited)
        self.flushes = 0
        self.bt = None
        self.f = None
        self.new = False
        self._room = 0
        self._open()

    def _open(self):
        if self.mem:
            import io

            f = None
            n = self.prealloc_size()
            if n and gc.mem_free() >= n + PREALLOC_HEADROOM:
                # Reserve the whole budget up front (plus a few pages for the
                # batch estimate's error): the store then never grows, so
                # btree never meets a realloc that copies the store and
                # fragments the heap, nor a MemoryError raised from inside
                # its C code (which could leave its pages half-split). Only
                # while PREALLOC_HEADROOM bytes stay free for everything else;
                # otherwise the store grows as needed.
                try:
                    f = io.BytesIO(n)
                except MemoryError:
                    f = None
            if f is None:
                f = io.BytesIO()
            self.new = True
        try:
            self.bt = btree.open(f, pagesize=self.psize, cachesize=self.csize)
        except Exception as e:
            f.close()
            raise CorruptDBError("%s is not a MicroTetherDB database (btree: %r)" % (self.filename, e))
        self.f = f
        if self.mem and self.budget is not None:
            self._room = self.measure()

    def prealloc_size(self):
        # Bytes reserved for an in-memory store with a budget (0: none).
        if self.budget is None:
            return 0
        return self.budget + _SLACK_PAGES * self.psize

    # memory mode is never durable
    rolled_back = False
    logs = False
    closed = False

    def suspect(self):
        return False

    def read_error(self):
        return None

    def commit(self):
        pass

    def reopen(self):
        pass

    def abandon(self):
        self.close()

    def close(self):
        bt, f = self.bt, self.f
        self.bt = None
        self.f = None
        try:
            if bt is not None:
                bt.close()
        finally:
            if f is not None:
                f.close()

    def purge(self):
        # Drop everything: a fresh empty store.
        self.close()
        self._open()

    def usage(self):
        from . import btpage

        self.bt.flush()  # move cached pages into the BytesIO
        return btpage.usage(self.f, self.size(), self.psize)

    def size(self):
        # Bytes in the stream (BytesIO or file) as last written by btree.
        return self.f.seek(0, 2)

    # --- memory budget (ram_percentage) -------------------------------------
    def _read4(self, off, buf):
        f = self.f
        f.seek(off)
        f.readinto(buf)
        return int.from_bytes(buf, "little")

    def measure(self):
        # Pages that may still be allocated within the budget: free pages on
        # btree's free list plus unused budget.  Flushes the btree cache into
        # the BytesIO first so its size and metadata are exact.
        self.bt.flush()
        size = self.size()
        psize = self.psize
        free = 0
        if size >= psize:
            buf = bytearray(4)
            from . import btpage

            if self._read4(0, buf) == btpage.MAGIC:
                free = len(btpage.free_pages(self.f, psize, self._read4(12, buf), size // psize))
        return free + (self.budget - size) // psize

    def pages_for(self, nbytes):
        # Worst-case pages a put of a record of nbytes may allocate.
        ovfl = (self.psize - 20) // 2 - 16
        if nbytes <= ovfl:
            return _INSERT_PAGES
        return _INSERT_PAGES + (nbytes + self.psize - 21) // (self.psize - 20)

    def pages_for_batch(self, sizes):
        # Estimated pages for a batch of records of the given sizes: inline
        # records at half-full pages, plus overflow pages, plus one cascade.
        ovfl = (self.psize - 20) // 2 - 16
        room = self.psize - 20
        n = _INSERT_PAGES
        b = 0
        for ln in sizes:
            ln += 16
            if ln <= ovfl:
                b += ln
            else:
                n += (ln + room - 1) // room
                b += 32
        return n + (2 * b + room - 1) // room

    def reserve(self, pages):
        # Raise DBFullError (before anything is written) unless `pages` more
        # pages fit in the budget.
        if self.budget is None:
            return
        if self._room < pages:
            self._room = self.measure()
            if self._room < pages:
                self.full()
        self._room -= pages

    def full(self):
        raise DBFullError("in-memory database full: %d of %d bytes used (ram_percentage)" % (self.size(), self.budget))

    def check(self):
        # After a batch: True if the store is still within the budget.
        if self.budget is None:
            return True
        self._room = self.measure()
        return self._room >= 0
