# A one-node Ceph with an S3 gateway for the S3 tests (sourced after
# tests/lib.sh and t_init, not run).  Everything lives in $T/ceph: one
# monitor, one BlueStore OSD on a sparse file, radosgw (beast) on
# 127.0.0.1, no cephx (auth none), no ceph-mgr.  Ports are chosen free by
# the harness; the daemons' pids go to t_track, so t_cleanup stops them
# even when the test fails, and ceph_start chains ceph_stop in front of
# the EXIT trap so that they stop in order (gateway, OSD, monitor).
#
#	. "$(dirname "$0")/../lib.sh"
#	. "$(dirname "$0")/../ceph.sh"
#	t_init
#	ceph_start			# S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, RGW_PID
#	ceph_make_bucket snaps
#	s3cmd -c "$CEPH_DIR/s3cfg" ls s3://snaps
#	rgw_kill; rgw_restart; rgw_stop; rgw_cont; ceph_stop
#
# Settings that matter (measured on Debian 12, Ceph 16.2.15): radosgw
# with auth none needs ms_mon_client_mode = crc or it retries the
# monitor for ever; radosgw daemonizes and exits 0 even when it will
# never serve, so ceph_start waits on its HTTP port while its pid lives;
# the OSD's addresses and port range are set under [osd] only (in
# [global] they would move the monitor); paxos_propose_interval and
# bluestore_fsck_on_mkfs make the start fast; deleted objects' space
# comes back only after hours, so the block file is large and sparse.
# Model: Ceph's qa/standalone/ceph-helpers.sh.

CEPH_DIR=
CEPH_CONF=
CEPH_MON_PORT=
CEPH_OSD_PORT=
CEPH_MON_PID=
CEPH_OSD_PID=
RGW_PID=
RGW_PORT=
S3_ENDPOINT=
S3_REGION=us-east-1
# Fixed test keys (a throwaway gateway on loopback).
S3_ACCESS_KEY=SNAPDTESTACCESSKEY01
S3_SECRET_KEY=snapdTestSecretKey0123456789abcdefABCDEF
CEPH_START_SECONDS=
# Safety nets (seconds), many times what a loaded machine needs.
CEPH_WAIT=${CEPH_WAIT:-120}
CEPH_BLOCK_SIZE=${CEPH_BLOCK_SIZE:-100G}

# ceph_install_or_skip: the Ceph daemons, their command-line tools and
# s3cmd (a client we did not write), installed when missing.
ceph_install_or_skip() {
	local p missing=
	for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool s3cmd; do
		command -v "$p" >/dev/null || missing=1
	done
	[ -z "$missing" ] && return 0
	t_apt_install_or_skip ceph-mon ceph-osd radosgw ceph-common s3cmd
}

# ceph_free_ports N: print the first of N consecutive TCP ports free on
# 127.0.0.1 (each bound and released once; the range is random, so two
# tests starting together do not pick the same one).
ceph_free_ports() {
	python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no %d free consecutive ports found" % n)
EOF
}

# ceph_cli ARGS...: the ceph command on this cluster, with a time limit.
ceph_cli() {
	timeout 60 ceph -c "$CEPH_CONF" --connect-timeout 30 "$@"
}

# radosgw_admin ARGS...: radosgw-admin on this cluster, with a time limit.
radosgw_admin() {
	timeout 120 radosgw-admin -c "$CEPH_CONF" "$@"
}

# ceph_pidfile_wait NAME FILE: wait for daemon NAME's pid file (it
# daemonizes: its pid is not $!), track the pid, print it.
ceph_pidfile_wait() {
	local n=$((CEPH_WAIT * 10)) pid
	until [ -s "$2" ] && pid=$(cat "$2") && kill -0 "$pid" 2>/dev/null; do
		[ "$n" -gt 0 ] || { ceph_show_log "$1"; fail "$1 wrote no pid file $2 within $CEPH_WAIT s"; }
		sleep 0.1
		n=$((n - 1))
	done
	echo "$pid"
}

# ceph_show_log NAME: the tail of daemon NAME's log, for a failure's context.
ceph_show_log() {
	local f=$CEPH_DIR/log/$1.log
	[ -s "$f" ] || return 0
	echo "--- last lines of $f:" >&2
	tail -n 15 "$f" >&2
}

ceph_write_conf() {
	local d=$CEPH_DIR
	cat >"$CEPH_CONF" <<EOF
# throwaway one-node Ceph of $0 (tests/ceph.sh)
[global]
fsid = $CEPH_FSID
mon_host = v2:127.0.0.1:$CEPH_MON_PORT
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_msgr1 = false
ms_mon_client_mode = crc
run_dir = $d/run
admin_socket = $d/run/\$name.\$pid.asok
pid_file = $d/run/\$name.pid
log_file = $d/log/\$name.log
log_to_stderr = false
err_to_stderr = true
mon_cluster_log_file = $d/log/cluster.log
crash_dir = $d/crash
keyring = $d/keyring
chdir = $d
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_data_avail_crit = 1
mon_data_avail_warn = 2
paxos_propose_interval = 0.1

[mon]
mon_data = $d/mon
mon_initial_members = a

[osd]
osd_data = $d/osd
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $CEPH_BLOCK_BYTES
bluestore_fsck_on_mkfs = false
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
osd_memory_target = 939524096
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_port_min = $CEPH_OSD_PORT
ms_bind_port_max = $((CEPH_OSD_PORT + 19))
osd_crush_update_on_start = true

[client.rgw]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $d/rgw
rgw_thread_pool_size = 32
ms_mon_client_mode = crc
EOF
}

# ceph_start: the cluster and its gateway, an S3 user with the test keys;
# exports S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY, S3_SECRET_KEY, RGW_PID;
# writes $CEPH_DIR/s3cfg (s3cmd) and $CEPH_DIR/s3-credentials (ours,
# 0600).  Prints the time from nothing to S3 answering.
ceph_start() {
	local t0 n osd_uuid osd_id
	[ -n "$T" ] || fail "ceph_start: call t_init first"
	ceph_install_or_skip
	t0=$(date +%s.%N)
	CEPH_DIR=$T/ceph
	CEPH_CONF=$CEPH_DIR/ceph.conf
	mkdir -p "$CEPH_DIR"/{run,log,crash,mon,osd,rgw} || fail "mkdir $CEPH_DIR"
	CEPH_FSID=$(cat /proc/sys/kernel/random/uuid)
	CEPH_BLOCK_BYTES=$(numfmt --from=iec "$CEPH_BLOCK_SIZE")
	CEPH_MON_PORT=$(ceph_free_ports 1) || fail "no free port for the monitor"
	CEPH_OSD_PORT=$(ceph_free_ports 20) || fail "no free ports for the OSD"
	RGW_PORT=$(ceph_free_ports 1) || fail "no free port for radosgw"
	ceph_write_conf || fail "cannot write $CEPH_CONF"

	# The monitor.
	monmaptool --create --fsid "$CEPH_FSID" \
	    --addv a "[v2:127.0.0.1:$CEPH_MON_PORT]" "$CEPH_DIR/monmap" \
	    >"$CEPH_DIR/log/monmaptool.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/monmaptool.out" >&2; fail "monmaptool failed"; }
	ceph-mon -c "$CEPH_CONF" -i a --mkfs --monmap "$CEPH_DIR/monmap" \
	    >"$CEPH_DIR/log/mon-mkfs.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/mon-mkfs.out" >&2; fail "ceph-mon --mkfs failed"; }
	ceph-mon -c "$CEPH_CONF" -i a >"$CEPH_DIR/log/mon.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/mon.out" >&2; ceph_show_log mon.a; fail "ceph-mon failed to start"; }
	CEPH_MON_PID=$(ceph_pidfile_wait mon.a "$CEPH_DIR/run/mon.a.pid") || exit 1
	t_track "$CEPH_MON_PID"
	ceph_chain_trap

	# The OSD: registered with the monitor, its store made, started.
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	osd_id=$(ceph_cli osd new "$osd_uuid" 2>"$CEPH_DIR/log/osd-new.err") ||
		{ cat "$CEPH_DIR/log/osd-new.err" >&2; ceph_show_log mon.a; fail "ceph osd new failed (monitor not answering?)"; }
	[ "$osd_id" = 0 ] || fail "ceph osd new gave id '$osd_id', not 0"
	ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
	    >"$CEPH_DIR/log/osd-mkfs.out" 2>&1 ||
		{ tail -n 5 "$CEPH_DIR/log/osd-mkfs.out" >&2; ceph_show_log osd.0; fail "ceph-osd --mkfs failed"; }
	ceph-osd -c "$CEPH_CONF" -i 0 >"$CEPH_DIR/log/osd.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/osd.out" >&2; ceph_show_log osd.0; fail "ceph-osd failed to start"; }
	CEPH_OSD_PID=$(ceph_pidfile_wait osd.0 "$CEPH_DIR/run/osd.0.pid") || exit 1
	t_track "$CEPH_OSD_PID"

	# The gateway; it makes its pools itself once the OSD is up.
	rgw_launch
	# The S3 user with the fixed test keys.
	radosgw_admin user create --uid=snapdtest --display-name="snapd tests" \
	    --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" \
	    >"$CEPH_DIR/log/user-create.out" 2>&1 ||
		{ tail -n 5 "$CEPH_DIR/log/user-create.out" >&2; fail "radosgw-admin user create failed"; }
	S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
	export S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY RGW_PID
	(umask 077 && cat >"$CEPH_DIR/s3-credentials" <<EOF
# test keys of the throwaway radosgw of $0
access_key $S3_ACCESS_KEY
secret_key $S3_SECRET_KEY
EOF
	) || fail "cannot write $CEPH_DIR/s3-credentials"
	cat >"$CEPH_DIR/s3cfg" <<EOF
[default]
access_key = $S3_ACCESS_KEY
secret_key = $S3_SECRET_KEY
host_base = 127.0.0.1:$RGW_PORT
host_bucket = 127.0.0.1:$RGW_PORT
bucket_location = $S3_REGION
use_https = False
signature_v2 = False
check_ssl_certificate = False
EOF
	# S3 answers this user: a signed listing of its (no) buckets.
	n=$((CEPH_WAIT * 10))
	until s3cmd -c "$CEPH_DIR/s3cfg" ls >"$CEPH_DIR/log/s3cmd-ls.out" 2>&1; do
		rgw_alive || { ceph_show_log client.rgw; fail "radosgw exited before S3 answered"; }
		[ "$n" -gt 0 ] || { cat "$CEPH_DIR/log/s3cmd-ls.out" >&2; fail "S3 did not answer the test user within $CEPH_WAIT s"; }
		sleep 0.2
		n=$((n - 2))
	done
	CEPH_START_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	printf 'ceph: S3 answering at %s after %.1f s (mon %s, osd %s, radosgw %s)\n' \
	    "$S3_ENDPOINT" "$CEPH_START_SECONDS" "$CEPH_MON_PID" "$CEPH_OSD_PID" "$RGW_PID"
}

# ceph_chain_trap: put ceph_stop in front of whatever the EXIT trap does
# (t_cleanup); the pids are tracked as well, should a test replace the
# trap afterwards.
ceph_chain_trap() {
	local prev
	eval "set -- $(trap -p EXIT)"
	prev=${3:-t_cleanup}
	case $prev in *ceph_stop*) return 0 ;; esac
	# shellcheck disable=SC2064
	trap "rc=\$?; ceph_stop >/dev/null 2>&1; (exit \$rc); $prev" EXIT
}

# rgw_launch: start radosgw on $RGW_PORT and wait (CEPH_WAIT) until its
# port accepts connections and answers HTTP, checking that it lives.
rgw_launch() {
	local n=$((CEPH_WAIT * 10))
	rm -f "$CEPH_DIR/run/client.rgw.pid"
	radosgw -c "$CEPH_CONF" -n client.rgw >"$CEPH_DIR/log/rgw.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/rgw.out" >&2; ceph_show_log client.rgw; fail "radosgw failed to start"; }
	RGW_PID=$(ceph_pidfile_wait client.rgw "$CEPH_DIR/run/client.rgw.pid") || exit 1
	t_track "$RGW_PID"
	export RGW_PID
	until curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$RGW_PORT/"; do
		rgw_alive || { ceph_show_log client.rgw; fail "radosgw (pid $RGW_PID) exited before serving"; }
		[ "$n" -gt 0 ] || { ceph_show_log client.rgw; fail "radosgw did not serve on port $RGW_PORT within $CEPH_WAIT s"; }
		sleep 0.2
		n=$((n - 2))
	done
}

rgw_alive() {
	[ -n "$RGW_PID" ] && kill -0 "$RGW_PID" 2>/dev/null
}

# ceph_daemon_stop PID: SIGTERM (after SIGCONT: it may be stopped), then
# SIGKILL after 15 s; waits until it is gone.
ceph_daemon_stop() {
	local pid=$1
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null
	kill -TERM "$pid" 2>/dev/null
	if ! t_wait_gone "$pid" 150; then
		kill -KILL "$pid" 2>/dev/null
		t_wait_gone "$pid" 100
	fi
}

# ceph_make_bucket NAME: a bucket, made with s3cmd.
ceph_make_bucket() {
	s3cmd -c "$CEPH_DIR/s3cfg" mb "s3://$1" >"$CEPH_DIR/log/mb-$1.out" 2>&1 ||
		{ cat "$CEPH_DIR/log/mb-$1.out" >&2; fail "s3cmd mb s3://$1 failed"; }
}

# s3c ARGS...: s3cmd on this gateway as the test user.
s3c() {
	s3cmd -c "$CEPH_DIR/s3cfg" "$@"
}

# rgw_kill: SIGKILL radosgw and wait until it is gone (connections to
# its port are then refused).
rgw_kill() {
	[ -n "$RGW_PID" ] || return 0
	kill -CONT "$RGW_PID" 2>/dev/null
	kill -KILL "$RGW_PID" 2>/dev/null
	t_wait_gone "$RGW_PID" 100 || fail "radosgw (pid $RGW_PID) did not die of SIGKILL"
	RGW_PID=
}

# rgw_restart: a new radosgw on the same port (killing the old one if it
# runs), waiting until it serves.
rgw_restart() {
	rgw_kill
	rgw_launch
}

# rgw_stop / rgw_cont: freeze radosgw (SIGSTOP: connections are accepted
# by the kernel but nothing answers) and thaw it.
rgw_stop() {
	kill -STOP "$RGW_PID" || fail "cannot SIGSTOP radosgw (pid $RGW_PID)"
}
rgw_cont() {
	kill -CONT "$RGW_PID" || fail "cannot SIGCONT radosgw (pid $RGW_PID)"
}

# ceph_stop: the gateway, the OSD and the monitor, in that order.
ceph_stop() {
	ceph_daemon_stop "$RGW_PID"
	ceph_daemon_stop "$CEPH_OSD_PID"
	ceph_daemon_stop "$CEPH_MON_PID"
	RGW_PID= CEPH_OSD_PID= CEPH_MON_PID=
}
