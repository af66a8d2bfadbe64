# Thin targets over the one build driver: python3 -m firmware (see firmware/).
PYTHON ?= python3
TARGET ?= unix

.PHONY: firmware test source clean

firmware:            ## build firmware for TARGET (unix: build/unix/micropython, qemu: build/qemu/firmware.elf)
	$(PYTHON) -m firmware firmware --target $(TARGET)

test:                ## install test tools, build, run every test (unix, then the device suite on qemu)
	$(PYTHON) -m firmware test

source:              ## fetch, verify and patch the pinned MicroPython source into build/src
	$(PYTHON) -m firmware source

clean:               ## remove build outputs (downloads stay cached in ~/.cache/microtetherdb)
	rm -rf build
