#!/usr/bin/env bash
# compare.sh: memtftpd against tftpd-hpa and dnsmasq, same client, same machine, same files.
#
# Usage (from anywhere in a clone, as root: dnsmasq serves TFTP only on port 69, and
# tftpd-hpa runs with -u root):
#
#     bash bench/compare.sh                  # full run: REPS=3, 64 MiB, 10,000 held sessions
#     QUICK=1 bash bench/compare.sh          # smoke run: under a minute
#     SCENARIOS="S2 S6" SERVERS="memtftpd dnsmasq" bash bench/compare.sh
#
# It builds memtftpd and the load generator (`memtftp bench`), installs tftpd-hpa and
# dnsmasq-base with apt-get if they are missing (keeping their services from starting),
# makes a data directory of random files, starts every server on loopback, and runs each
# scenario REPS times with the servers interleaved (A B C A B C ...). Every transfer's bytes
# are checked by the client. For each scenario and server it reports the median of the
# scenario's metric, the ratio memtftpd/peer, the server's CPU seconds (from a cgroup per
# server, so that forked transfer processes count; else utime + stime from /proc/PID/stat)
# and its peak memory (VmHWM, or the sum over a forking server's processes). A Markdown table goes to stdout
# and to bench/results/LATEST.md; each run's JSON summary is kept under bench/results/raw/.
# See bench/README.md for what each scenario measures.
#
# Knobs (environment variables; defaults in brackets, QUICK=1 values after the slash):
#   QUICK [0]             1: small sizes and one repetition, for a smoke test
#   REPS [3/1]            runs of each scenario per server
#   BIG_MIB [64/8]        size of the big file (S1-S4)
#   S5_N, S5_C [256/32]   S5 transfers and concurrency (both the same value by default)
#   S6_N [5000/500], S6_C [64]
#   S6_THREADS [2]        client threads in S6 (one per CPU of a 2-core machine: one client
#                         thread, not the server, was S6's limit; see bench/README.md)
#   S7_N, S7_C [64/8]     S7 uploads and concurrency
#   S8_SESSIONS [10000/200], S8_FILE_KIB [17/4], S8_DELAY [200ms]
#                         each S8 session sends (S8_FILE_KIB*2 + 2) packets, each S8_DELAY late
#   SCENARIOS ["S1 S1p S2 S3 S4 S5 S6 S7 S8"], SERVERS ["memtftpd tftpd-hpa dnsmasq"]
#   MEM_PORT [16969], HPA_PORT [16970]   (dnsmasq always uses 69)
#   RUN_TIMEOUT [900/60]  seconds one client run may take before it is killed
#   INSTALL [1]           0: never run apt-get
#   NO_BUILD [0]          1: use the binaries already in target/release

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    q() { printf '%s' "$2"; }
else
    q() { printf '%s' "$1"; }
fi
REPS=${REPS:-$(q 3 1)}
BIG_MIB=${BIG_MIB:-$(q 64 8)}
S5_N=${S5_N:-$(q 256 32)}
S5_C=${S5_C:-$S5_N}
S6_N=${S6_N:-$(q 5000 500)}
S6_C=${S6_C:-64}
S6_THREADS=${S6_THREADS:-2}
S7_N=${S7_N:-$(q 64 8)}
S7_C=${S7_C:-$S7_N}
S8_SESSIONS=${S8_SESSIONS:-$(q 10000 200)}
S8_FILE_KIB=${S8_FILE_KIB:-$(q 17 4)}
S8_DELAY=${S8_DELAY:-200ms}
SCENARIOS=${SCENARIOS:-"S1 S1p S2 S3 S4 S5 S6 S7 S8"}
SERVERS=${SERVERS:-"memtftpd tftpd-hpa dnsmasq"}
MEM_PORT=${MEM_PORT:-16969}
HPA_PORT=${HPA_PORT:-16970}
DNSMASQ_PORT=69
RUN_TIMEOUT=${RUN_TIMEOUT:-$(q 900 60)}
INSTALL=${INSTALL:-1}
NO_BUILD=${NO_BUILD:-0}

say() { printf '%s\n' "$*" >&2; }
die() { say "compare.sh: $*"; exit 1; }

for n in REPS BIG_MIB S5_N S5_C S6_N S6_C S6_THREADS S7_N S7_C S8_SESSIONS S8_FILE_KIB RUN_TIMEOUT; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, not '${!n}'"
done
[[ $(id -u) == 0 ]] || say "warning: not root: dnsmasq (port 69) and tftpd-hpa (-u root) will likely be skipped"

# ---------------------------------------------------------------------------------------------
# State, and cleanup on any exit.

declare -A PID=()        # server name -> pid of the running server
declare -A PORT=([memtftpd]=$MEM_PORT [tftpd-hpa]=$HPA_PORT [dnsmasq]=$DNSMASQ_PORT)
declare -A ROOTDIR=()    # server name -> directory it serves
declare -A SKIP=()       # server name -> why it is not compared
SAMPLER_PID=""
CLIENT_PID=""
work=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local pid
    for pid in $CLIENT_PID $SAMPLER_PID; do
        kill "$pid" 2>/dev/null || true
    done
    local name
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait_gone "${PID[$name]}" 50 || kill -KILL "${PID[$name]}" 2>/dev/null || true
    done
    cgroup_remove
    if [[ -n $work && -d $work ]]; then
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_gone PID TENTHS: waits up to TENTHS/10 s for PID to exit; status 1 if it is still there.
wait_gone() {
    local i
    for ((i = 0; i < $2; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}

# CPU accounting. tftpd-hpa forks a process per transfer and ignores SIGCHLD, so its
# children are reaped by the kernel and their CPU time never reaches the parent's cutime in
# /proc/PID/stat. Each server therefore runs in a cgroup of its own, whose CPU counter
# includes every process it ever held; /proc/PID/stat is the fallback where there is none.
CGROUP_KIND=""  # v1 (cpuacct), v2, or empty: /proc/PID/stat
CGROUP_BASE=""
if [[ -e /sys/fs/cgroup/cpuacct/cpuacct.usage ]]; then
    CGROUP_KIND=v1 CGROUP_BASE=/sys/fs/cgroup/cpuacct
elif [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
    CGROUP_KIND=v2 CGROUP_BASE=/sys/fs/cgroup
elif [[ -e /sys/fs/cgroup/unified/cgroup.controllers ]]; then
    CGROUP_KIND=v2 CGROUP_BASE=/sys/fs/cgroup/unified
fi

cgroup_dir() { printf '%s/memtftpd-compare.%s.%s' "$CGROUP_BASE" "$$" "$1"; }

# Moves PID into the cgroup of server NAME; falls back to /proc/PID/stat if it cannot.
cgroup_enter() {
    [[ -n $CGROUP_KIND ]] || return 0
    local dir
    dir=$(cgroup_dir "$1")
    if ! { mkdir -p "$dir" && echo "$2" >"$dir/cgroup.procs"; } 2>/dev/null; then
        say "note: cannot use cgroups ($dir); CPU comes from /proc/PID/stat, without tftpd-hpa's transfer processes"
        CGROUP_KIND=""
    fi
}

# Kills what is left in our cgroups (a server's transfer processes), then removes them.
cgroup_remove() {
    [[ -n $CGROUP_BASE ]] || return 0
    local dir pid i
    for dir in "$CGROUP_BASE"/memtftpd-compare."$$".*; do
        [[ -d $dir ]] || continue
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$dir/cgroup.procs" || true
        for ((i = 0; i < 50; i++)); do
            rmdir "$dir" 2>/dev/null && break
            sleep 0.1
        done
    done
}

# ---------------------------------------------------------------------------------------------
# Build, and get the peers.

cd "$repo"
if [[ $NO_BUILD != 1 ]]; then
    say "building memtftpd and memtftp (release)"
    cargo build --release -q -p tftp-bin
fi
MEMTFTPD=$repo/target/release/memtftpd
MEMTFTP=$repo/target/release/memtftp
[[ -x $MEMTFTPD && -x $MEMTFTP ]] || die "no $MEMTFTPD or $MEMTFTP: build with cargo build --release -p tftp-bin"

wanted() { [[ " $SERVERS " == *" $1 "* ]]; }

# Installs the packages in "$@" without letting their services start: a package's init
# script or unit (tftpd-hpa listens on port 69 by default) would take the port dnsmasq needs.
install_quietly() {
    local made_policy=0 status=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # invoke-rc.d and deb-systemd-invoke ask this script; 101 means "do not start".
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    say "installing $* with apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2 || status=$?
    if [[ $made_policy == 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    if [[ " $* " == *" tftpd-hpa "* ]]; then
        # In case a service started anyway, stop it and keep it from starting at boot.
        if [[ -d /run/systemd/system ]]; then
            systemctl disable --now tftpd-hpa >/dev/null 2>&1 || true
        elif [[ -x /etc/init.d/tftpd-hpa ]]; then
            /etc/init.d/tftpd-hpa stop >/dev/null 2>&1 || true
            update-rc.d tftpd-hpa disable >/dev/null 2>&1 || true
        fi
    fi
    return "$status"
}

missing=()
if wanted tftpd-hpa && ! command -v in.tftpd >/dev/null; then missing+=(tftpd-hpa); fi
# dnsmasq-base is the binary without the dnsmasq package's system service (a DNS server).
if wanted dnsmasq && ! command -v dnsmasq >/dev/null; then missing+=(dnsmasq-base); fi
if ((${#missing[@]})); then
    if [[ $INSTALL == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        install_quietly "${missing[@]}" || say "warning: apt-get install ${missing[*]} failed"
    else
        say "not installing ${missing[*]} (INSTALL=$INSTALL, uid $(id -u))"
    fi
fi
if wanted tftpd-hpa; then
    if ! command -v in.tftpd >/dev/null; then
        SKIP[tftpd-hpa]="in.tftpd is not installed"
    elif [[ $(id -u) != 0 ]]; then
        SKIP[tftpd-hpa]="needs root (-u root, -s chroot)"
    fi
fi
if wanted dnsmasq; then
    if ! command -v dnsmasq >/dev/null; then
        SKIP[dnsmasq]="dnsmasq is not installed"
    elif [[ $(id -u) != 0 ]]; then
        SKIP[dnsmasq]="needs root (TFTP on port 69)"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Data: a big file (S1-S4), 1 MiB (S5), 1 KiB (S6), the held-session file (S8).

stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$here/results
raw=$results/raw/$stamp
mkdir -p "$raw"
[[ -e $results/.gitignore ]] || printf 'raw/\n' >"$results/.gitignore"
work=$(mktemp -d /tmp/memtftpd-compare.XXXXXX)
data=$work/data
mkdir -p "$data"
say "making data files in $data"
head -c "$((BIG_MIB << 20))" /dev/urandom >"$data/big.bin"
head -c "$((1 << 20))" /dev/urandom >"$data/mid.bin"
head -c 1024 /dev/urandom >"$data/small.bin"
head -c "$((S8_FILE_KIB << 10))" /dev/urandom >"$data/held.bin"
sha256sum "$data"/*.bin | sed "s|$data/||" >"$raw/sha256sums.txt"
# tftpd-hpa writes uploads into the directory it serves: give it its own (hard links, no copy),
# so that what it stores never shows up in another server's directory.
ROOTDIR[memtftpd]=$data
ROOTDIR[dnsmasq]=$data
ROOTDIR[tftpd-hpa]=$work/hpa
mkdir -p "$work/hpa"
ln "$data"/*.bin "$work/hpa/"

# One socket per transfer on both sides (client; tftpd-hpa and dnsmasq too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Servers.

# Whether some UDP socket (any address, IPv4 or IPv6) is bound to local port $1. Checked
# before each start: dnsmasq binds with SO_REUSEADDR and would start "successfully" next to a
# service already on port 69, which would then get some of the requests.
port_busy() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/udp /proc/net/udp6 2>/dev/null
}

start_server() {
    local name=$1 port=${PORT[$1]} dir=${ROOTDIR[$1]} log=$raw/$1.log pid
    if port_busy "$port"; then
        say "UDP port $port is already in use (ss -ulnp 'sport = :$port' shows by whom)"
        return 1
    fi
    case $name in
        memtftpd)
            "$MEMTFTPD" --listen "127.0.0.1:$port" --root "$dir" --log-level warn \
                --max-sessions 20000 --max-sessions-per-peer-ip 20000 --max-window-size 64 \
                </dev/null >>"$log" 2>&1 &
            ;;
        tftpd-hpa)
            # -L foreground, -s chroot to DIR, -c allow creating files (uploads), -p no extra
            # permission checks (an upload may replace an earlier one), -B largest blksize.
            in.tftpd -L -a "127.0.0.1:$port" -s -c -p -u root -B 65464 "$dir" </dev/null >>"$log" 2>&1 &
            ;;
        dnsmasq)
            # --port=0: no DNS. --tftp-max: concurrent transfers (default 50).
            # -k: foreground without --no-daemon's debug mode (which also copies every log
            # line to stderr).
            dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$dir" \
                --listen-address=127.0.0.1 --bind-interfaces --user=root --group=root \
                --tftp-max="$((S8_SESSIONS + S5_C + 100))" --quiet-tftp \
                --log-facility=/dev/null </dev/null >>"$log" 2>&1 &
            ;;
    esac
    pid=$!
    PID[$name]=$pid
    cgroup_enter "$name" "$pid"
    # Ready when it serves the small file (bounded: 50 tries).
    local i
    for ((i = 0; i < 50; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            unset 'PID[$name]'
            say "$name exited at start; its log ($log):"
            tail -n 5 "$log" >&2 || true
            return 1
        fi
        if timeout 5 "$MEMTFTP" bench "127.0.0.1:$port" small.bin -n 1 -c 1 --retries 1 \
            --retry-timeout 200ms --verify-file "$data/small.bin" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    say "$name does not serve 127.0.0.1:$port/small.bin"
    stop_server "$name"
    return 1
}

stop_server() {
    local pid=${PID[$1]:-}
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid" 100 || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'PID[$1]'
}

for name in $SERVERS; do
    case $name in memtftpd | tftpd-hpa | dnsmasq) ;; *) die "unknown server '$name'" ;; esac
done
wanted memtftpd || die "SERVERS must include memtftpd: it is what the others are compared with"
active=() # memtftpd first: the report divides by the peers that follow it
for name in memtftpd tftpd-hpa dnsmasq; do
    wanted "$name" || continue
    [[ -z ${SKIP[$name]:-} ]] || { say "skipping $name: ${SKIP[$name]}"; continue; }
    if start_server "$name"; then
        active+=("$name")
        say "started $name (pid ${PID[$name]}) on 127.0.0.1:${PORT[$name]}"
    else
        SKIP[$name]="did not start on port ${PORT[$name]} (see bench/results/raw/$stamp/$name.log)"
        say "skipping $name: ${SKIP[$name]}"
    fi
done
[[ " ${active[*]} " == *" memtftpd "* ]] || die "memtftpd did not start; see $raw/memtftpd.log"

# ---------------------------------------------------------------------------------------------
# Measurements from /proc.

ticks=$(getconf CLK_TCK)

# CPU seconds used so far by server NAME (pid PID): its cgroup's counter, or else utime +
# stime + cutime + cstime from /proc/PID/stat (which only count children that were waited for).
cpu_seconds() {
    local dir
    dir=$(cgroup_dir "$1")
    case $CGROUP_KIND in
        v1) awk '{ printf "%.3f\n", $1 / 1e9 }' "$dir/cpuacct.usage" ;;
        v2) awk '/^usage_usec/ { printf "%.3f\n", $2 / 1e6 }' "$dir/cpu.stat" ;;
        *)
            # Fields after "(comm) ": state is 1, utime 12, stime 13, cutime 14, cstime 15.
            sed 's/.*) //' "/proc/$2/stat" |
                awk -v t="$ticks" '{ printf "%.3f\n", ($12 + $13 + $14 + $15) / t }'
            ;;
    esac
}

# PID and its children (tftpd-hpa forks one process per transfer).
tree_pids() {
    printf '%s\n' "$1"
    pgrep -P "$1" || true
}

# "RSS_KiB PSS_KiB" summed over PID and its children (PSS counts a shared page once in all).
tree_memory() {
    local pids
    pids=$(tree_pids "$1" | sed 's|.*|/proc/&/status|')
    local rss
    # shellcheck disable=SC2086 # one path per word
    rss=$(cat $pids 2>/dev/null | awk '/^VmRSS:/ { s += $2 } END { print s + 0 }')
    if [[ ${2:-} == pss ]]; then
        # shellcheck disable=SC2086
        cat ${pids//status/smaps_rollup} 2>/dev/null |
            awk -v rss="$rss" '/^Pss:/ { s += $2 } END { print rss, s + 0 }'
    else
        printf '%s %s\n' "$rss" "$rss"
    fi
}

# Samples tree_memory every 0.5 s into FILE until killed (bounded by RUN_TIMEOUT).
sampler() {
    local i
    for ((i = 0; i < RUN_TIMEOUT * 2 + 20; i++)); do
        tree_memory "$1" "$3" >>"$2" 2>/dev/null || true
        sleep 0.5
    done
}

# Waits (bounded, 15 s) until the server has no transfer processes left, so that the run's
# CPU time is all counted and the next run starts clean.
wait_children() {
    local i
    for ((i = 0; i < 150; i++)); do
        [[ -z $(pgrep -P "$1" || true) ]] && return 0
        sleep 0.1
    done
    say "  note: $2 still has $(pgrep -cP "$1" || true) transfer processes after 15 s"
}

# JSON number for KEY in a `memtftp bench --json` summary (pretty-printed, one key a line).
json_num() {
    sed -n "s/^ *\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1
}

# ---------------------------------------------------------------------------------------------
# Scenarios.

# The client arguments for scenario $1 (after SERVER).
scenario_args() {
    case $1 in
        S1 | S1p) echo "big.bin -n 1 -c 1 --verify-file $data/big.bin" ;;
        S2) echo "big.bin -n 1 -c 1 --verify-file $data/big.bin --blksize 1468" ;;
        S3) echo "big.bin -n 1 -c 1 --verify-file $data/big.bin --blksize 65464" ;;
        S4) echo "big.bin -n 1 -c 1 --verify-file $data/big.bin --blksize 1468 --windowsize 16" ;;
        S5) echo "mid.bin -n $S5_N -c $S5_C --verify-file $data/mid.bin" ;;
        S6) echo "small.bin -n $S6_N -c $S6_C --threads $S6_THREADS --verify-file $data/small.bin" ;;
        S7) echo "up -n $S7_N -c $S7_C --upload --size 1MiB --read-back" ;;
        S8) echo "held.bin -n $S8_SESSIONS -c $S8_SESSIONS --verify-file $data/held.bin --send-delay $S8_DELAY" ;;
        *) return 1 ;;
    esac
}

describe() {
    case $1 in
        S1) echo "1 x ${BIG_MIB} MiB, no options (blksize 512)" ;;
        S1p) echo "S1 pinned to CPU 0" ;;
        S2) echo "1 x ${BIG_MIB} MiB, blksize 1468" ;;
        S3) echo "1 x ${BIG_MIB} MiB, blksize 65464" ;;
        S4) echo "1 x ${BIG_MIB} MiB, blksize 1468, windowsize 16" ;;
        S5) echo "$S5_N x 1 MiB, $S5_C at once" ;;
        S6) echo "$S6_N x 1 KiB, $S6_C at once, $S6_THREADS client threads" ;;
        S7) echo "$S7_N x 1 MiB upload + read-back, $S7_C at once" ;;
        S8) echo "$S8_SESSIONS held sessions (${S8_FILE_KIB} KiB, each packet $S8_DELAY late)" ;;
    esac
}

unit() {
    case $1 in
        S6) echo "transfers/s" ;;
        S8) echo "KiB/session, lower is better" ;;
        *) echo "MiB/s" ;;
    esac
}

# Runs scenario $1 once against server $2 (repetition $3); appends a line to $table.
run_one() {
    local scen=$1 name=$2 rep=$3 pid port out samples rc=0 pss_mode=""
    port=${PORT[$name]}
    out=$raw/$scen.$name.$rep.json
    samples=$raw/$scen.$name.$rep.memory
    if [[ $scen == S8 ]]; then
        # A fresh server: the idle figure must not include what earlier scenarios left behind.
        stop_server "$name"
        start_server "$name" || { say "  $name did not restart"; return 0; }
        sleep 1
        pss_mode=pss
    fi
    pid=${PID[$name]}
    wait_children "$pid" "$name"
    echo 5 >"/proc/$pid/clear_refs" # resets VmHWM to the current RSS
    local idle cpu0 cpu1 hwm
    idle=$(tree_memory "$pid" "$pss_mode")
    cpu0=$(cpu_seconds "$name" "$pid")
    : >"$samples"
    sampler "$pid" "$samples" "$pss_mode" &
    SAMPLER_PID=$!

    local -a client=(timeout -k 5 "$RUN_TIMEOUT" "$MEMTFTP" bench "127.0.0.1:$port")
    # shellcheck disable=SC2207 # the arguments are plain words
    client+=($(scenario_args "$scen") --json)
    local mask=""
    if [[ $scen == S1p ]]; then
        mask=$(taskset -p "$pid" | sed 's/.*: //')
        taskset -a -p -c 0 "$pid" >/dev/null
        client=(taskset -c 0 "${client[@]}")
    fi
    # In the background, so that a signal to this script is handled at once (bash runs traps
    # only between foreground commands, but interrupts `wait`).
    "${client[@]}" >"$out" 2>"$raw/$scen.$name.$rep.stderr" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=""
    if [[ -n $mask ]]; then
        taskset -a -p "$mask" "$pid" >/dev/null
    fi
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    wait_children "$pid" "$name"
    cpu1=$(cpu_seconds "$name" "$pid")
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    tree_memory "$pid" "$pss_mode" >>"$samples"

    local failed metric peak_rss peak_pss cpu
    failed=$(json_num "$out" failed)
    failed=${failed:-?}
    read -r peak_rss peak_pss < <(awk -v h="$hwm" '
        { if ($1 > r) r = $1; if ($2 > p) p = $2 }
        END { if (h > r) r = h; print r + 0, p + 0 }' "$samples")
    cpu=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')
    case $scen in
        S6) metric=$(json_num "$out" transfers_per_second) ;;
        S8)
            local idle_pss=${idle#* }
            metric=$(awk -v p="$peak_pss" -v i="$idle_pss" -v n="$S8_SESSIONS" \
                'BEGIN { printf "%.2f", (p - i) / n }')
            ;;
        *) metric=$(json_num "$out" mib_per_second) ;;
    esac
    local ok=1
    if [[ $rc != 0 || $failed != 0 ]]; then
        ok=0
        say "  FAILED: $scen $name rep $rep: exit $rc, failed $failed; $(grep -A3 first_failures "$out" 2>/dev/null | sed -n 2,4p | tr -s ' \n' ' ')$(head -c 300 "$raw/$scen.$name.$rep.stderr")"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$name" "$rep" "$ok" "${metric:-0}" \
        "$cpu" "$peak_rss" "${idle%% *}" "$peak_pss" >>"$table"
    say "  $scen $name #$rep: $(printf '%.1f' "${metric:-0}") $(unit "$scen" | cut -d, -f1), cpu ${cpu} s, peak rss $((peak_rss / 1024)) MiB$([[ $ok == 1 ]] || echo ', FAILED')"
}

table=$raw/runs.tsv
printf 'scenario\tserver\trep\tok\tmetric\tcpu_s\tpeak_rss_kib\tidle_rss_kib\tpeak_pss_kib\n' >"$table"
started=$SECONDS
for scen in $SCENARIOS; do
    scenario_args "$scen" >/dev/null || die "unknown scenario '$scen'"
    say "$scen: $(describe "$scen")"
    for ((rep = 1; rep <= REPS; rep++)); do
        for name in "${active[@]}"; do
            if [[ $scen == S7 && $name == dnsmasq ]]; then
                continue # dnsmasq's TFTP server is read-only
            fi
            [[ -n ${PID[$name]:-} ]] || start_server "$name" || continue
            run_one "$scen" "$name" "$rep"
        done
    done
done
elapsed=$((SECONDS - started))

# ---------------------------------------------------------------------------------------------
# Report.

version_of() {
    case $1 in
        memtftpd) "$MEMTFTPD" --version 2>&1 | head -n 1 ;;
        tftpd-hpa) in.tftpd -V 2>&1 | head -n 1 ;;
        dnsmasq) dnsmasq --version 2>&1 | head -n 1 | sed 's/  Copyright.*//' ;;
    esac
}

peers=()
for name in "${active[@]}"; do [[ $name == memtftpd ]] || peers+=("$name"); done

report() {
    echo "# memtftpd vs peers: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
    for name in "${active[@]}"; do
        echo "- $name: $(version_of "$name")"
    done
    for name in "${!SKIP[@]}"; do
        echo "- $name: skipped (${SKIP[$name]})"
    done
    echo "- Settings: QUICK=$QUICK REPS=$REPS BIG_MIB=$BIG_MIB S5=${S5_N}/${S5_C} S6=${S6_N}/${S6_C}/${S6_THREADS}t S7=${S7_N}/${S7_C} S8=${S8_SESSIONS}x${S8_FILE_KIB}KiB@${S8_DELAY}; ran ${elapsed} s; raw: bench/results/raw/$stamp/"
    local cpu_source="/proc/PID/stat utime+stime (tftpd-hpa's transfer processes not counted)"
    [[ -z $CGROUP_KIND ]] || cpu_source="the server's cgroup ($CGROUP_KIND), every process it forked included"
    echo "- Medians over $REPS run(s); ratio = memtftpd / peer (above 1: memtftpd faster; in S8 lower is"
    echo "  better). CPU = server CPU seconds per run (median), from $cpu_source."
    echo "  Peak RSS = highest over the runs: VmHWM, reset before each run, or for tftpd-hpa the sum"
    echo "  over its per-transfer processes sampled every 0.5 s (shared pages counted in each)."
    echo "  S8 = (peak PSS while held - idle PSS) / sessions, on a freshly started server."
    echo
    local header="| Scenario | Metric | memtftpd |" rule="|---|---|---:|"
    local name
    for name in "${peers[@]}"; do header+=" $name |"; rule+="---:|"; done
    for name in "${peers[@]}"; do header+=" memtftpd/$name |"; rule+="---:|"; done
    header+=" CPU s ($(tr ' ' '/' <<<"${active[*]}")) | Peak RSS MiB ($(tr ' ' '/' <<<"${active[*]}")) |"
    rule+="---|---|"
    echo "$header"
    echo "$rule"
    local scen
    for scen in $SCENARIOS; do
        awk -F'\t' -v scen="$scen" -v desc="$scen $(describe "$scen")" -v unit="$(unit "$scen")" \
            -v servers="${active[*]}" '
            function median(list,   a, n, i, j, t) {
                n = split(list, a, " ")
                if (n == 0) return ""
                for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
                return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            }
            function fmt(v) {
                if (v == "") return "—"
                v += 0
                return sprintf(v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v)
            }
            NR > 1 && $1 == scen {
                runs[$2]++
                all[$2] = all[$2] " " $5; allcpu[$2] = allcpu[$2] " " $6
                if ($4 == 1) { good[$2] = good[$2] " " $5; cpu[$2] = cpu[$2] " " $6 } else bad[$2]++
                if ($7 / 1024 > peak[$2]) peak[$2] = $7 / 1024
            }
            END {
                n = split(servers, s, " ")
                row = "| " desc " | " unit " |"
                for (i = 1; i <= n; i++) {
                    # Ratios use successful runs only; when every run failed, the cell still
                    # shows what the failed runs measured, marked as such.
                    m[i] = median(good[s[i]])
                    if (good[s[i]] == "") cpu[s[i]] = allcpu[s[i]]
                    cell = runs[s[i]] ? fmt(good[s[i]] != "" ? m[i] : median(all[s[i]])) : "n/a"
                    if (bad[s[i]]) cell = cell " (" bad[s[i]] "/" runs[s[i]] " failed)"
                    row = row " " cell " |"
                }
                for (i = 2; i <= n; i++)
                    row = row " " ((m[1] != "" && m[i] != "" && m[i] > 0) ? sprintf("%.2f", m[1] / m[i]) : "—") " |"
                c = ""; p = ""
                for (i = 1; i <= n; i++) {
                    c = c (i > 1 ? " / " : "") (runs[s[i]] ? fmt(median(cpu[s[i]])) : "—")
                    p = p (i > 1 ? " / " : "") (runs[s[i]] ? sprintf("%.0f", peak[s[i]]) : "—")
                }
                print row " " c " | " p " |"
            }' "$table"
    done
}

report | tee "$raw/report.md" >"$results/LATEST.md"
cat "$results/LATEST.md"
if awk -F'\t' 'NR > 1 && $4 == 0 { bad = 1 } END { exit !bad }' "$table"; then
    say "some runs failed: see the FAILED lines above and $raw/"
    exit 1
fi
