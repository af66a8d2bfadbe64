# Flash-counting RAM block device for vfs.VfsLfs2 and vfs.VfsFat with the
# geometry of ESP32 SPI NOR flash (MicroPython 1.25; unix port and the qemu
# board). Reusable: `import dev_wear_dev` (MICROPYPATH=scripts/bench) or
# concatenate this file in front of a device program, as scripts/bench/wear.py
# does. It needs no CFG and defines no globals beyond the names below.
#
#   dev = mount("lfs", "/fl", nblocks=512)        # 2 MiB LittleFS, 4 KB blocks
#   s0 = dev.snap()
#   ... file operations under /fl ...
#   d = dev.delta(s0)       # {"rd_ops": .., "rd_bytes": .., "pr_ops": ..,
#                           #  "pr_bytes": .., "pr_cmds": .., "erases": ..,
#                           #  "er_bytes": .., "bad": ..}
#   umount("/fl")
#
# What is counted (the flash traffic the filesystem causes, not the Python
# calls):
#   rd_ops/rd_bytes  readblocks calls and bytes read
#   pr_ops/pr_bytes  program operations and bytes programmed
#   pr_cmds          SPI page-program commands ESP-IDF would issue for them:
#                    at most 64 bytes each, never across a 256-byte page
#                    (spi_flash_chip_generic_write, SPI_FLASH_HAL_MAX_WRITE_BYTES)
#   erases/er_bytes  erase operations and bytes erased
#   bad              programs over bytes that were not erased (NOR flash can
#                    only clear bits: such a write would corrupt data). Checked
#                    when the device holds its own data (check=True).
#
# Two block interfaces, as MicroPython's vfs uses them:
#   * extended (LittleFS): writeblocks(b, buf, off) programs, ioctl(6, b)
#     erases one block;
#   * simple (FAT): writeblocks(b, buf) = erase + program, like
#     esp32.Partition: with blocks of ERASE_SIZE or more each block is erased
#     and programmed; with smaller blocks (bs=512) every 4 KB sector touched is
#     read, erased and programmed whole (read-modify-write, as esp32.Partition
#     does for block_size < 4096).
# bs < ERASE_SIZE with LittleFS models a flash whose erase unit is bs (ESP32
# partitions refuse the erase ioctl for such block sizes).
#
# Storage: own RAM, one bytearray per block allocated at its first program
# (an erased block reads as 0xff), or `backing`, another block device with
# the extended interface and the same block size (e.g. the qemu board's
# ramdisk.RAMDisk(), 2 MiB of 4 KB blocks): then only the counting is done here.

ERASE_SIZE = 4096  # erase sector of ESP32 SPI flash
PAGE = 256  # program page
CMD_MAX = 64  # bytes per page-program command in ESP-IDF

NAMES = ("rd_ops", "rd_bytes", "pr_ops", "pr_bytes", "pr_cmds", "erases", "er_bytes", "bad")
_RO, _RB, _PO, _PB, _PC, _EO, _EB, _BAD = 0, 1, 2, 3, 4, 5, 6, 7


def _cmds(addr, n):
    # page-program commands for n bytes at flash address addr
    c = 0
    while n > 0:
        k = PAGE - addr % PAGE
        if k > CMD_MAX:
            k = CMD_MAX
        if k > n:
            k = n
        addr += k
        n -= k
        c += 1
    return c


class FlashDev:
    def __init__(self, nblocks, bs=4096, backing=None, check=True):
        if bs & (bs - 1) or bs < 512:
            raise ValueError("bs must be a power of two >= 512")
        if backing is not None and backing.ioctl(5, 0) != bs:
            raise ValueError("backing device has another block size")
        self.nb = nblocks
        self.bs = bs
        self.c = [0] * len(NAMES)
        self.back = backing
        self.blocks = None if backing is not None else [None] * nblocks
        self.check = check and backing is None
        self.ff = b"\xff" * (bs if bs > ERASE_SIZE else ERASE_SIZE)
        # erase count per erase unit (max() = the most worn unit)
        self.eu = bs if bs >= ERASE_SIZE else ERASE_SIZE
        self.wear = [0] * ((nblocks * bs + self.eu - 1) // self.eu)

    # -- counters -------------------------------------------------------
    def snap(self):
        return list(self.c)

    def delta(self, s0, n=1):
        # counters since snap() s0, divided by n (per operation)
        c = self.c
        d = {}
        for i in range(len(NAMES)):
            v = c[i] - s0[i]
            d[NAMES[i]] = v if n == 1 else v / n
        return d

    def reset(self):
        for i in range(len(self.c)):
            self.c[i] = 0
        for i in range(len(self.wear)):
            self.wear[i] = 0

    def max_wear(self):
        return max(self.wear)

    # -- storage --------------------------------------------------------
    def _spans(self, b, off, n):
        # (block, offset in it, offset in the buffer, length) of n bytes at (b, off)
        pos = 0
        bs = self.bs
        while pos < n:
            k = bs - off
            if k > n - pos:
                k = n - pos
            yield b, off, pos, k
            pos += k
            b += 1
            off = 0

    def _read(self, b, off, mv):
        if self.back is not None:
            self.back.readblocks(b, mv, off)
            return
        ff = memoryview(self.ff)
        for b, off, pos, k in self._spans(b, off, len(mv)):
            blk = self.blocks[b]
            if blk is None:
                mv[pos:pos + k] = ff[:k]
            else:
                mv[pos:pos + k] = memoryview(blk)[off:off + k]

    def _store(self, b, off, mv):
        # program mv at (b, off); may span blocks (simple interface)
        if self.back is not None:
            self.back.writeblocks(b, mv, off)
            return
        for b, off, pos, k in self._spans(b, off, len(mv)):
            blk = self.blocks[b]
            if blk is None:
                blk = self.blocks[b] = bytearray(self.ff[:self.bs])
            elif self.check and blk[off:off + k] != self.ff[:k]:
                self.c[_BAD] += 1
            blk[off:off + k] = mv[pos:pos + k]

    def _erase(self, b, nblk):
        # erase nblk blocks from b (data and counters)
        bs = self.bs
        c = self.c
        c[_EO] += 1
        c[_EB] += nblk * bs
        self.wear[(b * bs) // self.eu] += 1
        if self.back is not None:
            for i in range(nblk):
                self.back.ioctl(6, b + i)
            return
        for i in range(nblk):
            self.blocks[b + i] = None

    def _program(self, b, off, mv):
        c = self.c
        n = len(mv)
        c[_PO] += 1
        c[_PB] += n
        c[_PC] += _cmds(b * self.bs + off, n)
        self._store(b, off, mv)

    # -- block device protocol -----------------------------------------
    def readblocks(self, b, buf, off=0):
        c = self.c
        c[_RO] += 1
        c[_RB] += len(buf)
        self._read(b, off, memoryview(buf))
        return 0

    def writeblocks(self, b, buf, off=None):
        mv = memoryview(buf)
        if off is not None:  # extended interface: program only
            self._program(b, off, mv)
            return 0
        bs = self.bs
        n = len(mv)
        if bs >= ERASE_SIZE:  # simple interface: erase + program each block
            for i in range(n // bs):
                self._erase(b + i, 1)
                self._program(b + i, 0, mv[i * bs:(i + 1) * bs])
            return 0
        # bs < sector: read-modify-write of every 4 KB sector touched
        per = ERASE_SIZE // bs
        start = b * bs
        end = start + n
        sec = start - start % ERASE_SIZE
        c = self.c
        while sec < end:
            b0 = sec // bs
            lo = start if start > sec else sec
            hi = end if end < sec + ERASE_SIZE else sec + ERASE_SIZE
            buf4 = bytearray(ERASE_SIZE)
            if lo > sec or hi < sec + ERASE_SIZE:  # keep the rest of the sector
                c[_RO] += 1
                c[_RB] += ERASE_SIZE
                self._read(b0, 0, memoryview(buf4))
            buf4[lo - sec:hi - sec] = mv[lo - start:hi - start]
            self._erase(b0, per)
            self._program(b0, 0, memoryview(buf4))
            sec += ERASE_SIZE
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.nb
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase one block
            self._erase(arg, 1)
            return 0
        return 0  # init, deinit, sync


def mount(kind, mp, nblocks=512, bs=4096, backing=None, check=True, **fsopts):
    # A fresh filesystem on a new FlashDev mounted at mp; the counters start at
    # zero after mkfs. kind: "lfs" (vfs.VfsLfs2; fsopts e.g. readsize=,
    # progsize=, lookahead=, mtime=) or "fat" (vfs.VfsFat).
    import vfs

    dev = FlashDev(nblocks, bs, backing, check)
    if kind == "lfs":
        vfs.VfsLfs2.mkfs(dev, **fsopts)
        fs = vfs.VfsLfs2(dev, **fsopts)
    elif kind == "fat":
        vfs.VfsFat.mkfs(dev)
        fs = vfs.VfsFat(dev)
    else:
        raise ValueError("kind must be 'lfs' or 'fat'")
    vfs.mount(fs, mp)
    dev.reset()
    return dev


def umount(mp):
    import vfs

    try:
        vfs.umount(mp)
    except OSError:
        pass
