# Query planner: picks a secondary index (index.py) for a compiled query
# (query.Plan's hints) and streams the candidate records from it.
#
# A hint is ("field", path, kind, arg), ("tags", kind, tags) or
# ("or", [hints of each branch]); kind is "eq", "in", "all", "any" or
# "range" (arg: ("n"|"s", lo, hi)). The best hint is the one with the
# cheapest kind that has an index; an "or" needs an index in every branch
# (the union of their candidates). Every candidate is re-checked against the
# whole query by the caller.
from .index import PRE, TAGS, enc, enc_num, esc, cut

_RANK = {"eq": 0, "all": 1, "in": 2, "any": 2, "range": 3}


def _ranges(p, kind, arg):
    # -> sorted list of (start, end) index-key ranges covering the candidates
    if kind == "eq" or kind == "in" or kind == "all" or kind == "any":
        vals = arg[:1] if kind == "all" else arg
        out = []
        for v in vals:
            e = enc(v)
            if e is not None:
                out.append(p + e)
        out.sort()
        rs = []
        last = None
        for s in out:
            if s != last:
                rs.append((s, s + b"\xff"))
            last = s
        return rs
    t, lo, hi = arg
    if t == "n":
        s = p + (b"\x04" if lo is None else enc_num(lo))
        e = p + (b"\x05" if hi is None else enc_num(hi) + b"\xff")
    else:
        s = p + b"\x05" + (b"" if lo is None else esc(lo))
        e = p + (b"\x06" if hi is None else b"\x05" + esc(hi) + b"\xff")
    return [(s, e)]


def _cand(ix, h):
    # best usable index for one hint -> (rank, name, prefix, kind, arg) or None
    if h[0] == "tags":
        if ix.tags is None or not h[2]:
            return None
        return (_RANK[h[1]], TAGS, ix.tags, h[1], h[2])
    if h[0] == "or":
        parts = []
        for hs in h[1]:
            b = _best(ix, hs)
            if b is None:
                return None
            parts.append(b)
        return (2 + len(parts) // 4, None, parts, "or", None)
    path = h[1]
    if path not in ix.defs or path == TAGS:
        return None
    return (_RANK[h[2]], path, PRE + bytes((ix.defs[path],)), h[2], h[3])


def _best(ix, hints):
    best = None
    for h in hints:
        c = _cand(ix, h)
        if c is not None and (best is None or c[0] < best[0]):
            best = c
    return best


def _triples(c, out):
    if c[3] == "or":
        for part in c[2]:
            _triples(part, out)
    else:
        for s, e in _ranges(c[2], c[3], c[4]):
            out.append((c[2], s, e))
        if c[1] not in out[0]:
            out[0].append(c[1])
    return out


def choose(db, ix, plan):
    # -> (iterator of (key_bytes, raw), description) or None for a scan
    if ix is None or not plan.hints:
        return None
    best = _best(ix, plan.hints)
    if best is None:
        return None
    rs = _triples(best, [[]])
    names = rs.pop(0)
    info = {"plan": "index", "index": "|".join(names), "ranges": len(rs)}
    return _fetch(db, rs, plan.kstart, plan.kend), info


def _fetch(db, rs, ks, ke):
    # Candidate record keys from the index ranges, then the records in key
    # order (duplicates, e.g. from a union, once).
    bt = db._check_open()
    pks = []
    try:
        for p, s, e in rs:
            for k in bt.keys(s, e):
                pk = cut(p, k)
                if (ks is None or pk >= ks) and (ke is None or pk < ke):
                    pks.append(pk)
    except OSError as e:
        raise db._damaged(e)   # CorruptDBError (or MemoryError for ENOMEM)
    pks.sort()   # index order is value order; results go in key order
    last = None
    for pk in pks:
        if pk == last:
            continue
        last = pk
        raw = db._raw(pk)  # the caller may close or compact between items
        if raw is not None:
            yield pk, raw
