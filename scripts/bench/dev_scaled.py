# Benchmark device code, part 3b: scaled workload on N documents.
# Phases (each timed per call): put N (even records plain, odd ones with
# 2 tags and a TTL: ops "put" and "put_tt"), get N (pseudo-random order),
# overwrite N (same split), [file: close, file size, reopen], queries (equality,
# range, tag: full scans unless the database has indexes), batch put/delete
# of 10 and of 100 items, delete N singly (same split), then TTL: N records of which half
# expire, the clock jumps, one cleanup() removes them. Memory mode also
# measures heap bytes per stored record on a separate fresh database.

_P = 7919  # prime: i * _P % N visits 0..N-1 in a scrambled order
TTL_LONG = 1000000  # seconds: the "_tt" records outlive the run


def _evens(it):
    c = 0
    for i in it:
        if not i & 1:
            c += 1
    return c


def heap_per_record(n):
    gc.collect()
    h0 = live()
    impl_open(None)
    m0 = live()
    put = PUT
    for i in range(n):
        put(doc(i))
    m1 = live()
    impl_close()
    val("heap_per_record", (m1 - m0) / n, {"open_empty": m0 - h0, "heap_n": m1 - m0})
    gc.collect()


def scaled_main():
    n = CFG["n"]
    mode = CFG["mode"]
    qreps = CFG.get("qreps", 5)
    path = None
    if mode == "file":
        path = path_for("n%d" % n)
        rm(path)
    elif CFG.get("heap", True):
        try:
            heap_per_record(n)
        except MemoryError as e:
            err("heap_per_record", e)
            return
    # CFG["ops"]: time only that many calls of put/get/overwrite/delete; the
    # other records are written/removed untimed in batches of 50 (used on
    # qemu in file mode, where every flush rewrites the file's tail on LittleFS)
    ops = CFG.get("ops") or n
    if ops > n:
        ops = n
    h0 = live()
    timed_once("open", lambda: impl_open(path))
    # put / get / overwrite. Records 0..n-ops-1 (sampled mode only) get the
    # custom keys "0b%07d" through untimed batches, so their keys need no heap;
    # the timed puts' keys (generated) are kept in `keys`. "0b..." sorts before
    # both generated ("1700000000-...") and raw ("r...") keys: the timed puts
    # land at the end of the key space, as new records do in real use.
    pre = n - ops
    i = 0
    while i < pre:
        m = min(50, pre - i)
        PUTB([("0b%07d" % (i + j), doc(i + j)) for j in range(m)])
        i += m
    # even records: a plain put (generated key); odd records: with two tags
    # and a TTL that does not expire during the run ("*_tt" ops)
    keys = [None] * ops
    ne = _evens(range(pre, n))
    o = Op("put", ne)
    ot = Op("put_tt", ops - ne)
    for i in range(pre, n):
        if i & 1:
            keys[i - pre] = ot.run3(PUT3, doc(i), TTL_LONG, tags(i))
        else:
            keys[i - pre] = o.run(PUT, doc(i))
    o.done()
    ot.done()
    h1 = live()
    heap_rec("put", h0, h1, {"peak": o.peak})

    def key(i):
        return keys[i - pre] if i >= pre else "0b%07d" % i

    order = [(j * _P) % n for j in range(ops)]
    o = Op("get", ops)
    for i in order:
        k = key(i)
        d = o.run(GET, k)
        if d is None:
            raise AssertionError("get missed %s" % k)
    o.done()
    ne = _evens(order)
    o = Op("overwrite", ne)
    ot = Op("overwrite_tt", ops - ne)
    for i in order:
        d = doc(i)
        d["value"] = d["value"] + 1
        if i & 1:
            ot.run4(PUTK, key(i), d, TTL_LONG, tags(i))
        else:
            o.run2(PUTK, key(i), d)
    o.done()
    ot.done()
    heap_rec("get_overwrite", h1, live(), {"peak": o.peak})
    if mode == "file":
        timed_once("close", impl_close)
        val("file_size", fsize(path), {"records": n})
        timed_once("reopen", lambda: impl_open(path))
        h1 = live()
        heap_rec("reopen", h0, h1)
    # queries
    qs = (
        ("query_eq", ("q", {"name": "sensor%d" % (n // 2)}, lambda d: d["name"] == _QN, 0)),
        ("query_range", ("q", {"value": {"$gte": 10, "$lt": 20}}, lambda d: 10 <= d["value"] < 20, 0)),
        ("query_tag", ("q", {"tags": "t3"}, lambda d: "t3" in d.get("_tags", ()), 0)),
    )
    global _QN
    _QN = "sensor%d" % (n // 2)
    for name, spec in qs:
        o = Op(name, qreps)
        cnt = None
        try:
            for _ in range(qreps):
                cnt = len(o.run(QUERY, qarg(spec)))
        except Exception as e:
            err(name, e)
            continue
        o.done({"results": cnt})
    if impl_index is not None and CFG.get("index", True):
        # the same equality and range queries on secondary indexes (the
        # database only; the tag query above already uses its built-in tag
        # index), then the indexes are dropped again for the later phases
        try:
            timed_once("create_index", lambda: (impl_index("name"), impl_index("value")))
            for name, spec in qs[:2]:
                o = Op(name + "_idx", qreps)
                for _ in range(qreps):
                    cnt = len(o.run(QUERY, qarg(spec)))
                o.done({"results": cnt, "plan": str(impl_explain(spec[1]))[:120]})
        except Exception as e:
            err("index", e)
        # dropped in any case: the later phases run without secondary indexes
        for f in ("name", "value"):
            try:
                impl_drop_index(f)
            except Exception:
                pass
    # batches
    base = 1000000
    for size, count in ((10, CFG.get("b10", 10)), (100, CFG.get("b100", 5))):
        o = Op("put_batch%d" % size, count)
        o2 = Op("delete_batch%d" % size, count)
        o.items = o2.items = size * count
        # each batch put is followed by the batch delete of its keys, so the
        # database stays at N..N+size records (fits the qemu heap in memory mode)
        try:
            for b in range(count):
                items = [doc(base + j) for j in range(size)]
                base += size
                bk = o.run(PUTB, items)
                items = None
                got = o2.run(DELB, bk)
                if got != size:
                    raise AssertionError("delete_batch %d != %d" % (got, size))
                bk = None
        except Exception as e:
            items = bk = None
            if not oom(e):
                raise
            err("put_batch%d" % size, e)
            continue
        o.done()
        o2.done()
        heap_rec("batch%d" % size, h1, live(), {"peak": max(o.peak, o2.peak)})
    # delete every record singly
    o = Op("delete", ne)
    ot = Op("delete_tt", ops - ne)
    for i in order:
        if i & 1:
            ot.run(DEL, key(i))
        else:
            o.run(DEL, key(i))
    o.done()
    ot.done()
    gone = set(order)
    rest = []
    for i in range(n):
        if i not in gone:
            rest.append(key(i))
            if len(rest) == 50:
                DELB(rest)
                rest = []
    if rest:
        DELB(rest)
    rest = gone = keys = None
    # TTL: half the records expire, one cleanup removes them
    ttls = [60 if j % 2 == 0 else None for j in range(50)]
    done = 0
    while done < n:
        m = min(50, n - done)
        PUTB2([doc(done + j) for j in range(m)], ttls[:m] if m < 50 else ttls)
        done += m
    CLOCK[0] += 120
    expect = (n + 1) // 2
    got = timed_once("cleanup_half", CLEANUP, {"items": expect})
    if got != expect:
        raise AssertionError("cleanup removed %r, expected %d" % (got, expect))
    left = impl_count()
    if left != n - expect:
        raise AssertionError("after cleanup %d left" % left)
    if mode == "mem":
        timed_once("close", impl_close)
    else:
        impl_close()
    if mode == "file":
        val("file_size_end", fsize(path), {"records": left})
        rm(path)
    heap_rec("end", h0, live())


_QN = None
try:
    scaled_main()
except Exception as e:
    err("scaled", e)
    import sys
    sys.print_exception(e)
emit({"t": "end"})
