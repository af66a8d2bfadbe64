# MicroTetherDB firmware for generic ESP32-S3 modules with 8 MiB flash
# (WROOM-1/-2, MINI). Same ESP-IDF configuration as MicroPython 1.25's
# ports/esp32/boards/ESP32_GENERIC_S3, plus the DB frozen in.
#
# SPIRAM: like upstream 1.25 this base image auto-detects a *quad* SPIRAM chip
# at boot (sdkconfig.spiram_sx with CONFIG_SPIRAM_IGNORE_NOTFOUND) and puts the
# MicroPython heap there. Modules with *octal* PSRAM (N8R8, N16R8, ...) need
# the SPIRAM_OCT variant: make BOARD_DIR=... BOARD_VARIANT=SPIRAM_OCT
set(IDF_TARGET esp32s3)

# Paths without a leading ${...} are relative to ports/esp32.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.usb
    boards/sdkconfig.ble
    boards/sdkconfig.spiram_sx
    boards/ESP32_GENERIC_S3/sdkconfig.board
    ${MICROPY_BOARD_DIR}/../sdkconfig.mtdb_esp32
)

# btree is the storage engine of MicroTetherDB (forced on by the 1.25 port too).
set(MICROPY_PY_BTREE ON)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
