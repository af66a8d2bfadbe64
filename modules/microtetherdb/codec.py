# Record encoding.
#
# A stored value is a small binary header followed by the JSON document:
#   byte 0      flags: bit0 = expiry present, bit1 = tags present
#   [4 bytes]   expiry, unsigned big-endian clock seconds       (if bit0)
#   [1 byte n]  number of tags, then n x (1 byte length + UTF-8) (if bit1)
#   rest        the document as UTF-8 JSON
# Expiry and tags can be read without decoding the JSON.
import json

from .errors import CorruptDBError

F_EXP = 1
F_TAGS = 2
MAX_DEPTH = 32


def _check(v, depth):
    # Containers recurse; scalars are checked inline in the loops (no call per
    # leaf: this runs on every put).
    if depth > MAX_DEPTH:
        raise ValueError("data: nested deeper than %d" % MAX_DEPTH)
    d = isinstance(v, dict)
    for k in v:
        if d:
            if type(k) is not str:
                raise TypeError("data: dict keys must be str, not %s" % type(k).__name__)
            x = v[k]
        else:
            x = k
        t = type(x)
        if t is str or t is int or t is bool or x is None:
            continue
        if t is float:
            if x - x != 0:
                raise ValueError("data: NaN and infinity are not JSON")
        elif t is list or t is tuple or isinstance(x, dict):
            _check(x, depth + 1)
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


def encode(doc, expiry, tagb, max_size):
    if not isinstance(doc, dict):
        raise TypeError("data must be a dict, not %s" % type(doc).__name__)
    _check(doc, 0)
    b = json.dumps(doc).encode()
    if len(b) > max_size:
        raise ValueError(
            "document is %d bytes as JSON, over the limit of %d (max_doc_size)" % (len(b), max_size)
        )
    if expiry is None and tagb is None:
        return b"\x00" + b
    h = bytearray(1)
    if expiry is not None:
        h[0] = F_EXP
        h.extend(expiry.to_bytes(4, "big"))
    if tagb is not None:
        h[0] |= F_TAGS
        h.extend(tagb)
    h.extend(b)
    return bytes(h)


def expiry(raw):
    # Expiry of a stored value (int) or None, without allocating.
    if not raw:
        raise CorruptDBError("damaged record (empty)")
    if raw[0] & F_EXP:
        if len(raw) < 5:
            raise CorruptDBError("damaged record header")
        return (raw[1] << 24) | (raw[2] << 16) | (raw[3] << 8) | raw[4]
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


def header(raw):
    # -> (expiry or None, tags tuple), no JSON decoding. A stored value that
    # is not one of ours raises CorruptDBError (never IndexError & co).
    f = raw[0]
    if f & ~(F_EXP | F_TAGS):
        raise CorruptDBError("damaged record header")
    if f & F_TAGS:
        try:
            return expiry(raw), _tags(raw, 5 if f & F_EXP else 1)[0]
        except (IndexError, ValueError):  # UnicodeError is a ValueError
            raise CorruptDBError("damaged record tags")
    return expiry(raw), ()


def body_offset(raw):
    f = raw[0]
    p = 5 if f & F_EXP else 1
    if f & F_TAGS:
        n = raw[p]
        p += 1
        for _ in range(n):
            p += 1 + raw[p]
    return p


def doc(raw):
    try:
        f = raw[0]
        if f & ~(F_EXP | F_TAGS):
            raise ValueError
        p = 1 if f == 0 else body_offset(raw)
        d = json.loads(memoryview(raw)[p:])
    except (IndexError, ValueError):
        raise CorruptDBError("damaged record document")
    if type(d) is not dict:
        raise CorruptDBError("damaged record document")
    return d


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
    # costs half as much flash).
    out = bytearray()
    for kb in pend:
        raw = pend[kb]
        if len(kb) == 16 and kb[10] == 45 and kb[:10].isdigit() and kb[11:].isdigit() \
                and int(kb[:10]) <= 0xFFFFFFFF:
            out.append(0xFF)
            out.extend(int(kb[:10]).to_bytes(4, "big"))
            out.extend(int(kb[11:]).to_bytes(3, "big"))
        else:
            out.append(len(kb))
            out.extend(kb)
        if raw is None:
            out.append(0)
            continue
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
