# Shared by device tests that run the heap out on purpose (appended to them
# through a "# uses: heapfill" line; see tests/test_device.py).
import gc


class Filler:
    # holds the heap full; fill(leave) then gives back about `leave` bytes
    # (the blocks are chained through 2-tuples, so no list has to grow)
    def __init__(self):
        self.head = None

    def fill(self, leave):
        gc.collect()
        head = None
        size = 1 << 16
        while True:
            try:
                head = (bytearray(size), head)
            except MemoryError:
                if size <= 16:
                    break
                size >>= 1
        freed = 0
        while freed < leave and head is not None:
            freed += len(head[0]) + 32
            head = head[1]
        self.head = head

    def release(self):
        self.head = None
        gc.collect()
