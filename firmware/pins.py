"""Pinned inputs of every build: the single source of truth for versions and hashes.

The Debian source packages are resolved through apt (private configuration,
see ``source.py``); only their upstream ("orig") tarballs are used, and each is
refused unless its sha256 matches the pin below.
"""

# Debian suite whose source index apt reads.
DEBIAN_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"

# MicroPython 1.25.0 as packaged by Debian (upstream tree minus some vendored libs).
MICROPYTHON = {
    "package": "micropython",
    "version": "1.25.0+ds-1",
    "orig": "micropython_1.25.0+ds.orig.tar.xz",
    "sha256": "7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea",
    "topdir": "micropython-1.25.0",
}

# glibc's Berkeley DB 1.85 (the official patches applied), as Debian's db1-compat.
DB1_COMPAT = {
    "package": "db1-compat",
    "version": "2.1.3-25",
    "orig": "db1-compat_2.1.3.orig.tar.gz",
    "sha256": "b01f560f00a67f921e678586d903969015b0c9cec6c18b1679b7e9fd6d27394e",
    "topdir": "db",
}

# Our patch that turns db1-compat into MicroPython's lib/berkeley-db-1.xx.
BERKELEY_DB_PATCH = "firmware/patches/berkeley-db-micropython.patch"

# Our patches to the MicroPython tree itself (applied with patch -p1 at its top).
MICROPYTHON_PATCHES = ["firmware/patches/micropython-unix-frozen-path.patch",
                       # an import that runs out of memory left a NULL module in sys.modules
                       "firmware/patches/micropython-module-oom.patch"]

# Host packages the build and the tests need (Debian names).
APT_BUILD = ["build-essential", "pkg-config", "python3", "patch", "xz-utils", "ca-certificates",
             "cmake"]  # cmake: tests/build_checks/test_esp32_cmake.py runs the esp32 port's CMakeLists.txt
# Python packages of the tests: tests/requirements.txt (pinned there).

# ESP32 firmware (firmware/target_esp32.py, Dockerfile, boards/MTDB_ESP32_*).
# The Dockerfile's ARG defaults repeat these; tests/build_checks/test_esp32_docker.py checks
# that they agree. See docs/esp32.md for what could not be verified here.
ESP32 = {
    # ESP-IDF image: v5.2.2 is what MicroPython 1.25's CI builds with (tools/ci.sh).
    # Pinned by tag only: no registry access where this was written, so no
    # digest could be verified; BUILDINFO records the digest a build used.
    "idf_image": "espressif/idf:v5.2.2",
    "micropython_repo": "https://github.com/micropython/micropython.git",
    "micropython_tag": "v1.25.0",
    # Commit of the tag (checked against the upstream repository): the build
    # refuses any other, which also fixes the submodules' commits. The content
    # check below binds the checkout to the sha256-verified Debian tarball.
    "micropython_commit": "f498a16c7db6d4b2de200b3e0856528dfe0613c3",
    # scripts/esp32/tree_digest.py of MICROPYTHON's tree (py, extmod, shared,
    # drivers, mpy-cross, ports/esp32, in-repo libs, freezing tools).
    "micropython_tree_sha256": "e05a0258ea2373bc4446a090e0214b5655400ac6a6b98c0737974f4920dc0517",
    # Local name of the builder image.
    "image": "microtetherdb-esp32:idf5.2.2-mp1.25.0",
}
