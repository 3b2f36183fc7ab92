#!/bin/bash
# Build the libFuzzer targets of tests/fuzz/ into $B/fuzz/ with Debian's
# clang (address and undefined-behaviour sanitizers, UB is fatal), then
# either replay or explore:
#
#	B=build tests/fuzz/run.sh --replay [reader|config|control|procrec|s3xml ...]
#		(what `make check` runs, through tests/integration/fuzz.sh)
#		run each target once on every file of its seed corpus
#		(tests/fuzz/corpus/NAME) and of its regression inputs
#		(tests/fuzz/regress/NAME) and nothing else: deterministic, the
#		same inputs every time.  Fails if any input crashes, leaks,
#		runs out of memory or takes longer than REPLAY_TIMEOUT seconds
#		(default 25, a safety net: every input takes well under 1 s).
#
#	B=build FUZZ_SECONDS=300 tests/fuzz/run.sh [reader|config|control|procrec|s3xml ...]
#		(what `make fuzz` runs) explore: fuzz each target for
#		FUZZ_SECONDS seconds (default 20) starting from the same
#		inputs, with a 10 s limit per input.  Fails if any target
#		crashes, leaks, times out or runs out of memory, on a given
#		input or on one it found.  Its verdict depends on what it
#		finds in the time, so it is not part of `make check`.
#
# Inputs the fuzzer finds go to $B/fuzz/corpus/NAME (never into the tree);
# a crashing or slow input goes to $B/fuzz/artifacts/NAME/ and its path is
# printed: fix the bug, then copy the input into tests/fuzz/regress/NAME/
# under a name that says what it is, so that every `make check` replays it.
# Exits 77 when clang's libFuzzer is not installed.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
CLANG=${CLANG:-clang}
REPLAY_TIMEOUT=${REPLAY_TIMEOUT:-25}
OUT=$B/fuzz
replay=0
if [ "${1:-}" = --replay ]; then
	replay=1
	shift
fi
TARGETS=${*:-reader config control procrec s3xml}

# Per target: the largest input tried and the sources linked in.
declare -A MAX_LEN=([reader]=65536 [config]=4096 [control]=16384 [procrec]=65536 [s3xml]=16384)

mkdir -p "$OUT" || exit 1
probe=$OUT/probe.c
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' \
    >"$probe"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined -o "$OUT/probe" "$probe" \
    >"$OUT/probe.log" 2>&1; then
	cat "$OUT/probe.log"
	echo "SKIP: clang's libFuzzer is not installed ($CLANG -fsanitize=fuzzer" \
	    "fails; Debian: apt-get install clang libclang-rt-14-dev)"
	exit 77
fi

PKGS="libevent_pthreads libevent_core libzstd libsystemd jansson libcurl expat"
PKG_CFLAGS=$(pkg-config --cflags $PKGS) || {
	echo "FAIL: pkg-config cannot find $PKGS" >&2; exit 1; }
PKG_LIBS=$(pkg-config --libs $PKGS)
VERSION=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' Makefile)
# Every daemon layer's directory, as the Makefile has them (-Idaemon/LAYER).
DAEMON_INC=$(for d in daemon/*/; do printf ' -I%s' "${d%/}"; done)

# The build, as a makefile, so that a second run recompiles only what
# changed.  Everything is held to -Werror, as in the real build: a warning
# only clang gives is a warning all the same.
cat >"$OUT/fuzz.mk" <<EOF
O		= $OUT/obj
CC		= $CLANG
WARN		= -Wall -Wextra -Wshadow -Wstrict-prototypes \\
		  -Wmissing-prototypes -Wno-unused-parameter
SAN		= -fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS		= -std=gnu11 -g -O1 -fno-omit-frame-pointer \$(SAN) \\
		  -fsanitize=fuzzer-no-link -D_GNU_SOURCE -pthread \\
		  -DSNAPD_VERSION=\\"$VERSION\\" -Iproto $DAEMON_INC -Iclient/lib \\
		  $PKG_CFLAGS \$(WARN)
LINK		= \$(CC) -fsanitize=fuzzer \$(SAN) -pthread

PROTO		= \$(patsubst %.c,\$(O)/%.o,\$(wildcard proto/*.c))
LIB		= \$(patsubst %.c,\$(O)/%.o,\$(wildcard client/lib/*.c))
DAEMON		= \$(patsubst %.c,\$(O)/%.o,\$(filter-out daemon/control/main.c,\\
		    \$(wildcard daemon/*/*.c)))

all: $OUT/fuzz_reader $OUT/fuzz_config $OUT/fuzz_control $OUT/fuzz_procrec \\
    $OUT/fuzz_s3xml

$OUT/fuzz_reader: \$(O)/tests/fuzz/fuzz_reader.o \$(LIB) \$(PROTO)
	\$(LINK) -o \$@ \$^ $PKG_LIBS

$OUT/fuzz_config: \$(O)/tests/fuzz/fuzz_config.o \$(O)/daemon/control/config.o \\
    \$(O)/daemon/base/log.o \$(PROTO)
	\$(LINK) -o \$@ \$^ $PKG_LIBS

$OUT/fuzz_control: \$(O)/tests/fuzz/fuzz_control.o \$(DAEMON) \$(PROTO)
	\$(LINK) -o \$@ \$^ $PKG_LIBS -lm

$OUT/fuzz_procrec: \$(O)/tests/fuzz/fuzz_procrec.o \$(PROTO)
	\$(LINK) -o \$@ \$^ $PKG_LIBS

$OUT/fuzz_s3xml: \$(O)/tests/fuzz/fuzz_s3xml.o \$(PROTO)
	\$(LINK) -o \$@ \$^ $PKG_LIBS

\$(O)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p \$(@D)
	\$(CC) \$(CFLAGS) -Werror -MMD -MP -c -o \$@ \$<

\$(O)/%.o: %.c
	@mkdir -p \$(@D)
	\$(CC) \$(CFLAGS) -Werror -MMD -MP -c -o \$@ \$<

-include \$(shell find \$(O) -name '*.d' 2>/dev/null)
EOF
echo "building the fuzz targets in $OUT"
if ! make -s -f "$OUT/fuzz.mk" -j"$(nproc)" >"$OUT/build.log" 2>&1; then
	cat "$OUT/build.log"
	echo "FAIL: building the fuzz targets (make -f $OUT/fuzz.mk)" >&2
	exit 1
fi
grep -i 'warning:' "$OUT/build.log" | sort -u

scratch=$(mktemp -d "${TMPDIR:-/tmp}/snapd-fuzz.XXXXXX") || exit 1
[ -w /dev/shm ] && { rmdir "$scratch"; scratch=$(mktemp -d /dev/shm/snapd-fuzz.XXXXXX) || exit 1; }
trap 'rm -rf "$scratch"' EXIT
export FUZZ_SCRATCH=$scratch

failed=()
for t in $TARGETS; do
	bin=$OUT/fuzz_$t
	[ -x "$bin" ] || { echo "FAIL: no fuzz target '$t'" >&2; exit 1; }
	found=$OUT/corpus/$t
	art=$OUT/artifacts/$t
	log=$OUT/$t.log
	mkdir -p "$found" "$art" || exit 1
	before=$(ls "$art" | wc -l)
	# libFuzzer's own error exit code is 77, which means "skipped" to
	# tests/run.sh: make every failure exit 1.
	common=(-rss_limit_mb=2048 -max_len="${MAX_LEN[$t]}" -error_exitcode=1
	    -timeout_exitcode=1 -artifact_prefix="$art/")
	if [ $replay -eq 1 ]; then
		# Files, not directories: libFuzzer runs each one once and
		# stops, fuzzing nothing.  READMEs are notes, not inputs.
		inputs=()
		for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do
			[ -d "$d" ] || continue
			while IFS= read -r f; do
				inputs+=("$f")
			done < <(find "$d" -type f ! -name 'README*' | sort)
		done
		if [ ${#inputs[@]} -eq 0 ]; then
			failed+=("$t")
			echo "FAIL: fuzz_$t: no corpus or regression input" >&2
			continue
		fi
		echo "fuzz_$t: replaying ${#inputs[@]} inputs of" \
		    "tests/fuzz/{corpus,regress}/$t"
		"$bin" -timeout="$REPLAY_TIMEOUT" "${common[@]}" "${inputs[@]}" \
		    >"$log" 2>&1
	else
		dirs=("$found")
		for d in tests/fuzz/corpus/$t tests/fuzz/regress/$t; do
			[ -d "$d" ] && dirs+=("$d")
		done
		echo "fuzz_$t: ${FUZZ_SECONDS}s on ${dirs[*]}"
		"$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
		    -use_value_profile=1 -print_final_stats=1 "${common[@]}" \
		    "${dirs[@]}" >"$log" 2>&1
	fi
	rc=$?
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		echo "FAIL: fuzz_$t exited $rc; the last lines of $log:" >&2
		grep -v '^#[0-9]' "$log" | tail -n 40 | sed 's/^/    | /' >&2
		if [ "$(ls "$art" | wc -l)" -gt "$before" ]; then
			echo "    failing input(s), to fix and then copy into" \
			    "tests/fuzz/regress/$t/:" >&2
			ls -t "$art" | head -n $(( $(ls "$art" | wc -l) - before )) |
			    sed "s|^|      $art/|" >&2
		fi
		continue
	fi
	if [ $replay -eq 1 ]; then
		ran=$(grep -c '^Executed ' "$log")
		if [ "$ran" -ne ${#inputs[@]} ]; then
			failed+=("$t")
			echo "FAIL: fuzz_$t ran $ran of ${#inputs[@]} inputs" \
			    "(see $log)" >&2
			continue
		fi
		slowest=$(sed -n 's/^Executed \(.*\) in \([0-9]*\) ms$/\2 \1/p' \
		    "$log" | sort -n | tail -n 1)
		echo "    all ran clean; slowest: ${slowest% *} ms" \
		    "(${slowest#* })"
		continue
	fi
	grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" |
	    sed 's/^/    /'
	grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 2 | sed 's/^/    /'
done

if [ ${#failed[@]} -gt 0 ]; then
	echo "FAIL: fuzz targets failed: ${failed[*]}" >&2
	exit 1
fi
if [ $replay -eq 1 ]; then
	echo "fuzz: every corpus and regression input ran without a crash," \
	    "leak or timeout"
else
	echo "fuzz: all targets ran ${FUZZ_SECONDS}s without a crash, leak" \
	    "or timeout"
fi
