#!/usr/bin/env bash
# `make install`: puts the built programs, the configuration, the systemd
# unit and the service user's sysusers file in place. PREFIX (default
# /usr/local) and DESTDIR (a staging root, empty for the live system) as
# usual; BIN is where `make build` left the programs. Files in /etc/rivermon
# are installed only when absent: an edited configuration is never
# overwritten. Everything in configs/ also goes to $PREFIX/share/rivermon as
# examples (the active pair, Mosquitto, NATS, Alertmanager, Grafana).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${PREFIX:=/usr/local}" "${DESTDIR:=}" "${BIN:=$root/bin}"
: "${BINDIR:=$PREFIX/bin}" "${SYSCONFDIR:=/etc}" "${DATADIR:=$PREFIX/share/rivermon}"
: "${UNITDIR:=$PREFIX/lib/systemd/system}" "${SYSUSERSDIR:=$SYSCONFDIR/sysusers.d}"
etc="$SYSCONFDIR/rivermon"
state=/var/lib/rivermon # the unit's StateDirectory=rivermon
say() { printf 'install: %s\n' "$*"; }

for p in rivermon stationsim; do
	[ -x "$BIN/$p" ] || { say "$BIN/$p is missing: run make build first" >&2; exit 1; }
done

install -d "$DESTDIR$BINDIR" "$DESTDIR$etc" "$DESTDIR$DATADIR" "$DESTDIR$UNITDIR" "$DESTDIR$SYSUSERSDIR"
install -m 0755 "$BIN/rivermon" "$BIN/stationsim" "$DESTDIR$BINDIR/"

# The configuration, when absent. The shipped rivermon.yaml keeps its spool
# in the source tree (../var/spool); installed, it is in the state directory.
conf() { # conf SRC NAME [SED]: install SRC as $etc/NAME unless it exists
	local dst="$DESTDIR$etc/$2"
	if [ -e "$dst" ]; then
		say "kept $etc/$2 (exists)"
		return 0
	fi
	sed -e "${3:-}" "$1" >"$dst.tmp"
	chmod 0644 "$dst.tmp"
	mv "$dst.tmp" "$dst"
	say "installed $etc/$2"
}
conf "$root/configs/rivermon.yaml" rivermon.yaml "s|^  dir: \.\./var/spool\$|  dir: $state/spool|"
grep -q "^  dir: $state/spool\$" "$DESTDIR$etc/rivermon.yaml" ||
	say "note: $etc/rivermon.yaml keeps its spool.dir; the unit lets rivermon write under $state only"
conf "$root/configs/stations.yaml" stations.yaml
conf "$root/configs/rules.yaml" rules.yaml

# Examples, replaced on every install.
rm -rf "$DESTDIR$DATADIR/configs"
cp -R "$root/configs" "$DESTDIR$DATADIR/configs"
chmod -R u=rwX,go=rX "$DESTDIR$DATADIR/configs"

# The unit, with this install's paths; the service user.
sed -e "s|/usr/local/bin/rivermon|$BINDIR/rivermon|" -e "s|/etc/rivermon/|$etc/|" \
	"$root/configs/systemd/rivermon.service" >"$DESTDIR$UNITDIR/rivermon.service"
chmod 0644 "$DESTDIR$UNITDIR/rivermon.service"
install -m 0644 "$root/configs/systemd/rivermon.sysusers" "$DESTDIR$SYSUSERSDIR/rivermon.conf"
say "installed $BINDIR/{rivermon,stationsim}, $UNITDIR/rivermon.service, $SYSUSERSDIR/rivermon.conf, examples in $DATADIR/configs"

if [ -n "$DESTDIR" ]; then
	exit 0
fi
# On the live system: create the user now when we can, and say what is next.
if [ "$(id -u)" -eq 0 ] && command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers "$SYSUSERSDIR/rivermon.conf"
	command -v systemctl >/dev/null 2>&1 && systemctl daemon-reload 2>/dev/null || true
else
	say "create the user: systemd-sysusers $SYSUSERSDIR/rivermon.conf (or: useradd --system --user-group --home-dir $state --shell /usr/sbin/nologin rivermon)"
fi
say "next: edit $etc/rivermon.yaml, rivermon check -config $etc/rivermon.yaml, systemctl enable --now rivermon"
