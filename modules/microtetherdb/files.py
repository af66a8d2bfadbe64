# File helpers for the file layer (journal, filestore, chunkstore): no other
# import from the package.
import os

ENOSPC = 28


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def create(path, mode="wb"):
    # open() for a file we create. LittleFS reports a full volume there as
    # ENAMETOOLONG (its metadata commit for the new name did not fit); our
    # names are short, so that is ENOSPC. And LittleFS 2.8 (MicroPython
    # 1.25) does not reset its block allocator when it creates a file: after
    # the volume ran full, creating files fails until some data is written,
    # even with space freed. A directory made and removed next to the file
    # resets it (on this rare path only), then the create is tried again.
    try:
        return open(path, mode)
    except OSError as e:
        if not e.args or e.args[0] != 36:
            raise
    d = path[:path.rfind("/") + 1] + ".mtdb-kick"
    try:
        try:
            os.mkdir(d)
        finally:
            os.rmdir(d)
        return open(path, mode)
    except OSError:
        pass
    raise OSError(ENOSPC, "%s: no space left on device" % path)
