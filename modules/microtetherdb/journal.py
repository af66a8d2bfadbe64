# MicroTetherDB: redo journal that makes every btree flush atomic on
# filesystems that overwrite sectors in place (FAT, e.g. SD cards).
#
# LittleFS needs none of this: it commits a file's new contents atomically at
# sync, and btree.flush() ends with that sync. On FAT a power cut inside a
# flush leaves a mix of old and new pages (a corrupt btree). So on FAT btree
# runs over JFile, a stream that never writes a page of the database file
# before the page is safe in the journal:
#   * page writes between two flushes go to "<db>.jnl" (appended, with their
#     offset), reads of such pages come back from the journal;
#   * flush: append a commit record (size, CRC32 of everything, nonce), sync
#     the journal = THE COMMIT POINT; then copy the pages into the database
#     file, sync it, delete the journal;
#   * open (recover()): a journal with a valid commit record is replayed
#     (redo: idempotent, so a cut during replay just replays again), any other
#     journal is discarded; the database file itself was never touched by the
#     uncommitted transaction.
# Journal layout: b"MTJ1", u32 nonce, then records u32 offset, u32 length,
# bytes; commit record u32 0xFFFFFFFF, u32 new file size, u32 crc32 of all
# previous journal bytes, u32 nonce. Little-endian.
import io
import os
import struct
import sys

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    crc32 = None

SUFFIX = ".jnl"
_MAGIC = b"MTJ1"
_COMMIT = 0xFFFFFFFF
_EINVAL = 22
_EIO = 5

_layout = None


def _seek_layout():
    # struct mp_stream_seek_t { mp_off_t offset; int whence; }:
    # mp_off_t is 8 bytes on 64-bit unix, 4 on ESP32 and the qemu board
    global _layout
    if _layout is None:
        import uctypes

        if sys.maxsize > 0x7FFFFFFF:
            _layout = {"offset": uctypes.INT64 | 0, "whence": uctypes.INT32 | 8}
        else:
            _layout = {"offset": uctypes.INT32 | 0, "whence": uctypes.INT32 | 4}
    return _layout


def _abspath(path):
    if path.startswith("/"):
        return path
    cwd = os.getcwd()
    if not cwd.endswith("/"):
        cwd += "/"
    return cwd + path


def needed(path):
    # True if `path` lives on a FAT filesystem (no atomic file commit).
    try:
        import vfs

        fat = vfs.VfsFat
        mounts = vfs.mount()
    except (ImportError, AttributeError, TypeError):
        return False
    p = _abspath(path)
    best = None
    blen = -1
    for fs, mp in mounts:
        if mp == "/" or p == mp or p.startswith(mp + "/"):
            if len(mp) > blen:
                best = fs
                blen = len(mp)
    return best is not None and isinstance(best, fat)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def recover(path):
    # Replay a committed journal of `path` into it, or discard an incomplete
    # one. Returns None (no journal), "replayed" or "discarded".
    jpath = path + SUFFIX
    try:
        j = open(jpath, "rb")
    except OSError:
        return None
    pages = []  # (offset, journal offset, length) in journal order
    size = None
    try:
        head = j.read(8)
        if len(head) == 8 and head[:4] == _MAGIC:
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
                if b > 65536:
                    break
                crc = crc32(h, crc)
                buf = j.read(b)
                if len(buf) != b:
                    break
                crc = crc32(buf, crc)
                pages.append((a, pos + 8, b))
                pos += 8 + b
                buf = None
        if size is not None:
            f = open(path, "r+b" if _exists(path) else "w+b")
            try:
                for off, jo, n in pages:
                    j.seek(jo)
                    buf = j.read(n)
                    f.seek(off)
                    f.write(buf)
                f.flush()
            finally:
                f.close()
    finally:
        j.close()
    os.remove(jpath)
    return "discarded" if size is None else "replayed"


class JFile(io.IOBase):
    # A read/write stream over the database file for btree.open(), routing
    # page writes through the journal (see the top of this file).

    def __init__(self, path):
        self.path = path
        self.jpath = path + SUFFIX
        self.recovered = recover(path)
        self.f = open(path, "r+b" if _exists(path) else "w+b")
        self.size = self.f.seek(0, 2)
        self.pos = 0
        self.map = {}  # database offset -> (journal offset, length)
        self.j = None
        self.jlen = 0
        self.crc = 0
        self.nonce = 0
        self.seq = 0
        self.commits = 0
        _seek_layout()

    # --- stream protocol (called by btree through io.IOBase) -----------------
    def readinto(self, buf):
        pos = self.pos
        n = len(buf)
        m = self.map
        ent = m.get(pos)
        if ent is None:
            for o in m:
                e = m[o]
                if o < pos + n and pos < o + e[1]:
                    if pos < o or pos + n > o + e[1]:
                        return -_EIO  # straddles a pending page: btree never does this
                    ent = (e[0] + pos - o, n)  # inside a pending page (e.g. the meta header)
                    break
        if ent is not None:
            if ent[1] < n:
                return -_EIO
            j = self.j
            j.seek(ent[0])
            r = j.readinto(buf)
        else:
            f = self.f
            f.seek(pos)
            r = f.readinto(buf)
            if r is None:
                r = 0
        self.pos = pos + r
        return r

    def write(self, buf):
        n = len(buf)
        pos = self.pos
        m = self.map
        ent = m.get(pos)
        if ent is None or ent[1] != n:
            for o in m:
                if o < pos + n and pos < o + m[o][1]:
                    return -_EIO  # would overlap a pending write: btree writes whole pages
        j = self.j
        if j is None:
            j = self._begin()
        h = struct.pack("<II", self.pos, n)
        j.seek(self.jlen)
        j.write(h)
        j.write(buf)
        self.crc = crc32(buf, crc32(h, self.crc))
        self.map[self.pos] = (self.jlen + 8, n)
        self.jlen += 8 + n
        self.pos += n
        if self.pos > self.size:
            self.size = self.pos
        return n

    def ioctl(self, req, arg):
        if req == 2:  # MP_STREAM_SEEK
            import uctypes

            s = uctypes.struct(arg, _layout, uctypes.NATIVE)
            w = s.whence
            p = s.offset
            if w == 1:
                p += self.pos
            elif w == 2:
                p += self.size
            if p < 0:
                return -_EINVAL
            self.pos = p
            s.offset = p
            return 0
        if req == 1:  # MP_STREAM_FLUSH: btree.flush() ends here
            self.commit()
            return 0
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
            return 0
        return -_EINVAL

    def seek(self, off, whence=0):
        # Python-level seek/tell for callers other than btree (e.g. stats)
        if whence == 1:
            off += self.pos
        elif whence == 2:
            off += self.size
        self.pos = off
        return off

    def tell(self):
        return self.pos

    # --- transactions --------------------------------------------------------
    def _begin(self):
        self.seq += 1
        try:
            r = os.urandom(4)
        except (AttributeError, NotImplementedError):
            r = b"\x00\x00\x00\x00"
        self.nonce = (struct.unpack("<I", r)[0] ^ self.seq) & 0xFFFFFFFF
        j = open(self.jpath, "w+b")
        h = _MAGIC + struct.pack("<I", self.nonce)
        j.write(h)
        self.j = j
        self.jlen = 8
        self.crc = crc32(h)
        self.map = {}
        return j

    def commit(self):
        j = self.j
        f = self.f
        if j is None:
            f.flush()
            return
        j.seek(self.jlen)
        j.write(struct.pack("<IIII", _COMMIT, self.size, self.crc, self.nonce))
        j.flush()  # <- commit point: the transaction is now durable
        buf = None
        for off in self.map:
            jo, n = self.map[off]
            if buf is None or len(buf) != n:
                buf = bytearray(n)
            j.seek(jo)
            j.readinto(buf)
            f.seek(off)
            f.write(buf)
        f.flush()
        j.close()
        self.j = None
        self.map = {}
        os.remove(self.jpath)
        self.commits += 1

    def close(self):
        f = self.f
        if f is None:
            return
        try:
            if self.j is not None:
                # uncommitted pages are dropped (btree.close() flushes first)
                self.j.close()
                self.j = None
                try:
                    os.remove(self.jpath)
                except OSError:
                    pass
        finally:
            self.f = None
            f.close()


def open_db(path):
    # Open the database file `path` for btree (its parent folder exists):
    # recover a journal left by a power cut, check an existing file page by
    # page (a corrupt file raises CorruptDBError naming it, before btree can
    # touch it), and return (stream, new, recovered): a JFile on FAT, a
    # plain file elsewhere; new is True for a missing or empty file;
    # recovered is None, "replayed" or "discarded".
    rec = recover(path)
    try:
        size = os.stat(path)[6]
    except OSError:
        size = 0
    new = size == 0
    if not new:
        from .repair import check

        f = open(path, "rb")
        try:
            check(f, path)
        finally:
            f.close()
    if needed(path):
        return JFile(path), new, rec
    return open(path, "w+b" if new else "r+b"), new, rec

