package journal

import (
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// legacyVersion is the record of rivermon before the journal: the rendered
// lines and the dead letters, nothing beside them. A spool left by it is
// delivered and rebuilt from after an upgrade, the lines read back for
// their station, time and values; this is the only place that reads line
// protocol.
const legacyVersion = 1

func decodeLegacy(b []byte, r *Record, values bool) error {
	d := decoder{text: shared(b[1:])}
	nl := d.count()
	for range nl {
		l := d.str()
		if d.err != nil {
			break
		}
		e := Entry{Line: l, Source: "spool-v1", Station: legacyStation(l), Kind: legacyKind(l)}
		if ts, ok := legacyTime(l); ok {
			e.Time = time.Unix(0, ts).UTC()
		}
		if e.Kind == KindReading && values {
			e.Values = legacyValues(l)
		}
		r.Entries = append(r.Entries, e)
	}
	return d.deadLetters(r)
}

// EncodeLegacy writes a version-1 record, for tests of the upgrade.
func EncodeLegacy(lines []string, dls []DeadLetter) []byte {
	b := []byte{legacyVersion}
	b = binary.AppendUvarint(b, uint64(len(lines)))
	for _, l := range lines {
		b = appendString(b, l)
	}
	b = binary.AppendUvarint(b, uint64(len(dls)))
	for _, d := range dls {
		b = appendString(b, d.Topic)
		b = appendString(b, d.Reason)
		b = appendString(b, string(d.Body))
	}
	return b
}

func legacyKind(l string) Kind {
	switch {
	case strings.HasPrefix(l, "reading,"):
		if legacyRevision(l) {
			return KindRevision
		}
		return KindReading
	case strings.HasPrefix(l, "eflow_daily,"):
		return KindEflow
	case strings.HasPrefix(l, "station_status,"):
		return KindStatus
	case strings.HasPrefix(l, "station_state,"):
		return KindState
	default:
		return KindAlert
	}
}

// legacyRevision tells a revision (only _qc fields) from a reading.
func legacyRevision(l string) bool {
	fields, ok := legacyFields(l)
	if !ok {
		return false
	}
	for _, f := range strings.Split(fields, ",") {
		k, _, _ := strings.Cut(f, "=")
		if !strings.HasSuffix(k, "_qc") {
			return false
		}
	}
	return true
}

func legacyFields(l string) (string, bool) {
	sp := strings.IndexByte(l, ' ')
	end := strings.LastIndexByte(l, ' ')
	if sp < 0 || end <= sp {
		return "", false
	}
	return l[sp+1 : end], true
}

// legacyStation reads the station tag of a line rivermon wrote.
func legacyStation(line string) string {
	_, rest, ok := strings.Cut(line, ",station=")
	if !ok {
		return ""
	}
	if end := strings.IndexAny(rest, ", "); end >= 0 {
		return rest[:end]
	}
	return rest
}

// legacyTime reads the timestamp (ns) of a line rivermon wrote.
func legacyTime(line string) (int64, bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(line[i+1:], 10, 64)
	return ts, err == nil
}

// legacyValues reads the parameter values of a `reading` line (flags and
// derived fields are recomputed at restart).
func legacyValues(l string) []reading.Value {
	fields, ok := legacyFields(l)
	if !ok {
		return nil
	}
	var out []reading.Value
	for _, f := range strings.Split(fields, ",") {
		k, v, found := strings.Cut(f, "=")
		if !found || !reading.IsParam(k) {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			out = append(out, reading.Value{Code: k, Value: x})
		}
	}
	return out
}
