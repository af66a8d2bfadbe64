# MicroTetherDB query engine: validate + compile a query dict into small
# closures, then stream records (key order), optionally from an index.
# Semantics are documented in README.md (section "Queries, indexes, explain and compact").

from . import codec
from .errors import CorruptDBError
from .paths import MISSING as _MISSING, getter as _getter

_ROOT_OPTS = ("$limit", "$skip", "$sort", "$keys", "$plan")


def _err(msg, op, path):
    return ValueError("query: %s: operator %r at %r" % (msg, op, path or "<top>"))


def _norm(v, path):
    # Literal from the query -> JSON-like value (tuples become lists).
    t = type(v)
    if t is tuple or t is list:
        return [_norm(x, path) for x in v]
    if t is dict:
        d = {}
        for k in v:
            if type(k) is not str:
                raise _err("dict literal keys must be str", k, path)
            d[k] = _norm(v[k], path)
        return d
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    raise _err("unsupported literal", v, path)


def _deq(a, b):
    # Strict JSON equality: bool is not a number, list/dict compared deeply.
    ta = type(a)
    tb = type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a == b
    if ta is not tb:
        return False
    if ta is list:
        if len(a) != len(b):
            return False
        for i in range(len(a)):
            if not _deq(a[i], b[i]):
                return False
        return True
    if ta is dict:
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or not _deq(a[k], b[k]):
                return False
        return True
    return a == b


def _eqtest(lit):
    t = type(lit)
    if t is str:
        return lambda v: v == lit
    if lit is None:
        return lambda v: v is None
    if t is bool:
        return lambda v: v is lit
    if t is int or t is float:
        return lambda v: v == lit and type(v) is not bool
    return lambda v: _deq(v, lit)


def _intest(items, path, op):
    if type(items) not in (list, tuple):
        raise _err("needs a list", op, path)
    strs = set()
    nums = set()
    bools = []
    other = []
    has_none = False
    for x in items:
        x = _norm(x, path)
        t = type(x)
        if t is str:
            strs.add(x)
        elif t is bool:
            bools.append(x)
        elif t is int or t is float:
            nums.add(x)
        elif x is None:
            has_none = True
        else:
            other.append(x)

    def test(v):
        t = type(v)
        if t is str:
            return v in strs
        if t is bool:
            return v in bools   # list of real bools: 1 never equals a bool here
        if t is int or t is float:
            return v in nums
        if v is None:
            return has_none
        if t is list or t is dict:
            for x in other:
                if _deq(v, x):
                    return True
        return False
    return test


def _cmptest(op, a, path):
    ta = type(a)
    num = ta is int or ta is float
    if not num and ta is not str:
        raise _err("needs a number or a string", op, path)
    if op == "$gt":
        if num:
            return lambda v: (type(v) is int or type(v) is float) and v > a
        return lambda v: type(v) is str and v > a
    if op == "$gte":
        if num:
            return lambda v: (type(v) is int or type(v) is float) and v >= a
        return lambda v: type(v) is str and v >= a
    if op == "$lt":
        if num:
            return lambda v: (type(v) is int or type(v) is float) and v < a
        return lambda v: type(v) is str and v < a
    if num:
        return lambda v: (type(v) is int or type(v) is float) and v <= a
    return lambda v: type(v) is str and v <= a


def _contains(arg):
    arg = _norm(arg, "")
    eq = _eqtest(arg)
    sarg = type(arg) is str

    def test(v):
        t = type(v)
        if t is list:
            for x in v:
                if eq(x):
                    return True
            return False
        if t is str and sarg:
            return arg in v
        return False
    return test


def _all(tests):
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda v: a(v) and b(v)

    def test(v):
        for t in tests:
            if not t(v):
                return False
        return True
    return test


def _any(tests):
    def test(v):
        for t in tests:
            if t(v):
                return True
        return False
    return test


def _is_opdict(spec, path):
    # dict whose keys all start with '$' -> operators; none -> literal; mixed -> error
    n = 0
    for k in spec:
        if type(k) is str and k[:1] == "$":
            n += 1
    if n and n != len(spec):
        raise _err("mixes operators and fields", list(spec.keys()), path)
    return n > 0


def _vtest(spec, path):
    # Compile a field condition (literal or operator dict) into test(value)
    if type(spec) is dict and _is_opdict(spec, path):
        tests = []
        for op in spec:
            tests.append(_optest(op, spec[op], path))
        return _all(tests)
    return _eqtest(_norm(spec, path))


def _re_check(pat, op, path):
    # MicroPython's re compiles {m,n} and \1 but does not implement them:
    # refuse them rather than give wrong answers.
    i = 0
    n = len(pat)
    cls = False
    while i < n:
        c = pat[i]
        if c == "\\":
            if not cls and i + 1 < n and pat[i + 1] in "0123456789":
                raise _err("backreferences are not supported", op, path)
            i += 2
            continue
        if c == "[":
            cls = True
        elif c == "]":
            cls = False
        elif c == "{" and not cls and i + 1 < n and pat[i + 1] in "0123456789,":
            raise _err("counted repetition {m,n} is not supported", op, path)
        i += 1


def _rxtest(rx, pat):
    # re first; where its recursive matcher runs out of stack (a loop over a
    # long string), the same pattern through the iterative regex.py.
    prog = []

    def test(v):
        if type(v) is not str:
            return False
        try:
            return rx.search(v) is not None
        except RuntimeError:
            if not prog:
                from . import regex
                prog.append(regex)
                prog.append(regex.compile(pat))
            return prog[0].search(prog[1], v)
    return test


def _optest(op, arg, path):
    if op == "$eq":
        return _eqtest(_norm(arg, path))
    if op == "$ne":
        t = _eqtest(_norm(arg, path))
        return lambda v: not t(v)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmptest(op, arg, path)
    if op == "$in":
        return _intest(arg, path, op)
    if op == "$nin":
        t = _intest(arg, path, op)
        return lambda v: not t(v)
    if op == "$exists":
        if type(arg) is not bool:
            raise _err("needs true or false", op, path)
        if arg:
            return lambda v: v is not _MISSING
        return lambda v: v is _MISSING
    if op == "$contains":
        return _contains(arg)
    if op == "$startswith":
        if type(arg) is not str:
            raise _err("needs a string", op, path)
        return lambda v: type(v) is str and v.startswith(arg)
    if op == "$regex":
        if type(arg) is not str:
            raise _err("needs a string", op, path)
        _re_check(arg, op, path)
        try:
            import re
            rx = re.compile(arg)
        except ImportError:
            raise _err("re module not available", op, path)
        except Exception as e:
            raise _err("bad pattern (%s)" % e, op, path)
        return _rxtest(rx, arg)
    if op == "$not":
        t = _vtest(arg, path)
        return lambda v: not t(v)
    if op == "$and" or op == "$or":
        if type(arg) not in (list, tuple) or not arg:
            raise _err("needs a non-empty list", op, path)
        tests = [_vtest(x, path) for x in arg]
        return _all(tests) if op == "$and" else _any(tests)
    raise _err("unknown operator", op, path)


# ---- tags -------------------------------------------------------------

def _tagtest(spec, op):
    # -> (pred(tags), hint)   hint: ("all"|"any", [tags]) for the planner
    t = type(spec)
    if t is str:
        return (lambda tags: spec in tags), ("all", [spec])
    if t is list or t is tuple:
        return _tagtest({"$all": spec}, op)
    if t is not dict or not spec:
        raise _err("needs a tag, a list of tags or {$all|$in|$nin: [...]}", op, "")
    preds = []
    hint = None
    for k in spec:
        lst = spec[k]
        if k == "$not":
            p = _tagtest(lst, op)[0]
            preds.append(lambda tags, p=p: not p(tags))
            continue
        if type(lst) is str:
            lst = [lst]
        if type(lst) not in (list, tuple):
            raise _err("needs a list of tags", k, op)
        for x in lst:
            if type(x) is not str:
                raise _err("tags are strings", k, op)
        lst = tuple(lst)
        if k == "$all":
            preds.append(lambda tags, lst=lst: _tall(lst, tags))
            if lst and hint is None:
                hint = ("all", list(lst))
        elif k == "$in" or k == "$any":
            preds.append(lambda tags, lst=lst: _tany(lst, tags))
            if hint is None or hint[0] != "all":
                hint = ("any", list(lst))
        elif k == "$nin":
            preds.append(lambda tags, lst=lst: not _tany(lst, tags))
        else:
            raise _err("unknown tag operator", k, op)
    if len(preds) == 1:
        return preds[0], hint
    return (lambda tags: _tall_p(preds, tags)), hint


def _tall(lst, tags):
    for x in lst:
        if x not in tags:
            return False
    return True


def _tany(lst, tags):
    for x in lst:
        if x in tags:
            return True
    return False


def _tall_p(preds, tags):
    for p in preds:
        if not p(tags):
            return False
    return True


# ---- whole query ------------------------------------------------------
# A compiled condition is (pred(doc, tags), tag_only, hint).
# hint is used by the planner: ("field", path, kind, arg) or ("tags", kind, list)

def _field_hint(path, spec):
    t = type(spec)
    if t is not dict or not _is_opdict(spec, path):
        if spec is None or t in (bool, int, float, str):
            return ("field", path, "eq", [spec])
        return None
    if "$eq" in spec:
        a = spec["$eq"]
        if a is None or type(a) in (bool, int, float, str):
            return ("field", path, "eq", [a])
    if "$in" in spec:
        a = spec["$in"]
        ok = type(a) in (list, tuple)
        if ok:
            for x in a:
                if not (x is None or type(x) in (bool, int, float, str)):
                    ok = False
        if ok:
            return ("field", path, "in", list(a))
    lo = hi = None
    for op in ("$gt", "$gte"):
        if op in spec:
            lo = spec[op]
    for op in ("$lt", "$lte"):
        if op in spec:
            hi = spec[op]
    if lo is not None or hi is not None:
        kinds = []
        for x in (lo, hi):
            if x is not None:
                tx = type(x)
                kinds.append("s" if tx is str else ("n" if tx in (int, float) else "?"))
        if "?" not in kinds and (len(kinds) == 1 or kinds[0] == kinds[1]):
            return ("field", path, "range", (kinds[0], lo, hi))
    return None


def _cond(path, spec):
    getter = _getter(path)
    test = _vtest(spec, path)
    return (lambda doc, tags: test(getter(doc))), False, _field_hint(path, spec)


def _compile_list(conds):
    # conds: list of (pred, tag_only, hint) -> single pred(doc, tags)
    ps = [c[0] for c in conds]
    if len(ps) == 1:
        return ps[0]
    if len(ps) == 2:
        a, b = ps
        return lambda doc, tags: a(doc, tags) and b(doc, tags)

    def pred(doc, tags):
        for p in ps:
            if not p(doc, tags):
                return False
        return True
    return pred


def _conds(q, root, out):
    # Append the conjuncts of query dict q to out.
    if type(q) is not dict:
        raise _err("a query must be a dict", q, "")
    for k in q:
        if type(k) is not str:
            raise _err("keys must be strings", k, "")
        v = q[k]
        if k[:1] == "$":
            if k in _ROOT_OPTS:
                if not root:
                    raise _err("only allowed at the top level", k, "")
                continue
            if k == "$and":
                if type(v) not in (list, tuple) or not v:
                    raise _err("needs a non-empty list of queries", k, "")
                for sub in v:
                    _conds(sub, False, out)
            elif k == "$or":
                if type(v) not in (list, tuple) or not v:
                    raise _err("needs a non-empty list of queries", k, "")
                subs = []
                bh = []          # per branch: its conjuncts' planner hints
                for sub in v:
                    cs = []
                    _conds(sub, False, cs)
                    subs.append(_compile_list(cs) if cs else None)
                    bh.append([c[2] for c in cs if c[2] is not None])
                if None in subs:
                    continue     # an empty branch matches everything
                out.append((_orp(subs), False, ("or", bh) if [] not in bh else None))
            elif k == "$not":
                cs = []
                _conds(v, False, cs)
                if not cs:
                    out.append(((lambda doc, tags: False), False, None))
                else:
                    out.append((_notp(_compile_list(cs)), False, None))
            elif k == "$tags":
                out.append(_tagcond(v, k))
            else:
                raise _err("unknown operator", k, "")
        elif (k == "_tags") or (k == "tags" and type(v) is str):
            # compatibility with the earlier MicroTetherDB
            out.append(_tagcond(v, k))
        else:
            out.append(_cond(k, v))


def _tagcond(v, k):
    tp, hint = _tagtest(v, k)
    return (lambda doc, tags: tp(tags)), True, ("tags",) + hint if hint else None, tp


def _notp(p):
    return lambda doc, tags: not p(doc, tags)


def _orp(subs):
    def pred(doc, tags):
        for p in subs:
            if p(doc, tags):
                return True
        return False
    return pred


def _keyb(k, op):
    if type(k) is str:
        return k.encode()
    if type(k) is bytes:
        return k
    raise _err("key bounds must be str or bytes", op, "$keys")


def _after(b):
    # smallest byte string greater than every string starting with b
    n = len(b)
    while n and b[n - 1] == 0xFF:
        n -= 1
    if not n:
        return None
    return b[:n - 1] + bytes((b[n - 1] + 1,))


def _keyrange(spec):
    # -> (start inclusive or None, end exclusive or None)
    if spec is None:
        return None, None
    if type(spec) in (str, bytes):
        spec = {"$prefix": spec}
    if type(spec) is not dict:
        raise _err("needs a prefix or a dict of $gt/$gte/$lt/$lte/$prefix", "$keys", "$keys")
    start = end = None
    for op in spec:
        b = _keyb(spec[op], op)
        if op == "$gte":
            s, e = b, None
        elif op == "$gt":
            s, e = b + b"\x00", None
        elif op == "$lt":
            s, e = None, b
        elif op == "$lte":
            s, e = None, b + b"\x00"
        elif op == "$prefix":
            s, e = b, _after(b)
        else:
            raise _err("unknown operator", op, "$keys")
        if s is not None and (start is None or s > start):
            start = s
        if e is not None and (end is None or e < end):
            end = e
    if start == b"":
        start = None      # btree rejects empty keys; b"" is below every key
    return start, end


def _sortspec(s):
    # -> (path, descending) or None
    if s is None:
        return None
    d = 1
    if type(s) in (list, tuple):
        if len(s) != 2 or type(s[0]) is not str:
            raise _err("needs 'field' or ('field', 1|-1)", "$sort", "")
        s, d = s
    if type(s) is not str or not s or d not in (1, -1) or type(d) is bool:
        raise _err("needs 'field' or ('field', 1|-1)", "$sort", "")
    return s, d < 0


def _count_opt(q, op):
    v = q.get(op)
    if v is None:
        return None
    if type(v) is not int or v < 0:
        raise _err("needs a non-negative integer", op, "")
    return v


class Plan:
    # A compiled query. Attributes are read by find()/explain().
    def __init__(self, q):
        conds = []
        _conds(q, True, conds)
        self.limit = _count_opt(q, "$limit")
        self.skip = _count_opt(q, "$skip") or 0
        self.sort = _sortspec(q.get("$sort"))
        self.kstart, self.kend = _keyrange(q.get("$keys"))
        pl = q.get("$plan")
        if pl is not None and pl != "scan" and pl != "auto":
            raise _err("needs 'scan' or 'auto'", "$plan", "")
        self.scan = pl == "scan"
        hdr = []
        doc = []
        hints = []
        for c in conds:
            if c[1]:
                hdr.append(c[3])   # tag-only: checked before decoding
            else:
                doc.append(c)
            if c[2] is not None:
                hints.append(c[2])
        self.hints = hints
        self.tagp = _tags_all(hdr) if hdr else None
        self.docp = _compile_list(doc) if doc else None
        self.sortget = None
        if self.sort is not None and self.sort[0] != "$key":
            self.sortget = _getter(self.sort[0])


def _tags_all(ps):
    if len(ps) == 1:
        return ps[0]
    return lambda tags: _tall_p(ps, tags)


# ---- execution --------------------------------------------------------

def _source(db, plan):
    # -> (iterator of (key_bytes, raw), description dict)
    if plan.kend is not None and (plan.kend == b"" or (plan.kstart is not None and plan.kend <= plan.kstart)):
        return iter(()), {"plan": "empty"}
    if not plan.scan:
        from . import planner
        ix = planner.choose(db, db._indexes(), plan)
        if ix is not None:
            return ix
    return db._records(plan.kstart, plan.kend), {"plan": "scan"}


def _matches(db, plan, src):
    # yields (key_bytes, doc) of live matching records, in source order
    now = db._now()
    tagp = plan.tagp
    docp = plan.docp
    header = codec.header
    doc_of = codec.doc
    try:
        for kb, raw in src:
            exp, tags = header(raw)
            if exp is not None and exp <= now:
                continue
            if tagp is not None and not tagp(tags):
                continue
            doc = doc_of(raw)
            if docp is not None and not docp(doc, tags):
                continue
            yield kb, doc
    except CorruptDBError as e:
        raise db._named(e)  # (a damaged record: the error names the file)
    db._check_open()   # closed while iterating: say so, not a short result


def _rank(v):
    t = type(v)
    if v is _MISSING or v is None:
        return 0, 0
    if t is bool:
        return 1, v
    if t is int or t is float:
        return 2, v
    if t is str:
        return 3, v
    return 4, 0


def _run(db, plan, src):
    skip = plan.skip
    limit = plan.limit
    if limit == 0:
        return
    if plan.sort is None:
        for kb, doc in _matches(db, plan, src):
            if skip:
                skip -= 1
                continue
            yield db._key(kb), doc
            if limit is not None:
                limit -= 1
                if not limit:
                    return
        return
    # sorted: keep only (sort key, key bytes); fetch the documents afterwards
    desc = plan.sort[1]
    get = plan.sortget
    rows = []
    i = 0
    for kb, doc in _matches(db, plan, src):
        if get is None:
            r, v = 0, i      # "$key": the position is the key order
        else:
            r, v = _rank(get(doc))
        rows.append((r, v, -i if desc else i, kb))
        i += 1
        doc = None
    rows.sort(reverse=desc)
    end = len(rows) if limit is None else min(len(rows), skip + limit)
    for j in range(skip, end):
        kb = rows[j][3]
        rows[j] = None
        raw = db._raw(kb)  # the caller may close or compact between items
        if raw is None:
            continue      # deleted meanwhile
        yield db._key(kb), codec.doc(raw, db.filename)


def find(db, q):
    """Generator of (key, document) for the records matching q."""
    db._check_open()
    plan = Plan(q)
    src, _ = _source(db, plan)
    return _run(db, plan, src)


def query(db, q):
    """List of the documents matching q."""
    return [d for _, d in find(db, q)]


def count(db, q):
    n = 0
    for _ in find(db, q):
        n += 1
    return n


def explain(db, q):
    """Describe the plan for q without decoding documents."""
    db._check_open()
    plan = Plan(q)
    src, info = _source(db, plan)
    n = 0
    for _ in src:
        n += 1
    info = dict(info)
    info["touch"] = n
    info["filter"] = plan.docp is not None or plan.tagp is not None
    if plan.kstart is not None or plan.kend is not None:
        info["keys"] = (plan.kstart, plan.kend)
    if plan.sort is not None:
        info["sort"] = plan.sort
    if plan.skip:
        info["skip"] = plan.skip
    if plan.limit is not None:
        info["limit"] = plan.limit
    return info
