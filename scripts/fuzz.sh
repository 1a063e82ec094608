#!/usr/bin/env bash
# Runs every Fuzz* target of the module for FUZZTIME each (default 10000x:
# a count of inputs rather than a duration, because a duration can end while
# an input is running, which go test reports as a failure).
# `make test` runs it; a failure leaves the crashing input under the
# package's testdata/fuzz/ for `go test` to replay.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10000x}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS= read -r file; do
	pkg="./$(dirname "${file#./}")"
	for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]*)' "$file" | awk '{print $2}'); do
		echo "fuzz: $pkg $fn for $fuzztime"
		go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1 || {
			cat "$log"
			echo "fuzz: $pkg $fn failed" >&2
			exit 1
		}
	done
done < <(grep -rlE --include='*_test.go' '^func Fuzz' . | sort)
