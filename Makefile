# Thin targets over the one build driver: python3 -m firmware (see firmware/ and docs/building.md).
PYTHON ?= python3
TARGET ?= unix

.PHONY: help firmware test venv bench source esp32 mpy clean

help:                ## list the targets (this text)
	@echo "make TARGET [VAR=value ...]   (docs/building.md)"
	@sed -n 's/^\([a-z0-9]*\):.*## \(.*\)/  \1\t\2/p' $(MAKEFILE_LIST) | expand -t 14
	@echo "variables: TARGET=unix|qemu|esp32 (firmware; bench: unix|qemu; test: only that pass), BOARD (esp32),"
	@echo "           SIZES, RUNS, DOCS=1 (bench), PYTHON (default python3)"

firmware:            ## build firmware for TARGET (unix: build/unix/micropython, qemu: build/qemu/firmware.elf, esp32: firmware/dist)
	$(PYTHON) -m firmware firmware --target $(TARGET) $(if $(BOARD),--board $(BOARD))

# `make test` runs every pass (unix, then qemu); `make test TARGET=qemu` only that one.
test:                ## install test tools, build, run the tests (all passes; TARGET=unix|qemu for one)
	$(PYTHON) -m firmware test $(if $(filter command line environment,$(origin TARGET)),--target $(TARGET))

venv:                ## create build/venv with the test tools (pytest, mpremote, ...) without running tests
	$(PYTHON) -m firmware venv

# flash wear per durable put (LittleFS and FAT, 4 KB blocks), counted on the host firmware
WEAR = $(PYTHON) scripts/bench/wear.py --only put --fs lfs4k,fat4k $(if $(SIZES),--sizes $(SIZES))

bench: firmware      ## benchmarks on TARGET (SIZES=100,1000 RUNS=n) into build/bench (+ flash wear into build/wear on unix); DOCS=1 also updates docs/
	$(PYTHON) scripts/bench/run.py --target $(TARGET) $(if $(SIZES),--sizes $(SIZES)) $(if $(RUNS),--runs $(RUNS)) $(if $(DOCS),--docs)
	$(if $(filter unix,$(TARGET)),$(WEAR))

source:              ## fetch, verify and patch the pinned MicroPython source into build/src
	$(PYTHON) -m firmware source

esp32:               ## = make firmware TARGET=esp32: images with Docker (BOARD=all or e.g. MTDB_ESP32_GENERIC_S3-SPIRAM_OCT)
	$(PYTHON) -m firmware firmware --target esp32 --board $(or $(BOARD),all)

mpy:                 ## the package as .mpy files + package.json in build/mpy (mip / mpremote cp)
	$(PYTHON) -m firmware mpy

clean:               ## remove build outputs (downloads stay cached in ~/.cache/microtetherdb)
	rm -rf build
