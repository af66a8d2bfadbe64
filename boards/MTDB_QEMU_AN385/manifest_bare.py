# The same image without the frozen microtetherdb package: only what the
# top-level manifest adds besides it (asyncio). Used by scripts/memfacts.py to
# measure the flash cost of the frozen package.
include("$(MPY_DIR)/extmod/asyncio")
