# Secondary indexes, kept in the same btree as the records.
#
#   b"\xffi\x00"                 definitions: JSON {"field": id, ...}
#   b"\xffi" + id + enc(v) + key  one entry per indexed record, empty value
#
# id 1 is the built-in tag index ("$tags": one entry per tag of a record);
# user indexes get ids 2..255.  enc(v) sorts like the values it encodes and is
# prefix-free, so a value's entries form one contiguous key range:
#   None 01 | False 02 | True 03 | number 04 + 8 bytes | str 05 + text + 00
# Numbers are IEEE doubles made byte-sortable (int and float of equal value
# share an entry); text is UTF-8 cut to _STRMAX bytes, with 00/01 escaped.
# Lists and dicts are not indexed.  Because cut text and big ints may share
# an entry, every candidate is re-checked against the whole query.
import json
import struct

from . import codec

PRE = b"\xffi"
DEFS = b"\xffi\x00"
TAGS = "$tags"
_STRMAX = 48
_NONE = b"\x01"
_FALSE = b"\x02"
_TRUE = b"\x03"
_NUM = 0x04
_STR = 0x05


def _enc_num(v):
    try:
        f = float(v)
    except OverflowError:
        # float("1e308"), not a literal: a 1e308 literal cannot be frozen for
        # single-precision boards (mpy-tool fails); there it is inf.
        f = float("1e308") if v > 0 else -float("1e308")
    if f == 0:
        f = 0.0  # -0.0 and 0.0 are one value
    b = bytearray(struct.pack(">d", f))
    if b[0] & 0x80:
        for i in range(8):
            b[i] ^= 0xFF
    else:
        b[0] |= 0x80
    return b"\x04" + b


def _esc(s):
    b = s.encode()
    if len(b) > _STRMAX:
        b = b[:_STRMAX]
    if b"\x01" in b:
        b = b.replace(b"\x01", b"\x01\x02")
    if b"\x00" in b:
        b = b.replace(b"\x00", b"\x01\x01")
    return b


def enc(v):
    # Encoded value, or None when v is not indexable (missing, list, dict).
    t = type(v)
    if t is str:
        return b"\x05" + _esc(v) + b"\x00"
    if t is bool:
        return _TRUE if v else _FALSE
    if t is int or t is float:
        return _enc_num(v)
    if v is None:
        return _NONE
    return None


def _cut(pre, k):
    # index key -> record key
    n = len(pre)
    c = k[n]
    if c == _NUM:
        return k[n + 9:]
    if c == _STR:
        return k[k.index(b"\x00", n + 1) + 1:]
    return k[n + 1:]


class Indexes:
    # db._ix: the hook object the core calls on every record write/delete.
    def __init__(self, db, defs):
        self.db = db
        self.defs = defs          # field -> id
        self._load()

    def _load(self):
        self.tags = None
        fl = []
        for f in self.defs:
            p = PRE + bytes((self.defs[f],))
            if f == TAGS:
                self.tags = p
            else:
                from .query import _getter
                fl.append((p, _getter(f)))
        self.fields = fl

    def save(self, defs):
        self.db._bt[DEFS] = json.dumps(defs).encode()
        self.defs = defs
        self._load()

    # --- maintenance (called by db._write_record / db._delete_record) -----
    def on_write(self, kb, old, new):
        bt = self.db._bt
        tp = self.tags
        if tp is not None:
            ot = () if old is None else codec.header(old)[1]
            nt = codec.header(new)[1]
            if ot != nt:
                for t in ot:
                    if t not in nt:
                        _del(bt, tp + enc(t) + kb)
                for t in nt:
                    if t not in ot:
                        bt[tp + enc(t) + kb] = b""
        if self.fields:
            od = None if old is None else codec.doc(old)
            nd = codec.doc(new)
            for p, get in self.fields:
                nv = enc(get(nd))
                ov = None if od is None else enc(get(od))
                if ov != nv:
                    if ov is not None:
                        _del(bt, p + ov + kb)
                    if nv is not None:
                        bt[p + nv + kb] = b""

    def on_delete(self, kb, old):
        bt = self.db._bt
        tp = self.tags
        if tp is not None:
            for t in codec.header(old)[1]:
                _del(bt, tp + enc(t) + kb)
        if self.fields:
            od = codec.doc(old)
            for p, get in self.fields:
                v = enc(get(od))
                if v is not None:
                    _del(bt, p + v + kb)

    # --- building ---------------------------------------------------------
    def build(self, field, i):
        # (Re)write the entries of index number i from the records.
        bt = self.db._bt
        p = PRE + bytes((i,))
        _drop_range(bt, p)
        n = 0
        if field == TAGS:
            for kb, raw in self.db._records():
                tg = codec.header(raw)[1]
                for i in range(len(tg)):
                    if tg[i] not in tg[:i]:   # a tag given twice has one entry
                        bt[p + enc(tg[i]) + kb] = b""
                        n += 1
            return n
        from .query import _getter
        get = _getter(field)
        for kb, raw in self.db._records():
            v = enc(get(codec.doc(raw)))
            if v is not None:
                bt[p + v + kb] = b""
                n += 1
        return n


def _del(bt, k):
    try:
        del bt[k]
    except KeyError:
        pass


def _drop_range(bt, p):
    end = _after(p)
    while True:
        ks = []
        for k in bt.keys(p, end):
            ks.append(k)
            if len(ks) >= 32:
                break
        for k in ks:
            del bt[k]
        if len(ks) < 32:
            return


def _after(p):
    # the smallest key above every key starting with p (p never is all 0xFF)
    n = len(p)
    while p[n - 1] == 0xFF:
        n -= 1
    return p[:n - 1] + bytes((p[n - 1] + 1,))


# --- lifecycle (called by the core on open/purge) -----------------------

def attach(db):
    # Load the index definitions; a new database gets the tag index.
    bt = db._bt
    raw = bt.get(DEFS)
    if raw is None:
        ix = Indexes(db, {})
        if db._count:
            ix.build(TAGS, 1)   # database written without index support
        ix.save({TAGS: 1})
    else:
        try:
            defs = json.loads(raw)
        except ValueError:
            from .errors import CorruptDBError
            raise CorruptDBError("%s: damaged index definitions" % db.filename)
        ix = Indexes(db, defs)
    db._ix = ix if ix.defs else None
    db._ixs = ix


def _field_ok(field):
    if field == TAGS:
        return
    if type(field) is not str or not field or field[0] == "$":
        raise ValueError("index field must be a non-empty path not starting with '$': %r" % (field,))
    for s in field.split("."):
        if not s:
            raise ValueError("index field %r has an empty path segment" % field)


def _failed(e, bt, p):
    # Undo a partial build and re-raise. Out of memory, MicroPython may keep
    # e in its one emergency buffer: raise a fresh MemoryError then.
    mem = isinstance(e, MemoryError)
    _drop_range(bt, p)
    if mem:
        raise MemoryError("index build: out of memory")
    raise e


def create_index(db, field):
    # -> True if created (and built), False if it already existed.
    # The entries are written first, the definition last: an interrupted
    # build leaves no half-built index in use.
    db._wguard()
    _field_ok(field)
    ix = db._ixs
    if field in ix.defs:
        return False
    if field != TAGS and len(ix.defs) - (TAGS in ix.defs) >= MAX_INDEXES:
        raise ValueError("at most %d indexes (one-byte index ids); drop one first" % MAX_INDEXES)
    i = _free_id(ix.defs, 2 if field != TAGS else 1)
    p = PRE + bytes((i,))
    try:
        ix.build(field, i)
        d = dict(ix.defs)
        d[field] = i
        ix.save(d)
    except BaseException as e:
        _failed(e, db._bt, p)
    db._ix = ix
    db._after_write()
    return True


def drop_index(db, field):
    db._wguard()
    ix = db._ixs
    if field not in ix.defs:
        return False
    d = dict(ix.defs)
    p = PRE + bytes((d.pop(field),))
    ix.save(d)
    _drop_range(db._bt, p)
    db._ix = ix if ix.defs else None
    db._after_write()
    return True


def indexes(db):
    db._check_open()
    return sorted(db._ixs.defs)


MAX_INDEXES = 253  # user indexes: ids 2..255, one kept free for reindex()


def _free_id(defs, first):
    used = list(defs.values())
    i = first
    while i in used:
        i += 1
    if i > 255:
        raise ValueError("at most %d indexes" % MAX_INDEXES)
    return i


def reindex(db):
    # Rebuild every index from the records -> number of entries written.
    # Each index is rebuilt under a fresh number and switched over with one
    # write of the definitions, so a failure (e.g. MemoryError) leaves the
    # previous index in place.
    db._wguard()
    ix = db._ixs
    n = 0
    bt = db._bt
    for f in list(ix.defs):
        old = ix.defs[f]
        i = _free_id(ix.defs, 1)  # any id: the previous one of an earlier field may be free
        try:
            n += ix.build(f, i)
            d = dict(ix.defs)
            d[f] = i
            ix.save(d)
        except BaseException as e:
            _failed(e, bt, PRE + bytes((i,)))
        _drop_range(bt, PRE + bytes((old,)))
    db._after_write()
    return n


# --- planner -------------------------------------------------------------
_RANK = {"eq": 0, "all": 1, "in": 2, "any": 2, "range": 3}


def _ranges(p, kind, arg):
    # -> sorted list of (start, end) index-key ranges covering the candidates
    if kind == "eq" or kind == "in" or kind == "all" or kind == "any":
        vals = arg[:1] if kind == "all" else arg
        out = []
        for v in vals:
            e = enc(v)
            if e is not None:
                out.append(p + e)
        out.sort()
        rs = []
        last = None
        for s in out:
            if s != last:
                rs.append((s, s + b"\xff"))
            last = s
        return rs
    t, lo, hi = arg
    if t == "n":
        s = p + (b"\x04" if lo is None else _enc_num(lo))
        e = p + (b"\x05" if hi is None else _enc_num(hi) + b"\xff")
    else:
        s = p + b"\x05" + (b"" if lo is None else _esc(lo))
        e = p + (b"\x06" if hi is None else b"\x05" + _esc(hi) + b"\xff")
    return [(s, e)]


def _cand(ix, h):
    # best usable index for one hint -> (rank, name, prefix, kind, arg) or None
    if h[0] == "tags":
        if ix.tags is None or not h[2]:
            return None
        return (_RANK[h[1]], TAGS, ix.tags, h[1], h[2])
    if h[0] == "or":
        # every branch needs an index: the union of their candidates
        parts = []
        for hs in h[1]:
            b = _best(ix, hs)
            if b is None:
                return None
            parts.append(b)
        return (2 + len(parts) // 4, None, parts, "or", None)
    path = h[1]
    if path not in ix.defs or path == TAGS:
        return None
    return (_RANK[h[2]], path, PRE + bytes((ix.defs[path],)), h[2], h[3])


def _best(ix, hints):
    best = None
    for h in hints:
        c = _cand(ix, h)
        if c is not None and (best is None or c[0] < best[0]):
            best = c
    return best


def _triples(c, out):
    if c[3] == "or":
        for part in c[2]:
            _triples(part, out)
    else:
        for s, e in _ranges(c[2], c[3], c[4]):
            out.append((c[2], s, e))
        if c[1] not in out[0]:
            out[0].append(c[1])
    return out


def choose(db, plan):
    ix = getattr(db, "_ixs", None)
    if ix is None or not plan.hints:
        return None
    best = _best(ix, plan.hints)
    if best is None:
        return None
    rs = _triples(best, [[]])
    names = rs.pop(0)
    info = {"plan": "index", "index": "|".join(names), "ranges": len(rs)}
    return _fetch(db, rs, plan.kstart, plan.kend), info


def _fetch(db, rs, ks, ke):
    # Candidate record keys from the index ranges, then the records in key
    # order (duplicates, e.g. from a union, once).
    bt = db._bt
    pks = []
    try:
        for p, s, e in rs:
            for k in bt.keys(s, e):
                pk = _cut(p, k)
                if (ks is None or pk >= ks) and (ke is None or pk < ke):
                    pks.append(pk)
    except OSError as e:
        raise db._damaged(e)   # CorruptDBError (or MemoryError for ENOMEM)
    pks.sort()   # index order is value order; results go in key order
    last = None
    for pk in pks:
        if pk == last:
            continue
        last = pk
        bt = db._bt  # the caller may close or compact between items
        if bt is None:
            db._check_open()
        try:
            raw = bt.get(pk)
        except OSError as e:
            raise db._damaged(e)
        if raw is not None:
            yield pk, raw
