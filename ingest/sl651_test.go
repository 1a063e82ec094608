package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/sl651"
)

// TestSL651KeepAliveMarksOnline: a station marked offline for its silence
// is online again at its RTU's keep-alive (2F), which stores nothing else
// and gets no answer.
func TestSL651KeepAliveMarksOnline(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 2, 4, 0, 0, 0, time.UTC)}
	w := &fakeWriter{}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{Now: clock.Now, SweepEvery: 5 * time.Millisecond})
	start(t, p)
	const st = "sagya-sagya"
	status := func(online string) int {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, l := range w.lines {
			if strings.HasPrefix(l, "station_status,river=sagya,station="+st+" online="+online) {
				n++
			}
		}
		return n
	}
	clock.Add(16 * time.Minute) // over three 5-minute intervals
	eventually(t, func() bool { return status("false") == 1 }, "silent station not marked offline")
	reg := testRegistry(t).Station(st)
	body, err := sl651.BuildBody(sl651.HEX, 0x2F, &sl651.Report{Serial: 7, Sent: clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	frame := (&sl651.Frame{Encoding: sl651.HEX, Up: true, Centre: 1, Station: reg.SL651Address, Password: reg.SL651Password,
		Function: 0x2F, Body: body, End: sl651.ETX}).Encode()
	replied := make(chan []byte, 1)
	p.intake.Handle(Message{Source: SourceSL651TCP, From: "127.0.0.1:5000", Payload: frame, Received: clock.Now(), Reply: func(b []byte) { replied <- b }})
	eventually(t, func() bool { return status("true") == 1 }, "the keep-alive did not bring the station back online")
	w.mu.Lock()
	for _, l := range w.lines {
		if strings.HasPrefix(l, "reading,") {
			t.Errorf("a keep-alive stored a reading: %s", l)
		}
	}
	w.mu.Unlock()
	select {
	case b := <-replied:
		t.Errorf("a keep-alive was answered: % X", b)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestSL651ElementLabels: a skipped element's metric label is a HEX
// identifier, a mapped mnemonic or "other", never the device's text (an
// ASCII frame's unknown name "\xff\xfe" made the metrics library panic).
func TestSL651ElementLabels(t *testing.T) {
	for in, want := range map[string]string{"7A": "7A", "FF03": "FF03", "Z": "Z", "DRP": "DRP", "\xff\xfe": "other", "ZZZ": "other", "FFFFF": "other", "": "other", "7a": "other"} {
		if got := elementLabel(in); got != want {
			t.Errorf("elementLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
