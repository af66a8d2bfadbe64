# Time to live.
#
# Expiry is absolute: expiry = int(clock()) + ceil(ttl), stored in the record
# header (4 bytes, unsigned seconds) and mirrored in an expiry index inside the
# same btree: key b"\xfft" + expiry (4 bytes big-endian) + record key, empty
# value.  The index sorts by expiry, so finding what has expired at time `now`
# is a range scan over b"\xfft" .. b"\xfft" + (now + 1): cleanup costs
# O(expired), not a scan of the database.  A record is expired when
# expiry <= now; it is then invisible at once, and cleanup() removes it.
#
# Clock jumps: times are compared with whatever the clock returns now.  A jump
# forward (RTC set by NTP after booting at 2000-01-01) expires records whose
# expiry is now in the past; records written while the clock was wrong keep
# an expiry in that wrong time base (so records written at "2000" with a TTL
# expire right after an NTP jump to the present; records written at the real
# time with a clock that later reboots to 2000 live on until the clock is set
# again).  Set the RTC before writing TTL records, or pass a clock= callable.
IDX = b"\xfft"
MAXEXP = 0xFFFFFFFF


def expiry_for(ttl, now):
    if ttl is None:
        return None
    t = type(ttl)
    if t is not int and t is not float:
        raise ValueError("ttl must be a number of seconds or None")
    if ttl - ttl != 0:  # inf, nan: int() would raise OverflowError
        raise ValueError("ttl must be a finite number of seconds, not %r" % (ttl,))
    if ttl < 0:
        raise ValueError("ttl must be >= 0")
    if ttl == 0:
        return None  # 0 = no expiry, as in the earlier MicroTetherDB
    it = int(ttl)
    if it < ttl:
        it += 1
    e = now + it
    if e > MAXEXP:
        raise ValueError("ttl too large")
    return e


def ikey(exp, kb):
    # index key of a record (kb: its key as stored, str or bytes)
    return IDX + exp.to_bytes(4, "big") + (kb if type(kb) is bytes else kb.encode())


def ikey_of(raw, kb):
    # index key of a stored value with an expiry, from its header's bytes
    e = raw[1:5]
    if type(e) is not bytes:
        e = bytes(e)  # (a bytearray: a value just encoded)
    return IDX + e + (kb if type(kb) is bytes else kb.encode())


def _end(now):
    if now >= MAXEXP:
        return b"\xfft\xff\xff\xff\xff\xff"
    return IDX + (now + 1).to_bytes(4, "big")


def expired_keys(bt, now, limit):
    # Up to `limit` index keys of records expired at `now`, oldest first.
    out = []
    for k in bt.keys(IDX, _end(now)):
        out.append(k)
        if len(out) >= limit:
            break
    return out


def count_expired(bt, now):
    n = 0
    for _ in bt.keys(IDX, _end(now)):
        n += 1
    return n
