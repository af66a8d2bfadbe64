# Compaction and space accounting.
#
# Berkeley DB 1.85 never shrinks its file and reuses only pages that became
# completely empty.  compact() copies every key (records, TTL and secondary
# index entries, metadata) in key order into a fresh btree - sorted inserts
# fill its pages almost completely - and swaps it in.
#
# File mode, power-cut safe (at every instant either the old or the new file
# is complete and is what the next open uses):
#   1. commit the database, write "<db>.new", flush and close it
#   2. rename "<db>.new" -> "<db>.swp"        (the new file is now complete)
#   3. close the database, remove "<db>" (and a stale "<db>.jnl")
#   4. rename "<db>.swp" -> "<db>", reopen
# recover(), run by Storage before every open, finishes step 3-4 if a
# "<db>.swp" exists and deletes a leftover "<db>.new" (an unfinished copy).
# In-memory mode: memstore.MemStore.compact() (a fresh store, the keys
# copied, swapped in; needs room for both copies while it runs).
import os

NEW = ".new"
SWP = ".swp"
JNL = ".jnl"

_hook = None  # tests: called with a step name; raising Cut there simulates a power cut


class Cut(Exception):
    pass


def _step(name):
    if _hook is not None:
        _hook(name)


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def _swap(fn, swp, jnl):
    # "<fn>.swp" is complete: make it "<fn>".
    _remove(jnl)   # a journal of the old file must never touch the new one
    _remove(fn)
    _step("removed")
    os.rename(swp, fn)


def recover(fn):
    swp = fn + SWP
    if _exists(swp):
        _swap(fn, swp, fn + JNL)
    new = fn + NEW
    if _exists(new):
        _remove(new)


def _copy(src, dst):
    n = 0
    for k, v in src.items():
        dst[k] = v
        n += 1
        if n == 8:
            _step("copy")
    return n


def compact(db):
    # -> bytes reclaimed (old size - new size)
    import btree

    db._wguard()
    st = db._st
    if st.mem:
        # memstore.MemStore.compact: a fresh store, every key copied, swapped
        db._bt = None
        try:
            return st.compact()
        finally:
            db._bt = st.bt
    fn = st.filename
    new = fn + NEW
    swp = fn + SWP
    jnl = fn + JNL
    db._commit()
    before = st.size()
    _step("start")
    f = nb = None
    try:
        f = open(new, "w+b")
        nb = btree.open(f, pagesize=st.psize, cachesize=st.csize)
        _copy(db._bt, nb)
        _step("copied")
        nb.flush()
        nb.close()
        nb = None
        f.close()
        f = None
        _step("written")
        os.rename(new, swp)
    except Cut:
        raise
    except BaseException as e:
        # Out of memory, MicroPython builds exceptions in one emergency
        # buffer: a nested (handled) OSError below would overwrite e.
        mem = isinstance(e, MemoryError)
        if nb is not None:
            nb.close()
        if f is not None:
            f.close()
        _remove(new)
        _reraise(e, mem)
    # From here on "<db>.swp" is what the next open uses: the old file must
    # not be written any more, so every way out goes through _reopen().
    spare = None
    try:
        _step("renamed-new")
        spare = bytearray(2048)  # heap kept back for reopening
        db._bt = None
        st.close()
        _step("closed")
        _swap(fn, swp, jnl)
        _step("swapped")
    except Cut:
        raise
    except BaseException as e:
        mem = isinstance(e, MemoryError)
        spare = None
        db._bt = None
        if st.bt is not None:
            try:
                st.close()
            except Exception:
                pass
        _reopen(db, st, fn)  # the new file (recover() finishes the swap)
        _reraise(e, mem)
    spare = None
    _reopen(db, st, fn)
    return before - st.size()


def _reraise(e, mem):
    if mem:
        raise MemoryError("compact: out of memory")
    raise e


def _reopen(db, st, fn):
    # Open the file just written (or, after a failure, whichever is complete)
    # like Storage._open, without its page-by-page check: compact() wrote it.
    import btree
    import gc

    from . import journal

    gc.collect()
    for i in range(2):
        try:
            recover(fn)
            f = journal.JFile(fn) if journal.needed(fn) else open(fn, "r+b")
            try:
                st.bt = btree.open(f, pagesize=st.psize, cachesize=st.csize)
            except BaseException as e:
                f.close()
                raise e
            break
        except MemoryError:
            if i:
                raise
            gc.collect()
    st.f = f
    st.new = False
    db._bt = st.bt


def usage(db):
    # Page-level account of the store as last written (file mode: as of the
    # last flush): dead_bytes = unused room inside pages + free-list pages,
    # about what compact() would reclaim; live_bytes = the rest.
    st = db._st
    f = st.f
    size = st.size()
    ps = st.psize
    n = size // ps
    buf = bytearray(20)
    free = set()
    dead = 0
    if n:
        f.seek(0)
        f.readinto(buf)
        if int.from_bytes(buf[0:4], "little") == 0x053162:
            pg = int.from_bytes(buf[12:16], "little")
            while 0 < pg < n and pg not in free:
                free.add(pg)
                f.seek(pg * ps + 8)
                f.readinto(buf)
                pg = int.from_bytes(buf[0:4], "little")
    for pg in range(1, n):
        if pg in free:
            continue
        f.seek(pg * ps)
        f.readinto(buf)
        flags = buf[12]
        if flags & 0x03:  # P_BINTERNAL | P_BLEAF
            lower = buf[16] | (buf[17] << 8)
            upper = buf[18] | (buf[19] << 8)
            if upper >= lower:
                dead += upper - lower
    dead += len(free) * ps
    return {"live_bytes": size - dead, "dead_bytes": dead, "free_pages": len(free)}
