package ingest

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

var tagEscaper = strings.NewReplacer(",", `\,`, " ", `\ `, "=", `\=`)

// appendSeries writes "measurement,river=R,station=S " (tags in key order,
// as InfluxDB sorts them).
func appendSeries(b []byte, measurement, station, river string) []byte {
	b = append(b, measurement...)
	b = append(b, ",river="...)
	b = append(b, tagEscaper.Replace(river)...)
	b = append(b, ",station="...)
	b = append(b, tagEscaper.Replace(station)...)
	return append(b, ' ')
}

func appendFloatField(b []byte, first bool, key string, v float64) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, key...)
	b = append(b, '=')
	return appendFloat(b, v)
}

// appendFlagField writes ",<code>_qc=<flag>i", the QC flag of a value.
func appendFlagField(b []byte, code string, flag int) []byte {
	b = append(b, ',')
	b = append(b, code...)
	b = append(b, "_qc="...)
	b = strconv.AppendInt(b, int64(flag), 10)
	return append(b, 'i')
}

func appendIntField(b []byte, key string, v int64) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, 'i')
}

// pow10 holds the powers of ten that appendFloat tries, all exact in a
// float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// appendFloat writes v as a line-protocol float that parses back to exactly
// v. Readings are mostly short decimals (3.42, 12.25): when v is m/10^k
// for an integer m below 2^53 and k ≤ 6, it is written as that decimal,
// several times cheaper than strconv's shortest representation, which is
// used otherwise. The decimal parses to v because parsing and the division
// m/10^k both round the same real number (m and 10^k are exact floats).
func appendFloat(b []byte, v float64) []byte {
	if v != 0 && math.Abs(v) < 1<<53 {
		for k, p := range pow10 {
			m := v * p
			if m != math.Trunc(m) || math.Abs(m) >= 1<<53 {
				continue
			}
			n := int64(m)
			if float64(n)/p != v {
				continue
			}
			return appendDecimal(b, n, k)
		}
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendDecimal writes n·10^-k.
func appendDecimal(b []byte, n int64, k int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	var d [24]byte
	digits := strconv.AppendInt(d[:0], n, 10)
	if k == 0 {
		return append(b, digits...)
	}
	if len(digits) <= k {
		b = append(b, '0', '.')
		for range k - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	b = append(b, digits[:len(digits)-k]...)
	b = append(b, '.')
	return append(b, digits[len(digits)-k:]...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, ' ')
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// statusLine renders a status message as a point of `station_status`.
func statusLine(b []byte, station, river string, st *reading.Status, t time.Time) []byte {
	b = appendSeries(b, "station_status", station, river)
	b = append(b, "online="...)
	b = strconv.AppendBool(b, st.Online)
	for _, f := range []struct {
		key string
		v   *float64
	}{{"battery_v", st.BatteryV}, {"signal_dbm", st.SignalDBm}, {"enclosure_temp_c", st.EnclosureTempC}} {
		if f.v != nil {
			b = appendFloatField(b, false, f.key, *f.v)
		}
	}
	return appendTime(b, t)
}

// lineStation reads the station tag back out of a line this package wrote.
func lineStation(line string) string {
	_, rest, ok := strings.Cut(line, ",station=")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, ", ")
	if end < 0 {
		return rest
	}
	return rest[:end]
}

// lineTime reads the timestamp (ns) back out of a line this package wrote.
func lineTime(line string) (int64, bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(line[i+1:], 10, 64)
	return ts, err == nil
}
