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
# In-memory mode builds a new BytesIO the same way and swaps it in (needs
# room for both copies while it runs).
# Compaction.
#
# Berkeley DB 1.85 never shrinks its file and reuses only pages that became
# completely empty. compact() copies every key (records, TTL and secondary
# index entries, metadata) in key order into a fresh btree - sorted inserts
# fill its pages almost completely - and puts it in place of the old one.
#
# File mode: the database is committed, the room the copy needs is checked
# against the free space (OSError ENOSPC naming both, nothing written), the
# copy is written next to the database (filestore.begin_replace: "<db>.new",
# with a "<db>.swap" marker), every write, flush and close checked, and only a
# complete copy replaces the database (filestore.finish_replace). A power cut
# at any point leaves either the old or the new file, complete (the marker
# tells the next open which). The copy keeps the file's page size.
# In-memory mode builds a new BytesIO the same way and swaps it in (needs
# room for both copies while it runs).
from . import filestore

_hook = None  # tests: called with a step name; raising Cut there simulates a power cut


class Cut(Exception):
    pass


def _step(name):
    if _hook is not None:
        _hook(name)


def _copy(src, dst):
    n = 0
    for k, v in src.items():
        dst[k] = v
        n += 1
        if n == 8:
            _step("copy")
    return n


def _write_copy(bt, path, psize, csize):
    # The whole btree `bt` into a new file `path`, through a Pager (so every
    # failure keeps its errno); raises on any failure.
    import btree

    # half the usual RAM for pages: they reach the file sorted at the end
    # (LittleFS copies a file's tail for every write before its end)
    p = filestore.Pager(path, False, psize, filestore.BUDGET // 2)
    nb = None
    try:
        nb = btree.open(p, pagesize=psize, cachesize=csize)
        _copy(bt, nb)
        _step("copied")
        r = nb.close()
        nb = None
        if r != 0 or p.err is not None:
            e = p.err
            raise filestore.named(e if isinstance(e, OSError) else OSError(filestore.EIO), path, "write the copy")
        p.commit()
    finally:
        if nb is not None:
            try:
                nb.close()
            except Exception:  # noqa: BLE001
                pass
        p.close()
    _step("written")


def _write_copy2(bt, path, psize, csize):
    # Format 2: the copy is a new database folder, written as one checkpoint.
    from .chunkstore import ChunkStore

    cs = ChunkStore(path, psize, csize)
    try:
        _copy(bt, cs.bt)
        _step("copied")
        cs.checkpoint()
        cs.close()
    except BaseException:
        cs.abandon()
        raise
    _step("written")


def room_needed(st):
    # Bytes the copy needs: the live part of the file, packed, plus a few
    # pages and filesystem blocks of slack.
    live = st.usage()["live_bytes"]
    return live + live // 8 + 4 * st.psize + 2 * filestore.block_size(st.path)


def compact(db):
    # -> bytes reclaimed (old size - new size)
    db._wguard()
    st = db._st
    if st.mem:
        import btree

        return _compact_mem(db, st, btree)
    path = st.path
    db._commit()
    before = st.size()
    need = room_needed(st)
    filestore.check_room(path, need, "compact()")
    new = filestore.begin_replace(path)
    _step("start")
    try:
        if st.logs:
            _write_copy2(db._bt, new, st.psize, st.csize)
        else:
            _write_copy(db._bt, new, st.psize, st.csize)
    except Cut:
        raise
    except BaseException as e:
        # Out of memory, MicroPython builds exceptions in one emergency
        # buffer: a nested (handled) OSError below would overwrite e.
        mem = isinstance(e, MemoryError)
        filestore.abort_replace(path)
        if not mem and isinstance(e, OSError) and e.args and e.args[0] == filestore.ENOSPC:
            raise OSError(filestore.ENOSPC, "%s: compact() ran out of space writing its copy "
                          "(needs about %d bytes, %s free before)" % (path, need, filestore.free_bytes(path)))
        _reraise(e, mem)
    # The copy is complete: from here on every way out reopens the store
    # (recover() finishes an interrupted replacement).
    db._bt = None
    err = None
    try:
        st.close_handles()
        _step("closed")
        filestore.finish_replace(path)
        _step("swapped")
    except Cut:
        raise
    except BaseException as e:  # noqa: BLE001
        err = e
    try:
        _reopen(db, st)
    except BaseException as e:  # noqa: BLE001 - e.g. out of memory: the next call reopens
        st.pending = True
        db._bt = None
        if err is None:
            err = e
    if err is not None:
        _reraise(err, isinstance(err, MemoryError))
    return before - st.size()


def _reraise(e, mem):
    if mem:
        raise MemoryError("compact: out of memory")
    raise e


def _reopen(db, st):
    import gc

    gc.collect()
    st.reopen_file()
    db._bt = st.bt


def _compact_mem(db, st, btree):
    import io

    bt = db._bt
    bt.flush()
    before = st.size()
    f = io.BytesIO()
    nb = btree.open(f, pagesize=st.psize, cachesize=st.csize)
    try:
        _copy(bt, nb)
        nb.flush()
    except BaseException as e:
        nb.close()
        raise e
    db._bt = None
    st.close()
    if st.budget is not None:
        # Back into a preallocated store of the full budget, as at open
        # (storage.py); the old one is free now.
        nb.close()
        f = _repack(f, st.prealloc_size())
        nb = btree.open(f, pagesize=st.psize, cachesize=st.csize)
        st._room = 0  # measured again by the next reserve()
    st.bt = nb
    st.f = f
    db._bt = nb
    return before - st.size()


def _repack(f, cap):
    # Copy the BytesIO f into a new one preallocated to cap bytes, page by
    # page (no second whole copy in RAM); keep f if there is no room for that.
    import io

    import gc

    pre = None
    from .storage import PREALLOC_HEADROOM

    if cap and gc.mem_free() >= cap + PREALLOC_HEADROOM:  # as Storage._open
        try:
            pre = io.BytesIO(cap)
        except MemoryError:
            pass
    if pre is None:
        f.seek(0)
        return f
    f.seek(0)
    buf = bytearray(2048)
    mv = memoryview(buf)
    while True:
        n = f.readinto(buf)
        if not n:
            break
        pre.write(mv[:n])
    pre.seek(0)  # btree.open reads the meta page from the current position
    return pre
