# Key validation and generation.
#
# User records are stored under the UTF-8 bytes of their key.  Internal keys
# start with the byte 0xFF, which never occurs in UTF-8, so no str key can
# collide with them; bytes keys starting with 0xFF (or not valid UTF-8) are
# refused.  Keys are always returned as str.
#
# Generated keys: "SSSSSSSSSS-NNNNN", ten digits of clock seconds (zero padded)
# and a five digit per-second counter.  They sort by creation time (string
# order == numeric order thanks to the fixed width) and each is above every
# key generated before it: the counter never repeats, if the clock goes
# backwards the last second keeps being used, and the state (last second,
# counter) is kept in the metadata record.  A custom key that has the same
# shape moves the state up to it (KeyGen.bump, on every write of such a key,
# and on opening for keys written by earlier versions), so a generated key is
# never one that is already taken, without a lookup per put.  Nothing else
# is derived from a key's text.
#
# In the write path a str key of at most 32 characters (so at most 128 bytes)
# is handed to btree as it is (btree stores its UTF-8 bytes): `stored()`.

MAX_KEY_LEN = 128  # bytes of UTF-8
MAX_SECONDS = 10000000000  # clock seconds must stay below: 10 digits in a generated key


def kbytes(key):
    t = type(key)
    if t is str:
        if not key:
            raise ValueError("key must not be empty")
        b = key.encode()
    elif t is bytes or t is bytearray:
        if not key:
            raise ValueError("key must not be empty")
        if key[0] == 0xFF:
            raise ValueError("key: bytes starting with 0xFF are reserved")
        b = bytes(key)
        if not _valid_utf8(b):
            raise ValueError("key: bytes must be valid UTF-8")
    else:
        raise TypeError("key must be str or bytes, not %s" % t.__name__)
    if len(b) > MAX_KEY_LEN:
        raise ValueError("key is %d bytes, over the limit of %d" % (len(b), MAX_KEY_LEN))
    return b


def stored(key):
    # The key as handed to btree: a short str as it is, else kbytes(key).
    if type(key) is str and 0 < len(key) <= 32:
        return key
    return kbytes(key)


def kb_bytes(kb):
    # A stored key (str or bytes) as bytes, for building index keys.
    return kb if type(kb) is bytes else kb.encode()


def _valid_utf8(b):
    # MicroPython's decoder checks only the shape of each sequence: it accepts
    # overlong forms, surrogates and code points past U+10FFFF. Refuse them as
    # CPython does, so that a stored key is the one str it reads back as.
    try:
        str(b, "utf-8")
    except ValueError:  # UnicodeError is a ValueError
        return False
    for i in range(len(b)):
        c = b[i]
        if c < 0xC2:
            if c >= 0xC0:  # C0, C1: overlong two-byte forms
                return False
            continue
        if c >= 0xF5:
            return False
        if c in (0xE0, 0xED, 0xF0, 0xF4):
            n = b[i + 1]  # present: the decode above checked the shape
            if ((c == 0xE0 and n < 0xA0) or (c == 0xED and n >= 0xA0)
                    or (c == 0xF0 and n < 0x90) or (c == 0xF4 and n >= 0x90)):
                return False
    return True


class KeyGen:
    def __init__(self):
        self.sec = -1
        self.n = 0
        self._pre = None  # "SSSSSSSSSS-" of self.sec, made once per second

    def next(self, now):
        # A clock at or past 1e10 would make 11-digit keys that sort before
        # older ones: refused (custom keys still work).
        if now == self.sec and self.n < 99999:
            self.n += 1
            return "%s%05d" % (self._pre or self._prefix(), self.n)
        if now > self.sec:
            if now >= MAX_SECONDS:
                raise ValueError("clock() returned %d: generated keys need seconds below 1e10 (10 digits)" % now)
            self.sec = now
            self.n = 0
            self._pre = None
        else:
            if self.n >= 99999:
                # over 100000 keys in one second: borrow the next second,
                # keeping keys unique and ordered.
                if self.sec + 1 >= MAX_SECONDS:
                    raise ValueError("generated keys: clock seconds past 9999999999")
                self.sec += 1
                self.n = 0
                self._pre = None
            else:
                self.n += 1
        return "%s%05d" % (self._pre or self._prefix(), self.n)

    def set(self, sec, n):
        # the state (as kept in the metadata record, or of another KeyGen)
        self.sec = sec
        self.n = n
        self._pre = None

    def _prefix(self):
        self._pre = p = "%010d-" % self.sec
        return p

    def bump(self, k):
        # k (str or bytes) was written as a custom key: if it has the shape of
        # a generated key, keys generated from now on sort after it.
        if len(k) != 16:
            return
        if type(k) is not str:
            k = str(k, "utf-8")
            if len(k) != 16:  # (16 bytes of UTF-8, fewer characters: not the shape)
                return
        if k[10] != "-" or not (k[:10].isdigit() and k[11:].isdigit()):
            return
        sec = int(k[:10])
        n = int(k[11:])
        if sec > self.sec or (sec == self.sec and n > self.n):
            self.sec = sec
            self.n = n
            self._pre = None

    def catch_up(self, bt):
        # On opening: keys of the generated shape at or above the next one
        # to be generated (written as custom keys by earlier versions).
        lo = "%010d-%05d" % (self.sec if self.sec > 0 else 0, self.n)
        for k in bt.keys(lo.encode(), b"9999999999-99999\xff"):
            self.bump(k)
