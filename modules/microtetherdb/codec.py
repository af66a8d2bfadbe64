# Record encoding.
#
# A stored value is the document as UTF-8 JSON, which always starts with
# "{" (0x7B). A record with an expiry or tags puts a small binary header in
# front of it, starting with a flags byte that is never "{":
#   byte 0      flags: bit0 = expiry present, bit1 = tags present (1..3)
#   [4 bytes]   expiry, unsigned big-endian clock seconds       (if bit0)
#   [1 byte n]  number of tags, then n x (1 byte length + UTF-8) (if bit1)
#   rest        the document as UTF-8 JSON
# Expiry and tags can be read without decoding the JSON. Format 1 (before
# database format 2) gave every record a header; flags 0 = neither: still read.
import json
from struct import pack as _pack

from .errors import CorruptDBError

F_EXP = 1
F_TAGS = 2
PLAIN = 0x7B  # "{": a record without a header
_loads = json.loads
_dumps = json.dumps
_SEP = (",", ":")  # compact JSON: no spaces (15-20% smaller records and log entries)


# Builtins as module globals for the hot paths: a global of this module is
# found at once, a builtin only after a miss here (and binding them as
# default arguments instead would make the frames too large, see _check).
_type = type
_str = str
_int = int
_bool = bool
_float = float
_dict = dict
_list = list
_tuple = tuple


MAX_DEPTH = 32  # containers nested deeper are refused (the same on every port)
_lvl = 0  # _check's nesting level (a global: no extra argument in its frame)


def _check(v):
    # Raise for what JSON cannot hold: MicroPython's json.dumps writes
    # invalid JSON for sets, NaN, bytearray and other objects, and silently
    # turns int or bytes dict keys and bytes values into strings. v is a
    # dict, list or tuple; containers recurse (text() turns the recursion
    # limit into ValueError). Runs on every put: scalars are checked inline,
    # and the frame stays within 11 words (locals + stack), which MicroPython
    # keeps on the C stack; a larger one is allocated on the heap at every
    # call (py/objfun.c), slow on a fragmented heap.
    global _lvl
    _lvl += 1
    if _lvl > MAX_DEPTH + 1:
        _deep()
    if _type(v) is not _list and _type(v) is not _tuple:
        for k in v:
            if _type(k) is not _str:
                _bad_key(k)
        v = v.values()
    for x in v:
        t = _type(x)
        if t is _str or t is _int or t is _bool or x is None:
            continue
        if t is _float:
            if x - x != 0:
                _other(x)
        elif t is _dict or t is _list or t is _tuple:
            _check(x)
        else:
            _other(x)
    _lvl -= 1


def _deep():
    raise ValueError("data: nested deeper than %d" % MAX_DEPTH)


def _bad_key(k):
    raise TypeError("data: dict keys must be str, not %s" % type(k).__name__)


def _other(x):
    # a value that is not str, int, bool, None, dict, list or tuple
    t = type(x)
    if t is float:
        if x - x != 0:
            raise ValueError("data: NaN and infinity are not JSON")
    elif isinstance(x, dict):
        _check(x)
    else:
        raise TypeError("data: %s is not JSON-serialisable" % t.__name__)


def tags_bytes(tags):
    # Validate tags (None, one str, or a list/tuple of str) -> header bytes or None.
    if tags is None:
        return None
    if type(tags) is str:
        tags = (tags,)
    elif type(tags) is not list and type(tags) is not tuple:
        raise TypeError("tags must be a str or a list of str")
    if not tags:
        return None
    if len(tags) > 255:
        raise ValueError("tags: at most 255 tags")
    out = bytearray((len(tags),))
    for t in tags:
        if type(t) is not str:
            raise TypeError("tags must be str, not %s" % type(t).__name__)
        b = t.encode()
        if not b or len(b) > 255:
            raise ValueError("tags: each tag must be 1..255 bytes")
        out.append(len(b))
        out.extend(b)
    return out


def text(doc):
    # The document checked and as JSON text (a str).
    if not isinstance(doc, dict):
        raise TypeError("data must be a dict, not %s" % type(doc).__name__)
    global _lvl
    _lvl = 0
    try:
        _check(doc)
    except RuntimeError:  # maximum recursion depth (a small stack)
        raise ValueError("data: nested too deeply")
    return _dumps(doc, separators=_SEP)


def check_size(s, max_size):
    # The JSON text's size in bytes, or ValueError over max_size (the
    # caller skips this when len(s) * 4 <= max_size: 4 bytes per character).
    n = len(s.encode())
    if n > max_size:
        raise ValueError(
            "document is %d bytes as JSON, over the limit of %d (max_doc_size)" % (n, max_size)
        )
    return n


def with_header(s, expiry, tagb):
    # The stored value of a record with an expiry and/or tags.
    if expiry is None:
        h = bytearray((F_TAGS,))
    else:
        h = bytearray((F_EXP if tagb is None else F_EXP | F_TAGS,))
        h.extend(expiry.to_bytes(4, "big"))
    if tagb is not None:
        h.extend(tagb)
    h.extend(s)
    return h


def encode(doc, expiry, tagb, max_size):
    # -> the stored value: the JSON text itself (a str: btree stores its
    # UTF-8 bytes) when there is no expiry and no tags, else header + JSON.
    s = text(doc)
    if len(s) > max_size >> 2:
        check_size(s, max_size)
    if expiry is None and tagb is None:
        return s
    return with_header(s, expiry, tagb)


def as_bytes(raw):
    # A stored value as the bytes btree holds (a just-encoded value is a str
    # or a bytearray; len() of a str counts characters, not bytes).
    t = type(raw)
    if t is bytes:
        return raw
    if t is str:
        return raw.encode()
    return bytes(raw)


def flags(raw):
    # Header flags of a stored value (0: no header), without allocating.
    if type(raw) is str:
        return 0
    f = raw[0]
    return f if f < 4 else 0


def expiry(raw):
    # Expiry of a stored value (int) or None.
    if type(raw) is str:
        return None
    if not raw:  # (a damaged file: a stored value is never empty)
        raise _bad(raw)
    f = raw[0]
    if f & F_EXP and f < 4:
        return int.from_bytes(raw[1:5], "big")  # (one big int on 32-bit ports, not four)
    return None


def _tags(raw, p):
    n = raw[p]
    p += 1
    lst = []
    for _ in range(n):
        ln = raw[p]
        lst.append(str(raw[p + 1 : p + 1 + ln], "utf-8"))
        p += 1 + ln
    if p > len(raw):
        raise IndexError
    return tuple(lst), p


def _bad(raw):
    return CorruptDBError("bad record header (%r...)" % (raw[:8],))


def header(raw):
    # -> (expiry or None, tags tuple), no JSON decoding.
    if type(raw) is str:
        return None, ()
    if not raw:
        raise _bad(raw)
    f = raw[0]
    if f == PLAIN:
        return None, ()
    if f > 3:
        raise _bad(raw)
    if f & F_TAGS:
        try:
            return expiry(raw), _tags(raw, 5 if f & F_EXP else 1)[0]
        except (IndexError, ValueError):
            raise _bad(raw)
    return expiry(raw), ()


def body_offset(raw):
    # Offset of the JSON in a stored value (IndexError/ValueError if damaged).
    f = raw[0]
    if f == PLAIN:
        return 0
    if f > 3:
        raise ValueError
    p = 5 if f & F_EXP else 1
    if f & F_TAGS:
        n = raw[p]
        p += 1
        for _ in range(n):
            p += 1 + raw[p]
    if p >= len(raw):
        raise IndexError
    return p


def doc(raw, where=None):
    # The document of a stored value (CorruptDBError if it does not decode
    # to a dict; where: the database file it names). On the read paths: its
    # frame stays within 11 words (no other local; see _check).
    try:
        if type(raw) is str or raw[0] == PLAIN:
            return _loads(raw)  # (starts with "{": a dict, or ValueError)
        return _hdr_doc(raw)
    except ValueError:
        pass
    except IndexError:  # (an empty value; two clauses: a smaller frame than a tuple)
        pass
    _bad_doc(raw, where)


def _hdr_doc(raw):
    # the document after a header (ValueError if it is not a dict)
    try:
        d = _loads(memoryview(raw)[body_offset(raw):])
    except IndexError:  # a damaged header
        raise ValueError
    if type(d) is not dict:
        raise ValueError
    return d


def _bad_doc(raw, where):
    raise CorruptDBError("%s%sbad record (%r...)" % (where or "", ": " if where else "", raw[:8]))


def fetch(bt, kb):
    # get()'s one call below the database: the document (a dict) of a plain
    # record, None if there is none, the stored value of a record with a
    # header (bytes), or False if reading or decoding failed (the caller's
    # slow path reads again and reports it). One try for both steps.
    # (kb reused for the value and `except Exception`: 11 words of frame)
    try:
        kb = bt.get(kb)
        if kb is None or kb[0] != PLAIN:
            return kb
        return _loads(kb)  # (starts with "{": a dict, or ValueError)
    except Exception:
        return False


def key(kb):
    # A stored key as str (a damaged one raises CorruptDBError).
    try:
        return str(kb, "utf-8")
    except ValueError:
        raise CorruptDBError("damaged record key")


def decode(raw):
    # -> (expiry or None, tags tuple, doc dict)
    e, t = header(raw)
    return e, t, doc(raw)


# --- commit records (format 2's log: chunkstore.py) ---------------------------
# The records a commit makes durable, as bytes: for each key, u8 key length,
# the key, then a varint of (value length + 1) and the stored value, or 0 for
# a deletion. Replaying a commit record sets each key to its value again:
# applying it twice changes nothing.

def log_record(pend):
    # pend: dict key bytes -> stored value, or None for a deletion. A
    # generated key ("SSSSSSSSSS-NNNNN") is written as 0xFF, u32 seconds,
    # u24 counter: 8 bytes instead of 17 (a record that fits one log slot
    # costs half as much flash). The keys of one call mostly share their
    # seconds: those are converted once (a batch of deletes: ~10 instead of
    # ~15 µs per key on the qemu board).
    out = bytearray()
    pre = preb = None  # the last generated key's seconds digits, as 4 bytes
    for kb in pend:
        raw = pend[kb]
        if type(kb) is str:
            kb = kb.encode()
        if len(kb) == 16 and kb[10] == 45:
            s = kb[:10]
            if s != pre:
                pre = preb = None
                if s.isdigit() and int(s) <= 0xFFFFFFFF:
                    pre = s
                    preb = _pack(">I", int(s))
            s = kb[11:]
            if preb is not None and s.isdigit():
                s = int(s)
                out.append(0xFF)
                out.extend(preb)
                out.extend(_pack(">BH", s >> 16, s & 0xFFFF))
                kb = None
        if kb is not None:
            out.append(len(kb))
            out.extend(kb)
        if raw is None:
            out.append(0)
            continue
        raw = as_bytes(raw)  # (a just-encoded value may be a str)
        n = len(raw) + 1
        while n > 0x7F:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        out.append(n)
        out.extend(raw)
    return out


def log_entries(rec):
    # -> list of (key bytes, stored value or None); CorruptDBError if damaged
    out = []
    p = 0
    end = len(rec)
    try:
        while p < end:
            k = rec[p]
            if k == 0xFF:  # a generated key, see log_record
                kb = b"%010d-%05d" % (int.from_bytes(rec[p + 1:p + 5], "big"),
                                      int.from_bytes(rec[p + 5:p + 8], "big"))
                p += 8
                if p > end:
                    raise IndexError
            else:
                kb = bytes(rec[p + 1:p + 1 + k])
                p += 1 + k
            n = 0
            sh = 0
            while True:
                c = rec[p]
                p += 1
                n |= (c & 0x7F) << sh
                sh += 7
                if not c & 0x80:
                    break
            if n == 0:
                out.append((kb, None))
                continue
            n -= 1
            if p + n > end or not k or not kb:
                raise IndexError
            out.append((kb, bytes(rec[p:p + n])))
            p += n
    except IndexError:
        raise CorruptDBError("damaged commit record")
    return out
