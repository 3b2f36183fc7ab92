#!/bin/bash
# Soak: SOAK_COUNT (default 1000) back-to-back snapshots of a small (1 MiB)
# snapwork against one snapd.  Every 50 snapshots the daemon's open fd count
# and VmRSS are sampled and printed; the fd count must equal the count
# before the first snapshot (no uffd, pidfd, file or connection leaked), and
# VmRSS must stay within 8 MiB of the sample after the first 50 (the first
# ones fill the table of finished snapshots snapd keeps, and the allocator's
# pools).  Every snapshot must verify.  `make soak` runs this;
# tests/integration/soak_short.sh runs it with 100 for `make check`.
. "$(dirname "$0")/lib.sh"
# Under AddressSanitizer (make check-sanitizers) freed memory waits in a
# quarantine of 256 MiB before it is reused, so snapd's VmRSS would grow by
# what each snapshot frees until that is full: a small quarantine keeps the
# VmRSS check below about leaks (LeakSanitizer still reports them at exit).
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4
t_init
snapd_config
snapd_start

COUNT=${SOAK_COUNT:-1000}
EVERY=50
fd_count() {
	ls "/proc/$SNAPD_PID/fd" | wc -l
}
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$SNAPD_PID/status"
}
# The fd count once snapd has closed the last client's connection.
fd_settled() {
	local n=20 c
	while c=$(fd_count); [ "$c" -ne "$fds_start" ] && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	echo "$c"
}

fds_start=$(fd_count)
rss_start=$(rss_kib)
rss_base=
echo "soak: $COUNT snapshots; snapd $SNAPD_PID starts with $fds_start fds, VmRSS $rss_start KiB"
printf '%8s %6s %10s\n' snapshots fds rss-kib
t0=$(date +%s)
for i in $(seq 1 "$COUNT"); do
	out=$T/soak.json
	run_snapwork "$out" --size 1M --threads 1 --pattern mixed --name "soak-$i" ||
		{ show_snapwork "$out"; fail "snapshot $i of $COUNT did not verify"; }
	rm -f "$SNAPD_DIR/soak-$i.zsnap"
	[ $((i % EVERY)) -eq 0 ] || continue
	fds=$(fd_settled)
	rss=$(rss_kib)
	printf '%8d %6d %10d\n' "$i" "$fds" "$rss"
	[ "$fds" -eq "$fds_start" ] ||
		{ ls -l "/proc/$SNAPD_PID/fd" >&2; fail "after $i snapshots snapd holds $fds fds, $fds_start at the start: a leak"; }
	if [ -z "$rss_base" ]; then
		rss_base=$rss
	elif [ $((rss - rss_base)) -ge 8192 ]; then
		fail "after $i snapshots snapd's VmRSS is $rss KiB, $((rss - rss_base)) KiB more than after the first $EVERY: it grows"
	fi
done
snapd_alive || fail "snapd died"
echo "ok: $COUNT snapshots in $(( $(date +%s) - t0 )) s; fds stayed at $fds_start; VmRSS $rss_base KiB after $EVERY, $(rss_kib) KiB at the end"
