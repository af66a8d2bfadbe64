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
from .keys import kb_bytes

PRE = b"\xffi"
DEFS = b"\xffi\x00"
TAGS = "$tags"
_STRMAX = 48
_NONE = b"\x01"
_FALSE = b"\x02"
_TRUE = b"\x03"
_NUM = 0x04
_STR = 0x05


def enc_num(v):
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


def esc(s):
    return esc_b(s.encode())


def esc_b(b):
    # UTF-8 text -> its index form: cut to _STRMAX bytes, 00/01 escaped
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
        return b"\x05" + esc(v) + b"\x00"
    if t is bool:
        return _TRUE if v else _FALSE
    if t is int or t is float:
        return enc_num(v)
    if v is None:
        return _NONE
    return None


def cut(pre, k):
    # index key -> record key
    n = len(pre)
    c = k[n]
    if c == _NUM:
        return k[n + 9:]
    if c == _STR:
        return k[k.index(b"\x00", n + 1) + 1:]
    return k[n + 1:]


class Indexes:
    # The core (db._write_record / db._delete_record) asks it for the index
    # entries a record write or delete changes: changes(kb, old, new) ->
    # (keys to delete, keys to add); kb: the record key as stored (str or
    # bytes), old/new: stored values or None. It asks only when a record has
    # tags or `fields` is not empty (user indexes: every write).
    def __init__(self, defs):
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
                from .paths import getter  # (imported once a field index exists)

                fl.append((p, getter(f)))
        self.fields = fl

    def save(self, db, bt, defs):
        v = json.dumps(defs).encode()
        db._take(len(v) + 16)
        bt[DEFS] = v
        self.defs = defs
        self._load()

    # --- maintenance -------------------------------------------------------
    def _tag_keys(self, raw, kb):
        # The tag index keys of a stored value, made from the tags' bytes in
        # its header (a tag given twice has one entry).
        if raw is None or type(raw) is str:
            return ()
        f = raw[0]
        if f > 3 or not f & codec.F_TAGS:
            return ()
        p = 5 if f & codec.F_EXP else 1
        pre = self.tags + b"\x05"
        out = []
        for _ in range(raw[p]):
            ln = raw[p + 1]
            t = raw[p + 2 : p + 2 + ln]
            if type(t) is not bytes:
                t = bytes(t)  # (a bytearray: a value just encoded)
            if ln > _STRMAX or 0 in t or 1 in t:
                t = esc_b(t)
            k = pre + t + b"\x00" + kb
            if k not in out:
                out.append(k)
            p += 1 + ln
        return out

    def changes(self, kb, old, new):
        kb = kb_bytes(kb)
        dels = []
        adds = []
        if self.tags is not None:
            try:
                ok = self._tag_keys(old, kb)
                nk = self._tag_keys(new, kb)
            except IndexError:  # (a damaged file: tags past the value's end)
                raise codec.CorruptDBError("damaged record header (tags)")
            if ok != nk:
                for k in ok:
                    if k not in nk:
                        dels.append(k)
                for k in nk:
                    if k not in ok:
                        adds.append(k)
        if self.fields:
            od = None if old is None else codec.doc(old)
            nd = None if new is None else codec.doc(new)
            for p, get in self.fields:
                nv = None if nd is None else enc(get(nd))
                ov = None if od is None else enc(get(od))
                if ov != nv:
                    if ov is not None:
                        dels.append(p + ov + kb)
                    if nv is not None:
                        adds.append(p + nv + kb)
        return dels, adds

    # --- building ---------------------------------------------------------
    def build(self, db, bt, field, i):
        # (Re)write the entries of index number i from the records; each
        # entry takes its pages first (db._take: memory mode's budget).
        p = PRE + bytes((i,))
        _drop_range(bt, p)
        n = 0
        if field == TAGS:
            for kb, raw in db._records():
                tg = codec.header(raw)[1]
                for i in range(len(tg)):
                    if tg[i] not in tg[:i]:   # a tag given twice has one entry
                        k = p + enc(tg[i]) + kb
                        db._take(len(k))
                        bt[k] = b""
                        n += 1
            return n
        from .paths import getter

        get = getter(field)
        for kb, raw in db._records():
            v = enc(get(codec.doc(raw)))
            if v is not None:
                k = p + v + kb
                db._take(len(k))
                bt[k] = b""
                n += 1
        return n


def discard(bt, k):
    # delete key k if it is there
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
            try:
                del bt[k]
            except KeyError:
                # listed by a scan, not found by a search: the pages
                # disagree (and the scan would list it for ever)
                from .errors import CorruptDBError
                raise CorruptDBError("damaged index pages")
        if len(ks) < 32:
            return


def _after(p):
    # the smallest key above every key starting with p (p never is all 0xFF)
    n = len(p)
    while p[n - 1] == 0xFF:
        n -= 1
    return p[:n - 1] + bytes((p[n - 1] + 1,))


# --- lifecycle (through the core's helper interface, see db.py) -----------

def attach(db, count):
    # Load the index definitions -> the Indexes object the core keeps; a new
    # database (or one written without index support) gets the tag index.
    bt = db._check_open()
    raw = bt.get(DEFS)
    if raw is None:
        ix = Indexes({})
        if count:
            ix.build(db, bt, TAGS, 1)
        ix.save(db, bt, {TAGS: 1})
    else:
        try:
            defs = json.loads(raw)
        except ValueError:
            from .errors import CorruptDBError
            raise CorruptDBError("%s: damaged index definitions" % db.filename)
        ix = Indexes(defs)
    return ix


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
    from .errors import DBFullError

    mem = isinstance(e, MemoryError) and not isinstance(e, DBFullError)
    _drop_range(bt, p)
    if mem:
        raise MemoryError("index build: out of memory")
    raise e


MAX_INDEXES = 253  # user indexes: ids 2..255, one kept free for reindex()


def _free_id(defs, first):
    used = list(defs.values())
    i = first
    while i in used:
        i += 1
    if i > 255:
        raise ValueError("at most %d indexes" % MAX_INDEXES)
    return i


def create_index(db, ix, field):
    # -> True if created (and built), False if it already existed.
    # The entries are written first, the definition last: an interrupted
    # build leaves no half-built index in use.
    bt = db._wguard()
    _field_ok(field)
    if field in ix.defs:
        return False
    if field != TAGS and len(ix.defs) - (TAGS in ix.defs) >= MAX_INDEXES:
        raise ValueError("at most %d indexes (one-byte index ids); drop one first" % MAX_INDEXES)
    i = _free_id(ix.defs, 2 if field != TAGS else 1)
    p = PRE + bytes((i,))
    try:
        ix.build(db, bt, field, i)
        d = dict(ix.defs)
        d[field] = i
        ix.save(db, bt, d)
    except BaseException as e:
        _failed(e, bt, p)
    db._after_write()
    return True


def drop_index(db, ix, field):
    bt = db._wguard()
    if field not in ix.defs:
        return False
    d = dict(ix.defs)
    p = PRE + bytes((d.pop(field),))
    ix.save(db, bt, d)
    _drop_range(bt, p)
    db._after_write()
    return True


def reindex(db, ix):
    # Rebuild every index from the records -> number of entries written.
    # Each index is rebuilt under a fresh number and switched over with one
    # write of the definitions, so a failure (e.g. MemoryError) leaves the
    # previous index in place.
    bt = db._wguard()
    n = 0
    for f in list(ix.defs):
        old = ix.defs[f]
        i = _free_id(ix.defs, 1)  # any id: the previous one of an earlier field may be free
        try:
            n += ix.build(db, bt, f, i)
            d = dict(ix.defs)
            d[f] = i
            ix.save(db, bt, d)
        except BaseException as e:
            _failed(e, bt, PRE + bytes((i,)))
        _drop_range(bt, PRE + bytes((old,)))
    db._after_write()
    return n
