"""Reference evaluator of the MicroTetherDB query language, in plain CPython.

Written independently of modules/microtetherdb/query.py (no shared code): it
interprets the query directly, record by record, following docs/queries.md.
Used by tests/test_query_model.py to check the device engine.

records: iterable of (key: str, doc: dict, tags: list[str], expiry: number|None)
evaluate(query, records, now) -> list of keys, in result order.
"""

MISSING = ("<missing>",)  # a unique marker

OPTIONS = {"$limit", "$skip", "$sort", "$keys", "$plan"}


class QueryError(ValueError):
    pass


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def same(a, b):
    """JSON equality where booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    return a == b


def lookup(doc, path):
    cur = doc
    for part in path.split("."):
        if part == "":
            raise QueryError("empty path segment in %r" % path)
        if isinstance(cur, dict):
            if part not in cur:
                return MISSING
            cur = cur[part]
        elif isinstance(cur, list):
            if not part.isdigit():
                return MISSING
            i = int(part)
            if i >= len(cur):
                return MISSING
            cur = cur[i]
        else:
            return MISSING
    return cur


def ordered_pair(v, arg):
    """True if v and arg are of one ordered kind (numbers or strings)."""
    if is_number(arg):
        return is_number(v)
    if isinstance(arg, str):
        return isinstance(v, str)
    raise QueryError("comparison needs a number or a string")


def is_operator_dict(spec):
    if not isinstance(spec, dict) or not spec:
        return False
    dollar = [k for k in spec if isinstance(k, str) and k.startswith("$")]
    if dollar and len(dollar) != len(spec):
        raise QueryError("mixed operators and fields")
    return bool(dollar)


def value_matches(v, spec):
    """v: the field value or MISSING; spec: literal or operator dict."""
    if not is_operator_dict(spec):
        return v is not MISSING and same(v, spec)
    return all(operator_matches(v, op, arg) for op, arg in spec.items())


def member(v, items):
    if not isinstance(items, (list, tuple)):
        raise QueryError("$in/$nin need a list")
    return v is not MISSING and any(same(v, x) for x in items)


def operator_matches(v, op, arg):
    present = v is not MISSING
    if op == "$eq":
        return present and same(v, arg)
    if op == "$ne":
        return not (present and same(v, arg))
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not ordered_pair(v, arg):
            return False
        return {"$gt": v > arg, "$gte": v >= arg, "$lt": v < arg, "$lte": v <= arg}[op]
    if op == "$in":
        return member(v, arg)
    if op == "$nin":
        return not member(v, arg)
    if op == "$exists":
        if not isinstance(arg, bool):
            raise QueryError("$exists needs a bool")
        return present == arg
    if op == "$contains":
        if isinstance(v, list):
            return any(same(x, arg) for x in v)
        if isinstance(v, str) and isinstance(arg, str):
            return arg in v
        return False
    if op == "$startswith":
        if not isinstance(arg, str):
            raise QueryError("$startswith needs a string")
        return isinstance(v, str) and v[: len(arg)] == arg
    if op == "$regex":
        import re
        if not isinstance(arg, str):
            raise QueryError("$regex needs a string")
        return isinstance(v, str) and re.search(arg, v) is not None
    if op == "$not":
        return not value_matches(v, arg)
    if op in ("$and", "$or"):
        if not isinstance(arg, (list, tuple)) or len(arg) == 0:
            raise QueryError(op + " needs a non-empty list")
        results = [value_matches(v, s) for s in arg]
        return all(results) if op == "$and" else any(results)
    raise QueryError("unknown operator %s" % op)


def tags_match(tags, spec):
    if isinstance(spec, str):
        return spec in tags
    if isinstance(spec, (list, tuple)):
        return all(t in tags for t in spec)
    if not isinstance(spec, dict) or not spec:
        raise QueryError("bad tag spec")
    ok = True
    for op, arg in spec.items():
        if op == "$not":
            ok = ok and not tags_match(tags, arg)
            continue
        lst = [arg] if isinstance(arg, str) else arg
        if op == "$all":
            ok = ok and all(t in tags for t in lst)
        elif op in ("$in", "$any"):
            ok = ok and any(t in tags for t in lst)
        elif op == "$nin":
            ok = ok and not any(t in tags for t in lst)
        else:
            raise QueryError("unknown tag operator %s" % op)
    return ok


def matches(q, doc, tags, top=True):
    if not isinstance(q, dict):
        raise QueryError("query must be a dict")
    result = True
    for k, v in q.items():
        if k in OPTIONS:
            if not top:
                raise QueryError("%s only at top level" % k)
            continue
        if k == "$and":
            if not isinstance(v, (list, tuple)) or not v:
                raise QueryError("$and needs a list")
            r = all([matches(s, doc, tags, False) for s in v])
        elif k == "$or":
            if not isinstance(v, (list, tuple)) or not v:
                raise QueryError("$or needs a list")
            r = any([matches(s, doc, tags, False) for s in v])
        elif k == "$not":
            r = not matches(v, doc, tags, False)
            if not v:
                r = False
        elif k == "$tags" or k == "_tags" or (k == "tags" and isinstance(v, str)):
            r = tags_match(tags, v)
        elif k.startswith("$"):
            raise QueryError("unknown operator %s" % k)
        else:
            r = value_matches(lookup(doc, k), v)
        result = result and r
    return result


def sort_key(v):
    if v is MISSING or v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, int(v))
    if is_number(v):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4, 0)


def key_in_range(key, spec):
    kb = key.encode()
    if spec is None:
        return True
    if isinstance(spec, str):
        spec = {"$prefix": spec}
    for op, bound in spec.items():
        b = bound.encode()
        if op == "$gte" and not kb >= b:
            return False
        if op == "$gt" and not kb > b:
            return False
        if op == "$lt" and not kb < b:
            return False
        if op == "$lte" and not kb <= b:
            return False
        if op == "$prefix" and not kb.startswith(b):
            return False
    return True


def evaluate(q, records, now):
    q = q or {}
    live = [r for r in records if r[3] is None or r[3] > now]
    live.sort(key=lambda r: r[0].encode())
    hits = [r for r in live
            if key_in_range(r[0], q.get("$keys")) and matches(q, r[1], r[2])]
    srt = q.get("$sort")
    if srt is not None:
        if isinstance(srt, str):
            field, direction = srt, 1
        else:
            field, direction = srt
        pos = {r[0]: i for i, r in enumerate(hits)}
        if field == "$key":
            keyed = [(r[0].encode(), r) for r in hits]
        else:
            keyed = [(sort_key(lookup(r[1], field)), r) for r in hits]
        # ties always stay in key order
        keyed.sort(key=lambda kr: pos[kr[1][0]])
        keyed.sort(key=lambda kr: kr[0], reverse=(direction == -1))
        hits = [r for _, r in keyed]
    skip = q.get("$skip") or 0
    hits = hits[skip:]
    if q.get("$limit") is not None:
        hits = hits[: q["$limit"]]
    return [r[0] for r in hits]
