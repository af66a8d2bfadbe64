# Variant for ESP32 modules with SPIRAM/PSRAM (WROVER): same options as the
# upstream ESP32_GENERIC SPIRAM variant. Build with BOARD_VARIANT=SPIRAM.
set(SDKCONFIG_DEFAULTS
    ${SDKCONFIG_DEFAULTS}
    boards/sdkconfig.spiram
)

list(APPEND MICROPY_DEF_BOARD
    MICROPY_HW_BOARD_NAME="MicroTetherDB generic ESP32 module with SPIRAM"
)
