#!/bin/sh
# tests/bench/run.sh BUILD_DIR - mpgw benchmark suite (make bench; root).
#
# Loopback part, side by side in one run, every server driven by the same
# client (BUILD_DIR/socksbench) against the same target (socksbench --serve):
#   1. relay throughput, 1 and 8 streams, down and up:
#      direct, direct over MPTCP, mpgw (four ways, below), HAProxy, Dante,
#      microsocks, and the issue 12 targets as ratios;
#   2. connection rate and exchange latency p50/p99/p999 at concurrency 64:
#      mpgw (SOCKS5 three ways, and Convert), Dante, microsocks,
#      with direct as the reference;
#   3. memory: PSS/RSS per held relayed connection with N idle connections;
#   4. the shared state's cost: Convert connection rate with the replay
#      cache in-process and in a loopback Redis ([state] redis).
#   5. UDP ASSOCIATE: datagrams per second (64 and 1200-byte payloads) and
#      the latency a proxy adds per datagram: direct, mpgw, Dante.
#   6. iperf3 down and up: direct, direct over MPTCP (mptcpize), mpgw,
#      HAProxy (forced splice), Dante, microsocks (through proxychains4).
#   7. TLS 1.3 handshakes per CPU-second, full and resumed: mpgw's TLS
#      listener and openssl s_server as the reference.
# mpgw runs in four configurations: mpgw-tcp (upstream mptcp = off),
# mpgw-default (mptcp = on, the default, to a target without MPTCP: the
# capability cache turns it into TCP), mpgw-nocache (the same with
# mptcp_cache_ttl = 0, i.e. before the cache) and mpgw-mptcp (to an MPTCP
# target). HAProxy 2.6 (mode tcp; splice-auto, and forced splice) is the
# relay reference in 1 and 6; 2 adds each proxy's CPU time and system
# calls per connection.
# Medians over BENCH_REPEATS runs; raw and median rows in
# tests/bench/results/*.csv; ratio tables on stdout.
#
# The loopback part runs in a private network namespace (mpgw-bench-PID),
# so its ports, sysctls (tcp_fastopen) and TIME-WAIT sockets touch nothing
# else; the namespace is deleted on exit. The lab part (aggregation,
# failover, TTFB vs RTT) uses tests/lab/lab.sh namespaces.
#
# Environment (defaults in brackets):
#   BENCH_PARTS       which parts: "loopback lab" [loopback lab]
#   BENCH_SECTIONS    loopback sections
#                     [throughput connrate memory redis udp iperf3 tls]
#   BENCH_REPEATS     repeats per measurement [3]
#   BENCH_MB          MiB per throughput run, split over its streams [2048]
#   BENCH_CONC        connrate concurrency [64]
#   BENCH_SECS        connrate seconds per run [4]
#   BENCH_SYS_N       connections counted for system calls per connection
#                     [2000]
#   BENCH_IPERF_SECS  seconds per iperf3 run [4]
#   BENCH_TLS_PAR     parallel TLS clients [4]
#   BENCH_TLS_N       TLS handshakes per client per measurement [500]
#   BENCH_HOLD_N      idle connections for the memory test [10000]
#   BENCH_HOLD_SECS   seconds to keep them before sampling memory [3]
#   BENCH_NETNS       0 to run the loopback part in the current namespace [1]
#   BENCH_KEEP        1 to keep the temporary directory with server logs
#   BENCH_LAB_SECTIONS  lab sections [aggregation failover ttfb
#                     tier-ttfb tier-aggregation tier-failover]
#   BENCH_AGG_CASES   aggregation link sets rate1:rate2:delay1:delay2
#                     (Mbit/s, one-way ms) [10:10:0:0 15:5:1:25]
#   BENCH_AGG_MB      MiB per aggregation download [16]
#   BENCH_FAIL_MB     MiB per failover download [64]
#   BENCH_FAIL_RATE   Mbit/s of each link in the failover test [50]
#   BENCH_FAIL_DELAY  one-way ms of each gw<->srv link there [5]
#   BENCH_LAB_DELAYS  client<->gw one-way ms for TTFB ["5 20 50"]
#   BENCH_LAB_TTFB_N  requests per TTFB point, mode and tool [15]
#   Two tiers (tier-*: edge -> concentrator -> server, lab.sh --far):
#   BENCH_TIER_WAN    edge<->concentrator RTTs for TTFB, ms ["20 60"]
#   BENCH_TIER_FDELAY concentrator<->server one-way delay, ms [2.5]
#   BENCH_TIER_TTFB_N requests per TTFB point, mode and tool [15]
#   BENCH_TIER_REPEATS  MPTCP runs per tier-aggregation case [5]
#   BENCH_TIER_AGG_MB MiB per tier-aggregation download [8]
#   (tier-aggregation uses BENCH_AGG_CASES, tier-failover BENCH_FAIL_* and
#   BENCH_REPEATS runs, as the single-tier sections)
# Plots: tests/bench/plot.gp -> results/ttfb.png, results/throughput.png;
# tests/bench/plot-tier.gp -> results/tier.png.
set -u

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
SB=$BUILD/socksbench
MPGW=$BUILD/mpgw
CONF=$HERE/conf
RES=$HERE/results

REPEATS=${BENCH_REPEATS:-3}
MB=${BENCH_MB:-2048}
CONC=${BENCH_CONC:-64}
SECS=${BENCH_SECS:-4}
HOLD_N=${BENCH_HOLD_N:-10000}
HOLD_SECS=${BENCH_HOLD_SECS:-3}
PARTS=${BENCH_PARTS:-loopback lab}
SECTIONS=${BENCH_SECTIONS:-throughput connrate memory redis udp iperf3 tls}
LAB_SECS=${BENCH_LAB_SECS:-8}
SYS_N=${BENCH_SYS_N:-2000}
HZ=$(getconf CLK_TCK)

# Loopback ports (private namespace; below the ephemeral range).
P_SRV=21301		# target, TCP listener
P_SRV_M=21302		# target, MPTCP listener
P_DANTE=21081
P_MS=21082
P_MPGW_T=21083		# mpgw upstream mptcp=off (Convert on 21093)
P_MPGW_M=21084		# mpgw upstream mptcp=on (Convert on 21094)
P_MPGW_N=21085		# mpgw upstream mptcp=on, mptcp_cache_ttl=0
P_HA_A=21086		# HAProxy, option splice-auto
P_HA_S=21087		# HAProxy, forced splice
P_HA_I=21088		# HAProxy, forced splice, to the iperf3 server
P_IP=21311		# iperf3 server, TCP
P_IP_M=21312		# iperf3 server under mptcpize (MPTCP)
P_CONV_T=21093
CONV_USER=bench
CONV_KEY=$(awk '$1 == "bench" { print $2 }' "$CONF/convert-keys")
# mpgw refuses a keys file others can read; git checks it out 0644.
chmod 600 "$CONF/convert-keys"

TMP=
PIDS=

say() {
	printf '%s\n' "$*" >&2
}

die() {
	say "run.sh: $*"
	exit 1
}

# --- bookkeeping ------------------------------------------------------------

# started PID: remember a process we started, to stop it at exit.
started() {
	PIDS="$PIDS $1"
}

# stop_pid PID: TERM, wait up to 3 s, then KILL; only our own pids.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 150 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

cleanup() {
	for p in $PIDS; do
		stop_pid "$p"
	done
	PIDS=
	[ -n "$TMP" ] && [ -z "${BENCH_KEEP:-}" ] && rm -rf "$TMP"
	TMP=
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (5 s).
wait_port() {
	i=0
	while [ $i -lt 100 ]; do
		if ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# kv LINE KEY: the value of KEY in a key=value line.
kv() {
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# median: median of the numbers on stdin (one per line).
median() {
	sort -g | awk '{ v[NR] = $1 } END {
	    if (NR == 0) { print "-"; exit }
	    if (NR % 2) print v[(NR + 1) / 2];
	    else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B with two decimals, "-" if either is missing or B is 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
	    if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0)
		print "-"; else printf "%.2f\n", a / b }'
}

# tree_pids PID: PID and all its descendants.
tree_pids() {
	ps -e -o pid= -o ppid= | awk -v root="$1" '
	    { parent[$1] = $2; pids[NR] = $1 }
	    END {
		keep[root] = 1; changed = 1
		while (changed) {
			changed = 0
			for (i in pids) { p = pids[i]
				if (!(p in keep) && (parent[p] in keep)) {
					keep[p] = 1; changed = 1 } }
		}
		for (p in keep) print p
	    }'
}

# mem_kb ROOTPID: "rss_kb pss_kb nprocs" summed over the process tree.
mem_kb() {
	rss=0 pss=0 n=0
	for p in $(tree_pids "$1"); do
		[ -r "/proc/$p/smaps_rollup" ] || continue
		set -- $(awk '/^Rss:/ { r = $2 } /^Pss:/ { s = $2 }
		    END { print r + 0, s + 0 }' "/proc/$p/smaps_rollup")
		rss=$((rss + $1))
		pss=$((pss + $2))
		n=$((n + 1))
	done
	echo "$rss $pss $n"
}

# --- servers ------------------------------------------------------------------

# Server table: label, how socksbench reaches it, the pid to measure.
HAVE_DANTE=0 HAVE_MS=0 HAVE_MPGW=0 HAVE_CONV=0 HAVE_HA=0
PID_DANTE='' PID_MS='' PID_MPGW_T='' PID_MPGW_M='' PID_MPGW_N='' PID_HA=''
PID_SRV='' PID_SRV_M=''

start_servers() {
	"$SB" --serve 127.0.0.1:$P_SRV 2>"$TMP/srv.log" &
	PID_SRV=$!
	started $PID_SRV
	"$SB" --serve 127.0.0.1:$P_SRV_M --mptcp 2>"$TMP/srv-mptcp.log" &
	PID_SRV_M=$!
	started $PID_SRV_M
	wait_port $P_SRV || die "target server did not start ($TMP/srv.log)"
	wait_port $P_SRV_M || die "MPTCP target server did not start"

	if command -v danted >/dev/null 2>&1; then
		danted -f "$CONF/danted.conf" -p "$TMP/danted.pid" \
		    2>"$TMP/danted.log" &
		PID_DANTE=$!
		started $PID_DANTE
		if wait_port $P_DANTE; then
			HAVE_DANTE=1
		else
			say "run.sh: Dante did not start; see $TMP/danted.log"
		fi
	else
		say "run.sh: danted not installed" \
		    "(apt-get install dante-server); skipping Dante"
	fi
	if command -v microsocks >/dev/null 2>&1; then
		# shellcheck disable=SC2046
		microsocks $(cat "$CONF/microsocks.args") 2>/dev/null &
		PID_MS=$!
		started $PID_MS
		if wait_port $P_MS; then
			HAVE_MS=1
		else
			say "run.sh: microsocks did not start"
		fi
	else
		say "run.sh: microsocks not installed; skipping it"
	fi
	if [ -x "$MPGW" ]; then
		(cd "$TOP" && exec "$MPGW" -c "$CONF/mpgw-tcp.ini") \
		    2>"$TMP/mpgw-tcp.log" &
		PID_MPGW_T=$!
		started $PID_MPGW_T
		(cd "$TOP" && exec "$MPGW" -c "$CONF/mpgw-mptcp.ini") \
		    2>"$TMP/mpgw-mptcp.log" &
		PID_MPGW_M=$!
		started $PID_MPGW_M
		(cd "$TOP" && exec "$MPGW" -c "$CONF/mpgw-nocache.ini") \
		    2>"$TMP/mpgw-nocache.log" &
		PID_MPGW_N=$!
		started $PID_MPGW_N
		if wait_port $P_MPGW_T && wait_port $P_MPGW_M &&
		    wait_port $P_MPGW_N; then
			HAVE_MPGW=1
			wait_port $P_CONV_T && HAVE_CONV=1
		else
			say "run.sh: mpgw did not start:"
			tail -n 5 "$TMP/mpgw-tcp.log" >&2
		fi
	else
		say "run.sh: $MPGW not built; skipping mpgw"
	fi
	if command -v haproxy >/dev/null 2>&1; then
		haproxy -db -f "$CONF/haproxy.cfg" 2>"$TMP/haproxy.log" &
		PID_HA=$!
		started $PID_HA
		if wait_port $P_HA_A && wait_port $P_HA_S; then
			HAVE_HA=1
		else
			say "run.sh: HAProxy did not start; see $TMP/haproxy.log"
		fi
	else
		say "run.sh: haproxy not installed; skipping HAProxy"
	fi
}

# sb_args LABEL: socksbench options that reach the target through LABEL.
sb_args() {
	case $1 in
	direct) echo "--proxy none --target 127.0.0.1:$P_SRV" ;;
	direct-mptcp) echo "--proxy none --mptcp --target 127.0.0.1:$P_SRV_M" ;;
	mpgw-tcp) echo "--proxy socks5 --gw 127.0.0.1:$P_MPGW_T" \
	    "--target 127.0.0.1:$P_SRV" ;;
	mpgw-mptcp) echo "--proxy socks5 --gw 127.0.0.1:$P_MPGW_M" \
	    "--target 127.0.0.1:$P_SRV_M" ;;
	mpgw-default) echo "--proxy socks5 --gw 127.0.0.1:$P_MPGW_M" \
	    "--target 127.0.0.1:$P_SRV" ;;
	mpgw-nocache) echo "--proxy socks5 --gw 127.0.0.1:$P_MPGW_N" \
	    "--target 127.0.0.1:$P_SRV" ;;
	haproxy-auto) echo "--proxy none --target 127.0.0.1:$P_HA_A" ;;
	haproxy-splice) echo "--proxy none --target 127.0.0.1:$P_HA_S" ;;
	mpgw-convert) echo "--proxy convert --gw 127.0.0.1:$P_CONV_T" \
	    "--target 127.0.0.1:$P_SRV --user $CONV_USER --key $CONV_KEY" \
	    "--tfo-no-cookie" ;;
	dante) echo "--proxy socks5 --gw 127.0.0.1:$P_DANTE" \
	    "--target 127.0.0.1:$P_SRV" ;;
	microsocks) echo "--proxy socks5 --gw 127.0.0.1:$P_MS" \
	    "--target 127.0.0.1:$P_SRV" ;;
	esac
}

# sb_pid LABEL: the process whose tree holds LABEL's relay state.
sb_pid() {
	case $1 in
	mpgw-tcp | mpgw-convert) echo "$PID_MPGW_T" ;;
	mpgw-mptcp | mpgw-default) echo "$PID_MPGW_M" ;;
	mpgw-nocache) echo "$PID_MPGW_N" ;;
	haproxy-*) echo "$PID_HA" ;;
	dante) echo "$PID_DANTE" ;;
	microsocks) echo "$PID_MS" ;;
	esac
}

# labels_for SECTION: the servers present for a section. mpgw-default is
# the default configuration (upstream mptcp = on, capability cache on) to a
# target without MPTCP, mpgw-nocache the same without the cache.
labels_for() {
	l=
	case $1 in
	throughput) l="direct direct-mptcp" ;;
	connrate) l="direct" ;;
	esac
	[ $HAVE_MPGW = 1 ] && l="$l mpgw-tcp mpgw-default mpgw-mptcp"
	[ "$1" = throughput ] && [ $HAVE_MPGW = 1 ] && l="$l mpgw-nocache"
	[ "$1" = connrate ] && [ $HAVE_CONV = 1 ] && l="$l mpgw-convert"
	[ "$1" = throughput ] && [ $HAVE_HA = 1 ] &&
	    l="$l haproxy-auto haproxy-splice"
	[ $HAVE_DANTE = 1 ] && l="$l dante"
	[ $HAVE_MS = 1 ] && l="$l microsocks"
	echo $l
}

# check_targets: the target servers must outlive every run.
check_targets() {
	for p in $PID_SRV $PID_SRV_M; do
		kill -0 "$p" 2>/dev/null && continue
		wait "$p"
		say "run.sh: target server $p is gone (status $?):"
		tail -n 5 "$TMP/srv.log" "$TMP/srv-mptcp.log" >&2
		exit 1
	done
}

# run_sb LABEL ARGS...: one socksbench run; its key=value line in LINE.
run_sb() {
	lbl=$1
	shift
	# shellcheck disable=SC2046
	LINE=$("$SB" $(sb_args "$lbl") --label "$lbl" "$@" \
	    2>>"$TMP/sb.log" | tail -n 1)
	check_targets
}

# --- 1. throughput ----------------------------------------------------------

bench_throughput() {
	out=$RES/throughput.csv
	echo "label,streams,dir,repeat,mbps,seconds,errors" >"$out"
	labels=$(labels_for throughput)
	say "== throughput: $MB MiB per run, $REPEATS repeats: $labels"
	# One small transfer first, so mpgw-default measures the steady state
	# with the capability cache filled (its first connection to a new
	# destination is what mpgw-nocache measures every time).
	for lbl in $labels; do
		run_sb "$lbl" --mode throughput --streams 1 --bytes 1M
	done
	r=1
	while [ $r -le "$REPEATS" ]; do
		for dir in down up; do
			for st in 1 8; do
				for lbl in $labels; do
					run_sb "$lbl" --mode throughput \
					    --streams $st \
					    --bytes $((MB / st))M \
					    --dir $dir --time-limit 60
					line=$LINE
					printf '%s,%s,%s,%s,%s,%s,%s\n' \
					    "$lbl" $st $dir $r \
					    "$(kv "$line" mbps)" \
					    "$(kv "$line" seconds)" \
					    "$(kv "$line" errors)" >>"$out"
				done
			done
		done
		r=$((r + 1))
	done
	echo
	echo "Relay throughput, Mbit/s (median of $REPEATS; ratio = vs direct)"
	printf '%-15s' server
	for dir in down up; do
		for st in 1 8; do
			printf ' %12s %6s' "${dir}x$st" ratio
		done
	done
	echo
	for lbl in $labels; do
		printf '%-15s' "$lbl"
		for dir in down up; do
			for st in 1 8; do
				m=$(tp_median "$lbl" $st $dir)
				b=$(tp_median direct $st $dir)
				printf ' %12s %6s' "$m" "$(ratio "$m" "$b")"
				echo "throughput,$lbl,$dir,$st,mbps,$m" \
				    >>"$RES/summary.csv"
			done
		done
		echo
	done
	echo
	echo "Throughput targets (ratios of the medians above; met = cells" \
	    "at or above the target)"
	printf '%-34s %7s %7s %7s %7s %7s %5s\n' comparison downx1 downx8 \
	    upx1 upx8 target met
	tp_target "default path / TCP path" mpgw-default mpgw-tcp 0.9
	tp_target "  the same before the cache" mpgw-nocache mpgw-tcp 0.9
	tp_target "TCP path / Dante" mpgw-tcp dante 1.5
	tp_target "TCP path / HAProxy forced splice" mpgw-tcp haproxy-splice 1
	tp_target "  HAProxy splice-auto" mpgw-tcp haproxy-auto 1
	tp_target "MPTCP relay / direct MPTCP" mpgw-mptcp direct-mptcp 0.8
}

# tp_target NAME A B TARGET: one row of A/B medians per column, and how
# many reach TARGET; nothing when either label did not run.
tp_target() {
	[ "$(tp_median "$2" 1 down)" = - ] && return 0
	[ "$(tp_median "$3" 1 down)" = - ] && return 0
	printf '%-34s' "$1"
	met=0
	for dir in down up; do
		for st in 1 8; do
			q=$(ratio "$(tp_median "$2" $st $dir)" \
			    "$(tp_median "$3" $st $dir)")
			printf ' %7s' "$q"
			awk -v q="$q" -v t="$4" 'BEGIN { exit !(q != "-" &&
			    q + 0 >= t + 0) }' && met=$((met + 1))
			echo "throughput-target,$2/$3,$dir,$st,ratio,$q" \
			    >>"$RES/summary.csv"
		done
	done
	printf ' %7s %5s\n' ">= $4" "$met/4"
}

# tp_median LABEL STREAMS DIR
tp_median() {
	awk -F, -v l="$1" -v s="$2" -v d="$3" \
	    '$1 == l && $2 == s && $3 == d && $5 != "" { print $5 }' \
	    "$RES/throughput.csv" | median
}

# --- 2. connection rate -----------------------------------------------------

bench_connrate() {
	out=$RES/connrate.csv
	echo "label,repeat,cps,p50_us,p99_us,p999_us,conns,errors,syn_data\
,cpu_us_per_conn" >"$out"
	labels=$(labels_for connrate)
	say "== connrate: concurrency $CONC, ${SECS}s, $REPEATS repeats:" \
	    "$labels"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for lbl in $labels; do
			pid=$(sb_pid "$lbl")
			t0=$(cpu_ticks "$pid")
			run_sb "$lbl" --mode connrate \
			    --concurrency "$CONC" --duration "$SECS"
			line=$LINE
			cpu=$(awk -v a="$t0" -v b="$(cpu_ticks "$pid")" \
			    -v hz="$HZ" -v n="$(kv "$line" conns)" 'BEGIN {
			    if (a == "-" || n + 0 == 0) print "";
			    else printf "%.1f", (b - a) * 1e6 / hz / n }')
			echo "$lbl,$r,$(kv "$line" cps),$(kv "$line" p50_us)\
,$(kv "$line" p99_us),$(kv "$line" p999_us),$(kv "$line" conns)\
,$(kv "$line" errors),$(kv "$line" syn_data),$cpu" >>"$out"
		done
		r=$((r + 1))
	done
	echo
	syscalls_per_conn "$labels"
	echo "Connection rate at concurrency $CONC (median of $REPEATS;" \
	    "latency = connect to server FIN, us;"
	echo "ratio = conn/s vs microsocks; cpu_us = the proxy's CPU per" \
	    "connection; sys = its system calls per connection, perf stat" \
	    "over $SYS_N more)"
	printf '%-13s %9s %6s %7s %6s %9s %9s %9s %7s\n' server conn/s ratio \
	    cpu_us sys p50_us p99_us p999_us errors
	ref=$(cr_median microsocks 3)
	[ "$ref" = "-" ] && ref=$(cr_median direct 3)
	for lbl in $labels; do
		c=$(cr_median "$lbl" 3)
		printf '%-13s %9s %6s %7s %6s %9s %9s %9s %7s\n' "$lbl" "$c" \
		    "$(ratio "$c" "$ref")" "$(cr_median "$lbl" 10)" \
		    "$(sed -n "s/^$lbl //p" "$TMP/syscalls")" \
		    "$(cr_median "$lbl" 4)" \
		    "$(cr_median "$lbl" 5)" "$(cr_median "$lbl" 6)" \
		    "$(cr_median "$lbl" 8)"
		for k in 3:cps 4:p50_us 5:p99_us 6:p999_us 10:cpu_us; do
			echo "connrate,$lbl,,$CONC,${k#*:},$(cr_median "$lbl" \
			    "${k%%:*}")" >>"$RES/summary.csv"
		done
	done
}

# cpu_ticks ROOTPID: user + system clock ticks of the process tree, or "-".
cpu_ticks() {
	[ -n "$1" ] || { echo -; return 0; }
	for p in $(tree_pids "$1"); do
		# Fields after "pid (comm) ": utime and stime are 12 and 13,
		# cutime and cstime (children waited for: Dante's exited
		# processes) 14 and 15.
		sed 's/.*) //' "/proc/$p/stat" 2>/dev/null
	done | awk '{ t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

# syscalls_per_conn LABELS: system calls each proxy makes per connection
# (perf stat on raw_syscalls:sys_enter over SYS_N connections at
# concurrency 16), as "label value" lines in $TMP/syscalls.
syscalls_per_conn() {
	: >"$TMP/syscalls"
	command -v perf >/dev/null 2>&1 || return 0
	for lbl in $1; do
		pid=$(sb_pid "$lbl")
		[ -n "$pid" ] || continue
		pids=$(tree_pids "$pid" | paste -sd, -)
		# shellcheck disable=SC2046
		perf stat -x, -e raw_syscalls:sys_enter -p "$pids" \
		    -o "$TMP/perf-$lbl" -- "$SB" $(sb_args "$lbl") \
		    --concurrency 16 --mode connrate --count "$SYS_N" \
		    >/dev/null 2>>"$TMP/sb.log" || continue
		awk -F, -v l="$lbl" -v n="$SYS_N" '$3 ~ /sys_enter/ &&
		    $1 + 0 > 0 { printf "%s %.1f\n", l, $1 / n }' \
		    "$TMP/perf-$lbl" >>"$TMP/syscalls"
	done
}

# cr_median LABEL COLUMN
cr_median() {
	awk -F, -v l="$1" -v c="$2" '$1 == l && $c != "" { print $c }' \
	    "$RES/connrate.csv" | median
}

# --- 3. memory per held connection ----------------------------------------

# per_conn BEFORE AFTER N: (AFTER - BEFORE) / N with two decimals, or "-".
per_conn() {
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
	    if (n > 0) printf "%.2f\n", (b - a) / n; else print "-" }'
}

bench_memory() {
	out=$RES/memory.csv
	echo "label,asked,held,errors,procs,base_rss_kb,held_rss_kb\
,base_pss_kb,held_pss_kb,rss_kb_per_conn,pss_kb_per_conn" >"$out"
	n=$HOLD_N
	lim=$(ulimit -n)
	# A relay needs two descriptors per connection in one process.
	if [ "$lim" != unlimited ] && [ $((2 * n + 64)) -gt "$lim" ]; then
		n=$(((lim - 64) / 2))
		say "run.sh: open-file limit $lim (cannot raise it further):" \
		    "holding $n connections instead of $HOLD_N"
	fi
	labels=
	[ $HAVE_MPGW = 1 ] && labels="mpgw-tcp mpgw-mptcp"
	[ $HAVE_DANTE = 1 ] && labels="$labels dante"
	[ $HAVE_MS = 1 ] && labels="$labels microsocks"
	say "== memory: $n idle relayed connections each: $labels"
	for lbl in $labels; do
		mem_one "$lbl" "$n"
		line=$(tail -n 1 "$TMP/hold-$lbl.out")
		if [ "$(kv "$line" held)" != "$n" ]; then
			# Seen once right after connrate: upstream connects
			# failing for a while. Give the target a pause and
			# measure again; the table shows the second try.
			say "run.sh: $lbl held $(kv "$line" held) of $n;" \
			    "trying again in 20 s"
			sleep 20
			mem_one "$lbl" "$n"
		fi
	done
	mem_table "$n"
}

# mem_one LABEL N: hold N connections through LABEL; one row of memory.csv.
mem_one() {
	lbl=$1 n=$2
	out=$RES/memory.csv
	{
		pid=$(sb_pid "$lbl")
		set -- $(mem_kb "$pid")
		b_rss=$1 b_pss=$2
		hout=$TMP/hold-$lbl.out
		: >"$hout"
		# shellcheck disable=SC2046
		"$SB" $(sb_args "$lbl") --label "$lbl" --mode hold \
		    --conns "$n" --concurrency 256 --hold-secs 120 \
		    --time-limit 120 \
		    >"$hout" 2>>"$TMP/sb.log" &
		hp=$!
		i=0
		while [ ! -s "$hout" ] && kill -0 $hp 2>/dev/null &&
		    [ $i -lt 1200 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		sleep "$HOLD_SECS"
		set -- $(mem_kb "$pid")
		h_rss=$1 h_pss=$2 procs=$3
		kill -TERM $hp 2>/dev/null
		wait $hp 2>/dev/null
		line=$(tail -n 1 "$hout")
		held=$(kv "$line" held)
		[ -n "$held" ] || held=0
		per_r=$(per_conn "$b_rss" "$h_rss" "$held")
		per_p=$(per_conn "$b_pss" "$h_pss" "$held")
		echo "$lbl,$n,$held,$(kv "$line" errors),$procs,$b_rss,$h_rss\
,$b_pss,$h_pss,$per_r,$per_p" >>"$out"
		# Let the server tear the relays down before the next one.
		sleep 2
	}
	# A retried label: keep only its last row.
	awk -F, -v l="$lbl" 'NR == FNR { if ($1 == l) last = FNR; next }
	    $1 != l || FNR == last' "$out" "$out" >"$out.tmp" &&
	    mv "$out.tmp" "$out"
}

# mem_table N: the memory table from memory.csv.
mem_table() {
	n=$1
	out=$RES/memory.csv
	labels=$(awk -F, 'NR > 1 { print $1 }' "$out")
	echo
	echo "Memory per idle relayed connection (asked $n; KiB; PSS" \
	    "counts shared pages once across Dante's processes;" \
	    "ratio = PSS vs mpgw-tcp)"
	printf '%-13s %7s %7s %6s %11s %11s %6s\n' server held errors procs \
	    rss_kb/conn pss_kb/conn ratio
	ref=$(awk -F, '$1 == "mpgw-tcp" { print $11 }' "$out")
	for lbl in $labels; do
		awk -F, -v l="$lbl" -v ref="${ref:--}" '$1 == l {
		    r = "-"
		    if (ref != "-" && ref + 0 != 0 && $11 != "-")
			r = sprintf("%.2f", $11 / ref)
		    printf "%-13s %7s %7s %6s %11s %11s %6s\n", $1, $3, $4,
			$5, $10, $11, r }' "$out"
		awk -F, -v l="$lbl" '$1 == l {
		    printf "memory,%s,,%s,held,%s\n", l, $2, $3
		    printf "memory,%s,,%s,pss_kb_per_conn,%s\n", l, $2, $11 }' \
		    "$out" >>"$RES/summary.csv"
	done
}

# --- 5. UDP ASSOCIATE: datagram rate and added latency -------------------
#
# socksbench udp (udpbench.c) against its own UDP echo on 127.0.0.1:P_UDP:
# direct, mpgw (the upstream mptcp=off instance: UDP does not use it) and
# Dante (an instance of its own, conf/danted-udp.conf: the TCP benchmark's
# Dante allows connect only). Per payload size: the datagrams per second
# echoed with BENCH_UDP_WINDOW in flight for BENCH_UDP_SECS (median of
# BENCH_REPEATS) and the datagrams lost, then the round-trip p50 of
# BENCH_UDP_PINGS datagrams one at a time, and what a proxy adds to the
# direct p50. Each run is bounded (--time-limit).

P_UDP=21303
P_DANTE_UDP=21085
UDP_SIZES=${BENCH_UDP_SIZES:-64 1200}
UDP_SECS=${BENCH_UDP_SECS:-3}
UDP_WINDOW=${BENCH_UDP_WINDOW:-128}
UDP_PINGS=${BENCH_UDP_PINGS:-2000}

# udp_args LABEL: socksbench udp options that reach the echo through LABEL.
udp_args() {
	case $1 in
	direct) echo "--proxy none --target 127.0.0.1:$P_UDP" ;;
	mpgw) echo "--proxy socks5 --gw 127.0.0.1:$P_MPGW_T" \
	    "--target 127.0.0.1:$P_UDP" ;;
	dante) echo "--proxy socks5 --gw 127.0.0.1:$P_DANTE_UDP" \
	    "--target 127.0.0.1:$P_UDP" ;;
	esac
}

# udp_median FILE LABEL SIZE COLUMN
udp_median() {
	awk -F, -v l="$2" -v s="$3" -v c="$4" \
	    '$1 == l && $2 == s && $c != "" { print $c }' "$1" | median
}

bench_udp() {
	out=$RES/udp.csv
	lout=$RES/udp_latency.csv
	echo "label,size,repeat,pps,mbps,sent,lost,seconds" >"$out"
	echo "label,size,repeat,p50_us,p99_us,echoed,lost" >"$lout"
	"$SB" udp --serve 127.0.0.1:$P_UDP 2>"$TMP/udpecho.log" &
	pid_echo=$!
	started $pid_echo
	i=0
	while ! ss -Hlun "sport = :$P_UDP" 2>/dev/null | grep -q . &&
	    [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	labels=direct
	[ $HAVE_MPGW = 1 ] && labels="$labels mpgw"
	pid_dante=
	if command -v danted >/dev/null 2>&1; then
		danted -f "$CONF/danted-udp.conf" -p "$TMP/danted-udp.pid" \
		    2>"$TMP/danted-udp.log" &
		pid_dante=$!
		started $pid_dante
		if wait_port $P_DANTE_UDP; then
			labels="$labels dante"
		else
			say "run.sh: Dante (UDP) did not start; see" \
			    "$TMP/danted-udp.log"
		fi
	fi
	say "== udp: sizes $UDP_SIZES, window $UDP_WINDOW, ${UDP_SECS}s," \
	    "$REPEATS repeats, $UDP_PINGS pings: $labels"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for size in $UDP_SIZES; do
			for lbl in $labels; do
				# shellcheck disable=SC2046
				line=$("$SB" udp $(udp_args "$lbl") --label "$lbl" \
				    --mode rate --size "$size" \
				    --window "$UDP_WINDOW" \
				    --duration "$UDP_SECS" --time-limit 30 \
				    2>>"$TMP/sb.log" | tail -n 1)
				echo "$lbl,$size,$r,$(kv "$line" pps)\
,$(kv "$line" mbps),$(kv "$line" sent),$(kv "$line" lost)\
,$(kv "$line" seconds)" >>"$out"
				# shellcheck disable=SC2046
				line=$("$SB" udp $(udp_args "$lbl") --label "$lbl" \
				    --mode latency --size "$size" \
				    --count "$UDP_PINGS" --time-limit 30 \
				    2>>"$TMP/sb.log" | tail -n 1)
				echo "$lbl,$size,$r,$(kv "$line" p50_us)\
,$(kv "$line" p99_us),$(kv "$line" echoed),$(kv "$line" lost)" >>"$lout"
			done
		done
		r=$((r + 1))
	done
	[ -n "$pid_dante" ] && stop_pid "$pid_dante"
	stop_pid "$pid_echo"
	echo
	echo "UDP ASSOCIATE: datagrams/s echoed with $UDP_WINDOW in flight" \
	    "(median of $REPEATS; lost = sent, never echoed, summed;" \
	    "ratio = vs dante)"
	printf '%-8s' server
	for size in $UDP_SIZES; do
		printf ' %10s %6s %7s' "${size}B/s" ratio lost
	done
	echo
	for lbl in $labels; do
		printf '%-8s' "$lbl"
		for size in $UDP_SIZES; do
			m=$(udp_median "$out" "$lbl" "$size" 4)
			d=$(udp_median "$out" dante "$size" 4)
			lost=$(awk -F, -v l="$lbl" -v s="$size" \
			    '$1 == l && $2 == s { n += $7 } END { print n + 0 }' \
			    "$out")
			printf ' %10s %6s %7s' "$m" "$(ratio "$m" "$d")" "$lost"
			echo "udp,$lbl,,$size,pps,$m" >>"$RES/summary.csv"
			echo "udp,$lbl,,$size,lost,$lost" >>"$RES/summary.csv"
		done
		echo
	done
	echo
	echo "UDP ASSOCIATE: round trip of one datagram at a time, p50 us" \
	    "(median of $REPEATS; added = what the proxy adds to direct)"
	printf '%-8s' server
	for size in $UDP_SIZES; do
		printf ' %10s %8s' "${size}B p50" added
	done
	echo
	for lbl in $labels; do
		printf '%-8s' "$lbl"
		for size in $UDP_SIZES; do
			m=$(udp_median "$lout" "$lbl" "$size" 4)
			b=$(udp_median "$lout" direct "$size" 4)
			add=$(awk -v a="$m" -v b="$b" 'BEGIN {
			    if (a == "-" || b == "-") print "-";
			    else printf "%.1f\n", a - b }')
			printf ' %10s %8s' "$m" "$add"
			echo "udp,$lbl,,$size,p50_us,$m" >>"$RES/summary.csv"
			echo "udp,$lbl,,$size,added_us,$add" \
			    >>"$RES/summary.csv"
		done
		echo
	done
}

# --- 6. iperf3: the same relays, measured by a client nobody here wrote --------

# iperf3 -t IP_SECS (first second omitted) down (-R) and up: direct, over
# MPTCP at both ends (mptcpize), and through each relay, the SOCKS servers
# reached by proxychains4. mpgw-mptcp relays a TCP client to the MPTCP
# server: that is "MPTCP relay vs direct MPTCP".
IP_SECS=${BENCH_IPERF_SECS:-4}

# ip_cmd LABEL: the iperf3 client command line for LABEL, or nothing.
ip_cmd() {
	pc="proxychains4 -q -f $TMP/proxychains"
	case $1 in
	direct) echo "iperf3 -c 127.0.0.1 -p $P_IP" ;;
	direct-mptcp) echo "mptcpize run iperf3 -c 127.0.0.1 -p $P_IP_M" ;;
	mpgw-tcp) echo "$pc-$P_MPGW_T iperf3 -c 127.0.0.1 -p $P_IP" ;;
	mpgw-default) echo "$pc-$P_MPGW_M iperf3 -c 127.0.0.1 -p $P_IP" ;;
	mpgw-nocache) echo "$pc-$P_MPGW_N iperf3 -c 127.0.0.1 -p $P_IP" ;;
	mpgw-mptcp) echo "$pc-$P_MPGW_M iperf3 -c 127.0.0.1 -p $P_IP_M" ;;
	haproxy-splice) echo "iperf3 -c 127.0.0.1 -p $P_HA_I" ;;
	dante) echo "$pc-$P_DANTE iperf3 -c 127.0.0.1 -p $P_IP" ;;
	microsocks) echo "$pc-$P_MS iperf3 -c 127.0.0.1 -p $P_IP" ;;
	esac
}

bench_iperf3() {
	for t in iperf3 mptcpize proxychains4; do
		command -v $t >/dev/null 2>&1 && continue
		say "run.sh: $t missing (make deps-bench); skipping iperf3"
		return 0
	done
	for p in $P_MPGW_T $P_MPGW_M $P_MPGW_N $P_DANTE $P_MS; do
		printf 'strict_chain\nquiet_mode\n[ProxyList]\nsocks5 127.0.0.1 %s\n' \
		    "$p" >"$TMP/proxychains-$p"
	done
	iperf3 -s -p $P_IP >"$TMP/iperf3-srv.log" 2>&1 &
	started $!
	mptcpize run iperf3 -s -p $P_IP_M >"$TMP/iperf3-srv-mptcp.log" 2>&1 &
	started $!
	wait_port $P_IP && wait_port $P_IP_M ||
	    { say "run.sh: iperf3 servers did not start"; return 0; }
	labels="direct direct-mptcp"
	[ $HAVE_MPGW = 1 ] &&
	    labels="$labels mpgw-tcp mpgw-default mpgw-nocache mpgw-mptcp"
	[ $HAVE_HA = 1 ] && labels="$labels haproxy-splice"
	[ $HAVE_DANTE = 1 ] && labels="$labels dante"
	[ $HAVE_MS = 1 ] && labels="$labels microsocks"
	out=$RES/iperf3.csv
	echo "label,dir,repeat,mbps" >"$out"
	say "== iperf3: ${IP_SECS}s per run, $REPEATS repeats: $labels"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for dir in down up; do
			rev=
			[ $dir = down ] && rev=-R
			for lbl in $labels; do
				# shellcheck disable=SC2046
				m=$($(ip_cmd "$lbl") $rev -t "$IP_SECS" -O 1 -J \
				    2>>"$TMP/iperf3.log" | python3 -c '
import json, sys
try:
    e = json.load(sys.stdin)["end"]["sum_received"]
    print(round(e["bits_per_second"] / 1e6))
except Exception:
    pass')
				echo "$lbl,$dir,$r,$m" >>"$out"
			done
		done
		r=$((r + 1))
	done
	echo
	echo "iperf3 throughput, Mbit/s (median of $REPEATS; ratio = vs direct," \
	    "SOCKS servers through proxychains4)"
	printf '%-15s %9s %6s %9s %6s\n' server down ratio up ratio
	for lbl in $labels; do
		d=$(ip_median "$lbl" down) u=$(ip_median "$lbl" up)
		printf '%-15s %9s %6s %9s %6s\n' "$lbl" \
		    "$d" "$(ratio "$d" "$(ip_median direct down)")" \
		    "$u" "$(ratio "$u" "$(ip_median direct up)")"
		echo "iperf3,$lbl,down,1,mbps,$d" >>"$RES/summary.csv"
		echo "iperf3,$lbl,up,1,mbps,$u" >>"$RES/summary.csv"
	done
	echo
	printf '%-34s %7s %7s %7s\n' comparison down up target
	ip_target "default path / TCP path" mpgw-default mpgw-tcp 0.9
	ip_target "  the same before the cache" mpgw-nocache mpgw-tcp 0.9
	ip_target "TCP path / Dante" mpgw-tcp dante 1.5
	ip_target "TCP path / HAProxy forced splice" mpgw-tcp haproxy-splice 1
	ip_target "MPTCP relay / direct MPTCP" mpgw-mptcp direct-mptcp 0.8
}

# ip_median LABEL DIR
ip_median() {
	awk -F, -v l="$1" -v d="$2" '$1 == l && $2 == d && $4 != "" {
	    print $4 }' "$RES/iperf3.csv" | median
}

# ip_target NAME A B TARGET: A/B of the iperf3 medians, down and up.
ip_target() {
	d=$(ratio "$(ip_median "$2" down)" "$(ip_median "$3" down)")
	u=$(ratio "$(ip_median "$2" up)" "$(ip_median "$3" up)")
	[ "$d$u" = -- ] && return 0
	printf '%-34s %7s %7s %7s\n' "$1" "$d" "$u" ">= $4"
}

# --- 4. the shared state's cost (Redis) -------------------------------------

P_REDIS=21379
P_CONV_L=21095		# mpgw Convert, replay cache in-process
P_CONV_R=21096		# the same mpgw config plus [state] redis

# bench_redis: Convert connection rate (every message signed, so every
# accept checks a nonce) against two mpgw that differ only in [state]
# redis, runs alternating, one redis-server on loopback. What the Redis
# round trip (SET NX EX plus the block check, one script) costs per
# accepted connection.
bench_redis() {
	if ! command -v redis-server >/dev/null 2>&1; then
		say "run.sh: redis-server not installed; skipping redis"
		return 0
	fi
	if [ ! -x "$MPGW" ]; then
		say "run.sh: $MPGW not built; skipping redis"
		return 0
	fi
	redis-server --port $P_REDIS --bind 127.0.0.1 --save "" \
	    --appendonly no --dir "$TMP" --daemonize no >"$TMP/redis.log" 2>&1 &
	started $!
	wait_port $P_REDIS ||
	    { say "run.sh: redis-server did not start"; return 0; }
	for v in local redis; do
		port=$P_CONV_L
		[ $v = redis ] && port=$P_CONV_R
		{
			printf '[gateway]\nworkers = 2\nlog_level = info\n'
			printf 'access_log = off\n[socks5]\nlisten =\n'
			printf '[convert]\nlisten = 127.0.0.1:%s\n' $port
			printf 'require_auth = yes\ntfo_no_cookie = yes\n'
			printf 'keys = tests/bench/conf/convert-keys\n'
			printf '[upstream]\nmptcp = off\n'
			[ $v = redis ] && printf '[state]\nredis = %s\n' \
			    "redis://127.0.0.1:$P_REDIS"
		} >"$TMP/mpgw-conv-$v.ini"
		"$MPGW" -c "$TMP/mpgw-conv-$v.ini" 2>"$TMP/mpgw-conv-$v.log" &
		started $!
		wait_port $port ||
		    { say "run.sh: mpgw ($v) did not start"; return 0; }
	done
	i=0
	while [ "$(grep -c 'connected to redis' "$TMP/mpgw-conv-redis.log")" \
	    -lt 2 ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	out=$RES/redis.csv
	echo "label,repeat,cps,p50_us,p99_us,p999_us,conns,errors" >"$out"
	say "== redis: Convert connrate, concurrency $CONC, ${SECS}s," \
	    "$REPEATS repeats, in-process vs Redis"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for v in local redis; do
			port=$P_CONV_L
			[ $v = redis ] && port=$P_CONV_R
			LINE=$("$SB" --proxy convert --gw 127.0.0.1:$port \
			    --tfo-no-cookie \
			    --target 127.0.0.1:$P_SRV --user $CONV_USER \
			    --key "$CONV_KEY" --label "convert-$v" \
			    --mode connrate --concurrency "$CONC" \
			    --duration "$SECS" 2>>"$TMP/sb.log" | tail -n 1)
			check_targets
			echo "convert-$v,$r,$(kv "$LINE" cps)\
,$(kv "$LINE" p50_us),$(kv "$LINE" p99_us),$(kv "$LINE" p999_us)\
,$(kv "$LINE" conns),$(kv "$LINE" errors)" >>"$out"
		done
		r=$((r + 1))
	done
	echo
	echo "Convert connection rate, replay cache in-process vs in Redis" \
	    "(concurrency $CONC, median of $REPEATS; ratio = conn/s vs" \
	    "in-process)"
	printf '%-15s %9s %6s %9s %9s %9s %7s\n' server conn/s ratio p50_us \
	    p99_us p999_us errors
	ref=$(awk -F, '$1 == "convert-local" && $3 != "" { print $3 }' \
	    "$out" | median)
	for v in local redis; do
		rcol() {
			awk -F, -v l="convert-$v" -v c="$1" \
			    '$1 == l && $c != "" { print $c }' "$out" | median
		}
		c=$(rcol 3)
		printf '%-15s %9s %6s %9s %9s %9s %7s\n' "convert-$v" "$c" \
		    "$(ratio "$c" "$ref")" "$(rcol 4)" "$(rcol 5)" "$(rcol 6)" \
		    "$(rcol 8)"
		for k in 3:cps 4:p50_us 5:p99_us 6:p999_us; do
			echo "redis,convert-$v,,$CONC,${k#*:},$(rcol "${k%%:*}")" \
			    >>"$RES/summary.csv"
		done
	done
	errs=$(grep -c 'state-unavailable\|unreachable\|lost' \
	    "$TMP/mpgw-conv-redis.log")
	[ "$errs" = 0 ] || say "run.sh: the Redis mpgw logged $errs" \
	    "state error(s): see $TMP/mpgw-conv-redis.log"
}

# --- 7. TLS handshakes per CPU-second ----------------------------------------

# mpgw's TLS listener (SOCKS5 inside TLS; tls-login does the same handshake
# after the greeting) and, as the reference for what this OpenSSL costs by
# itself, openssl s_server -rev with the same P-256 certificate. TLS_PAR
# clients (tests/bench/tlsbench.py) make TLS_N handshakes each, full or
# resuming the previous ticket; the server's CPU time over the handshakes.
P_TLS=21097
P_SSRV=21098
TLS_N=${BENCH_TLS_N:-500}
TLS_PAR=${BENCH_TLS_PAR:-4}

bench_tls() {
	certs=$BUILD/certs
	sh "$TOP/tests/certs.sh" "$certs" ||
	    { say "run.sh: tests/certs.sh failed; skipping tls"; return 0; }
	printf '[gateway]\nworkers = 2\nlog_level = warn\naccess_log = off\n
[socks5]\nlisten = 127.0.0.1:21099\nmethods = none\n
[tls]\nlisten = 127.0.0.1:%s\ncert = %s/server.pem\nkey = %s/server.key\n' \
	    $P_TLS "$certs" "$certs" >"$TMP/mpgw-tls.ini"
	"$MPGW" -c "$TMP/mpgw-tls.ini" 2>"$TMP/mpgw-tls.log" &
	pid_mpgw=$!
	started $pid_mpgw
	openssl s_server -quiet -rev -naccept 1000000 -accept \
	    127.0.0.1:$P_SSRV -cert "$certs/server.pem" \
	    -key "$certs/server.key" </dev/null >/dev/null \
	    2>"$TMP/s_server.log" &
	pid_ssrv=$!
	started $pid_ssrv
	wait_port $P_TLS && wait_port $P_SSRV ||
	    { say "run.sh: TLS servers did not start"; return 0; }
	out=$RES/tls.csv
	echo "server,mode,repeat,handshakes,resumed,errors,cpu_s,per_cpu_s" \
	    >"$out"
	say "== tls: $TLS_PAR clients x $TLS_N handshakes, $REPEATS repeats"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for srv in mpgw s_server; do
			for mode in full resume; do
				tls_one $srv $mode $r >>"$out"
			done
		done
		r=$((r + 1))
	done
	echo
	echo "TLS 1.3 handshakes per second of the server's CPU (median of" \
	    "$REPEATS; P-256 certificate, X25519; $(openssl version | cut -d' ' -f1-2))"
	printf '%-10s %9s %9s %8s %12s\n' server full resumed ratio resumed/all
	for srv in mpgw s_server; do
		f=$(tls_median $srv full 8) m=$(tls_median $srv resume 8)
		printf '%-10s %9s %9s %8s %12s\n' $srv "$f" "$m" \
		    "$(ratio "$m" "$f")" "$(awk -F, -v s=$srv '$1 == s &&
		    $2 == "resume" { r += $5; h += $4 } END {
		    printf "%d/%d", r, h }' "$out")"
		echo "tls,$srv,,full,per_cpu_s,$f" >>"$RES/summary.csv"
		echo "tls,$srv,,resume,per_cpu_s,$m" >>"$RES/summary.csv"
	done
}

# tls_one SERVER MODE REPEAT: one measurement, one row of tls.csv.
tls_one() {
	case $1 in
	mpgw) port=$P_TLS pid=$pid_mpgw proto=socks ;;
	*) port=$P_SSRV pid=$pid_ssrv proto=rev ;;
	esac
	t0=$(cpu_ticks "$pid")
	cpids=
	i=0
	while [ $i -lt "$TLS_PAR" ]; do
		python3 "$HERE/tlsbench.py" $port "$BUILD/certs/ca.pem" \
		    "$TLS_N" "$2" $proto >"$TMP/tls-$i.out" 2>>"$TMP/tls.log" &
		cpids="$cpids $!"
		i=$((i + 1))
	done
	# shellcheck disable=SC2086
	wait $cpids
	t1=$(cpu_ticks "$pid")
	cat "$TMP"/tls-*.out | awk -v s="$1" -v m="$2" -v r="$3" \
	    -v t="$((t1 - t0))" -v hz="$HZ" '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2] }
	    } END {
		cpu = t / hz
		printf "%s,%s,%s,%d,%d,%d,%.2f,%s\n", s, m, r, v["handshakes"],
		    v["resumed"], v["errors"], cpu,
		    (cpu > 0 ? sprintf("%.0f", v["handshakes"] / cpu) : "")
	    }'
	rm -f "$TMP"/tls-*.out
}

# tls_median SERVER MODE COLUMN
tls_median() {
	awk -F, -v s="$1" -v m="$2" -v c="$3" '$1 == s && $2 == m &&
	    $c != "" { print $c }' "$RES/tls.csv" | median
}

# --- loopback part ----------------------------------------------------------

loopback_inner() {
	TMP=$(mktemp -d /tmp/mpgw-bench.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	ip link set lo up 2>/dev/null
	# Private namespace: these sysctls are ours alone.
	if [ "${BENCH_IN_NETNS:-0}" = 1 ]; then
		sysctl -qw net.ipv4.tcp_fastopen=3 net.core.somaxconn=4096 \
		    net.ipv4.tcp_max_syn_backlog=8192 2>/dev/null
	fi
	ulimit -n "$(ulimit -Hn)" 2>/dev/null
	mkdir -p "$RES"
	echo "section,label,dir,param,metric,value" >"$RES/summary.csv"
	start_servers
	{
		echo "# mpgw loopback benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "# host: $(uname -r), $(nproc) CPU(s)," \
		    "nofile $(ulimit -n); client, servers and target" \
		    "share the CPUs"
	} >&2
	for sec in $SECTIONS; do
		case $sec in
		throughput) bench_throughput ;;
		connrate) bench_connrate ;;
		memory) bench_memory ;;
		redis) bench_redis ;;
		udp) bench_udp ;;
		iperf3) bench_iperf3 ;;
		tls) bench_tls ;;
		*) say "run.sh: unknown section '$sec'" ;;
		esac
	done
	if [ -s "$TMP/sb.log" ] && grep -q 'errors:' "$TMP/sb.log"; then
		echo
		echo "socksbench errors (first of each run):"
		grep 'errors:' "$TMP/sb.log" | sort | uniq -c | head -n 20
	fi
}

part_loopback() {
	if [ "${BENCH_NETNS:-1}" = 1 ] && ip netns add "mpgw-bench-$$" \
	    2>/dev/null; then
		# shellcheck disable=SC2064
		trap "ip netns del mpgw-bench-$$ 2>/dev/null" EXIT
		trap 'exit 130' INT TERM
		BENCH_IN_NETNS=1 ip netns exec "mpgw-bench-$$" \
		    sh "$HERE/run.sh" "$BUILD" --loopback-inner
		rc=$?
		ip netns del "mpgw-bench-$$" 2>/dev/null
		trap - EXIT
		return $rc
	fi
	say "run.sh: no private network namespace; running in this one"
	(loopback_inner)
}

# --- lab part (tests/lab/lab.sh) -------------------------------------------
#
# Namespaces cli, gw, srv; links 1/2 cli<->gw, links 3/4 gw<->srv (see
# tests/lab/README.md). In srv: the socksbench target (:5201) and a tiny
# HTTP/1.0 file server (:8080, "/" = 2 bytes, "/big" = a random 64 MiB
# file), both MPTCP listeners that also take plain TCP. In gw: mpgw with
# upstream TCP (SOCKS5 none 1080, Convert 5124 tfo_no_cookie=yes), with
# upstream MPTCP (1081, 5125), and with logins (SOCKS5 userpass/tls-login
# 1082, Convert 5126 tfo_no_cookie=no). The clients run in cli.
# lab.sh down removes everything.

LAB_SFX=bench$$
LAB_UP=0
LAB_SRV_PORT=5201
LAB_HTTP_PORT=8080
LAB_PASS=benchpass
BIG_MB=${BENCH_FAIL_MB:-64}

lab() {
	MPGW_BUILD=$BUILD bash "$TOP/tests/lab/lab.sh" "$@"
}

# lab_helpers: the Python file server and the client-side sink.
lab_helpers() {
	cat >"$TMP/httpsrv.py" <<'PY'
# httpsrv.py IP PORT BIGFILE: HTTP/1.0 server, MPTCP listener (takes TCP).
# "/big" is BIGFILE, "/head/N" its first N bytes, anything else 2 bytes.
import os, socket, sys, threading
ip, port, big = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
except OSError:
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((ip, port))
ls.listen(128)
def serve(c):
    try:
        req = b""
        while b"\r\n\r\n" not in req and len(req) < 8192:
            d = c.recv(4096)
            if not d:
                return
            req += d
        path = req.split(b" ", 2)[1] if req.count(b" ") >= 2 else b"/"
        n = -1
        if path == b"/big":
            n = os.path.getsize(big)
        elif path.startswith(b"/head/") and path[6:].isdigit():
            n = min(int(path[6:]), os.path.getsize(big))
        if n >= 0:
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % n)
            with open(big, "rb") as f:
                while n > 0:
                    b = f.read(min(n, 262144))
                    if not b:
                        break
                    c.sendall(b)
                    n -= len(b)
        else:
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n"
                      b"Connection: close\r\n\r\nok")
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
	cat >"$TMP/sink.py" <<'PY'
# sink.py [AT_BYTES CMD...]: read stdin to EOF; sha256, bytes, seconds and
# the longest gap between two reads after the first byte (the stall), and
# gaps_ms, the sum of the gaps of 150 ms or more; runs CMD once when
# AT_BYTES bytes have arrived (cut_s: when). With SINK_TRACE set,
# "seconds bytes" lines go to that file (at most one per 10 ms).
import hashlib, os, subprocess, sys, time
at = int(sys.argv[1]) if len(sys.argv) > 1 else -1
cmd = sys.argv[2:]
h = hashlib.sha256()
n = 0; t0 = time.monotonic(); first = last = None; gap = 0.0; cut = None
gaps = 0.0
trace = open(os.environ["SINK_TRACE"], "w") if os.environ.get("SINK_TRACE") \
    else None
tw = -1.0
while True:
    b = os.read(0, 65536)
    now = time.monotonic()
    if not b:
        break
    if first is None:
        first = now
    else:
        gap = max(gap, now - last)
        if now - last >= 0.15:
            gaps += now - last
    last = now
    h.update(b); n += len(b)
    if trace and now - tw >= 0.01:
        trace.write("%.4f %d\n" % (now - t0, n)); tw = now
    if at >= 0 and cut is None and n >= at:
        cut = now
        subprocess.run(cmd)
end = last if last is not None else time.monotonic()
if trace:
    trace.write("%.4f %d\n" % (end - t0, n)); trace.close()
print("bytes=%d sha256=%s seconds=%.3f stall_ms=%.0f gaps_ms=%.0f cut_s=%s"
      % (n, h.hexdigest(), end - t0, gap * 1000, gaps * 1000,
         "%.3f" % (cut - t0) if cut is not None else "-"))
PY
}

# lab_start UP-OPTIONS...: a fresh lab plus targets and the gateways.
lab_start() {
	lab_stop
	if ! lab up --suffix "$LAB_SFX" "$@" >"$TMP/lab-up.log" 2>&1; then
		say "run.sh: lab.sh up failed:"
		tail -n 5 "$TMP/lab-up.log" >&2
		return 1
	fi
	LAB_UP=1
	eval "$(lab env --suffix "$LAB_SFX")"
	ip netns exec "$LAB_NS_SRV" "$SB" --serve \
	    "$LAB_SRV_IP3:$LAB_SRV_PORT" --mptcp 2>>"$TMP/lab-srv.log" &
	ip netns exec "$LAB_NS_SRV" python3 "$TMP/httpsrv.py" "$LAB_SRV_IP3" \
	    $LAB_HTTP_PORT "$TMP/big.bin" 2>>"$TMP/lab-http.log" &
	for v in tcp mptcp; do
		(cd "$TOP" && exec ip netns exec "$LAB_NS_GW" "$MPGW" \
		    -c "$CONF/lab-mpgw-$v.ini") 2>>"$TMP/lab-mpgw-$v.log" &
	done
	(cd "$TOP" && exec ip netns exec "$LAB_NS_GW" "$MPGW" \
	    -c "$TMP/lab-mpgw-auth.ini") 2>>"$TMP/lab-mpgw-auth.log" &
	i=0
	while [ $i -lt 200 ]; do
		if ip netns exec "$LAB_NS_GW" ss -Hltn 'sport = :1081' |
		    grep -q . && ip netns exec "$LAB_NS_GW" ss -Hltn \
		    'sport = :1082' | grep -q . &&
		    ip netns exec "$LAB_NS_GW" ss -Hltn 'sport = :1080' |
		    grep -q . && ip netns exec "$LAB_NS_SRV" ss -Hltn \
		    "sport = :$LAB_SRV_PORT" | grep -q . &&
		    ip netns exec "$LAB_NS_SRV" ss -Hltn \
		    "sport = :$LAB_HTTP_PORT" | grep -q .; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	say "run.sh: lab servers did not start (see $TMP/lab-*.log)"
	tail -n 3 "$TMP"/lab-*.log >&2
	return 1
}

# lab_stop: lab.sh down also ends every process inside the namespaces.
lab_stop() {
	[ $LAB_UP = 1 ] || return 0
	lab down --suffix "$LAB_SFX" >/dev/null 2>&1
	LAB_UP=0
}

# lab_args LABEL: socksbench options from cli to the target via LABEL.
lab_args() {
	t="--target $LAB_SRV_IP3:$LAB_SRV_PORT"
	k="--user $CONV_USER --key $CONV_KEY"
	case $1 in
	direct) echo "--proxy none $t" ;;
	mpgw-tcp | none) echo "--proxy socks5 --gw $LAB_GW_IP1:1080 $t" ;;
	mpgw-mptcp) echo "--proxy socks5 --gw $LAB_GW_IP1:1081 $t" ;;
	userpass) echo "--proxy socks5 --gw $LAB_GW_IP1:1082 $t" \
	    "--user bench --pass $LAB_PASS" ;;
	implicit) echo "--proxy convert --silent --gw $LAB_GW_IP1:5124 $t $k" \
	    "--tfo-no-cookie" ;;
	implicit-first) echo "--proxy convert --silent" \
	    "--gw $LAB_GW_IP1:5126 $t $k" ;;
	esac
}

# lab_sb LABEL ARGS...: one socksbench run in cli; prints its result line.
lab_sb() {
	lbl=$1
	shift
	# shellcheck disable=SC2046
	ip netns exec "$LAB_NS_CLI" "$SB" $(lab_args "$lbl") --label "$lbl" \
	    "$@" 2>>"$TMP/sb.log" | tail -n 1
}

# shim_env LABEL: the environment for build/mpgw-run (curl via the shim).
shim_env() {
	case $1 in
	none) echo "MPGW_GATEWAY=$LAB_GW_IP1:1080 MPGW_METHOD=none" ;;
	userpass) echo "MPGW_GATEWAY=$LAB_GW_IP1:1082 MPGW_METHOD=userpass" \
	    "MPGW_USER=bench MPGW_PASSWORD=$LAB_PASS" ;;
	tls-login) echo "MPGW_GATEWAY=$LAB_GW_IP1:1082 MPGW_METHOD=tls-login" \
	    "MPGW_USER=bench MPGW_PASSWORD=$LAB_PASS" \
	    "MPGW_CA=$BUILD/certs/ca.pem MPGW_SERVERNAME=localhost" ;;
	implicit) echo "MPGW_GATEWAY=$LAB_GW_IP1:5124 MPGW_MODE=implicit" \
	    "MPGW_USER=$CONV_USER MPGW_KEY=$CONV_KEY MPGW_TFO_NO_COOKIE=on" ;;
	implicit-first) echo "MPGW_GATEWAY=$LAB_GW_IP1:5126" \
	    "MPGW_MODE=implicit MPGW_USER=$CONV_USER MPGW_KEY=$CONV_KEY" ;;
	esac
}

# lab_curl LABEL URL: one curl in cli (through the shim unless direct);
# prints time_starttransfer in microseconds, or nothing on failure.
lab_curl() {
	if [ "$1" = direct ]; then
		ip netns exec "$LAB_NS_CLI" curl -s -o /dev/null --max-time 10 \
		    -w '%{time_starttransfer}\n' "$2" 2>>"$TMP/curl.log"
	else
		# shellcheck disable=SC2046
		ip netns exec "$LAB_NS_CLI" env $(shim_env "$1") \
		    "$BUILD/mpgw-run" curl -s -o /dev/null --max-time 10 \
		    -w '%{time_starttransfer}\n' "$2" 2>>"$TMP/curl.log"
	fi | awk '$1 + 0 > 0 { printf "%.1f\n", $1 * 1e6 }'
}

# p50 of the second column of the curl samples for one label.
pct() {
	sort -g | awk -v p="$1" '{ v[NR] = $1 } END {
	    if (NR == 0) { print "-"; exit }
	    k = int(p * NR + 0.999999); if (k < 1) k = 1; print v[k] }'
}

# --- lab 1. aggregation ------------------------------------------------------
#
# Two gw<->srv links (rate1+rate2 Mbit/s, one-way delay1/delay2 ms), one
# 16 MiB download through mpgw: upstream TCP (link 3 only) vs upstream MPTCP
# (both links). The kernel's simult_flows selftest accepts about 85% of
# the combined rate.
AGG_CASES=${BENCH_AGG_CASES:-10:10:0:0 15:5:1:25}
AGG_MB=${BENCH_AGG_MB:-16}

lab_aggregation() {
	out=$RES/lab_aggregation.csv
	echo "case,label,repeat,rate1,rate2,delay1,delay2,mbps,seconds,errors" \
	    >"$out"
	for c in $AGG_CASES; do
		set -- $(echo "$c" | tr : ' ')
		r1=$1 r2=$2 d1=$3 d2=$4
		say "== lab: aggregation, links $r1+$r2 Mbit/s, one-way" \
		    "$d1/$d2 ms, ${AGG_MB} MiB download, $REPEATS repeats"
		lab_start --rate1 "$r1" --rate2 "$r2" --delay1 "$d1" \
		    --delay2 "$d2" || continue
		r=1
		while [ $r -le "$REPEATS" ]; do
			for lbl in mpgw-tcp mpgw-mptcp; do
				line=$(lab_sb "$lbl" --mode throughput \
				    --streams 1 --bytes "${AGG_MB}M" --dir down \
				    --time-limit 60)
				echo "$c,$lbl,$r,$r1,$r2,$d1,$d2,$(kv "$line" \
				    mbps),$(kv "$line" seconds),$(kv "$line" \
				    errors)" >>"$out"
			done
			r=$((r + 1))
		done
		lab_stop
	done
	echo
	echo "Lab aggregation: one ${AGG_MB} MiB download through mpgw, two" \
	    "gw<->srv links (median of $REPEATS;"
	echo "  of_sum = goodput / (rate1 + rate2); the kernel's simult_flows" \
	    "selftest accepts ~0.85; x_tcp = MPTCP / TCP upstream)"
	printf '%-22s %-11s %8s %7s %6s\n' "links (Mbit/s, ms)" upstream \
	    Mbit/s of_sum x_tcp
	for c in $AGG_CASES; do
		set -- $(echo "$c" | tr : ' ')
		r1=$1 r2=$2 d1=$3 d2=$4
		ref=$(awk -F, -v c="$c" '$1 == c && $2 == "mpgw-tcp" &&
		    $8 != "" { print $8 }' "$out" | median)
		for lbl in mpgw-tcp mpgw-mptcp; do
			m=$(awk -F, -v c="$c" -v l="$lbl" '$1 == c &&
			    $2 == l && $8 != "" { print $8 }' "$out" | median)
			printf '%-22s %-11s %8s %7s %6s\n' \
			    "$r1+$r2, $d1/$d2" "${lbl#mpgw-}" "$m" \
			    "$(ratio "$m" $((r1 + r2)))" "$(ratio "$m" "$ref")"
			echo "lab_aggregation,$lbl,down,$c,mbps,$m" \
			    >>"$RES/summary.csv"
			echo "lab_aggregation,$lbl,down,$c,of_sum,$(ratio "$m" \
			    $((r1 + r2)))" >>"$RES/summary.csv"
		done
	done
}

# --- lab 2. failover ------------------------------------------------------
#
# A 64 MiB HTTP download (curl through mpgw's SOCKS5, into sink.py in cli);
# when half of it has arrived, sink.py sets link 3 (the first subflow's)
# down in gw. Reported: completed with the right sha256, and the stall =
# the longest gap between two reads on the client. Upstream TCP cannot
# survive this (it is run once, with a 10 s no-progress abort).
FAIL_RATE=${BENCH_FAIL_RATE:-50}
FAIL_DELAY=${BENCH_FAIL_DELAY:-5}

lab_failover() {
	half=$((BIG_MB * 1048576 / 2))
	say "== lab: failover, links ${FAIL_RATE}+${FAIL_RATE} Mbit/s," \
	    "${FAIL_DELAY} ms; link 3 down after $((BIG_MB / 2)) of ${BIG_MB} MiB"
	out=$RES/lab_failover.csv
	echo "label,repeat,completed,sha256_ok,bytes,seconds,mbps,stall_ms" \
	    >"$out"
	for lbl in mpgw-mptcp mpgw-tcp; do
		n=$REPEATS
		[ "$lbl" = mpgw-tcp ] && n=1
		port=1081
		[ "$lbl" = mpgw-tcp ] && port=1080
		r=1
		while [ $r -le "$n" ]; do
			lab_start --rate1 "$FAIL_RATE" --rate2 "$FAIL_RATE" \
			    --delay1 "$FAIL_DELAY" --delay2 "$FAIL_DELAY" ||
			    return 0
			line=$(ip netns exec "$LAB_NS_CLI" sh -c "curl -s \
			    --socks5 $LAB_GW_IP1:$port --max-time 120 \
			    --speed-limit 1 --speed-time 10 \
			    http://$LAB_SRV_IP3:$LAB_HTTP_PORT/big |
			    python3 '$TMP/sink.py' $half ip -n '$LAB_NS_GW' \
			    link set '$LAB_GW_IF3' down" 2>>"$TMP/curl.log")
			b=$(kv "$line" bytes)
			s=$(kv "$line" seconds)
			ok=no
			[ "$(kv "$line" sha256)" = "$BIG_SHA" ] && ok=yes
			done_=no
			[ "${b:-0}" = "$BIG_BYTES" ] && done_=yes
			mbps=$(awk -v b="${b:-0}" -v s="${s:-0}" 'BEGIN {
			    if (s > 0) printf "%.1f\n", b * 8 / s / 1e6
			    else print "-" }')
			echo "$lbl,$r,$done_,$ok,$b,$s,$mbps,$(kv "$line" \
			    stall_ms)" >>"$out"
			lab_stop
			r=$((r + 1))
		done
	done
	echo
	echo "Lab failover: ${BIG_MB} MiB download through mpgw, links" \
	    "${FAIL_RATE}+${FAIL_RATE} Mbit/s, RTT $((2 * FAIL_DELAY)) ms;"
	echo "  link 3 down at $((BIG_MB / 2)) MiB (median of runs; stall =" \
	    "longest gap without progress, client side)"
	printf '%-11s %5s %9s %10s %8s %8s %9s\n' upstream runs completed \
	    sha256_ok seconds Mbit/s stall_ms
	for lbl in mpgw-mptcp mpgw-tcp; do
		awk -F, -v l="$lbl" '$1 == l { n++; c += ($3 == "yes");
		    k += ($4 == "yes") } END { printf "%d %d %d\n", n, c, k }' \
		    "$out" | {
			read -r n c k
			col() { awk -F, -v l="$lbl" -v c="$1" '$1 == l &&
			    $3 == "yes" { print $c }' "$out" | median; }
			st=$(awk -F, -v l="$lbl" '$1 == l { print $8 }' \
			    "$out" | median)
			[ "$c" = 0 ] && st=">10000 (aborted)"
			printf '%-11s %5s %9s %10s %8s %8s %9s\n' \
			    "${lbl#mpgw-}" "$n" "$c/$n" "$k/$n" "$(col 6)" \
			    "$(col 7)" "$st"
			echo "lab_failover,$lbl,down,$FAIL_RATE,completed,$c/$n"
			echo "lab_failover,$lbl,down,$FAIL_RATE,stall_ms,$st"
		} >>"$TMP/fo.txt"
	done
	grep -v '^lab_failover' "$TMP/fo.txt"
	grep '^lab_failover' "$TMP/fo.txt" >>"$RES/summary.csv"
	rm -f "$TMP/fo.txt"
}

# --- lab 3. time to first byte vs client RTT ------------------------------
#
# client<->gw one-way delay D (RTT C = 2D), gw<->srv RTT S = 10 ms on both
# links, --route so that "direct" goes through gw as a router. socksbench
# (target's Q: 8-byte answer) and curl %{time_starttransfer} (HTTP, 2-byte
# body; through build/mpgw-run except direct). Implicit = Convert with the
# Silent TLV: "implicit" sends cookieless SYN data (socksbench
# --tfo-no-cookie, the shim's MPGW_TFO_NO_COOKIE=on) to the listener with
# tfo_no_cookie = yes, so the data rides in the first SYN as with a cached
# cookie; "implicit-first" uses a listener that requires a cookie, with
# cli's tcp_metrics flushed before every request: the SYN data is not
# accepted and is sent again after the handshake (cli's tcp_fastopen 0x5
# sends SYN data without a cookie whatever the socket asks, so each such
# connect is a first contact).
TTFB_MODES="direct none userpass tls-login implicit implicit-first"

# model TOOL MODE C S: round trips to the first byte in ms (C, S = RTTs).
# curl connects, then writes: in implicit mode its request is not in the
# SYN (only the Convert message is), so it pays one more C, and the
# gateway's upstream connect overlaps it: 2C+S (when S <= C).
model() {
	awk -v t="$1" -v m="$2" -v c="$3" -v s="$4" 'BEGIN {
	    if (m == "direct") v = 2 * (c + s)
	    else if (m == "none") v = 4 * c + 2 * s
	    else if (m == "userpass") v = 5 * c + 2 * s
	    else if (m == "tls-login") v = 6 * c + 2 * s
	    else if (m == "implicit" && t == "curl")
		v = 2 * c + (s > c ? s + (s - c) : s)
	    else if (m == "implicit") v = c + 2 * s
	    else if (m == "implicit-first") v = 2 * c + 2 * s
	    printf "%d\n", v }'
}

lab_ttfb_rtt() {
	delays=${BENCH_LAB_DELAYS:-5 20 50}
	n=${BENCH_LAB_TTFB_N:-15}
	url=http://$LAB_SRV_IP3:$LAB_HTTP_PORT/
	say "== lab: TTFB vs client RTT, cdelay $delays ms, gw<->srv RTT" \
	    "10 ms, $n requests per mode and tool"
	out=$RES/lab_ttfb.csv
	echo "tool,label,cdelay_ms,rtt_c_ms,rtt_s_ms,n,p50_us,p99_us,errors\
,syn_data" >"$out"
	raw=$RES/lab_ttfb_raw.csv
	echo "tool,label,rtt_c_ms,sample,ttfb_us" >"$raw"
	for d in $delays; do
		lab_start --route --cdelay "$d" --delay1 5 --delay2 5 ||
		    return 0
		url=http://$LAB_SRV_IP3:$LAB_HTTP_PORT/
		# One warm-up each (ARP, the gateway's password cache).
		for lbl in $TTFB_MODES; do
			lab_curl "$lbl" "$url" >/dev/null
		done
		for lbl in $TTFB_MODES; do
			[ "$lbl" = tls-login ] && continue
			[ "$lbl" = implicit-first ] &&
			    ip -n "$LAB_NS_CLI" tcp_metrics flush 2>/dev/null
			line=$(lab_sb "$lbl" --mode ttfb --count "$n" \
			    --timeout 10)
			echo "socksbench,$lbl,$d,$((2 * d)),10,$n,$(kv "$line" \
			    p50_us),$(kv "$line" p99_us),$(kv "$line" errors)\
,$(kv "$line" syn_data)" >>"$out"
		done
		for lbl in $TTFB_MODES; do
			: >"$TMP/curl-$lbl"
			i=1
			while [ $i -le "$n" ]; do
				[ "$lbl" = implicit-first ] &&
				    ip -n "$LAB_NS_CLI" tcp_metrics flush \
				    2>/dev/null
				v=$(lab_curl "$lbl" "$url")
				[ -n "$v" ] && echo "$v" >>"$TMP/curl-$lbl" &&
				    echo "curl,$lbl,$((2 * d)),$i,$v" >>"$raw"
				i=$((i + 1))
			done
			got=$(wc -l <"$TMP/curl-$lbl")
			echo "curl,$lbl,$d,$((2 * d)),10,$n,$(pct 0.5 \
			    <"$TMP/curl-$lbl"),$(pct 0.99 <"$TMP/curl-$lbl")\
,$((n - got))," >>"$out"
		done
		lab_stop
	done
	echo
	echo "Lab TTFB p50, ms (C = client<->gw RTT, S = gw<->srv RTT = 10 ms;" \
	    "x = vs direct; model = round trips:"
	echo "  direct 2(C+S), none 4C+2S, userpass 5C+2S, tls-login ~6C+2S," \
	    "implicit C+2S (curl: 2C+S, its request follows the"
	echo "  handshake), implicit-first 2C+2S)"
	echo "  userpass/tls-login: the gateway caches a verified password for" \
	    "auth.auth_cache_ttl (300 s),"
	echo "  so only the warm-up request paid the yescrypt hash; implicit =" \
	    "data in the first SYN (as with a cached TFO cookie)"
	for tool in socksbench curl; do
		echo
		printf '%-10s %-15s' "$tool" mode
		for d in $delays; do
			printf ' %17s' "C=$((2 * d)): p50 x model"
		done
		echo
		for lbl in $TTFB_MODES; do
			grep -q "^$tool,$lbl," "$out" || continue
			printf '%-10s %-15s' "" "$lbl"
			for d in $delays; do
				v=$(awk -F, -v t="$tool" -v l="$lbl" -v d="$d" \
				    '$1 == t && $2 == l && $3 == d { print $7 }' \
				    "$out")
				b=$(awk -F, -v t="$tool" -v d="$d" '$1 == t &&
				    $2 == "direct" && $3 == d { print $7 }' "$out")
				ms=$(awk -v v="${v:--}" 'BEGIN { if (v == "-" ||
				    v == "") print "-"; else printf "%.1f\n",
				    v / 1000 }')
				printf ' %7s %4s %4s' "$ms" \
				    "$(ratio "${v:--}" "${b:--}")" \
				    "$(model "$tool" "$lbl" $((2 * d)) 10)"
				echo "lab_ttfb,$lbl,$tool,$((2 * d)),p50_us,${v:--}" \
				    >>"$RES/summary.csv"
			done
			echo
		done
	done
	e=$(awk -F, 'NR > 1 && $9 != "" && $9 != 0' "$out")
	if [ -n "$e" ]; then
		echo "(rows with errors:)"
		echo "$e"
	fi
	awk -F, '$1 == "socksbench" && $2 ~ /^implicit/ {
	    printf "  socksbench %s C=%s: SYN data accepted on %s of %s\n",
		$2, $4, $10, $6 }' "$out"
}

# --- lab 4-6. two tiers: edge -> concentrator -> server ---------------------
#
# lab.sh --far: cli --link 1--> gw (the edges) ==links 3+4==> srv (the
# concentrator) --link 5--> far (the servers: plain TCP, MPTCP disabled,
# no route to them from cli or gw). README "Two tiers", issue 9.
#   gw:  SOCKS5 none on 10.77.1.2, every request one connection to the
#        concentrator's Convert listener 10.77.3.3:5124, the message in the
#        SYN (Fast Open with the cookie cached by an earlier connection):
#        1090 upstream MPTCP, 1091 the same with socks5.early_reply,
#        1092 upstream TCP, 1093 TCP with early_reply (conf/lab-tier-*.ini).
#   srv: conf/lab-tier-conc.ini (SOCKS5 10.77.3.3:1080, Convert 5124 with
#        cookies), conf/lab-tier-conc-nocookie.ini (Convert 5125 with
#        tfo_no_cookie = yes, for the "implicit" clients, which send
#        cookieless SYN data).
#   far: the socksbench target (:5201) and httpsrv.py (:8080).
# The TTFB section adds --route: gw forwards, so that a client in cli is
# one WAN round trip (C + W) away from the concentrator's own listeners
# (rows "SOCKS5 at the concentrator" and "implicit"), the way a user of a
# concentrator without an edge would be.
TIER_EDGES="edge edge-early edge-tcp edge-tcp-early"
TIER_REPEATS=${BENCH_TIER_REPEATS:-5}

# tier_port LABEL: the edge's SOCKS5 port (edge-nosyn: the edge's, run
# with client Fast Open off in gw).
tier_port() {
	case $1 in
	edge | edge-nosyn) echo 1090 ;;
	edge-early) echo 1091 ;;
	edge-tcp) echo 1092 ;;
	edge-tcp-early) echo 1093 ;;
	esac
}

# tier_start UP-OPTIONS...: a fresh --far lab, the servers in far, the
# two concentrator processes in srv and the four edges in gw.
tier_start() {
	lab_stop
	if ! lab up --suffix "$LAB_SFX" --far "$@" >"$TMP/lab-up.log" 2>&1
	then
		say "run.sh: lab.sh up --far failed:"
		tail -n 5 "$TMP/lab-up.log" >&2
		return 1
	fi
	LAB_UP=1
	eval "$(lab env --suffix "$LAB_SFX")"
	ip netns exec "$LAB_NS_FAR" "$SB" --serve \
	    "$LAB_FAR_IP5:$LAB_SRV_PORT" 2>>"$TMP/tier-srv.log" &
	ip netns exec "$LAB_NS_FAR" python3 "$TMP/httpsrv.py" "$LAB_FAR_IP5" \
	    $LAB_HTTP_PORT "$TMP/big.bin" 2>>"$TMP/tier-http.log" &
	for v in conc conc-nocookie; do
		(cd "$TOP" && exec ip netns exec "$LAB_NS_SRV" "$MPGW" \
		    -c "$CONF/lab-tier-$v.ini") 2>>"$TMP/tier-$v.log" &
	done
	for v in $TIER_EDGES; do
		(cd "$TOP" && exec ip netns exec "$LAB_NS_GW" "$MPGW" \
		    -c "$CONF/lab-tier-$v.ini") 2>>"$TMP/tier-$v.log" &
	done
	i=0
	while [ $i -lt 200 ]; do
		ok=1
		for p in 1090 1091 1092 1093; do
			ip netns exec "$LAB_NS_GW" ss -Hltn "sport = :$p" |
			    grep -q . || ok=0
		done
		for p in 1080 5124 5125; do
			ip netns exec "$LAB_NS_SRV" ss -Hltn "sport = :$p" |
			    grep -q . || ok=0
		done
		for p in $LAB_SRV_PORT $LAB_HTTP_PORT; do
			ip netns exec "$LAB_NS_FAR" ss -Hltn "sport = :$p" |
			    grep -q . || ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	say "run.sh: tier lab servers did not start (see $TMP/tier-*.log)"
	tail -n 3 "$TMP"/tier-*.log >&2
	return 1
}

# tier_access LABEL KEY: KEY of the last access line of LABEL's gateway.
tier_access() {
	line=$(grep ' access ' "$TMP/tier-${1%-nosyn}.log" 2>/dev/null |
	    tail -n 1)
	kv "$line" "$2"
}

# tier_fetch LABEL PATH MAXTIME [AT_BYTES CMD...]: one curl --socks5 in
# cli through edge LABEL to far's HTTP server, into sink.py; prints its
# result line plus wall_s (curl's start to its end) and mptcp_retrans (the
# concentrator's MPTcpExt MPTCPRetrans during the run). curl gives up
# after MAXTIME seconds, or 10 s without a byte (--speed-time).
tier_fetch() {
	lbl=$1 path=$2 mt=$3
	shift 3
	x0=$(srv_counter MPTCPRetrans)
	t0=$(date +%s.%N)
	l=$(ip netns exec "$LAB_NS_CLI" sh -c "curl -s --socks5 \
	    $LAB_GW_IP1:$(tier_port "$lbl") --max-time $mt --speed-limit 1 \
	    --speed-time 10 http://$LAB_FAR_IP5:$LAB_HTTP_PORT$path |
	    python3 '$TMP/sink.py' $*" 2>>"$TMP/curl.log")
	t1=$(date +%s.%N)
	x1=$(srv_counter MPTCPRetrans)
	echo "$l wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {
	    printf "%.3f", b - a }') mptcp_retrans=$((x1 - x0))"
}

# tier_warm: one small request through the MPTCP edge, so that gw's
# kernel holds the concentrator's Fast Open cookie and every later via SYN
# carries the Convert message and the client's first bytes, as on an edge
# in service (a fresh lab's first connection is a first contact).
tier_warm() {
	ip netns exec "$LAB_NS_CLI" curl -s -o /dev/null --max-time 10 \
	    --socks5 "$LAB_GW_IP1:$(tier_port edge)" \
	    "http://$LAB_FAR_IP5:$LAB_HTTP_PORT/" 2>>"$TMP/curl.log"
}

# --- lab 4. two tiers: time to first byte ---------------------------------
#
# C = client<->edge RTT (--cdelay 0.5: 1 ms), W = edge<->concentrator RTT
# (BENCH_TIER_WAN, both links), S = concentrator<->server RTT
# (BENCH_TIER_FDELAY one way: 5 ms). Modes (client in cli):
#   conc-socks5     SOCKS5 straight to the concentrator (10.77.3.3:1080)
#                   across gw's routing: one WAN round trip away
#   edge            SOCKS5 at the edge, via the concentrator (MPTCP)
#   edge-early      the same with socks5.early_reply = yes
#   edge-tcp        edge with upstream.mptcp = off (reference)
#   edge-tcp-early  edge-tcp with early_reply
#   implicit        Convert in the SYN straight to the concentrator
#                   (10.77.3.3:5125, tfo_no_cookie = yes): socksbench
#                   --proxy convert --silent, curl through build/mpgw-run
#                   with MPGW_MODE=implicit
# socksbench (target's Q, 8-byte answer; one process per request) and curl
# %{time_starttransfer} (HTTP, 2-byte body; SOCKS5 rows through the shim in
# explicit mode, method none). One warm-up request per mode and tool first:
# it fetches the edges' Fast Open cookie for 10.77.3.3 (the edges' first
# contact carries the Convert message after the handshake, every later SYN
# carries it). SYN data accepted by the concentrator (TcpExt
# TCPFastOpenPassive in srv) is counted per mode and tool.
TIER_MODES="conc-socks5 edge edge-early edge-tcp edge-tcp-early implicit"

# tier_model TOOL MODE C W S: round trips to the first byte, ms.
#
# What the code does (gateway/front_socks5.c, dial.c, front_convert.c):
# SOCKS5 costs the client 1 RTT to connect, 1 for greeting/method, 1 for
# request/reply and 1 for its first bytes and the answer. The concentrator
# answers a Convert message only after its connect to the server (S), and
# relays the first bytes then (S more to the answer). On an MPTCP
# connection still in SYN_RECV (it is, with the message in the SYN: the
# edge's ACK arrives W after the SYN) the kernel holds what the
# concentrator writes until cv_kick_cb toggles TCP_NODELAY; that timer
# checks at 5, 15, 35, 75, 155 ... ms after accept, so the reply leaves
# at K(W) = the first check >= W instead of at S (or 2S with early reply).
# Plain TCP sends it at once. Hence, with X = the concentrator's hold:
#   conc-socks5      4(C+W) + 2S
#   edge             4C + W + X(S) + W + S    = 4C+2W+2S when X(S) = S
#   edge-early       4C + W + X(2S)           (request in the SYN)
#   edge-tcp         4C + 2W + 2S
#   edge-tcp-early   4C + W + 2S
#   implicit         C+W + 2S: socksbench's request rides in the SYN;
#                    curl connects first, then writes: 2(C+W) + S
# X(t) = t when the concentrator's connection is plain TCP or t >= W,
# else K(W).
tier_model() {
	awk -v t="$1" -v m="$2" -v c="$3" -v w="$4" -v s="$5" '
	function kick(w,   k, r) {
		k = 5; r = 5
		while (k < w) { if (r < 640) r *= 2; k += r }
		return k
	}
	function hold(x) { return x >= w ? x : kick(w) }
	BEGIN {
	    if (m == "conc-socks5") v = 4 * (c + w) + 2 * s
	    else if (m == "edge") v = 4 * c + 2 * w + s + hold(s)
	    else if (m == "edge-early") v = 4 * c + w + hold(2 * s)
	    else if (m == "edge-tcp") v = 4 * c + 2 * w + 2 * s
	    else if (m == "edge-tcp-early") v = 4 * c + w + 2 * s
	    else if (m == "implicit" && t == "curl")
		v = 2 * (c + w) + (s > c + w ? 2 * s - c - w : s)
	    else if (m == "implicit") v = c + w + 2 * s
	    printf "%d\n", v + 0.5 }'
}

# tier_model_text MODE: the formula, for the tables.
tier_model_text() {
	case $1 in
	conc-socks5) echo "4(C+W)+2S" ;;
	edge) echo "4C+2W+S+K" ;;
	edge-early) echo "4C+W+K" ;;
	edge-tcp) echo "4C+2W+2S" ;;
	edge-tcp-early) echo "4C+W+2S" ;;
	implicit) echo "C+W+2S; curl 2(C+W)+S" ;;
	esac
}

# tier_sb_args MODE: socksbench options from cli to far's target for MODE.
tier_sb_args() {
	t="--target $LAB_FAR_IP5:$LAB_SRV_PORT"
	case $1 in
	conc-socks5) echo "--proxy socks5 --gw $LAB_SRV_IP3:1080 $t" ;;
	implicit) echo "--proxy convert --silent --gw $LAB_SRV_IP3:5125 $t" \
	    "--user $CONV_USER --key $CONV_KEY --tfo-no-cookie" ;;
	*) echo "--proxy socks5 --gw $LAB_GW_IP1:$(tier_port "$1") $t" ;;
	esac
}

# tier_shim_env MODE: the environment for build/mpgw-run.
tier_shim_env() {
	case $1 in
	conc-socks5) echo "MPGW_GATEWAY=$LAB_SRV_IP3:1080 MPGW_METHOD=none" ;;
	implicit) echo "MPGW_GATEWAY=$LAB_SRV_IP3:5125 MPGW_MODE=implicit" \
	    "MPGW_USER=$CONV_USER MPGW_KEY=$CONV_KEY MPGW_TFO_NO_COOKIE=on" ;;
	*) echo "MPGW_GATEWAY=$LAB_GW_IP1:$(tier_port "$1") MPGW_METHOD=none" ;;
	esac
}

# tier_one TOOL MODE: one request; prints the TTFB in microseconds or
# nothing on failure.
tier_one() {
	if [ "$1" = socksbench ]; then
		# shellcheck disable=SC2046
		ip netns exec "$LAB_NS_CLI" "$SB" $(tier_sb_args "$2") \
		    --label "$2" --mode ttfb --count 1 --timeout 10 \
		    2>>"$TMP/sb.log" | tail -n 1 | tr ' ' '\n' |
		    sed -n 's/^p50_us=//p' | awk '$1 + 0 > 0'
	else
		# shellcheck disable=SC2046
		ip netns exec "$LAB_NS_CLI" env $(tier_shim_env "$2") \
		    "$BUILD/mpgw-run" curl -s -o /dev/null --max-time 10 \
		    -w '%{time_starttransfer}\n' \
		    "http://$LAB_FAR_IP5:$LAB_HTTP_PORT/" 2>>"$TMP/curl.log" |
		    awk '$1 + 0 > 0 { printf "%.1f\n", $1 * 1e6 }'
	fi
}

# srv_counter NAME: a TcpExt or MPTcpExt counter of srv's (the
# concentrator's) network namespace, 0 if absent.
srv_counter() {
	ip netns exec "$LAB_NS_SRV" cat /proc/net/netstat | awk -v n="$1" '
	    $1 in seen { for (i = 2; i <= NF; i++) if (h[$1, i] == n) v = $i
		next }
	    { seen[$1] = 1; for (i = 2; i <= NF; i++) h[$1, i] = $i }
	    END { print v + 0 }'
}

lab_tier_ttfb() {
	wans=${BENCH_TIER_WAN:-20 60}
	fd=${BENCH_TIER_FDELAY:-2.5}
	n=${BENCH_TIER_TTFB_N:-15}
	c=1
	s=$(awk -v d="$fd" 'BEGIN { print 2 * d }')
	say "== lab: two tiers, TTFB; C = $c ms, W = $wans ms, S = $s ms;" \
	    "$n requests per mode and tool"
	out=$RES/lab_tier_ttfb.csv
	echo "tool,label,rtt_c_ms,rtt_w_ms,rtt_s_ms,n,p50_us,p90_us,model_ms\
,errors,syn_data" >"$out"
	raw=$RES/lab_tier_ttfb_raw.csv
	echo "tool,label,rtt_w_ms,sample,ttfb_us" >"$raw"
	for w in $wans; do
		tier_start --route --cdelay 0.5 --delay1 "$(awk -v w="$w" \
		    'BEGIN { print w / 2 }')" --delay2 "$(awk -v w="$w" \
		    'BEGIN { print w / 2 }')" --fdelay "$fd" || return 0
		for m in $TIER_MODES; do
			for tool in socksbench curl; do
				tier_one "$tool" "$m" >/dev/null
			done
		done
		for tool in socksbench curl; do
			for m in $TIER_MODES; do
				: >"$TMP/tier-$tool-$m"
				f0=$(srv_counter TCPFastOpenPassive)
				i=1
				while [ $i -le "$n" ]; do
					v=$(tier_one "$tool" "$m")
					[ -n "$v" ] &&
					    echo "$v" >>"$TMP/tier-$tool-$m" &&
					    echo "$tool,$m,$w,$i,$v" >>"$raw"
					i=$((i + 1))
				done
				f1=$(srv_counter TCPFastOpenPassive)
				got=$(wc -l <"$TMP/tier-$tool-$m")
				echo "$tool,$m,$c,$w,$s,$n,$(pct 0.5 \
				    <"$TMP/tier-$tool-$m"),$(pct 0.9 \
				    <"$TMP/tier-$tool-$m"),$(tier_model "$tool" \
				    "$m" $c "$w" "$s"),$((n - got)),$((f1 - f0))" \
				    >>"$out"
			done
		done
		lab_stop
	done
	echo
	echo "Two tiers, TTFB p50 / p90 in ms (C = client<->edge RTT $c ms," \
	    "W = edge<->concentrator RTT,"
	echo "  S = concentrator<->server RTT $s ms; model = round trips, K =" \
	    "the concentrator's SYN_RECV"
	echo "  hold on MPTCP: next cv_kick check >= W, 35 ms for W=20, 75" \
	    "for W=60; syn = SYN data accepted"
	echo "  at the concentrator per $n requests, edges with a cached Fast" \
	    "Open cookie)"
	for tool in socksbench curl; do
		echo
		printf '%-10s %-15s' "$tool" mode
		for w in $wans; do
			printf ' %25s' "W=$w: p50 p90 model syn"
		done
		printf '  %s\n' model
		for m in $TIER_MODES; do
			printf '%-10s %-15s' "" "$m"
			for w in $wans; do
				awk -F, -v t="$tool" -v m="$m" -v w="$w" '
				    function ms(v) {
					if (v == "-") return "-"
					return sprintf("%.1f", v / 1000) }
				    $1 == t && $2 == m && $4 == w {
					printf " %8s %6s %5s %3s", ms($7),
					    ms($8), $9, $11; f = 1 }
				    END { if (!f) printf " %25s", "-" }' \
				    "$out"
				for k in 7:p50_us 8:p90_us; do
					awk -F, -v t="$tool" -v m="$m" \
					    -v w="$w" -v c="${k%%:*}" \
					    -v n="${k#*:}" '$1 == t &&
					    $2 == m && $4 == w {
					    printf "lab_tier_ttfb,%s,%s,%s,%s,%s\n",
						m, t, w, n, $c }' "$out" \
					    >>"$RES/summary.csv"
				done
			done
			printf '  %s\n' "$(tier_model_text "$m")"
		done
	done
	e=$(awk -F, 'NR > 1 && $10 != 0' "$out")
	if [ -n "$e" ]; then
		echo "(rows with errors:)"
		echo "$e"
	fi
}

# --- lab 5. two tiers: aggregation ------------------------------------------
#
# One download of BENCH_TIER_AGG_MB MiB (curl --socks5 through an edge, HTTP
# from far, into sink.py) with links 3 and 4 shaped as in the single-tier
# aggregation (BENCH_AGG_CASES): edge upstream MPTCP (both links) vs TCP
# (link 3 only); MPTCP BENCH_TIER_REPEATS runs, TCP BENCH_REPEATS,
# interleaved, after tier_warm. Goodput = bytes / wall time of the fetch; of_sum = goodput /
# (rate1 + rate2). MPTCP downloads across the chain sometimes crawl, a
# string of 150-600 ms gaps with MPTCP-level retransmissions at the
# concentrator (issue 12), so each run also records its longest gap, the
# sum of its gaps of 150 ms or more and the concentrator's MPTcpExt
# MPTCPRetrans; curl gives up after three times the ideal time at the
# rates it may use (at least 10 s), or 10 s without data, and a cut run
# counts with the bytes it got.
#
# The crawl needs data in the SYN: the first connection of a fresh lab
# (the edge has no Fast Open cookie yet) was always clean, and so were all
# with client Fast Open off in gw. Row edge-nosyn (BENCH_REPEATS runs)
# is the MPTCP edge with net.ipv4.tcp_fastopen = 0 in gw: the Convert
# message follows the handshake, one WAN round trip later, and the
# concentrator's connection never holds SYN data.
TIER_AGG_LABELS="edge edge-nosyn edge-tcp"
TIER_AGG_MB=${BENCH_TIER_AGG_MB:-8}

lab_tier_aggregation() {
	out=$RES/lab_tier_aggregation.csv
	bytes=$((TIER_AGG_MB * 1048576))
	want=$(head -c "$bytes" "$TMP/big.bin" | sha256sum | cut -d' ' -f1)
	echo "case,label,repeat,rate1,rate2,delay1,delay2,completed,sha256_ok\
,bytes,seconds,mbps,stall_ms,gaps_ms,mptcp_retrans,mptcp,subflows" >"$out"
	for c in $AGG_CASES; do
		set -- $(echo "$c" | tr : ' ')
		r1=$1 r2=$2 d1=$3 d2=$4
		say "== lab: two tiers, aggregation, links $r1+$r2 Mbit/s," \
		    "one-way $d1/$d2 ms, ${TIER_AGG_MB} MiB download;" \
		    "MPTCP $TIER_REPEATS runs, no SYN data and TCP $REPEATS"
		tier_start --rate1 "$r1" --rate2 "$r2" --delay1 "$d1" \
		    --delay2 "$d2" || continue
		tier_warm
		r=1
		while [ $r -le "$TIER_REPEATS" ] || [ $r -le "$REPEATS" ]; do
			for lbl in $TIER_AGG_LABELS; do
				n=$TIER_REPEATS rt=$((r1 + r2))
				[ "$lbl" = edge ] || n=$REPEATS
				[ "$lbl" = edge-tcp ] && rt=$r1
				[ $r -le "$n" ] || continue
				mt=$(awk -v b="$bytes" -v r="$rt" 'BEGIN {
				    t = int(3 * b * 8 / (r * 1e6)) + 1
				    print t < 10 ? 10 : t }')
				[ "$lbl" = edge-nosyn ] && ip netns exec \
				    "$LAB_NS_GW" sysctl -qw net.ipv4.tcp_fastopen=0
				a0=$(tier_nacc "$lbl")
				line=$(tier_fetch "$lbl" "/head/$bytes" $mt)
				ip netns exec "$LAB_NS_GW" sysctl -qw \
				    "net.ipv4.tcp_fastopen=$LAB_TFO_GW"
				tier_row "$lbl" "$a0" "$line" "$bytes" \
				    "$want" "$c,$lbl,$r,$r1,$r2,$d1,$d2" >>"$out"
			done
			r=$((r + 1))
		done
		lab_stop
	done
	echo
	echo "Two tiers, aggregation: one ${TIER_AGG_MB} MiB download through" \
	    "edge -> concentrator (medians over the runs;"
	echo "  of_sum = goodput / (rate1 + rate2); x_tcp = MPTCP / TCP; stall" \
	    "= longest gap between two reads at the"
	echo "  client; gaps = sum of the gaps >= 150 ms; retr = the" \
	    "concentrator's MPTCP-level retransmissions;"
	echo "  nosyn = MPTCP with client Fast Open off in the edge's" \
	    "namespace: no data in the SYN)"
	printf '%-12s %-6s %4s %7s %7s %6s %8s %8s %7s %5s %s\n' \
	    "links Mbit/s" edge runs Mbit/s of_sum x_tcp stall_ms gaps_ms \
	    retr "done" "Mbit/s per run"
	for c in $AGG_CASES; do
		set -- $(echo "$c" | tr : ' ')
		r1=$1 r2=$2 d1=$3 d2=$4
		ref=$(tier_agg_col "$c" edge-tcp 12)
		for lbl in edge-tcp edge edge-nosyn; do
			m=$(tier_agg_col "$c" "$lbl" 12)
			set -- $(awk -F, -v c="$c" -v l="$lbl" '$1 == c &&
			    $2 == l { n++; k += ($8 == "yes") }
			    END { print n + 0, k + 0 }' "$out")
			case $lbl in
			edge) up=mptcp ;;
			edge-nosyn) up=nosyn ;;
			*) up=tcp ;;
			esac
			printf '%-12s %-6s %4s %7s %7s %6s %8s %8s %7s %5s %s\n' \
			    "$r1+$r2" "$up" "$1" "$m" \
			    "$(ratio "$m" $((r1 + r2)))" "$(ratio "$m" "$ref")" \
			    "$(tier_agg_col "$c" "$lbl" 13)" \
			    "$(tier_agg_col "$c" "$lbl" 14)" \
			    "$(tier_agg_col "$c" "$lbl" 15)" "$2/$1" \
			    "$(awk -F, -v c="$c" -v l="$lbl" '$1 == c &&
			    $2 == l { printf "%s%s", s, $12; s = " " }' "$out")"
			{
				echo "lab_tier_aggregation,$lbl,down,$c,mbps,$m"
				echo "lab_tier_aggregation,$lbl,down,$c,of_sum\
,$(ratio "$m" $((r1 + r2)))"
				echo "lab_tier_aggregation,$lbl,down,$c,completed\
,$2/$1"
			} >>"$RES/summary.csv"
		done
	done
	echo "  (links: rate1+rate2, one-way delays per BENCH_AGG_CASES:" \
	    "$AGG_CASES)"
}

# tier_agg_col CASE LABEL COLUMN: median of a column of the aggregation CSV.
tier_agg_col() {
	awk -F, -v c="$1" -v l="$2" -v k="$3" '$1 == c && $2 == l &&
	    $k != "" && $k != "-" { print $k }' \
	    "$RES/lab_tier_aggregation.csv" | median
}

# tier_nacc LABEL: how many access lines LABEL's gateway wrote so far.
tier_nacc() {
	grep -c ' access ' "$TMP/tier-${1%-nosyn}.log" 2>/dev/null || true
}

# tier_row LABEL A0 LINE BYTES SHA PREFIX: one CSV row of a download (LINE
# from tier_fetch), with the edge's MPTCP facts from its access line
# (written when the session closes: wait up to 2 s for one more than A0).
tier_row() {
	b=$(kv "$3" bytes)
	s=$(kv "$3" wall_s)
	ok=no
	[ "$(kv "$3" sha256)" = "$5" ] && ok=yes
	done_=no
	[ "${b:-0}" = "$4" ] && [ $ok = yes ] && done_=yes
	mbps=$(awk -v b="${b:-0}" -v s="${s:-0}" 'BEGIN {
	    if (s > 0) printf "%.1f\n", b * 8 / s / 1e6; else print "-" }')
	i=0
	while [ $i -lt 40 ] && [ "$(tier_nacc "$1")" -le "$2" ]; do
		sleep 0.05
		i=$((i + 1))
	done
	mp=- sf=-
	if [ "$(tier_nacc "$1")" -gt "$2" ]; then
		mp=$(tier_access "$1" mptcp)
		sf=$(tier_access "$1" subflows)
	fi
	echo "$6,$done_,$ok,${b:-0},${s:--},$mbps,$(kv "$3" stall_ms)\
,$(kv "$3" gaps_ms),$(kv "$3" mptcp_retrans),$mp,$sf"
}

# --- lab 6. two tiers: failover -----------------------------------------------
#
# The single-tier failover through the chain: a BENCH_FAIL_MB MiB HTTP
# download (curl --socks5 through the MPTCP edge, from far, into sink.py),
# links 3 and 4 at BENCH_FAIL_RATE Mbit/s and BENCH_FAIL_DELAY ms one way;
# at half of it sink.py sets link 3 (the edge's first subflow's) down in gw.
# BENCH_REPEATS runs, a fresh lab each (warmed: the via SYN carries
# data, see tier_warm), curl cut after 60 s; per run:
# completed, sha256 equal, the longest gap between two reads at the client
# (the stall), the other columns as in the aggregation, and the trace of
# bytes over time (lab_tier_failover_trace.csv; the plot).
lab_tier_failover() {
	half=$((BIG_MB * 1048576 / 2))
	say "== lab: two tiers, failover, links ${FAIL_RATE}+${FAIL_RATE}" \
	    "Mbit/s, ${FAIL_DELAY} ms; edge link 3 down after" \
	    "$((BIG_MB / 2)) of ${BIG_MB} MiB; $REPEATS runs"
	out=$RES/lab_tier_failover.csv
	trace=$RES/lab_tier_failover_trace.csv
	echo "label,repeat,completed,sha256_ok,bytes,seconds,mbps,stall_ms\
,gaps_ms,mptcp_retrans,mptcp,subflows,cut_s" >"$out"
	echo "repeat,seconds,bytes" >"$trace"
	r=1
	while [ $r -le "$REPEATS" ]; do
		tier_start --rate1 "$FAIL_RATE" --rate2 "$FAIL_RATE" \
		    --delay1 "$FAIL_DELAY" --delay2 "$FAIL_DELAY" || return 0
		tier_warm
		a0=$(tier_nacc edge)
		SINK_TRACE=$TMP/trace
		export SINK_TRACE
		line=$(tier_fetch edge /big 60 "$half" ip -n "$LAB_NS_GW" \
		    link set "$LAB_GW_IF3" down)
		unset SINK_TRACE
		echo "$(tier_row edge "$a0" "$line" "$BIG_BYTES" "$BIG_SHA" \
		    "edge,$r"),$(kv "$line" cut_s)" >>"$out"
		awk -v r="$r" '{ printf "%d,%s,%s\n", r, $1, $2 }' \
		    "$TMP/trace" >>"$trace" 2>/dev/null
		lab_stop
		r=$((r + 1))
	done
	echo
	echo "Two tiers, failover: ${BIG_MB} MiB download through edge ->" \
	    "concentrator (MPTCP), links ${FAIL_RATE}+${FAIL_RATE} Mbit/s,"
	echo "  RTT $((2 * FAIL_DELAY)) ms; the edge's link 3 down at" \
	    "$((BIG_MB / 2)) MiB (stall = longest gap between two reads," \
	    "client; gaps, retr as above)"
	printf '%-4s %9s %9s %8s %7s %8s %8s %7s\n' run completed sha256_ok \
	    seconds Mbit/s stall_ms gaps_ms retr
	awk -F, 'NR > 1 { printf "%-4s %9s %9s %8s %7s %8s %8s %7s\n",
	    $2, $3, $4, $6, $7, $8, $9, $10 }' "$out"
	c=$(awk -F, 'NR > 1 && $3 == "yes"' "$out" | wc -l)
	st=$(awk -F, 'NR > 1 { print $8 }' "$out" | median)
	mx=$(awk -F, 'NR > 1 && $8 + 0 > m { m = $8 + 0 } END { print m + 0 }' \
	    "$out")
	echo "completed $c/$REPEATS; longest stall: median $st ms," \
	    "max $mx ms"
	{
		echo "lab_tier_failover,edge,down,$FAIL_RATE,completed\
,$c/$REPEATS"
		echo "lab_tier_failover,edge,down,$FAIL_RATE,stall_ms,$st"
		echo "lab_tier_failover,edge,down,$FAIL_RATE,stall_ms_max,$mx"
	} >>"$RES/summary.csv"
}

# --- two tiers: plot data (tests/bench/plot-tier.gp -> results/tier.png) -----

make_plots_tier() {
	f=$RES/lab_tier_ttfb.csv
	if [ -s "$f" ]; then
		wans=$(awk -F, 'NR > 1 { print $4 }' "$f" | sort -nu)
		for tool in socksbench curl; do
			{
				printf 'mode'
				for w in $wans; do
					printf ' W=%s W=%s_p90 W=%s_model' \
					    "$w" "$w" "$w"
				done
				echo
				for m in $TIER_MODES; do
					printf '%s' "$m"
					for w in $wans; do
						awk -F, -v t="$tool" -v m="$m" \
						    -v w="$w" '
						    function ms(v) {
							if (v == "-") return "NaN"
							return sprintf("%.2f",
							    v / 1000) }
						    $1 == t && $2 == m && $4 == w {
							printf " %s %s %s",
							    ms($7), ms($8), $9
							f = 1 }
						    END { if (!f)
							printf " NaN NaN NaN" }' \
						    "$f"
					done
					echo
				done
			} >"$RES/plot_tier_ttfb_$tool.dat"
		done
	fi
	f=$RES/lab_tier_aggregation.csv
	if [ -s "$f" ]; then
		{
			echo "links upstream_TCP upstream_MPTCP MPTCP_no_SYN_data"
			for c in $(awk -F, 'NR > 1 && !s[$1]++ { print $1 }' "$f")
			do
				set -- $(echo "$c" | tr : ' ')
				printf '%s+%s,%s/%sms' "$1" "$2" "$3" "$4"
				for lbl in edge-tcp edge edge-nosyn; do
					m=$(tier_agg_col "$c" "$lbl" 12)
					v=$(ratio "$m" $(($1 + $2)))
					printf ' %s' "$(echo "$v" |
					    sed 's/^-$/NaN/')"
				done
				echo
			done
		} >"$RES/plot_tier_aggregation.dat"
		# Every run: x = the case's bar (TCP left, MPTCP right).
		awk -F, 'NR > 1 { if (!($1 in x)) x[$1] = n++
		    d = $2 == "edge" ? 0 : $2 == "edge-nosyn" ? 0.27 : -0.27
		    printf "%.2f %.3f\n", x[$1] + d, $12 / ($4 + $5) }' "$f" \
		    >"$RES/plot_tier_aggregation_runs.dat"
	fi
	f=$RES/lab_tier_failover_trace.csv
	if [ -s "$f" ]; then
		awk -F, 'NR > 1 { if ($1 != r && r != "") printf "\n\n"
		    r = $1; printf "%s %.6f\n", $2, $3 / 1048576 }' "$f" \
		    >"$RES/plot_tier_failover.dat"
		awk -F, -v h="$((BIG_MB / 2))" 'NR > 1 && $13 != "-" {
		    print $2, $13, h }' "$RES/lab_tier_failover.csv" \
		    >"$RES/plot_tier_failover_cut.dat"
	fi
	[ -s "$RES/plot_tier_ttfb_socksbench.dat" ] || return 0
	(cd "$RES" && gnuplot "$HERE/plot-tier.gp") 2>"$RES/../plot.log" &&
	    rm -f "$RES/../plot.log" ||
	    say "run.sh: gnuplot failed on plot-tier.gp (see" \
	    "tests/bench/plot.log)"
}

# --- lab part ----------------------------------------------------------------

part_lab() {
	if [ ! -f "$TOP/tests/lab/lab.sh" ]; then
		say "run.sh: tests/lab/lab.sh missing; skipping the lab part"
		return 0
	fi
	if [ ! -x "$MPGW" ]; then
		say "run.sh: $MPGW not built; skipping the lab part"
		return 0
	fi
	command -v python3 >/dev/null 2>&1 ||
	    { say "run.sh: python3 missing; skipping the lab part"; return 0; }
	[ -n "${LINKEMU:-}" ] || for f in "$BUILD/linkemu" "$TOP/build/linkemu"
	do
		[ -x "$f" ] && LINKEMU=$f && export LINKEMU && break
	done
	TMP=$(mktemp -d /tmp/mpgw-bench-lab.XXXXXX)
	trap 'lab_stop; cleanup' EXIT
	trap 'exit 130' INT TERM
	[ -f "$RES/summary.csv" ] ||
	    echo "section,label,dir,param,metric,value" >"$RES/summary.csv"
	lab_helpers
	head -c $((BIG_MB * 1048576)) /dev/urandom >"$TMP/big.bin"
	BIG_BYTES=$((BIG_MB * 1048576))
	BIG_SHA=$(sha256sum "$TMP/big.bin" | cut -d' ' -f1)
	sh "$TOP/tests/certs.sh" "$BUILD/certs" ||
	    say "run.sh: tests/certs.sh failed; tls-login will fail"
	echo "bench:$(mkpasswd -m yescrypt "$LAB_PASS")" >"$TMP/users"
	chmod 600 "$TMP/users"
	sed -e "s|@CERTS@|$BUILD/certs|" -e "s|@USERS@|$TMP/users|" \
	    "$CONF/lab-mpgw-auth.ini" >"$TMP/lab-mpgw-auth.ini"
	for sec in ${BENCH_LAB_SECTIONS:-aggregation failover ttfb \
	    tier-ttfb tier-aggregation tier-failover}; do
		case $sec in
		aggregation) lab_aggregation ;;
		failover) lab_failover ;;
		ttfb) lab_ttfb_rtt ;;
		tier-ttfb) lab_tier_ttfb ;;
		tier-aggregation) lab_tier_aggregation ;;
		tier-failover) lab_tier_failover ;;
		*) say "run.sh: unknown lab section '$sec'" ;;
		esac
	done
	lab_stop
	cleanup
	trap - EXIT
}

# --- plots (tests/bench/plot.gp) ---------------------------------------------

# make_plots: wide tables of the medians, then gnuplot.
make_plots() {
	if ! command -v gnuplot >/dev/null 2>&1; then
		say "run.sh: gnuplot missing (apt-get install gnuplot-nox);" \
		    "no plots"
		return 0
	fi
	if [ -s "$RES/throughput.csv" ]; then
		{
			echo "server down_1 down_8 up_1 up_8"
			for lbl in $(awk -F, 'NR > 1 && !s[$1]++ { print $1 }' \
			    "$RES/throughput.csv"); do
				printf '%s' "$lbl"
				for k in "1 down" "8 down" "1 up" "8 up"; do
					set -- $k
					printf ' %s' "$(tp_median "$lbl" "$1" \
					    "$2" | sed 's/^-$/NaN/')"
				done
				echo
			done
		} >"$RES/plot_throughput.dat"
	fi
	if [ -s "$RES/lab_ttfb.csv" ]; then
		for tool in socksbench curl; do
			{
				echo "rtt_c_ms $TTFB_MODES"
				for c in $(awk -F, 'NR > 1 { print $4 }' \
				    "$RES/lab_ttfb.csv" | sort -nu); do
					printf '%s' "$c"
					for lbl in $TTFB_MODES; do
						v=$(awk -F, -v t="$tool" \
						    -v l="$lbl" -v c="$c" \
						    '$1 == t && $2 == l &&
						    $4 == c && $7 != "-" {
						    printf "%.2f", $7 / 1000 }' \
						    "$RES/lab_ttfb.csv")
						printf ' %s' "${v:-NaN}"
					done
					echo
				done
			} >"$RES/plot_ttfb_$tool.dat"
		done
	fi
	(cd "$RES" && gnuplot "$HERE/plot.gp") 2>"$RES/../plot.log" &&
	    rm -f "$RES/../plot.log" ||
	    say "run.sh: gnuplot failed (see tests/bench/plot.log)"
	make_plots_tier
}

# --- main -------------------------------------------------------------------

if [ "${2:-}" = --loopback-inner ]; then
	cd "$TOP" || exit 1
	loopback_inner
	exit $?
fi

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, sysctls)"
[ -x "$SB" ] || die "$SB missing: run make"
command -v ss >/dev/null 2>&1 || die "ss (iproute2) missing"
cd "$TOP" || exit 1
mkdir -p "$RES"
T_ALL=$(date +%s)
for part in $PARTS; do
	t0=$(date +%s)
	case $part in
	loopback) part_loopback ;;
	lab) part_lab ;;
	*) die "unknown part '$part' in BENCH_PARTS" ;;
	esac
	say "run.sh: $part part took $(($(date +%s) - t0)) s"
done
make_plots
say "run.sh: total $(($(date +%s) - T_ALL)) s"
