# Weft: `make run` and `make test` do all the set-up (packages → configure → build → run/test).
JOBS ?= $(shell nproc)
WEFT_TEST_DATA ?= $(abspath ../shared)
MODEL ?= $(WEFT_TEST_DATA)/models/stories260K/stories260K.gguf
PROMPT ?= Once upon a time
export WEFT_TEST_DATA

.PHONY: setup configure build run generate test test-asan fuzz-smoke format clean

setup:
	@scripts/setup

build/release/build.ninja: CMakeLists.txt CMakePresets.json | setup
	cmake --preset release -DWEFT_TEST_DATA=$(WEFT_TEST_DATA)

configure: setup build/release/build.ninja

build: configure
	cmake --build --preset release -j $(JOBS)

# The fabric on this machine: control (SQLite in ./weft-data) + gateway + local provider, a demo
# deployment of MODEL, an admin key and a demo key printed once, and a ready-to-paste curl line.
# Where MODEL does not exist, `weft up` downloads stories260K from Hugging Face (offline: a
# random-weight model, with a warning).
run: configure
	cmake --build --preset release -j $(JOBS) --target weft
	build/release/cli/weft up $(if $(wildcard $(MODEL)),--model "$(MODEL)")

# One story from MODEL, no servers.
generate: configure
	cmake --build --preset release -j $(JOBS) --target weft
	build/release/cli/weft generate "$(MODEL)" -p "$(PROMPT)" -n 200

test: build
	ctest --preset release -j $(JOBS)

test-asan: setup
	cmake --preset asan -DWEFT_TEST_DATA=$(WEFT_TEST_DATA)
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

fuzz-smoke: setup
	scripts/fuzz-smoke

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

clean:
	rm -rf build
