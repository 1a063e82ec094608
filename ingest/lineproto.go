package ingest

import (
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
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendIntField(b []byte, key string, v int64) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, 'i')
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
