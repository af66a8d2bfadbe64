# MicroTetherDB firmware for generic ESP32 modules with 4 MiB flash
# (WROOM, WROVER, PICO, MINI; dual-core). Same ESP-IDF configuration as
# MicroPython 1.25's ports/esp32/boards/ESP32_GENERIC, plus the DB frozen in.
#
# Build (from ports/esp32 of MicroPython v1.25.0):
#   make BOARD_DIR=/path/to/this/dir [BOARD_VARIANT=SPIRAM]

# IDF_TARGET defaults to esp32 in the port; set explicitly for clarity.
set(IDF_TARGET esp32)

# Paths without a leading ${...} are relative to ports/esp32 (the port reads
# them with file(READ) from there).
set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/../sdkconfig.mtdb_esp32
)

# btree is the storage engine of MicroTetherDB. The 1.25 esp32 port already
# forces it on (esp32_common.cmake), this keeps it on if that ever changes.
set(MICROPY_PY_BTREE ON)

# Port default modules + the DB package (boards/<this>/manifest.py).
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)
