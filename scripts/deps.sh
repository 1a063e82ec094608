#!/usr/bin/env bash
# Installs what rivermon's build, tests and `make run` need, when missing.
# Idempotent: a second run only checks. Debian packages: mosquitto,
# mosquitto-clients, nats-server (the clustered broker's tests),
# prometheus-alertmanager, curl, systemd (systemd-analyze and systemd-sysusers
# check the unit make install ships), chromium (the headless browser of the
# operations page's test) and fonts-wqy-microhei (so that its Chinese shows
# in the screenshots). Go tools built into
# .tools/bin: influxd 1.8.10 (InfluxDB OSS, from the Go module proxy) and
# staticcheck.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools/bin"
mkdir -p "$tools"
say() { printf 'deps: %s\n' "$*"; }

if ! command -v go >/dev/null 2>&1; then
	say "Go is not installed: install Go 1.26 or later (it is on the machine image; see README)" >&2
	exit 1
fi
gover=$(go env GOVERSION)
case "$gover" in
go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
*)
	say "Go $gover is too old: rivermon needs Go 1.26 or later" >&2
	exit 1
	;;
esac

# Debian packages. Daemons live in /usr/sbin, which a non-root PATH may lack.
missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || missing+=(mosquitto)
have mosquitto_pub || missing+=(mosquitto-clients)
have nats-server || missing+=(nats-server)
have prometheus-alertmanager || missing+=(prometheus-alertmanager)
have curl || missing+=(curl)
have systemd-analyze || missing+=(systemd)
have chromium || missing+=(chromium)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing Debian packages: ${missing[*]}"
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			say "need root (or sudo) to install ${missing[*]}" >&2
			exit 1
		}
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# policy-rc.d-less containers may try to start the services: harmless,
	# rivermon's tests and `make run` start their own on other ports.
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# InfluxDB 1.8.10, built from source through the Go module proxy (about a
# minute or two; pure Go). The version is read from the binary's build info.
if ! go version -m "$tools/influxd" 2>/dev/null | grep -q 'github.com/influxdata/influxdb[[:space:]]*v1.8.10'; then
	say "building influxd 1.8.10 into .tools/bin (takes a minute or two)"
	GOBIN="$tools" GOFLAGS=-mod=mod go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10
fi

if ! go version -m "$tools/staticcheck" 2>/dev/null | grep -q 'honnef.co/go/tools[[:space:]]*v0.7.0'; then
	say "building staticcheck into .tools/bin"
	GOBIN="$tools" GOFLAGS=-mod=mod go install honnef.co/go/tools/cmd/staticcheck@v0.7.0
fi
say "ok: mosquitto, nats-server, prometheus-alertmanager, curl, systemd-analyze, chromium, fonts-wqy-microhei, .tools/bin/influxd (1.8.10), .tools/bin/staticcheck"
