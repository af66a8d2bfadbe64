# Berkeley DB 1.85 bug (lib/berkeley-db, from Debian's db1-compat; found by a
# randomized soak on 2026-12-02, not fixed yet): these 12 ordinary writes, the
# ones a memory-mode database made for five puts (the last overwrites 'zzz'
# with a ~230-byte record), leave a page header as a key in the tree on
# 512-byte pages: 12 keys instead of 11; with cachesize=0 the process crashes.
# Not run by the test suite. Run: MICROPYPATH= build/unix/micropython tests/repro/btree_overwrite_corrupt.py
import btree, io

ops = [
 (b'\xffi\x00', b'{"$tags": 1}'), (b'\xffm', b'MTDB\x02:0:-1:0'),
 (b'0000001000-00000', b'\x03\x00\x00\x03\xec\x03\x02t1\x02t2(' + b'x' * 40 + b'{"i":275,"n":{"x":3}}'),
 (b'\xfft\x00\x00\x03\xec0000001000-00000', b''),
 (b'\xffi\x01\x05t1\x000000001000-00000', b''),
 (b'\xffi\x01\x05t2\x000000001000-00000', b''),
 (b'\xffi\x01\x05' + b'x' * 40 + b'\x000000001000-00000', b''),
 (b'0000001000-00001', b'\x01\x00\x00\x03\xea{"s":"sssssssssssssssss"}'),
 (b'\xfft\x00\x00\x03\xea0000001000-00001', b''),
 (b'zzz', b'{}'),
 (b'1', b'{"i":218,"f":"' + b'L' * 61 + b'"}'),
 (b'zzz', b'\x01\x00\x00\x03\xea{"f":true,"i":-490,"s":"' + b's' * 198 + b'"}'),
]
want = len(set(k for k, v in ops))
for cache in (4096, 0):
    bt = btree.open(io.BytesIO(), pagesize=512, cachesize=cache)
    for k, v in ops:
        bt[k] = v
    ks = list(bt.keys())
    print("cachesize=%d: %d keys (want %d) %s" % (cache, len(ks), want, "OK" if len(ks) == want else "BROKEN"))
    bt.close()
