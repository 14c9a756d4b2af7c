# Entry points. `make run` and `make test` work on a fresh Debian 12 machine: each first
# installs what is missing (scripts/deps.sh), then builds.
JOBS ?= 2
RELEASE := build/release
ASAN := build/asan
FUZZ := build/fuzz
CMAKE_FLAGS ?=

.PHONY: all deps build build-deps run schemas test test-release test-asan fuzz-smoke bench bench-smoke format clean

all: build

deps:
	@scripts/deps.sh

build-deps:
	@scripts/deps.sh --build-only

build: build-deps
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(RELEASE) -j$(JOBS)

# Builds and runs `mcpgate serve` with the demo tools on its default: HTTP on 127.0.0.1:8080.
run: build
	@$(RELEASE)/mcpgate serve --tools demo

# The whole suite: warnings as errors, then the same tests under ASan+UBSan, then a short
# replay of every fuzz corpus with the sanitizers on, then a smoke run of every benchmark
# (tiny counts: it checks they still run and get right answers, never their timing).
test: schemas deps test-release test-asan fuzz-smoke bench-smoke

# The suite checks every message mcpgate sends against the official MCP JSON Schemas (not
# vendored here): ../shared/mcp-schema beside the checkout, or $(MCPGATE_SCHEMA_DIR). Without
# them it stops at once, rather than after the build with a dozen schema-oracle failures.
SCHEMA_DIR := $(or $(MCPGATE_SCHEMA_DIR),$(CURDIR)/../shared/mcp-schema)
schemas:
	@for v in 2025-06-18 2025-11-25 2026-07-28; do \
	    [ -f "$(SCHEMA_DIR)/$$v.json" ] || { \
	        echo "make test: the official MCP schema $$v.json is not in $(SCHEMA_DIR);" >&2; \
	        echo "  put the schemas there (../shared/mcp-schema beside this checkout) or set" >&2; \
	        echo "  MCPGATE_SCHEMA_DIR to the directory that holds them" >&2; exit 2; }; \
	done

test-release:
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMCPGATE_WERROR=ON >/dev/null
	@cmake --build $(RELEASE) -j$(JOBS)
	@ctest --test-dir $(RELEASE) --output-on-failure -j$(JOBS)

test-asan:
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DMCPGATE_WERROR=ON -DMCPGATE_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN) -j$(JOBS)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(ASAN) --output-on-failure -j$(JOBS)

fuzz-smoke:
	@CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DMCPGATE_WERROR=ON -DMCPGATE_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ) -j$(JOBS) --target fuzz_targets
	@ctest --test-dir $(FUZZ) --output-on-failure -L fuzz -j$(JOBS)

bench: build deps
	@bench/deps.sh && bench/glewlwyd/install.sh
	@bench/run.sh

# The peers are installed first so that the smoke run skips nothing.
bench-smoke: build
	@bench/deps.sh && bench/glewlwyd/install.sh
	@bench/run.sh --smoke

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(RELEASE) $(ASAN) $(FUZZ)
