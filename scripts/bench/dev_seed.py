# Benchmark device code, part 3a: the seed workload.
# The operation mix and counts of the earlier MicroTetherDB's report:
# 13 puts, 4 gets, 1 delete, 4 batch puts (43 items), 2 batch deletes
# (12 items), 20 queries of the kinds it ran; repeated CFG["reps"] times on a
# fresh database each time (file mode: a new file each time).

_S = "sensor"
# (name, query for the database, predicate for the raw scan, limit)
QUERIES = (
    ("eq", {"name": "sensor7"}, lambda d: d["name"] == "sensor7", 0),
    ("eq2", {"type": "temp", "room": "lab"}, lambda d: d["type"] == "temp" and d["room"] == "lab", 0),
    ("eq_none", {"name": "sensor5"}, lambda d: d["name"] == "sensor5", 0),
    ("$eq", {"room": {"$eq": "attic"}, "type": "hum"}, lambda d: d["room"] == "attic" and d["type"] == "hum", 0),
    ("$ne", {"type": {"$ne": "temp"}, "room": "kitchen", "meta.floor": 0},
     lambda d: d["type"] != "temp" and d["room"] == "kitchen" and d["meta"]["floor"] == 0, 0),
    ("$gt", {"value": {"$gt": 95}}, lambda d: d["value"] > 95, 0),
    ("$gte", {"value": {"$gte": 90}}, lambda d: d["value"] >= 90, 0),
    ("$lt", {"value": {"$lt": 5}}, lambda d: d["value"] < 5, 0),
    ("$lte", {"value": {"$lte": 10}}, lambda d: d["value"] <= 10, 0),
    ("range", {"value": {"$gte": 40, "$lt": 50}}, lambda d: 40 <= d["value"] < 50, 0),
    ("$in", {"name": {"$in": ["sensor1", "sensor2", "sensor3", "sensor99"]}},
     lambda d: d["name"] in ("sensor1", "sensor2", "sensor3", "sensor99"), 0),
    ("$exists", {"colour": {"$exists": True}}, lambda d: "colour" in d, 0),
    ("$contains", {"name": {"$contains": "sensor5"}}, lambda d: "sensor5" in d["name"], 0),
    ("dotted", {"meta.floor": 2, "room": "hall"}, lambda d: d["meta"]["floor"] == 2 and d["room"] == "hall", 0),
    ("dotted_bool", {"meta.ok": False, "type": "temp"},
     lambda d: d["meta"]["ok"] is False and d["type"] == "temp", 0),
    ("tags", {"tags": "t3"}, lambda d: "t3" in d.get("_tags", ()), 0),
    ("_tags", {"_tags": "even"}, lambda d: "even" in d.get("_tags", ()), 0),
    ("$limit", {"$limit": 15}, lambda d: True, 15),
    ("$and", {"$and": [{"type": "co2"}, {"value": {"$gt": 50}}]},
     lambda d: d["type"] == "co2" and d["value"] > 50, 0),
    ("eq_dotted", {"meta.floor": 1, "room": "lab"}, lambda d: d["meta"]["floor"] == 1 and d["room"] == "lab", 0),
)
BATCHES = ((13, 10), (23, 11), (34, 11), (45, 11))  # (first doc, size): 43 items


def seed_main():
    reps = CFG.get("reps", 1)
    mode = CFG["mode"]
    o_open = Op("open", reps)
    o_put = Op("put", 13 * reps)
    o_get = Op("get", 4 * reps)
    o_del = Op("delete", reps)
    o_pb = Op("put_batch", 4 * reps)
    o_db = Op("delete_batch", 2 * reps)
    o_q = Op("query", 20 * reps)
    o_close = Op("close", reps)
    h0 = live()
    peak = 0
    qcounts = None
    qerr = {}
    for r in range(reps):
        path = None
        if mode == "file":
            path = path_for("seed%d" % r)
            rm(path)
        gc.collect()
        o_open.run(impl_open, path)
        keys = []
        for i in range(13):
            keys.append(o_put.run3(PUT3, doc(i), None, tags(i)))
        for i in (0, 3, 7, 12):
            d = o_get.run(GET, keys[i])
            assert d is not None and d["name"] == "sensor%d" % i, d
        assert o_del.run(DEL, keys[5]) == 1
        bkeys = []
        for first, size in BATCHES:
            items = [doc(first + j) for j in range(size)]
            ks = o_pb.run(PUTB, items)
            assert len(ks) == size
            bkeys.append(ks)
        assert o_db.run(DELB, bkeys[0][:6]) == 6
        assert o_db.run(DELB, bkeys[2][:6]) == 6
        counts = []
        for spec in QUERIES:
            try:
                res = o_q.run(QUERY, qarg(spec))
                counts.append(len(res))
            except Exception as e:  # an operator the engine lacks: report it
                counts.append(None)
                qerr[spec[0]] = "%s: %s" % (type(e).__name__, e)
        if qcounts is None:
            qcounts = counts
        n_left = impl_count()
        o_close.run0(impl_close)
        if path:
            size = fsize(path)
            rm(path)
        keys = bkeys = None
    for o in (o_open, o_put, o_get, o_del, o_pb, o_db, o_q, o_close):
        if o.peak > peak:
            peak = o.peak
    o_pb.items = 43
    o_db.items = 12
    for o in (o_open, o_put, o_get, o_del, o_pb, o_db, o_close):
        o.done()
    o_q.done({"counts": qcounts, "errors": qerr})
    val("records_left", n_left)
    if mode == "file":
        val("file_size", size)
    heap_rec("seed", h0, live(), {"peak": peak})


try:
    seed_main()
except Exception as e:
    err("seed", e)
    import sys
    sys.print_exception(e)
emit({"t": "end"})
