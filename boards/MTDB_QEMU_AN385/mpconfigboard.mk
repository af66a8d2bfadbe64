# MicroTetherDB MCU board for MicroPython's qemu port (passed as BOARD_DIR).
#
# The machine is QEMU's mps2-an385 (Cortex-M3, 25 MHz, CMSDK UART), exactly as
# the port's own MPS2_AN385 board; on top of it we add what the database needs
# on an ESP32-class MCU: btree (Berkeley DB 1.85), LittleFS v2, a `time`
# module with a SysTick clock, asyncio/select, and our frozen manifest.
# The glue lives in board.c (see the comments there).

include $(TOP)/ports/qemu/boards/MPS2_AN385/mpconfigboard.mk

MICROPY_PY_BTREE = 1
MICROPY_VFS_LFS2 = 1
# FAT too, as on ESP32 (SD cards); the power-cut tests compare both.
MICROPY_VFS_FAT = 1

# ~140 KB of GC heap, like the stock board (and a small ESP32 heap).
MICROPY_HEAP_SIZE ?= 143360

# Our configuration header wraps the port's mpconfigport.h (which hard-codes
# MICROPY_PY_TIME=0 etc.) and overrides a few options.
INC += -I$(BOARD_DIR)
CFLAGS += -DMP_CONFIGFILE='"mtdb_board_config.h"'

SRC_C += \
	$(BOARD_DIR)/board.c \
	shared/timeutils/timeutils.c \

# The port's mp_hal_stdin_rx_chr() busy-polls the UART; board.c provides an
# interrupt-driven one (Ctrl-C works while code runs, the CPU sleeps when idle).
LDFLAGS += -Wl,--wrap=mp_hal_stdin_rx_chr

# The port's mps2.ld plus libgcc's .ARM.exidx (pulled in by 64-bit division).
LDSCRIPT = $(BOARD_DIR)/mps2.ld

FROZEN_MANIFEST ?= $(BOARD_DIR)/manifest.py
