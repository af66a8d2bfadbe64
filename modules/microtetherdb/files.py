# File helpers for the file layer (journal, filestore, chunkstore): no other
# import from the package.
import os

ENOSPC = 28
KICK = ".mtdb-kick"  # an empty folder create() makes and removes (a power cut may leave it)


def is_chunk(name):
    # a chunk file's name (format 2: "c%08x")
    return len(name) == 9 and name[0] == "c"


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
            raise _full(path, e)
    d = path[:path.rfind("/") + 1] + KICK
    try:
        try:
            os.mkdir(d)
        finally:
            os.rmdir(d)
        return open(path, mode)
    except OSError:
        pass
    raise OSError(ENOSPC, "%s: no space left on device" % path)


def mkdir(path):
    # os.mkdir, with a full volume reported as ENOSPC (see _full).
    try:
        os.mkdir(path)
    except OSError as e:
        raise _full(path, e)


def volume(path):
    # os.statvfs() of the filesystem holding `path` (its folder), or None.
    try:
        return os.statvfs(path[:path.rfind("/")] or "/")
    except (OSError, AttributeError):
        return None


def _full(path, e):
    # FAT reports a full volume at file or folder creation as EACCES (FatFs
    # FR_DENIED: no free cluster for the directory): that is ENOSPC when the
    # volume has no free block; otherwise e as it is (a real permission error).
    if e.args and e.args[0] == 13:
        st = volume(path)
        if st is not None and st[3] == 0:
            return OSError(ENOSPC, "%s: no space left on device" % path)
    return e
