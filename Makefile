# Makefile: the front door. CMake does the building; these targets install what is missing,
# configure the right build tree and run it. `make help` lists them.
.PHONY: all deps build run test sanitize tsan fuzz bench format lint install deb clean help example

BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
PREFIX     ?=
DESTDIR    ?=
FUZZ_RUNS  ?= 20000
SRC_FILES   = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find include src tests bench examples -name '*.[ch]')

all: build

help:
	@echo "make run       install deps, build, start strata serve (memory only unless REDIS_URL)"
	@echo "make test      install deps, build, run every unit and integration test"
	@echo "make sanitize  the same tests built with AddressSanitizer + UBSan"
	@echo "make tsan      every test built with ThreadSanitizer"
	@echo "make fuzz      build the libFuzzer targets and run each for FUZZ_RUNS executions"
	@echo "make bench     run every benchmark (bench/README.md holds the figures)"
	@echo "make format    format the sources; make lint checks format + cppcheck"
	@echo "make deb       the Debian package: $(BUILD)/deb/strata_VERSION_ARCH.deb (deploy/)"

deps:
	@scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# The server on the embedded default (memory only; set REDIS_URL to add Redis).
run: build
	@echo "strata: starting on http://$${STRATA_LISTEN:-127.0.0.1:8080} - try:"
	@echo "  curl -X PUT -H 'Content-Type: text/plain' --data-binary 'hello' http://$${STRATA_LISTEN:-127.0.0.1:8080}/v1/cache/demo/greeting"
	@echo "  curl -i http://$${STRATA_LISTEN:-127.0.0.1:8080}/v1/cache/demo/greeting"
	$(BUILD)/strata serve $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

example: build
	$(BUILD)/example_l1

sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF \
	    -DCMAKE_C_COMPILER=clang
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS) \
	    -LE topology

tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSTRATA_TSAN=ON -DSTRATA_BENCH=OFF \
	    -DCMAKE_C_COMPILER=clang
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 ctest --output-on-failure -j $(JOBS) \
	    -LE 'topology|l2_suite'

fuzz: deps
	cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSTRATA_FUZZ=ON -DSTRATA_BENCH=OFF \
	    -DCMAKE_C_COMPILER=clang
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	@set -e; for f in build-fuzz/fuzz_*; do \
	    [ -x "$$f" ] || continue; \
	    name=$$(basename $$f); seeds=tests/fuzz/corpus/$${name#fuzz_}; \
	    work=build-fuzz/corpus/$$name; mkdir -p $$work; \
	    echo "== $$name ($(FUZZ_RUNS) runs)"; \
	    $$f -runs=$(FUZZ_RUNS) -seed=1 -max_len=4096 -artifact_prefix=build-fuzz/ $$work $$( [ -d $$seeds ] && echo $$seeds ); \
	done

bench: build
	@scripts/deps.sh bench
	bench/run.sh $(BUILD)

format:
	clang-format -i $(SRC_FILES)

lint:
	clang-format --dry-run --Werror $(SRC_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem -I include -I src/lib src/

# make install [PREFIX=/opt/strata] [DESTDIR=/tmp/stage]: PREFIX is handed to `cmake --install`,
# so it holds on a build tree configured with another prefix (or none: /usr/local); DESTDIR
# stages the files under DESTDIR/PREFIX as packagers do, and strata.pc still says PREFIX.
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) $(if $(PREFIX),--prefix "$(abspath $(PREFIX))")

# make deb: the Debian package of this build tree, $(BUILD)/deb/strata_VERSION_ARCH.deb (dpkg-deb;
# deploy/debian/build-deb.sh says what goes in; docs/operations.md how to install it).
deb: build
	deploy/debian/build-deb.sh . $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
