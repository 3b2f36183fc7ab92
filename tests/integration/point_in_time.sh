#!/bin/bash
# Proof 1, point in time: with four writer threads hammering 256 MiB (half
# random, half sequential) and a buffer of only 1 MiB, every page of the
# snapshot holds exactly what it held at the armed instant.  The buffer is
# made to fill: snapd's test hook holds the writer until a fault has waited
# for a free slot (buffer-full waits > 0), so the synchronous path, where a
# faulting writer waits for a free slot, is exercised on any machine.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config "compression_threads 1"
snapd_start

out=$T/point_in_time.json
if ! run_snapwork "$out" --size 256M --threads 4 --pattern mixed \
    --buffer 1M --name point-in-time --test-hold '{"until": "buffer-full"}'; then
	show_snapwork "$out"
	fail "snapwork did not verify the snapshot (see its messages above)"
fi
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages in snapwork's report"
completed=$(json_get "$out" completed) || fail "no completed in snapwork's report"
waits=$(json_get "$out" buffer-full-waits) || fail "no buffer-full-waits in snapwork's report"
during=$(json_get "$out" writes-during-snapshot) || fail "no writes-during-snapshot"
faulted=$(json_get "$out" pages-faulted) || fail "no pages-faulted"
[ "$completed" = true ] || { show_snapwork "$out"; fail "the snapshot did not complete"; }
[ "$wrong" -eq 0 ] || { show_snapwork "$out"; fail "$wrong pages differ from the armed instant"; }
[ "$during" -gt 0 ] || { show_snapwork "$out"; fail "no page was written while the snapshot ran: nothing was proven"; }
[ "$faulted" -gt 0 ] || { show_snapwork "$out"; fail "no page was copied on the fault path: the writers never raced the snapshot"; }
[ "$waits" -gt 0 ] || { show_snapwork "$out"; fail "a 1 MiB buffer never filled (buffer-full-waits 0): the synchronous path was not exercised"; }
echo "ok: 0 wrong pages; $during writes during the snapshot, $faulted pages copied on the fault path, $waits buffer-full waits"
