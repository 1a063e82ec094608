package reading

import (
	"encoding/json"
	"time"
)

type wireSample struct {
	Time   string             `json:"time"`
	Values map[string]float64 `json:"values"`
}

type wireMessage struct {
	Station string       `json:"station"`
	Seq     *int64       `json:"seq,omitempty"`
	Samples []wireSample `json:"samples"`
}

// Encode renders m as the native reading payload, times in RFC 3339 UTC.
func (m *Message) Encode() ([]byte, error) {
	w := wireMessage{Station: m.Station, Samples: make([]wireSample, len(m.Samples))}
	if m.HasSeq {
		seq := m.Seq
		w.Seq = &seq
	}
	for i, s := range m.Samples {
		vals := make(map[string]float64, len(s.Values))
		for _, v := range s.Values {
			vals[v.Code] = v.Value
		}
		w.Samples[i] = wireSample{Time: s.Time.UTC().Format(time.RFC3339Nano), Values: vals}
	}
	return json.Marshal(w)
}

type wireStatus struct {
	Time           string   `json:"time,omitempty"`
	Online         bool     `json:"online"`
	BatteryV       *float64 `json:"battery_v,omitempty"`
	SignalDBm      *float64 `json:"signal_dbm,omitempty"`
	EnclosureTempC *float64 `json:"enclosure_temp_c,omitempty"`
}

// Encode renders s as the status payload.
func (s *Status) Encode() ([]byte, error) {
	w := wireStatus{Online: s.Online, BatteryV: s.BatteryV, SignalDBm: s.SignalDBm, EnclosureTempC: s.EnclosureTempC}
	if s.HasTime {
		w.Time = s.Time.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(w)
}
