# The flash-friendly database format (format 2): a folder of immutable chunk
# files and a ring of small log files. Measurements and the alternatives
# weighed: docs/storage.md.
#
# Why: on LittleFS, writing inside a file rewrites it from there to its end,
# so committing a btree file costs more the bigger it is; a file of up to 128
# bytes lives inside its folder's metadata and creating or rewriting it costs
# a fraction of an erase block. So nothing here is ever written in place:
#
#   <db>/h        header: magic, page size, database id, ring size and
#                 slots per subfolder (written once)
#   <db>/c/c%08x  chunk: pages, then u32 page number per page, then a tail:
#                 u32 count, seq, logseq, npages, crc of the pages, crc of the
#                 table and tail (seeded with the database id), magic b"MTC2"
#                 (in a subfolder: LittleFS looks a path up through the
#                 metadata of every folder on it, so the database folder
#                 stays small and a log slot's cost does not grow with the
#                 chunks: 176 -> 490 µs at 6 -> 160 chunks beside it, 155-161 in c/)
#   <db>/l/%d/%d  log slot i as l/<i // GROUP>/<i % GROUP> (RING of them;
#                 on FAT RING_FAT, and on volumes under GROUP_MIN blocks,
#                 all in l/ as l/%d): one part of a
#                 commit record: u8 part<<4 | parts-1,
#                 u32 seq, bytes, u32 crc (seeded with the database id)
#
# A commit (every write call with autoflush) writes that call's records as
# one log record into the next slot(s) of the ring and syncs: that is the
# commit point, a fraction of an erase block whatever the database's size.
# The btree pages the calls dirtied stay in RAM (beyond the budget: in the
# chunk being prepared) until a checkpoint writes them as one new chunk, when
# the ring is full or a record does not fit it. A chunk's pages supersede
# older copies; chunks left without a live page are deleted, and chunks with
# little left live are copied forward so that the files hold at most about
# twice the live pages (1 + SLACK). Chunks are verified (CRC) when first read.
# Open: read every chunk's table (which chunk holds each page), then hand the
# log records newer than the last chunk to the database layer to replay.
import gc
import io
import os
import struct
from array import array

from . import filestore as fs
from .errors import CorruptDBError, DBError

try:
    from binascii import crc32
except ImportError:  # pragma: no cover
    crc32 = None

HEAD = b"MTDBF2\x00\x01"  # (\x00\x00: a development version, chunks beside "h")
TAIL = b"MTC2"
TAILLEN = 28
RING = 64          # log slots (more: fewer checkpoints, dearer slot writes)
GROUP = 8          # log slots per subfolder of l/ (LittleFS: a file is created
                   # through its folder's metadata, whose cost grows with the
                   # folder: 8 subfolders of 8 halve the CPU time and the
                   # bytes read of a commit, with ~20 % fewer erases, for 2
                   # blocks of flash per subfolder; docs/storage.md)
GROUP_MIN = 512    # ... on volumes of at least this many blocks (the subfolders
                   # take 16 blocks: at most 1/32 of the volume); smaller: l/%d
RING_FAT = 16      # on FAT, where each slot file takes a whole cluster (no subfolders)
PART = 128         # largest slot file kept inside the folder's metadata (LittleFS default mount)
PARTLOAD = PART - 9
MAXPARTS = 4       # a bigger record is committed by a checkpoint instead
BUDGET = None      # bytes of dirty pages kept in RAM between checkpoints
                   # (None: 1/8 of the free heap at open, 8..24 KB)
SLACK = 1.0        # chunk files may hold (1 + SLACK) x the live pages before GC
NOPAGE = 0xFFFFFFFF
HANDLES = 16       # chunk files kept open for reads (~265 bytes each on LittleFS):
                   # opening one costs ~200 µs on the qemu board; with 3, a random
                   # get of a 1,000-record database opened 1.3 files (381 µs),
                   # with every chunk open it takes 116 µs
HANDLES_MAX = 64   # ... on a big heap (PSRAM) one per 32 KB free at open, up to this
MAPLEAF = 128      # page-map and page-table entries per array (512 bytes; entry pg
                   # is in array pg >> 7 at pg & 127): a big database needs no
                   # block over 512 bytes (a fragmented heap of 1 KB holes)


def _leaf(j):
    # entries of a map array that holds entry j (steps of 32: a small
    # database's map stays small)
    j = (j + 32) & ~31
    return j if j < MAPLEAF else MAPLEAF


def _grow(loc, n):
    # The page map (a list of arrays of MAPLEAF entries, the last one maybe
    # shorter: page pg is loc[pg >> 7][pg & 127]) with room for n pages; new
    # entries NOPAGE.
    if not n:
        return
    i = (n - 1) >> 7  # the array of the last page
    k = len(loc) - 1 if loc else 0  # the first array that may be short
    while len(loc) <= i:
        loc.append(array("I"))
    for k in range(k, i + 1):
        a = loc[k]
        m = MAPLEAF if k < i else _leaf((n - 1) & 127)
        if len(a) < m:
            a.extend(b"\xff" * (4 * (m - len(a))))  # (MicroPython: any buffer)


def _pieces(f, off, n):
    # A chunk's page table (n entries at offset off of f) in arrays of at
    # most MAPLEAF entries.
    f.seek(off)
    while n > 0:
        k = n if n < MAPLEAF else MAPLEAF
        b = f.read(4 * k)
        if len(b) != 4 * k:
            raise OSError(fs.EIO)
        yield array("I", b)
        n -= k


def _at(m, pg, none):
    # Entry pg of a map of arrays (the page map, see _grow; the spilled
    # pages' map, see _spill, whose arrays may be None or short), or none.
    i = pg >> 7
    if i < len(m):
        a = m[i]
        if a is not None and pg & 127 < len(a):
            return a[pg & 127]
    return none


def _tab_add(tabs, pg):
    # the page table of the chunk being written: a list of arrays of at
    # most MAPLEAF entries
    t = tabs[-1]
    if len(t) >= MAPLEAF:
        t = array("I")
        tabs.append(t)
    t.append(pg)


def is_db(path):
    # True if `path` is a folder holding a format-2 database header.
    try:
        with open(path + "/h", "rb") as f:
            return f.read(6) == HEAD[:6]
    except OSError:
        return False


def slot(path, i, group):
    # the file of log slot i (group: slots per subfolder, 0: none)
    if group:
        return "%s/l/%d/%d" % (path, i // group, i % group)
    return "%s/l/%d" % (path, i)


def chunk(path, seq):
    # the file of chunk seq
    return "%s/c/c%08x" % (path, seq)


def chunk_seqs(d):
    # sequence numbers of the chunk files in folder d (unsorted)
    out = []
    for name in os.listdir(d):
        if fs.is_chunk(name):
            try:
                out.append(int(name[1:], 16))
            except ValueError:
                pass
    return out


def log_folders(path, ring, group):
    # the folders holding the log slots
    if not group:
        return [path + "/l"]
    return ["%s/l/%d" % (path, j) for j in range(ring // group)]


def log_dirs(path, ring, group):
    # Make the log's folders that are missing (a new database, or a power cut
    # while it was being made): l/ and its subfolders.
    if not fs.isdir(path + "/l"):
        fs.mkdir(path + "/l")
    if group:
        have = os.listdir(path + "/l")
        for d in log_folders(path, ring, group):
            if d[d.rfind("/") + 1:] not in have:
                fs.mkdir(d)


def read_log(path, ring, group, dbid, logseq):
    # -> (payloads of the commit records after logseq, in order; the last
    # sequence number read). A slot that fails its CRC was torn by a power
    # cut: ignored (only the newest, unacknowledged record can be).
    parts = {}
    for i in range(ring):
        try:
            with open(slot(path, i, group), "rb") as f:
                b = f.read(PART + 16)
        except OSError:
            continue
        if len(b) < 9 or struct.unpack_from("<I", b, len(b) - 4)[0] != crc32(memoryview(b)[:-4], dbid):
            continue
        seq = struct.unpack_from("<I", b, 1)[0]
        if seq > logseq:
            parts[seq] = b
    out = []
    seq = logseq + 1
    while seq in parts:
        b = parts[seq]
        if b[0] >> 4:
            break
        n = (b[0] & 15) + 1
        rec = bytearray(memoryview(b)[5:-4])
        for k in range(1, n):
            p = parts.get(seq + k)
            if p is None or p[0] != (k << 4 | (n - 1)):
                rec = None
                break
            rec.extend(memoryview(p)[5:-4])
        if rec is None:
            break
        out.append(rec)
        seq += n
    for s in parts:
        if s >= seq + MAXPARTS:
            # a later record exists, so the one that breaks the chain was
            # acknowledged: it is damaged
            raise CorruptDBError("%s: commit log record %d is damaged" % (path, seq))
    return out, seq - 1


class _Chunk:
    # one chunk file: its sequence number, pages, live pages, state
    __slots__ = ("seq", "n", "live", "ok", "crc", "logseq")

    def __init__(self, seq, n, crc, logseq):
        self.seq = seq
        self.n = n
        self.live = 0
        self.ok = False  # pages verified against crc
        self.crc = crc
        self.logseq = logseq


class ChunkPager(io.IOBase):
    # The stream btree runs over. Same rules as filestore.Pager: never raise
    # into btree's C code, no allocation in the usual paths.

    def __init__(self, store):
        fs._init_mem()  # (seeks: fs.stream_seek)
        self.st = store
        self.psize = store.psize
        self.drop = False
        self.pos = 0
        self.err = None
        self.lost = False
        b = store.ram
        if b is None:
            gc.collect()
            b = min(24576, max(8192, gc.mem_free() // 8))
        n = self.limit = min(255, b // self.psize)
        self.slots = [bytearray(self.psize) for _ in range(n)]
        self.stack = bytearray(range(n))
        self.sp = n
        ov = self.ov = {}  # page number -> slot, pages dirtied since the checkpoint
        for i in range(n + 1):
            ov[-1 - i] = 0
        for i in range(n + 1):
            del ov[-1 - i]  # the table keeps its size
        self.pf = None      # the chunk being prepared (spilled pages)
        self.pend = None    # page number -> slot + 1 in it (0: not there; _spill)
        self.pn = 0         # pages in it

    # --- stream protocol (called by btree) ---
    def readinto(self, buf):
        try:
            pos = self.pos
            ps = self.psize
            pg = pos // ps
            o = pos - pg * ps
            n = len(buf)
            if o + n > ps:
                n = ps - o
            i = self.ov.get(pg)
            if i is not None:
                if n == ps:
                    buf[:] = self.slots[i]
                else:
                    buf[:n] = memoryview(self.slots[i])[o:o + n]
                self.pos = pos + n
                return n
            pend = self.pend
            j = 0 if pend is None else _at(pend, pg, 0)
            if j:
                f = self.pf
                f.seek((j - 1) * ps + o)
                r = f.readinto(buf) or 0
            else:
                r = self.st.read_page(pg, o, buf)
            self.pos = pos + r
            return r
        except Exception as e:  # noqa: BLE001 - never raise into btree
            if self.pf is not None:
                self.lost = True  # (LittleFS flushes spilled pages before a read)
            return self._fail(e)

    def write(self, buf):
        if self.drop:
            return len(buf)  # (fs.discard_bt)
        try:
            pos = self.pos
            ps = self.psize
            n = len(buf)
            if n != ps or pos % ps:
                raise OSError(fs.EINVAL)  # btree writes whole pages
            pg = pos // ps
            ov = self.ov
            i = ov.get(pg)
            if i is None and self.sp:
                self.sp -= 1
                i = self.stack[self.sp]
                ov[pg] = i
            if i is not None:
                self.slots[i][:] = buf
            else:
                try:
                    self._spill(pg, buf)
                except BaseException:
                    self.lost = True  # neither in RAM nor on flash
                    raise
            self.pos = pos + n
            st = self.st
            if self.pos > st.end:
                st.end = self.pos
            return n
        except Exception as e:  # noqa: BLE001
            return self._fail(e)

    def _spill(self, pg, buf):
        # RAM budget used up: the page goes into the chunk being prepared.
        # pend: arrays of at most MAPLEAF entries, made as needed (a big
        # spill, e.g. compact() of a big database, needs no big block)
        f = self.pf
        if f is None:
            f = self.pf = self.st.start_chunk()
            self.pend = []
            self.pn = 0
        f.seek(self.pn * self.psize)
        if f.write(buf) != self.psize:
            raise OSError(fs.ENOSPC)
        m = self.pend
        i = pg >> 7
        j = pg & 127
        while len(m) <= i:
            m.append(None)
        a = m[i]
        if a is None:
            a = m[i] = array("I", bytes(4 * _leaf(j)))
        elif j >= len(a):
            a.extend(bytes(4 * (_leaf(j) - len(a))))
        self.pn += 1
        a[j] = self.pn
        _tab_add(self.st.ptab, pg)

    def _fail(self, e):
        return fs.stream_fail(self, e)

    def ioctl(self, req, arg):
        try:
            if req == 2:  # MP_STREAM_SEEK
                return fs.stream_seek(self, arg, self.st.end)
            if req == 1 or req == 4:
                return 0  # commits are driven by ChunkStore
            return -fs.EINVAL
        except Exception as e:  # noqa: BLE001
            return self._fail(e)

    # Python-level seek/tell for our own readers (btpage.usage)
    def seek(self, off, whence=0):
        if whence == 1:
            off += self.pos
        elif whence == 2:
            off += self.st.end
        self.pos = off
        return off

    def tell(self):
        return self.pos

    def dirty(self):
        return bool(self.ov) or self.pf is not None

    def clear(self):
        # forget the dirty pages (after a checkpoint or a rollback)
        ov = self.ov
        for pg in list(ov):
            self.stack[self.sp] = ov.pop(pg)
            self.sp += 1
        self.pf = None
        self.pend = None
        self.pn = 0
        self.err = None
        self.lost = False


class ChunkStore(fs.PagedStore):
    # A format-2 database folder opened for btree: .bt, .new, .psize, .path,
    # .replay (commit records newer than the last checkpoint, for the
    # database layer to apply at open and after a rollback).

    logs = True  # commits take the calls' records (FileStore: False)

    def __init__(self, path, pagesize, cachesize, create=True, ram=None):
        # ram: bytes for dirty pages between checkpoints (None: BUDGET)
        path = fs.normpath(path)
        self.path = path
        self.ram = BUDGET if ram is None else ram
        self.pagesize = pagesize
        self.csize = cachesize
        self.bt = None
        self.pager = None
        self.flushes = 0        # commits
        self.checkpoints = 0
        self.parts = 0          # log slots written
        self.ck_pages = 0       # pages written by checkpoints (garbage collection included)
        self.gc_pages = 0       # of which copied forward
        self.rolled_back = False
        self.pending = False
        self.closed = False
        self.recovered = None
        fs.claim(path, self)
        try:
            self._open(create)
        except BaseException:
            try:
                self.close_handles()
            finally:
                fs.release(path, self)
            raise

    # --- opening ---------------------------------------------------------------
    def _open(self, create):
        path = self.path
        try:
            fs.recover_dir(path)
            if not is_db(path):
                if fs.isdir(path) and (chunk_seqs(path) or fs.isdir(path + "/c") and chunk_seqs(path + "/c")):
                    raise CorruptDBError("%s: the database header is missing or damaged" % path)
                if not create:
                    raise CorruptDBError("%s is not a MicroTetherDB database folder" % path)
                self._create()
            self._load()
        except OSError as e:
            raise fs.named(e, path)
        self.pager = ChunkPager(self)
        try:
            self._bt_open()
        except OSError as e:
            if self.damage:
                raise CorruptDBError(self.damage)
            raise fs.named(e, path)

    def _create(self):
        # A new database folder. One left by a power cut during creation
        # (an empty "l", a header that did not finish) is finished.
        path = self.path
        if fs.exists(path):
            for name in os.listdir(path):
                if (name == "l" or name == "c") and not fs.files_in(path + "/" + name):
                    continue
                if name == "h" and len(os.listdir(path)) <= 3:
                    continue
                raise DBError("%s: a folder with other files in it, not a database: %s" % (path, name))
        else:
            fs.mkdirs(path)
            fs.mkdir(path)
        ps = self.pagesize
        dbid = struct.unpack("<I", os.urandom(4))[0] if hasattr(os, "urandom") else 1
        if fs.fs_kind(path) == "fat":
            ring = RING_FAT
        elif fs.volume_blocks(path) >= GROUP_MIN:
            ring = RING | GROUP << 16
        else:
            ring = RING
        if not fs.isdir(path + "/c"):
            fs.mkdir(path + "/c")  # before the header: a database always has it
        b = HEAD + struct.pack("<III", ps, dbid, ring)
        b += struct.pack("<I", crc32(b))
        with fs.create(path + "/h") as f:
            if f.write(b) != len(b):
                raise OSError(fs.ENOSPC)
            f.flush()
        log_dirs(path, ring & 0xFFFF, ring >> 16)

    def _load(self):
        # header, chunk tables -> page map, log records to replay
        path = self.path
        with open(path + "/h", "rb") as f:
            b = f.read(64)
        if b[:8] == HEAD[:7] + b"\x00":
            raise CorruptDBError("%s: made by a development version of format 2 (its chunks are beside "
                                 "the header, not in c/): MicroTetherDB.repair() converts it" % path)
        if len(b) < 24 or b[:8] != HEAD or struct.unpack_from("<I", b, 20)[0] != crc32(b[:20]):
            raise CorruptDBError("%s: damaged database header" % path)
        self.psize, self.dbid, ring = struct.unpack_from("<III", b, 8)
        self.group = g = ring >> 16  # 0: slots in l/ (FAT, and the first format-2 databases)
        self.ring = ring = ring & 0xFFFF
        ps = self.psize
        if ps < 512 or ps > 65536 or ps & (ps - 1) or not 4 <= ring <= 255 or g > ring or g and ring % g:
            raise CorruptDBError("%s: damaged database header" % path)
        log_dirs(path, ring, g)  # (a power cut while they were being made)
        self.bsize = fs.block_size(path + "/h")
        self.scratch = bytearray(ps)
        self.damage = None
        self.reset = False
        if not fs.isdir(path + "/c"):  # (made before the header)
            raise CorruptDBError("%s: the chunk folder c/ is missing" % path)
        seqs = chunk_seqs(path + "/c")
        seqs.sort()
        self.chunks = {}          # id -> _Chunk (ids: 0.. in sequence order)
        self.ids = []             # ids of live chunk files, oldest first
        self.loc = []             # page number -> id << 16 | slot (see _grow)
        self.mapped = 0           # pages the map may hold (entries past it: NOPAGE)
        self.handles = {}         # id -> open file (a few)
        self.hmax = max(HANDLES, min(HANDLES_MAX, gc.mem_free() >> 15))
        self.ptab = None
        self.logseq = 0
        self.end = 0
        self.seq = 0
        last = len(seqs) - 1
        for k in range(len(seqs)):
            seq = seqs[k]
            if k == last and not self._finished(seq):
                # the newest chunk was being written when the power went (its
                # tail's magic is written last): not part of the database, and
                # the log records it would have covered are still in the ring
                self._remove_chunk(seq)
                continue
            cid = len(self.ids)
            c, npages = self._read_chunk(seq, cid)  # damaged: CorruptDBError
            self.chunks[cid] = c
            self.ids.append(cid)
            self.logseq = c.logseq
            self.end = npages * ps
            self.seq = seq
        # the newest chunk may have started a smaller tree (purge): older
        # pages past its end are not part of the database
        self._trim(self.end // ps)
        self.ck_end = self.end  # btree's size as of the last checkpoint
        self._count_live()
        for cid in self.ids[:-1]:  # (the newest carries the log position)
            if not self.chunks[cid].live:
                self._drop(cid)
        self.replay = self._read_log()
        self.new = not self.ids and not self.replay

    def _finished(self, seq):
        # False for a chunk that a power cut interrupted: its tail's magic is
        # written last. (A chunk that was complete but lost its last bytes is
        # caught by the log: the records it covered are overwritten by newer
        # ones, and the log's gap raises CorruptDBError.)
        try:
            with open(chunk(self.path, seq), "rb") as f:
                size = f.seek(0, 2)
                if size < TAILLEN:
                    return False
                f.seek(size - 4)
                return f.read(4) == TAIL
        except OSError:
            return False

    def _read_chunk(self, seq, cid):
        # A chunk's tail and page table (CRC-checked, then entered in the
        # page map as chunk cid) -> (_Chunk, pages in the tree)
        path = self.path
        with open(chunk(path, seq), "rb") as f:
            size = f.seek(0, 2)
            if size < TAILLEN:
                raise CorruptDBError("%s: chunk %08x is short" % (path, seq))
            f.seek(size - TAILLEN)
            t = f.read(TAILLEN)
            n, s, logseq, npages, pcrc, mcrc = struct.unpack_from("<IIIIII", t, 0)
            if t[24:] != TAIL or s != seq or size != n * self.psize + 4 * n + TAILLEN:
                raise CorruptDBError("%s: chunk %08x is damaged" % (path, seq))
            # one pass: entered and CRC-checked together (damage fails the
            # whole open, so the entries of a damaged table are never used)
            loc = self.loc
            _grow(loc, npages)
            if npages > self.mapped:
                self.mapped = npages
            crc = self.dbid
            j = cid << 16
            for tab in _pieces(f, n * self.psize, n):
                crc = crc32(tab, crc)
                for pg in tab:
                    if pg >= npages:
                        raise CorruptDBError("%s: chunk %08x holds page %d of %d" % (path, seq, pg, npages))
                    loc[pg >> 7][pg & 127] = j
                    j += 1
            if crc32(t[:20], crc) != mcrc:
                raise CorruptDBError("%s: chunk %08x is damaged" % (path, seq))
        return _Chunk(seq, n, pcrc, logseq), npages

    def _trim(self, npages):
        # the page map without the pages from npages on (a smaller tree:
        # purge); their chunks lose them as live pages
        if npages >= self.mapped:
            return
        loc = self.loc
        chunks = self.chunks
        for pg in range(npages, self.mapped):
            a = loc[pg >> 7]
            v = a[pg & 127]
            if v != NOPAGE:
                c = chunks.get(v >> 16)
                if c is not None:
                    c.live -= 1
                a[pg & 127] = NOPAGE
        del loc[(npages + MAPLEAF - 1) // MAPLEAF:]
        self.mapped = npages

    def _count_live(self):
        for cid in self.ids:
            self.chunks[cid].live = 0
        chunks = self.chunks
        for a in self.loc:
            for v in a:
                if v != NOPAGE:
                    chunks[v >> 16].live += 1

    def _remove_chunk(self, seq):
        try:
            os.remove(chunk(self.path, seq))
        except OSError:
            pass

    def _drop(self, cid):
        # a chunk without live pages: its file goes
        c = self.chunks.pop(cid)
        self.ids.remove(cid)
        f = self.handles.pop(cid, None)
        if f is not None:
            f.close()
        self._remove_chunk(c.seq)

    # --- the log -----------------------------------------------------------------
    def _read_log(self):
        recs, self.lseq = read_log(self.path, self.ring, self.group, self.dbid, self.logseq)
        return recs

    log_max = MAXPARTS * PARTLOAD  # bytes: a bigger commit record is a checkpoint

    def commit(self, payload, full=False):
        # Make the calls' records durable: one log record in the ring (the
        # commit point), or, when it does not fit or full=True (changes that
        # are not records: indexes), a checkpoint. Raises on failure; then
        # the caller rolls back (rollback() replays the log, which holds
        # every call that returned).
        if not payload and not full:
            return
        self.flushes += 1
        n = (len(payload) + PARTLOAD - 1) // PARTLOAD if payload else 0
        room = self.ring - (self.lseq - self.logseq)
        if full or n > MAXPARTS or n > room:
            self.checkpoint()
            return
        seq = self.lseq + 1
        mv = memoryview(payload)
        for k in range(n):
            b = struct.pack("<BI", k << 4 | (n - 1), seq + k) + mv[k * PARTLOAD:(k + 1) * PARTLOAD]
            b += struct.pack("<I", crc32(b, self.dbid))
            name = slot(self.path, (seq + k) % self.ring, self.group)
            with fs.create(name) as f:
                if f.write(b) != len(b):
                    raise OSError(fs.ENOSPC, "%s: no space left on device" % name)
                f.flush()  # <- the commit point (of the last part)
        self.lseq = seq + n - 1
        self.parts += n
        p = self.pager
        if self.ring - (self.lseq - self.logseq) < MAXPARTS or p.pf is not None:
            # the ring is (almost) full, or pages left RAM: checkpoint now,
            # while the calls are safe in the log
            try:
                self.checkpoint()
            except (OSError, MemoryError):
                if p.lost:
                    # the pages that left RAM went with the chunk: back to
                    # the chunks plus the log (the caller replays .replay)
                    self.rollback()
                # otherwise the pages are still in RAM: tried again later

    def logs_pending(self):
        return self.lseq > self.logseq

    # --- reading pages ------------------------------------------------------------
    def read_page(self, pg, o, buf):
        # bytes of page pg from its chunk (called inside btree: no raising
        # beyond OSError/MemoryError, which the pager turns into -errno)
        if pg * self.psize >= self.end:
            return 0  # past the end (also of a tree just started by purge)
        v = _at(self.loc, pg, NOPAGE)
        if v == NOPAGE:
            self.damage = "%s: page %d is in no chunk" % (self.path, pg)
            raise OSError(fs.EIO)
        f = self._handle(v >> 16)
        f.seek((v & 0xFFFF) * self.psize + o)
        return f.readinto(buf) or 0

    def _handle(self, cid):
        f = self.handles.get(cid)
        if f is None:
            c = self.chunks[cid]
            hs = self.handles
            if len(hs) >= self.hmax:
                for k in hs:
                    hs.pop(k).close()
                    break
            f = open(chunk(self.path, c.seq), "rb")
            if not c.ok:
                self._verify(f, c)
            hs[cid] = f
        return f

    def _verify(self, f, c):
        # the chunk's pages against its CRC, once per session
        buf = self.scratch
        crc = 0
        f.seek(0)
        for _ in range(c.n):
            if f.readinto(buf) != self.psize:
                raise OSError(fs.EIO)
            crc = crc32(buf, crc)
        if crc != c.crc:
            self.damage = "%s: chunk %08x is damaged (CRC)" % (self.path, c.seq)
            f.close()
            raise OSError(fs.EIO)
        c.ok = True

    # --- checkpoints ------------------------------------------------------------
    def start_chunk(self):
        # the file of the next chunk, for pages that leave RAM
        self.ptab = [array("I")]
        return fs.create(chunk(self.path, self.seq + 1), "w+b")

    def checkpoint(self):
        # Write every dirty page (and some live pages of mostly dead chunks)
        # as one new chunk: its sync is the commit point of all calls so far.
        p = self.pager
        p.err = None
        if self.bt.flush() != 0 or p.err is not None:
            e = p.err
            if isinstance(e, MemoryError):
                raise MemoryError("%s: out of memory while writing a checkpoint" % self.path)
            raise fs.named(e if isinstance(e, OSError) else OSError(fs.EIO), self.path, "write")
        if not p.dirty() and not self.logs_pending():
            return
        try:
            self._write_chunk(p)
        except BaseException as e:
            f = p.pf
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
            self._remove_chunk(self.seq + 1)
            p.lost = True  # the pages since the last checkpoint are gone: roll back
            if isinstance(e, MemoryError):
                raise MemoryError("%s: out of memory while writing a checkpoint" % self.path)
            raise fs.named(e, self.path, "checkpoint") if isinstance(e, OSError) else e
        self.checkpoints += 1

    def _write_chunk(self, p):
        ps = self.psize
        f = p.pf
        if f is None:
            f = p.pf = self.start_chunk()
            p.pend = []
            p.pn = 0
        tab = self.ptab
        n = p.pn
        slots = p.slots
        ov = p.ov
        crcs = 0
        # the pages already spilled (read back for the CRC), then the RAM ones
        buf = bytearray(ps)
        f.seek(0)
        for _ in range(n):
            f.readinto(buf)
            crcs = crc32(buf, crcs)
        f.seek(n * ps)
        for pg in sorted(ov):
            b = slots[ov[pg]]
            if f.write(b) != ps:
                raise OSError(fs.ENOSPC)
            crcs = crc32(b, crcs)
            _tab_add(tab, pg)
            n += 1
        # garbage collection: copy the live pages of mostly dead chunks
        for cid, j, pg in self._gc_pages(n):
            c = self.chunks[cid]
            g = self._handle(cid)
            g.seek(j * ps)
            if g.readinto(buf) != ps:  # (buf: a fresh page buffer, see above)
                raise OSError(fs.EIO)
            if f.write(buf) != ps:
                raise OSError(fs.ENOSPC)
            crcs = crc32(buf, crcs)
            _tab_add(tab, pg)
            n += 1
            self.gc_pages += 1
        self.ck_pages += n
        seq = self.seq + 1
        npages = (self.end + ps - 1) // ps
        t = struct.pack("<IIIII", n, seq, self.lseq, npages, crcs)
        crc = self.dbid
        for a in tab:
            if f.write(a) != 4 * len(a):
                raise OSError(fs.ENOSPC)
            crc = crc32(a, crc)
        t += struct.pack("<I", crc32(t, crc)) + TAIL
        if f.write(t) != len(t):
            raise OSError(fs.ENOSPC)
        f.flush()  # <- the commit point
        f.close()
        p.pf = None
        # the new chunk's pages supersede the old copies
        cid = (self.ids[-1] + 1) if self.ids else 0
        c = _Chunk(seq, n, crcs, self.lseq)
        c.ok = True
        self.chunks[cid] = c
        self.ids.append(cid)
        loc = self.loc
        _grow(loc, npages)
        if npages > self.mapped:
            self.mapped = npages
        chunks = self.chunks
        c.live = n  # (less the pages it holds twice: spilled twice, below)
        j = cid << 16
        for a in tab:
            for pg in a:
                b = loc[pg >> 7]
                v = b[pg & 127]
                if v != NOPAGE:
                    chunks[v >> 16].live -= 1
                b[pg & 127] = j
                j += 1
        self._trim(npages)  # a smaller tree (purge): the rest is dead
        self.seq = seq
        self.logseq = self.lseq
        self.ck_end = npages * ps
        self.ptab = None
        p.clear()
        for k in self.ids[:-1]:  # (the newest carries the log position)
            if not chunks[k].live:
                self._drop(k)
        if self.reset:  # purge: the log's records are all behind the new tree
            self.reset = False
            for d in log_folders(self.path, self.ring, self.group):
                for name in os.listdir(d):
                    os.remove(d + "/" + name)
        if cid >= 0xFFFF:
            self._renumber()

    def _gc_pages(self, n):
        # (chunk id, slot, page) of live pages to copy into the chunk being
        # written, from the chunks with the fewest live pages first: while
        # the files hold more than (1 + SLACK) x the live pages, as many as
        # the chunk's own pages (the work stays proportional to the changes);
        # otherwise only enough to fill the chunk's last erase block. Part of
        # a chunk may be taken: it shrinks, and goes when nothing is left.
        chunks = self.chunks
        stored = live = 0
        for cid in self.ids:
            c = chunks[cid]
            stored += c.n
            live += c.live
        per = max(1, (self.bsize - TAILLEN) // (self.psize + 4))
        fill = (per - (n % per)) % per
        want = fill
        if stored > live * (1 + SLACK) + 2 * per:
            want = n + fill
        out = []
        if not want:
            return out
        cands = sorted((chunks[cid].live / chunks[cid].n, cid) for cid in self.ids[:-1] if chunks[cid].live)
        loc = self.loc
        p = self.pager
        ov = p.ov
        pend = p.pend or ()
        npages = (self.end + self.psize - 1) // self.psize
        _grow(loc, npages)  # (pages of the tree not in the map yet: NOPAGE)
        for _, cid in cands:
            c = chunks[cid]
            j = 0
            for tab in _pieces(self._handle(cid), c.n * self.psize, c.n):
                for pg in tab:
                    # a page this checkpoint writes anyway (or past the tree's
                    # end) must not be copied: the copy would come after it
                    if pg < npages and loc[pg >> 7][pg & 127] == cid << 16 | j \
                            and pg not in ov and not _at(pend, pg, 0):
                        out.append((cid, j, pg))
                        if len(out) >= want:
                            return out
                    j += 1
        return out

    def _renumber(self):
        # chunk ids are 16 bits: after 65535 checkpoints in one session
        m = {}
        for k in range(len(self.ids)):
            m[self.ids[k]] = k
        self.chunks = dict((m[k], self.chunks[k]) for k in self.ids)
        for h in list(self.handles.values()):
            h.close()
        self.handles = {}
        for a in self.loc:
            for i in range(len(a)):
                v = a[i]
                if v != NOPAGE:
                    a[i] = m[v >> 16] << 16 | (v & 0xFFFF)
        self.ids = list(range(len(self.ids)))

    # --- the store interface ------------------------------------------------------
    def size(self):
        return self.end

    def rollback(self):
        # Back to the last durable state: the chunks plus the log (every call
        # that returned); .replay holds the log records to apply again.
        bt = self.bt
        self.bt = None
        p = self.pager
        fs.discard_bt(bt, p)
        self.pending = True
        self._drop_prepared(p)
        p.clear()
        self.end = self.ck_end
        self.replay = self._read_log()
        self._bt_open()
        self.pending = False
        self.rolled_back = True

    def revive(self):
        if not self.pending or self.closed:
            return False
        if self.pager is None:  # the folder was closed (compact's swap)
            self.reopen_file()
            self.pending = False
            self.rolled_back = True
        else:
            self.rollback()
        return True

    def reopen(self):
        pass  # (format 1 needs it after creating a file)

    def close(self):
        # The database layer has committed its calls (to the log): the pages
        # that no checkpoint wrote are dropped (the next open replays the log).
        self.abandon()

    def _drop_prepared(self, p):
        # The chunk being prepared (pages that left RAM) is not part of the
        # database: closed and deleted.
        if p.pf is not None:
            try:
                p.pf.close()
            except OSError:
                pass
            self._remove_chunk(self.seq + 1)

    def reopen_file(self):
        # Open the folder again (after compact() replaced it).
        self.close_handles()
        self._open(False)

    def close_handles(self):
        bt = self.bt
        self.bt = None
        p = self.pager
        fs.discard_bt(bt, p)
        self.pager = None
        if p is not None:
            self._drop_prepared(p)
        for f in list(getattr(self, "handles", {}).values()):
            try:
                f.close()
            except OSError:
                pass
        self.handles = {}

    def purge(self):
        # Drop everything: btree starts a new, empty tree over an empty
        # stream; the database layer writes its metadata and checkpoints,
        # and that one chunk (smaller page count, the whole log covered)
        # supersedes every older page at once: a power cut leaves the old
        # database or the empty one.
        bt = self.bt
        self.bt = None
        p = self.pager
        fs.discard_bt(bt, p)
        self._drop_prepared(p)
        p.clear()
        self.end = 0
        self.replay = []
        self.new = True
        self.reset = True  # the next checkpoint empties the log too
        self._bt_open()

    def usage(self):
        from . import btpage

        return btpage.usage(self.pager, self.size(), self.psize)

    def files(self):
        # chunk files, their pages, live pages (stats)
        st = 0
        lv = 0
        for cid in self.ids:
            st += self.chunks[cid].n
            lv += self.chunks[cid].live
        return len(self.ids), st, lv
