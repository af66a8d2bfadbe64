# MicroTetherDB firmware for generic ESP32-C3 modules with 4 MiB flash
# (revision 3 silicon or newer). Same ESP-IDF configuration as MicroPython
# 1.25's ports/esp32/boards/ESP32_GENERIC_C3, plus the DB frozen in.
set(IDF_TARGET esp32c3)

# Paths without a leading ${...} are relative to ports/esp32.
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    boards/ESP32_GENERIC_C3/sdkconfig.c3usb
    ${MICROPY_BOARD_DIR}/../sdkconfig.mtdb_esp32
)

# btree is the storage engine of MicroTetherDB (forced on by the 1.25 port too).
set(MICROPY_PY_BTREE ON)

set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
