# asyncio API.  Imported on first use of an a* method or `async with`.
#
# Every awaitable call completes its work before it returns.  Single-record
# calls run at once (they never yield while holding the database).  Batches
# and cleanup work in chunks of CHUNK records and yield to the loop between
# chunks; while one is mid-way, other async writers wait for it (up to
# lock_timeout seconds, then DBLock) and synchronous writers get DBLock at once
# (a synchronous call cannot wait without blocking the loop).  Reads never wait.
import asyncio

from .errors import DBLock

CHUNK = 16


async def _acquire(db):
    lk = db._alock
    if lk is None:
        lk = db._alock = asyncio.Lock()
    to = db.lock_timeout
    if lk.locked() and to is not None:
        try:
            await asyncio.wait_for(lk.acquire(), to)
        except asyncio.TimeoutError:
            raise DBLock("database busy for more than lock_timeout=%s s" % to)
    else:
        await lk.acquire()
    if db._bt is None:
        lk.release()
        db._check_open()
    return lk


async def call(db, fn, args, kw):
    db._check_open()
    lk = await _acquire(db)
    try:
        return fn(*args, **kw)
    finally:
        lk.release()


async def put_batch(db, items, ttls):
    db._check_open()
    lk = await _acquire(db)
    try:
        ents, out = db._prep_batch(items, ttls)
        db._reserve_batch(ents)
        undo = []
        c0 = db._count
        db._abusy = True
        try:
            for i in range(0, len(ents), CHUNK):
                if i:
                    await asyncio.sleep(0)
                db._apply(ents, i, i + CHUNK, undo)
            db._check_batch(undo, c0)
        except BaseException:
            db._undo(undo, c0)
            raise
        finally:
            db._abusy = False
        if ents:
            db._after_write()
        return out
    finally:
        lk.release()


async def delete_batch(db, keys):
    db._check_open()
    lk = await _acquire(db)
    try:
        kbs = db._del_keys(keys)
        undo = []
        c0 = db._count
        now = db._now()
        n = 0
        db._abusy = True
        try:
            for i in range(0, len(kbs), CHUNK):
                if i:
                    await asyncio.sleep(0)
                n += db._del_apply(kbs, i, i + CHUNK, undo, now)
        except BaseException:
            db._del_undo(undo, c0)
            raise
        finally:
            db._abusy = False
        if undo:
            db._after_write()
        return n
    finally:
        lk.release()


async def cleanup(db):
    db._check_open()
    lk = await _acquire(db)
    total = 0
    try:
        db._abusy = True
        try:
            while True:
                n, done = db._sweep(CHUNK)
                total += n
                if done:
                    break
                await asyncio.sleep(0)
        finally:
            db._abusy = False
        if total:
            db._after_write()
        return total
    finally:
        lk.release()


async def close(db):
    t = db._task
    db._task = None
    if t is not None:
        t.cancel()
    lk = await _acquire(db)
    try:
        db.close()
    finally:
        lk.release()


async def _sweeper(db):
    try:
        while db._bt is not None:
            await asyncio.sleep(db.ttl_check_interval)
            if db._bt is None:
                break
            await cleanup(db)
    except asyncio.CancelledError:
        pass


def start_sweeper(db):
    return asyncio.create_task(_sweeper(db))
