# The file layer: opening, committing, closing and replacing a database file.
#
# In file mode btree runs over a Pager, a stream object of ours, never over
# the file directly. The Pager keeps the pages btree writes between two
# commits in RAM (up to a budget; beyond it they go to the file, or on FAT to
# the journal, as btree evicts them), so a commit is one pass that we drive
# from Python and whose every result we check:
#   * LittleFS (and the host): write the pages into the file and sync. A
#     LittleFS file's new contents become visible atomically at sync.
#   * FAT, which overwrites in place: pages past the durable end of the file
#     are written and synced first (they are not part of the database yet, and
#     growing the file is what can fail for lack of space), then the other
#     pages go to the redo journal (journal.py) whose sync is the commit
#     point, then into the file; nothing after the commit point allocates.
# A commit that fails before its commit point raises OSError and leaves the
# file as of the last commit; the pages stay in RAM, so the next commit
# retries them (after ENOSPC: once space is freed). If pages had to leave RAM
# before the failure, they are gone with the failed write: the store is then
# returned to its last commit (`rolled_back`), and the caller says so.
#
# Also here: one owner per file in an interpreter, path checks, the side
# files (".jnl" journal, ".swap" marker, ".new" copy): only files that carry
# our header are ever acted on, others raise DBError naming them.
import io
import os
import struct
import sys

import btree

from . import btpage, journal
from .files import KICK, create, exists, is_chunk, mkdir, volume
from .errors import CorruptDBError, DBError

ENOENT = 2
EIO = 5
ENOMEM = 12
EEXIST = 17
EINVAL = 22
ENOSPC = 28

SWAP = ".swap"  # marker of a replacement in progress (compact, repair)
NEW = ".new"    # the replacement being written
_SWAP_MAGIC = b"MTDBSWP1"
BUDGET = 4096   # bytes of dirty pages kept in RAM between commits (< 256 pages)

_owners = {}  # normalized path -> the FileStore that has it open


# --- paths ------------------------------------------------------------------

def normpath(path):
    # Absolute, without "//", "/./" or "/../"; refuse what cannot be a file name.
    if type(path) is not str or not path:
        raise ValueError("filename must be a non-empty str")
    if "\x00" in path:
        raise ValueError("filename must not contain NUL: %r" % path)
    if path.endswith("/"):
        raise ValueError("filename ends with '/': %r names a folder, not a file" % path)
    if not path.startswith("/"):
        cwd = os.getcwd()
        path = (cwd if cwd.endswith("/") else cwd + "/") + path
    out = []
    for p in path.split("/"):
        if p == "" or p == ".":
            continue
        if p == "..":
            if out:
                out.pop()
            continue
        out.append(p)
    if not out:
        raise ValueError("filename %r names the root folder" % path)
    return "/" + "/".join(out)


def _stat_size(p):
    # -> size, or -1 if missing; ValueError if p is a folder
    try:
        st = os.stat(p)
    except OSError:
        return -1
    if st[0] & 0x4000:
        raise ValueError("filename: %s is a folder" % p)
    return st[6]


_NAMES = {ENOENT: "no such file or folder", EIO: "I/O error", ENOMEM: "out of memory",
          13: "permission denied", EEXIST: "exists", 19: "no such device",
          EINVAL: "invalid argument", ENOSPC: "no space left on device", 30: "read-only filesystem"}


def named(e, path, what="open"):
    # OSError e, with the path and the problem in its message (keeps the errno).
    n = e.args[0] if e.args and type(e.args[0]) is int else EIO
    if len(e.args) > 1:
        return OSError(n, "%s: cannot %s: %s" % (path, what, e.args[1]))
    return OSError(n, "%s: cannot %s: %s (errno %d)" % (path, what, _NAMES.get(n, "error"), n))


def mkdirs(path):
    # Create the parent folders of `path` (MicroPython has no makedirs).
    cur = ""
    for p in path.split("/")[1:-1]:
        cur += "/" + p
        try:
            st = os.stat(cur)
        except OSError:
            try:
                mkdir(cur)
            except OSError as e:
                raise named(e, cur, "create folder")
            continue
        if not st[0] & 0x4000:
            raise OSError(EEXIST, "%s: is a file, not a folder" % cur)


def fs_kind(path):
    # "fat", "lfs" or "" (host or unknown) for the filesystem `path` is on.
    try:
        import vfs

        mounts = vfs.mount()
    except (ImportError, AttributeError, TypeError):
        return ""
    best = None
    blen = -1
    for fs, mp in mounts:
        if mp == "/" or path == mp or path.startswith(mp + "/"):
            if len(mp) > blen:
                best = fs
                blen = len(mp)
    if best is None:
        return ""
    if isinstance(best, getattr(vfs, "VfsFat", ())):
        return "fat"
    if isinstance(best, getattr(vfs, "VfsLfs2", ())) or isinstance(best, getattr(vfs, "VfsLfs1", ())):
        return "lfs"
    return ""


def free_bytes(path):
    # Bytes free on the filesystem holding `path` (None if unknown).
    st = volume(path)
    if st is None or st[4] < 0 or st[4] > st[2]:
        # LittleFS counts open files' pending blocks as used too: it can
        # report fewer than none (or, unsigned, more than the volume): unknown
        return None
    return st[4] * st[1]


def block_size(path):
    st = volume(path)
    return (st[1] if st is not None else 0) or 512


def volume_blocks(path):
    # Blocks of the filesystem holding `path` (0 if unknown).
    st = volume(path)
    return st[2] if st is not None else 0


# --- owners -----------------------------------------------------------------

def claim(path, owner):
    if path in _owners:
        raise DBError("%s is already open in this interpreter (close() the other MicroTetherDB first)" % path)
    _owners[path] = owner


def release(path, owner):
    if _owners.get(path) is owner:
        del _owners[path]


def forget():
    # Tests that simulate a power cut in one interpreter: the open objects
    # are never used again (their handles are dropped, nothing committed:
    # on a board btree's memory is not collected, so it is freed here), and
    # their files may be opened anew.
    for st in list(_owners.values()):
        c = getattr(st, "close_handles", None)  # a FileStore or ChunkStore
        if c is not None:
            c()
    _owners.clear()


def discard_bt(bt, pager):
    # Close a btree handle whose pages are not wanted (a rollback, an
    # abandoned or format-2 handle): the pager takes its writes without
    # storing them, so the close cannot fail half-way. (Berkeley DB's close
    # frees its memory only after a successful sync, and MicroPython's btree
    # forgets the handle either way: a failed close leaks the handle's cache
    # for good.)
    if bt is None:
        return
    if pager is not None:
        pager.drop = True
    try:
        bt.close()
    except Exception:  # noqa: BLE001
        pass
    if pager is not None:
        pager.drop = False


# --- side files: replacing a database file (compact, repair) -----------------

def _read_marker(mpath):
    # -> None (no marker), "C" (copy in progress or unreadable) or
    # ("D", size, backup path or None)
    try:
        with open(mpath, "rb") as f:
            b = f.read(300)
    except OSError:
        return None
    if not b.startswith(_SWAP_MAGIC[:len(b)]) and len(b):
        raise DBError("%s is not a MicroTetherDB file: left untouched; move it away to open the database" % mpath)
    if len(b) >= 13 and b[:8] == _SWAP_MAGIC and b[8:9] == b"D":
        n = b[13] if len(b) > 13 else 0  # (13 bytes: no backup)
        if n == 0 or len(b) >= 14 + n:
            return ("D", struct.unpack_from("<I", b, 9)[0], str(b[14:14 + n], "utf-8") if n else None)
    return "C"  # created but not (fully) written: a copy that did not finish


def _write_marker(mpath, state, size=0, backup=None):
    # backup: where the old database goes when the swap is finished (also
    # by recover_dir after a power cut)
    with create(mpath) as f:
        b = _SWAP_MAGIC + state + struct.pack("<I", size)
        if backup is not None:
            bb = backup.encode()
            if len(bb) > 255:
                raise ValueError("backup path too long: %s" % backup)
            b += bytes((len(bb),)) + bb
        if f.write(b) != len(b):
            raise OSError(ENOSPC)
        f.flush()


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def isdir(p):
    try:
        return bool(os.stat(p)[0] & 0x4000)
    except OSError:
        return False


def files_in(p):
    # True if folder p holds a file, itself or in a subfolder (one level)
    for name in os.listdir(p):
        if not isdir(p + "/" + name) or os.listdir(p + "/" + name):
            return True
    return False


def rmtree(p):
    # Delete a database folder (format 2). Only the entries of its layout
    # ("h", "c/c%08x", "l/<n>", "l/<n>/<m>"; chunks beside "h": a development
    # version's layout; an empty KICK folder a power cut left, files.create)
    # are deleted, "h" last; anything else stops it with DBError before
    # anything is deleted.
    _layout(p, 0, False)
    _layout(p, 0, True)


def _layout(p, kind, rm):
    # Check (rm False) or delete (rm True) the entries of folder p, kind 0:
    # the database, 1: c/, 2: l/, 3: l/<n>/; deleting, p itself goes last.
    head = False
    for name in os.listdir(p):
        q = p + "/" + name
        if isdir(q):
            if name == KICK and not os.listdir(q):
                pass
            elif kind == 0 and (name == "c" or name == "l"):
                _layout(q, 1 if name == "c" else 2, rm)
                continue
            elif kind == 2 and name.isdigit():
                _layout(q, 3, rm)
                continue
            else:
                raise DBError("%s holds %s, which is not a database folder: left untouched" % (p, name))
            if rm:
                os.rmdir(q)
        elif kind == 0 and name == "h":
            head = True
        elif is_chunk(name) if kind < 2 else name.isdigit():
            if rm:
                os.remove(q)
        else:
            raise DBError("%s holds %s, which is not a database file: left untouched" % (p, name))
    if rm:
        if head:
            os.remove(p + "/h")
        os.rmdir(p)


def drop(p):
    # Delete a database: its file (format 1, with a journal left beside it)
    # or its folder (format 2).
    if isdir(p):
        rmtree(p)
    elif exists(p):
        os.remove(p)
        _remove(p + journal.SUFFIX)


_drop_path = drop


def _replace(new, path, backup=None):
    # new -> path (the old file or folder -> backup, or gone). LittleFS and
    # the host replace a file atomically; FAT refuses to rename onto a file
    # (EEXIST), and no filesystem renames onto a folder that holds files.
    if backup is not None and exists(path):
        _drop_path(backup)
        os.rename(path, backup)
    try:
        os.rename(new, path)
    except OSError:
        if not exists(path):
            raise
        _drop_path(path)
        os.rename(new, path)


def recover_dir(path):
    # Finish or undo a replacement (compact, repair) interrupted by a power
    # cut: the marker says whether "<path>.new" was complete.
    mpath = path + SWAP
    m = _read_marker(mpath)
    if m is not None:
        new = path + NEW
        if m == "C":
            _drop_path(new)  # unfinished copy: the database is intact
        elif exists(new):
            _replace(new, path, m[2])  # (the old one kept as repair's backup)
        _remove(mpath)


def recover(path):
    # recover_dir(), then a FAT journal. Returns None, "replayed" or
    # "discarded" (the journal's fate).
    recover_dir(path)
    return journal.replay(path + journal.SUFFIX, path)


def begin_replace(path):
    # Start writing a replacement of `path`: -> the temporary file name.
    # A file under that name that we did not write is never touched.
    new = path + NEW
    if exists(path + SWAP):
        raise DBError("%s exists: left untouched; move it away first" % (path + SWAP))
    if exists(new):
        raise DBError("%s exists and is not ours: left untouched; move it away first" % new)
    _write_marker(path + SWAP, b"C")
    return new


def abort_replace(path):
    _drop_path(path + NEW)
    _remove(path + SWAP)


def finish_replace(path, backup=None):
    # The copy in path + NEW is complete (written, synced, closed): make it
    # the database. From the marker's "D" on, a power cut finishes the job.
    new = path + NEW
    _write_marker(path + SWAP, b"D", 0 if isdir(new) else _stat_size(new), backup)
    _replace(new, path, backup)
    _remove(path + SWAP)


def check_room(path, need, what):
    free = free_bytes(path)
    if free is not None and free < need:
        raise OSError(ENOSPC, "%s: %s needs about %d bytes, %d free" % (path, what, need, free))


# --- the stream btree runs over ---------------------------------------------

_mem = None  # machine.mem32 where it reads this process's memory, else False


_WHENCE = 8 if sys.maxsize > 0x7FFFFFFF else 4  # offset of `whence` in mp_stream_seek_t


def stream_seek(p, arg, end):
    # btree's MP_STREAM_SEEK on pager p (a stream of `end` bytes): sets p.pos
    # and the new offset in btree's struct mp_stream_seek_t at `arg`
    # { mp_off_t offset; int whence; } -> 0, or -EINVAL. mp_off_t is 8 bytes
    # on 64-bit unix, 4 on ESP32 and the qemu board. machine.mem32 reads it
    # without allocating (a uctypes.struct allocates, and this runs inside
    # btree at every page it reads or writes); _init_mem() first.
    m = _mem
    if m:
        o = m[arg]
        w = m[arg + _WHENCE]
    else:
        t = _seek_struct(arg)
        o = t.offset
        w = t.whence
    if w == 1:
        o += p.pos
    elif w == 2:
        o += end
    if o < 0:
        return -EINVAL
    p.pos = o
    if m:
        m[arg] = o
    else:
        t.offset = o
    return 0


def _seek_struct(arg):
    import uctypes

    if sys.maxsize > 0x7FFFFFFF:
        lay = {"offset": uctypes.INT64 | 0, "whence": uctypes.INT32 | 8}
    else:
        lay = {"offset": uctypes.INT32 | 0, "whence": uctypes.INT32 | 4}
    return uctypes.struct(arg, lay, uctypes.NATIVE)


def _init_mem():
    global _mem
    if _mem is None:
        _mem = False
        try:
            import machine
            import uctypes

            b = bytearray(8)
            machine.mem32[uctypes.addressof(b)] = 0x1234567
            if b[0] == 0x67 and machine.mem32[uctypes.addressof(b)] == 0x1234567:
                _mem = machine.mem32
        except Exception:  # noqa: BLE001 - e.g. the unix port maps /dev/mem
            pass


def stream_fail(p, e):
    # A stream under btree (Pager, chunkstore.ChunkPager) met error e inside
    # a btree call: keep the first one in p.err, return it as -errno (never
    # raise into btree's C code).
    if p.err is None:
        p.err = e
    if isinstance(e, MemoryError):
        return -ENOMEM
    if isinstance(e, OSError) and e.args and type(e.args[0]) is int:
        return -e.args[0]
    return -EIO


class Pager(io.IOBase):
    # Stream protocol for btree: readinto, write, ioctl (seek, flush, close).
    # Its methods never raise into btree's C code: errors become -errno
    # return values and are kept in self.err, and the caller treats btree's
    # pages as untrusted after such an error in a write (FileStore.suspect).
    # The usual paths do not allocate (a failing allocation there would be
    # such an error): the pages written since the last commit live in
    # preallocated slots found through a dict sized at open.

    def __init__(self, path, fat, psize, budget=None):
        # budget: bytes of RAM for the pages written between commits (None:
        # BUDGET; 0: every page goes to the file at once)
        _init_mem()
        self.path = path
        self.fat = fat
        self.psize = psize
        self.drop = False
        self.f = None
        self._openf()
        self.size = self.f.seek(0, 2)  # durable size (as of the last commit)
        self.end = self.size           # btree's view of the size
        self.pos = 0
        n = self.limit = (BUDGET if budget is None else budget) // psize
        # page-sized blocks: a fragmented heap may have no room for one big one
        self.slots = [bytearray(psize) for _ in range(n)]
        self.stack = bytearray(range(n))  # free slot numbers (n < 256)
        self.sp = n
        ov = self.ov = {}  # page offset -> slot number, pages since the commit
        for i in range(n + 1):
            ov[-1 - i] = 0
        for i in range(n + 1):
            del ov[-1 - i]  # the table keeps its size: no allocation later
        self.jmap = None               # FAT: page offset -> journal offset (spilled)
        self.jw = None                 # FAT: journal.Writer of the open transaction
        self.spilled = False           # pages left RAM since the last commit
        self.err = None
        self.lost = False              # pages since the commit were dropped
        self.broken = None             # a failure after a commit point

    def _openf(self):
        self.f = create(self.path, "r+b" if exists(self.path) else "w+b")

    # --- stream protocol (called by btree) ---
    def readinto(self, buf):
        try:
            pos = self.pos
            n = len(buf)
            ps = self.psize
            b0 = pos - pos % ps
            i = self.ov.get(b0)
            if i is not None:
                ent = self.slots[i]
                if n == ps and b0 == pos:
                    buf[:] = ent
                    k = n
                else:
                    o = pos - b0
                    k = min(n, ps - o)
                    buf[:k] = memoryview(ent)[o:o + k]
                self.pos = pos + k
                return k
            jm = self.jmap
            if jm is not None and b0 in jm:
                j = self.jw.j
                j.seek(jm[b0] + pos - b0)
                r = j.readinto(buf)
            else:
                f = self.f
                f.seek(pos)
                r = f.readinto(buf)
            r = r or 0
            self.pos = pos + r
            return r
        except Exception as e:  # noqa: BLE001 - never raise into btree
            if self.spilled:
                # LittleFS flushes the spilled pages it caches before a read:
                # if that fails, they are gone
                self.lost = True
            return self._fail(e)

    def write(self, buf):
        if self.drop:
            return len(buf)  # (discard_bt)
        try:
            pos = self.pos
            n = len(buf)
            ov = self.ov
            i = ov.get(pos)
            if i is None and self.sp and n == self.psize and not pos % n:
                self.sp -= 1
                i = self.stack[self.sp]
                ov[pos] = i
            if i is not None:
                self.slots[i][:] = buf
            else:
                try:
                    self._spill(pos, buf)
                except BaseException:
                    self.lost = True  # neither in RAM nor in the file
                    raise
            self.pos = pos + n
            if self.pos > self.end:
                self.end = self.pos
            return n
        except Exception as e:  # noqa: BLE001
            return self._fail(e)

    def _spill(self, pos, buf):
        # RAM budget used up: the page goes to the file (LittleFS: invisible
        # until the next sync) or, on FAT, to the journal.
        self.spilled = True
        if self.fat and pos < self.size:
            jw = self.jw
            if jw is None:
                jw = self.jw = journal.Writer(self.path + journal.SUFFIX)
                self.jmap = {}
            jw.add(pos, buf)
            self.jmap[pos] = jw.pages[-1][1]
            return
        f = self.f
        f.seek(pos)
        if f.write(buf) != len(buf):
            raise OSError(ENOSPC)

    def _fail(self, e):
        return stream_fail(self, e)

    def ioctl(self, req, arg):
        try:
            if req == 2:  # MP_STREAM_SEEK
                return stream_seek(self, arg, self.end)
            if req == 1 or req == 4:  # flush (end of btree.flush/close), close
                return 0  # the commit is driven by FileStore, from Python
            return -EINVAL
        except Exception as e:  # noqa: BLE001
            return self._fail(e)

    # Python-level seek/tell for our own readers (btpage.usage, stats)
    def seek(self, off, whence=0):
        if whence == 1:
            off += self.pos
        elif whence == 2:
            off += self.end
        self.pos = off
        return off

    def tell(self):
        return self.pos

    def _clear(self):
        # forget the pages since the commit (slots back on the stack)
        ov = self.ov
        for off in list(ov):
            self.stack[self.sp] = ov.pop(off)
            self.sp += 1
        self.spilled = False

    # --- commit (called by FileStore) ---
    def commit(self):
        # Make every page written since the last commit durable, or raise
        # OSError leaving the file as of the last commit.
        if self.broken is not None:
            raise self.broken
        ov = self.ov
        if not ov and not self.spilled:
            return
        try:
            if self.fat:
                self._commit_fat()
            else:
                f = self.f
                slots = self.slots
                for off in sorted(ov):
                    f.seek(off)
                    if f.write(slots[ov[off]]) != self.psize:
                        raise OSError(ENOSPC)
                f.flush()  # LittleFS: the commit point
        except Exception as e:  # noqa: BLE001
            self._reset()
            if isinstance(e, MemoryError):
                raise MemoryError("%s: out of memory while committing" % self.path)
            raise named(e, self.path, "commit") if isinstance(e, OSError) else e
        self.size = self.end
        self._clear()

    def _commit_fat(self):
        ov = self.ov
        slots = self.slots
        size = self.size
        f = self.f
        for off in sorted(ov):
            if off >= size:  # past the durable end: not in the database yet
                f.seek(off)
                if f.write(slots[ov[off]]) != self.psize:
                    raise OSError(ENOSPC)
        if self.end > size:
            f.flush()  # the new pages (also those spilled) are on disk first
        jw = self.jw
        if jw is None:
            jw = self.jw = journal.Writer(self.path + journal.SUFFIX)
        for off in ov:
            if off < size:
                jw.add(off, slots[ov[off]])
        jw.commit(self.end)  # <- the commit point
        try:
            # The commit is durable: from here on a failure leaves the journal
            # for the next open (replay), never deletes it.
            j = None
            if self.jmap:
                j = open(jw.path, "rb")
            for off, jo, n in jw.pages:
                i = ov.get(off)
                if i is None:
                    j.seek(jo)
                    buf = j.read(n)
                else:
                    buf = slots[i]
                f.seek(off)
                if f.write(buf) != n:
                    raise OSError(EIO)
            if j is not None:
                j.close()
            f.flush()
            os.remove(jw.path)
        except Exception as e:  # noqa: BLE001
            self.broken = OSError(EIO, "%s: committed, but the file could not be updated (%s); "
                                       "the journal is kept: close and reopen the database" % (self.path, e))
            raise self.broken
        self.jw = None
        self.jmap = None

    def _reset(self):
        # After a failed commit: forget the unfinished journal and reopen the
        # file as of the last commit (a LittleFS handle whose sync failed
        # must not be used again). Pages in RAM stay for the next attempt.
        if self.jw is not None:
            self.jw.abort()
            self.jw = None
        lost = self.spilled
        self.jmap = None
        try:
            self.f.close()
        except OSError:
            pass
        self.f = None
        self._openf()
        if lost:
            # pages that had left RAM went with the failed write
            self._clear()
            self.end = self.size
            self.lost = True

    def discard(self):
        # Drop everything since the last commit.
        self._clear()
        if self.jw is not None:
            self.jw.abort()
            self.jw = None
        self.jmap = None
        try:
            self.f.close()
        except OSError:
            pass
        self.f = None
        self._openf()
        self.end = self.size
        self.err = None
        self.lost = False

    def close(self):
        f = self.f
        self.f = None
        if self.jw is not None and self.broken is None:
            self.jw.abort()  # an unfinished transaction (commit() failed)
        self.jw = None
        if f is not None:
            f.close()


# --- the store ---------------------------------------------------------------

class PagedStore:
    # What the two stores on flash share (FileStore here, format 1, and
    # chunkstore.ChunkStore, format 2): btree over self.pager, a stream whose
    # methods never raise into btree (errors in pager.err, pages lost in
    # pager.lost), and the store interface the database layer uses.

    mem = False
    budget = None  # no memory budget on flash
    damage = None  # (ChunkStore: why a chunk failed its check)

    def _bt_open(self):
        p = self.pager
        p.pos = 0
        p.err = None
        try:
            self.bt = btree.open(p, pagesize=self.psize, cachesize=self.csize)
        except OSError as e:
            # btree's own malloc failed (ports whose C malloc is the
            # MicroPython heap: its buffer pool takes ~1.1 KB in one block)
            if e.args and e.args[0] == ENOMEM:
                raise MemoryError("%s: btree.open: out of memory" % self.path)
            raise

    def reserve(self, pages):
        pass

    def check(self):
        return True

    def suspect(self):
        # True if the stream failed inside a btree call since the last
        # commit: btree may have stopped half-way (e.g. in a page split), so
        # its pages must not be trusted; the caller rolls back.
        p = self.pager
        return p is not None and (p.err is not None or p.lost)

    def read_error(self):
        # -> the error the stream met under a btree call that failed (None:
        # the failure was btree's own, or damage). Forgotten unless pages
        # were lost: a read leaves btree's pages as they were.
        p = self.pager
        if p is None:
            return None
        e = p.err
        if not p.lost:
            p.err = None
        if e is not None and self.damage:
            return None  # a chunk failed its CRC: damage, not an I/O error
        return e

    def abandon(self):
        # Close without committing anything (a failed open).
        try:
            self.close_handles()
        finally:
            self.closed = True
            release(self.path, self)


class FileStore(PagedStore):
    # A database file opened for btree: .bt (the btree handle, None while a
    # rollback waits for memory), .new (the file was created now),
    # .recovered (journal fate), .psize (the file's page size), .path.
    # commit() is the one commit point of every write call.

    logs = False  # format 1: a commit is btree's flush, no log

    def __init__(self, path, pagesize, cachesize):
        path = normpath(path)
        self.path = path
        self.pagesize = pagesize  # for a new file (an existing one keeps its own)
        self.csize = cachesize
        self.bt = None
        self.pager = None
        self.flushes = 0
        self.rolled_back = False  # set by rollback(); the caller clears it
        self.pending = False      # a rollback is waiting for memory
        self.closed = False
        claim(path, self)
        try:
            self._open(pagesize)
        except BaseException:
            try:
                self.close_handles()
            finally:
                release(path, self)
            raise

    def _open(self, pagesize):
        path = self.path
        try:
            self.recovered = recover(path)
            size = _stat_size(path)
            if size < 0:
                mkdirs(path)
        except OSError as e:
            raise named(e, path)
        self.new = size <= 0
        psize = pagesize
        if not self.new:
            try:
                f = open(path, "rb")
            except OSError as e:
                raise named(e, path)
            try:
                btpage.check(f, path)  # btree must never see a damaged page
                psize = btpage.meta(f.read(24), path)[0]
            finally:
                f.close()
        self.psize = psize
        try:
            self.pager = Pager(path, fs_kind(path) == "fat", psize)
        except OSError as e:
            raise named(e, path)
        try:
            self._bt_open()
        except MemoryError:
            raise
        except Exception as e:  # noqa: BLE001
            e = self.pager.err or e  # (what the pager saw, if anything)
            if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.args and e.args[0] == ENOMEM):
                raise MemoryError("%s: out of memory opening the database" % path)
            if isinstance(e, OSError) and self.pager.err is not None:
                raise named(e, path)  # an I/O error, not damage
            raise CorruptDBError("%s is not a MicroTetherDB database (btree: %r)" % (path, e))

    def size(self):
        return self.pager.end

    def commit(self):
        # Everything written so far becomes durable, or OSError/MemoryError
        # is raised and the file stays as of the last commit.
        p = self.pager
        p.err = None
        r = self.bt.flush()
        if r != 0 or p.err is not None:
            e = p.err
            if isinstance(e, MemoryError):
                raise MemoryError("%s: out of memory while writing" % self.path)
            raise named(e if isinstance(e, OSError) else OSError(EIO), self.path, "write")
        p.commit()
        self.flushes += 1

    def rollback(self):
        # Back to the last commit: drop btree's handle and every page since.
        # If reopening runs out of memory, .bt stays None and .pending True
        # until revive() manages it.
        bt = self.bt
        self.bt = None
        discard_bt(bt, self.pager)
        self.pending = True
        self.revive()

    def revive(self):
        # Finish a rollback that ran out of memory -> True if open again.
        if not self.pending or self.closed:
            return False
        if self.pager is None:  # the file was closed (compact's swap)
            self.reopen_file()
        else:
            self.pager.discard()
            self._bt_open()
        self.pending = False
        self.rolled_back = True
        return True

    def reopen(self):
        # A fresh btree handle on the committed file: Berkeley DB never
        # clears B_METADIRTY after creating a file, so such a handle rewrites
        # page 0 at every sync (on LittleFS: a copy of the whole file).
        bt = self.bt
        self.bt = None
        if bt.close() != 0:
            raise OSError(EIO, "%s: close failed" % self.path)
        self.pager.commit()
        self._bt_open()

    def close(self):
        # Commit and close; OSError if the last commit fails (the file then
        # holds the previous commit, and the handles are closed anyway).
        try:
            bt = self.bt
            if bt is not None and not self.suspect():
                p = self.pager
                p.err = None
                self.bt = None
                r = bt.close()
                if r != 0 or p.err is not None:
                    e = p.err
                    raise named(e if isinstance(e, OSError) else OSError(EIO), self.path, "write")
                p.commit()
        finally:
            self.close_handles()
            self.closed = True
            release(self.path, self)

    def reopen_file(self):
        # Open the file again (after compact() replaced it).
        self.close_handles()
        self._open(self.psize)

    def close_handles(self):
        bt = self.bt
        self.bt = None
        p = self.pager
        discard_bt(bt, p)
        self.pager = None
        if p is not None:
            try:
                p.close()
            except OSError:
                pass

    def purge(self):
        # Drop everything: a new empty database file in place of this one.
        self.close_handles()
        try:
            _remove(self.path + journal.SUFFIX)
            os.remove(self.path)
        except OSError as e:
            if exists(self.path):
                raise named(e, self.path, "remove")
        self._open(self.pagesize)

    def usage(self):
        return btpage.usage(self.pager, self.size(), self.psize)
