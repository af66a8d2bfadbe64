# asyncio API.  Imported on first use of an a* method or `async with`.
#
# Every awaitable call completes its work before it returns.  Single-record
# calls run at once (they never yield while holding the database).  Batches
# and cleanup are the core's step generators (db.py, written once for both
# APIs): the synchronous call runs one to its end, here it is driven chunk
# by chunk with a yield to the loop between chunks; while one is mid-way,
# other async writers wait for it (up to lock_timeout seconds, then DBLock)
# and synchronous writers get DBLock at once (a synchronous call cannot wait
# without blocking the loop).  Reads never wait.  A batch whose task is
# cancelled between chunks is undone, as one that fails.
#
# The TTL sweeper (`async with`) runs cleanup every ttl_check_interval
# seconds and never stops on an error: a round that meets DBLock, MemoryError
# or OSError is skipped (counted); any other exception is kept and the
# sweeper goes on. stats()["sweeper"] shows both.
import asyncio

from .errors import DBError, DBLock


class State:
    # Per database: the lock of the async writers, the sweeper task and
    # what the sweeper has done.
    def __init__(self):
        self.lock = asyncio.Lock()
        self.task = None
        self.runs = 0
        self.removed = 0
        self.skipped = 0
        self.skip_error = None
        self.error = None

    def stats(self):
        return {"running": self.task is not None, "runs": self.runs, "removed": self.removed,
                "skipped": self.skipped, "skip_error": self.skip_error, "error": self.error}


async def _acquire(db):
    lk = db._async().lock
    to = db.lock_timeout
    if lk.locked() and to is not None:
        try:
            await asyncio.wait_for(lk.acquire(), to)
        except asyncio.TimeoutError:
            raise DBLock("database busy for more than lock_timeout=%s s" % to)
    else:
        await lk.acquire()
    try:
        db._check_open()
    except BaseException:
        lk.release()
        raise
    return lk


async def call(db, fn, args, kw):
    db._check_open()
    lk = await _acquire(db)
    try:
        return fn(*args, **kw)
    finally:
        lk.release()


async def run(db, steps):
    # Drive a step generator of the core: it yields db.PAUSE between chunks
    # and its result last. Cancelled or failing mid-way, the generator is
    # closed, which undoes what it wrote.
    lk = await _acquire(db)
    try:
        for r in steps:
            if r is not db.PAUSE:
                return r
            try:
                await asyncio.sleep(0)
            except BaseException:
                steps.close()
                raise
    finally:
        lk.release()


async def close(db):
    st = db._async()
    t = st.task
    st.task = None
    if t is not None:
        t.cancel()
    lk = await _acquire(db)
    try:
        db.close()
    finally:
        lk.release()


async def _sweeper(db, st):
    from .errors import CorruptDBError

    while True:
        try:
            await asyncio.sleep(db.ttl_check_interval)
            st.removed += await run(db, db._cleanup_steps())
            st.runs += 1
        except asyncio.CancelledError:
            return
        except DBLock as e:
            st.skipped += 1
            st.skip_error = e
        except CorruptDBError as e:
            st.error = e
        except DBError:
            return  # closed
        except (MemoryError, OSError) as e:
            st.skipped += 1
            st.skip_error = e
        except Exception as e:  # kept for stats(); the sweeper goes on
            st.error = e


def start_sweeper(db):
    st = db._async()
    if st.task is None:
        st.task = asyncio.create_task(_sweeper(db, st))
    return st.task


def stop_sweeper(db):
    st = db._async()
    t = st.task
    st.task = None
    if t is not None:
        t.cancel()
