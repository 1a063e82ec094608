package ingest

import (
	"fmt"
	"github.com/rivermon/rivermon/internal/reading"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps what it is shown.
type recorder struct {
	mu sync.Mutex
	ss []reading.Observed
}

func (r *recorder) Observe(ss []reading.Observed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range ss {
		s.Values = append([]reading.ObservedValue(nil), s.Values...)
		r.ss = append(r.ss, s)
	}
}

// values returns every observed value of code: its sample time and flag.
func (r *recorder) values(code string) (times []time.Time, flags []int, vs []float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.ss {
		for _, v := range s.Values {
			if v.Code == code {
				times, flags, vs = append(times, s.Time), append(flags, v.Flag), append(vs, v.V)
			}
		}
	}
	return times, flags, vs
}

// A value with a spike test reaches the observer once the next value has
// completed its flag: a spike arrives flagged 4, never as a plain value.
func TestObserverSeesFinalFlags(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 2, 4, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	p := newPipeline(t, t.TempDir(), &fakeWriter{}, &fakePublisher{}, Options{Now: clock.Now, Observer: rec, SweepEvery: 5 * time.Millisecond})
	stop := start(t, p)
	acks := &ackLog{}
	t0 := clock.Now().Add(-time.Hour)
	levels := []float64{1.00, 1.00, 1.00, 1.60, 1.00, 1.00}
	for i, h := range levels {
		at := t0.Add(time.Duration(i) * 5 * time.Minute)
		body := fmt.Sprintf(`{"station": "sagya-sagya", "samples": [{"time": %q, "values": {"level_m": %g, "velocity_ms": 0.5}}]}`, at.Format(time.RFC3339), h)
		p.Handle("rivermon/v1/stations/sagya-sagya/readings", []byte(body), clock.Now(), acks.ack(i))
		eventually(t, func() bool { return len(acks.get()) == i+1 }, "not acked")
		times, _, _ := rec.values("level_m")
		if len(times) != i {
			t.Fatalf("after sample %d the observer has %d stage values, want %d (each waits for the next)", i, len(times), i)
		}
		// Velocity has no spike test: it goes at once.
		if vt, _, _ := rec.values("velocity_ms"); len(vt) != i+1 {
			t.Fatalf("after sample %d: %d velocity values, want %d", i, len(vt), i+1)
		}
	}
	times, flags, vs := rec.values("level_m")
	for k := range times {
		if vs[k] == 1.60 && flags[k] != 4 {
			t.Errorf("the spike at %v was observed with flag %d, want 4", times[k], flags[k])
		}
		if k > 0 && !times[k].After(times[k-1]) {
			t.Errorf("stage values out of order: %v after %v", times[k], times[k-1])
		}
	}
	// The last value goes when two intervals pass without a next one.
	clock.Add(9 * time.Minute)
	time.Sleep(30 * time.Millisecond)
	if times, _, _ := rec.values("level_m"); len(times) != len(levels)-1 {
		t.Fatalf("released after 9 minutes: %d values", len(times))
	}
	clock.Add(2 * time.Minute)
	eventually(t, func() bool { times, _, _ := rec.values("level_m"); return len(times) == len(levels) }, "the last value was never released")
	// Released values keep their message's arrival time: releasing is no
	// sign of life.
	rec.mu.Lock()
	last := rec.ss[len(rec.ss)-1]
	rec.mu.Unlock()
	if !last.Received.Before(clock.Now().Add(-10 * time.Minute)) {
		t.Errorf("released with Received %v", last.Received)
	}
	// What waits at shutdown is shown then.
	body := fmt.Sprintf(`{"station": "sagya-sagya", "samples": [{"time": %q, "values": {"level_m": 1.0}}]}`, t0.Add(30*time.Minute).Format(time.RFC3339))
	p.Handle("rivermon/v1/stations/sagya-sagya/readings", []byte(body), clock.Now(), acks.ack(len(levels)))
	eventually(t, func() bool { return len(acks.get()) == len(levels)+1 }, "not acked")
	stop()
	if times, _, _ := rec.values("level_m"); len(times) != len(levels)+1 {
		t.Errorf("after shutdown the observer has %d stage values, want %d", len(times), len(levels)+1)
	}
}

// The section's class is the worst of the latest valid value of each graded
// item: an hourly NH3-N of class 6 makes the 5-minute samples between its
// values class 6, until it is older than its validity.
func TestSectionClass(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 2, 12, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	p := newPipeline(t, t.TempDir(), &fakeWriter{}, &fakePublisher{}, Options{Now: clock.Now, Observer: rec})
	start(t, p)
	acks := &ackLog{}
	t0 := clock.Now().Add(-8 * time.Hour)
	send := func(i int, m time.Duration, values string) {
		body := fmt.Sprintf(`{"station": "nianchu-mouth", "samples": [{"time": %q, "values": {%s}}]}`, t0.Add(m).Format(time.RFC3339), values)
		p.Handle("rivermon/v1/stations/nianchu-mouth/readings", []byte(body), clock.Now(), acks.ack(i))
		eventually(t, func() bool { return len(acks.get()) == i+1 }, "not acked")
	}
	send(0, 0, `"tp_mgl": 0.08`)            // class II (TP ≤ 0.1)
	send(1, time.Hour, `"nh3n_mgl": 2.5`)   // class 6 (worse than V: 2.0)
	send(2, 2*time.Hour, `"nh3n_mgl": 2.5`) // hourly: valid 4 h
	send(3, 2*time.Hour+5*time.Minute, `"tp_mgl": 0.08`)
	send(4, 6*time.Hour+5*time.Minute, `"tp_mgl": 0.08`) // NH3-N 4 h 5 min old
	times, _, classes := rec.values("wq_class")
	want := []float64{2, 6, 6, 6, 2}
	if len(classes) != len(want) {
		t.Fatalf("classes %v at %v, want %v", classes, times, want)
	}
	for k := range want {
		if classes[k] != want[k] {
			t.Errorf("sample %d (%v): class %v, want %v", k, times[k], classes[k], want[k])
		}
	}
	for _, v := range p.Stations().Snapshot(time.Now()) {
		if v.ID == "nianchu-mouth" && (v.WQClass == nil || *v.WQClass != 2) {
			t.Errorf("the stations view shows class %v, want 2", v.WQClass)
		}
	}
}
