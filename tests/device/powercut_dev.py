# Power-cut block device shared by the power-cut tests (appended to files
# that say "# uses: powercut_dev"). Expects the globals BS (block size) and
# MP (mount point) from the test file.

FF = b"\xff" * BS


class Dev:
    # Block device with write counting and power cut. `image` is a list of
    # per-block bytes (shared, never modified): a block is copied on its
    # first write, so a run costs only the blocks it writes (qemu's heap is
    # ~140 KB).
    def __init__(self, image):
        self.blocks = list(image)
        self.nb = len(image)
        self.count = 0
        self.cut_at = 0
        self.torn = False
        self.undo = None

    def readblocks(self, b, buf, off=0):
        n = len(buf)
        while n:
            blk = self.blocks[b]
            k = min(n, BS - off)
            buf[len(buf) - n:len(buf) - n + k] = memoryview(blk)[off:off + k]
            n -= k
            b += 1
            off = 0

    def _w(self, b, off, buf):
        self.count += 1
        blk = self.blocks[b]
        u = self.undo
        if u is None:
            if self.count == self.cut_at:
                old = bytearray(blk)
                if self.torn:  # half of the write (or erase) lands
                    src = FF if buf is None else buf
                    h = len(src) // 2
                    old[off:off + h] = src[:h]
                self.undo = {b: old}
        elif b not in u:
            u[b] = bytes(blk)
        if type(blk) is not bytearray:
            blk = bytearray(blk)
            self.blocks[b] = blk
        if buf is None:  # erase
            blk[:] = FF
        else:
            blk[off:off + len(buf)] = buf

    def writeblocks(self, b, buf, off=None):
        if off is None:
            mv = memoryview(buf)
            for i in range(len(buf) // BS):
                self._w(b + i, 0, mv[i * BS:(i + 1) * BS])
        else:
            self._w(b, off, buf)
        return 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.nb
        if op == 5:
            return BS
        if op == 6:
            self._w(arg, 0, None)
        return 0

    def power_cut(self):
        # the device now holds only the durable image
        u = self.undo
        if u:
            for b in u:
                self.blocks[b] = u[b]
        self.undo = None
        self.cut_at = 0
        self.count = 0

    def close(self):
        self.blocks = None


def new_dev(image):
    return Dev(image)


def fresh_image(kind, nblocks):
    # a formatted filesystem as a list of per-block bytes
    z = bytes(BS)
    d = Dev([z] * nblocks)
    if kind == "lfs":
        vfs.VfsLfs2.mkfs(d)
    else:
        vfs.VfsFat.mkfs(d)
    return [x if type(x) is bytes else bytes(x) for x in d.blocks]


def mount(kind, dev):
    fs = vfs.VfsLfs2(dev) if kind == "lfs" else vfs.VfsFat(dev)
    vfs.mount(fs, MP)


def umount():
    try:
        vfs.umount(MP)
    except OSError:
        pass
