# asyncio API under asyncio.run: awaitables, chunked batches, sweeper, DBLock.
import asyncio
from microtetherdb import MicroTetherDB, DBLock, DBError


def test_async_crud():
    async def main():
        db = MicroTetherDB()
        k = await db.aput({"a": 1})
        assert await db.aget(k) == {"a": 1}
        assert await db.aput("c", {"b": 2}, ttl=100, tags=["t"]) == "c"
        assert await db.aget("nope", 5) == 5
        ks = await db.aput_batch([{"i": i} for i in range(40)], ttls=None)
        assert len(ks) == 40 and await db.aget(ks[39]) == {"i": 39}
        assert len(await db.aquery({"b": 2})) == 1
        assert await db.adelete("c") == 1 and await db.adelete("c") == 0
        assert await db.adelete_batch(ks[:30]) == 30
        assert len(db) == 11
        await db.aflush()
        assert await db.acleanup() == 0
        await db.aclose()
        try:
            await db.aput({"x": 1})
        except DBError:
            pass
        else:
            raise AssertionError("closed db accepted aput")
        return True

    assert asyncio.run(main())


def test_async_with_sweeper_removes_expired():
    t = [1000]

    async def main():
        async with MicroTetherDB(ttl_check_interval=0.02, clock=lambda: t[0]) as db:
            assert db.stats()["sweeper"]["running"]
            await db.aput("x", {"v": 1}, ttl=5)
            await db.aput("y", {"v": 2})
            t[0] = 1010
            for _ in range(500):  # wait (up to ~10 s) for the sweeper to run
                await asyncio.sleep(0.02)
                if db._bt.get(b"x") is None:
                    break
            assert db._bt.get(b"x") is None  # physically removed by the sweeper
            assert db.stats()["expired_pending"] == 0 and len(db) == 1
            task = db._aio.task
        assert db._aio.task is None and db._bt is None  # exit stops sweeper, closes
        await asyncio.sleep(0)
        assert task.done()
        return True

    assert asyncio.run(main())


def test_async_file_mode_one_flush_per_batch():
    fn = TMP + "/a.db"

    async def main():
        async with MicroTetherDB(fn, in_memory=False) as db:
            f0 = db.stats()["flushes"]
            await db.aput_batch([{"i": i} for i in range(100)])
            assert db.stats()["flushes"] == f0 + 1
        db = MicroTetherDB(fn, in_memory=False)
        assert len(db) == 100
        db.close()
        return True

    assert asyncio.run(main())


def test_batch_yields_and_blocks_writers():
    async def main():
        db = MicroTetherDB()
        ticks = [0]
        seen = {}

        async def other():
            while True:
                ticks[0] += 1
                if db._abusy and "sync" not in seen:
                    try:
                        db.put("sync", {"v": 1})
                        seen["sync"] = "ok"
                    except DBLock:
                        seen["sync"] = "DBLock"
                    seen["read"] = db.get("pre")
                    seen["async"] = await db.aput("async", {"v": 2})  # waits for the batch
                    seen["len"] = len(db)
                    return
                await asyncio.sleep(0)

        db.put("pre", {"v": 0})
        t = asyncio.create_task(other())
        await asyncio.sleep(0)
        ks = await db.aput_batch([{"i": i} for i in range(200)])
        await t
        assert ticks[0] > 1
        assert seen["sync"] == "DBLock" and seen["read"] == {"v": 0}
        assert seen["async"] == "async" and seen["len"] == 202
        assert len(ks) == 200 and db.get("sync") is None
        db.close()
        return True

    assert asyncio.run(main())


def test_lock_timeout():
    async def main():
        db = MicroTetherDB(lock_timeout=0)
        out = {}

        async def other():
            while not db._abusy:
                await asyncio.sleep(0)
            try:
                await db.aput("x", {"v": 1})
                out["r"] = "ok"
            except DBLock as e:
                out["r"] = "DBLock"

        t = asyncio.create_task(other())
        await asyncio.sleep(0)
        await db.aput_batch([{"i": i} for i in range(200)])
        await t
        assert out["r"] == "DBLock"
        assert db.get("x") is None and len(db) == 200
        db.close()
        return True

    assert asyncio.run(main())


def test_cancelled_batch_is_undone():
    async def main():
        db = MicroTetherDB()
        db.put("pre", {"v": 0})
        t = asyncio.create_task(db.aput_batch([{"i": i} for i in range(100)]))
        for _ in range(3):
            await asyncio.sleep(0)
        assert db._abusy
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            pass
        assert not db._abusy
        assert list(db.keys()) == ["pre"] and len(db) == 1
        db.put("after", {"v": 1})  # usable, lock released
        assert await db.aput("after2", {"v": 2}) == "after2"
        db.close()
        return True

    assert asyncio.run(main())


def test_async_delete_batch_and_cleanup_chunked():
    t = [0]

    async def main():
        db = MicroTetherDB(clock=lambda: t[0])
        ks = db.put_batch([{"i": i} for i in range(60)], ttls=5)
        ks2 = db.put_batch([{"j": i} for i in range(60)])
        t[0] = 5
        assert await db.acleanup() == 60
        assert await db.adelete_batch(ks2[:30] + ks[:10]) == 30
        assert len(db) == 30
        await db.aclose()
        await db.aclose()  # twice is fine
        return True

    assert asyncio.run(main())


def test_close_during_async_batch_is_dblock():
    async def main():
        db = MicroTetherDB()
        t = asyncio.create_task(db.aput_batch([{"i": i} for i in range(200)]))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        try:
            db.close()
            r = "closed"
        except DBLock:
            r = "DBLock"
        await t
        assert r == "DBLock"
        await db.aclose()
        return True

    assert asyncio.run(main())


def test_sweeper_survives_dblock_and_errors():
    # A round that meets DBLock (a batch holding the database past
    # lock_timeout) is skipped; an unexpected error is kept in
    # stats()["sweeper"]; the sweeper goes on and sweeps later rounds.
    t = [1000]

    async def main():
        async with MicroTetherDB(ttl_check_interval=0.01, lock_timeout=0, clock=lambda: t[0]) as db:
            await db.aput("x", {"v": 1}, ttl=5)
            lk = db._async().lock
            await lk.acquire()  # as an async batch mid-way holds it
            t[0] = 1010
            for _ in range(20):
                await asyncio.sleep(0.01)
            s = db.stats()["sweeper"]
            assert s["running"] and s["skipped"] > 0 and isinstance(s["skip_error"], DBLock), s
            lk.release()
            for _ in range(500):
                await asyncio.sleep(0.01)
                if db._bt.get(b"x") is None:
                    break
            assert db._bt.get(b"x") is None  # swept once the lock was free

            def boom():
                raise ValueError("boom")
                yield

            db._cleanup_steps = boom
            for _ in range(500):
                await asyncio.sleep(0.01)
                if db.stats()["sweeper"]["error"] is not None:
                    break
            s = db.stats()["sweeper"]
            assert isinstance(s["error"], ValueError) and s["running"], s
            del db._cleanup_steps  # back to the class's
            await db.aput("y", {"v": 2}, ttl=5)
            t[0] = 1020
            for _ in range(500):
                await asyncio.sleep(0.01)
                if db._bt.get(b"y") is None:
                    break
            assert db._bt.get(b"y") is None  # still sweeping
            runs = db.stats()["sweeper"]["runs"]
            assert runs >= 2, runs
        return True

    assert asyncio.run(main())
