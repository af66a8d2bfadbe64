#!/bin/bash
# MicroTetherDB ESP32 build steps, run INSIDE the Docker image (see Dockerfile).
#
#   docker-build.sh prefetch          (docker build, network on) resolve and
#                                     download ESP-IDF components per chip
#   docker-build.sh build SPEC...     (docker run --network none) build boards
#
# SPEC is BOARD or BOARD-VARIANT, e.g. MTDB_ESP32_GENERIC_S3-SPIRAM_OCT; the
# image is written as OUT/<MTDB_IMAGE_PREFIX><SPEC>.bin.
# Environment: MICROPY_DIR (source, set by the image), PROJECT (repo mount,
# default /project), OUT (output dir, default /out), MTDB_IMAGE_PREFIX
# (firmware/version.py passes "microtetherdb-<version>-"; default: the same,
# read from the mounted package), LOCKS (committed component locks, one
# <chip>/dependencies.lock each), HOST_UID/HOST_GID (owner of the outputs on
# the host).
set -euo pipefail

MICROPY_DIR=${MICROPY_DIR:-/opt/micropython}
PORT_DIR=$MICROPY_DIR/ports/esp32
PROJECT=${PROJECT:-/project}
OUT=${OUT:-/out}
COMPONENTS=${COMPONENTS:-/opt/mtdb/idf-components}
LOCKS=${LOCKS:-/opt/mtdb/idf-locks}
TOOLS=${TOOLS:-/opt/mtdb}

# Chips we build for, with the upstream board used to resolve its components.
CHIP_BOARDS="esp32:ESP32_GENERIC esp32s3:ESP32_GENERIC_S3 esp32c3:ESP32_GENERIC_C3"

log() { echo "[mtdb-esp32] $*"; }

idf_env() {
    # The image's entrypoint already does this; RUN steps do not use it.
    if ! command -v idf.py >/dev/null 2>&1; then
        # export.sh is written for interactive shells: no nounset while sourcing.
        set +u
        # shellcheck disable=SC1091
        . "$IDF_PATH/export.sh" >/dev/null
        set -u
    fi
    command -v idf.py >/dev/null || { echo "ESP-IDF environment not found (IDF_PATH=${IDF_PATH:-})" >&2; exit 1; }
}

# Read IDF_TARGET from a board's mpconfigboard.cmake (esp32 when not set,
# as in the port's own default).
board_chip() {
    local f=$1/mpconfigboard.cmake
    local t
    t=$(sed -n 's/^[[:space:]]*set(IDF_TARGET[[:space:]]\+\([a-z0-9]\+\))/\1/p' "$f" | head -n1)
    echo "${t:-esp32}"
}

prefetch() {
    # A chip with a committed lock (boards/idf-components/<chip>/dependencies.lock)
    # gets exactly the locked component versions, and the build stops if the
    # component manager would change the lock. A chip without one is resolved
    # from the manifest's version ranges; its lock is handed out with the
    # images (OUT/idf-locks/) to be committed.
    idf_env
    cd "$PORT_DIR"
    for cb in $CHIP_BOARDS; do
        local chip=${cb%%:*} board=${cb#*:}
        rm -rf dependencies.lock managed_components "/tmp/prefetch-$chip"
        if [ -f "$LOCKS/$chip/dependencies.lock" ]; then
            log "ESP-IDF components for $chip: from the committed lock"
            cp "$LOCKS/$chip/dependencies.lock" dependencies.lock
        else
            log "ESP-IDF components for $chip: no committed lock, resolving (via $board)"
        fi
        idf.py -D MICROPY_BOARD="$board" -B "/tmp/prefetch-$chip" reconfigure
        if [ -f "$LOCKS/$chip/dependencies.lock" ] && ! cmp -s "$LOCKS/$chip/dependencies.lock" dependencies.lock; then
            echo "the component manager changed the committed lock of $chip:" >&2
            diff "$LOCKS/$chip/dependencies.lock" dependencies.lock >&2 || true
            echo "(manifest or ESP-IDF changed?) update boards/idf-components/$chip/dependencies.lock on purpose" >&2
            exit 1
        fi
        mkdir -p "$COMPONENTS/$chip"
        mv dependencies.lock "$COMPONENTS/$chip/dependencies.lock"
        if [ -d managed_components ]; then
            mv managed_components "$COMPONENTS/$chip/managed_components"
        else
            mkdir -p "$COMPONENTS/$chip/managed_components"
        fi
        rm -rf "/tmp/prefetch-$chip"
    done
}

image_prefix() {
    if [ -n "${MTDB_IMAGE_PREFIX:-}" ]; then
        echo "$MTDB_IMAGE_PREFIX"
        return
    fi
    local v
    v=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$PROJECT/modules/microtetherdb/__init__.py")
    [ -n "$v" ] || { echo "no __version__ in $PROJECT/modules/microtetherdb/__init__.py" >&2; exit 1; }
    echo "microtetherdb-$v-"
}

use_components() {
    # Put the chip's locked component set in place: with a lock file that
    # matches target and manifests, and the components already present, the
    # component manager has nothing to download (the build runs offline).
    local chip=$1
    if [ ! -f "$COMPONENTS/$chip/dependencies.lock" ]; then
        echo "no prefetched ESP-IDF components for $chip in $COMPONENTS" >&2
        exit 1
    fi
    rm -rf "$PORT_DIR/dependencies.lock" "$PORT_DIR/managed_components"
    cp "$COMPONENTS/$chip/dependencies.lock" "$PORT_DIR/dependencies.lock"
    cp -a "$COMPONENTS/$chip/managed_components" "$PORT_DIR/managed_components"
}

build_one() {
    local spec=$1 board variant="" name
    board=${spec%%-*}
    if [ "$board" != "$spec" ]; then variant=${spec#*-}; fi
    local bdir=$PROJECT/boards/$board
    if [ ! -f "$bdir/mpconfigboard.cmake" ]; then
        echo "unknown board $board (no $bdir/mpconfigboard.cmake)" >&2
        exit 1
    fi
    if [ -n "$variant" ] && [ ! -f "$bdir/mpconfigvariant_$variant.cmake" ]; then
        echo "unknown variant $variant of $board" >&2
        exit 1
    fi
    name=$spec
    local chip
    chip=$(board_chip "$bdir")
    log "building $name (chip $chip, board dir $bdir)"
    use_components "$chip"
    local build=/tmp/build-$name
    rm -rf "$build"
    make -C "$PORT_DIR" BOARD_DIR="$bdir" ${variant:+BOARD_VARIANT=$variant} BUILD="$build"
    # Fail here, saying by how much, if the app outgrew its partition.
    mkdir -p "$OUT"
    python3 "$TOOLS/check_app_size.py" "$build" "$PORT_DIR" "$name" | tee -a "$OUT/.app_sizes"
    local image
    image=$OUT/$(image_prefix)$name.bin
    cp "$build/firmware.bin" "$image"
    log "wrote $image ($(stat -c %s "$image") bytes)"
}

write_sums() {
    cd "$OUT"
    # Checksums of every image in the output directory (boards built earlier
    # included), in a stable order.
    find . -maxdepth 1 -name '*.bin' -printf '%f\n' | LC_ALL=C sort | xargs -r sha256sum > SHA256SUMS
    # The component locks this image was built with, to commit when not yet pinned.
    local chip
    for chip in "$COMPONENTS"/*; do
        mkdir -p "idf-locks/$(basename "$chip")"
        cp "$chip/dependencies.lock" "idf-locks/$(basename "$chip")/dependencies.lock"
    done
    {
        echo "micropython_tag=$(git -C "$MICROPY_DIR" describe --tags --always)"
        echo "micropython_commit=$(git -C "$MICROPY_DIR" rev-parse HEAD)"
        echo "source_date_epoch=$SOURCE_DATE_EPOCH"
        echo "esp_idf=$(cat "$IDF_PATH/version.txt" 2>/dev/null || git -C "$IDF_PATH" describe --tags 2>/dev/null || echo unknown)"
        git -C "$MICROPY_DIR" submodule status | sed 's/^/submodule /'
        for chip in "$COMPONENTS"/*; do
            local c pinned=resolved
            c=$(basename "$chip")
            [ -f "$LOCKS/$c/dependencies.lock" ] && pinned=committed
            echo "idf_components_lock_sha256 $c $(sha256sum < "$chip/dependencies.lock" | cut -d' ' -f1) $pinned"
        done
        [ -f .app_sizes ] && cat .app_sizes
    } > BUILDINFO.container
    rm -f .app_sizes
    if [ -n "${HOST_UID:-}" ]; then
        chown -R "${HOST_UID}:${HOST_GID:-$HOST_UID}" "$OUT"
    fi
    log "SHA256SUMS:"
    cat SHA256SUMS
}

cmd=${1:-}
shift || true
case "$cmd" in
    prefetch)
        prefetch
        ;;
    build)
        if [ $# -eq 0 ]; then
            echo "usage: docker-build.sh build BOARD[-VARIANT]..." >&2
            exit 2
        fi
        idf_env
        # MicroPython's build date (py/makeversionhdr.py) comes from here:
        # the commit time of the pinned source, so rebuilds are identical.
        export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$MICROPY_DIR" log -1 --format=%ct)}
        rm -f "$OUT/.app_sizes"
        for spec in "$@"; do
            build_one "$spec"
        done
        write_sums
        ;;
    *)
        echo "usage: docker-build.sh prefetch | build BOARD[-VARIANT]..." >&2
        exit 2
        ;;
esac
