// MicroTetherDB firmware for generic ESP32-S3 modules.
#ifndef MICROPY_HW_BOARD_NAME
// Can be set by mpconfigvariant_*.cmake.
#define MICROPY_HW_BOARD_NAME               "MicroTetherDB generic ESP32S3 module"
#endif
#define MICROPY_HW_MCU_NAME                 "ESP32S3"

// Enable UART REPL for modules that have an external USB-UART and don't use native USB.
#define MICROPY_HW_ENABLE_UART_REPL         (1)

#define MICROPY_HW_I2C0_SCL                 (9)
#define MICROPY_HW_I2C0_SDA                 (8)
