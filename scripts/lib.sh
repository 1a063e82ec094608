# Shared by scripts/run.sh (make run) and scripts/benchcmp.sh (make
# bench-cmp): finding the servers, watching processes, and the Mosquitto and
# InfluxDB configurations they both start. Source it; $root is the project.

# find_server NAME [ENV]: the program named by the variable ENV when set,
# else .tools/bin, PATH, /usr/sbin, /usr/bin (the order internal/testenv
# uses); prints nothing when there is none.
find_server() {
	local c env=${2:-}
	for c in ${env:+"${!env:-}"} "$root/.tools/bin/$1" "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/bin/$1"; do
		[ -n "$c" ] && [ -f "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
	done
	return 1
}

# alive PID: running, neither gone nor a zombie waiting to be reaped.
alive() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# port_open PORT: something listens on 127.0.0.1:PORT.
port_open() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FROM: the first port from FROM up (100 tried) that nothing
# listens on, or nothing.
free_port() {
	local p
	for ((p = $1; p < $1 + 100; p++)); do
		port_open "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# terminate PID: SIGTERM, then SIGKILL if it still runs after STOP_TIMEOUT
# seconds; returns 1 when it had to be killed. The caller reaps it (wait).
terminate() {
	local t
	alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null || true
	for ((t = 0; t < STOP_TIMEOUT * 10; t++)); do
		alive "$1" || return 0
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null || true
	return 1
}

# mosquitto_conf FILE PORT DIR AUTOSAVE: a persistent broker on loopback
# with the benchmarks' in-flight window, its data in DIR.
mosquitto_conf() {
	cat >"$1" <<-CONF
		listener $2 127.0.0.1
		allow_anonymous true
		persistence true
		persistence_location $3/
		autosave_interval $4
		max_queued_messages 1000000
		max_inflight_messages 100
	CONF
	if [ "$(id -u)" -eq 0 ]; then echo "user root" >>"$1"; fi
}

# influxd_conf FILE DIR HTTP_PORT RPC_PORT: InfluxDB 1.8 on loopback, its
# data in DIR, quiet.
influxd_conf() {
	cat >"$1" <<-CONF
		reporting-disabled = true
		bind-address = "127.0.0.1:$4"
		[meta]
		  dir = "$2/meta"
		[data]
		  dir = "$2/data"
		  wal-dir = "$2/wal"
		  query-log-enabled = false
		[monitor]
		  store-enabled = false
		[http]
		  bind-address = "127.0.0.1:$3"
		  log-enabled = false
		[logging]
		  level = "warn"
	CONF
}
