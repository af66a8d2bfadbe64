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
        self._writes = 0
        self._st = Storage(filename, in_memory, p, self.btree_cachesize, budget)
        self._bt = self._st.bt
        try:
            self._load_meta()
            _index.attach(self)
        except BaseException:
            self._st.close()
            self._bt = None
            raise

    # --- internal API (also used by query.py / index.py) ------------------
    def _check_open(self):
        if self._bt is None:
            raise DBError("database is closed")

    def _wguard(self):
        if self._bt is None:
            raise DBError("database is closed")
        if self._abusy:
            raise DBLock("database busy: an async batch or cleanup is in progress")

    def _now(self):
        # The clock in whole seconds (inf/nan cannot be made an int).
        t = self._clock()
        if type(t) is not int:
            if type(t) is not float or t - t != 0:
                raise ValueError("clock() returned %r, not a finite number of seconds" % (t,))
            t = int(t)
        return t if t > 0 else 0

    def _decode(self, raw):
        return codec.decode(raw)

    def _header(self, raw):
        return codec.header(raw)

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
        if e.args and e.args[0] == 12:
            return MemoryError("btree: out of memory (%r)" % (e,))
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
        if not (-1 <= self._gen.sec < _keys.MAX_SECONDS and 0 <= self._gen.n <= 99999):
            raise CorruptDBError("%s: damaged metadata record" % fn)
        self._mstate = (self._count, self._gen.sec, self._gen.n)

    def _commit(self):
        # The one commit point: persist the record count, then storage.commit().
        self._dirty = 0
        st = self._st
        if st.mem:
            return
        g = self._gen
        ms = self._mstate
        if self._count != ms[0] or g.sec != ms[1] or g.n != ms[2]:
            self._bt[META] = self._meta()
            self._mstate = (self._count, g.sec, g.n)
        st.commit()

    def _after_write(self):
        self._writes += 1
        self._dirty += 1
        af = self._af
        if af and self._dirty >= af:
            self._commit()

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
        except BaseException:
            self._undo(((kb, old),), c0)  # e.g. MemoryError half-way: all or nothing
            raise
        self._after_write()
        return key

    def delete(self, key=None, purge=False):
        if purge is not False and _flag("purge", purge):
            if key is not None:
                raise TypeError("delete(): a key or purge=True, not both")
            self._wguard()
            self._bt = None
            try:
                self._st.purge()
            finally:
                self._bt = self._st.bt
            self._count = 0
            self._gen = _keys.KeyGen()
            self._load_meta()
            _index.attach(self)
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
        except BaseException:
            self._del_undo(((kb, old),), c0)
            raise
        self._after_write()
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
        except BaseException:
            self._undo(undo, c0)
            raise
        self._check_batch(undo, c0)
        if ents:
            self._after_write()
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
        except BaseException:
            self._del_undo(undo, c0)
            raise
        if undo:
            self._after_write()
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
        while True:
            n, done = self._sweep(32)
            total += n
            if done:
                break
        if total:
            self._after_write()
        return total

    def flush(self):
        self._wguard()
        self._commit()

    def close(self):
        if self._bt is None:
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
        except OSError as e:
            raise self._damaged(e)
        if raw is None:
            return default
        e = codec.expiry(raw)
        if e is not None and e <= self._now():
            return default
        return codec.doc(raw)

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
        if prefix is not None and prefix != "" and prefix != b"":
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
        for kb, raw in self._records(s, e):
            x = codec.expiry(raw)
            if x is not None and x <= now:
                continue
            if what == 0:
                yield str(kb, "utf-8")
            elif what == 1:
                yield str(kb, "utf-8"), codec.doc(raw)
            else:
                yield codec.doc(raw)

    def keys(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 0)

    def items(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 1)

    def values(self, start=None, end=None, prefix=None):
        return self._iter(start, end, prefix, 2)

    def __iter__(self):
        return self._iter(None, None, None, 0)

    def stats(self):
        self._check_open()
        st = self._st
        exp = _ttl.count_expired(self._bt, self._now())
        if st.mem:
            self._bt.flush()  # move cached pages into the BytesIO
        size = st.size()
        from .compact import usage

        d = usage(self)  # live_bytes, dead_bytes, free_pages
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
    def create_index(self, field):
        return _index.create_index(self, field)

    def drop_index(self, field):
        return _index.drop_index(self, field)

    def indexes(self):
        return _index.indexes(self)

    def reindex(self):
        return _index.reindex(self)

    def compact(self):
        from . import compact

        return compact.compact(self)

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
