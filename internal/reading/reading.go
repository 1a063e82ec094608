// Package reading is the wire schema shared by rivermon and the station
// simulator: the parameter codes, the native reading and status payloads, and
// the rules (CONTRACT §4–§5) that decide what of a message is kept and what is
// rejected, at message, sample and value level. It imports the standard
// library only, so anything may depend on it.
package reading

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Limits of one reading message.
const (
	MaxMessageBytes = 1 << 20
	MaxSamples      = 10000
	// MaxFuture is how far ahead of the receive time a sample may be stamped
	// before it is taken for a device clock fault.
	MaxFuture = 5 * time.Minute
)

// Param describes one parameter code of CONTRACT §4.
type Param struct {
	Code     string
	Quantity string
	Unit     string
}

var params = []Param{
	{"level_m", "water level (stage) above gauge datum", "m"},
	{"flow_m3s", "measured discharge", "m³/s"},
	{"velocity_ms", "mean velocity", "m/s"},
	{"volume_m3", "cumulative water quantity through the section", "m³"},
	{"water_temp_c", "water temperature", "°C"},
	{"ph", "pH", ""},
	{"do_mgl", "dissolved oxygen", "mg/L"},
	{"cond_uscm", "conductivity", "µS/cm"},
	{"turb_ntu", "turbidity", "NTU"},
	{"codmn_mgl", "permanganate index (CODMn)", "mg/L"},
	{"nh3n_mgl", "ammonia nitrogen (NH3-N)", "mg/L"},
	{"tp_mgl", "total phosphorus", "mg/L"},
	{"tn_mgl", "total nitrogen", "mg/L"},
	{"rain_mm", "rainfall in the period ending at the sample time (SL 651 PJ)", "mm"},
	{"rain_total_mm", "cumulative rainfall counter of the gauge (SL 651 PT)", "mm"},
}

// NumParams is len(Params()), as a constant.
const NumParams = 15

// Params returns the parameter codes in their canonical order.
func Params() []Param { return append([]Param(nil), params...) }

// IsParam reports whether code is a parameter code of the contract.
func IsParam(code string) bool { return ParamIndex(code) >= 0 }

// ValidStationID reports whether id has the form of a station id: lower-case
// letters, digits and single inner hyphens, at most 64 characters.
func ValidStationID(id string) bool { return validStationID(id) }

// Level says how much of a message a rejection throws out.
type Level string

// Rejection levels (CONTRACT §5).
const (
	LevelMessage Level = "message"
	LevelSample  Level = "sample"
	LevelValue   Level = "value"
)

// Reason codes of rejections. They are the values of the `reason` label of
// rivermon_rejected_total and of the dead-letter `reason` field.
const (
	ReasonBadJSON         = "bad_json"
	ReasonNotObject       = "not_object"
	ReasonTooLarge        = "too_large"
	ReasonBadTopic        = "bad_topic"
	ReasonMissingStation  = "missing_station"
	ReasonUnknownStation  = "unknown_station"
	ReasonStationMismatch = "station_mismatch"
	ReasonNoSamples       = "no_samples"
	ReasonTooManySamples  = "too_many_samples"
	ReasonBadSeq          = "bad_seq"
	ReasonBadSample       = "bad_sample"
	ReasonBadTime         = "bad_time"
	ReasonFutureTime      = "future_time"
	ReasonNoValues        = "no_values"
	ReasonUnknownParam    = "unknown_param"
	ReasonBadValue        = "bad_value"
	ReasonBadStatus       = "bad_status"
)

// Reasons lists every reason code this package produces.
func Reasons() []string {
	return []string{ReasonBadJSON, ReasonNotObject, ReasonTooLarge, ReasonBadTopic,
		ReasonMissingStation, ReasonUnknownStation, ReasonStationMismatch, ReasonNoSamples,
		ReasonTooManySamples, ReasonBadSeq, ReasonBadSample, ReasonBadTime, ReasonFutureTime,
		ReasonNoValues, ReasonUnknownParam, ReasonBadValue, ReasonBadStatus}
}

// Rejection is one thing refused from a message. Payload is the offending
// JSON (the whole message, the sample, or the sample holding the value); it
// is nil when the message was not JSON, and the caller then keeps the raw
// bytes.
type Rejection struct {
	Level   Level
	Reason  string
	Detail  string
	Payload json.RawMessage
}

func (r *Rejection) Error() string { return r.Reason + ": " + r.Detail }

// Value is one parameter value of a sample.
type Value struct {
	Code  string
	Value float64
}

// Sample is the values a station measured at one time.
type Sample struct {
	Time   time.Time
	Values []Value // sorted by the canonical parameter order
}

// Message is a decoded reading message.
type Message struct {
	Station string
	Seq     int64
	HasSeq  bool
	Samples []Sample
}

// DecodeMessage decodes a native reading payload received at now. A
// message-level failure returns a nil *Message with one rejection; otherwise
// the kept samples come back with the sample- and value-level rejections. The
// caller checks the station against the topic and the registry.
func DecodeMessage(payload []byte, now time.Time) (*Message, []Rejection) {
	if m, ok := decodeFast(payload, now); ok {
		return m, nil
	}
	return decodeGeneral(payload, now)
}

// decodeGeneral is DecodeMessage for any input: it finds and explains every
// rejection.
func decodeGeneral(payload []byte, now time.Time) (*Message, []Rejection) {
	top, rej := decodeObject(payload)
	if rej != nil {
		return nil, []Rejection{*rej}
	}
	whole := func(reason, format string, args ...any) (*Message, []Rejection) {
		return nil, []Rejection{{Level: LevelMessage, Reason: reason, Detail: fmt.Sprintf(format, args...), Payload: payload}}
	}
	rawStation, ok := top["station"]
	if !ok {
		return whole(ReasonMissingStation, `no "station" key`)
	}
	var station string
	if err := json.Unmarshal(rawStation, &station); err != nil || !ValidStationID(station) {
		return whole(ReasonMissingStation, `"station" is %s, not a station id`, clip(rawStation))
	}
	rawSamples, ok := top["samples"]
	if !ok || isNull(rawSamples) {
		return whole(ReasonNoSamples, `no "samples" key`)
	}
	var samples []json.RawMessage
	if err := json.Unmarshal(rawSamples, &samples); err != nil {
		return whole(ReasonNoSamples, `"samples" is not a list`)
	}
	if len(samples) == 0 {
		return whole(ReasonNoSamples, `"samples" is empty`)
	}
	if len(samples) > MaxSamples {
		return whole(ReasonTooManySamples, "%d samples, at most %d per message", len(samples), MaxSamples)
	}
	m := &Message{Station: station, Samples: make([]Sample, 0, len(samples))}
	var rejs []Rejection
	if rawSeq, ok := top["seq"]; ok && !isNull(rawSeq) {
		seq, err := strconv.ParseInt(string(rawSeq), 10, 64)
		if err != nil || seq < 0 {
			// The samples are good; only the counter is unusable. It is
			// reported, and the samples kept.
			rejs = append(rejs, Rejection{Level: LevelValue, Reason: ReasonBadSeq,
				Detail: fmt.Sprintf(`"seq" is %s, not a non-negative integer`, clip(rawSeq)), Payload: rawSeq})
		} else {
			m.Seq, m.HasSeq = seq, true
		}
	}
	for i, raw := range samples {
		s, srejs := decodeSample(i, raw, now)
		rejs = append(rejs, srejs...)
		if s != nil {
			m.Samples = append(m.Samples, *s)
		}
	}
	return m, rejs
}

func decodeSample(i int, raw json.RawMessage, now time.Time) (*Sample, []Rejection) {
	reject := func(reason, format string, args ...any) (*Sample, []Rejection) {
		return nil, []Rejection{{Level: LevelSample, Reason: reason,
			Detail: fmt.Sprintf("sample %d: ", i) + fmt.Sprintf(format, args...), Payload: raw}}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return reject(ReasonBadSample, "not an object")
	}
	rawTime, ok := obj["time"]
	if !ok {
		return reject(ReasonBadTime, `no "time" key`)
	}
	t, err := ParseTime(rawTime)
	if err != nil {
		return reject(ReasonBadTime, "%v", err)
	}
	if t.Sub(now) > MaxFuture {
		return reject(ReasonFutureTime, "time %s is %s ahead of the receive time %s",
			t.UTC().Format(time.RFC3339Nano), t.Sub(now).Round(time.Second), now.UTC().Format(time.RFC3339))
	}
	rawValues, ok := obj["values"]
	if !ok || isNull(rawValues) {
		return reject(ReasonNoValues, `no "values" key`)
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(rawValues, &values); err != nil {
		return reject(ReasonNoValues, `"values" is not an object`)
	}
	if len(values) == 0 {
		return reject(ReasonNoValues, `"values" is empty`)
	}
	s := &Sample{Time: t, Values: make([]Value, 0, len(values))}
	var rejs []Rejection
	for code, rv := range values {
		if !IsParam(code) {
			rejs = append(rejs, Rejection{Level: LevelValue, Reason: ReasonUnknownParam,
				Detail: fmt.Sprintf("sample %d: unknown parameter code %q", i, code), Payload: raw})
			continue
		}
		v, err := parseNumber(rv)
		if err != nil {
			rejs = append(rejs, Rejection{Level: LevelValue, Reason: ReasonBadValue,
				Detail: fmt.Sprintf("sample %d: %s: %v", i, code, err), Payload: raw})
			continue
		}
		s.Values = append(s.Values, Value{Code: code, Value: v})
	}
	if len(s.Values) == 0 {
		// Every value was refused and is reported above; the sample has
		// nothing left to store.
		return nil, rejs
	}
	sort.Slice(s.Values, func(a, b int) bool { return ParamIndex(s.Values[a].Code) < ParamIndex(s.Values[b].Code) })
	// Map keys in JSON order are not kept; sort the rejections for stable output.
	sort.SliceStable(rejs, func(a, b int) bool { return rejs[a].Detail < rejs[b].Detail })
	return s, rejs
}

// Sample times are what InfluxDB can store, nanoseconds since 1970 in an
// int64 from 1677-09-21 to 2262-04-11 (its MinNanoTime and MaxNanoTime):
// outside that the nanoseconds wrap, and a sample of year 1 (a station
// whose clock was never set) would be stored in 1754.
var (
	minTime = time.Unix(0, math.MinInt64+2).UTC()
	maxTime = time.Unix(0, math.MaxInt64-1).UTC()
)

// Epoch milliseconds within those times (division truncates towards 0).
const (
	minEpochMs = (math.MinInt64 + 2) / 1_000_000
	maxEpochMs = (math.MaxInt64 - 1) / 1_000_000
)

// Storable reports whether t is within the times InfluxDB stores, and says
// why not.
func Storable(t time.Time) error {
	if t.Before(minTime) || t.After(maxTime) {
		return fmt.Errorf("time %s is outside %s – %s, the times InfluxDB stores",
			t.Format(time.RFC3339Nano), minTime.Format("2006-01-02"), maxTime.Format("2006-01-02"))
	}
	return nil
}

// ParseTime reads a sample time: an RFC 3339 string with an optional
// fraction and any offset, or an integer of epoch milliseconds.
func ParseTime(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, fmt.Errorf("time %s is not a string", clip(raw))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q is not RFC 3339 (e.g. 2026-07-15T06:00:00Z)", s)
		}
		if err := Storable(t); err != nil {
			return time.Time{}, err
		}
		return t, nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %s is neither RFC 3339 text nor integer epoch milliseconds", clip(raw))
	}
	if ms < minEpochMs || ms > maxEpochMs {
		return time.Time{}, fmt.Errorf("epoch milliseconds %d are outside %s – %s, the times InfluxDB stores", ms, minTime.Format("2006-01-02"), maxTime.Format("2006-01-02"))
	}
	return time.UnixMilli(ms).UTC(), nil
}

// parseNumber accepts a JSON number that is finite as a float64.
func parseNumber(raw json.RawMessage) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, fmt.Errorf("%s is not a number", clip(raw))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%s is not a finite number", clip(raw))
	}
	return v, nil
}

// Status is a decoded device-health message.
type Status struct {
	Time           time.Time
	HasTime        bool
	Online         bool
	BatteryV       *float64
	SignalDBm      *float64
	EnclosureTempC *float64
}

// DecodeStatus decodes a status payload. A status without "time" is taken at
// receive time by the caller (a last will carries none).
func DecodeStatus(payload []byte, now time.Time) (*Status, *Rejection) {
	top, rej := decodeObject(payload)
	if rej != nil {
		return nil, rej
	}
	bad := func(format string, args ...any) (*Status, *Rejection) {
		return nil, &Rejection{Level: LevelMessage, Reason: ReasonBadStatus, Detail: fmt.Sprintf(format, args...), Payload: payload}
	}
	st := &Status{}
	rawOnline, ok := top["online"]
	if !ok {
		return bad(`no "online" key`)
	}
	if err := json.Unmarshal(rawOnline, &st.Online); err != nil {
		return bad(`"online" is %s, not true or false`, clip(rawOnline))
	}
	if rawTime, ok := top["time"]; ok && !isNull(rawTime) {
		t, err := ParseTime(rawTime)
		if err != nil {
			return nil, &Rejection{Level: LevelMessage, Reason: ReasonBadTime, Detail: err.Error(), Payload: payload}
		}
		if t.Sub(now) > MaxFuture {
			return nil, &Rejection{Level: LevelMessage, Reason: ReasonFutureTime,
				Detail:  fmt.Sprintf("time %s is %s ahead of the receive time", t.UTC().Format(time.RFC3339Nano), t.Sub(now).Round(time.Second)),
				Payload: payload}
		}
		st.Time, st.HasTime = t, true
	}
	for key, dst := range map[string]**float64{"battery_v": &st.BatteryV, "signal_dbm": &st.SignalDBm, "enclosure_temp_c": &st.EnclosureTempC} {
		raw, ok := top[key]
		if !ok || isNull(raw) {
			continue
		}
		v, err := parseNumber(raw)
		if err != nil {
			return bad("%s: %v", key, err)
		}
		*dst = &v
	}
	return st, nil
}

// decodeObject parses a payload that must be one JSON object.
func decodeObject(payload []byte) (map[string]json.RawMessage, *Rejection) {
	if len(payload) > MaxMessageBytes {
		return nil, &Rejection{Level: LevelMessage, Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("%d bytes, at most %d", len(payload), MaxMessageBytes)}
	}
	if !json.Valid(payload) {
		return nil, &Rejection{Level: LevelMessage, Reason: ReasonBadJSON, Detail: "payload is not valid JSON"}
	}
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &Rejection{Level: LevelMessage, Reason: ReasonNotObject, Detail: "payload is JSON but not an object", Payload: payload}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return nil, &Rejection{Level: LevelMessage, Reason: ReasonBadJSON, Detail: err.Error()}
	}
	return top, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// clip shortens raw JSON for an error message.
func clip(raw []byte) string {
	const max = 40
	if len(raw) > max {
		return string(raw[:max]) + "…"
	}
	return string(raw)
}
