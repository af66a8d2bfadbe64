# Field paths into documents ("a", "a.b", "list.0.c"), shared by the query
# engine (query.py) and the secondary indexes (index.py).

MISSING = object()  # value of a path that does not exist in a document


def getter(path):
    # -> get(doc): the value at `path`, or MISSING. A digit segment also
    # indexes a list; other values are not walked into (no str indexing).
    if type(path) is not str or not path:
        raise ValueError("query: field path must be a non-empty string: operator %r at %r" % (path, path or "<top>"))
    if "." not in path:
        return lambda doc: doc.get(path, MISSING)
    parts = []
    for s in path.split("."):
        if not s:
            raise ValueError("query: empty segment in dotted path: operator %r at %r" % (path, path))
        parts.append((s, int(s) if s.isdigit() else -1))
    parts = tuple(parts)

    def get(doc):
        v = doc
        for k, i in parts:
            t = type(v)
            if t is dict:
                v = v.get(k, MISSING)
                if v is MISSING:
                    return v
            elif t is list:
                if i < 0 or i >= len(v):
                    return MISSING
                v = v[i]
            else:
                return MISSING
        return v
    return get
