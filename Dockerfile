# MicroTetherDB ESP32 firmware builder (see docs/esp32.md).
#
#   make esp32 BOARD=all          # or BOARD=MTDB_ESP32_GENERIC_S3-SPIRAM_OCT
#   (= python3 -m firmware esp32 --board all: docker build + docker run)
#
# The image holds the toolchain and every source the build needs; the build
# itself runs in `docker run --network none` with this repository mounted
# read-only at /project and firmware/dist mounted at /out.
#
# Pins (the same values live in firmware/pins.py; tests/test_esp32_docker.py
# checks they agree):
#  - ESP-IDF v5.2.2 image, the IDF version MicroPython 1.25's CI builds with.
#    Pinned by tag: its digest could not be verified where this file was
#    written (no registry access). Pass --build-arg IDF_IMAGE=espressif/idf:v5.2.2@sha256:...
#    to pin a digest; BUILDINFO in firmware/dist records the digest used.
#  - MicroPython tag v1.25.0 = commit MICROPY_COMMIT (checked against the
#    upstream repository), and its content checked against MICROPY_TREE_SHA256,
#    the digest of the same release's sha256-verified Debian source tarball
#    (scripts/esp32/tree_digest.py). The commit fixes the submodule commits.
#  - One MicroPython fix, applied after that check: firmware/patches/
#    micropython-module-oom.patch (an import that ran out of memory left a
#    NULL module in sys.modules; later imports of it crashed).
#  - ESP-IDF components (mdns, esp_tinyusb): from the lock committed per chip
#    in boards/idf-components/<chip>/dependencies.lock when there is one.
ARG IDF_IMAGE=espressif/idf:v5.2.2
FROM ${IDF_IMAGE}

ARG MICROPY_REPO=https://github.com/micropython/micropython.git
ARG MICROPY_TAG=v1.25.0
ARG MICROPY_COMMIT=f498a16c7db6d4b2de200b3e0856528dfe0613c3
ARG MICROPY_TREE_SHA256=e05a0258ea2373bc4446a090e0214b5655400ac6a6b98c0737974f4920dc0517

SHELL ["/bin/bash", "-eo", "pipefail", "-c"]
ENV MICROPY_DIR=/opt/micropython \
    PROJECT=/project \
    OUT=/out \
    LC_ALL=C.UTF-8 \
    TZ=UTC

# mpy-cross is a host program: the IDF image has cross compilers only.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

COPY scripts/esp32/tree_digest.py scripts/esp32/docker-build.sh scripts/esp32/check_app_size.py /opt/mtdb/
COPY firmware/patches/micropython-module-oom.patch /opt/mtdb/
COPY boards/idf-components/ /opt/mtdb/idf-locks/

# MicroPython at the pinned release, verified before anything else uses it.
RUN git clone --depth 1 --branch "${MICROPY_TAG}" "${MICROPY_REPO}" "${MICROPY_DIR}" \
 && { test "$(git -C "${MICROPY_DIR}" rev-parse HEAD)" = "${MICROPY_COMMIT}" \
      || { echo "MicroPython ${MICROPY_TAG} is not commit ${MICROPY_COMMIT}" >&2; exit 1; }; } \
 && python3 /opt/mtdb/tree_digest.py "${MICROPY_DIR}" --expect "${MICROPY_TREE_SHA256}" \
 && git -C "${MICROPY_DIR}" rev-parse HEAD \
 && patch -s -p1 -d "${MICROPY_DIR}" -i /opt/mtdb/micropython-module-oom.patch

# Submodules the ESP32 build needs (lib/berkeley-db-1.xx, lib/micropython-lib,
# lib/tinyusb; the port uses ESP-IDF's lwIP, not lib/lwip), at the commits the
# MicroPython commit pins.
# The set is the same for every chip; running it per upstream generic board
# keeps it right if that ever changes.
RUN . "${IDF_PATH}/export.sh" >/dev/null \
 && for b in ESP32_GENERIC ESP32_GENERIC_S3 ESP32_GENERIC_C3; do \
        make -C "${MICROPY_DIR}/ports/esp32" submodules BOARD="$b" BUILD="/tmp/submodules-$b"; \
    done \
 && rm -rf /tmp/submodules-*

# The cross-compiler used to freeze Python code (MicroPython's own, in-tree).
RUN make -C "${MICROPY_DIR}/mpy-cross" \
 && "${MICROPY_DIR}/mpy-cross/build/mpy-cross" --version

# ESP-IDF components from the component registry (mdns, esp_tinyusb), at the
# committed lock's versions (else resolved from the manifest's ranges) and
# downloaded now, once per chip, so that `docker run --network none` works.
RUN /opt/mtdb/docker-build.sh prefetch

WORKDIR /opt/micropython/ports/esp32
CMD ["/opt/mtdb/docker-build.sh", "build", "MTDB_ESP32_GENERIC", "MTDB_ESP32_GENERIC_S3", "MTDB_ESP32_GENERIC_C3"]
