# Host (unix) and qemu firmware: the database plus asyncio, nothing from micropython-lib.
include("$(MPY_DIR)/extmod/asyncio")
include("modules/manifest.py")
