# Variant for ESP32-S3 modules with octal SPIRAM (e.g. WROOM-1 N8R8/N16R8):
# same options as the upstream ESP32_GENERIC_S3 SPIRAM_OCT variant.
set(SDKCONFIG_DEFAULTS
    ${SDKCONFIG_DEFAULTS}
    boards/sdkconfig.240mhz
    boards/sdkconfig.spiram_oct
)

list(APPEND MICROPY_DEF_BOARD
    MICROPY_HW_BOARD_NAME="MicroTetherDB generic ESP32S3 module with Octal-SPIRAM"
)
