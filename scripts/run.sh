#!/usr/bin/env bash
# `make run`: start Mosquitto, InfluxDB 1.8 and Alertmanager on their own
# ports (never the standard ones, so nothing already running on this machine
# is touched), create the database, then run rivermon and the simulator for
# the 23 stations. Data lives under var/run/. Ctrl-C stops everything.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${MQTT_PORT:=18831}" "${INFLUX_PORT:=18087}" "${INFLUX_RPC_PORT:=18089}" "${AM_PORT:=19094}" "${HTTP_PORT:=19464}" "${HJ212_PORT:=19212}"
: "${SIM_START:=-48h}" "${SIM_SPEED:=600}"
: "${SIM_SCENARIOS:=flood:pumqu-chentang pollution:nianchu-mouth sensor-stuck:boqu-nyalam lowflow:sagya-sagya sensor-spike:yarlung-dazhuka drift:maquan-saga}"
run="$root/var/run"
mkdir -p "$run"/{mosquitto,influxdb,alertmanager,spool,log}

bin() { # bin NAME: the server program, also from /usr/sbin
	for c in "$root/.tools/bin/$1" "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/bin/$1"; do
		[ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
	done
	echo "make run: $1 not found; run make deps" >&2
	exit 1
}
port_busy() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$MQTT_PORT" "$INFLUX_PORT" "$INFLUX_RPC_PORT" "$AM_PORT" "$HTTP_PORT" "$HJ212_PORT"; do
	if port_busy "$p"; then
		echo "make run: port $p is in use (another make run?). Stop it, or set MQTT_PORT/INFLUX_PORT/INFLUX_RPC_PORT/AM_PORT/HTTP_PORT/HJ212_PORT." >&2
		exit 1
	fi
done

pids=()
stopped=""
cleanup() {
	[ -n "$stopped" ] && return
	stopped=1
	echo
	echo "stopping..."
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped. Data is kept in var/run/ (make clean removes it)."
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

wait_port() { # wait_port PORT NAME
	for _ in $(seq 1 300); do
		port_busy "$1" && return 0
		sleep 0.2
	done
	echo "make run: $2 did not start; see var/run/log/$2.log" >&2
	exit 1
}

cat >"$run/mosquitto/mosquitto.conf" <<CONF
listener $MQTT_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $run/mosquitto/
autosave_interval 10
max_queued_messages 1000000
max_inflight_messages 100
CONF
[ "$(id -u)" -eq 0 ] && echo "user root" >>"$run/mosquitto/mosquitto.conf"
"$(bin mosquitto)" -c "$run/mosquitto/mosquitto.conf" >"$run/log/mosquitto.log" 2>&1 &
pids+=($!)

cat >"$run/influxdb/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$run/influxdb/meta"
[data]
  dir = "$run/influxdb/data"
  wal-dir = "$run/influxdb/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[logging]
  level = "warn"
CONF
"$(bin influxd)" -config "$run/influxdb/influxdb.conf" >"$run/log/influxd.log" 2>&1 &
pids+=($!)

"$(bin prometheus-alertmanager)" --config.file="$root/configs/alertmanager/alertmanager.yml" \
	--storage.path="$run/alertmanager" --web.listen-address="127.0.0.1:$AM_PORT" \
	--cluster.listen-address= >"$run/log/alertmanager.log" 2>&1 &
pids+=($!)

wait_port "$MQTT_PORT" mosquitto
wait_port "$INFLUX_PORT" influxd
wait_port "$AM_PORT" alertmanager
curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE rivermon" >/dev/null

export RIVERMON_MQTT_URL="tcp://127.0.0.1:$MQTT_PORT"
export RIVERMON_MQTT_CLIENT_ID="rivermon-local"
export RIVERMON_INFLUX_URL="http://127.0.0.1:$INFLUX_PORT"
export RIVERMON_SPOOL_DIR="$run/spool"
export RIVERMON_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
export RIVERMON_ALERTING_ALERTMANAGER_URLS="http://127.0.0.1:$AM_PORT"
export RIVERMON_HJ212_LISTEN="127.0.0.1:$HJ212_PORT"
bin/rivermon -config configs/rivermon.yaml >"$run/log/rivermon.log" 2>&1 &
pids+=($!)
wait_port "$HTTP_PORT" rivermon

scenario_flags=()
for sc in $SIM_SCENARIOS; do scenario_flags+=(-scenario "$sc"); done
bin/stationsim -broker "tcp://127.0.0.1:$MQTT_PORT" -registry configs/stations.yaml \
	-start "$SIM_START" -speed "$SIM_SPEED" "${scenario_flags[@]}" \
	-protocol hj212 -transport tcp -hj212-addr "127.0.0.1:$HJ212_PORT" >"$run/log/stationsim.log" 2>&1 &
pids+=($!)

q="SELECT last(level_m), last(flow_m3s) FROM reading GROUP BY station"
cat <<MSG

rivermon is running with the simulator for the 23 stations (simulated time starts
at now$SIM_START and runs ${SIM_SPEED}× faster until it reaches the present, then in real time).
Scenarios played from one simulated hour in: $SIM_SCENARIOS
The water-quality analysers speak HJ 212-2017 over TCP to 127.0.0.1:$HJ212_PORT; levels and flows
come as JSON over MQTT.

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
  Logs           var/run/log/{rivermon,stationsim,mosquitto,influxd,alertmanager}.log

Press Ctrl-C to stop everything.
MSG

sleep 5
n=$(curl -sG "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode db=rivermon \
	--data-urlencode "q=SELECT count(level_m) FROM reading" | grep -o '"values":\[\[[^]]*\]' | grep -o '[0-9]*\]$' | tr -d ']' || true)
echo "samples in InfluxDB now: ${n:-0} (watch it grow with the InfluxDB query above)"

# Stop everything if any component dies; otherwise run until Ctrl-C.
wait -n "${pids[@]}" || true
echo "a component stopped; see var/run/log/" >&2
