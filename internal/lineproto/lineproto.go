// Package lineproto renders InfluxDB line protocol: the one place where
// rivermon escapes tags and string fields and writes numbers, for the
// readings of ingest and the alert history alike.
package lineproto

import (
	"math"
	"strconv"
	"strings"
	"time"
)

var (
	tagEscaper    = strings.NewReplacer(",", `\,`, " ", `\ `, "=", `\=`)
	stringEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)
)

// AppendTag writes ",key=value", the value escaped.
func AppendTag(b []byte, key, value string) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	return append(b, tagEscaper.Replace(value)...)
}

// AppendSeries writes "measurement,river=R,station=S " (tags in key order,
// as InfluxDB sorts them).
func AppendSeries(b []byte, measurement, station, river string) []byte {
	b = append(b, measurement...)
	b = AppendTag(b, "river", river)
	b = AppendTag(b, "station", station)
	return append(b, ' ')
}

// AppendFloatField writes "key=v", preceded by a comma unless first.
func AppendFloatField(b []byte, first bool, key string, v float64) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, key...)
	b = append(b, '=')
	return AppendFloat(b, v)
}

// AppendFlagField writes ",<code>_qc=<flag>i", the QC flag of a value.
func AppendFlagField(b []byte, code string, flag int) []byte {
	b = append(b, ',')
	b = append(b, code...)
	b = append(b, "_qc="...)
	b = strconv.AppendInt(b, int64(flag), 10)
	return append(b, 'i')
}

// AppendIntField writes ",key=vi".
func AppendIntField(b []byte, key string, v int64) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, 'i')
}

// AppendBoolField writes ",key=true" or ",key=false".
func AppendBoolField(b []byte, key string, v bool) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, '=')
	return strconv.AppendBool(b, v)
}

// AppendStringField writes ",key=\"v\"", v escaped.
func AppendStringField(b []byte, key, v string) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, `="`...)
	b = append(b, stringEscaper.Replace(v)...)
	return append(b, '"')
}

// AppendTime writes " <unix ns>", the end of a point.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, ' ')
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// pow10 holds the powers of ten that AppendFloat tries, all exact in a
// float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6}

// AppendFloat writes v as a line-protocol float that parses back to exactly
// v. Readings are mostly short decimals (3.42, 12.25): when v is m/10^k
// for an integer m below 2^53 and k ≤ 6, it is written as that decimal,
// several times cheaper than strconv's shortest representation, which is
// used otherwise. The decimal parses to v because parsing and the division
// m/10^k both round the same real number (m and 10^k are exact floats).
func AppendFloat(b []byte, v float64) []byte {
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
