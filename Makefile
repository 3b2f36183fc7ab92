# snapd: live-snapshot daemon.
#
#   make                  build snapd, memsnapctl, libsnapclient (shared and static)
#   make check            install missing Debian packages, build, run every test
#                         (fuzz targets only replay their corpus and
#                         regression inputs: the same inputs every run)
#   make demo             snapshot a live 1 GiB demo workload and verify it
#   make bench / soak / fuzz   the long runs, not part of check
#   make bench-incr       incremental snapshots against the full one on 4 GiB,
#                         and what tracking costs the writer
#                         (BENCHINCRFLAGS="--size 8G --runs 5")
#   make bench-s3         a 1 GiB snapshot to S3 (a one-node Ceph) against
#                         the same to local disk and against zstd | s3cmd put
#                         (BENCHS3FLAGS="--size 2G --runs 5")
#   make bench-lazy       lazy restore against eager, 1 GiB snapshot (not in check)
#   make bench-redis      snapd attach against BGSAVE on a 4 GiB redis-server
#                         (BENCHFLAGS="--gib 8" for more; not part of check)
#   make bench-qemu       memsnapctl qemu-save against QEMU's background snapshot
#                         on the test guest (BENCHFLAGS="--runs 5 --rate 40M")
#   make bench-tracking   what tracking written pages costs, per mechanism
#                         (soft-dirty, uffd-wp async, uffd-wp with a handler)
#                         on 1 and 4 GiB (TRACK_SIZES="1G 4G")
#   make check-repeat N=5 [TARGET=check-sanitizers]   the suite N times on a
#                         fresh clone of HEAD: is its verdict deterministic?
#   make install          PREFIX=/usr/local DESTDIR=; refuses to overwrite a file
#                         it did not install; make uninstall; make stage
#   make deb              the Debian packages (debian/), into $(B)/deb/
#   SANITIZE=address,undefined or SANITIZE=thread builds with sanitizers
#   (into build-address-undefined/ or build-thread/); `make check-sanitizers`
#   runs the whole suite under ASan+UBSan and the engine test under TSan.
#
# Sources are found by directory: every daemon/LAYER/*.c goes into snapd
# (the layers, lowest first: base, format, engine, attach, control; a lower layer
# never includes a higher one, tests/integration/layers.sh checks), every
# client/lib/*.c into libsnapclient, every client/memsnapctl/*.c into memsnapctl,
# proto/*.c into both sides, every tests/workload/*.c is a workload binary
# linking tests/workload/lib/*.c (sinks3probe also links the S3 sink's
# daemon objects: its own rule).  A new file needs no Makefile change.
# tests/guest/ is the QEMU tests' guest kernel, $(B)/tests/guest.elf: a
# freestanding i386 program built with the host compiler (-m32, no libc,
# no libgcc, so no -m32 libraries need be installed).

VERSION		= 0.2.0
SOVERSION	= 0
PREFIX		?= /usr/local
DESTDIR		?=
BINDIR		?= $(PREFIX)/bin
SBINDIR		?= $(PREFIX)/sbin
LIBDIR		?= $(PREFIX)/lib
INCLUDEDIR	?= $(PREFIX)/include
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= /etc
UNITDIR		?= /lib/systemd/system
UDEVDIR		?= /lib/udev/rules.d
SYSUSERSDIR	?= /usr/lib/sysusers.d
PKGCONFIGDIR	?= $(LIBDIR)/pkgconfig

CC		?= cc
SANITIZE	?=
# A sanitizer build lives in its own directory, never mixed with build/.
ifeq ($(SANITIZE),)
B		?= build
else
B		?= build-$(subst $(comma),-,$(SANITIZE))
endif
comma		:= ,
empty		:=
space		:= $(empty) $(empty)

PKGS		= libevent_pthreads libevent_core libzstd libsystemd jansson libcurl expat
PKG_CFLAGS	:= $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS	:= $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ZSTD_LIBS	:= $(shell pkg-config --libs libzstd jansson libcurl expat 2>/dev/null)

WARN		= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
		  -Wmissing-prototypes -Wno-unused-parameter
# CFLAGS, CPPFLAGS and LDFLAGS are the builder's (debian/rules passes
# dpkg-buildflags' hardening flags in them); the defaults build as before.
CFLAGS		?= -O2 -g
CPPFLAGS	?=
ALL_CFLAGS	= -std=gnu11 $(WARN) $(CPPFLAGS) $(CFLAGS) -D_GNU_SOURCE -pthread \
		  -DSNAPD_VERSION=\"$(VERSION)\" -Iproto \
		  $(DAEMON_LAYERS:%=-Idaemon/%) -Iclient/lib \
		  $(PKG_CFLAGS)
LDFLAGS		?=
ifneq ($(SANITIZE),)
ALL_CFLAGS	+= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS		+= -fsanitize=$(SANITIZE)
endif

PROTO_SRC	= $(wildcard proto/*.c)
DAEMON_LAYERS	= base format engine attach control
DAEMON_SRC	= $(foreach l,$(DAEMON_LAYERS),$(wildcard daemon/$(l)/*.c))
LIB_SRC		= $(wildcard client/lib/*.c)
MEMSNAPCTL_SRC	= $(wildcard client/memsnapctl/*.c)
WORKLOAD_SRC	= $(wildcard tests/workload/*.c)
WORKLOAD_LIB_SRC = $(wildcard tests/workload/lib/*.c)
UNIT_SRC	= $(wildcard tests/unit/*.c)
GUEST_SRC	= $(wildcard tests/guest/*.S tests/guest/*.c)

PROTO_OBJ	= $(PROTO_SRC:%.c=$(B)/%.o)
DAEMON_OBJ	= $(DAEMON_SRC:%.c=$(B)/%.o)
LIB_OBJ		= $(LIB_SRC:%.c=$(B)/pic/%.o) $(PROTO_SRC:%.c=$(B)/pic/%.o)
LIB_SOBJ	= $(LIB_SRC:%.c=$(B)/%.o) $(PROTO_OBJ)
MEMSNAPCTL_OBJ	= $(MEMSNAPCTL_SRC:%.c=$(B)/%.o)
UNIT_BIN	= $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
WORKLOAD_BIN	= $(WORKLOAD_SRC:tests/workload/%.c=$(B)/tests/%)
WORKLOAD_LIB_OBJ = $(WORKLOAD_LIB_SRC:%.c=$(B)/%.o)
GUEST_OBJ	= $(patsubst %,$(B)/%.o,$(basename $(GUEST_SRC)))
GUEST_ELF	= $(B)/tests/guest.elf
# Not ALL_CFLAGS: neither the user's CFLAGS nor a sanitizer applies to a
# kernel.  General registers only: no SSE state to set up, and every
# page access is one 32-bit load or store.
GUEST_CFLAGS	= -std=gnu11 $(WARN) -O2 -g -m32 -march=i686 -ffreestanding \
		  -fno-pic -fno-stack-protector -fno-asynchronous-unwind-tables \
		  -mgeneral-regs-only -nostdlib -Itests/guest
GUEST_LDFLAGS	= -m elf_i386 -T tests/guest/guest.ld -z max-page-size=0x1000 \
		  -z noexecstack
# Unit tests link every daemon object except the one holding main().
DAEMON_LIBOBJ	= $(filter-out $(B)/daemon/control/main.o,$(DAEMON_OBJ))

SONAME		= libsnapclient.so.$(SOVERSION)
LIBSO		= $(B)/libsnapclient.so.$(VERSION)
LIBA		= $(B)/libsnapclient.a

all: $(B)/snapd $(B)/memsnapctl $(LIBSO) $(LIBA) $(B)/libsnapclient.pc
tests: all $(UNIT_BIN) $(WORKLOAD_BIN) $(GUEST_ELF)

$(B)/snapd: $(DAEMON_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(PKG_LIBS)

$(B)/memsnapctl: $(MEMSNAPCTL_OBJ) $(LIBA)
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(ZSTD_LIBS) -lm

$(LIBSO): $(LIB_OBJ)
	$(CC) $(LDFLAGS) -shared -pthread -Wl,-soname,$(SONAME) \
	    -Wl,--version-script=client/lib/libsnapclient.map -o $@ $^ $(ZSTD_LIBS)
	ln -sf libsnapclient.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libsnapclient.so

$(LIBA): $(LIB_SOBJ)
	rm -f $@
	ar rcs $@ $^

$(B)/libsnapclient.pc: client/lib/libsnapclient.pc.in Makefile FORCE
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(B)/tests/%: tests/unit/%.c $(DAEMON_LIBOBJ) $(PROTO_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/tests/%: tests/workload/%.c $(WORKLOAD_LIB_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/workload/lib -Itests/guest $(LDFLAGS) -o $@ \
	    $(filter-out %.h,$^) $(ZSTD_LIBS) -lm

# sinks3probe drives the daemon's S3 sink itself: it links the sink's
# objects (and the S3 client from libsnapclient.a), not the whole daemon.
SINKS3PROBE_OBJ	= $(B)/daemon/format/sink-s3.o $(B)/daemon/format/sink.o \
		  $(B)/daemon/base/log.o
$(B)/tests/sinks3probe: tests/workload/sinks3probe.c $(SINKS3PROBE_OBJ) \
    $(WORKLOAD_LIB_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/workload/lib $(LDFLAGS) -o $@ $^ \
	    $(PKG_LIBS) $(ZSTD_LIBS) -lm

# guestcheck reads the pattern the guest writes.
$(B)/tests/guestcheck: tests/guest/guestpage.h

$(GUEST_ELF): $(GUEST_OBJ) tests/guest/guest.ld
	@mkdir -p $(@D)
	$(LD) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJ)

$(B)/tests/guest/%.o: tests/guest/%.c
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/tests/guest/%.o: tests/guest/%.S
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c -o $@ $<

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(B) -path '$(B)/stage' -prune -o -type f -name '*.d' -print 2>/dev/null)

# ---- Debian packages -------------------------------------------------------
# Everything the build, the tests and the demo need, installed when missing.
# prometheus is there for its promtool (tests/integration/metrics.sh);
# debhelper, dpkg-dev, lintian and blhc for make deb (tests/integration/deb.sh).
DEBS		= build-essential pkg-config libevent-dev libzstd-dev \
		  libsystemd-dev libjansson-dev zstd socat mandoc \
		  python3-jsonschema systemd clang libclang-rt-14-dev valgrind \
		  procps util-linux prometheus debhelper dpkg-dev lintian blhc \
		  debootstrap systemd-container libcurl4-openssl-dev libexpat1-dev

deps:
	@missing=$$(for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $$missing; \
	fi

# ---- tests -----------------------------------------------------------------
check: deps
	$(MAKE) tests
	B=$(B) SANITIZE=$(SANITIZE) tests/run.sh

# The whole suite under ASan+UBSan, then the unit tests of what threads
# share (the engine, the page buffer, the page state, the sinks) under TSan.
# CI runs this after `make check`.
TSAN_TESTS	= test_engine test_pagebuf test_pagestate test_sink
check-sanitizers: deps
	$(MAKE) SANITIZE=address,undefined tests
	$(MAKE) SANITIZE=thread $(TSAN_TESTS:%=build-thread/tests/%)
	rc=0; \
	B=build-address-undefined SANITIZE=address,undefined tests/run.sh || rc=1; \
	B=build-thread SANITIZE=thread \
	    TESTS='^($(subst $(space),|,$(strip $(TSAN_TESTS))))$$' \
	    tests/run.sh || rc=1; \
	exit $$rc

# The whole suite N times in a row on a fresh clone of what is committed.
N	?= 5
TARGET	?= check
check-repeat:
	tests/repeat.sh $(N) $(TARGET)

demo: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/demo.sh

bench: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/bench.sh $(BENCHFLAGS)
	B=$(B) tests/bench-incr.sh $(BENCHINCRFLAGS)
	B=$(B) tests/bench-s3.sh $(BENCHS3FLAGS) || [ $$? -eq 77 ]

# Incremental snapshots against the full one, and tracking's cost to the
# writer (issue 16): the last section of make bench, alone.
bench-incr: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/bench-incr.sh $(BENCHINCRFLAGS)

# A snapshot to S3 against the same to local disk and against the same
# bytes through zstd into s3cmd, on a throwaway one-node Ceph (issue 17):
# the last section of make bench, alone.  Exit 77 (no Ceph packages) is a
# skip, not a failure.
bench-s3: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/bench-s3.sh $(BENCHS3FLAGS) || [ $$? -eq 77 ]

# Lazy restore (snap_file_restore_lazy) against the eager one, 1 GiB.
bench-lazy: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/bench-lazy.sh $(BENCHFLAGS)

# snapd's attach against redis's BGSAVE on the same redis-server (issue 12).
bench-redis: deps
	$(MAKE) all $(WORKLOAD_BIN)
	B=$(B) tests/bench-redis.sh $(BENCHFLAGS)

# QEMU's background snapshot against memsnapctl qemu-save on the test guest
# (issue 13).
bench-qemu: deps
	$(MAKE) tests
	B=$(B) tests/bench-qemu.sh $(BENCHFLAGS)

# What each way of tracking written pages between two snapshots (soft-dirty,
# uffd-wp async, uffd-wp with a handler) costs the application and the
# incremental arm, without snapd: tests/workload/trackbench.c.
# TRACK_SIZES="1G 4G" by default; BENCHFLAGS="--runs 5 --hot-seconds 2".
TRACK_SIZES	?= 1G 4G
bench-tracking: $(B)/tests/trackbench
	for size in $(TRACK_SIZES); do \
	    for pages in "" --thp; do \
	        $(B)/tests/trackbench --size $$size $$pages $(BENCHFLAGS) || \
	            exit 1; \
	    done; \
	done

soak: deps
	$(MAKE) tests
	B=$(B) tests/soak.sh

# Explores: libFuzzer looks for new inputs for FUZZ_SECONDS per target.
# `make check` only replays tests/fuzz/{corpus,regress} (tests/fuzz/run.sh).
fuzz: deps
	B=$(B) FUZZ_SECONDS=$${FUZZ_SECONDS:-300} tests/fuzz/run.sh

# ---- installation ----------------------------------------------------------
# `make stage` puts every installed file, at its installed path, under
# STAGEDIR (debian/rules packages from there).  `make install` copies the
# staged tree into DESTDIR with conf/install-files.sh, which refuses to
# overwrite any file an earlier `make install` did not put there (its list,
# with each file's SHA-256, is MANIFEST), keeps an existing configuration,
# and replaces each file atomically.  `make uninstall` removes the files
# MANIFEST lists that are unchanged since, and leaves the configuration.
STAGEDIR	?= $(B)/stage
MANIFEST	?= $(PREFIX)/share/memsnap/installed-files
S		= $(STAGEDIR)

stage: all
	rm -rf $(S)
	install -d $(S)$(SBINDIR) $(S)$(BINDIR) $(S)$(LIBDIR) \
	    $(S)$(INCLUDEDIR) $(S)$(PKGCONFIGDIR) \
	    $(S)$(MANDIR)/man1 $(S)$(MANDIR)/man3 \
	    $(S)$(MANDIR)/man5 $(S)$(MANDIR)/man8 \
	    $(S)$(SYSCONFDIR)/memsnap $(S)$(UNITDIR) $(S)$(UDEVDIR) \
	    $(S)$(SYSUSERSDIR)
	install -m 0755 $(B)/snapd $(S)$(SBINDIR)/snapd
	install -m 0755 $(B)/memsnapctl $(S)$(BINDIR)/memsnapctl
	sed 's|MEMSNAPCTL:-memsnapctl}|MEMSNAPCTL:-$(BINDIR)/memsnapctl}|' \
	    client/qemu-hook/snapd-qemu-hook > $(S)$(BINDIR)/snapd-qemu-hook
	chmod 0755 $(S)$(BINDIR)/snapd-qemu-hook
	install -m 0644 $(LIBSO) $(S)$(LIBDIR)/
	ln -sf libsnapclient.so.$(VERSION) $(S)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(S)$(LIBDIR)/libsnapclient.so
	install -m 0644 $(LIBA) $(S)$(LIBDIR)/
	install -m 0644 client/lib/snapclient.h proto/procrec.h \
	    $(S)$(INCLUDEDIR)/
	install -m 0644 $(B)/libsnapclient.pc $(S)$(PKGCONFIGDIR)/
	install -m 0644 man/memsnapctl.1 $(S)$(MANDIR)/man1/
	install -m 0644 man/libsnapclient.3 $(S)$(MANDIR)/man3/
	install -m 0644 man/snapd.conf.5 $(S)$(MANDIR)/man5/
	install -m 0644 man/snapd.8 $(S)$(MANDIR)/man8/
	install -m 0644 conf/snapd.conf $(S)$(SYSCONFDIR)/memsnap/snapd.conf
	sed 's|/usr/local/sbin/snapd|$(SBINDIR)/snapd|' systemd/memsnap.service \
	    > $(S)$(UNITDIR)/memsnap.service
	chmod 0644 $(S)$(UNITDIR)/memsnap.service
	install -m 0644 systemd/memsnap.socket $(S)$(UNITDIR)/
	install -m 0644 systemd/memsnap-metrics.service $(S)$(UNITDIR)/
	install -m 0644 systemd/memsnap-metrics.timer $(S)$(UNITDIR)/
	install -m 0644 systemd/memsnap.sysusers $(S)$(SYSUSERSDIR)/memsnap.conf
	install -m 0644 systemd/60-memsnap-userfaultfd.rules $(S)$(UDEVDIR)/

install: stage
	sh conf/install-files.sh install $(S) "$(DESTDIR)" $(MANIFEST) $(SYSCONFDIR)

uninstall:
	sh conf/install-files.sh uninstall "$(DESTDIR)" $(MANIFEST) $(SYSCONFDIR)

# The Debian packages memsnap, libsnapclient0 and libsnapclient-dev, built
# by debian/rules (from `make stage`) in a temporary copy of the tree, into
# $(B)/deb/ with lintian's report; fails on any lintian error or warning.
DEBDIR		?= $(B)/deb
deb: deps
	sh debian/make-deb.sh $(DEBDIR)

clean:
	rm -rf $(B)

FORCE:

.PHONY: FORCE all tests deps check check-sanitizers check-repeat demo bench bench-incr bench-s3 bench-lazy bench-redis bench-qemu bench-tracking soak fuzz stage install uninstall deb clean
