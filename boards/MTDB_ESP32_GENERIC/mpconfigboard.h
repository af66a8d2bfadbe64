// MicroTetherDB firmware for generic ESP32 modules.
// Both names can be overridden by a variant's mpconfigvariant_*.cmake.
#ifndef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "MicroTetherDB generic ESP32 module"
#endif

#ifndef MICROPY_HW_MCU_NAME
#define MICROPY_HW_MCU_NAME "ESP32"
#endif
