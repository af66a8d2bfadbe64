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
    # open() for a file we create: LittleFS reports a full volume there as
    # ENAMETOOLONG (its metadata commit for the new name did not fit); our
    # names are short, so that is ENOSPC.
    try:
        return open(path, mode)
    except OSError as e:
        if e.args and e.args[0] == 36:
            raise OSError(ENOSPC, "%s: no space left on device" % path)
        raise
