# Key validation and generation.
#
# User records are stored under the UTF-8 bytes of their key.  Internal keys
# start with the byte 0xFF, which never occurs in UTF-8, so no str key can
# collide with them; bytes keys starting with 0xFF (or not valid UTF-8) are
# refused.  Keys are always returned as str.
#
# Generated keys: "SSSSSSSSSS-NNNNN", ten digits of clock seconds (zero padded)
# and a five digit per-second counter.  They sort by creation time (string
# order == numeric order thanks to the fixed width), are unique within a
# session (the counter never repeats; if the clock goes backwards the last
# second keeps being used), and the database also checks that the key is not
# already taken (e.g. by a custom key or an earlier boot) before using it.
# Custom keys are never parsed: nothing is derived from a key's text.

MAX_KEY_LEN = 128  # bytes of UTF-8


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
        try:
            str(key, "utf-8")
        except ValueError:  # UnicodeError is a ValueError
            raise ValueError("key: bytes must be valid UTF-8")
        b = bytes(key)
    else:
        raise TypeError("key must be str or bytes, not %s" % t.__name__)
    if len(b) > MAX_KEY_LEN:
        raise ValueError("key is %d bytes, over the limit of %d" % (len(b), MAX_KEY_LEN))
    return b


class KeyGen:
    def __init__(self):
        self.sec = -1
        self.n = 0

    def next(self, now):
        if now > self.sec:
            self.sec = now
            self.n = 0
        else:
            self.n += 1
            if self.n > 99999:
                # over 100000 keys in one second: borrow the next second,
                # keeping keys unique and ordered.
                self.sec += 1
                self.n = 0
        return "%010d-%05d" % (self.sec, self.n)
