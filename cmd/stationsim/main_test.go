package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWindow(t *testing.T) {
	now := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		start, end string
		duration   time.Duration
		scenario   string
		want       window
		wantErr    string
	}{
		{start: "now", want: window{start: now}},
		{start: "-48h", duration: time.Hour, want: window{start: now.Add(-48 * time.Hour), duration: time.Hour}},
		{start: "2026-01-10T00:00:00+08:00", end: "2026-01-10T12:00:00+08:00",
			want: window{start: at("2026-01-10T00:00:00+08:00"), duration: 12 * time.Hour}},
		{start: "-12h", end: "-2h", scenario: "-11h",
			want: window{start: now.Add(-12 * time.Hour), duration: 10 * time.Hour, scenarioStart: now.Add(-11 * time.Hour)}},
		{start: "-1h", end: "+1h", want: window{start: now.Add(-time.Hour), duration: 2 * time.Hour}},
		{start: "2026-01-10T00:00:00Z", end: "now", scenario: "2026-01-10T09:30:00+08:00",
			want: window{start: at("2026-01-10T00:00:00Z"), duration: now.Sub(at("2026-01-10T00:00:00Z")), scenarioStart: at("2026-01-10T09:30:00+08:00")}},
		{start: "yesterday", wantErr: "-start"},
		{start: "-2h", end: "-3h", wantErr: "not after -start"},
		{start: "-2h", end: "-1h", duration: time.Hour, wantErr: "give one of them"},
		{start: "-2h", duration: -time.Hour, wantErr: "positive"},
		{start: "-2h", end: "2026-13-01", wantErr: "-end"},
		{start: "-2h", scenario: "-3h", wantErr: "before -start"},
		{start: "-2h", scenario: "soon", wantErr: "-scenario-start"},
	} {
		got, err := parseWindow(c.start, c.end, c.duration, c.scenario, now)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%+v: error %v, want one about %q", c, err, c.wantErr)
		case c.wantErr == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case c.wantErr == "" && (!got.start.Equal(c.want.start) || got.duration != c.want.duration || !got.scenarioStart.Equal(c.want.scenarioStart)):
			t.Errorf("%+v: %+v, want %+v", c, got, c.want)
		}
	}
}

// TestBadFlagsExitTwo: a wrong time flag stops stationsim before it
// connects to anything.
func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"-start", "-2h", "-end", "-3h"},
		{"-start", "-2h", "-end", "-1h", "-duration", "1h"},
		{"-scenario-start", "last week"},
		{"-scenario", "tsunami:nianchu-mouth"},
		{"-protocol", "hj212", "-crc", "crc16"},
		{"-protocol", "sl651,modbus"},
		{"-protocol", "sl651", "-encoding", "bcd"},
	} {
		if got := run(append(args, "-broker", "tcp://127.0.0.1:1")); got != 2 {
			t.Errorf("%q: exit %d, want 2", args, got)
		}
	}
}
