"""MicroTetherDB's build driver: fetch pinned sources, patch, build firmware.

Run as ``python3 -m firmware <command>``; the Makefile's targets are thin
wrappers over it. One module per concern: ``pins`` (what we build from),
``source`` (fetching, verifying, unpacking, patching), ``system`` (installing
host packages), ``target_*`` (building one kind of firmware).
"""
