# The btree handle of a database file: opening, the commit point, closing
# and purging. (In-memory mode: memstore.py.)
import btree
import os

from .errors import CorruptDBError


def _mkdirs(path):
    # Create the parent folders of `path` (MicroPython has no makedirs).
    cur = "/" if path.startswith("/") else ""
    for p in path.split("/")[:-1]:
        if not p:
            continue
        cur += p
        try:
            os.stat(cur)
        except OSError:
            os.mkdir(cur)
        cur += "/"


class Storage:
    mem = False
    budget = None  # no memory budget for a file

    def __init__(self, filename, in_memory, pagesize, cachesize, budget):
        # (in_memory and budget: kept for the callers; always False / None)
        self.filename = filename
        self.psize = pagesize
        self.csize = cachesize
        self.flushes = 0
        self.bt = None
        self.f = None
        self.new = False
        self._open()

    def _open(self):
        fn = self.filename
        from .compact import recover

        recover(fn)  # finish or discard an interrupted compact()
        size = -1
        try:
            st = os.stat(fn)
            if st[0] & 0x4000:
                raise ValueError("filename: %s is a directory" % fn)
            size = st[6]
        except OSError:
            _mkdirs(fn)
        # journal.open_db: journal recovery, page check, FAT journal
        from .journal import open_db

        f, self.new, self.recovered = open_db(fn)
        try:
            self.bt = btree.open(f, pagesize=self.psize, cachesize=self.csize)
        except Exception as e:
            f.close()
            raise CorruptDBError("%s is not a MicroTetherDB database (btree: %r)" % (self.filename, e))
        self.f = f

    # --- the single commit point -------------------------------------------
    def commit(self):
        # Make everything written so far durable: btree.flush() writes the
        # dirty pages and the btree metadata, then syncs the stream (on
        # LittleFS that sync is the atomic commit of the file).
        self.bt.flush()
        self.flushes += 1

    def reopen(self):
        # Berkeley DB never clears B_METADIRTY once set (on creating a file,
        # and when its free list changes), so such a handle rewrites page 0
        # at every sync, and on LittleFS writing near the start of a file
        # costs a copy of the whole file.  A fresh handle starts clean.
        # Call only after commit() (nothing dirty); btree.close() leaves the
        # stream open.
        self.bt.close()
        self.bt = None
        self.f.seek(0)  # btree.open reads the meta page from the current position
        self.bt = btree.open(self.f, pagesize=self.psize, cachesize=self.csize)

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
        # Drop everything: close, delete the file, open a fresh empty store.
        self.close()
        try:
            os.remove(self.filename)
        except OSError:
            pass
        self._open()

    def size(self):
        # Bytes in the file as last written by btree.
        return self.f.seek(0, 2)
