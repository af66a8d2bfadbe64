# MicroTetherDB: the public API class.
import gc

from . import codec
from . import index as _index
from . import keys as _keys
from . import ttl as _ttl
from .errors import CorruptDBError, DBError, DBLock
from .storage import Storage

META = b"\xffm"  # meta record: b"MTDB" + format version byte + b":count:gen_sec:gen_n"
FORMAT = 1
_END = b"\xff"  # all user keys sort below this; internal keys start with it
_CHUNK = 16
_NO = object()


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
    if v is True or v is False:
        return v
    if type(v) is int and (v == 0 or v == 1):
        return v == 1
    raise ValueError("%s must be True or False, not %r" % (name, v))


class MicroTetherDB:
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

        budget = None
        if in_memory:
            gc.collect()
            budget = int((gc.mem_free() + gc.mem_alloc()) * self.ram_percentage / 100)
        self._gen = _keys.KeyGen()
        self._ix = None  # secondary-index hook object (query engine), see _write_record
        self._ixs = None  # index.Indexes (definitions), also when _ix is None
        self._alock = None  # asyncio.Lock, created by the async API
        self._abusy = False  # True while an async batch/cleanup is mid-way
        self._task = None  # TTL sweeper task
        self._dirty = 0  # write calls since the last commit
        self._rolled = False  # the store went back to its last commit
        self._cfail = False  # a commit failed with the pages in RAM intact
        self._dirty_lost = 0
        self._writes = 0
        self._pend = {}  # key -> value or None: what the next commit logs (format 2)
        self._ckpt = False  # the next commit must be a checkpoint (index changes)
        if file_format is not None and file_format != 1 and file_format != 2:
            raise ValueError("file_format must be 1 or 2, not %r" % (file_format,))
        if in_memory:
            self._st = Storage(filename, in_memory, p, self.btree_cachesize, budget)
        else:
            self._st = _open_file(filename, p, self.btree_cachesize, file_format)
        self.file_format = 0 if in_memory else (2 if self._st.logs else 1)
        self._logs = self._st.logs
        self._bt = self._st.bt
        try:
            self._load_meta()
            _index.attach(self)
            self._replay()
            if self._logs and self._st.new:
                self._st.checkpoint()  # a new database: its first chunk
        except BaseException as e:
            if isinstance(e, OSError):
                e = self._damaged(e)  # (a damaged page: CorruptDBError)
            self._st.abandon()  # nothing of a failed open is committed
            self._bt = None
            raise e

    # --- internal API (also used by query.py / index.py) ------------------
    def _check_open(self):
        if self._bt is None:
            self._revive()

    def _wguard(self):
        if self._bt is None:
            self._revive()
        if self._abusy:
            raise DBLock("database busy: an async batch or cleanup is in progress")

    def _now(self):
        t = int(self._clock())
        return t if t > 0 else 0

    def _decode(self, raw):
        try:
            return codec.decode(raw)
        except CorruptDBError as e:
            raise self._named(e)

    def _header(self, raw):
        try:
            return codec.header(raw)
        except CorruptDBError as e:
            raise self._named(e)

    def _key(self, kb):
        try:
            return codec.key(kb)
        except CorruptDBError as e:
            raise self._named(e)

    def _named(self, e):
        # A CorruptDBError of the record layer, with this database's file.
        fn = self.filename
        if isinstance(e, CorruptDBError) and fn not in str(e):
            return CorruptDBError("%s: %s" % (fn, e))
        return e

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
                return
            buf = []
            try:
                for kv in bt.items(start, end):
                    if kv[0] == skip:
                        continue
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

    def _write_record(self, kb, old, new):
        # The single path of every record write (old: previous raw or None).
        bt = self._bt
        ne = codec.expiry(new)
        oe = None
        if old is not None:
            oe = codec.expiry(old)
            if oe is not None and oe != ne:
                try:
                    del bt[_ttl.ikey(oe, kb)]
                except KeyError:
                    pass
        bt[kb] = new
        if old is None:
            self._count += 1
        if ne is not None and ne != oe:
            bt[_ttl.ikey(ne, kb)] = b""
        ix = self._ix
        if ix is not None:
            ix.on_write(kb, old, new)
        if self._logs:
            self._pend[kb] = new

    def _delete_record(self, kb, old):
        # The single path of every record delete (old: its current raw value).
        bt = self._bt
        oe = codec.expiry(old)
        if oe is not None:
            try:
                del bt[_ttl.ikey(oe, kb)]
            except KeyError:
                pass
        del bt[kb]
        self._count -= 1
        ix = self._ix
        if ix is not None:
            ix.on_delete(kb, old)
        if self._logs:
            self._pend[kb] = None

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
            if not self._logs:  # (format 2: checkpointed with the index definitions)
                self._st.commit()
                self._st.reopen()  # new file: see Storage.reopen
                self._bt = self._st.bt
            return
        if len(m) < 7 or m[:4] != b"MTDB" or m[5] != 0x3A:
            raise CorruptDBError("%s: damaged metadata record" % fn)
        if m[4] != FORMAT:
            raise CorruptDBError("%s: database format %d is not supported (this is %d)" % (fn, m[4], FORMAT))
        try:
            f = m[6:].split(b":")
            self._count = int(f[0])
            self._gen.sec = int(f[1])
            self._gen.n = int(f[2])
        except (ValueError, IndexError):
            raise CorruptDBError("%s: damaged metadata record" % fn)
        self._mstate = (self._count, self._gen.sec, self._gen.n)

    def _commit(self, in_call=False):
        # The one commit point: persist the record count, then storage.commit().
        # in_call: the commit ends a write call (autoflush), which is undone
        # if the commit fails.
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
            raise

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
        self._st.rolled_back = False
        bt = self._st.bt
        self._bt = bt
        self._gen = _keys.KeyGen()
        self._dirty = 0
        self._pend = {}
        self._ckpt = False
        try:
            self._load_meta()
            _index.attach(self)
            self._replay()
        except BaseException:
            self._bt = None
            raise

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
                    if len(kb) == 16 and kb[10] == 45 and kb[:10].isdigit() and kb[11:].isdigit():
                        # a generated key: the generator goes on after it
                        s = int(kb[:10])
                        n = int(kb[11:])
                        if s > g.sec or (s == g.sec and n > g.n):
                            g.sec = s
                            g.n = n
            bt[META] = self._meta()  # count and generator as replayed
            self._mstate = (self._count, g.sec, g.n)
        finally:
            self._logs = st.logs

    def _revive(self):
        # Called with self._bt None: finish a rollback that ran out of
        # memory, else the database is closed.
        st = self._st
        if not getattr(st, "pending", False) or st.closed:
            raise DBError("database is closed")
        try:
            st.revive()
            self._reload()
        except BaseException:
            self._bt = None
            st.pending = True
            raise

    def _after_write(self):
        # End of every write call: commit as autoflush says. If the commit
        # fails, the caller undoes the call (all or nothing) and re-raises.
        self._writes += 1
        self._dirty += 1
        af = self._af
        if af and self._dirty >= af:
            try:
                self._commit(True)
            except BaseException:
                self._writes -= 1
                raise

    def _live(self, raw, now):
        e = codec.expiry(raw)
        return e is None or e > now

    def _reserve(self, kb, raw):
        st = self._st
        if st.budget is not None:
            n = st.pages_for(len(kb) + len(raw))
            if raw[0] & codec.F_EXP:
                n += st.pages_for(0)
            st.reserve(n)

    def _newkey(self, now, taken=None):
        bt = self._bt
        while True:
            k = self._gen.next(now)
            kb = k.encode()
            if bt.get(kb) is None and (taken is None or kb not in taken):
                return k, kb

    # --- writes -------------------------------------------------------------
    def put(self, *args, ttl=None, tags=None, key=None, data=None):
        # put(data, ttl=None, tags=None, key=None) or put(key, data, ttl=None, tags=None)
        n = len(args)
        if data is None:
            if not n:
                raise TypeError("put() needs data")
            a0 = args[0]
            if n == 1 or isinstance(a0, dict):
                data = a0
                rest = args[1:]
                if len(rest) > 3:
                    raise TypeError("put(data, ttl, tags, key): too many arguments")
                if len(rest) > 2:
                    key = rest[2]
            else:
                if key is not None:
                    raise TypeError("put(): key given twice")
                key = a0
                data = args[1]
                rest = args[2:]
                if len(rest) > 2:
                    raise TypeError("put(key, data, ttl, tags): too many arguments")
        else:
            if n > 1:
                raise TypeError("put(): data given twice")
            if n:
                key = args[0]
            rest = ()
        if rest:
            ttl = rest[0]
            if len(rest) > 1:
                tags = rest[1]
        self._wguard()
        now = self._now()
        raw = codec.encode(data, _ttl.expiry_for(ttl, now), codec.tags_bytes(tags), self.max_doc_size)
        if key is None:
            key, kb = self._newkey(now)
            old = None  # _newkey looked: the key is free
        else:
            kb = _keys.kbytes(key)
            if type(key) is not str:
                key = str(kb, "utf-8")
            old = self._bt.get(kb)
        self._reserve(kb, raw)
        c0 = self._count
        try:
            self._write_record(kb, old, raw)
            self._after_write()
        except BaseException as e:
            self._abort(((kb, old),), c0, False, e)  # e.g. MemoryError half-way: all or nothing
            raise self._named(e)
        return key

    def delete(self, key=None, purge=False):
        if purge:
            self._wguard()
            self._bt = None
            try:
                self._st.purge()
            finally:
                self._bt = self._st.bt
            self._count = 0
            self._gen = _keys.KeyGen()
            self._pend = {}
            self._ckpt = False
            self._load_meta()
            _index.attach(self)
            if self._logs:
                self._st.checkpoint()
            self._dirty = 0
            return 1
        if key is None:
            raise TypeError("delete() needs a key (or purge=True)")
        self._wguard()
        kb = _keys.kbytes(key)
        old = self._bt.get(kb)
        if old is None:
            return 0
        live = self._live(old, self._now())
        c0 = self._count
        try:
            self._delete_record(kb, old)
            self._after_write()
        except BaseException as e:
            self._abort(((kb, old),), c0, True, e)
            raise self._named(e)
        return 1 if live else 0

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
        taken = None
        for i in range(n):
            it = items[i]
            try:
                if isinstance(it, dict):
                    kb = None
                    d = it
                elif (type(it) is tuple or type(it) is list) and len(it) == 2:
                    kb = _keys.kbytes(it[0])
                    d = it[1]
                    if taken is None:
                        taken = set()
                    taken.add(kb)
                else:
                    raise TypeError("expected a dict or a (key, dict) pair")
                e = single if tl is None else _ttl.expiry_for(tl[i], now)
                ents.append([kb, codec.encode(d, e, None, mx)])
            except TypeError as ex:
                raise TypeError("items[%d]: %s" % (i, ex))
            except ValueError as ex:
                raise ValueError("items[%d]: %s" % (i, ex))
        out = []
        for ent in ents:
            if ent[0] is None:
                k, ent[0] = self._newkey(now, taken)
            else:
                k = str(ent[0], "utf-8")
            out.append(k)
        return ents, out

    def _reserve_batch(self, ents):
        st = self._st
        if st.budget is not None:
            sizes = []
            for kb, raw in ents:
                sizes.append(len(kb) + len(raw))
                if raw[0] & codec.F_EXP:
                    sizes.append(len(kb) + 6)
            st.reserve(st.pages_for_batch(sizes))

    def _check_batch(self, undo, count):
        # In-memory budget: a batch that went over it after all is undone.
        st = self._st
        if not st.check():
            self._undo(undo, count)
            st.check()
            st.full()

    def _apply(self, ents, i, j, undo):
        bt = self._bt
        for kb, raw in ents[i:j]:
            old = bt.get(kb)
            undo.append((kb, old))
            self._write_record(kb, old, raw)

    def _undo(self, undo, count):
        # Put back what a failed batch changed (newest first).
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
        self._count = count

    def _abort(self, undo, count, deletes=False, e=None):
        # A write call failed (before or at its commit): undo it, unless the
        # store went back to its last commit (then there is nothing to undo).
        if self._rolled:
            self._rolled = False
        elif self._cfail:
            self._cfail = False  # the commit failed, the pages in RAM are sound
            self._undo_call(undo, count, deletes)
        elif self._untrusted(e):
            self._settle(e)  # a failure inside btree: its pages are untrusted
        else:
            self._undo_call(undo, count, deletes)

    def _untrusted(self, e):
        # After a write call failed with e: can btree's pages be trusted? Not
        # if the stream under btree failed, nor (file mode) if btree itself
        # returned an error (e.g. its malloc failed half-way through a split).
        st = self._st
        return st.suspect() or (not st.mem and isinstance(e, OSError))

    def _undo_call(self, undo, count, deletes):
        try:
            if deletes:
                self._del_undo(undo, count)
            else:
                self._undo(undo, count)
        except BaseException:
            # the undo itself failed (a damaged record, no memory): the file
            # is still as of the last commit
            if self._st.mem:
                raise
            self._rollback()
            self._rolled = False

    def _fix_idx(self, kb, raw):
        # After an interrupted write: make sure raw's expiry index entry exists.
        e = codec.expiry(raw)
        if e is not None:
            self._bt[_ttl.ikey(e, kb)] = b""

    def put_batch(self, items, ttls=None):
        self._wguard()
        ents, out = self._prep_batch(items, ttls)
        self._reserve_batch(ents)
        undo = []
        c0 = self._count
        try:
            self._apply(ents, 0, len(ents), undo)
        except BaseException as e:
            self._abort(undo, c0, False, e)
            raise self._named(e)
        self._check_batch(undo, c0)
        if ents:
            try:
                self._after_write()
            except BaseException as e:
                self._abort(undo, c0, False, e)
                raise
        return out

    def _del_keys(self, keys):
        if type(keys) is str or type(keys) is bytes or type(keys) is bytearray:
            keys = (keys,)
        return [_keys.kbytes(k) for k in keys]

    def _del_apply(self, kbs, i, j, undo, now):
        bt = self._bt
        n = 0
        for kb in kbs[i:j]:
            old = bt.get(kb)
            if old is None:
                continue
            if self._live(old, now):
                n += 1
            undo.append((kb, old))
            self._delete_record(kb, old)
        return n

    def _del_undo(self, undo, count):
        bt = self._bt
        for kb, old in reversed(undo):
            if old is not None:
                cur = bt.get(kb)
                if cur != old:
                    self._write_record(kb, cur, old)
                self._fix_idx(kb, old)
        self._count = count

    def delete_batch(self, keys):
        self._wguard()
        kbs = self._del_keys(keys)
        undo = []
        c0 = self._count
        try:
            n = self._del_apply(kbs, 0, len(kbs), undo, self._now())
            if undo:
                self._after_write()
        except BaseException as e:
            self._abort(undo, c0, True, e)
            raise self._named(e)
        return n

    def _sweep(self, limit):
        # Remove up to `limit` expired records -> (removed, finished).
        bt = self._bt
        iks = _ttl.expired_keys(bt, self._now(), limit)
        n = 0
        for ik in iks:
            kb = ik[6:]
            raw = bt.get(kb)
            if raw is not None and codec.expiry(raw) == int.from_bytes(ik[2:6], "big"):
                self._delete_record(kb, raw)
                n += 1
            else:
                del bt[ik]  # stale index entry
        return n, len(iks) < limit

    def cleanup(self):
        self._wguard()
        total = 0
        try:
            while True:
                n, done = self._sweep(32)
                total += n
                if done:
                    break
            if total:
                self._after_write()
        except BaseException as e:
            # removing expired records is invisible: what was removed stays
            # removed, unless the failure was inside btree
            if self._rolled:
                self._rolled = False
            else:
                self._settle(e)
            raise self._named(e)
        return total

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
        t = self._task
        self._task = None
        if t is not None:
            t.cancel()
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
    def get(self, key, default=None):
        self._check_open()
        kb = _keys.kbytes(key)
        try:
            raw = self._bt.get(kb)
            if raw is None:
                return default
            x = codec.expiry(raw)
            if x is not None and x <= self._now():
                return default
            return codec.doc(raw)
        except OSError as e:
            raise self._damaged(e)
        except CorruptDBError as e:
            raise self._named(e)

    def __contains__(self, key):
        self._check_open()
        raw = self._bt.get(_keys.kbytes(key))
        return raw is not None and self._live(raw, self._now())

    def __len__(self):
        self._check_open()
        try:
            return self._count - _ttl.count_expired(self._bt, self._now())
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
        now = self._now()
        return ((str(kb, "utf-8"), codec.doc(raw), list(h[1]), h[0])
                for kb, raw in self._records(s, e)
                for h in (codec.header(raw),)
                if h[0] is None or h[0] > now)

    def __iter__(self):
        return self._iter(None, None, None, 0)

    def stats(self):
        self._check_open()
        st = self._st
        exp = _ttl.count_expired(self._bt, self._now())
        if st.mem:
            self._bt.flush()  # move cached pages into the BytesIO
        size = st.size()
        d = st.usage()  # live_bytes, dead_bytes, free_pages
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
    def _settle(self, e=None):
        # After a write call failed: if the failure was inside btree (see
        # _untrusted), btree's pages cannot be trusted: back to the last commit.
        if self._cfail:
            self._cfail = False  # a commit failed: nothing to roll back
        elif self._untrusted(e):
            self._rollback()
            self._rolled = False

    def create_index(self, field):
        self._ckpt = self._logs
        try:
            return _index.create_index(self, field)
        except BaseException as e:
            self._settle(e)
            raise self._named(e)

    def drop_index(self, field):
        self._ckpt = self._logs
        try:
            return _index.drop_index(self, field)
        except BaseException as e:
            self._settle(e)
            raise self._named(e)

    def indexes(self):
        return _index.indexes(self)

    def reindex(self):
        self._ckpt = self._logs
        try:
            return _index.reindex(self)
        except BaseException as e:
            self._settle(e)
            raise self._named(e)

    def compact(self):
        from . import compact

        try:
            return compact.compact(self)
        except BaseException as e:
            if self._bt is not None:
                self._settle(e)
            raise

    # --- context managers ---------------------------------------------------
    def __enter__(self):
        self._check_open()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def __aenter__(self):
        self._check_open()
        if self.ttl_check_interval and self._task is None:
            from . import aio

            self._task = aio.start_sweeper(self)
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

        return await aio.put_batch(self, items, ttls)

    async def adelete_batch(self, keys):
        from . import aio

        return await aio.delete_batch(self, keys)

    async def aquery(self, q):
        return self.query(q)

    async def acleanup(self):
        from . import aio

        return await aio.cleanup(self)

    async def aflush(self):
        from . import aio

        return await aio.call(self, self.flush, (), {})

    async def aclose(self):
        if self._bt is None:
            return
        from . import aio

        await aio.close(self)
