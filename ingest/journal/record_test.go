package journal

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

func sampleRecord() *Record {
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	return &Record{
		Entries: []Entry{
			{Kind: KindReading, Station: "nianchu-mouth", Time: t0, Source: "mqtt", Line: "reading,river=nianchu,station=nianchu-mouth level_m=1.5,level_m_qc=1i 1",
				Values: []reading.Value{{Code: "level_m", Value: 1.5}, {Code: "flow_m3s", Value: math.Pi}}},
			{Kind: KindRevision, Station: "nianchu-mouth", Time: t0.Add(-time.Minute), Source: "mqtt", Line: "x"},
			{Kind: KindStatus, Station: "boqu-nyalam", Time: time.Unix(0, -5).UTC(), Source: "sweep", Line: ""},
			{Kind: KindAlert, Station: "", Time: t0, Source: "alerts", Line: strings.Repeat("x", 300)},
		},
		DeadLetters: []DeadLetter{{Topic: "t/1", Reason: "bad_json", Body: []byte(`{"x":1}`)}, {}},
	}
}

// A record comes back as it went in: every entry with its station, time,
// source and line, a reading's values when asked for, the dead letters.
func TestRecordRoundTrip(t *testing.T) {
	in := sampleRecord()
	var out Record
	if err := Decode(Encode(in), &out, true); err != nil {
		t.Fatal(err)
	}
	if len(out.Entries) != len(in.Entries) || len(out.DeadLetters) != 2 {
		t.Fatalf("round trip: %+v", out)
	}
	for i, e := range out.Entries {
		w := in.Entries[i]
		if e.Kind != w.Kind || e.Station != w.Station || !e.Time.Equal(w.Time) || e.Source != w.Source || e.Line != w.Line {
			t.Errorf("entry %d: %+v, want %+v", i, e, w)
		}
		if len(e.Values) != len(w.Values) {
			t.Errorf("entry %d: values %v, want %v", i, e.Values, w.Values)
		}
		for k := range e.Values {
			if e.Values[k] != w.Values[k] {
				t.Errorf("entry %d value %d: %v, want %v", i, k, e.Values[k], w.Values[k])
			}
		}
	}
	if d := out.DeadLetters[0]; d.Topic != "t/1" || d.Reason != "bad_json" || string(d.Body) != `{"x":1}` {
		t.Errorf("dead letter %+v", d)
	}
	// Delivery does not ask for the values.
	out.Reset()
	if err := Decode(Encode(in), &out, false); err != nil || out.Entries[0].Values != nil || out.Entries[3].Line != in.Entries[3].Line {
		t.Errorf("without values: %v %+v", err, out.Entries[0])
	}
	// The dead-letter publisher reads the dead letters alone.
	var dls Record
	if err := DecodeDeadLetters(Encode(in), &dls); err != nil || len(dls.Entries) != 0 || len(dls.DeadLetters) != 2 ||
		string(dls.DeadLetters[0].Body) != `{"x":1}` || dls.DeadLetters[0].Topic != "t/1" {
		t.Errorf("dead letters alone: %v %+v", err, dls)
	}
	good := Encode(in)
	for _, bad := range [][]byte{nil, {9}, {2, 5, 1}, append(good, 0), good[:len(good)-3], {2, 0, 1, 0}} {
		var r Record
		if err := Decode(bad, &r, true); err == nil {
			t.Errorf("Decode(%v) accepted", bad)
		}
	}
}

// A spool written before the journal (version 1: lines only) is still
// delivered and rebuilt from: station, time, kind and values are read
// from the lines.
func TestLegacyRecord(t *testing.T) {
	lines := []string{
		"reading,river=nianchu,station=nianchu-mouth level_m=1.5,level_m_qc=1i,flow_rated_m3s=3,flow_rated_m3s_qc=1i 1751328000000000000",
		"reading,river=nianchu,station=nianchu-mouth level_m_qc=4i,flow_rated_m3s_qc=4i 1751327700000000000",
		"eflow_daily,river=nianchu,station=nianchu-mouth mean_flow_m3s=3,compliant=true 1751299200000000000",
		`alert,alertname=LevelHigh,river=nianchu,severity=warning,station=nianchu-mouth state="firing" 1751328000000000000`,
	}
	var r Record
	if err := Decode(EncodeLegacy(lines, []DeadLetter{{Topic: "t", Reason: "bad_json", Body: []byte("{}")}}), &r, true); err != nil {
		t.Fatal(err)
	}
	want := []Kind{KindReading, KindRevision, KindEflow, KindAlert}
	for i, e := range r.Entries {
		if e.Kind != want[i] || e.Station != "nianchu-mouth" || e.Line != lines[i] {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	if e := r.Entries[0]; e.Time.UnixNano() != 1751328000000000000 || len(e.Values) != 1 || e.Values[0] != (reading.Value{Code: "level_m", Value: 1.5}) {
		t.Errorf("reading %+v", e)
	}
	if len(r.DeadLetters) != 1 || string(r.DeadLetters[0].Body) != "{}" {
		t.Errorf("dead letters %+v", r.DeadLetters)
	}
	var dls Record
	if err := DecodeDeadLetters(EncodeLegacy(lines, r.DeadLetters), &dls); err != nil || len(dls.DeadLetters) != 1 || string(dls.DeadLetters[0].Body) != "{}" {
		t.Errorf("dead letters alone: %v %+v", err, dls.DeadLetters)
	}
}

// FuzzDecode: a record that decodes re-encodes to one that decodes to the
// same entries, and nothing panics.
func FuzzDecode(f *testing.F) {
	f.Add(Encode(sampleRecord()))
	f.Add(EncodeLegacy([]string{"reading,river=r,station=s level_m=1 1"}, []DeadLetter{{Topic: "t", Reason: "bad_json", Body: []byte("{}")}}))
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := Decode(b, &r, true); err != nil {
			return
		}
		var again Record
		if err := Decode(Encode(&r), &again, true); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if len(again.Entries) != len(r.Entries) || len(again.DeadLetters) != len(r.DeadLetters) {
			t.Fatalf("re-encoded: %d entries, %d dead letters; was %d, %d", len(again.Entries), len(again.DeadLetters), len(r.Entries), len(r.DeadLetters))
		}
		for i := range r.Entries {
			if again.Entries[i].Line != r.Entries[i].Line || again.Entries[i].Station != r.Entries[i].Station {
				t.Fatalf("entry %d changed", i)
			}
		}
		var dls Record
		if err := DecodeDeadLetters(b, &dls); err != nil || len(dls.DeadLetters) != len(r.DeadLetters) {
			t.Fatalf("dead letters alone: %v, %d of %d", err, len(dls.DeadLetters), len(r.DeadLetters))
		}
		for i := range dls.DeadLetters {
			if string(dls.DeadLetters[i].Body) != string(r.DeadLetters[i].Body) || dls.DeadLetters[i].Topic != r.DeadLetters[i].Topic {
				t.Fatalf("dead letter %d differs", i)
			}
		}
	})
}
