# Benchmark device code, part 2b: MicroTetherDB (the frozen package).
# The workload calls the database's bound methods directly (no wrapper
# between the timer and the call), positional arguments only.
from microtetherdb import MicroTetherDB

_D = None
IMPL_INFO = {}


def qarg(spec):
    return spec[1]


def impl_open(path):
    global _D, PUT, PUT3, PUTK, GET, DEL, PUTB, PUTB2, DELB, QUERY, CLEANUP, FLUSH
    kw = {}
    opts = CFG.get("dbopts")
    if opts:
        for k in opts:
            kw[k] = opts[k]
    if path is None:
        kw["in_memory"] = True
    else:
        kw["in_memory"] = False
        kw["filename"] = path
    kw["clock"] = clock
    _D = MicroTetherDB(**kw)
    PUT = _D.put
    PUT3 = _D.put
    PUTK = _D.put
    GET = _D.get
    DEL = _D.delete
    PUTB = _D.put_batch
    PUTB2 = _D.put_batch
    DELB = _D.delete_batch
    QUERY = _D.query
    CLEANUP = _D.cleanup
    FLUSH = _D.flush


def impl_close():
    global _D
    _D.close()
    _D = None


def impl_index(field):
    return _D.create_index(field)


def impl_drop_index(field):
    return _D.drop_index(field)


def impl_explain(q):
    return _D.explain(q)


def impl_count():
    return len(_D)
