# MicroTetherDB: the public API class, and the core the helper modules use.
#
# Helper interface. index.py, query.py (with planner.py), aio.py and
# compact.py use only these members of the database (nothing else of it):
#   _check_open() -> btree handle       DBError if closed
#   _wguard() -> btree handle           also DBLock while an async batch runs
#   _records(start, end)                (key bytes, stored value) in key order
#   _raw(kb)                            stored value or None
#   _now()                              clock seconds
#   _damaged(e)                         the exception for a btree OSError
#   _key(kb), _named(e)                 a stored key as str; an error naming the file
#   _after_write()                      commit policy after a write call
#   _take(nbytes)                       memory mode: pages for one more insert
#   _indexes()                          the index.Indexes object (hooks, defs)
#   _async()                            aio.State (lock, sweeper task)
#   _put_batch_steps / _delete_batch_steps / _cleanup_steps, PAUSE:
#       each batch written once, as a generator of chunks (see _steps_run)
#   _st, _commit(), _bt, _settle(e) (compact.py, the file layer)
# Every record write and delete goes through _write_record / _delete_record.
#
# Storage (one object, self._st): memstore.MemStore in RAM; on flash
# filestore.FileStore (file format 1: one file) or chunkstore.ChunkStore
# (file format 2: a folder of chunks and a commit log, see docs/storage.md).
# Format 2 commits log the records each commit changed (self._pend) and
# replays them on opening; index definitions go with a checkpoint.
import gc

from . import codec
from . import index as _index
from . import keys as _keys
from . import ttl as _ttl
from .errors import CorruptDBError, DBError, DBLock

META = b"\xffm"  # meta record: b"MTDB" + format version byte + b":count:gen_sec:gen_n"
FORMAT = 2  # 2: a record without expiry and tags has no header (codec.py); 1 is read
_END = b"\xff"  # all user keys sort below this; internal keys start with it
_CHUNK = 16  # records per chunk: _records() reads, batches yield between chunks
_NO = object()
_PLAIN = codec.PLAIN
_F_EXP = codec.F_EXP
_F_TAGS = codec.F_TAGS
_loads = codec._loads
_INS = 4  # worst-case pages of one btree insert (memstore.INSERT_PAGES)


def _open_file(filename, pagesize, cachesize, fmt):
    # The file layer for `filename`: an existing single file is format 1
    # (filestore.py), a database folder format 2 (chunkstore.py); a new
    # database is format 2 unless file_format=1 asks for a single file.
    from . import filestore

    path = filestore.normpath(filename)
    filestore.recover_dir(path)
    if filestore.isdir(path) or (fmt != 1 and not filestore.exists(path)):
        if fmt == 1:
            raise ValueError("file_format=1: %s is a folder (a format 2 database?)" % path)
        from .chunkstore import ChunkStore

        return ChunkStore(path, pagesize, cachesize)
    if fmt == 2:
        raise ValueError("file_format=2: %s is a single-file database (format 1)" % path)
    return filestore.FileStore(path, pagesize, cachesize)


def _num(name, v, lo, integer=False, lo_excl=False, hi=None):
    t = type(v)
    if t is not int and (integer or t is not float):
        raise ValueError("%s must be %s, not %r" % (name, "an int" if integer else "a number", v))
    if v < lo or (lo_excl and v == lo) or (hi is not None and v > hi):
        raise ValueError("%s out of range: %r" % (name, v))
    return v


def _flag(name, v):
    # Boolean arguments take only True or False: a truthy value such as a key
    # passed by mistake (delete("a", "b")) must not switch anything on.
    if v is True or v is False:
        return v
    raise TypeError("%s must be True or False, not %r" % (name, v))


def _once(name, cur, v):
    # an argument of put() given positionally, which must not also be a keyword
    if cur is not None:
        raise TypeError("put(): %s given twice" % name)
    return v


def _apply(bt, ch):
    # index entry changes from Indexes.changes(): (keys to delete, keys to add)
    for k in ch[0]:
        _index.discard(bt, k)
    for k in ch[1]:
        bt[k] = b""


class MicroTetherDB:
    PAUSE = _NO  # what the step generators yield between chunks

    def __init__(
        self,
        filename="microtether.db",
        in_memory=True,
        ram_percentage=15,
        max_retries=3,
        retry_delay=0.1,
        lock_timeout=5.0,
        ttl_check_interval=60,
        btree_cachesize=4096,
        btree_pagesize=512,
        adaptive_threshold=True,
        event_loop=None,
        **kw
    ):
        self._bt = None
        autoflush = kw.pop("autoflush", None)
        clock = kw.pop("clock", None)
        max_doc_size = kw.pop("max_doc_size", 8192)
        cleanup_interval = kw.pop("cleanup_interval", None)
        file_format = kw.pop("file_format", None)
        if kw:
            raise TypeError("unexpected keyword argument '%s'" % next(iter(kw)))
        if type(filename) is not str or not filename:
            raise ValueError("filename must be a non-empty str")
        self.filename = filename
        self.in_memory = in_memory = _flag("in_memory", in_memory)
        self.ram_percentage = _num("ram_percentage", ram_percentage, 0, lo_excl=True, hi=100)
        self.max_retries = _num("max_retries", max_retries, 0, integer=True)
        self.retry_delay = _num("retry_delay", retry_delay, 0)
        if lock_timeout is not None:
            _num("lock_timeout", lock_timeout, 0)
        self.lock_timeout = lock_timeout
        if cleanup_interval is not None:
            ttl_check_interval = _num("cleanup_interval", cleanup_interval, 0)
        self.ttl_check_interval = self.cleanup_interval = _num("ttl_check_interval", ttl_check_interval, 0)
        self.btree_cachesize = _num("btree_cachesize", btree_cachesize, 0, integer=True)
        p = _num("btree_pagesize", btree_pagesize, 512, integer=True, hi=65536)
        if p & (p - 1):
            raise ValueError("btree_pagesize must be a power of two, not %d" % p)
        self.btree_pagesize = p
        self.adaptive_threshold = _flag("adaptive_threshold", adaptive_threshold)
        self.event_loop = event_loop
        if autoflush is None:
            autoflush = not in_memory
        elif autoflush is not True and autoflush is not False:
            _num("autoflush", autoflush, 1, integer=True)
        self.autoflush = autoflush
        # flush every _af write calls (0 = only on flush()/close())
        self._af = 0 if in_memory else (1 if autoflush is True else (0 if autoflush is False else autoflush))
        if clock is None:
            import time

            clock = time.time
        elif not callable(clock):
            raise ValueError("clock must be a callable returning seconds")
        self.clock = self._clock = clock
        self.max_doc_size = _num("max_doc_size", max_doc_size, 2, integer=True, hi=1 << 20)

        self._gen = _keys.KeyGen()
        self._ix = None  # index.Indexes: the hooks of _write_record / _delete_record
        self._aio = None  # aio.State, created by the async API
        self._abusy = False  # True while a batch or cleanup is mid-way
        self._dirty = 0  # write calls since the last commit
        self._writes = 0
        self._rolled = False  # the store went back to its last commit
        self._cfail = False  # a commit failed with the pages in RAM intact
        self._dirty_lost = 0
        self._lost = 0  # calls a rollback after a failed call discarded, for its message
        self._pend = {}  # key bytes -> value or None: what the next commit logs (format 2)
        self._plen = 0  # about the bytes of that log record
        self._ckpt = False  # the next commit must be a checkpoint (index changes, big groups)
        # False while every record is plain (no header: no expiry, no tags):
        # memory mode until a record with a header is written (_write_full)
        self._hdr = not in_memory
        if file_format is not None and file_format != 1 and file_format != 2:
            raise ValueError("file_format must be 1 or 2, not %r" % (file_format,))
        if in_memory:
            # the budget: a share of the MicroPython heap (memstore.py)
            from .memstore import MemStore

            gc.collect()
            budget = int((gc.mem_free() + gc.mem_alloc()) * self.ram_percentage / 100)
            self._st = MemStore(p, budget, filename)
        else:
            self._st = _open_file(filename, p, self.btree_cachesize, file_format)
        st = self._st
        self.file_format = 0 if in_memory else (2 if st.logs else 1)
        self._logs = st.logs
        self._mem = st.budget is not None  # pages are reserved before writes
        self._file = not in_memory
        self._bt = st.bt
        try:
            self._load_meta()
            self._gen.catch_up(self._bt)
            self._ix = _index.attach(self, self._count)
            self._replay()
            if self._logs and st.new:
                st.checkpoint()  # a new database: its first chunk
        except BaseException as e:
            if isinstance(e, OSError):
                e = self._damaged(e)  # (a damaged page: CorruptDBError)
            st.abandon()  # nothing of a failed open is committed
            self._bt = None
            raise e

    # --- helper interface (see the top of this file) ------------------------
    def _check_open(self):
        bt = self._bt
        if bt is None:
            bt = self._revive()
        return bt

    def _wguard(self):
        bt = self._bt
        if bt is None:
            bt = self._revive()
        if self._abusy:
            raise DBLock("database busy: an async batch or cleanup is in progress")
        return bt

    def _now(self):
        # The clock in whole seconds (inf/nan cannot be made an int).
        t = self._clock()
        if type(t) is not int:
            if type(t) is not float or t - t != 0:
                raise ValueError("clock() returned %r, not a finite number of seconds" % (t,))
            t = int(t)
        return t if t > 0 else 0

    def _records(self, start=None, end=None):
        # (key_bytes, raw) of user records in key order, start inclusive, end
        # exclusive, expired ones included.  Reads in chunks, so the caller
        # may write to the database between items.
        if end is None or end > _END:
            end = _END
        skip = None
        while True:
            bt = self._bt
            if bt is None:
                # closed (or purged, compacted away) while iterating: say so,
                # a short result would look complete
                raise DBError("database is closed")
            buf = []
            try:
                for kv in bt.items(start, end):
                    if skip is not None and kv[0] <= skip:
                        if kv[0] == skip:
                            continue
                        # a damaged page sent the search back: going on
                        # would repeat keys for ever
                        raise CorruptDBError("%s: damaged database page (keys out of order)" % self.filename)
                    buf.append(kv)
                    if len(buf) >= _CHUNK:
                        break
            except OSError as e:
                raise self._damaged(e)
            for kv in buf:
                yield kv
            if len(buf) < _CHUNK:
                return
            start = skip = buf[-1][0]

    def _raw(self, kb):
        # The stored value under kb or None (DBError if closed).
        if self._bt is None:
            self._revive()
        try:
            return self._bt.get(kb)
        except OSError:  # (no "as e": that costs this hot frame a second handler)
            return self._reread(kb)

    def _reread(self, kb):
        # A read failed: once more, turning btree's OSError into CorruptDBError
        # (or MemoryError for ENOMEM).
        try:
            return self._bt.get(kb)
        except OSError as e:
            raise self._damaged(e)

    def _damaged(self, e):
        # btree reports a page it cannot make sense of as OSError (EINVAL).
        # ENOMEM is btree's own malloc failing (ports whose C malloc shares
        # the MicroPython heap, e.g. the qemu board): memory, not damage.
        # An error of the storage under btree (no space to evict a page, an
        # I/O error, no memory) is reported as itself.
        cause = self._st.read_error()
        if isinstance(cause, MemoryError) or (e.args and e.args[0] == 12):
            return MemoryError("btree: out of memory (%r)" % (e,))
        if cause is not None:
            return OSError(e.args[0] if e.args else 5, "%s: %s" % (self.filename, cause))
        return CorruptDBError("%s: damaged database page (%r)" % (self.filename, e))

    def _named(self, e):
        # A CorruptDBError of the record layer, with this database's file.
        fn = self.filename
        if isinstance(e, CorruptDBError) and fn not in str(e):
            return CorruptDBError("%s: %s" % (fn, e))
        return self._told(e)

    def _told(self, e):
        # e, saying so if the failed call took the store back to its last
        # commit (_settle) and discarded acknowledged calls (as _commit says)
        n = self._lost
        if not n:
            return e
        self._lost = 0
        if not isinstance(e, (OSError, MemoryError)):
            return e  # (KeyboardInterrupt, a damaged page: as they are)
        m = "%s; the database was returned to its last commit (the %d write calls since it are discarded)" % (
            e.args[-1] if e.args else e, n + 1)
        if isinstance(e, MemoryError):
            return MemoryError(m)
        return OSError(e.args[0] if isinstance(e, OSError) and e.args and type(e.args[0]) is int else 5, m)

    def _key(self, kb):
        try:
            return codec.key(kb)
        except CorruptDBError as e:
            raise self._named(e)

    def _take(self, nbytes):
        # Memory mode: reserve the pages of one more btree insert of nbytes
        # (key + value), or DBFullError before it is made. (File: nothing.)
        if self._mem:
            st = self._st
            st.take(_INS + st.ovfl_pages(nbytes + 16))

    def _err(self, e):
        # The exception a failed write call raises (after its undo): btree's
        # own malloc failing (OSError ENOMEM) is a MemoryError like any other;
        # a bare OSError from under btree (a full volume) names the file; if
        # the store went back to its last commit, the message says how many
        # calls that discarded (as _commit's).
        if isinstance(e, OSError) and e.args and type(e.args[0]) is int:
            n = e.args[0]
            if n == 12:
                return MemoryError("btree: out of memory")
            if len(e.args) == 1:
                try:
                    import errno

                    n2 = errno.errorcode.get(n, n)
                except (ImportError, AttributeError):
                    n2 = "errno %d" % n
                return self._told(OSError(n, "%s: write failed (%s)" % (self.filename, n2)))
        return self._named(e)

    def _indexes(self):
        return self._ix

    def _async(self):
        st = self._aio
        if st is None:
            from . import aio

            st = self._aio = aio.State()
        return st

    # --- the record write path ----------------------------------------------
    # kb is the key as stored: a str (btree stores its UTF-8 bytes) or bytes;
    # keys.kb_bytes(kb) gives the bytes. Stored values: codec.py (a str or
    # bytearray when just encoded, bytes when read back); codec.as_bytes(raw)
    # gives the bytes btree holds. A value without a header has flags 0.
    def _write_record(self, kb, old, new):
        # The single path of every record write (old: previous raw or None):
        # the record, the record count, the TTL index and (through the
        # Indexes object) the tag and field indexes.
        if old is None and type(new) is str and not self._ix.fields:
            self._bt[kb] = new  # a new record without header, no index to keep
            self._count += 1
            if self._logs:
                self._log(kb, new)
            return
        self._write_full(kb, old, new)

    def _write_full(self, kb, old, new):
        # Every key it needs is made first, then the btree is changed:
        # running out of heap while making them leaves everything as it was.
        bt = self._bt
        ix = self._ix
        nf = 0 if type(new) is str else new[0]
        of = 0 if old is None else old[0]
        if nf > 3:
            nf = 0
        elif nf:
            self._hdr = True  # (delete() reads records again)
        if of > 3:
            of = 0
        dk = ak = ch = None
        if (nf | of) & _F_EXP:
            # (expiries compared as their 4 header bytes: no big ints)
            ne = new[1:5] if nf & _F_EXP else None
            oe = old[1:5] if of & _F_EXP else None
            if oe is not None and oe != ne:
                dk = _ttl.ikey_of(old, kb)
            if ne is not None and ne != oe:
                ak = _ttl.ikey_of(new, kb)
        if ix is not None and ((nf | of) & _F_TAGS or ix.fields):
            ch = ix.changes(kb, old, new)
        if dk is not None:
            _index.discard(bt, dk)
        bt[kb] = new
        if old is None:
            self._count += 1
        if ak is not None:
            bt[ak] = b""
        if ch is not None:
            _apply(bt, ch)
        if self._logs:
            self._log(kb, new)

    def _delete_record(self, kb, old):
        # The single path of every record delete (old: its current raw value).
        if old[0] == _PLAIN and not self._ix.fields:
            del self._bt[kb]  # no header, no index to keep
            self._count -= 1
            if self._logs:
                self._log(kb, None)
            return
        self._delete_full(kb, old)

    def _delete_full(self, kb, old):
        # keys first, then the btree, as in _write_full
        bt = self._bt
        ix = self._ix
        f = old[0]
        if f > 3:
            f = 0
        dk = ch = None
        if f & _F_EXP:
            dk = _ttl.ikey_of(old, kb)
        if ix is not None and (f & _F_TAGS or ix.fields):
            ch = ix.changes(kb, old, None)
        if dk is not None:
            _index.discard(bt, dk)
        del bt[kb]
        self._count -= 1
        if ch is not None:
            _apply(bt, ch)
        if self._logs:
            self._log(kb, None)

    def _log(self, kb, new):
        # Format 2: what the next commit logs for this record (the value as
        # written, None for a delete), under the key's bytes: one entry per
        # record whichever form (str or bytes) the key was written with.
        # Changes too big for one log record are committed by a checkpoint
        # (chunkstore.commit), which writes the pages: then nothing more is
        # kept here (RAM: many calls between flushes would otherwise hold
        # every value, scattered over the heap).
        if self._ckpt:
            return
        if type(kb) is str:
            kb = kb.encode()
        self._pend[kb] = new
        self._plen += len(kb) + (len(new) + 3 if new is not None else 2)
        if self._plen > self._st.log_max:
            self._ckpt = True
            self._pend = {}
            self._plen = 0

    def _meta(self):
        g = self._gen
        return b"MTDB%c:%d:%d:%d" % (FORMAT, self._count, g.sec, g.n)

    def _load_meta(self):
        bt = self._bt
        m = bt.get(META)
        fn = self.filename
        if m is None:
            if not self._st.new:
                for _ in bt:
                    raise CorruptDBError("%s is not a MicroTetherDB database (no metadata record)" % fn)
            self._count = 0
            bt[META] = self._meta()
            self._mstate = (0, self._gen.sec, self._gen.n)
            if not self._logs:  # (format 2: checkpointed once the indexes are attached)
                self._st.commit()
                self._st.reopen()  # a new file: see FileStore.reopen
                self._bt = self._st.bt
            return
        if len(m) < 7 or m[:4] != b"MTDB" or m[5] != 0x3A:
            raise CorruptDBError("%s: damaged metadata record" % fn)
        if m[4] != FORMAT and m[4] != 1:
            raise CorruptDBError("%s: record format %d is not supported (this is %d)" % (fn, m[4], FORMAT))
        try:
            f = m[6:].split(b":")
            self._count = int(f[0])
            self._gen.set(int(f[1]), int(f[2]))
        except (ValueError, IndexError):
            raise CorruptDBError("%s: damaged metadata record" % fn)
        if not (-1 <= self._gen.sec < _keys.MAX_SECONDS and 0 <= self._gen.n <= 99999):
            raise CorruptDBError("%s: damaged metadata record" % fn)
        self._mstate = (self._count, self._gen.sec, self._gen.n)
        if m[4] != FORMAT:
            # record format 1: records written from now on may have no
            # header, so the next commit rewrites the metadata record with 2
            self._mstate = (-1, -1, -1)

    def _commit(self, in_call=False):
        # The one commit point: persist the record count, then the store's
        # commit. in_call: the commit ends a write call (autoflush), which is
        # undone if the commit fails (see _commit_call).
        self._rolled = False
        self._cfail = False
        self._dirty_lost = self._dirty
        self._dirty = 0
        st = self._st
        if st.mem:
            return
        g = self._gen
        ms = self._mstate
        try:
            if self._count != ms[0] or g.sec != ms[1] or g.n != ms[2]:
                self._bt[META] = self._meta()
                self._mstate = (self._count, g.sec, g.n)
            if not self._logs:
                st.commit()
            else:
                # format 2: the records go to the log; index changes (not
                # records) need a checkpoint
                pend = self._pend
                st.commit(codec.log_record(pend) if pend else None, self._ckpt)
                self._ckpt = False
                pend.clear()
                self._plen = 0
                if st.rolled_back:
                    # the checkpoint after the log record failed and took
                    # pages along: the store is back at its chunks plus the
                    # log, which holds every call so far
                    self._reload()
        except BaseException as e:
            n = self._dirty_lost
            if st.suspect() or (in_call and n <= 1 and isinstance(e, OSError)):
                # Back to the last commit: after a failure inside btree its
                # pages cannot be trusted; and when only the failing call is
                # uncommitted, that undoes exactly it and leaves nothing that
                # close() would have to write.
                self._rollback()
                if n > 1:
                    raise OSError(e.args[0] if e.args and type(e.args[0]) is int else 5,
                                  "%s; the database was returned to its last commit "
                                  "(the %d write calls since it are discarded)" % (e.args[-1] if e.args else e, n))
            else:
                # the pages in RAM are sound: a failed write call is undone
                # logically, the calls before it stay pending
                self._cfail = True
            raise self._err(e)

    def _rollback(self):
        # The store goes back to its last commit, and so does this object.
        # If that runs out of memory, the next call finishes it (_revive).
        st = self._st
        self._bt = None
        try:
            st.rollback()
            self._reload()
        except BaseException:  # noqa: BLE001
            self._bt = None
            st.pending = True
            return
        self._rolled = True

    def _reload(self):
        # The state as of the last commit (after a rollback of the store).
        st = self._st
        st.rolled_back = False
        self._bt = st.bt
        self._gen = _keys.KeyGen()
        self._dirty = 0
        self._pend = {}
        self._plen = 0
        self._ckpt = False
        try:
            self._load_meta()
            self._gen.catch_up(self._bt)
            self._ix = _index.attach(self, self._count)
            self._replay()
        except BaseException as e:
            self._bt = None
            if isinstance(e, OSError):
                raise self._damaged(e)  # as at open: ENOMEM is MemoryError, damage CorruptDBError
            raise
        return self._bt

    def _replay(self):
        # Format 2: apply the commit records newer than the last checkpoint
        # (they are in the log already: not recorded again).
        st = self._st
        recs = getattr(st, "replay", None)
        if not recs:
            return
        st.replay = []
        bt = self._bt
        g = self._gen
        self._logs = False
        try:
            for rec in recs:
                for kb, raw in codec.log_entries(rec):
                    old = bt.get(kb)
                    if raw is None:
                        if old is not None:
                            self._delete_record(kb, old)
                    elif old != raw:
                        self._write_record(kb, old, raw)
                    g.bump(kb)  # a generated key: the generator goes on after it
            bt[META] = self._meta()  # count and generator as replayed
            self._mstate = (self._count, g.sec, g.n)
        finally:
            self._logs = st.logs

    def _revive(self):
        # Called with self._bt None: finish a rollback that ran out of
        # memory (-> the btree handle), else the database is closed.
        st = self._st
        if st is None or not getattr(st, "pending", False) or st.closed:
            raise DBError("database is closed")
        try:
            st.revive()
            return self._reload()
        except BaseException:
            self._bt = None
            st.pending = True
            raise

    def _after_write(self, kb=None, old=None):
        # End of every write call: count it, commit as autoflush says. If the
        # commit fails the call is undone (all or nothing) and the error
        # raised: kb, old (the one record a call changed, old its value
        # before) are undone here; calls of several records undo their own
        # (_abort) when this raises.
        self._writes += 1
        self._dirty += 1
        af = self._af
        if af and self._dirty >= af:
            self._commit_call(kb, old)

    def _commit_call(self, kb, old):
        try:
            self._commit(True)
        except BaseException:
            self._writes -= 1
            if kb is not None:
                if self._rolled:
                    self._rolled = False  # back at the last commit: before the call
                elif self._cfail:
                    self._cfail = False
                    self._undo_call(((kb, old),), None)
            raise

    def _undo(self, undo, count):
        # Put back what a failed call changed (newest first).
        bt = self._bt
        for kb, old in reversed(undo):
            cur = bt.get(kb)
            if old is None:
                if cur is not None:
                    self._delete_record(kb, cur)
            else:
                if cur != old:
                    self._write_record(kb, cur, old)
                self._fix_idx(kb, old)
        if count is not None:
            self._count = count

    def _abort(self, undo, count, e):
        # A write call failed (before or at its commit): undo it, unless the
        # store went back to its last commit (then there is nothing to undo).
        if self._rolled:
            self._rolled = False
        elif self._cfail:
            self._cfail = False  # the commit failed, the pages in RAM are sound
            self._undo_call(undo, count)
        elif self._untrusted(e):
            self._settle(e)  # a failure inside btree: its pages are untrusted
        else:
            self._undo_call(undo, count)

    def _untrusted(self, e):
        # After a write call failed with e: can btree's pages be trusted? Not
        # if the stream under btree failed, nor (file mode) if btree itself
        # returned an error (e.g. its malloc failed half-way through a split).
        st = self._st
        return st.suspect() or (not st.mem and isinstance(e, OSError))

    def _undo_call(self, undo, count):
        try:
            self._undo(undo, count)
        except BaseException:
            # the undo itself failed (a damaged record, no memory): the file
            # is still as of the last commit
            if self._st.mem:
                raise
            self._rollback()
            self._rolled = False

    def _settle(self, e=None):
        # After a write call failed: if the failure was inside btree (see
        # _untrusted), btree's pages cannot be trusted: back to the last commit.
        if self._cfail:
            self._cfail = False  # a commit failed: nothing to roll back
        elif self._untrusted(e):
            self._lost = self._dirty  # acknowledged calls since the last commit (_err says so)
            self._rollback()
            self._rolled = False

    def _fix_idx(self, kb, raw):
        # After an interrupted write: make sure raw's expiry index entry exists.
        e = codec.expiry(raw)
        if e is not None:
            self._bt[_ttl.ikey(e, kb)] = b""

    # --- writes -------------------------------------------------------------
    def put(self, x=_NO, *args, **kw):
        # put(data, ttl=None, tags=None, key=None) or put(key, data, ttl=None, tags=None)
        if args or kw or x is _NO:
            return self._put_args(x, args, kw)
        if self._ix.fields or self._file:
            return self._put(x, None, None, None)
        return self._put_new(x)

    def _put_args(self, a, args, kw):
        # The forms of put() -> _put(data, key, ttl, tags); each given once.
        ttl = tags = key = data = None
        for k in kw:
            v = kw[k]
            if k == "ttl":
                ttl = v
            elif k == "tags":
                tags = v
            elif k == "key":
                key = v
            elif k == "data":
                data = v
            else:
                raise TypeError("put() got an unexpected keyword argument '%s'" % k)
        n = len(args)
        if data is None:
            if a is _NO:
                raise TypeError("put() needs data")
            if not n or isinstance(a, dict):  # put(data, ttl, tags, key)
                if n > 3:
                    raise TypeError("put(data, ttl, tags, key): too many arguments")
                data = a
                if n > 0:
                    ttl = _once("ttl", ttl, args[0])
                if n > 1:
                    tags = _once("tags", tags, args[1])
                if n > 2:
                    key = _once("key", key, args[2])
            else:  # put(key, data, ttl, tags)
                if n > 3:
                    raise TypeError("put(key, data, ttl, tags): too many arguments")
                key = _once("key", key, a)
                data = args[0]
                if n > 1:
                    ttl = _once("ttl", ttl, args[1])
                if n > 2:
                    tags = _once("tags", tags, args[2])
        elif n:
            raise TypeError("put(): data given twice")
        elif a is not _NO:
            key = _once("key", key, a)  # put(key, data=...)
        if key is None and ttl is None and tags is None and not self._ix.fields and not self._file:
            return self._put_new(data)
        return self._put(data, key, ttl, tags)

    def _put_new(self, data):
        # The common put: a new record under a generated key, no expiry, no
        # tags, no field index. Its one btree insert is done or not: nothing
        # to undo, no try (whose handler would put this frame on the heap).
        # (On flash, a failure inside btree needs a rollback: _put.)
        # Memory mode only (no logs, no autoflush): _pages, _write_record and
        # _after_write inlined for this case (a short record takes _INS pages).
        if self._bt is None or self._abusy:
            self._wguard()
        s = codec.text(data)
        n = len(s)  # characters (each at most 4 bytes)
        if n > self.max_doc_size >> 2:
            codec.check_size(s, self.max_doc_size)
        key = self._gen.next(self._now())  # above every key generated or of that shape: free
        st = self._st
        # (_rec_pages(1, s, 16) inlined: the record fits in a leaf when its
        # bytes + 80 do; the size in bytes only when 4 per character may not)
        if 4 * n + 80 > st.inline and len(s.encode()) + 80 > st.inline:
            self._pages(1, s, key)
        else:
            n = st.room - _INS  # (st.take inlined)
            if n < 0:
                st.reserve(_INS)
            else:
                st.room = n
        self._bt[key] = s
        self._count += 1
        self._writes += 1
        self._dirty += 1
        return key

    def _pages(self, ins, raw, kb):
        # Memory mode: take the pages of a record write (_rec_pages), or
        # DBFullError now.
        ins = self._rec_pages(ins, raw, len(kb))
        self._st.take(ins)

    def _rec_pages(self, ins, raw, klen):
        # Memory mode: the pages a write of `ins` btree inserts (the record
        # first) may take: INSERT_PAGES per insert (and per field index),
        # plus overflow pages if the record (a key of klen characters, btree's
        # entry header, the value) may not fit in a leaf.
        st = self._st
        w = _INS * (ins + len(self._ix.fields))
        n = len(raw)  # bytes, or characters of a str (each at most 4 bytes)
        klen = 4 * klen + 16
        if type(raw) is str and 4 * n + klen > st.inline:
            n = len(raw.encode())  # (4 bytes per character would ask for too many pages)
        n += klen
        if n > st.inline:
            w += st.ovfl_pages(n)
        return w

    def _put(self, data, key, ttl, tags):
        # Every other put: a custom key (maybe an overwrite), expiry, tags.
        bt = self._bt
        if bt is None or self._abusy:
            bt = self._wguard()
        s = codec.text(data)
        n = len(s)  # characters (each at most 4 bytes)
        if n > self.max_doc_size >> 2:
            codec.check_size(s, self.max_doc_size)
        ins = 1  # btree inserts: the record, its TTL index entry, one per tag
        now = None
        e = None
        if ttl is not None:
            now = self._now()
            e = _ttl.expiry_for(ttl, now)
            if e is not None:
                ins += 1
        tb = None if tags is None else codec.tags_bytes(tags)
        if tb is not None:
            ins += tb[0]
        raw = s if e is None and tb is None else codec.with_header(s, e, tb)
        if key is None:
            if now is None:
                now = self._now()
            key = kb = self._gen.next(now)
            old = None  # above every key generated or of that shape: free
        else:
            if type(key) is str and 0 < len(key) <= 32:
                kb = key
            else:
                kb = _keys.kbytes(key)
                if type(key) is not str:
                    key = str(kb, "utf-8")
            old = self._raw(kb)
            if len(kb) == 16:
                self._gen.bump(kb)
        if self._mem:
            self._pages(ins, raw, kb)
        c0 = self._count
        try:
            self._write_record(kb, old, raw)
        except BaseException as ex:
            self._abort(((kb, old),), c0, ex)  # e.g. MemoryError half-way: all or nothing
            raise self._err(ex)
        self._after_write(kb, old)
        return key

    def delete(self, key=None, purge=False):
        if purge is not False:
            return self._purge(key, purge)
        if type(key) is not str or not key or len(key) > 32:
            if key is None:
                raise TypeError("delete() needs a key (or purge=True)")
            key = _keys.kbytes(key)
        bt = self._bt
        if bt is None or self._abusy:
            bt = self._wguard()
        if not self._hdr and not self._ix.fields:
            return self._del_plain(key)
        old = self._raw(key)
        if old is None:
            return 0
        if old[0] == _PLAIN and not self._file and not self._ix.fields:
            return self._del_plain(key)
        live = self._live(old)  # an expired record is removed, and counted as not there
        self._delete_atomic(key, old)
        self._after_write(key, old)
        return live

    def _del_plain(self, key):
        # Memory mode, a record without header and no field index: one btree
        # delete, done or not, nothing to undo and nothing to read first
        # (_delete_record and _after_write inlined). delete() takes this way
        # without reading the record while no record with a header was ever
        # written (_hdr): then every record is plain.
        try:
            del self._bt[key]
        except KeyError:
            return 0
        self._count -= 1
        self._writes += 1
        self._dirty += 1
        return 1

    def _live(self, raw):
        # 1 if the stored value has not expired, else 0
        f = raw[0]
        if f != _PLAIN and f & _F_EXP and f < 4 and codec.expiry(raw) <= self._now():
            return 0
        return 1

    def _delete_atomic(self, kb, old):
        # _delete_record, undone if it fails half-way
        # (on flash, a failure inside btree: back to the last commit)
        c0 = self._count
        try:
            self._delete_record(kb, old)
        except BaseException as ex:
            self._abort(((kb, old),), c0, ex)
            raise self._err(ex)

    def _purge(self, key, purge):
        if not _flag("purge", purge):
            return self.delete(key)
        if key is not None:
            raise TypeError("delete(): a key or purge=True, not both")
        self._wguard()
        self._bt = None
        try:
            self._st.purge()
        finally:
            self._bt = self._st.bt
        self._count = 0
        self._hdr = self._file  # no record left: all plain
        self._gen = _keys.KeyGen()
        self._pend = {}
        self._plen = 0
        self._ckpt = False
        self._load_meta()
        self._ix = _index.attach(self, 0)
        if self._logs:
            self._st.checkpoint()  # format 2: the empty database's chunk
        self._dirty = 0
        return 1

    # --- batches and cleanup: each written once, as a generator of chunks ---
    # The synchronous call runs it to the end (_steps_run); the async call
    # (aio.run) yields to the event loop where it yields PAUSE. The last value
    # it yields is the result. Whatever stops it half-way (an error, a
    # MemoryError, close() of the generator by a cancelled task) undoes what
    # it wrote; while it is suspended, other writers get DBLock (_abusy).

    def _prep_batch(self, items, ttls):
        # Validate and encode every item before anything is written.
        if isinstance(items, dict) or type(items) is str:
            raise TypeError("items must be a list of dicts or (key, dict) pairs")
        if type(items) is not list and type(items) is not tuple:
            items = list(items)
        n = len(items)
        tl = None
        if ttls is not None:
            if type(ttls) is list or type(ttls) is tuple:
                if len(ttls) != n:
                    raise ValueError("ttls has %d values for %d items" % (len(ttls), n))
                tl = ttls
        now = self._now()
        single = None if tl is not None else _ttl.expiry_for(ttls, now)
        mx = self.max_doc_size
        ents = []
        gen = None
        mem = self._mem
        est = 0  # bytes, for the batch's estimate (memory mode)
        for i in range(n):
            it = items[i]
            try:
                if isinstance(it, dict):
                    kb = None
                    d = it
                elif (type(it) is tuple or type(it) is list) and len(it) == 2:
                    kb = _keys.stored(it[0])
                    d = it[1]
                else:
                    raise TypeError("expected a dict or a (key, dict) pair")
                e = single if tl is None else _ttl.expiry_for(tl[i], now)
                raw = codec.encode(d, e, None, mx)
            except TypeError as ex:
                raise TypeError("items[%d]: %s" % (i, ex))
            except ValueError as ex:
                raise ValueError("items[%d]: %s" % (i, ex))
            w = 0  # the pages this record's write may take (memory mode)
            if mem:
                w = self._rec_pages(1 if e is None else 2, raw, 16 if kb is None else len(kb))
                est += len(raw) + (40 if e is None else 80)
            ents.append([kb, raw, kb is None, w])
            if kb is not None and len(kb) == 16:
                if gen is None:
                    gen = _keys.KeyGen()  # a copy: the batch may still fail
                    gen.set(self._gen.sec, self._gen.n)
                gen.bump(kb)
        if gen is None:
            gen = self._gen
        out = []
        g = _keys.KeyGen()
        g.set(gen.sec, gen.n)
        for ent in ents:  # [key as stored, raw, generated, pages]
            k = ent[0]
            if k is None:
                ent[0] = k = g.next(now)
            elif type(k) is not str:
                k = str(k, "utf-8")
            out.append(k)
        return ents, out, g, est

    def _put_batch_steps(self, items, ttls):
        bt = self._wguard()
        ents, out, g, est = self._prep_batch(items, ttls)
        mem = self._mem
        if mem:
            # the estimate first (its bytes in pages 4/5 full, plus one
            # cascade): a batch that clearly does not fit raises DBFullError
            # before anything is written; each record then reserves its own
            # worst case (if that fails part-way, the batch is undone)
            st = self._st
            if not st.fits(_INS + 5 * est // (4 * (st.psize - 20)) + 1):
                st.full()
        undo = []
        c0 = self._count
        n = len(ents)
        self._abusy = True
        try:
            for i in range(n):
                if i and not i % _CHUNK:
                    yield _NO
                kb, raw, fresh, w = ents[i]
                if mem:
                    st.take(w)
                old = None  # a generated key is free (keys.py)
                if not fresh:
                    try:
                        old = bt.get(kb)
                    except OSError as ex:
                        raise self._damaged(ex)
                undo.append((kb, old))
                self._write_record(kb, old, raw)
        except BaseException as ex:
            self._abort(undo, c0, ex)
            raise self._err(ex)
        finally:
            self._abusy = False
        self._gen.set(g.sec, g.n)
        if ents:
            self._written(undo, c0)
        yield out

    def _delete_batch_steps(self, keys):
        bt = self._wguard()
        if type(keys) is str or type(keys) is bytes or type(keys) is bytearray:
            keys = (keys,)
        stored = _keys.stored
        kbs = [k if type(k) is str and 0 < len(k) <= 32 else stored(k) for k in keys]
        now = None
        undo = []
        c0 = self._count
        n = 0
        # a record without header and no field index: its btree delete is all
        # (_delete_record's first case, inlined: the common case of a batch)
        plain = not self._ix.fields
        logs = self._logs
        self._abusy = True
        try:
            for i in range(len(kbs)):
                if i and not i % _CHUNK:
                    yield _NO
                kb = kbs[i]
                try:
                    old = bt.get(kb)
                except OSError as ex:
                    raise self._damaged(ex)
                if old is None:
                    continue
                undo.append((kb, old))
                f = old[0]
                if f == _PLAIN:
                    n += 1
                    if plain:
                        del bt[kb]
                        self._count -= 1
                        if logs:
                            self._log(kb, None)
                        continue
                elif f & _F_EXP and f < 4:
                    if now is None:
                        now = self._now()
                    if codec.expiry(old) > now:
                        n += 1
                else:
                    n += 1
                self._delete_record(kb, old)
        except BaseException as ex:
            self._abort(undo, c0, ex)
            raise self._err(ex)
        finally:
            self._abusy = False
        if undo:
            self._written(undo, c0)
        yield n

    def _written(self, undo, c0):
        # _after_write of a call of several records: undone if the commit fails
        try:
            self._after_write()
        except BaseException as ex:
            self._abort(undo, c0, ex)
            raise self._told(ex)  # (if _abort went back to the last commit)

    def _cleanup_steps(self):
        # Remove the expired records, _CHUNK at a time.
        # Removing expired records is invisible: what was removed stays
        # removed if it fails part-way, unless the failure was inside btree
        # on flash (then back to the last commit).
        bt = self._wguard()
        total = 0
        self._abusy = True
        try:
            try:
                while True:
                    iks = _ttl.expired_keys(bt, self._now(), _CHUNK)
                    for ik in iks:
                        kb = ik[6:]
                        raw = bt.get(kb)
                        if raw is not None and codec.expiry(raw) == int.from_bytes(ik[2:6], "big"):
                            self._delete_record(kb, raw)
                            total += 1
                        else:
                            del bt[ik]  # stale index entry
                    if len(iks) < _CHUNK:
                        break
                    yield _NO
            finally:
                self._abusy = False
            if total:
                self._after_write()
        except BaseException as ex:
            if self._rolled:
                self._rolled = False
            else:
                self._settle(ex)
            raise self._named(ex)
        yield total

    def _steps_run(self, steps):
        r = None
        for r in steps:
            pass
        return r

    def put_batch(self, items, ttls=None):
        return self._steps_run(self._put_batch_steps(items, ttls))

    def delete_batch(self, keys):
        return self._steps_run(self._delete_batch_steps(keys))

    def cleanup(self):
        return self._steps_run(self._cleanup_steps())

    def flush(self):
        self._wguard()
        try:
            self._commit()
        finally:
            self._rolled = self._cfail = False

    def close(self):
        if self._bt is None:
            st = self._st
            if st is not None and not st.mem and not st.closed:
                st.close()  # a rollback was waiting: the file holds the last commit
            return
        if self._abusy:
            raise DBLock("database busy: an async batch or cleanup is in progress")
        if self._aio is not None:
            from . import aio

            aio.stop_sweeper(self)
        try:
            self._commit()
        finally:
            self._rolled = self._cfail = False
            self._bt = None
            self._st.close()

    @staticmethod
    def repair(path, backup=None):
        # Salvage a damaged database file in place (see repair.py); returns
        # a report dict (recovered, lost, unreadable, bad_pages, backup, ...).
        from .repair import repair

        return repair(path, backup)

    # --- reads --------------------------------------------------------------
    # (The hot calls, get, put, delete and the record write path, keep their
    # frames within 11 words of locals and stack, or hand the rare cases to
    # a helper: MicroPython allocates a larger frame on the heap at every
    # call, which costs a scan of the heap's allocation table when it is
    # fragmented. See docs/benchmarks.md.)
    def get(self, key, default=None):
        if type(key) is not str or not key or len(key) > 32:
            key = _keys.kbytes(key)
        bt = self._bt
        if bt is None:
            bt = self._revive()
        d = codec.fetch(bt, key)
        if type(d) is dict:
            return d
        if d is None:
            return default
        if d is False:  # a read or decode error: again, reporting it
            d = self._raw(key)
            if d is None:
                return default
        return self._value(d, default)

    def _value(self, raw, default):
        # get() of a stored value with a header: its document, or default if
        # it has expired (an empty value: codec.doc's CorruptDBError; no try
        # here, whose handler would put this frame on the heap)
        if raw:
            e = codec.expiry(raw)
            if e is not None and e <= self._now():
                return default
        return codec.doc(raw, self.filename)

    def _expiry(self, raw):
        try:
            return codec.expiry(raw)
        except CorruptDBError as e:
            raise self._named(e)

    def __contains__(self, key):
        raw = self._raw(_keys.stored(key))
        if raw is None:
            return False
        e = self._expiry(raw)
        return e is None or e > self._now()

    def __len__(self):
        bt = self._check_open()
        try:
            return self._count - _ttl.count_expired(bt, self._now())
        except OSError as e:
            raise self._damaged(e)

    def _range(self, start, end, prefix):
        s = None if start is None else _keys.kbytes(start)
        e = None if end is None else _keys.kbytes(end)
        if prefix is not None and (prefix or type(prefix) not in (str, bytes, bytearray)):
            # (no == between str and bytes: MicroPython warns about it)
            p = _keys.kbytes(prefix)
            if s is None or s < p:
                s = p
            p += b"\xff"  # no UTF-8 key contains 0xFF
            if e is None or e > p:
                e = p
        return s, e

    def _iter(self, start, end, prefix, what):
        self._check_open()
        s, e = self._range(start, end, prefix)
        return self._gen_iter(s, e, what, self._now())

    def _gen_iter(self, s, e, what, now):
        try:
            for kb, raw in self._records(s, e):
                x = codec.expiry(raw)
                if x is not None and x <= now:
                    continue
                if what == 0:
                    yield codec.key(kb)
                elif what == 1:
                    yield codec.key(kb), codec.doc(raw)
                else:
                    yield codec.doc(raw)
        except CorruptDBError as e:
            raise self._named(e)

    def keys(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 0)

    def items(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 1)

    def values(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 2)

    def records(self, start=None, end=None, prefix=None):
        # Iterator of (key, doc, tags list, expiry or None) of the live records
        # in key order, ranges as keys(); for export (scripts/mtdb.py).
        self._check_open()
        s, e = self._range(start, end, prefix)
        return self._gen_records(s, e, self._now())

    def _gen_records(self, s, e, now):
        try:
            for kb, raw in self._records(s, e):
                h = codec.header(raw)
                if h[0] is None or h[0] > now:
                    yield codec.key(kb), codec.doc(raw), list(h[1]), h[0]
        except CorruptDBError as ex:
            raise self._named(ex)

    def __iter__(self):
        return self._iter(None, None, None, 0)

    def stats(self):
        bt = self._check_open()
        st = self._st
        exp = _ttl.count_expired(bt, self._now())
        d = st.usage()  # live_bytes, dead_bytes, free_pages
        size = st.size()
        d.update({
            "records": self._count - exp,
            "expired_pending": exp,
            "in_memory": st.mem,
            "bytes_used": size,
            "file_size": 0 if st.mem else size,
            "budget": st.budget,
            "flushes": st.flushes,
            "writes": self._writes,
            "unflushed_writes": 0 if st.mem else self._dirty,
            "sweeper": None if self._aio is None else self._aio.stats(),
            "file_format": self.file_format,
        })
        return d

    # --- queries (query engine is its own module, imported on first use) ---
    def query(self, q):
        self._check_open()
        from . import query

        return query.query(self, q)

    def find(self, q):
        self._check_open()
        from . import query

        return query.find(self, q)

    def explain(self, q):
        self._check_open()
        from . import query

        return query.explain(self, q)

    # --- indexes and compaction (index.py, compact.py) -----------------------
    # (Index definitions are not records: on format 2 their commit is a
    # checkpoint. A failure inside btree on flash goes back to the last commit.)
    def _ixcall(self, fn, arg):
        self._ckpt = self._logs
        try:
            return fn(self, self._ix, arg) if arg is not _NO else fn(self, self._ix)
        except BaseException as e:
            if self._rolled:
                self._rolled = False
            else:
                self._settle(e)
            raise self._named(e)

    def create_index(self, field):
        return self._ixcall(_index.create_index, field)

    def drop_index(self, field):
        return self._ixcall(_index.drop_index, field)

    def indexes(self):
        self._check_open()
        return sorted(self._ix.defs)

    def reindex(self):
        return self._ixcall(_index.reindex, _NO)

    def compact(self):
        from . import compact

        try:
            return compact.compact(self)
        except BaseException as e:
            if self._bt is not None:
                self._settle(e)
            raise self._told(e)

    # --- context managers ---------------------------------------------------
    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def __aenter__(self):
        self._check_open()
        if self.ttl_check_interval:
            from . import aio

            aio.start_sweeper(self)
        return self

    async def __aexit__(self, *exc):
        await self.aclose()
        return False

    # --- asyncio API (see aio.py) -------------------------------------------
    async def aput(self, *args, **kw):
        from . import aio

        return await aio.call(self, self.put, args, kw)

    async def aget(self, key, default=None):
        return self.get(key, default)

    async def adelete(self, key=None, purge=False):
        from . import aio

        return await aio.call(self, self.delete, (key, purge), {})

    async def aput_batch(self, items, ttls=None):
        from . import aio

        self._check_open()
        return await aio.run(self, self._put_batch_steps(items, ttls))

    async def adelete_batch(self, keys):
        from . import aio

        self._check_open()
        return await aio.run(self, self._delete_batch_steps(keys))

    async def aquery(self, q):
        return self.query(q)

    async def acleanup(self):
        from . import aio

        self._check_open()
        return await aio.run(self, self._cleanup_steps())

    async def aflush(self):
        from . import aio

        return await aio.call(self, self.flush, (), {})

    async def aclose(self):
        if self._bt is None:
            return
        from . import aio

        await aio.close(self)
