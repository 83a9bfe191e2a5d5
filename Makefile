# hasura_events: Hasura Event Triggers as a PostgreSQL extension plus a delivery sidecar.
#
#   make            build the extension module and the sidecar
#   make install    install both for the PostgreSQL found by pg_config
#   make demo       events flowing end to end on a throwaway cluster
#   make test       every suite: unit tests, pg_regress, integration
#   make bench      benchmarks (not part of make test)
#   make bench-instructions  instructions of a 100k-row INSERT and of single-row INSERTs, with and without a trigger
#
# The one version string of the project lives here; the control file is generated from it and
# META.json is checked against it (make check-version).

EXTENSION    = hasura_events
EXTVERSION   = 0.2.0
MODULE_big   = hasura_events

PG_CONFIG   ?= pg_config

CORE_SRCS    = $(wildcard extension/core/*.cpp) protocol/protocol.cpp protocol/json_text.cpp
PG_SRCS      = $(wildcard extension/src/*.cpp)
OBJS         = $(PG_SRCS:.cpp=.o) $(CORE_SRCS:.cpp=.o)

DATA_built   = $(EXTENSION)--$(EXTVERSION).sql $(EXTENSION).control
# The install scripts of earlier versions (frozen) and the upgrade scripts from each to the next.
DATA         = $(wildcard extension/sql/$(EXTENSION)--*.sql)
EXTRA_CLEAN  = $(DATA_built) results regression.diffs regression.out tmp_check

REGRESS      = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-config=tests/regress.conf --temp-instance=tmp_check --inputdir=. --load-extension=$(EXTENSION)

PG_CPPFLAGS  = -I$(CURDIR)/extension/core -I$(CURDIR)/protocol -DHASURA_EVENTS_VERSION='"$(EXTVERSION)"'
PG_CXXFLAGS  = -std=c++17 -Wno-register -fno-strict-aliasing
SHLIB_LINK  += -lstdc++

# The server was built with LLVM JIT support; we opt out of building bitcode for our module
# (JIT inlining of this extension's functions is not worth a clang dependency).
override with_llvm := no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(EXTENSION)--$(EXTVERSION).sql: extension/sql/$(EXTENSION).sql extension/sql/delivery.sql extension/sql/metadata.sql
	cat $^ > $@

$(EXTENSION).control: extension/$(EXTENSION).control.in
	sed 's/@EXTVERSION@/$(EXTVERSION)/' $< > $@

all: sidecar
.PHONY: sidecar deps demo test unit integration check-version bench bench-instructions format lint

sidecar:
	$(MAKE) -C sidecar HASURA_EVENTS_VERSION=$(EXTVERSION)

install: install-sidecar
install-sidecar: sidecar
	$(MAKE) -C sidecar install

# Installs the Debian packages the build and the tests need (as root, or through sudo).
deps:
	./tests/install-deps.sh

check-version:
	@grep -q '"version": "$(EXTVERSION)"' META.json || { echo "META.json version differs from EXTVERSION=$(EXTVERSION)"; exit 1; }

unit:
	$(MAKE) -C tests/unit check

test: deps
	./tests/run-all.sh

demo: deps
	./tests/demo.sh

bench: deps
	./bench/run.sh $(BENCH_MODE)

bench-instructions: deps
	./bench/instructions.sh

FORMAT_FILES = $(wildcard extension/src/*.cpp extension/src/*.hpp extension/core/*.cpp extension/core/*.hpp \
                 protocol/*.cpp protocol/*.hpp sidecar/*.cpp sidecar/*.hpp tests/unit/*.cpp bench/*.cpp)

format:
	clang-format -i $(FORMAT_FILES)

lint:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# Headers are few; rebuild every object when one changes.
$(OBJS): $(wildcard extension/src/*.hpp extension/core/*.hpp protocol/*.hpp)
