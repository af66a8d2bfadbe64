# What the database needs from the firmware, on every target: a running clock
# (time), btree whose C heap survives garbage collection, LittleFS and FAT.
# On qemu this checks the board glue of boards/MTDB_QEMU_AN385 (SysTick clock,
# malloc on the GC heap, the ramdisk block device).
import gc
import os
import time


def _bracketed_ms(work):
    # ticks_ms read between two ticks_us reads at each end, so the host
    # pausing QEMU between two reads cannot make the clocks look inconsistent.
    a_us = time.ticks_us()
    a_ms = time.ticks_ms()
    b_us = time.ticks_us()
    work()
    c_us = time.ticks_us()
    c_ms = time.ticks_ms()
    d_us = time.ticks_us()
    d_ms = time.ticks_diff(c_ms, a_ms)
    inner = time.ticks_diff(c_us, b_us)  # contained in the ms interval
    outer = time.ticks_diff(d_us, a_us)  # contains it
    # ticks_ms counts whole ms: 1 ms of slack at each end.
    assert inner // 1000 - 1 <= d_ms <= outer // 1000 + 1, (inner, d_ms, outer)
    return d_ms, outer


def test_ticks_advance_with_sleep():
    d_ms, d_us = _bracketed_ms(lambda: time.sleep_ms(30))
    # Lower bounds only: a clock that does not run (or runs slow) fails.
    # sleep_ms counts whole ticks_ms, so it may end up to 1 ms early (the
    # unix port does the same).
    assert d_ms >= 30, d_ms
    assert d_us >= 29000, d_us


def test_ticks_are_consistent_with_each_other():
    def busy():
        x = 0
        for i in range(3000):
            x += i

    _bracketed_ms(busy)


def test_time_is_monotonic_and_matches_time_ns():
    a = time.time()
    ns = time.time_ns()
    time.sleep_ms(5)
    b = time.time()
    ns2 = time.time_ns()
    assert b >= a
    assert ns2 - ns >= 4000000  # sleep_ms: whole ms ticks, see above
    assert abs(ns2 // 1000000000 - b) <= 1


def test_localtime_mktime_roundtrip():
    t = time.mktime((2024, 2, 29, 13, 14, 15, 0, 0))
    lt = time.localtime(t)
    assert lt[:6] == (2024, 2, 29, 13, 14, 15), lt
    assert len(time.localtime()) >= 8


def test_btree_survives_gc_collect():
    # On the MCU boards Berkeley DB's malloc() is the GC heap: pages and
    # cursors must stay alive across collections.
    import btree
    import io

    s = io.BytesIO()
    db = btree.open(s, pagesize=512, cachesize=2048)
    for i in range(600):
        db[b"k%05d" % i] = b"v" * (i % 40)
        if i % 50 == 0:
            gc.collect()
    gc.collect()
    n = 0
    for k, v in db.items(b"k00100", b"k00500"):
        assert v == b"v" * (int(k[1:]) % 40), k
        n += 1
        if n % 64 == 0:
            gc.collect()  # while a cursor is open
    assert n == 400, n
    for i in range(0, 600, 3):
        del db[b"k%05d" % i]
    gc.collect()
    assert len(list(db.keys())) == 400
    db.close()


def test_btree_file_on_littlefs_and_fat():
    import btree
    import vfs

    class RAMBlocks:
        def __init__(self, n, size):
            self.size = size
            self.data = bytearray(n * size)

        def readblocks(self, b, buf, off=0):
            a = b * self.size + off
            buf[:] = self.data[a:a + len(buf)]

        def writeblocks(self, b, buf, off=None):
            a = b * self.size + (off or 0)
            self.data[a:a + len(buf)] = buf

        def ioctl(self, op, arg):
            if op == 4:
                return len(self.data) // self.size
            if op == 5:
                return self.size
            if op == 6:
                return 0

    for fs, n, size in ((vfs.VfsLfs2, 32, 512), (vfs.VfsFat, 64, 512)):
        bd = RAMBlocks(n, size)
        fs.mkfs(bd)
        mnt = "/mtdb_mnt"  # mount points are top-level
        vfs.mount(fs(bd), mnt)
        try:
            f = open(mnt + "/t.db", "w+b")
            db = btree.open(f, pagesize=512)
            for i in range(100):
                db[b"%03d" % i] = b"x" * 20
            db.close()
            f.close()
            f = open(mnt + "/t.db", "r+b")
            db = btree.open(f, pagesize=512)
            assert len(list(db.keys())) == 100
            assert db[b"042"] == b"x" * 20
            db.close()
            f.close()
        finally:
            vfs.umount(mnt)
        del bd
        gc.collect()


def test_ramdisk_block_device():
    if TARGET != "qemu":
        skip("the ramdisk module is part of the qemu board only")
    import ramdisk

    bd = ramdisk.RAMDisk()
    assert bd is ramdisk.RAMDisk()  # one disk
    size = bd.ioctl(5, 0)
    count = bd.ioctl(4, 0)
    assert size == 4096 and count * size == 2 * 1024 * 1024
    # /flash lives on it: use the last block, which a near-empty LittleFS
    # does not touch, and put it back afterwards.
    last = count - 1
    saved = bytearray(size)
    bd.readblocks(last, saved)
    try:
        bd.writeblocks(last, b"abcd", 100)
        buf = bytearray(6)
        bd.readblocks(last, buf, 99)
        assert buf[1:5] == b"abcd"
        assert bd.ioctl(6, last) == 0  # erase: reads as 0xff, like NOR flash
        bd.readblocks(last, buf, 99)
        assert buf == b"\xff" * 6
        for bad in ((count, 0), (-1, 0), (last, size - 2)):
            try:
                bd.readblocks(bad[0], buf, bad[1])
                assert False, bad
            except OSError:
                pass
    finally:
        bd.writeblocks(last, saved)


def test_flash_is_the_current_directory():
    if TARGET != "qemu":
        skip("qemu board layout")
    assert os.getcwd() == "/flash"
    st = os.statvfs("/flash")
    assert st[0] == 4096 and st[2] == 512, st
    assert TMP.startswith("/flash/")
