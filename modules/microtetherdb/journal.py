# Redo journal: the file format that makes a multi-page write atomic on a
# filesystem that overwrites sectors in place (FAT, e.g. SD cards).
#
# LittleFS needs none of this: it commits a file's new contents atomically at
# sync. On FAT a power cut in the middle of writing pages leaves a mix of old
# and new ones. So a commit first appends the pages to "<db>.jnl", then a
# commit record (size, CRC32 of everything before it, nonce), and syncs the
# journal: THE COMMIT POINT. Only then are the pages copied into the database
# file, which is synced, and the journal deleted. At open, a journal with a
# valid commit record is replayed (redo: idempotent, so a cut during replay
# just replays again); any other journal of ours is an unfinished commit and is
# discarded: the database file was not touched by it.
#
# Layout (little-endian): b"MTJ1", u32 nonce, then records u32 offset, u32
# length, bytes; commit record u32 0xFFFFFFFF, u32 new file size, u32 crc32 of
# all previous journal bytes, u32 nonce.
# Only a file that starts with b"MTJ1" is ours: anything else under the
# journal's name is never read, replayed or deleted (DBError naming it).
import os
import struct

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    crc32 = None

from .errors import DBError
from .files import create

SUFFIX = ".jnl"
MAGIC = b"MTJ1"
_COMMIT = 0xFFFFFFFF
_MAXREC = 65536


def _foreign(path):
    return DBError("%s is not a MicroTetherDB journal: left untouched; move it away to open the database" % path)


def read(path):
    # Parse the journal at `path` -> None (no file), or (pages, size):
    # pages = [(db offset, journal offset, length)], size = the committed file
    # size, or None if the journal has no valid commit record (unfinished).
    # Raises DBError if the file is not ours.
    try:
        j = open(path, "rb")
    except OSError:
        return None
    pages = []
    size = None
    try:
        head = j.read(8)
        if len(head) == 0:
            return pages, None  # created, nothing written: unfinished
        if len(head) < 4 or head[:4] != MAGIC:
            raise _foreign(path)
        if len(head) < 8:
            return pages, None
        nonce = struct.unpack_from("<I", head, 4)[0]
        crc = crc32(head)
        pos = 8
        while True:
            h = j.read(8)
            if len(h) != 8:
                break
            a, b = struct.unpack("<II", h)
            if a == _COMMIT:
                t = j.read(8)
                if len(t) == 8:
                    c, n2 = struct.unpack("<II", t)
                    if c == crc and n2 == nonce:
                        size = b
                break
            if b > _MAXREC:
                break
            crc = crc32(h, crc)
            buf = j.read(b)
            if len(buf) != b:
                break
            crc = crc32(buf, crc)
            pages.append((a, pos + 8, b))
            pos += 8 + b
            buf = None
    finally:
        j.close()
    return pages, size


def replay(path, db_path):
    # Finish the commit a journal records: None (no journal), "discarded" (an
    # unfinished one, deleted) or "replayed". If copying fails (e.g. no space
    # left, an I/O error), the journal stays for the next open and OSError is
    # raised naming it: the commit is safe in it.
    r = read(path)
    if r is None:
        return None
    pages, size = r
    if size is not None:
        try:
            j = open(path, "rb")
            try:
                try:
                    os.stat(db_path)
                    mode = "r+b"
                except OSError:
                    mode = "w+b"
                f = open(db_path, mode)
                try:
                    for off, jo, n in pages:
                        j.seek(jo)
                        buf = j.read(n)
                        f.seek(off)
                        if f.write(buf) != n:
                            raise OSError(5)
                    f.flush()
                finally:
                    f.close()
            finally:
                j.close()
        except OSError as e:
            raise OSError(e.args[0] if e.args else 5,
                          "%s: committed journal could not be replayed (%s); it is kept for the next open"
                          % (path, e))
    os.remove(path)
    return "discarded" if size is None else "replayed"


class Writer:
    # Builds one journal: add() pages, then commit(size) = the commit point.
    # Every failure raises OSError; abort() deletes an unfinished journal.

    def __init__(self, path):
        self.path = path
        r = os.urandom(4) if hasattr(os, "urandom") else b"\x00\x00\x00\x00"
        self.nonce = struct.unpack("<I", r)[0]
        self.j = create(path, "w+b")  # spilled pages are read back
        h = MAGIC + struct.pack("<I", self.nonce)
        self._w(h)
        self.crc = crc32(h)
        self.len = 8
        self.pages = []  # (db offset, journal offset, length)

    def _w(self, b):
        if self.j.write(b) != len(b):
            raise OSError(28)

    def add(self, off, buf):
        self.j.seek(self.len)  # reads of spilled pages move the file position
        h = struct.pack("<II", off, len(buf))
        self._w(h)
        self._w(buf)
        self.crc = crc32(buf, crc32(h, self.crc))
        self.pages.append((off, self.len + 8, len(buf)))
        self.len += 8 + len(buf)

    def commit(self, size):
        self.j.seek(self.len)
        self._w(struct.pack("<IIII", _COMMIT, size, self.crc, self.nonce))
        self.j.flush()  # <- the commit point
        self.j.close()
        self.j = None

    def abort(self):
        j = self.j
        self.j = None
        try:
            if j is not None:
                j.close()
        except OSError:
            pass
        try:
            os.remove(self.path)
        except OSError:
            pass
