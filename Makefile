# Quarry's entry points. Each target installs what it needs first.
#   make demo   build (Release) and run the main job on the embedded defaults
#   make test   build with ASan + UBSan and run every test (CTest)
#   make bench  build (Release) and run the benchmarks
JOBS ?= $(shell nproc)
TEST_DIR := build/sanitize
RELEASE_DIR := build/release
CMAKE_GEN := -G Ninja

.PHONY: all deps demo test bench build-release build-test format clean

all: build-release

deps:
	@bash scripts/install-deps.sh

build-release: deps
	@cmake -S . -B $(RELEASE_DIR) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release -DQUARRY_TESTS=OFF -DQUARRY_BENCHMARKS=ON >/dev/null
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

build-test: deps
	@cmake -S . -B $(TEST_DIR) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DQUARRY_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_DIR) -j $(JOBS)

demo: build-release
	@$(RELEASE_DIR)/src/cli/quarry demo

test: build-test
	@cd $(TEST_DIR) && ctest --output-on-failure -j $(JOBS)

bench: build-release
	@bash scripts/bench.sh $(RELEASE_DIR)

format:
	@find src tests -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	@rm -rf build
