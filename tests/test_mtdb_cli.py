"""scripts/mtdb.py, the host command: export, import, stats, check, repair,
migrate on files of this computer (host firmware: the unix pass of make test)
and, with --target qemu, on the qemu board over mpremote (--device), including
a file moved between the 32-bit board and the 64-bit host both ways."""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MTDB = os.path.join(ROOT, "scripts", "mtdb.py")
MICROPYTHON = os.path.join(ROOT, "build", "unix", "micropython")


def cli(*args, stdin="", cwd=None):
    p = subprocess.run([sys.executable, MTDB] + list(args), input=stdin, capture_output=True,
                       text=True, cwd=cwd, timeout=600)
    return p.returncode, p.stdout, p.stderr


def lines(text):
    return [json.loads(l) for l in text.splitlines()]


def mp(code, cwd):
    """Run code in the host firmware in cwd; return its output."""
    p = subprocess.run([MICROPYTHON, "-c", code], cwd=cwd, capture_output=True, text=True,
                       env=dict(os.environ, MICROPYPATH=""), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


# A database written with the unix port's clock (1970 epoch): a record that
# expired at 1010, one that expires in 2100, tags, nesting, non-ASCII.
MAKE_DB = """
from microtetherdb import MicroTetherDB
db = MicroTetherDB('a.db', in_memory=False, clock=lambda: 1000)
db.put('gone', {'x': 0}, ttl=10)
db.close()
db = MicroTetherDB('a.db', in_memory=False, clock=lambda: 1700000000)
db.put('config', {'a': 1, 'n': {'x': [1, 2.5], 'y': None}}, tags=['t1', 't 2'])
db.put('ttl', {'c': 3}, ttl=4102444800 - 1700000000)
db.put('\u00fc', {'s': '\u00e9\\n"'})
db.put('k1', {'v': 1}); db.put('k2', {'v': 2}); db.put('k3', {'v': 3})
db.close()
"""

RECORDS = [
    {"key": "config", "doc": {"a": 1, "n": {"x": [1, 2.5], "y": None}}, "tags": ["t1", "t 2"]},
    {"key": "k1", "doc": {"v": 1}},
    {"key": "k2", "doc": {"v": 2}},
    {"key": "k3", "doc": {"v": 3}},
    {"key": "ttl", "doc": {"c": 3}, "expires": 4102444800},
    {"key": "\u00fc", "doc": {"s": "\u00e9\n\""}},
]


@pytest.fixture
def host(request, tmp_path):
    if request.config.getoption("--target") != "unix":
        pytest.skip("host-side files: the unix pass")
    mp(MAKE_DB, tmp_path)
    return tmp_path


def test_export_is_one_json_object_per_live_record(host):
    rc, out, err = cli("export", "a.db", cwd=host)
    assert rc == 0, err
    assert lines(out) == RECORDS        # key order; the expired record left out
    assert "exported 6 records" in err
    rc, out2, _ = cli("--epoch", "1970", "export", "a.db", cwd=host)
    assert out2 == out


def test_export_since_gives_only_newer_keys(host):
    rc, out, err = cli("export", "a.db", "--since", "k1", cwd=host)
    assert rc == 0, err
    assert [r["key"] for r in lines(out)] == ["k2", "k3", "ttl", "\u00fc"]


def test_export_csv_has_a_column_per_field(host):
    rc, out, err = cli("export", "a.db", "--csv", cwd=host)
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["key"] for r in rows] == [r["key"] for r in RECORDS]
    assert rows[0]["tags"] == '["t1", "t 2"]' and rows[0]["n.x"] == "[1, 2.5]"
    assert rows[0]["a"] == "1" and rows[0]["n.y"] == "" and rows[0]["v"] == ""
    assert rows[4]["expires"] == "4102444800" and rows[5]["s"] == "\u00e9\n\""


def test_import_round_trip_keeps_keys_docs_tags_expiry(host):
    _, out, _ = cli("export", "a.db", cwd=host)
    rc, _, err = cli("import", "b.db", stdin=out, cwd=host)
    assert rc == 0, err
    assert "imported 6 records" in err
    _, out2, _ = cli("export", "b.db", cwd=host)
    assert out2 == out
    # tags are real tags in the new file, expiry is absolute
    assert "['config']" in mp("from microtetherdb import MicroTetherDB\n"
                              "db = MicroTetherDB('b.db', in_memory=False)\n"
                              "print([k for k, d in db.find({'$tags': 't 2'})])", host)


def test_import_skips_expired_lines(host):
    text = ('{"key": "old", "doc": {}, "expires": 5}\n'
            '{"key": "new", "doc": {"a": 1}, "expires": null}\n')
    rc, _, err = cli("import", "c.db", stdin=text, cwd=host)
    assert rc == 0 and "imported 1 records, skipped 1 already expired" in err, err
    assert [r["key"] for r in lines(cli("export", "c.db", cwd=host)[1])] == ["new"]


@pytest.mark.parametrize("bad,why", [
    ('{"key": "x", "doc": [1]}', '"doc" must be a JSON object'),
    ('{"key": "", "doc": {}}', '"key" must be a non-empty string'),
    ('{"key": "x", "doc": {}, "tags": "a"}', '"tags" must be a list of strings'),
    ('{"key": "x", "doc": {}, "expires": 1.5}', '"expires" must be whole seconds'),
    ('{"key": "x", "doc": {}, "ttl": 5}', "unknown field 'ttl'"),
    ('{"key": "x", "doc": {"n": NaN}}', "NaN is not JSON"),
    ('{"key": "x", "doc": {}', "not JSON"),
    ('{"key": "%s", "doc": {}}' % ("k" * 129), "over the limit of 128"),        # found on the device
    ('{"key": "x", "doc": {"s": "%s"}}' % ("x" * 9000), "max_doc_size"),        # found on the device
])
def test_import_bad_line_names_its_line_and_writes_nothing_of_its_batch(host, bad, why):
    good = ['{"key": "g%d", "doc": {"i": %d}}' % (i, i) for i in range(5)]
    text = "\n".join(good[:3] + [bad] + good[3:]) + "\n"
    rc, _, err = cli("import", "d.db", "--batch", "2", stdin=text, cwd=host)
    assert rc == 1
    assert "line 4: " in err and why in err, err
    assert "nothing of lines 3-4 was written (2 records imported before them)" in err, err
    assert [r["key"] for r in lines(cli("export", "d.db", cwd=host)[1])] == ["g0", "g1"]


def test_import_failure_on_the_device_restores_overwritten_records(host):
    # config exists with tags; the batch overwrites it, then fails on the device:
    # config must be back as it was, tags and all, and the new key gone.
    text = ('{"key": "config", "doc": {"new": 1}}\n{"key": "fresh", "doc": {}}\n'
            '{"key": "ttl", "doc": {"c": 4}}\n{"key": "%s", "doc": {}}\n' % ("k" * 200))
    before = cli("export", "a.db", cwd=host)[1]
    rc, _, err = cli("import", "a.db", stdin=text, cwd=host)
    assert rc == 1 and "line 4: ValueError" in err, err
    assert cli("export", "a.db", cwd=host)[1] == before


def _damage(path):
    """Zero 512 bytes in the middle of a database: a page of a format 1 file,
    or of the biggest chunk of a format 2 folder. -> the file damaged."""
    if path.is_dir():
        path = max((path / "c").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2 // 512 * 512
    data[mid:mid + 512] = b"\0" * 512
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("fmt", [1, 2])
def test_stats_check_and_repair(tmp_path, request, fmt):
    if request.config.getoption("--target") != "unix":
        pytest.skip("host-side files: the unix pass")
    mp(MAKE_DB.replace("in_memory=False,", "in_memory=False, file_format=%d," % fmt, 1), tmp_path)
    host = tmp_path
    assert (host / "a.db").is_dir() == (fmt == 2)
    rc, out, err = cli("stats", "a.db", cwd=host)
    assert rc == 0, err
    s = json.loads(out)
    assert s["records"] == 6 and s["expired_pending"] == 1 and s["indexes"] == ["$tags"]
    assert s["file_format"] == fmt
    rc, out, err = cli("check", "a.db", cwd=host)
    assert rc == 0 and json.loads(out)["ok"] is True, out + err
    # damage a page in the middle: check says so, repair salvages, check passes again
    _damage(host / "a.db")
    rc, out, err = cli("check", "a.db", cwd=host)
    assert rc == 1 and json.loads(out)["ok"] is False and "damaged" in err, out + err
    rc, out, err = cli("repair", "a.db", cwd=host)
    assert rc == 0, err
    assert json.loads(out)["backup"] == "a.db.corrupt" and (host / "a.db.corrupt").exists()
    assert cli("check", "a.db", cwd=host)[0] == 0


def test_missing_file_is_an_error_and_is_not_created(host):
    for cmd in ("export", "stats", "check", "repair"):
        rc, out, err = cli(cmd, "nope.db", cwd=host)
        assert rc == 1 and "no such file: nope.db" in err, (cmd, err)
    assert not (host / "nope.db").exists()


LEGACY = """
import btree, json
f = open('old.db', 'w+b')
db = btree.open(f, pagesize=512)
db[b'800000000:0:123'] = json.dumps({'t': 1, '_tags': ['a', 'b']})
db[b'800000000:2000000000:7'] = json.dumps({'t': 2})
db[b'800000000:10:9'] = json.dumps({'t': 3})
db[b'custom'] = json.dumps({'c': 1, '_tags': 'x'})
db[b'bad'] = b'{nope'
db[b'\\xc3\\x28'] = b'{}'
db.close(); f.close()
"""


def test_migrate_a_file_of_the_earlier_microtetherdb(host):
    mp(LEGACY, host)
    digest = hashlib.sha256((host / "old.db").read_bytes()).hexdigest()
    rc, out, err = cli("migrate", "old.db", "new.db", cwd=host)
    assert rc == 0, err
    assert json.loads(out) == {"written": 3, "skipped": 3}
    assert "skipped 800000000:10:9: expired" in err
    assert "skipped bad: value is not JSON" in err
    assert "skipped b'\\xc3(': key is not UTF-8" in err
    assert hashlib.sha256((host / "old.db").read_bytes()).hexdigest() == digest
    assert lines(cli("export", "new.db", cwd=host)[1]) == [
        {"key": "800000000:0:123", "doc": {"t": 1}, "tags": ["a", "b"]},
        {"key": "800000000:2000000000:7", "doc": {"t": 2}, "expires": 2800000000},
        {"key": "custom", "doc": {"c": 1}, "tags": ["x"]},
    ]
    # the destination must be new; our own files are not migrated
    rc, _, err = cli("migrate", "old.db", "new.db", cwd=host)
    assert rc == 1 and "new.db exists" in err
    rc, _, err = cli("migrate", "new.db", "x.db", cwd=host)
    assert rc == 1 and "already a MicroTetherDB database" in err
    assert not (host / "x.db").exists()


# ---- on the qemu board, over mpremote (--device) ---------------------------

@pytest.fixture
def board(request, target, tmp_path):
    if request.config.getoption("--target") != "qemu":
        pytest.skip("--device: needs --target qemu")
    s = target.session
    # mount /flash (the runner does it after mpremote's soft reset), clean up
    s.mpremote_do(["exec", "import os\nfor n in os.listdir():\n if n.startswith('cli'):\n  os.remove(n)\n"])
    return s, ["--device", s.pty, "--no-reset"]


def test_device_import_export_stats_check(board, tmp_path):
    s, dev = board
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS)
    rc, _, err = cli(*dev, "import", "/flash/cli.db", stdin=text)
    assert rc == 0 and "imported 6 records" in err, err
    rc, out, err = cli(*dev, "export", "/flash/cli.db")
    assert rc == 0, err
    assert lines(out) == RECORDS
    rc, out, err = cli(*dev, "export", "cli.db", "--since", "k2")      # cwd is /flash
    assert [r["key"] for r in lines(out)] == ["k3", "ttl", "\u00fc"]
    rc, out, err = cli(*dev, "stats", "cli.db")
    assert rc == 0 and json.loads(out)["records"] == 6, err
    rc, out, err = cli(*dev, "check", "cli.db")
    assert rc == 0 and json.loads(out)["ok"], err
    rc, _, err = cli(*dev, "import", "cli.db", stdin='{"key": "x", "doc": 1}\n')
    assert rc == 1 and "line 1: " in err
    rc, _, err = cli(*dev, "export", "missing.db")
    assert rc == 1 and "no such file: missing.db" in err


def test_file_moves_between_32_bit_board_and_64_bit_host(board, tmp_path, request):
    s, dev = board
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS)
    # written on the board, read on the host
    assert cli(*dev, "import", "cli32.db", stdin=text)[0] == 0
    # (a database is a folder, format 2: cp -r)
    out = s.mpremote_do(["cp", "-r", ":/flash/cli32.db", str(tmp_path / "cli32.db")])
    assert (tmp_path / "cli32.db").exists(), out
    rc, out, err = cli("export", "cli32.db", cwd=tmp_path)
    assert rc == 0 and lines(out) == RECORDS, err
    assert cli("check", "cli32.db", cwd=tmp_path)[0] == 0
    # written (and changed) on the host, read on the board
    assert cli("import", "cli32.db", stdin='{"key": "host", "doc": {"bits": 64}}\n',
               cwd=tmp_path)[0] == 0
    s.mpremote_do(["cp", "-r", str(tmp_path / "cli32.db"), ":/flash/cli64.db"])
    rc, out, err = cli(*dev, "export", "cli64.db")
    assert rc == 0, err
    assert lines(out) == sorted(RECORDS + [{"key": "host", "doc": {"bits": 64}}],
                                key=lambda r: r["key"].encode())
    assert cli(*dev, "check", "cli64.db")[0] == 0


def test_device_migrate(board):
    s, dev = board
    s.mpremote_do(["exec", LEGACY.replace("'old.db'", "'cliold.db'")])
    rc, out, err = cli(*dev, "migrate", "cliold.db", "clinew.db")
    assert rc == 0, err
    # the board's clock starts at 2000-01-01: 800000000 + 10 is in the future there
    assert json.loads(out) == {"written": 4, "skipped": 2}, err
    keys = [r["key"] for r in lines(cli(*dev, "export", "clinew.db")[1])]
    assert keys == ["800000000:0:123", "800000000:10:9", "800000000:2000000000:7", "custom"]
