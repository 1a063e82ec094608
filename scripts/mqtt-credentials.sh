#!/usr/bin/env bash
# Creates MQTT credentials for each rivermon instance and every station of
# the registry: a Mosquitto password file and a credentials list (user,
# password) for the operators and field teams. The rivermon users are those
# the ACL names with "user" lines (OUT/acl when it exists, else the shipped
# configs/mosquitto/acl): rivermon-1, and rivermon-a and rivermon-b of the
# active pair; a station's user is its station id. Existing users keep
# their passwords; new ones get a random password. Usage:
#   scripts/mqtt-credentials.sh [configs/stations.yaml] [/etc/mosquitto/rivermon]
set -euo pipefail

registry=${1:-configs/stations.yaml}
out=${2:-/etc/mosquitto/rivermon}
passwd="$out/passwd"
creds="$out/credentials.csv"
acl="$out/acl"
[ -f "$acl" ] || acl="$(cd "$(dirname "$0")/.." && pwd)/configs/mosquitto/acl"
command -v mosquitto_passwd >/dev/null 2>&1 || { echo "mosquitto_passwd not found: install mosquitto (make deps)" >&2; exit 1; }
[ -f "$registry" ] || { echo "no registry at $registry" >&2; exit 1; }
[ -f "$acl" ] || { echo "no ACL at $acl" >&2; exit 1; }
mkdir -p "$out"
umask 077
touch "$passwd" "$creds"

# Station ids: the "- id:" entries under stations: (ids are [a-z0-9-]).
ids=$(awk '/^stations:/{s=1; next} s && /^  - id:/{print $3}' "$registry")
[ -n "$ids" ] || { echo "no station ids found in $registry" >&2; exit 1; }
services=$(awk '$1 == "user" {print $2}' "$acl")
[ -n "$services" ] || { echo "no rivermon users (user lines) in $acl" >&2; exit 1; }

added=0
for user in $services $ids; do
	if grep -q "^$user:" "$passwd"; then
		continue
	fi
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20)
	mosquitto_passwd -b "$passwd" "$user" "$pw"
	echo "$user,$pw" >>"$creds"
	added=$((added + 1))
done
# Mosquitto 2.0 runs as user mosquitto and must read the password file.
if id mosquitto >/dev/null 2>&1; then chown mosquitto: "$passwd" 2>/dev/null || true; fi
echo "mqtt-credentials: $added new user(s) (rivermon users:" $services"); password file $passwd, credentials $creds (keep it secret)"
