# Everything the stock MicroPython ESP32 firmware freezes...
include("$(PORT_DIR)/boards/manifest.py")
# ...plus MicroTetherDB, frozen exactly as on every other target.
include("$(BOARD_DIR)/../../modules/manifest.py")
