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
# a file for format 1, a folder for format 2, with a "<db>.swap" marker),
# every write, flush and close checked, and only a complete copy replaces the
# database (filestore.finish_replace). A power cut at any point leaves either
# the old or the new database, complete (the marker tells the next open
# which). The copy keeps the database's page size.
# In-memory mode: memstore.MemStore.compact() (a fresh store, the keys
# copied, swapped in; needs room for both copies while it runs).
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
        filestore.discard_bt(nb, p)  # (after a failure: nothing more written)
        p.close()
    _step("written")


def _write_copy2(bt, path, psize, csize):
    # Format 2: the copy is a new database folder, written as one checkpoint.
    from .chunkstore import ChunkStore

    # (a small RAM budget: the pages beyond it go straight into the chunk)
    cs = ChunkStore(path, psize, csize, ram=filestore.BUDGET // 2)
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
        # memstore.MemStore.compact: a fresh store, every key copied, swapped
        db._bt = None
        try:
            return st.compact()
        finally:
            db._bt = st.bt
    path = st.path
    db._commit()
    before = st.size()
    need = room_needed(st)
    filestore.check_room(path, need, "compact()")
    free = filestore.free_bytes(path)
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
                          "(needs about %d bytes, %s)" % (path, need, "free space unknown" if free is None else "%d were free" % free))
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
