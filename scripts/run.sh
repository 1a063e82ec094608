#!/usr/bin/env bash
# `make run`: start Mosquitto, InfluxDB 1.8 and Alertmanager on their own
# ports (never the standard ones, so nothing already running on this machine
# is touched), create the database, then run rivermon and the simulator for
# the 23 stations, which speak the field protocols side by side: some
# sections' RTUs SL 651-2014 over TCP (HEX), two over MQTT (ASCII), the
# water-quality analysers HJ 212-2017 over TCP, the rest native JSON. Data
# lives under var/run/; each run's logs go to var/run/log/<UTC time>/ and
# var/run/log/latest points at the newest. Ctrl-C stops everything, one
# component after the other, newest first.
# RIVERMON_SECOND_INFLUX=1 starts a second InfluxDB on a free port and makes
# it a second output (influx.outputs, named "second").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
: "${MQTT_PORT:=18831}" "${INFLUX_PORT:=18087}" "${INFLUX_RPC_PORT:=18089}" "${AM_PORT:=19094}" "${HTTP_PORT:=19464}" "${HJ212_PORT:=19212}" "${SL651_PORT:=19651}"
# 80 h of past at 1200×, about four minutes: long enough for a stuck stage
# gauge to fail QC even under the ice-season flat-line window (72 h), so
# every scenario plays out, fires and resolves during the replay.
: "${SIM_START:=-80h}" "${SIM_SPEED:=1200}"
: "${SIM_SCENARIOS:=flood:pumqu-chentang pollution:nianchu-mouth sensor-stuck:boqu-nyalam lowflow:sagya-sagya sensor-spike:yarlung-dazhuka drift:maquan-saga storm:gyirong-zongga}"
# The sections whose RTUs speak SL 651-2014: over TCP in HEX/BCD (their
# water quality, if any, over HJ 212 TCP like every analyser's), and over
# MQTT in ASCII. The other sections send native JSON, their analysers HJ
# 212 over TCP.
: "${SL651_TCP_STATIONS:=nianchu-manla-outlet,nianchu-gyantse-bainang,kangmar-kangmar,yarlung-rinbung,duoxiong-sangsang,xiangqu-mouth,gyirong-zongga,gyirong-town,yadong-yadong}"
: "${SL651_MQTT_STATIONS:=pumqu-gangga,yeru-dinggye}"
: "${STOP_TIMEOUT:=15}" # seconds a component gets to exit after SIGTERM before SIGKILL (rivermon needs at most 10)
run="$root/var/run"

bin() { # bin NAME: the server program, or exit
	find_server "$1" || { echo "make run: $1 not found; run make deps" >&2; exit 1; }
}
mosquitto=$(bin mosquitto)
influxd=$(bin influxd)
alertmanager=$(bin prometheus-alertmanager)
for p in "$MQTT_PORT" "$INFLUX_PORT" "$INFLUX_RPC_PORT" "$AM_PORT" "$HTTP_PORT" "$HJ212_PORT" "$SL651_PORT"; do
	if port_open "$p"; then
		echo "make run: port $p is in use (another make run?). Stop it, or set MQTT_PORT/INFLUX_PORT/INFLUX_RPC_PORT/AM_PORT/HTTP_PORT/HJ212_PORT/SL651_PORT." >&2
		exit 1
	fi
done

# Which stationsim process sends which sections: the SL 651 lists, and the
# rest of the registry natively.
all_stations=$(sed -n 's/^  - id: \([a-z0-9-]*\).*/\1/p' configs/stations.yaml)
native_stations=""
for id in $all_stations; do
	case ",$SL651_TCP_STATIONS,$SL651_MQTT_STATIONS," in
	*",$id,"*) ;;
	*) native_stations+="${native_stations:+,}$id" ;;
	esac
done
for id in ${SL651_TCP_STATIONS//,/ } ${SL651_MQTT_STATIONS//,/ }; do
	if ! grep -qx -- "$id" <<<"$all_stations"; then
		echo "make run: SL651_TCP_STATIONS/SL651_MQTT_STATIONS name $id, which is not in configs/stations.yaml" >&2
		exit 1
	fi
done
scenario_flags() { # scenario_flags STATIONS: the -scenario flags of SIM_SCENARIOS for the stations of a comma list
	local sc st list
	for sc in $SIM_SCENARIOS; do
		IFS=, read -ra list <<<"${sc#*:}"
		for st in "${list[@]}"; do
			case ",$1," in *",$st,"*) printf '%s\n' -scenario "${sc%%:*}:$st" ;; esac
		done
	done
}
for sc in $SIM_SCENARIOS; do
	IFS=, read -ra list <<<"${sc#*:}"
	for st in "${list[@]}"; do
		if ! grep -qx -- "$st" <<<"$all_stations"; then
			echo "make run: SIM_SCENARIOS plays $sc at $st, which is not in configs/stations.yaml" >&2
			exit 1
		fi
	done
done
second=""
if [ -n "${RIVERMON_SECOND_INFLUX:-}" ] && [ "${RIVERMON_SECOND_INFLUX}" != 0 ]; then
	second=1
	INFLUX2_PORT=${INFLUX2_PORT:-$(free_port 18097)} && INFLUX2_RPC_PORT=${INFLUX2_RPC_PORT:-$(free_port $((INFLUX2_PORT + 1)))} || {
		echo "make run: no free port for the second InfluxDB from 18097 up" >&2
		exit 1
	}
fi

mkdir -p "$run"/{mosquitto,influxdb,alertmanager,spool}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
logs="var/run/log/$stamp" # relative to $root, as printed
mkdir -p "$logs"
ln -sfn "$stamp" "$run/log/latest"

# Each component runs in a session (and so a process group) of its own:
# the SIGINT a terminal sends to its foreground process group on Ctrl-C
# reaches this script, not them. The script then stops them one at a time,
# newest first, so that the simulator and rivermon finish while the broker
# and the database they talk to are still there. setsid does not fork here
# (this script has no job control, so a background child leads no process
# group), so $! is the component's own pid.
names=()
pids=()
start() { # start NAME COMMAND...: run COMMAND in the background, its output in $logs/NAME.log
	local name=$1
	shift
	setsid "$@" </dev/null >"$logs/$name.log" 2>&1 &
	names+=("$name")
	pids+=($!)
}
stop() { # stop I: SIGTERM component I, wait for it to exit (SIGKILL after STOP_TIMEOUT s)
	local name=${names[$1]} pid=${pids[$1]} status=0
	if ! alive "$pid"; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	printf 'stopping %s...' "$name"
	terminate "$pid" || printf ' still running after %ss: SIGKILL...' "$STOP_TIMEOUT"
	wait "$pid" 2>/dev/null || status=$?
	if [ "$status" -eq 0 ]; then echo " stopped"; else echo " stopped (exit status $status; see $logs/$name.log)"; fi
}
stopping=""
stop_all() {
	[ -n "$stopping" ] && return 0
	stopping=1
	# An orderly stop takes a few seconds; a second Ctrl-C must not cut it
	# short and leave the broker or the database running.
	trap '' INT TERM HUP
	[ "${#pids[@]}" -eq 0 ] && return 0
	echo
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "$i"; done
	echo "Data is kept in var/run/ (make clean removes it); this run's logs are in $logs/."
}
trap 'stop_all; exit 0' INT TERM HUP
trap stop_all EXIT

wait_port() { # wait_port PORT NAME
	local i pid=""
	for i in "${!names[@]}"; do [ "${names[i]}" = "$2" ] && pid=${pids[i]}; done
	for _ in $(seq 1 300); do
		port_open "$1" && return 0
		alive "$pid" || break
		sleep 0.2
	done
	echo "make run: $2 did not start; see $logs/$2.log" >&2
	exit 1
}

mosquitto_conf "$run/mosquitto/mosquitto.conf" "$MQTT_PORT" "$run/mosquitto" 10
start mosquitto "$mosquitto" -c "$run/mosquitto/mosquitto.conf"

influxd_conf "$run/influxdb/influxdb.conf" "$run/influxdb" "$INFLUX_PORT" "$INFLUX_RPC_PORT"
start influxd "$influxd" -config "$run/influxdb/influxdb.conf"
if [ -n "$second" ]; then
	mkdir -p "$run/influxdb2"
	influxd_conf "$run/influxdb2/influxdb.conf" "$run/influxdb2" "$INFLUX2_PORT" "$INFLUX2_RPC_PORT"
	start influxd2 "$influxd" -config "$run/influxdb2/influxdb.conf"
fi

start alertmanager "$alertmanager" --config.file="$root/configs/alertmanager/alertmanager.yml" \
	--storage.path="$run/alertmanager" --web.listen-address="127.0.0.1:$AM_PORT" \
	--cluster.listen-address=

wait_port "$MQTT_PORT" mosquitto
wait_port "$INFLUX_PORT" influxd
wait_port "$AM_PORT" alertmanager
curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE rivermon" >/dev/null
if [ -n "$second" ]; then
	wait_port "$INFLUX2_PORT" influxd2
	curl -sf -XPOST "http://127.0.0.1:$INFLUX2_PORT/query" --data-urlencode "q=CREATE DATABASE rivermon" >/dev/null
	export RIVERMON_INFLUX_OUTPUTS="[{name: second, url: \"http://127.0.0.1:$INFLUX2_PORT\"}]"
fi

export RIVERMON_MQTT_URL="tcp://127.0.0.1:$MQTT_PORT"
export RIVERMON_MQTT_CLIENT_ID="rivermon-local"
export RIVERMON_INFLUX_URL="http://127.0.0.1:$INFLUX_PORT"
export RIVERMON_SPOOL_DIR="$run/spool"
export RIVERMON_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
export RIVERMON_ALERTING_ALERTMANAGER_URLS="http://127.0.0.1:$AM_PORT"
export RIVERMON_HJ212_LISTEN="127.0.0.1:$HJ212_PORT"
export RIVERMON_SL651_LISTEN="127.0.0.1:$SL651_PORT"
# The hydrologist's calls that change data (corrections, approvals,
# reprocessing) need a bearer token: one of this installation's own.
token_file="$run/admin-token"
if [ ! -s "$token_file" ]; then
	(umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$token_file")
fi
export RIVERMON_HTTP_ADMIN_TOKEN_FILE="$token_file"
# The demo replays the past: let its samples page (a production service
# keeps max_sample_age at 1h, so that a station's backlog pages nobody).
replay_h=${SIM_START#-}
replay_h=${replay_h%h}
if [[ "$replay_h" =~ ^[0-9]+$ ]]; then
	export RIVERMON_ALERTING_MAX_SAMPLE_AGE="$((replay_h + 1))h"
fi
start rivermon bin/rivermon -config configs/rivermon.yaml
wait_port "$HTTP_PORT" rivermon

# One simulator process per way in, each given the scenarios of its
# sections; the same seed gives each section the data a single process
# would send it.
sim() { # sim NAME STATIONS FLAG...: start a stationsim for the comma list STATIONS, if any
	local name=$1 stations=$2 flags
	shift 2
	[ -n "$stations" ] || return 0
	mapfile -t flags < <(scenario_flags "$stations")
	start "$name" bin/stationsim -broker "tcp://127.0.0.1:$MQTT_PORT" -registry configs/stations.yaml \
		-start "$SIM_START" -speed "$SIM_SPEED" -stations "$stations" -client-id "$name" "${flags[@]}" "$@"
}
sim stationsim "$native_stations" -protocol hj212 -transport tcp -hj212-addr "127.0.0.1:$HJ212_PORT"
sim stationsim-sl651-tcp "$SL651_TCP_STATIONS" -protocol sl651,hj212 -transport tcp -encoding hex \
	-sl651-addr "127.0.0.1:$SL651_PORT" -hj212-addr "127.0.0.1:$HJ212_PORT"
sim stationsim-sl651-mqtt "$SL651_MQTT_STATIONS" -protocol sl651 -transport mqtt -encoding ascii

q="SELECT last(level_m), last(flow_m3s) FROM reading GROUP BY station"
sl651_stations="$SL651_TCP_STATIONS${SL651_MQTT_STATIONS:+,$SL651_MQTT_STATIONS}"
q651="SELECT count(level_m), count(rain_mm), last(rain_total_mm) FROM reading WHERE station =~ /^(${sl651_stations//,/|})\$/ GROUP BY station"
cat <<MSG

rivermon is running with the simulator for the 23 stations (simulated time starts
at now$SIM_START and runs ${SIM_SPEED}× faster until it reaches the present, then in real time).
Scenarios played from one simulated hour in: $SIM_SCENARIOS
Samples up to ${RIVERMON_ALERTING_MAX_SAMPLE_AGE:-1h} old page, so the scenarios page during the replay:
see README "What make run pages" for the alerts to expect in Alertmanager.

How the sections come in:
  SL 651-2014 over TCP (HEX/BCD) to 127.0.0.1:$SL651_PORT, each frame confirmed by rivermon:
                 ${SL651_TCP_STATIONS//,/, }
                 (level, flow, water temperature, rain and battery; their water quality as below)
  SL 651-2014 over MQTT (ASCII), topic rivermon/v1/stations/{station}/sl651:
                 ${SL651_MQTT_STATIONS//,/, }
  HJ 212-2017 over TCP to 127.0.0.1:$HJ212_PORT, answered 9014: the water quality of every
                 water-quality section (Yadong's logger with CRC-16/MODBUS, hj212_crc: modbus)
  native JSON over MQTT: everything else, e.g. velocity, volume and the levels and flows of
                 ${native_stations//,/, }

  On call        http://127.0.0.1:$HTTP_PORT/  (the operations page; alerts in Alertmanager link to it)
  Stations API   http://127.0.0.1:$HTTP_PORT/api/v1/stations
  Metrics        http://127.0.0.1:$HTTP_PORT/metrics
  Ready?         http://127.0.0.1:$HTTP_PORT/readyz
  InfluxDB       curl -G 'http://127.0.0.1:$INFLUX_PORT/query' --data-urlencode 'db=rivermon' --data-urlencode "q=$q"
  Alertmanager   http://127.0.0.1:$AM_PORT/
  Grafana        point an installed Grafana (10 or later) at the shipped provisioning:
                 GF_PATHS_PROVISIONING=$root/configs/grafana/provisioning \\
                 RIVERMON_INFLUX_URL=http://127.0.0.1:$INFLUX_PORT RIVERMON_DASHBOARDS=$root/configs/grafana/dashboards \\
                 grafana-server --homepath /usr/share/grafana
                 (dashboards: River network overview, Station detail, Water quality,
                 Ecological flow compliance, Data quality)
  MQTT           mosquitto_sub -p $MQTT_PORT -t 'rivermon/v1/#' -v
  Corrections    the admin token is in $token_file; e.g. take out a stage value at Gyantse:
                 bin/rivermon correct -url http://127.0.0.1:$HTTP_PORT -token-file $token_file \\
                   -station nianchu-gyantse -param level_m -op delete -from <RFC 3339> -to <RFC 3339> \\
                   -author you -reason "gauge cleaned"
  Export         curl 'http://127.0.0.1:$HTTP_PORT/api/v1/export?station=nianchu-gyantse&param=level_m&from=<day>&to=<day>&format=csv'
  Statistics     stats_hourly, stats_daily, stats_monthly in InfluxDB, computed every minute
  SL 651 data    curl -G 'http://127.0.0.1:$INFLUX_PORT/query' --data-urlencode 'db=rivermon' --data-urlencode "q=$q651"
  Logs           $logs/{rivermon,stationsim,stationsim-sl651-tcp,stationsim-sl651-mqtt,mosquitto,influxd,alertmanager}.log
                 (var/run/log/latest is this run's folder)
MSG
if [ -n "$second" ]; then
	for i in "${!names[@]}"; do [ "${names[i]}" = influxd2 ] && pid2=${pids[i]}; done
	cat <<MSG
  2nd InfluxDB   http://127.0.0.1:$INFLUX2_PORT, output "second" (log: $logs/influxd2.log); every point goes
                 to both. Try an outage: kill -STOP ${pid2:-?}, later kill -CONT ${pid2:-?}. Meanwhile rivermon
                 acknowledges and writes the first output as before, the spool keeps what "second"
                 lacks (rivermon_influx_backlog_bytes{output="second"} grows), /readyz names it once a
                 write to it has timed out (30 s), and it catches up when it is back.
MSG
fi
echo
echo "Press Ctrl-C to stop everything."

sleep 5
n=$(curl -sG "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode db=rivermon \
	--data-urlencode "q=SELECT count(level_m) FROM reading" | grep -o '"values":\[\[[^]]*\]' | grep -o '[0-9]*\]$' | tr -d ']' || true)
echo "samples in InfluxDB now: ${n:-0} (watch it grow with the InfluxDB query above)"

# Run until Ctrl-C (the trap stops everything), or until a component stops
# on its own: then say which, and stop the others.
status=0
wait -n -p gone "${pids[@]}" || status=$?
for i in "${!pids[@]}"; do
	s=$status
	if [ "${pids[i]}" != "${gone:-}" ]; then
		alive "${pids[i]}" && continue
		s=0
		wait "${pids[i]}" 2>/dev/null || s=$?
	fi
	how="exit status $s"
	[ "$s" -gt 128 ] && how="killed by SIG$(kill -l "$((s - 128))")"
	echo "make run: ${names[i]} stopped on its own ($how); its log is $logs/${names[i]}.log:" >&2
	tail -n 5 "$logs/${names[i]}.log" 2>/dev/null | sed 's/^/    /' >&2 || true
done
stop_all
exit 1
