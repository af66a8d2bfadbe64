"""The ESP32 Dockerfile and its helpers, checked without a Docker engine.

Parsed with the `dockerfile` package (BuildKit's own parser, from PyPI); every
RUN goes through `bash -n`; the pins in the Dockerfile must equal
firmware/pins.py; the MicroPython content digest pinned there must be the
digest of the sha256-verified Debian tree this machine builds from.
"""

import json
import os
import re
import subprocess

import pytest

from esp32_support import ROOT, esp32_boards, image_specs, source_tree, upstream_copy

dockerfile = pytest.importorskip("dockerfile", reason="pip install -r tests/requirements.txt")

from firmware import pins, target_esp32  # noqa: E402
from firmware.version import image_name, image_prefix  # noqa: E402

DOCKERFILE = os.path.join(ROOT, "Dockerfile")
BUILD_SH = os.path.join(ROOT, "scripts", "esp32", "docker-build.sh")
DIGEST_PY = os.path.join(ROOT, "scripts", "esp32", "tree_digest.py")


def parsed():
    return dockerfile.parse_file(DOCKERFILE)


def arg_defaults(cmds):
    out = {}
    for c in cmds:
        if c.cmd.upper() == "ARG":
            name, _, default = c.value[0].partition("=")
            out[name] = default
    return out


def expand(text, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def test_dockerfile_parses_with_expected_instructions():
    cmds = parsed()
    kinds = [c.cmd.upper() for c in cmds]
    assert kinds.count("FROM") == 1
    for k in ("ARG", "RUN", "COPY", "CMD", "SHELL"):
        assert k in kinds


def test_base_image_is_pinned_idf_5_2_2():
    cmds = parsed()
    args = arg_defaults(cmds[:[c.cmd.upper() for c in cmds].index("FROM")])
    frm = [c for c in cmds if c.cmd.upper() == "FROM"][0]
    image = expand(frm.value[0], args)
    assert image == pins.ESP32["idf_image"]
    repo, _, ref = image.partition(":")
    assert repo == "espressif/idf"
    # A fixed release tag (or a digest), never latest/a branch.
    assert re.fullmatch(r"v5\.2\.2(@sha256:[0-9a-f]{64})?", ref), ref
    # MicroPython 1.25 supports this IDF (its README) and CI builds with it (tools/ci.sh).
    src = source_tree()
    assert "v5.2.2" in open(os.path.join(src, "ports", "esp32", "README.md")).read()
    assert re.search(r"^IDF_VER=v5\.2\.2$", open(os.path.join(src, "tools", "ci.sh")).read(), re.M)


def test_no_latest_tags_anywhere():
    text = open(DOCKERFILE).read()
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    assert ":latest" not in code and "latest" not in code.lower()
    # A `# syntax=` line would pull a Dockerfile frontend image by a moving tag.
    first = text.splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first) or "@sha256:" in first


def test_pins_agree_with_firmware_pins():
    args = arg_defaults(parsed())
    e = pins.ESP32
    assert args["IDF_IMAGE"] == e["idf_image"]
    assert args["MICROPY_REPO"] == e["micropython_repo"]
    assert args["MICROPY_TAG"] == e["micropython_tag"] == "v1.25.0"
    assert args["MICROPY_COMMIT"] == e["micropython_commit"]
    assert args["MICROPY_TREE_SHA256"] == e["micropython_tree_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", e["micropython_tree_sha256"])
    # v1.25.0 is this commit (checked against the upstream repository).
    assert e["micropython_commit"] == "f498a16c7db6d4b2de200b3e0856528dfe0613c3"
    # The driver passes the same values.
    cmd = target_esp32.docker_build_command()
    for k, v in (("IDF_IMAGE", e["idf_image"]), ("MICROPY_TAG", e["micropython_tag"]),
                 ("MICROPY_TREE_SHA256", e["micropython_tree_sha256"]),
                 ("MICROPY_COMMIT", e["micropython_commit"])):
        assert "%s=%s" % (k, v) in cmd


def test_pinned_tree_digest_is_the_verified_debian_source(tmp_path):
    """The content the Docker build demands of the upstream tag = our verified
    tree (as it is before our MicroPython patches, which the build applies
    after that check)."""
    upstream_copy(str(tmp_path))
    r = subprocess.run(["python3", DIGEST_PY, str(tmp_path), "--expect",
                        pins.ESP32["micropython_tree_sha256"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_tree_digest_notices_a_changed_file(tmp_path):
    td = upstream_copy(str(tmp_path))
    assert td.digest(str(tmp_path)) == pins.ESP32["micropython_tree_sha256"]
    with open(tmp_path / "ports/esp32/main.c", "a") as f:
        f.write("\n")
    assert td.digest(str(tmp_path)) != pins.ESP32["micropython_tree_sha256"]


def test_source_is_fetched_by_tag_and_verified_before_use():
    runs = [c.value[0] for c in parsed() if c.cmd.upper() == "RUN"]
    clone = [r for r in runs if "git clone" in r]
    assert len(clone) == 1
    r = clone[0]
    assert '--branch "${MICROPY_TAG}"' in r and "--depth 1" in r
    assert "tree_digest.py" in r and '--expect "${MICROPY_TREE_SHA256}"' in r
    assert "rev-parse HEAD" in r and "${MICROPY_COMMIT}" in r
    i = runs.index(r)
    # Nothing builds before the check; submodules, mpy-cross, components after it.
    assert all("make" not in x for x in runs[:i])
    rest = " ".join(runs[i + 1:])
    for step in ("submodules", "mpy-cross", "docker-build.sh prefetch"):
        assert step in rest


def test_every_run_is_valid_bash():
    cmds = parsed()
    shell = [c for c in cmds if c.cmd.upper() == "SHELL"]
    assert shell and shell[0].value[0] == "/bin/bash"
    runs = [c for c in cmds if c.cmd.upper() == "RUN"]
    assert len(runs) >= 5
    for run in runs:
        r = subprocess.run(["bash", "-n"], input=run.value[0], capture_output=True, text=True)
        assert r.returncode == 0, "line %d: %s" % (run.start_line, r.stderr)


def test_copy_sources_exist_and_are_in_the_build_context():
    ignore = open(os.path.join(ROOT, ".dockerignore")).read().split()
    for c in parsed():
        if c.cmd.upper() == "COPY":
            for src in c.value[:-1]:
                assert os.path.exists(os.path.join(ROOT, src)), src
                # .dockerignore excludes everything but what is re-included.
                assert "!" + src.rstrip("/") in ignore, src


def test_submodule_step_uses_upstream_boards_that_exist():
    runs = " ".join(c.value[0] for c in parsed() if c.cmd.upper() == "RUN")
    m = re.search(r"for b in ([A-Z0-9_ ]+); do", runs)
    assert m
    for b in m.group(1).split():
        assert os.path.isfile(os.path.join(source_tree(), "ports", "esp32", "boards", b,
                                           "mpconfigboard.cmake")), b
    # The esp32 Makefile target we call, with the variables we pass.
    mk = open(os.path.join(source_tree(), "ports", "esp32", "Makefile")).read()
    assert re.search(r"^submodules:", mk, re.M)
    for var in ("BOARD_DIR", "BOARD_VARIANT", "BUILD ?="):
        assert var in mk


def test_cmd_builds_our_boards():
    cmd = [c for c in parsed() if c.cmd.upper() == "CMD"][0].value
    assert cmd[0] == "/opt/mtdb/docker-build.sh" and cmd[1] == "build"
    assert sorted(cmd[2:]) == sorted(esp32_boards())


def test_build_script_is_valid_bash_and_reads_the_chip_like_cmake():
    assert subprocess.run(["bash", "-n", BUILD_SH]).returncode == 0
    # COPY keeps the mode: the image runs it directly (RUN and CMD).
    assert os.access(BUILD_SH, os.X_OK)
    # Source only the board_chip() function and ask it about every board.
    for board in esp32_boards():
        bdir = os.path.join(ROOT, "boards", board)
        r = subprocess.run(["bash", "-c", '. <(sed -n "/^board_chip()/,/^}/p" "$0"); board_chip "$1"',
                           BUILD_SH, bdir], capture_output=True, text=True, check=True)
        with open(os.path.join(bdir, "board.json")) as f:
            assert r.stdout.strip() == json.load(f)["mcu"]
    # Its chip -> upstream board table covers every chip we build for.
    text = open(BUILD_SH).read()
    table = dict(p.split(":") for p in re.search(r'CHIP_BOARDS="([^"]+)"', text).group(1).split())
    for board in esp32_boards():
        with open(os.path.join(ROOT, "boards", board, "board.json")) as f:
            chip = json.load(f)["mcu"]
        assert chip in table
        assert os.path.isdir(os.path.join(source_tree(), "ports", "esp32", "boards", table[chip]))


def test_build_script_rejects_unknown_boards(tmp_path):
    env = dict(os.environ, PROJECT=ROOT, OUT=str(tmp_path), MICROPY_DIR=str(tmp_path),
               COMPONENTS=str(tmp_path), IDF_PATH=str(tmp_path))
    # idf.py is looked up first: give it a stand-in so the board check is reached.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "idf.py").write_text("#!/bin/sh\nexit 0\n")
    os.chmod(tmp_path / "bin" / "idf.py", 0o755)
    env["PATH"] = str(tmp_path / "bin") + ":" + env["PATH"]
    env["SOURCE_DATE_EPOCH"] = "0"
    r = subprocess.run(["bash", BUILD_SH, "build", "NO_SUCH_BOARD"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "unknown board NO_SUCH_BOARD" in r.stderr
    r = subprocess.run(["bash", BUILD_SH, "build", "MTDB_ESP32_GENERIC-NOPE"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "unknown variant NOPE" in r.stderr
    r = subprocess.run(["bash", BUILD_SH, "build", "MTDB_ESP32_GENERIC"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no prefetched ESP-IDF components for esp32" in r.stderr


def test_driver_runs_offline_read_only_with_the_pinned_image():
    specs = image_specs()
    cmd = target_esp32.docker_run_command(specs)
    assert cmd[:3] == ["docker", "run", "--rm"]
    assert cmd[cmd.index("--network") + 1] == "none"
    assert "%s:/project:ro" % ROOT in cmd
    assert "%s:/out" % os.path.join(ROOT, "firmware", "dist") in cmd
    assert pins.ESP32["image"] in cmd
    assert cmd[-len(specs):] == specs
    assert "--network" not in target_esp32.docker_run_command(specs, allow_network=True)
    assert target_esp32.resolve_specs("all") == specs
    with pytest.raises(SystemExit):
        target_esp32.resolve_specs("ESP32_GENERIC")


def _stand_in_build(tmp_path, app_size=1000):
    """A fake MicroPython checkout, prefetched components and stand-ins for
    `make` (writes firmware.bin, an app of app_size bytes and the sdkconfig
    naming the partition table) and `idf.py`; returns (env, make log, out)."""
    mp = tmp_path / "micropython"
    (mp / "ports" / "esp32").mkdir(parents=True)
    (mp / "README.md").write_text("stand-in\n")
    # the port's own 4 MiB table: app partition 0x1F0000
    (mp / "ports" / "esp32" / "partitions-4MiB.csv").write_text(
        open(os.path.join(source_tree(), "ports", "esp32", "partitions-4MiB.csv")).read())
    git = ["git", "-C", str(mp), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(mp)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x", "--date", "@1700000000"], check=True,
                   env=dict(os.environ, GIT_COMMITTER_DATE="@1700000000"))
    subprocess.run(git + ["tag", "v1.25.0"], check=True)
    comp = tmp_path / "components"
    for chip in ("esp32", "esp32s3", "esp32c3"):
        (comp / chip / "managed_components" / ("espressif__mdns_" + chip)).mkdir(parents=True)
        (comp / chip / "dependencies.lock").write_text("target: %s\n" % chip)
    idf = tmp_path / "idf"
    idf.mkdir()
    (idf / "version.txt").write_text("v5.2.2\n")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "make.log"
    (bin_ / "idf.py").write_text("#!/bin/sh\nexit 0\n")
    # make stand-in: log its arguments and the lock/component in place, write firmware.bin.
    (bin_ / "make").write_text(
        "#!/bin/bash\nset -e\n"
        'for a in "$@"; do case "$a" in BUILD=*) B=${a#BUILD=};; esac; done\n'
        'echo "ARGS $* SDE=$SOURCE_DATE_EPOCH LOCK=$(cat "$MICROPY_DIR/ports/esp32/dependencies.lock")'
        ' COMP=$(ls "$MICROPY_DIR/ports/esp32/managed_components")" >> "%s"\n'
        'mkdir -p "$B"; printf "image of %%s" "$*" > "$B/firmware.bin"\n'
        'head -c %d /dev/zero > "$B/micropython.bin"\n'
        'echo \'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions-4MiB.csv"\' > "$B/sdkconfig"\n'
        % (log, app_size))
    for f in ("idf.py", "make"):
        os.chmod(bin_ / f, 0o755)
    out = tmp_path / "out"
    locks = tmp_path / "locks"
    (locks / "esp32s3").mkdir(parents=True)
    (locks / "esp32s3" / "dependencies.lock").write_text("target: esp32s3\n")
    env = dict(os.environ, PATH="%s:%s" % (bin_, os.environ["PATH"]), MICROPY_DIR=str(mp),
               PROJECT=ROOT, OUT=str(out), COMPONENTS=str(comp), IDF_PATH=str(idf),
               TOOLS=os.path.join(ROOT, "scripts", "esp32"), LOCKS=str(locks),
               MTDB_IMAGE_PREFIX=image_prefix())
    env.pop("SOURCE_DATE_EPOCH", None)
    return env, log, out


def test_build_script_flow_with_stand_in_tools(tmp_path):
    """docker-build.sh build, with `make` and `idf.py` replaced by stand-ins.

    Checks the script's own logic: the chip's prefetched component lock goes
    into the port before `make`, make gets BOARD_DIR/BOARD_VARIANT/BUILD, the
    image lands as OUT/microtetherdb-<version>-<spec>.bin, SHA256SUMS lists
    every image, BUILDINFO records the MicroPython commit, the locks (and
    which were committed) and the app's headroom, SOURCE_DATE_EPOCH is the
    commit time, and the locks used are handed out for committing.
    """
    env, log, out = _stand_in_build(tmp_path)
    specs = ["MTDB_ESP32_GENERIC_S3-SPIRAM_OCT", "MTDB_ESP32_GENERIC_C3"]
    r = subprocess.run(["bash", BUILD_SH, "build"] + specs, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    assert "BOARD_DIR=%s/boards/MTDB_ESP32_GENERIC_S3 BOARD_VARIANT=SPIRAM_OCT" % ROOT in calls[0]
    assert "LOCK=target: esp32s3" in calls[0] and "COMP=espressif__mdns_esp32s3" in calls[0]
    assert "BOARD_DIR=%s/boards/MTDB_ESP32_GENERIC_C3 BUILD=" % ROOT in calls[1]
    assert "LOCK=target: esp32c3" in calls[1] and "BOARD_VARIANT" not in calls[1]
    assert all("SDE=1700000000" in c for c in calls)
    sums = (out / "SHA256SUMS").read_text().splitlines()
    import hashlib
    assert sorted(l.split()[1] for l in sums) == sorted(image_name(s) for s in specs)
    for line in sums:
        h, name = line.split()
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == h
    info = (out / "BUILDINFO.container").read_text()
    head = subprocess.run(["git", "-C", env["MICROPY_DIR"], "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert "micropython_commit=%s" % head in info and "source_date_epoch=1700000000" in info
    assert "esp_idf=v5.2.2" in info
    assert re.search(r"^idf_components_lock_sha256 esp32s3 [0-9a-f]{64} committed$", info, re.M)
    assert re.search(r"^idf_components_lock_sha256 esp32c3 [0-9a-f]{64} resolved$", info, re.M)
    room = 0x1F0000 - 1000
    assert "app_size MTDB_ESP32_GENERIC_C3 1000 %d %d" % (0x1F0000, room) in info
    assert (out / "idf-locks" / "esp32c3" / "dependencies.lock").read_text() == "target: esp32c3\n"
    assert not (out / ".app_sizes").exists()


def test_build_stops_when_the_app_outgrows_its_partition(tmp_path):
    env, log, out = _stand_in_build(tmp_path, app_size=0x1F0000 + 5)
    r = subprocess.run(["bash", BUILD_SH, "build", "MTDB_ESP32_GENERIC"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "MTDB_ESP32_GENERIC does not fit: the app is %d bytes, its partition " \
           "(partitions-4MiB.csv) %d bytes: 5 bytes too many" % (0x1F0000 + 5, 0x1F0000) in r.stderr
    assert not list(out.glob("*.bin"))


@pytest.mark.parametrize("changes", [False, True])
def test_prefetch_uses_the_committed_lock_and_refuses_to_change_it(tmp_path, changes):
    env, log, out = _stand_in_build(tmp_path)
    port = os.path.join(env["MICROPY_DIR"], "ports", "esp32")
    # idf.py stand-in: keeps a lock it finds (as the component manager does when
    # the lock satisfies the manifest), else resolves; or always re-resolves.
    idf = os.path.join(tmp_path, "bin", "idf.py")
    with open(idf, "w") as f:
        f.write("#!/bin/bash\nchip=$(echo \"$*\" | sed -n 's/.*prefetch-\\([a-z0-9]*\\).*/\\1/p')\n"
                + ("" if changes else "[ -f dependencies.lock ] && exit 0\n")
                + "echo \"resolved: $chip\" > dependencies.lock\n")
    os.chmod(idf, 0o755)
    comp = tmp_path / "fresh-components"
    env["COMPONENTS"] = str(comp)
    r = subprocess.run(["bash", BUILD_SH, "prefetch"], env=env, capture_output=True, text=True,
                       cwd=port)
    if changes:
        assert r.returncode != 0
        assert "the component manager changed the committed lock of esp32s3" in r.stderr
    else:
        assert r.returncode == 0, r.stdout + r.stderr
        assert (comp / "esp32s3" / "dependencies.lock").read_text() == "target: esp32s3\n"
        assert (comp / "esp32" / "dependencies.lock").read_text() == "resolved: esp32\n"
        assert "esp32s3: from the committed lock" in r.stdout
        assert "esp32: no committed lock, resolving" in r.stdout
