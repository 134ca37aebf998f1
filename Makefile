# mpgw — SOCKSv5 gateway with a Multipath TCP upstream.
#
#   make            build build/mpgw, build/libmpgw.so, build/mpgw-run
#   make run        install missing packages, build, run with conf/mpgw.ini
#   make test       install missing packages, build, run every test
#                   (and each fuzz target for 10 s)
#   make asan       the same suite on an ASan+UBSan build (build-asan/)
#   make tsan       the threaded modules' harnesses under ThreadSanitizer
#                   (tests/tsan/, built into build-tsan/)
#   make bench      benchmarks (root; see README "Performance")
#   make fuzz       libFuzzer targets (clang)

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
# A /usr install keeps its config in /etc, as Debian's packages do.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR  ?= $(PREFIX)/share/man
CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
BUILD   ?= build

PROJ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wformat=2 -Wmissing-prototypes -Wswitch-enum -pthread \
	-I. -MMD -MP
PKGS       = openssl inih libcares hiredis
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# Debian's libev ships no .pc file.
LIBS       = $(PKG_LIBS) -lev -lcrypt -pthread
CRIT_LIBS  = $(shell pkg-config --libs criterion 2>/dev/null)

ALL_CFLAGS = $(PROJ_CFLAGS) $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)

# Every .c below these folders belongs to the daemon; main.c only to the binary.
GW_SRC   = $(wildcard lib/*.c proto/*.c conf/*.c auth/*.c gateway/*.c)
GW_LIB   = $(filter-out gateway/main.c,$(GW_SRC))
GW_OBJ   = $(GW_LIB:%.c=$(BUILD)/obj/%.o)
# What the shim shares with the gateway (DESIGN.md section 1).
CODEC_SRC = lib/addr.c proto/socks5.c proto/convert.c
SHIM_SRC = $(filter-out client-shim/mpgw-run.c,$(wildcard client-shim/*.c)) \
	$(wildcard $(CODEC_SRC))
SHIM_OBJ = $(SHIM_SRC:%.c=$(BUILD)/pic/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TSAN_SRC = $(wildcard tests/tsan/*.c)
TSAN_BIN = $(TSAN_SRC:tests/tsan/%.c=$(BUILD)/tsan/%)
LAB_SRC  = $(wildcard tests/lab/*.c)
LAB_BIN  = $(LAB_SRC:tests/lab/%.c=$(BUILD)/%)
BENCH_SRC = $(wildcard tests/bench/*.c)

BINS = $(BUILD)/mpgw
ifneq ($(wildcard client-shim/*.c),)
BINS += $(BUILD)/libmpgw.so $(BUILD)/mpgw-run
endif
ifneq ($(BENCH_SRC),)
BINS += $(BUILD)/socksbench
endif
# Man pages: the config reference is README.md's, pulled in by mkman.py.
MAN_PAGES = $(BUILD)/man/mpgw.8 $(BUILD)/man/mpgw.ini.5

# Debian 12 packages the build and the tests need; `make deps` installs
# whichever are missing (as root), so a fresh machine needs nothing else.
DEB_BUILD = build-essential pkg-config libev-dev libssl-dev libinih-dev \
	libcriterion-dev libcrypt-dev libnetfilter-queue-dev libmnl-dev openssl \
	libc-ares-dev libhiredis-dev python3
DEB_TEST  = python3 python3-pytest python3-socks curl wget ncat \
	proxychains4 socat iproute2 iptables tcpdump whois procps dnsmasq-base \
	systemd mandoc man-db prometheus haproxy redis-server dante-server
DEB_BENCH = microsocks gnuplot-nox iperf3 mptcpize linux-perf
# make test runs the libFuzzer targets (tests/fuzz) briefly.
DEB_FUZZ  = clang

.PHONY: all run test asan tsan bench fuzz install clean deps deps-test \
	deps-bench unit
all: $(BINS) $(LAB_BIN) $(MAN_PAGES)

deps:
	@sh tests/deps.sh $(DEB_BUILD)
deps-test: deps
	@sh tests/deps.sh $(DEB_TEST) $(DEB_FUZZ)
deps-bench: deps-test
	@sh tests/deps.sh $(DEB_BENCH)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/libgw.a: $(GW_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/mpgw: $(BUILD)/obj/gateway/main.o $(BUILD)/libgw.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libmpgw.so: $(SHIM_OBJ)
	$(CC) $(ALL_CFLAGS) -shared -fPIC $(LDFLAGS) -o $@ $^ -ldl -lssl -lcrypto -pthread

# The launcher checks the shim's config before exec: it shares the parser.
$(BUILD)/mpgw-run: $(BUILD)/obj/client-shim/mpgw-run.o \
		$(BUILD)/obj/client-shim/shimconf.o $(BUILD)/obj/proto/socks5.o \
		$(BUILD)/obj/lib/addr.o
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/socksbench: $(BENCH_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/libgw.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) -lm

$(UNIT_BIN): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libgw.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS) $(CRIT_LIBS)

$(TSAN_BIN): $(BUILD)/tsan/%: $(BUILD)/obj/tests/tsan/%.o $(BUILD)/libgw.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/man/%: conf/man/%.md conf/man/mkman.py README.md gateway/main.c
	@mkdir -p $(@D)
	python3 conf/man/mkman.py $< > $@.tmp && mv $@.tmp $@

$(LAB_BIN): $(BUILD)/%: $(BUILD)/obj/tests/lab/%.o
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ -lnetfilter_queue -lmnl

run: deps
	@$(MAKE) --no-print-directory all
	./$(BUILD)/mpgw -c conf/mpgw.ini

unit: all $(UNIT_BIN)
	@/usr/bin/python3 tests/run.py --unit-only $(BUILD)

# Each libFuzzer target also runs for 10 s from its seed corpus.
test: deps-test
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@$(MAKE) --no-print-directory -C tests/fuzz all
	@sh tests/certs.sh $(BUILD)/certs
	@MPGW_BUILD=$(BUILD) /usr/bin/python3 tests/run.py --fuzz=build-fuzz \
		$(BUILD)

ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" \
		LDFLAGS="-fsanitize=address,undefined" all \
		$(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)
	@sh tests/certs.sh build-asan/certs
	@MPGW_BUILD=build-asan MPGW_ASAN=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		/usr/bin/python3 tests/run.py build-asan

# Criterion's runner does not run under TSan here, so the threaded modules
# (pool, replay cache, throttle, users db, config snapshot) have standalone
# harnesses; a race report stops a harness with status 66.
TSAN_FLAGS = -O1 -g -fsanitize=thread -fno-omit-frame-pointer
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan CFLAGS="$(TSAN_FLAGS)" \
		LDFLAGS="-fsanitize=thread" \
		$(TSAN_SRC:tests/tsan/%.c=build-tsan/tsan/%)
	@TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
		sh tests/tsan/run.sh build-tsan/tsan

bench: deps-bench
	@$(MAKE) --no-print-directory all
	@sh tests/bench/run.sh $(BUILD)

fuzz:
	@sh tests/deps.sh $(DEB_FUZZ)
	@$(MAKE) --no-print-directory -C tests/fuzz

# The unit names the installed paths, so it is made here, for these ones.
# An existing config is never overwritten.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/lib/mpgw \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/mpgw $(DESTDIR)$(BINDIR)/mpgw
	if [ -f $(BUILD)/libmpgw.so ]; then \
		install -m 644 $(BUILD)/libmpgw.so $(DESTDIR)$(PREFIX)/lib/mpgw/; \
		install -m 755 $(BUILD)/mpgw-run $(DESTDIR)$(BINDIR)/; fi
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		conf/mpgw.service.in > $(BUILD)/mpgw.service
	install -m 644 $(BUILD)/mpgw.service $(DESTDIR)$(UNITDIR)/mpgw.service
	install -m 644 $(BUILD)/man/mpgw.8 $(DESTDIR)$(MANDIR)/man8/mpgw.8
	install -m 644 $(BUILD)/man/mpgw.ini.5 $(DESTDIR)$(MANDIR)/man5/mpgw.ini.5
	install -d $(DESTDIR)$(SYSCONFDIR)/mpgw
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mpgw/mpgw.ini ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/mpgw/mpgw.ini"; else \
		echo "install -m 644 conf/mpgw.ini $(DESTDIR)$(SYSCONFDIR)/mpgw/"; \
		install -m 644 conf/mpgw.ini $(DESTDIR)$(SYSCONFDIR)/mpgw/; fi

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
