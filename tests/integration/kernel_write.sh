#!/bin/bash
# Kernel writes into a protected region: during the snapshot snapwork's
# main thread read(2)s from a pipe and pread(2)s from a file, alternately,
# straight into 16384 write-protected pages (the last quarter of 256 MiB),
# while two writers hammer the rest.  They are still protected when the
# kernel writes them: snapd's test hook holds the writer's sweep (draining
# the buffer meanwhile) until snapwork says, with test-release, that the
# kernel writes are done.  copy_to_user() takes the write-protect fault in
# the kernel: with a full (not user-mode-only) userfaultfd snapd serves it
# like any other, so every read must complete (no EFAULT), none may take a
# second, the snapshot must hold the armed instant's bytes, and the live
# pages the new bytes.
. "$(dirname "$0")/../lib.sh"
t_init
snapd_config
snapd_start

out=$T/kernel_write.json
rc=0
timeout -k 5 60 "$SNAPWORK" --socket "$SNAPD_SOCK" --json --name kernel-write \
    --size 256M --threads 2 --pattern mixed --buffer 4M --kernel-write \
    --test-hold '{"until": "release"}' --test-release \
    >"$out" 2>"$out.err" || rc=$?
[ "$rc" -eq 0 ] || { show_snapwork "$out"; fail "snapwork failed (exit $rc): $(tail -n 1 "$out.err")"; }
done_=$(json_get "$out" action-done) || fail "no action-done"
pages=$(json_get "$out" action-pages) || fail "no action-pages"
range=$(json_get "$out" range-pages) || fail "no range-pages"
astall=$(json_get "$out" action-stall-max-us) || fail "no action-stall-max-us"
wrong=$(json_get "$out" wrong-pages) || fail "no wrong-pages"
live=$(json_get "$out" live-wrong-pages) || fail "no live-wrong-pages"
faulted=$(json_get "$out" pages-faulted) || fail "no pages-faulted"
protected=$(json_get "$out" action-protected-pages) || fail "no action-protected-pages"
[ "$done_" = true ] || fail "the kernel writes did not all complete: $(json_get "$out" action-error)"
[ "$pages" -eq "$range" ] || fail "$pages of $range pages were written by the kernel"
[ "$wrong" -eq 0 ] || fail "$wrong snapshot pages differ from the armed instant"
[ "$live" -eq 0 ] || fail "$live live pages do not hold what the kernel wrote"
[ "$astall" -lt 1000000 ] || fail "a read into a protected page took $astall us"
[ "$faulted" -gt 0 ] || fail "no page was copied on the fault path: nothing raced the snapshot"
[ "$protected" -gt 0 ] || fail "no page was still write-protected when the kernel wrote it (pagemap): nothing was tested"
echo "ok: $pages pages written by read(2)/pread(2), $protected of them still write-protected just before; longest $astall us; snapshot exact, live memory exact"
