package ingest

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestDeadLetterHoursCountTheLastDay(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 20, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		adds []time.Duration // after t0, each a bad_json
		now  time.Duration
		want int
	}{
		{"none", nil, 0, 0},
		{"same hour", []time.Duration{0, time.Minute}, 2 * time.Minute, 2},
		{"23 h later", []time.Duration{0}, 23 * time.Hour, 1},
		{"the bucket's hour 24 h on", []time.Duration{0}, 24 * time.Hour, 0},
		{"a bucket reused", []time.Duration{0, 24 * time.Hour}, 24 * time.Hour, 1},
		{"older than what the bucket holds", []time.Duration{24 * time.Hour, 0}, 24 * time.Hour, 1},
		{"in the future of now", []time.Duration{2 * time.Hour}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c deadLetterHours
			for _, d := range tc.adds {
				c.add("bad_json", t0.Add(d))
			}
			got := map[string]int{}
			c.count(t0.Add(tc.now), got)
			if got["bad_json"] != tc.want {
				t.Errorf("count %v, want bad_json %d", got, tc.want)
			}
		})
	}
}

func TestDeadLetterHoursBoundTheReasons(t *testing.T) {
	var c deadLetterHours
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range maxDeadLetterReasons + 10 {
		c.add("reason_"+strings.Repeat("x", i), t0)
	}
	got := map[string]int{}
	c.count(t0, got)
	if len(got) != maxDeadLetterReasons+1 || got["other"] != 10 {
		t.Errorf("%d reasons, other %d; want %d and 10", len(got), got["other"], maxDeadLetterReasons+1)
	}
}

// TestLiveViewCountsDeadLettersByStationAndReason: rejections of messages
// and points InfluxDB refused show in the station's live view by reason;
// those of stations outside the registry do not.
func TestLiveViewCountsDeadLettersByStationAndReason(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	w := &fakeWriter{poison: func(l string) bool { return strings.Contains(l, "level_m=9.99") }}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{Now: clock.Now})
	start(t, p)
	acks := &ackLog{}
	at := clock.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	for i, m := range []struct{ topic, payload string }{
		{"rivermon/v1/stations/sagya-sagya/readings", `{"station": "sagya-sagya", "samples": [`},
		{"rivermon/v1/stations/sagya-sagya/readings", `not json`},
		{"rivermon/v1/stations/sagya-sagya/readings", `{"station": "sagya-sagya", "samples": [{"time": "yesterday", "values": {"level_m": 1}}]}`},
		{"rivermon/v1/stations/sagya-sagya/readings", `{"station": "sagya-sagya", "samples": [{"time": "` + at + `", "values": {"level_m": 9.99}}]}`},
		{"rivermon/v1/stations/no-such-station/readings", `{}`},
	} {
		p.Handle(m.topic, []byte(m.payload), clock.Now(), acks.ack(i))
	}
	want := map[string]int{"bad_json": 2, "bad_time": 1, ReasonInfluxRejected: 1}
	of := func(now time.Time) map[string]int {
		for _, v := range p.Stations().Snapshot(now) {
			if v.ID == "sagya-sagya" {
				return v.DeadLetters
			}
		}
		return nil
	}
	eventually(t, func() bool { return maps.Equal(of(clock.Now()), want) }, "dead letters of sagya-sagya")
	for _, v := range p.Stations().Snapshot(clock.Now()) {
		if v.ID != "sagya-sagya" && len(v.DeadLetters) != 0 {
			t.Errorf("%s: dead letters %v", v.ID, v.DeadLetters)
		}
	}
	if got := of(clock.Now().Add(DeadLetterWindow + time.Hour)); len(got) != 0 {
		t.Errorf("a day later: %v", got)
	}
}
