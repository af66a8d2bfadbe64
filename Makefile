# Thin targets over the one build driver: python3 -m firmware (see firmware/).
PYTHON ?= python3
TARGET ?= unix

.PHONY: firmware test source clean bench

firmware:            ## build firmware for TARGET (unix: build/unix/micropython, qemu: build/qemu/firmware.elf)
	$(PYTHON) -m firmware firmware --target $(TARGET)

test:                ## install test tools, build, run every test (unix, then the device suite on qemu)
	$(PYTHON) -m firmware test

bench: firmware      ## benchmarks on TARGET (SIZES=100,1000,10000 RUNS=n): docs/benchmarks.{md,json}, docs/bench.png
	$(PYTHON) scripts/bench/run.py --target $(TARGET) $(if $(SIZES),--sizes $(SIZES)) $(if $(RUNS),--runs $(RUNS))

source:              ## fetch, verify and patch the pinned MicroPython source into build/src
	$(PYTHON) -m firmware source

.PHONY: esp32 mpy
esp32:               ## ESP32 images with Docker into firmware/dist (BOARD=all or e.g. MTDB_ESP32_GENERIC_S3-SPIRAM_OCT)
	$(PYTHON) -m firmware esp32 --board $(or $(BOARD),all)

mpy:                 ## the package as .mpy files + package.json in build/mpy (mip / mpremote cp)
	$(PYTHON) -m firmware mpy

clean:               ## remove build outputs (downloads stay cached in ~/.cache/microtetherdb)
	rm -rf build
