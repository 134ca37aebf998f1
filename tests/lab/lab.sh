#!/bin/bash
# lab.sh - network-namespace lab for mpgw: client, gateway, server; two
# links client<->gateway and two links gateway<->server, per-link rate (tbf)
# and one-way delay/loss (linkemu over NFQUEUE; this kernel has no netem).
#
#   lab.sh up [--suffix S] [--rate1 R] [--rate2 R] [--crate1 R] [--crate2 R]
#             [--delay1 MS] [--delay2 MS] [--cdelay MS]
#             [--loss1 P] [--loss2 P] [--closs P] [--route]
#             [--tfo-cli V] [--tfo-gw V] [--tfo-srv V] [--far] [--fdelay MS]
#   lab.sh down [--suffix S]
#   lab.sh exec [--suffix S] cli|gw|srv|far CMD...
#   lab.sh env [--suffix S]        shell assignments for callers (eval)
#   lab.sh status [--suffix S]
#   lab.sh run [up options] -- CMD...   up, run CMD with the env, down
#
# Rates are Mbit/s, delays are one-way milliseconds applied to each direction
# of the link (RTT = 2 x delay), loss is percent per direction.  Links 1/2
# are client<->gateway (--crate1/--crate2, --cdelay, --closs); links 3/4 are
# gateway<->server (--rate1/--rate2, --delay1/--delay2, --loss1/--loss2).
# --far adds a fourth namespace behind srv (link 5, srv<->far, MPTCP
# disabled in far, no route to it from cli or gw): the two-tier lab, where
# gw is the edge and srv the concentrator; --fdelay is link 5's one-way delay.
# The suffix defaults to $LAB_SUFFIX, else "0".  See tests/lab/README.md.
#
# Safety: only namespaces named mpgw-{cli,gw,srv,far}-SUFFIX are touched;
# addresses come from 10.77.0.0/16 and exist only inside them; there is no
# default route anywhere; nothing is added to the root namespace.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# --- names and addresses ---------------------------------------------------

set_names() {
	SUFFIX=$1
	[[ $SUFFIX =~ ^[A-Za-z0-9_.-]{1,24}$ ]] ||
	    die "bad suffix '$SUFFIX' (letters, digits, _ . -, at most 24)"
	NS_CLI=mpgw-cli-$SUFFIX
	NS_GW=mpgw-gw-$SUFFIX
	NS_SRV=mpgw-srv-$SUFFIX
	NS_FAR=mpgw-far-$SUFFIX
	RUN=/tmp/mpgw-lab-$SUFFIX
}

# Link L uses 10.77.L.0/24; host .1 is cli, .2 is gw, .3 is srv.
CLI_IF1=c1 CLI_IP1=10.77.1.1
CLI_IF2=c2 CLI_IP2=10.77.2.1
GW_IF1=g1 GW_IP1=10.77.1.2
GW_IF2=g2 GW_IP2=10.77.2.2
GW_IF3=g3 GW_IP3=10.77.3.2
GW_IF4=g4 GW_IP4=10.77.4.2
SRV_IF3=s3 SRV_IP3=10.77.3.3
SRV_IF4=s4 SRV_IP4=10.77.4.3
# Link 5 (--far): host .3 is srv, .5 is far.
SRV_IF5=s5 SRV_IP5=10.77.5.3
FAR_IF5=f5 FAR_IP5=10.77.5.5

ns_of() {
	case $1 in
	cli) echo "$NS_CLI" ;;
	gw) echo "$NS_GW" ;;
	srv) echo "$NS_SRV" ;;
	far) echo "$NS_FAR" ;;
	*) die "unknown namespace '$1' (cli, gw, srv or far)" ;;
	esac
}

nsx() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

ns_exists() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"
}

# --- option parsing --------------------------------------------------------

num_re='^[0-9]+([.][0-9]+)?$'

need_num() {
	[[ $2 =~ $num_re ]] || die "$1 needs a number, got '$2'"
}

parse_up_opts() {
	RATE1='' RATE2='' CRATE1='' CRATE2=''
	DELAY1=0 DELAY2=0 CDELAY=0 FDELAY=0
	LOSS1=0 LOSS2=0 CLOSS=0
	ROUTE=0
	FAR=0
	TFO_CLI=0x5 TFO_GW=0x3 TFO_SRV=0x3
	REST=()
	while [ $# -gt 0 ]; do
		case $1 in
		--suffix) SUFFIX_OPT=${2:?--suffix needs a value}; shift ;;
		--rate1) need_num "$1" "${2:-}"; RATE1=$2; shift ;;
		--rate2) need_num "$1" "${2:-}"; RATE2=$2; shift ;;
		--crate1) need_num "$1" "${2:-}"; CRATE1=$2; shift ;;
		--crate2) need_num "$1" "${2:-}"; CRATE2=$2; shift ;;
		--delay1) need_num "$1" "${2:-}"; DELAY1=$2; shift ;;
		--delay2) need_num "$1" "${2:-}"; DELAY2=$2; shift ;;
		--cdelay) need_num "$1" "${2:-}"; CDELAY=$2; shift ;;
		--fdelay) need_num "$1" "${2:-}"; FDELAY=$2; shift ;;
		--loss1) need_num "$1" "${2:-}"; LOSS1=$2; shift ;;
		--loss2) need_num "$1" "${2:-}"; LOSS2=$2; shift ;;
		--closs) need_num "$1" "${2:-}"; CLOSS=$2; shift ;;
		--route) ROUTE=1 ;;
		--far) FAR=1 ;;
		--tfo-cli) TFO_CLI=${2:?}; shift ;;
		--tfo-gw) TFO_GW=${2:?}; shift ;;
		--tfo-srv) TFO_SRV=${2:?}; shift ;;
		--) shift; REST=("$@"); return 0 ;;
		*) die "unknown option '$1'" ;;
		esac
		shift
	done
}

# Leading --suffix for down/exec/env/status.
parse_suffix_only() {
	REST=()
	while [ $# -gt 0 ]; do
		case $1 in
		--suffix) SUFFIX_OPT=${2:?--suffix needs a value}; shift 2 ;;
		*) REST=("$@"); return 0 ;;
		esac
	done
}

# --- pieces of "up" ----------------------------------------------------------

linkemu_path() {
	local b=${MPGW_BUILD:-build}
	case $b in /*) ;; *) b=$TOP/$b ;; esac
	echo "${LINKEMU:-$b/linkemu}"
}

make_ns() {
	local ns=$1
	ip netns add "$ns"
	nsx "$ns" ip link set lo up
	# Before any interface exists, so "default" reaches them all.
	nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
	    net.ipv4.conf.default.rp_filter=0 \
	    net.ipv6.conf.all.disable_ipv6=1 \
	    net.ipv6.conf.default.disable_ipv6=1 \
	    net.mptcp.enabled=1
	nsx "$ns" ip mptcp limits set subflows 2 add_addr_accepted 2
}

# make_link NS_A IF_A IP_A NS_B IF_B IP_B
make_link() {
	ip -n "$1" link add "$2" type veth peer name "$5" netns "$4"
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$4" addr add "$6/24" dev "$5"
	ip -n "$1" link set "$2" up
	ip -n "$4" link set "$5" up
	nsx "$1" sysctl -qw "net.ipv4.conf.$2.rp_filter=0"
	nsx "$4" sysctl -qw "net.ipv4.conf.$5.rp_filter=0"
}

# shape NS IF RATE_MBIT: tbf on the egress of one end.
shape() {
	local burst
	[ -n "$3" ] || return 0
	# 2 ms worth of bytes, at least 16 KiB (tbf segments bigger GSO skbs).
	burst=$(awk -v r="$3" 'BEGIN { b = r * 1e6 / 8 * 0.002;
	    if (b < 16384) b = 16384; printf "%d", b }')
	tc -n "$1" qdisc replace dev "$2" root tbf rate "${3}mbit" \
	    burst "$burst" latency 100ms
}

# emulate NS IF QUEUE DELAY LOSS: delay/loss for packets arriving on IF.
#
# The rule sits in mangle PREROUTING of the receiving namespace, so it
# covers local and forwarded traffic, and the sender's TCP small-queue
# budget is not consumed by packets sitting in the delay line (veth orphans
# the skb on the way to the peer).
emulate() {
	local ns=$1 ifc=$2 q=$3 d=$4 l=$5 pidf log pid seed
	if awk -v d="$d" -v l="$l" 'BEGIN { exit !(d == 0 && l == 0) }'; then
		return 0
	fi
	[ -x "$LINKEMU_BIN" ] ||
	    die "$LINKEMU_BIN missing: run 'make' (or set MPGW_BUILD/LINKEMU)"
	# Distinct loss patterns for the two directions of a link.
	case $ns in
	"$NS_CLI") seed=$((q * 10 + 1)) ;;
	"$NS_GW") seed=$((q * 10 + 2)) ;;
	"$NS_FAR") seed=$((q * 10 + 5)) ;;
	*) seed=$((q * 10 + 3)) ;;
	esac
	pidf=$RUN/emu-$ns-$q.pid
	log=$RUN/emu-$ns-$q.log
	rm -f "$pidf"
	setsid ip netns exec "$ns" "$LINKEMU_BIN" --queue "$q" \
	    --delay-ms "$d" --loss "$l" --seed "$seed" --pidfile "$pidf" \
	    </dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$pidf.launch"
	for _ in $(seq 1 100); do
		[ -s "$pidf" ] && break
		kill -0 "$pid" 2>/dev/null ||
		    die "linkemu for $ns/$ifc failed: $(cat "$log")"
		sleep 0.02
	done
	[ -s "$pidf" ] || die "linkemu for $ns/$ifc did not start: $(cat "$log")"
	nsx "$ns" iptables -w -t mangle -A PREROUTING -i "$ifc" \
	    -j NFQUEUE --queue-num "$q"
	EMU_SUMMARY+=" $ns/$ifc:${d}ms/${l}%"
}

routes() {
	# cli: a subflow from its link-2 address must leave via link 2, also
	# towards gw's link-1 address (the usual MPTCP source routing).
	nsx "$NS_CLI" ip rule add pref 100 from "$CLI_IP2" lookup 102
	nsx "$NS_CLI" ip route add 10.77.2.0/24 dev "$CLI_IF2" \
	    src "$CLI_IP2" table 102
	nsx "$NS_CLI" ip route add 10.77.1.0/24 via "$GW_IP2" dev "$CLI_IF2" \
	    table 102
	# gw: the same for its link-4 address towards srv's link-3 address.
	nsx "$NS_GW" ip rule add pref 100 from "$GW_IP4" lookup 104
	nsx "$NS_GW" ip route add 10.77.4.0/24 dev "$GW_IF4" \
	    src "$GW_IP4" table 104
	nsx "$NS_GW" ip route add 10.77.3.0/24 via "$SRV_IP4" dev "$GW_IF4" \
	    table 104
	# srv replies by destination over the connected routes only.
	[ "$ROUTE" = 1 ] || return 0

	# Direct-route baseline: gw forwards; path 1 = links 1+3, path 2 =
	# links 2+4 in both directions.
	nsx "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
	nsx "$NS_GW" ip rule add pref 110 iif "$GW_IF2" lookup 202
	nsx "$NS_GW" ip route add 10.77.3.0/24 via "$SRV_IP4" dev "$GW_IF4" \
	    table 202
	nsx "$NS_GW" ip route add 10.77.4.0/24 dev "$GW_IF4" table 202
	nsx "$NS_CLI" ip route add 10.77.3.0/24 via "$GW_IP1" dev "$CLI_IF1"
	nsx "$NS_CLI" ip route add 10.77.4.0/24 via "$GW_IP2" dev "$CLI_IF2"
	nsx "$NS_CLI" ip route add 10.77.3.0/24 via "$GW_IP2" dev "$CLI_IF2" \
	    table 102
	nsx "$NS_CLI" ip route add 10.77.4.0/24 via "$GW_IP2" dev "$CLI_IF2" \
	    table 102
	nsx "$NS_SRV" ip route add 10.77.1.0/24 via "$GW_IP3" dev "$SRV_IF3"
	nsx "$NS_SRV" ip route add 10.77.2.0/24 via "$GW_IP4" dev "$SRV_IF4"
}

write_env() {
	{
		echo "LAB_RATE1='$RATE1'"
		echo "LAB_RATE2='$RATE2'"
		echo "LAB_CRATE1='$CRATE1'"
		echo "LAB_CRATE2='$CRATE2'"
		echo "LAB_DELAY1='$DELAY1'"
		echo "LAB_DELAY2='$DELAY2'"
		echo "LAB_CDELAY='$CDELAY'"
		echo "LAB_LOSS1='$LOSS1'"
		echo "LAB_LOSS2='$LOSS2'"
		echo "LAB_CLOSS='$CLOSS'"
		echo "LAB_ROUTE='$ROUTE'"
		echo "LAB_FAR='$FAR'"
		echo "LAB_FDELAY='$FDELAY'"
		echo "LAB_TFO_CLI='$TFO_CLI'"
		echo "LAB_TFO_GW='$TFO_GW'"
		echo "LAB_TFO_SRV='$TFO_SRV'"
	} >"$RUN/config"
}

fmt_rate() {
	if [ -n "$1" ]; then echo "${1}Mbit/s"; else echo unlimited; fi
}

up_abort() {
	[ "${UP_DONE:-0}" = 1 ] && return 0
	echo "lab.sh: up failed, tearing down" >&2
	lab_down quiet || true
}

cmd_up() {
	local tfo
	ip netns list >/dev/null 2>&1 || die "'ip netns' is not usable (root?)"
	[ -e /proc/sys/net/mptcp/enabled ] || die "kernel has no MPTCP"
	LINKEMU_BIN=$(linkemu_path)
	EMU_SUMMARY=

	lab_down quiet
	mkdir -p "$RUN"
	# Anything failing or an interrupt from here on leaves nothing behind.
	UP_DONE=0
	trap 'up_abort' EXIT
	trap 'exit 130' INT TERM

	make_ns "$NS_CLI"
	make_ns "$NS_GW"
	make_ns "$NS_SRV"
	make_link "$NS_CLI" "$CLI_IF1" "$CLI_IP1" "$NS_GW" "$GW_IF1" "$GW_IP1"
	make_link "$NS_CLI" "$CLI_IF2" "$CLI_IP2" "$NS_GW" "$GW_IF2" "$GW_IP2"
	make_link "$NS_GW" "$GW_IF3" "$GW_IP3" "$NS_SRV" "$SRV_IF3" "$SRV_IP3"
	make_link "$NS_GW" "$GW_IF4" "$GW_IP4" "$NS_SRV" "$SRV_IF4" "$SRV_IP4"
	routes
	if [ "$FAR" = 1 ]; then
		# The server behind the concentrator: plain TCP only.
		make_ns "$NS_FAR"
		nsx "$NS_FAR" sysctl -qw net.mptcp.enabled=0
		make_link "$NS_SRV" "$SRV_IF5" "$SRV_IP5" "$NS_FAR" "$FAR_IF5" \
		    "$FAR_IP5"
	fi

	# Extra subflows: cli from link 2 (towards gw), gw from link 4
	# (towards srv).  srv needs no endpoint: it accepts the joins.
	ip -n "$NS_CLI" mptcp endpoint add "$CLI_IP2" dev "$CLI_IF2" subflow
	ip -n "$NS_GW" mptcp endpoint add "$GW_IP4" dev "$GW_IF4" subflow

	nsx "$NS_CLI" sysctl -qw "net.ipv4.tcp_fastopen=$TFO_CLI"
	nsx "$NS_GW" sysctl -qw "net.ipv4.tcp_fastopen=$TFO_GW"
	nsx "$NS_SRV" sysctl -qw "net.ipv4.tcp_fastopen=$TFO_SRV"

	shape "$NS_CLI" "$CLI_IF1" "$CRATE1"
	shape "$NS_GW" "$GW_IF1" "$CRATE1"
	shape "$NS_CLI" "$CLI_IF2" "$CRATE2"
	shape "$NS_GW" "$GW_IF2" "$CRATE2"
	shape "$NS_GW" "$GW_IF3" "$RATE1"
	shape "$NS_SRV" "$SRV_IF3" "$RATE1"
	shape "$NS_GW" "$GW_IF4" "$RATE2"
	shape "$NS_SRV" "$SRV_IF4" "$RATE2"

	# Queue number = link number, in the namespace receiving the packets.
	emulate "$NS_GW" "$GW_IF1" 1 "$CDELAY" "$CLOSS"
	emulate "$NS_CLI" "$CLI_IF1" 1 "$CDELAY" "$CLOSS"
	emulate "$NS_GW" "$GW_IF2" 2 "$CDELAY" "$CLOSS"
	emulate "$NS_CLI" "$CLI_IF2" 2 "$CDELAY" "$CLOSS"
	emulate "$NS_SRV" "$SRV_IF3" 3 "$DELAY1" "$LOSS1"
	emulate "$NS_GW" "$GW_IF3" 3 "$DELAY1" "$LOSS1"
	emulate "$NS_SRV" "$SRV_IF4" 4 "$DELAY2" "$LOSS2"
	emulate "$NS_GW" "$GW_IF4" 4 "$DELAY2" "$LOSS2"
	if [ "$FAR" = 1 ]; then
		emulate "$NS_FAR" "$FAR_IF5" 5 "$FDELAY" 0
		emulate "$NS_SRV" "$SRV_IF5" 5 "$FDELAY" 0
	fi

	write_env
	UP_DONE=1
	trap - EXIT INT TERM

	tfo="cli=$(nsx "$NS_CLI" sysctl -n net.ipv4.tcp_fastopen)"
	tfo+=" gw=$(nsx "$NS_GW" sysctl -n net.ipv4.tcp_fastopen)"
	tfo+=" srv=$(nsx "$NS_SRV" sysctl -n net.ipv4.tcp_fastopen)"
	echo "lab $SUFFIX up: $NS_CLI $NS_GW $NS_SRV (run dir $RUN)"
	echo "  link1 cli $CLI_IP1 <-> gw $GW_IP1  rate $(fmt_rate "$CRATE1")" \
	    "delay ${CDELAY}ms loss ${CLOSS}%"
	echo "  link2 cli $CLI_IP2 <-> gw $GW_IP2  rate $(fmt_rate "$CRATE2")" \
	    "delay ${CDELAY}ms loss ${CLOSS}%"
	echo "  link3 gw $GW_IP3 <-> srv $SRV_IP3  rate $(fmt_rate "$RATE1")" \
	    "delay ${DELAY1}ms loss ${LOSS1}%"
	echo "  link4 gw $GW_IP4 <-> srv $SRV_IP4  rate $(fmt_rate "$RATE2")" \
	    "delay ${DELAY2}ms loss ${LOSS2}%"
	[ "$FAR" = 1 ] && echo "  link5 srv $SRV_IP5 <-> far $FAR_IP5 delay" \
	    "${FDELAY}ms (far: MPTCP disabled, no route from cli or gw)"
	echo "  route mode: $([ "$ROUTE" = 1 ] && echo "gw forwards" ||
	    echo "off (cli cannot reach srv)")"
	echo "  tcp_fastopen: $tfo"
	echo "  mptcp: limits subflows 2 add_addr_accepted 2;" \
	    "endpoints cli $CLI_IP2 dev $CLI_IF2 subflow," \
	    "gw $GW_IP4 dev $GW_IF4 subflow"
	echo "  emulators:${EMU_SUMMARY:- none}"
}

# --- down ------------------------------------------------------------------

# kill_wait PIDS...: TERM, wait up to 2 s, then KILL.
kill_wait() {
	local p alive
	[ $# -gt 0 ] || return 0
	kill -TERM "$@" 2>/dev/null || true
	for _ in $(seq 1 100); do
		alive=0
		for p in "$@"; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ $alive = 0 ] && return 0
		sleep 0.02
	done
	kill -KILL "$@" 2>/dev/null || true
}

lab_down() {
	local quiet=${1:-} f p ns pids=()
	# Our emulators first: a pid counts only if it still runs linkemu.
	if [ -d "$RUN" ]; then
		for f in "$RUN"/*.pid "$RUN"/*.pid.launch; do
			[ -s "$f" ] || continue
			p=$(cat "$f")
			[[ $p =~ ^[0-9]+$ ]] || continue
			if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null |
			    grep -q linkemu; then
				pids+=("$p")
			fi
		done
	fi
	for ns in "$NS_CLI" "$NS_GW" "$NS_SRV" "$NS_FAR"; do
		ns_exists "$ns" || continue
		nsx "$ns" iptables -w -t mangle -F PREROUTING 2>/dev/null ||
		    true
	done
	kill_wait ${pids[@]+"${pids[@]}"}
	# Whatever else still runs inside a lab namespace was started there
	# for the lab (servers, gateways under test).
	for ns in "$NS_CLI" "$NS_GW" "$NS_SRV" "$NS_FAR"; do
		ns_exists "$ns" || continue
		pids=()
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			pids+=("$p")
		done
		kill_wait ${pids[@]+"${pids[@]}"}
		ip netns del "$ns"
	done
	rm -rf "$RUN"
	[ -n "$quiet" ] || echo "lab $SUFFIX down"
}

# --- env, exec, status, run --------------------------------------------------

cmd_env() {
	cat <<EOF
LAB_SUFFIX='$SUFFIX'
LAB_RUN_DIR='$RUN'
LAB_NS_CLI='$NS_CLI'
LAB_NS_GW='$NS_GW'
LAB_NS_SRV='$NS_SRV'
LAB_NS_FAR='$NS_FAR'
LAB_CLI_IF1='$CLI_IF1'
LAB_CLI_IF2='$CLI_IF2'
LAB_GW_IF1='$GW_IF1'
LAB_GW_IF2='$GW_IF2'
LAB_GW_IF3='$GW_IF3'
LAB_GW_IF4='$GW_IF4'
LAB_SRV_IF3='$SRV_IF3'
LAB_SRV_IF4='$SRV_IF4'
LAB_CLI_IP1='$CLI_IP1'
LAB_CLI_IP2='$CLI_IP2'
LAB_GW_IP1='$GW_IP1'
LAB_GW_IP2='$GW_IP2'
LAB_GW_IP3='$GW_IP3'
LAB_GW_IP4='$GW_IP4'
LAB_SRV_IP3='$SRV_IP3'
LAB_SRV_IP4='$SRV_IP4'
LAB_SRV_IF5='$SRV_IF5'
LAB_FAR_IF5='$FAR_IF5'
LAB_SRV_IP5='$SRV_IP5'
LAB_FAR_IP5='$FAR_IP5'
EOF
	if [ -f "$RUN/config" ]; then
		echo "LAB_UP='1'"
		cat "$RUN/config"
	else
		echo "LAB_UP='0'"
	fi
}

cmd_status() {
	local ns
	for ns in "$NS_CLI" "$NS_GW" "$NS_SRV" "$NS_FAR"; do
		if ! ns_exists "$ns"; then
			echo "== $ns: absent"
			continue
		fi
		echo "== $ns"
		ip -n "$ns" -br addr
		ip -n "$ns" route
		ip -n "$ns" rule | grep -v -e 'lookup local' \
		    -e 'lookup main' -e 'lookup default' || true
		ip -n "$ns" mptcp limits
		ip -n "$ns" mptcp endpoint
		tc -n "$ns" qdisc show | grep tbf || true
		nsx "$ns" iptables -w -t mangle -S PREROUTING | grep NFQUEUE ||
		    true
	done
}

cmd_run() {
	local rc=0 child
	[ ${#REST[@]} -gt 0 ] || die "run: no command after --"
	cmd_up
	trap 'lab_down quiet' EXIT
	eval "$(cmd_env | sed 's/^/export /')"
	# In the background so that a signal interrupts "wait" at once; the
	# explicit <&0 keeps stdin, which bash would otherwise replace.
	"${REST[@]}" <&0 &
	child=$!
	trap 'kill -TERM "$child" 2>/dev/null; wait "$child" || true; exit 130' INT TERM
	wait "$child" || rc=$?
	exit $rc
}

# --- main ------------------------------------------------------------------

[ $# -ge 1 ] || usage
CMD=$1
shift
SUFFIX_OPT=
case $CMD in
up)
	parse_up_opts "$@"
	[ ${#REST[@]} -eq 0 ] || die "up: unexpected '${REST[*]}'"
	set_names "${SUFFIX_OPT:-${LAB_SUFFIX:-0}}"
	cmd_up
	;;
run)
	parse_up_opts "$@"
	set_names "${SUFFIX_OPT:-${LAB_SUFFIX:-0}}"
	cmd_run
	;;
down | env | status | exec)
	parse_suffix_only "$@"
	set_names "${SUFFIX_OPT:-${LAB_SUFFIX:-0}}"
	case $CMD in
	down)
		[ ${#REST[@]} -eq 0 ] || die "down: unexpected '${REST[*]}'"
		lab_down
		;;
	env) cmd_env ;;
	status) cmd_status ;;
	exec)
		[ ${#REST[@]} -ge 2 ] || die "exec: usage: exec cli|gw|srv|far CMD..."
		ns=$(ns_of "${REST[0]}")
		ns_exists "$ns" || die "$ns does not exist (lab.sh up first)"
		exec ip netns exec "$ns" "${REST[@]:1}"
		;;
	esac
	;;
-h | --help | help) usage ;;
*) die "unknown command '$CMD'" ;;
esac
