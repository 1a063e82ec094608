package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestBadInputIsDeadLetteredAndTheRestKept covers every row of CONTRACT §5:
// the right reason reaches the dead-letter topic and the counter, the valid
// rest of the message is stored, and the process stays up.
func TestBadInputIsDeadLetteredAndTheRestKept(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-bad")
	pub := testenv.NewClient(t, mq.URL, "station-bad")
	watch := testenv.NewClient(t, mq.URL, "deadletter-watch")
	watch.Subscribe(prefix + "/deadletter/#")

	const st = "nianchu-bainang"
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	good := func(i int) map[string]any {
		return map[string]any{"time": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339), "values": map[string]any{"level_m": 1.5}}
	}
	msg := func(samples ...any) []byte {
		return mustJSON(t, map[string]any{"station": st, "samples": samples})
	}
	cases := []struct {
		name, topic, reason, dlStation string
		payload                        []byte
		keptTime                       int // index passed to good() of a sample that must be stored, -1 for none
		wantB64                        bool
	}{
		{name: "not JSON", reason: "bad_json", payload: []byte(`{"station": "nianchu-bainang", "samples": [`), keptTime: -1, wantB64: true},
		{name: "binary", reason: "bad_json", payload: []byte{0xff, 0x00, 0x12}, keptTime: -1, wantB64: true},
		{name: "not an object", reason: "not_object", payload: []byte(`[1, 2, 3]`), keptTime: -1},
		{name: "over 1 MiB", reason: "too_large", payload: []byte(`{"station": "nianchu-bainang", "pad": "` + strings.Repeat("x", 1<<20) + `"}`), keptTime: -1},
		{name: "unknown station", topic: readingsTopic("no-such-station"), dlStation: "no-such-station", reason: "unknown_station",
			payload: mustJSON(t, map[string]any{"station": "no-such-station", "samples": []any{good(1)}}), keptTime: -1},
		{name: "station unlike topic", reason: "station_mismatch",
			payload: mustJSON(t, map[string]any{"station": "nianchu-mouth", "samples": []any{good(2)}}), keptTime: -1},
		{name: "no samples", reason: "no_samples", payload: msg(), keptTime: -1},
		{name: "no station", reason: "missing_station", payload: []byte(`{"samples": []}`), keptTime: -1},
		{name: "bad topic", topic: prefix + "/stations/UPPER/readings", dlStation: "_unknown", reason: "bad_topic", payload: msg(good(3)), keptTime: -1},
		{name: "bad time", reason: "bad_time", payload: msg(good(10), map[string]any{"time": "yesterday", "values": map[string]any{"level_m": 1}}), keptTime: 10},
		{name: "missing time", reason: "bad_time", payload: msg(good(11), map[string]any{"values": map[string]any{"level_m": 1}}), keptTime: 11},
		{name: "future time", reason: "future_time", payload: msg(good(12), map[string]any{"time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "values": map[string]any{"level_m": 1}}), keptTime: 12},
		{name: "no values", reason: "no_values", payload: msg(good(13), map[string]any{"time": base.Format(time.RFC3339), "values": map[string]any{}}), keptTime: 13},
		{name: "unknown code", reason: "unknown_param", payload: msg(map[string]any{"time": base.Add(14 * time.Second).Format(time.RFC3339), "values": map[string]any{"level_m": 1.5, "salinity": 3}}), keptTime: 14},
		{name: "value not a number", reason: "bad_value", payload: msg(map[string]any{"time": base.Add(15 * time.Second).Format(time.RFC3339), "values": map[string]any{"level_m": 1.5, "ph": "8.1"}}), keptTime: 15},
		{name: "value NaN", reason: "bad_value", payload: []byte(fmt.Sprintf(`{"station": %q, "samples": [{"time": %q, "values": {"level_m": 1.5, "ph": "NaN"}}]}`, st, base.Add(16*time.Second).Format(time.RFC3339))), keptTime: 16},
		{name: "value Inf", reason: "bad_value", payload: []byte(fmt.Sprintf(`{"station": %q, "samples": [{"time": %q, "values": {"level_m": 1.5, "ph": 1e999}}]}`, st, base.Add(17*time.Second).Format(time.RFC3339))), keptTime: 17},
		{name: "value null", reason: "bad_value", payload: []byte(fmt.Sprintf(`{"station": %q, "samples": [{"time": %q, "values": {"level_m": 1.5, "ph": null}}]}`, st, base.Add(18*time.Second).Format(time.RFC3339))), keptTime: 18},
		{name: "status without online", topic: prefix + "/stations/" + st + "/status", reason: "bad_status", payload: []byte(`{"battery_v": 12}`), keptTime: -1},
		{name: "hj212 packet cut short", topic: prefix + "/stations/" + st + "/hj212", reason: "hj212_incomplete", payload: []byte("##0087QN=1;ST=91;CN=9014&&&&DBC1\r\n"), keptTime: -1, wantB64: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			topic, dlStation := c.topic, c.dlStation
			if topic == "" {
				topic = readingsTopic(st)
			}
			if dlStation == "" {
				dlStation = st
			}
			counter := fmt.Sprintf("rivermon_rejected_total{reason=%q}", c.reason)
			before := svc.metric(counter)
			seen := len(watch.Received(prefix + "/deadletter/#"))
			pub.Publish(topic, c.payload)

			var dl map[string]any
			testenv.Eventually(t, 15*time.Second, func() bool {
				for _, m := range watch.Received(prefix + "/deadletter/#")[seen:] {
					var got map[string]any
					dec := json.NewDecoder(bytes.NewReader(m.Payload))
					dec.UseNumber() // a payload may hold numbers beyond float64, such as 1e999
					if err := dec.Decode(&got); err != nil {
						t.Fatalf("dead letter is not JSON: %v", err)
					}
					if got["reason"] == c.reason && got["topic"] == topic {
						if m.Topic != prefix+"/deadletter/"+dlStation {
							t.Errorf("dead letter on %s, want %s", m.Topic, prefix+"/deadletter/"+dlStation)
						}
						dl = got
						return true
					}
				}
				return false
			}, "no dead letter with reason %s", c.reason)
			if dl["detail"] == "" || dl["received_at"] == nil {
				t.Errorf("dead letter lacks detail or received_at: %v", dl)
			}
			if c.wantB64 {
				if dl["payload_b64"] == nil {
					t.Errorf("dead letter of non-JSON input has no payload_b64: %v", dl)
				}
			} else if dl["payload"] == nil {
				t.Errorf("dead letter has no payload: %v", dl)
			}
			testenv.Eventually(t, 5*time.Second, func() bool { return svc.metric(counter) == before+1 },
				"%s did not grow by one from %v", counter, before)
			if c.keptTime >= 0 {
				ts := base.Add(time.Duration(c.keptTime) * time.Second)
				where := fmt.Sprintf("station = '%s' AND time = %d", st, ts.UnixNano())
				testenv.Eventually(t, 10*time.Second, func() bool { return in.Count(t, "reading", "level_m", where) == 1 },
					"the valid rest of the message was not stored")
			}
		})
	}
	if svc.status("/healthz") != http.StatusOK || svc.status("/readyz") != http.StatusOK {
		t.Error("rivermon is not healthy after bad input")
	}
	if got := svc.metric(`rivermon_messages_total{result="rejected"}`); got < 10 {
		t.Errorf("rejected messages counted %v", got)
	}
}
