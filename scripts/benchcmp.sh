#!/usr/bin/env bash
# `make bench-cmp`: rivermon's CPU per 1,000 samples for two revisions,
# measured in the same run, from the outside.
#
#   scripts/benchcmp.sh BASE [HEAD]
#
# BASE and HEAD are git revisions; without HEAD, the working tree as it is
# (uncommitted changes included). Each revision's cmd/rivermon is built from
# a temporary `git worktree` (removed afterwards) and run as a program with
# its own shipped configs/ (stations, rules), pointed at a fresh Mosquitto
# and InfluxDB 1.8 through the contract's RIVERMON_* variables. A load
# generator built from this tree (scripts/benchload: paho only, nothing of
# rivermon's, so the same for both) publishes a fixed workload, waits until
# InfluxDB holds every sample, and reads rivermon's user+system CPU time
# from /proc/PID/stat: all of it, start-up included, nothing subtracted.
#
# Two workloads, the stations of BASE's configs/stations.yaml taking turns:
# single readings (1 sample a message) and backlogs (100 samples a
# message). Rounds alternate A B A B …; every run of rivermon starts with an
# empty spool, a fresh broker and a fresh database. Prints median and
# min–max of CPU-ms per 1,000 samples for each revision and the relative
# difference of the medians.
#
# Environment: ROUNDS (5), SINGLE_SAMPLES (50000), BACKLOG_SAMPLES (200000;
# 0 skips a workload), BACKLOG_PER_MSG (100), CPUPROFILE=1 has each rivermon
# write a CPU profile into its round's folder (with KEEP=1), KEEP=1 keeps the run folder
# (logs, per-round results), GO, RIVERMON_MOSQUITTO, RIVERMON_INFLUXD.
set -euo pipefail

die() {
	echo "benchcmp: $*" >&2
	exit 1
}
usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
}
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h | --help | help) usage ;; esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
: "${ROUNDS:=5}" "${SINGLE_SAMPLES:=50000}" "${BACKLOG_SAMPLES:=200000}" "${BACKLOG_PER_MSG:=100}"
: "${STOP_TIMEOUT:=15}" # seconds a process gets to exit after SIGTERM before SIGKILL
for v in ROUNDS SINGLE_SAMPLES BACKLOG_SAMPLES BACKLOG_PER_MSG STOP_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v=${!v} is not a whole number"
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
[ "$BACKLOG_PER_MSG" -ge 1 ] || die "BACKLOG_PER_MSG must be at least 1"
[ $((BACKLOG_SAMPLES % BACKLOG_PER_MSG)) -eq 0 ] || die "BACKLOG_SAMPLES=$BACKLOG_SAMPLES is not a multiple of BACKLOG_PER_MSG=$BACKLOG_PER_MSG"
[ "$SINGLE_SAMPLES" -gt 0 ] || [ "$BACKLOG_SAMPLES" -gt 0 ] || die "SINGLE_SAMPLES and BACKLOG_SAMPLES are both 0: nothing to measure"

git rev-parse --git-dir >/dev/null 2>&1 || die "$root is not a git checkout"
commit() { # commit REV: the full hash, or a clear error
	git rev-parse --verify --quiet "$1^{commit}" || die "'$1' is not a commit in this repository (git fetch? a typo?)"
}
base_rev=$1
base_sha=$(commit "$base_rev")
head_rev=${2:-}
head_sha=""
[ -n "$head_rev" ] && head_sha=$(commit "$head_rev")

find_bin() { # find_bin NAME ENV: the server program, or exit
	find_server "$1" "$2" || die "$1 not found (set $2, or run make deps)"
}
go=${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}
[ -x "$go" ] || command -v "$go" >/dev/null || die "go not found (set GO, or put Go 1.26 on PATH)"
mosquitto=$(find_bin mosquitto RIVERMON_MOSQUITTO)
influxd=$(find_bin influxd RIVERMON_INFLUXD)
command -v curl >/dev/null || die "curl not found (make deps installs it)"
# A build from the module proxy says "vunknown"; its build info knows.
influx_version=$("$go" version -m "$influxd" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/influxdata/influxdb" { print $3 }' || true)
[ -n "$influx_version" ] || influx_version=$("$influxd" version 2>/dev/null | awk '{ print $2; exit }' || true)
[[ $influx_version == v1.8.* ]] || echo "benchcmp: warning: $influxd is InfluxDB ${influx_version:-of unknown version}, not 1.8 (make deps builds 1.8.10 into .tools/bin)" >&2
mosquitto_version=$("$mosquitto" -h 2>&1 | head -n1 || true)
hz=$(getconf CLK_TCK)

# Only what this script sets reaches rivermon: a RIVERMON_* variable of the
# caller's (a token, an Alertmanager URL) would change what it does, and
# GOGC/GOMEMLIMIT/GODEBUG would change how it runs (it sets its own GC
# target when GOGC is unset).
for v in $(compgen -e); do
	case "$v" in RIVERMON_* | GOGC | GOMEMLIMIT | GODEBUG) unset "$v" ;; esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/benchcmp.XXXXXX")
worktrees=()
pids=()
names=()
failed=1
stop() { # stop PID NAME: SIGTERM, wait (SIGKILL after STOP_TIMEOUT s); returns the exit status
	local pid=$1 name=$2 status=0
	terminate "$pid" || echo "benchcmp: $name (pid $pid) was still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL" >&2
	wait "$pid" 2>/dev/null || status=$?
	local i
	for i in "${!pids[@]}"; do [ "${pids[i]}" = "$pid" ] && unset 'pids[i]' 'names[i]'; done
	return "$status"
}
cleanup() {
	trap '' INT TERM HUP
	local i
	for i in $(printf '%s\n' "${!pids[@]}" | sort -rn); do stop "${pids[i]}" "${names[i]}" || true; done
	for w in "${worktrees[@]}"; do
		git worktree remove --force "$w" 2>/dev/null || echo "benchcmp: could not remove the worktree $w (git worktree prune, once it is gone)" >&2
	done
	if [ "$failed" = 1 ] || [ -n "${KEEP:-}" ]; then
		rm -rf "$tmp/src" "$tmp/bin" "$tmp/A/rivermon" "$tmp/B/rivermon"
		echo "benchcmp: logs and per-round results kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'echo "benchcmp: interrupted" >&2; exit 130' INT TERM HUP

start() { # start NAME LOG COMMAND...: in a session of its own (Ctrl-C reaches this script, which stops it)
	local name=$1 log=$2
	shift 2
	# setsid does not fork here (a background job of a script leads no
	# process group), so $! is the program's own pid, whose /proc/PID/stat
	# is read.
	setsid "$@" </dev/null >"$log" 2>&1 &
	pids+=($!)
	names+=("$name")
	started=$!
}
wait_port() { # wait_port PID NAME PORT LOG
	local t
	for ((t = 0; t < 600; t++)); do
		port_open "$3" && return 0
		alive "$1" || break
		sleep 0.1
	done
	echo "benchcmp: $2 did not listen on 127.0.0.1:$3; the end of $4:" >&2
	tail -n 20 "$4" | sed 's/^/    /' >&2
	exit 1
}

# Build: the load generator from this tree, rivermon of each revision from
# a worktree of its own (the working tree itself for a missing HEAD).
mkdir -p "$tmp/bin" "$tmp/src" "$tmp/run"
echo "benchcmp: building the load generator and both revisions in $tmp"
"$go" build -o "$tmp/bin/benchload" ./scripts/benchload 2>"$tmp/build-benchload.log" ||
	{ cat "$tmp/build-benchload.log" >&2; die "building scripts/benchload failed"; }
build() { # build SIDE SHA (empty: the working tree): rivermon into $tmp/SIDE, configs beside it
	local side=$1 sha=$2 src=$root
	if [ -n "$sha" ]; then
		src=$tmp/src/$side
		git worktree add --detach --quiet "$src" "$sha" || die "git worktree add $src $sha failed"
		worktrees+=("$src")
	fi
	mkdir -p "$tmp/$side"
	(cd "$src" && "$go" build -o "$tmp/$side/rivermon" ./cmd/rivermon) >"$tmp/build-$side.log" 2>&1 ||
		{ cat "$tmp/build-$side.log" >&2; die "building cmd/rivermon of ${sha:-the working tree} failed"; }
	[ -f "$src/configs/rivermon.yaml" ] || die "${sha:-the working tree} has no configs/rivermon.yaml"
	cp -r "$src/configs" "$tmp/$side/configs"
}
describe() { # describe SHA (empty: the working tree)
	local sha=${1:-$(git rev-parse HEAD)} subject
	subject=$(git log -1 --format=%s "$sha")
	[ "${#subject}" -gt 60 ] && subject="${subject:0:59}…"
	subject="$(git rev-parse --short "$sha") $subject"
	if [ -n "$1" ]; then
		echo "$subject"
	elif git diff --quiet HEAD -- 2>/dev/null; then
		echo "working tree (no changes to $subject)"
	else
		echo "working tree (uncommitted changes on $subject)"
	fi
}
build A "$base_sha"
build B "$head_sha"
desc_A=$(describe "$base_sha")
desc_B=$(describe "$head_sha")
for w in "${worktrees[@]}"; do git worktree remove --force "$w"; done
worktrees=()
if ! diff -rq "$tmp/A/configs" "$tmp/B/configs" >/dev/null; then
	echo "benchcmp: note: the shipped configs differ between the revisions (each runs with its own):"
	diff -rq "$tmp/A/configs" "$tmp/B/configs" | sed 's/^/    /' || true
fi
# -log-level warn where both revisions have it (the benchmarks run so);
# otherwise each at its default, so that both log alike.
log_flags=()
if "$tmp/A/rivermon" help 2>&1 | grep -q -- '-log-level' && "$tmp/B/rivermon" help 2>&1 | grep -q -- '-log-level'; then
	log_flags=(-log-level warn)
fi

# Sample times: the same for every round, in the past but within the last
# days; the newest at least 12 hours old.
max_samples=$((SINGLE_SAMPLES > BACKLOG_SAMPLES ? SINGLE_SAMPLES : BACKLOG_SAMPLES))
back_h=$((max_samples / 3600 + 13))
[ "$back_h" -lt 72 ] && back_h=72
now_s=$(date -u +%s)
base_ms=$(((now_s / 3600 - back_h) * 3600 * 1000))

# round SIDE WORKLOAD SAMPLES PER_MSG N: one measurement, appended to results.tsv
round() {
	local side=$1 wl=$2 samples=$3 per=$4 n=$5
	local d="$tmp/run/$wl-$n-$side" p mq_port in_port rpc_port http_port status=0 out
	mkdir -p "$d/mosquitto" "$d/influxdb" "$d/spool"
	mapfile -t p < <("$tmp/bin/benchload" ports 4)
	[ "${#p[@]}" -eq 4 ] || die "benchload ports: no four free loopback ports"
	mq_port=${p[0]} in_port=${p[1]} rpc_port=${p[2]} http_port=${p[3]}

	# As internal/testenv starts them, with the benchmarks' in-flight window.
	mosquitto_conf "$d/mosquitto/mosquitto.conf" "$mq_port" "$d/mosquitto" 1
	influxd_conf "$d/influxdb/influxdb.conf" "$d/influxdb" "$in_port" "$rpc_port"
	printf '[continuous_queries]\n  enabled = false\n' >>"$d/influxdb/influxdb.conf"
	start mosquitto "$d/mosquitto.log" "$mosquitto" -c "$d/mosquitto/mosquitto.conf"
	local mq_pid=$started
	start influxd "$d/influxd.log" "$influxd" -config "$d/influxdb/influxdb.conf"
	local in_pid=$started
	wait_port "$mq_pid" mosquitto "$mq_port" "$d/mosquitto.log"
	wait_port "$in_pid" influxd "$in_port" "$d/influxd.log"
	out=$(curl -sS --retry 20 --retry-connrefused --retry-delay 0 -XPOST "http://127.0.0.1:$in_port/query" \
		--data-urlencode "q=CREATE DATABASE rivermon" 2>&1) || die "CREATE DATABASE on influxd failed: $out"
	[[ $out == *'"error"'* ]] && die "CREATE DATABASE on influxd failed: $out"

	start rivermon "$d/rivermon.log" env \
		RIVERMON_MQTT_URL="tcp://127.0.0.1:$mq_port" RIVERMON_MQTT_CLIENT_ID=rivermon-benchcmp \
		RIVERMON_INFLUX_URL="http://127.0.0.1:$in_port" RIVERMON_INFLUX_BUCKET=rivermon/autogen \
		RIVERMON_SPOOL_DIR="$d/spool" RIVERMON_HTTP_LISTEN="127.0.0.1:$http_port" \
		"$tmp/$side/rivermon" -config "$tmp/$side/configs/rivermon.yaml" "${log_flags[@]}" ${CPUPROFILE:+-cpuprofile "$d/cpu.prof"}
	local rm_pid=$started
	sleep 0.05
	if [ "$(cat "/proc/$rm_pid/comm" 2>/dev/null)" != rivermon ]; then
		alive "$rm_pid" || { tail -n 20 "$d/rivermon.log" | sed 's/^/    /' >&2; die "rivermon ($side) exited at start; its log: $d/rivermon.log"; }
	fi

	if ! out=$("$tmp/bin/benchload" run -mqtt "tcp://127.0.0.1:$mq_port" -influx "http://127.0.0.1:$in_port" \
		-stations "$tmp/A/configs/stations.yaml" -samples "$samples" -per-message "$per" \
		-base "$base_ms" -pid "$rm_pid" 2>"$d/benchload.log"); then
		cat "$d/benchload.log" >&2
		echo "benchcmp: the end of rivermon's log ($d/rivermon.log):" >&2
		tail -n 20 "$d/rivermon.log" | sed 's/^/    /' >&2
		die "round $n of $wl, revision $side, failed"
	fi
	# The CPU read was this pid's: make sure it was rivermon, not a wrapper.
	[ "$(cat "/proc/$rm_pid/comm" 2>/dev/null)" = rivermon ] || die "pid $rm_pid measured is not rivermon ($(cat "/proc/$rm_pid/comm" 2>/dev/null))"
	stop "$rm_pid" rivermon || status=$?
	if [ "$status" -ne 0 ]; then
		echo "benchcmp: warning: rivermon ($side) exited with status $status on SIGTERM (its log is kept: $d/rivermon.log)" >&2
		KEEP=1
	fi
	stop "$in_pid" influxd || true
	stop "$mq_pid" mosquitto || true
	[ -n "${KEEP:-}" ] || rm -rf "$d"

	# cpu_ticks=… startup_ticks=… samples=… wall_ms=… publish_ms=…
	local cpu startup wall
	cpu=$(sed -n 's/.*cpu_ticks=\([0-9]*\).*/\1/p' <<<"$out")
	startup=$(sed -n 's/.*startup_ticks=\([0-9]*\).*/\1/p' <<<"$out")
	wall=$(sed -n 's/.*wall_ms=\([0-9]*\).*/\1/p' <<<"$out")
	[ -n "$cpu" ] && [ -n "$startup" ] && [ -n "$wall" ] || die "benchload printed nothing to read: $out"
	awk -v side="$side" -v wl="$wl" -v n="$n" -v cpu="$cpu" -v st="$startup" -v hz="$hz" -v s="$samples" -v wall="$wall" 'BEGIN {
		ms = cpu * 1000 / hz
		printf "%s\t%s\t%d\t%.3f\t%.0f\t%.0f\t%.0f\n", wl, side, n, ms / (s / 1000), ms, st * 1000 / hz, s / (wall / 1000)
	}' >>"$tmp/results.tsv"
	tail -n 1 "$tmp/results.tsv" | awk -F'\t' -v rounds="$ROUNDS" '{
		printf "  %-8s round %d/%d  %s  %6.2f ms per 1,000 samples  (CPU %5.0f ms, of it %3.0f ms start-up and warm-up; %7.0f samples/s)\n", $1, $3, rounds, $2, $4, $5, $6, $7
	}'
}

start_time=$(date +%s)
echo "benchcmp: A = $desc_A"
echo "benchcmp: B = $desc_B"
echo "benchcmp: $ROUNDS round(s) each, interleaved A B A B …; $(nproc) cores; $mosquitto_version; InfluxDB $influx_version"
printf 'workload\tside\tround\tcpu_ms_per_1k\tcpu_ms\tstartup_ms\tsamples_per_s\n' >"$tmp/results.tsv"
workloads=()
[ "$SINGLE_SAMPLES" -gt 0 ] && workloads+=("single $SINGLE_SAMPLES 1")
[ "$BACKLOG_SAMPLES" -gt 0 ] && workloads+=("backlog $BACKLOG_SAMPLES $BACKLOG_PER_MSG")
for w in "${workloads[@]}"; do
	read -r wl samples per <<<"$w"
	for ((n = 1; n <= ROUNDS; n++)); do
		round A "$wl" "$samples" "$per" "$n"
		round B "$wl" "$samples" "$per" "$n"
	done
done

echo
echo "rivermon CPU per 1,000 samples, ms: median (min–max) of $ROUNDS round(s) each"
echo "  A = $desc_A"
echo "  B = $desc_B"
echo
awk -F'\t' -v single="$SINGLE_SAMPLES" -v backlog="$BACKLOG_SAMPLES" -v per="$BACKLOG_PER_MSG" '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function sep(x,   s, r) { s = sprintf("%d", x); r = ""; while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } return s r }
NR > 1 { k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $4; if (!(k in lo) || $4 < lo[k]) lo[k] = $4; if (!(k in hi) || $4 > hi[k]) hi[k] = $4; seen[$1] = 1 }
END {
	printf "%-38s  %-20s  %-20s  %s\n", "workload", "A", "B", "B vs A"
	split("single backlog", order, " ")
	for (o = 1; o <= 2; o++) {
		wl = order[o]
		if (!(wl in seen)) continue
		name = wl == "single" ? sprintf("1 sample/message (%s samples)", sep(single)) : sprintf("%d samples/message (%s samples)", per, sep(backlog))
		for (s = 1; s <= 2; s++) {
			side = s == 1 ? "A" : "B"; k = wl SUBSEP side
			for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
			m[side] = median(a, n[k])
			cell[side] = sprintf("%.2f (%.2f–%.2f)", m[side], lo[k], hi[k])
		}
		printf "%-38s  %-20s  %-20s  %+.1f %%\n", name, cell["A"], cell["B"], 100 * (m["B"] / m["A"] - 1)
	}
}' "$tmp/results.tsv"
echo
echo "benchcmp: took $(($(date +%s) - start_time)) s after the builds; per-round figures above (KEEP=1 keeps $tmp/results.tsv)"
failed=0
