# Default frozen manifest of the board: the project's top-level manifest
# (asyncio + the microtetherdb package), two levels up from this directory.
include("$(BOARD_DIR)/../../manifest.py")
