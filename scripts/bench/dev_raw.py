# Benchmark device code, part 2a: the raw baseline ("the floor").
# The same operations done directly on `btree` with `json` by a minimal loop:
# a counter key, json.dumps on write, json.loads on read, queries and TTL
# cleanup as a full scan with a Python predicate. In file mode it flushes
# after every write call when CFG["sync"] is true (the durability the
# database gives by default), else only on close.
import btree
import io

_H = None
_F = None
_SEQ = [0]
_SYNC = CFG["mode"] == "file" and CFG.get("sync", True)
# same btree settings as MicroTetherDB's defaults (btree_pagesize=512, btree_cachesize=4096)
IMPL_INFO = {"pagesize": CFG.get("pagesize", 512), "cachesize": CFG.get("cachesize", 4096)}


def _put3(d, ttl, tg):
    _SEQ[0] += 1
    k = "r%08d" % _SEQ[0]
    if ttl or tg:
        d = dict(d)
        if tg:
            d["_tags"] = tg
        if ttl:
            d["_exp"] = clock() + ttl
    _H[k] = json.dumps(d)
    if _SYNC:
        _H.flush()
    return k


def _put(d):
    _SEQ[0] += 1
    k = "r%08d" % _SEQ[0]
    _H[k] = json.dumps(d)
    if _SYNC:
        _H.flush()
    return k


def _putk(k, d, ttl=None, tg=None):
    if ttl or tg:
        d = dict(d)
        if tg:
            d["_tags"] = tg
        if ttl:
            d["_exp"] = clock() + ttl
    _H[k] = json.dumps(d)
    if _SYNC:
        _H.flush()
    return k


def _get(k):
    v = _H.get(k)
    if v is None:
        return None
    return json.loads(v)


def _del(k):
    try:
        del _H[k]
    except KeyError:
        return 0
    if _SYNC:
        _H.flush()
    return 1


def _putb2(items, ttls):
    keys = []
    h = _H
    for j in range(len(items)):
        d = items[j]
        if type(d) is tuple:  # (key, doc), as the database accepts
            k, d = d
        else:
            _SEQ[0] += 1
            k = "r%08d" % _SEQ[0]
        if ttls is not None:
            t = ttls if isinstance(ttls, int) else ttls[j]
            if t:
                d = dict(d)
                d["_exp"] = clock() + t
        h[k] = json.dumps(d)
        keys.append(k)
    if _SYNC:
        h.flush()
    return keys


def _putb(items):
    return _putb2(items, None)


def _delb(keys):
    n = 0
    h = _H
    for k in keys:
        try:
            del h[k]
            n += 1
        except KeyError:
            pass
    if _SYNC:
        h.flush()
    return n


def _query(spec):
    pred = spec[2]
    lim = spec[3]
    out = []
    for v in _H.values():
        d = json.loads(v)
        if pred(d):
            out.append(d)
            if lim and len(out) >= lim:
                break
    return out


def _cleanup():
    now = clock()
    dead = []
    for k, v in _H.items():
        d = json.loads(v)
        e = d.get("_exp")
        if e is not None and e <= now:
            dead.append(k)
    for k in dead:
        del _H[k]
    _H.flush()
    return len(dead)


def _flush():
    _H.flush()


def qarg(spec):
    return spec


def impl_open(path):
    global _H, _F, PUT, PUT3, PUTK, GET, DEL, PUTB, PUTB2, DELB, QUERY, CLEANUP, FLUSH
    if path is None:
        _F = io.BytesIO()
    else:
        try:
            _F = open(path, "r+b")
        except OSError:
            _F = open(path, "w+b")
    kw = {"pagesize": IMPL_INFO["pagesize"]}
    if IMPL_INFO["cachesize"]:
        kw["cachesize"] = IMPL_INFO["cachesize"]
    _H = btree.open(_F, **kw)
    PUT = _put
    PUT3 = _put3
    PUTK = _putk
    GET = _get
    DEL = _del
    PUTB = _putb
    PUTB2 = _putb2
    DELB = _delb
    QUERY = _query
    CLEANUP = _cleanup
    FLUSH = _flush


def impl_close():
    global _H, _F
    _H.close()
    _F.close()
    _H = None
    _F = None


impl_index = None  # no indexes: queries are always a scan


def impl_count():
    n = 0
    for _ in _H.keys():
        n += 1
    return n
