package reading

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// now is the receive time of every golden payload.
var now = time.Date(2026, 7, 15, 6, 10, 0, 0, time.UTC)

type goldenSample struct {
	Time   string             `json:"time"`
	Values map[string]float64 `json:"values"`
}

type goldenRejection struct {
	Level   Level  `json:"level"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail"`
	Payload string `json:"payload,omitempty"`
}

func rejectionsOf(rs []Rejection) []goldenRejection {
	out := []goldenRejection{}
	for _, r := range rs {
		out = append(out, goldenRejection{Level: r.Level, Reason: r.Reason, Detail: r.Detail, Payload: string(r.Payload)})
	}
	return out
}

func checkGolden(t *testing.T, path string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	golden := strings.TrimSuffix(path, ".json") + ".golden"
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/reading -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from %s:\n%s", path, golden, b)
	}
}

func TestDecodeMessageGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/readings/*.json")
	if len(files) == 0 {
		t.Fatal("no golden payloads")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			payload, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, rejs := DecodeMessage(payload, now)
			out := struct {
				Station    string            `json:"station,omitempty"`
				Seq        *int64            `json:"seq,omitempty"`
				Samples    []goldenSample    `json:"samples"`
				Rejections []goldenRejection `json:"rejections"`
			}{Samples: []goldenSample{}, Rejections: rejectionsOf(rejs)}
			if m != nil {
				out.Station = m.Station
				if m.HasSeq {
					out.Seq = &m.Seq
				}
				for _, s := range m.Samples {
					g := goldenSample{Time: s.Time.UTC().Format(time.RFC3339Nano), Values: map[string]float64{}}
					for _, v := range s.Values {
						g.Values[v.Code] = v.Value
					}
					out.Samples = append(out.Samples, g)
				}
			}
			checkGolden(t, f, out)
		})
	}
}

func TestDecodeStatusGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/status/*.json")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			payload, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			st, rej := DecodeStatus(payload, now)
			out := struct {
				Status    *Status          `json:"status"`
				Rejection *goldenRejection `json:"rejection"`
			}{Status: st}
			if rej != nil {
				out.Rejection = &rejectionsOf([]Rejection{*rej})[0]
			}
			checkGolden(t, f, out)
		})
	}
}

func TestTooLarge(t *testing.T) {
	big := []byte(`{"station": "a", "pad": "` + strings.Repeat("x", MaxMessageBytes) + `"}`)
	m, rejs := DecodeMessage(big, now)
	if m != nil || len(rejs) != 1 || rejs[0].Reason != ReasonTooLarge {
		t.Fatalf("got %v %v", m, rejs)
	}
	var samples []string
	for range MaxSamples + 1 {
		samples = append(samples, `{"time": 1, "values": {"ph": 7}}`)
	}
	m, rejs = DecodeMessage([]byte(`{"station": "a", "samples": [`+strings.Join(samples, ",")+`]}`), now)
	if m != nil || len(rejs) != 1 || rejs[0].Reason != ReasonTooManySamples {
		t.Fatalf("10,001 samples: got %v %v", m, rejs)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	in := Message{Station: "sagya-sagya", Seq: 9, HasSeq: true, Samples: []Sample{
		{Time: now.Add(-time.Minute), Values: []Value{{"level_m", 0.412}, {"flow_m3s", 2.5}, {"water_temp_c", 0}}},
	}}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, rejs := DecodeMessage(b, now)
	if out == nil || len(rejs) != 0 || out.Station != in.Station || out.Seq != 9 || !out.Samples[0].Time.Equal(in.Samples[0].Time) ||
		len(out.Samples[0].Values) != 3 || out.Samples[0].Values[0] != (Value{"level_m", 0.412}) {
		t.Fatalf("round trip: %s → %+v %v", b, out, rejs)
	}
}

func TestValidStationID(t *testing.T) {
	for id, want := range map[string]bool{"nianchu-gyantse": true, "sgx01": true, "a": true, "": false, "Nianchu": false,
		"-a": false, "a-": false, "a--b": false, "a_b": false, "a/b": false, strings.Repeat("a", 65): false} {
		if ValidStationID(id) != want {
			t.Errorf("ValidStationID(%q) = %v", id, !want)
		}
	}
}

// FuzzDecodeMessage: any input gives either one message-level rejection or
// a message whose every sample and value obeys the contract; nothing panics.
func FuzzDecodeMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/readings/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(`{"station":"a","samples":[{"time":-1,"values":{"ph":-0}}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, rejs := DecodeMessage(payload, now)
		if m == nil {
			if len(rejs) != 1 || rejs[0].Level != LevelMessage {
				t.Fatalf("no message and rejections %v", rejs)
			}
			return
		}
		if !ValidStationID(m.Station) {
			t.Fatalf("station %q", m.Station)
		}
		for _, s := range m.Samples {
			if len(s.Values) == 0 || s.Time.Sub(now) > MaxFuture {
				t.Fatalf("sample %+v", s)
			}
			for _, v := range s.Values {
				if !IsParam(v.Code) || math.IsNaN(v.Value) || math.IsInf(v.Value, 0) {
					t.Fatalf("value %+v", v)
				}
			}
		}
		for _, r := range rejs {
			if r.Level == LevelMessage || r.Reason == "" || r.Detail == "" {
				t.Fatalf("rejection %+v", r)
			}
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	files, _ := filepath.Glob("testdata/status/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		st, rej := DecodeStatus(payload, now)
		if (st == nil) == (rej == nil) {
			t.Fatalf("status %v and rejection %v", st, rej)
		}
	})
}

// benchPayload is a message of n samples of four values, a minute apart,
// from 2026-07-15T06:00Z.
func benchPayload(n int) []byte {
	var samples []string
	for i := range n {
		samples = append(samples, fmt.Sprintf(`{"time": %d, "values": {"level_m": 1.%03d, "flow_m3s": 58.1, "water_temp_c": 9.8, "ph": 8.1}}`, 1784095200000+int64(i)*60000, i))
	}
	return []byte(`{"station": "nianchu-gyantse-bainang", "seq": 1042, "samples": [` + strings.Join(samples, ",") + `]}`)
}

func BenchmarkDecodeMessage(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("%dsamples", n), func(b *testing.B) {
			payload := benchPayload(n)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if m, rejs := DecodeMessage(payload, now.Add(24*time.Hour)); m == nil || len(rejs) > 0 {
					b.Fatal(rejs)
				}
			}
		})
	}
}
