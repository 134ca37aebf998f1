#!/bin/sh
# tests/bench/run.sh BUILD_DIR - mpgw benchmark suite (make bench; root).
#
# Loopback part, side by side in one run, every server driven by the same
# client (BUILD_DIR/socksbench) against the same target (socksbench --serve):
#   1. relay throughput, 1 and 8 streams, down and up:
#      direct, direct over MPTCP, mpgw (upstream mptcp=off), mpgw (mptcp=on),
#      Dante, microsocks;
#   2. connection rate and exchange latency p50/p99/p999 at concurrency 64:
#      mpgw (SOCKS5, both upstream modes, and Convert), Dante, microsocks,
#      with direct as the reference;
#   3. memory: PSS/RSS per held relayed connection with N idle connections.
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
#   BENCH_SECTIONS    loopback sections [throughput connrate memory]
#   BENCH_REPEATS     repeats per measurement [3]
#   BENCH_MB          MiB per throughput run, split over its streams [2048]
#   BENCH_CONC        connrate concurrency [64]
#   BENCH_SECS        connrate seconds per run [4]
#   BENCH_HOLD_N      idle connections for the memory test [10000]
#   BENCH_HOLD_SECS   seconds to keep them before sampling memory [3]
#   BENCH_NETNS       0 to run the loopback part in the current namespace [1]
#   BENCH_KEEP        1 to keep the temporary directory with server logs
#   BENCH_LAB_SECTIONS  lab sections [aggregation failover ttfb]
#   BENCH_LAB_SECS    seconds per lab transfer at the single-link rate [8]
#   BENCH_LAB_RATE    Mbit/s of each gw<->srv link [50]
#   BENCH_LAB_DELAY   one-way ms on links 3 and 4 (aggregation) [10]
#   BENCH_LAB_DELAYS  one-way ms for TTFB vs RTT ["5 20 50"]
#   BENCH_LAB_TTFB_N  requests per TTFB point [20]
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
SECTIONS=${BENCH_SECTIONS:-throughput connrate memory}
LAB_SECS=${BENCH_LAB_SECS:-8}

# Loopback ports (private namespace; below the ephemeral range).
P_SRV=21301		# target, TCP listener
P_SRV_M=21302		# target, MPTCP listener
P_DANTE=21081
P_MS=21082
P_MPGW_T=21083		# mpgw upstream mptcp=off (Convert on 21093)
P_MPGW_M=21084		# mpgw upstream mptcp=on (Convert on 21094)
P_CONV_T=21093
CONV_USER=bench
CONV_KEY=$(awk '$1 == "bench" { print $2 }' "$CONF/convert-keys")

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
HAVE_DANTE=0 HAVE_MS=0 HAVE_MPGW=0 HAVE_CONV=0
PID_DANTE='' PID_MS='' PID_MPGW_T='' PID_MPGW_M='' PID_SRV='' PID_SRV_M=''

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
		if wait_port $P_MPGW_T && wait_port $P_MPGW_M; then
			HAVE_MPGW=1
			wait_port $P_CONV_T && HAVE_CONV=1
		else
			say "run.sh: mpgw did not start:"
			tail -n 5 "$TMP/mpgw-tcp.log" >&2
		fi
	else
		say "run.sh: $MPGW not built; skipping mpgw"
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
	mpgw-convert) echo "--proxy convert --gw 127.0.0.1:$P_CONV_T" \
	    "--target 127.0.0.1:$P_SRV --user $CONV_USER --key $CONV_KEY" ;;
	dante) echo "--proxy socks5 --gw 127.0.0.1:$P_DANTE" \
	    "--target 127.0.0.1:$P_SRV" ;;
	microsocks) echo "--proxy socks5 --gw 127.0.0.1:$P_MS" \
	    "--target 127.0.0.1:$P_SRV" ;;
	esac
}

# sb_pid LABEL: the process whose tree holds LABEL's relay state.
sb_pid() {
	case $1 in
	mpgw-tcp) echo "$PID_MPGW_T" ;;
	mpgw-mptcp) echo "$PID_MPGW_M" ;;
	dante) echo "$PID_DANTE" ;;
	microsocks) echo "$PID_MS" ;;
	esac
}

# labels_for SECTION: the servers present for a section.
labels_for() {
	l=
	case $1 in
	throughput) l="direct direct-mptcp" ;;
	connrate) l="direct" ;;
	esac
	[ $HAVE_MPGW = 1 ] && l="$l mpgw-tcp mpgw-mptcp"
	[ "$1" = connrate ] && [ $HAVE_CONV = 1 ] && l="$l mpgw-convert"
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
	printf '%-13s' server
	for dir in down up; do
		for st in 1 8; do
			printf ' %12s %6s' "${dir}x$st" ratio
		done
	done
	echo
	for lbl in $labels; do
		printf '%-13s' "$lbl"
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
	echo "label,repeat,cps,p50_us,p99_us,p999_us,conns,errors,syn_data" \
	    >"$out"
	labels=$(labels_for connrate)
	say "== connrate: concurrency $CONC, ${SECS}s, $REPEATS repeats:" \
	    "$labels"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for lbl in $labels; do
			run_sb "$lbl" --mode connrate \
			    --concurrency "$CONC" --duration "$SECS"
			line=$LINE
			echo "$lbl,$r,$(kv "$line" cps),$(kv "$line" p50_us)\
,$(kv "$line" p99_us),$(kv "$line" p999_us),$(kv "$line" conns)\
,$(kv "$line" errors),$(kv "$line" syn_data)" >>"$out"
		done
		r=$((r + 1))
	done
	echo
	echo "Connection rate at concurrency $CONC (median of $REPEATS;" \
	    "latency = connect to server FIN, us; ratio = conn/s vs mpgw-tcp)"
	printf '%-13s %9s %6s %9s %9s %9s %7s\n' server conn/s ratio p50_us \
	    p99_us p999_us errors
	ref=$(cr_median mpgw-tcp 3)
	[ "$ref" = "-" ] && ref=$(cr_median direct 3)
	for lbl in $labels; do
		c=$(cr_median "$lbl" 3)
		printf '%-13s %9s %6s %9s %9s %9s %7s\n' "$lbl" "$c" \
		    "$(ratio "$c" "$ref")" "$(cr_median "$lbl" 4)" \
		    "$(cr_median "$lbl" 5)" "$(cr_median "$lbl" 6)" \
		    "$(cr_median "$lbl" 8)"
		for k in 3:cps 4:p50_us 5:p99_us 6:p999_us; do
			echo "connrate,$lbl,,$CONC,${k#*:},$(cr_median "$lbl" \
			    "${k%%:*}")" >>"$RES/summary.csv"
		done
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
	done
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
# tests/lab/README.md). The target listens on srv's link-3 address; mpgw
# runs in gw with both upstream modes at once (SOCKS5 1080/1081, Convert
# 5124/5125); the client runs in cli. lab.sh down removes everything.

LAB_SFX=bench$$
LAB_UP=0
LAB_SRV_PORT=5201

lab() {
	MPGW_BUILD=$BUILD bash "$TOP/tests/lab/lab.sh" "$@"
}

# lab_start UP-OPTIONS...: a fresh lab plus target and both gateways.
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
	for v in tcp mptcp; do
		(cd "$TOP" && exec ip netns exec "$LAB_NS_GW" "$MPGW" \
		    -c "$CONF/lab-mpgw-$v.ini") 2>>"$TMP/lab-mpgw-$v.log" &
	done
	i=0
	while [ $i -lt 100 ]; do
		if ip netns exec "$LAB_NS_GW" ss -Hltn 'sport = :1081' |
		    grep -q . && ip netns exec "$LAB_NS_SRV" ss -Hltn \
		    "sport = :$LAB_SRV_PORT" | grep -q .; then
			return 0
		fi
		sleep 0.05
		i=$((i + 1))
	done
	say "run.sh: lab servers did not start (see $TMP/lab-*.log)"
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
	mpgw-tcp) echo "--proxy socks5 --gw $LAB_GW_IP1:1080 $t" ;;
	mpgw-mptcp) echo "--proxy socks5 --gw $LAB_GW_IP1:1081 $t" ;;
	convert) echo "--proxy convert --gw $LAB_GW_IP1:5124 $t $k" ;;
	convert-silent) echo "--proxy convert --silent" \
	    "--gw $LAB_GW_IP1:5124 $t $k" ;;
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

# Two gw<->srv links of RATE Mbit/s each: one download through mpgw with
# upstream TCP, then with upstream MPTCP (ideal: twice the rate).
lab_aggregation() {
	rate=${BENCH_LAB_RATE:-50}
	d=${BENCH_LAB_DELAY:-10}
	mb=$((rate * LAB_SECS / 8))
	say "== lab: aggregation, links 3+4 at $rate Mbit/s, ${d} ms," \
	    "${mb}M per download"
	lab_start --rate1 "$rate" --rate2 "$rate" --delay1 "$d" \
	    --delay2 "$d" || return 0
	out=$RES/lab_aggregation.csv
	echo "label,repeat,rate_mbit,delay_ms,mbps,seconds,errors" >"$out"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for lbl in mpgw-tcp mpgw-mptcp; do
			line=$(lab_sb "$lbl" --mode throughput --streams 1 \
			    --bytes "${mb}M" --dir down --time-limit \
			    $((LAB_SECS * 4)))
			echo "$lbl,$r,$rate,$d,$(kv "$line" mbps),$(kv "$line" \
			    seconds),$(kv "$line" errors)" >>"$out"
		done
		r=$((r + 1))
	done
	lab_stop
	echo
	echo "Lab aggregation: 1 download, two ${rate} Mbit/s upstream links" \
	    "(median of $REPEATS; ideal MPTCP = $((2 * rate)))"
	printf '%-13s %9s %6s\n' server Mbit/s ratio
	ref=$(awk -F, '$1 == "mpgw-tcp" { print $5 }' "$out" | median)
	for lbl in mpgw-tcp mpgw-mptcp; do
		m=$(awk -F, -v l="$lbl" '$1 == l { print $5 }' "$out" | median)
		printf '%-13s %9s %6s\n' "$lbl" "$m" "$(ratio "$m" "$ref")"
		echo "lab_aggregation,$lbl,down,$rate,mbps,$m" \
		    >>"$RES/summary.csv"
	done
}

# A download through mpgw; link 3 (the first subflow's) goes down a third
# of the way in. MPTCP should finish on link 4; plain TCP cannot.
lab_failover() {
	rate=${BENCH_LAB_RATE:-50}
	d=${BENCH_LAB_DELAY:-10}
	mb=$((rate * LAB_SECS / 8))
	cut=$((LAB_SECS / 3))
	[ $cut -ge 1 ] || cut=1
	say "== lab: failover, link 3 down after ${cut}s of a ${mb}M download"
	out=$RES/lab_failover.csv
	echo "label,repeat,completed,mbps,seconds,errors" >"$out"
	r=1
	while [ $r -le "$REPEATS" ]; do
		for lbl in mpgw-tcp mpgw-mptcp; do
			lab_start --rate1 "$rate" --rate2 "$rate" \
			    --delay1 "$d" --delay2 "$d" || return 0
			lab_sb "$lbl" --mode throughput --streams 1 \
			    --bytes "${mb}M" --dir down --time-limit \
			    $((LAB_SECS * 3)) >"$TMP/failover.out" &
			cp=$!
			sleep "$cut"
			ip -n "$LAB_NS_GW" link set "$LAB_GW_IF3" down
			wait $cp
			line=$(cat "$TMP/failover.out")
			e=$(kv "$line" errors)
			done_=no
			[ "$e" = 0 ] && done_=yes
			echo "$lbl,$r,$done_,$(kv "$line" mbps),$(kv "$line" \
			    seconds),$e" >>"$out"
			lab_stop
		done
		r=$((r + 1))
	done
	echo
	echo "Lab failover: link 3 down after ${cut}s of a ${mb}M download" \
	    "(links at $rate Mbit/s)"
	printf '%-13s %9s %9s %9s\n' server completed Mbit/s seconds
	for lbl in mpgw-tcp mpgw-mptcp; do
		c=$(awk -F, -v l="$lbl" '$1 == l && $3 == "yes"' "$out" |
		    wc -l)
		m=$(awk -F, -v l="$lbl" '$1 == l && $3 == "yes" { print $4 }' \
		    "$out" | median)
		sec=$(awk -F, -v l="$lbl" '$1 == l && $3 == "yes" \
		    { print $5 }' "$out" | median)
		printf '%-13s %9s %9s %9s\n' "$lbl" "$c/$REPEATS" "$m" "$sec"
		echo "lab_failover,$lbl,down,$rate,completed,$c/$REPEATS" \
		    >>"$RES/summary.csv"
	done
}

# Time to first byte for one request at several RTTs: direct TCP (gw
# routes), SOCKS5 through mpgw, Convert in the SYN (with and without a
# reply). Both segments get the same one-way delay D (RTT 2D each).
lab_ttfb_rtt() {
	delays=${BENCH_LAB_DELAYS:-5 20 50}
	n=${BENCH_LAB_TTFB_N:-20}
	say "== lab: TTFB vs RTT, one-way delays $delays ms, $n requests each"
	out=$RES/lab_ttfb.csv
	echo "label,delay_ms,rtt_ms,p50_us,p99_us,errors,syn_data" >"$out"
	for d in $delays; do
		lab_start --route --cdelay "$d" --delay1 "$d" || return 0
		for lbl in direct mpgw-tcp convert convert-silent; do
			line=$(lab_sb "$lbl" --mode ttfb --count "$n" \
			    --timeout 10)
			echo "$lbl,$d,$((2 * d)),$(kv "$line" p50_us)\
,$(kv "$line" p99_us),$(kv "$line" errors),$(kv "$line" syn_data)" \
			    >>"$out"
		done
		lab_stop
	done
	echo
	echo "Lab TTFB p50 in ms (client<->gw and gw<->srv RTT each; ratio =" \
	    "vs direct TCP; expected direct 2(C+S), SOCKS5 4C+2S, Convert C+2S)"
	printf '%-8s' rtt_ms
	for lbl in direct mpgw-tcp convert convert-silent; do
		printf ' %14s %6s' "$lbl" ratio
	done
	echo
	for d in $delays; do
		printf '%-8s' $((2 * d))
		b=$(awk -F, -v d="$d" '$1 == "direct" && $2 == d { print $4 }' \
		    "$out")
		for lbl in direct mpgw-tcp convert convert-silent; do
			v=$(awk -F, -v l="$lbl" -v d="$d" '$1 == l && $2 == d \
			    { print $4 }' "$out")
			ms=$(awk -v v="${v:-}" 'BEGIN { if (v == "") print "-"
			    else printf "%.1f\n", v / 1000 }')
			printf ' %14s %6s' "$ms" "$(ratio "${v:--}" "${b:--}")"
			echo "lab_ttfb,$lbl,,$((2 * d)),p50_us,${v:--}" \
			    >>"$RES/summary.csv"
		done
		echo
	done
}

part_lab() {
	if [ ! -f "$TOP/tests/lab/lab.sh" ]; then
		say "run.sh: tests/lab/lab.sh missing; skipping the lab part"
		return 0
	fi
	if [ ! -x "$MPGW" ]; then
		say "run.sh: $MPGW not built; skipping the lab part"
		return 0
	fi
	[ -n "${LINKEMU:-}" ] || for f in "$BUILD/linkemu" "$TOP/build/linkemu"
	do
		[ -x "$f" ] && LINKEMU=$f && export LINKEMU && break
	done
	TMP=$(mktemp -d /tmp/mpgw-bench-lab.XXXXXX)
	trap 'lab_stop; cleanup' EXIT
	trap 'exit 130' INT TERM
	[ -f "$RES/summary.csv" ] ||
	    echo "section,label,dir,param,metric,value" >"$RES/summary.csv"
	for sec in ${BENCH_LAB_SECTIONS:-aggregation failover ttfb}; do
		case $sec in
		aggregation) lab_aggregation ;;
		failover) lab_failover ;;
		ttfb) lab_ttfb_rtt ;;
		*) say "run.sh: unknown lab section '$sec'" ;;
		esac
	done
	lab_stop
	cleanup
	trap - EXIT
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
for part in $PARTS; do
	t0=$(date +%s)
	case $part in
	loopback) part_loopback ;;
	lab) part_lab ;;
	*) die "unknown part '$part' in BENCH_PARTS" ;;
	esac
	say "run.sh: $part part took $(($(date +%s) - t0)) s"
done
