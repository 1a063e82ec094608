package alerts

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
)

// historyLog is a Journal that keeps the lines of each write.
type historyLog struct {
	mu     sync.Mutex
	writes [][]string
}

func (h *historyLog) Add(rec *journal.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for _, e := range rec.Entries {
		lines = append(lines, e.Line)
	}
	h.writes = append(h.writes, lines)
	return nil
}

func (h *historyLog) counts() (writes, lines int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.writes {
		lines += len(w)
	}
	return len(h.writes), lines
}

// startDispatcher starts d and returns its stop: cancel, then wait for Run to return.
func startDispatcher(d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	return func() { cancel(); <-done }
}

// wqSample is a sample of the water-quality class at minute m after at:
// class 5 fires WQ (target class 3, for 0), class 1 resolves it.
func wqSample(at time.Time, m, class int) Sample {
	return Sample{Station: "gauge", Time: at.Add(time.Duration(m) * time.Minute),
		Values: []Value{{Code: "wq_class", V: float64(class), Flag: 1}}}
}

// A storm of changes that notify nobody (old samples) is delivered in
// gathered rounds, the first at once; a change that notifies goes out at
// once with what has gathered; what is queued at shutdown is still stored.
func TestDispatcherGathersTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hist := &historyLog{}
		state := filepath.Join(t.TempDir(), "alerts-state.json")
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), History: hist, StatePath: state,
			Logger: slog.New(slog.DiscardHandler)})
		stop := startDispatcher(d)
		defer stop()
		old := time.Now().Add(-48 * time.Hour) // beyond max_sample_age: notifies nobody
		expect := func(writes, lines int, when string) {
			t.Helper()
			synctest.Wait()
			if w, n := hist.counts(); w != writes || n != lines {
				t.Fatalf("%s: %d writes of %d lines, want %d of %d", when, w, n, writes, lines)
			}
		}

		d.Observe([]Sample{wqSample(old, 0, 5)})
		expect(1, 1, "first change")
		// 99 more (resolved, firing, …) with no time passing.
		for m := 1; m < 100; m++ {
			d.Observe([]Sample{wqSample(old, m, []int{5, 1}[m%2])})
		}
		expect(1, 1, "within the gather interval")
		time.Sleep(100 * time.Millisecond)
		expect(2, 100, "after the interval")

		d.Observe([]Sample{wqSample(old, 100, 5), wqSample(old, 101, 1)})
		expect(2, 100, "old changes within the interval")
		d.Observe([]Sample{wqSample(time.Now(), 0, 5)}) // fresh: fires, notifies
		expect(3, 103, "a change that notifies")
		d.Observe([]Sample{wqSample(time.Now(), 1, 1)}) // resolves what was announced
		expect(4, 104, "another that notifies")

		// Queued during a hold, then shutdown: written and saved all the same.
		level := func(m int, v float64) Sample {
			return Sample{Station: "gauge", Time: old.Add(time.Duration(m) * time.Minute), Values: []Value{{Code: "level_m", V: v, Flag: 1}}}
		}
		d.Observe([]Sample{level(200, 4), level(211, 4)}) // LevelCritical fires, from old samples
		expect(4, 104, "an old change just after a delivery")
		stop()
		expect(5, 105, "after shutdown")
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"state": "firing"`) {
			t.Fatalf("saved state does not hold the last transition (firing):\n%s", b)
		}
	})
}

// sendLog is a Sender that notes whether the context was already over.
type sendLog struct {
	mu        sync.Mutex
	sends     int
	cancelled int
}

func (s *sendLog) Send(ctx context.Context, _ []Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	if ctx.Err() != nil {
		s.cancelled++
	}
	return ctx.Err()
}

// A change that notifies, observed as the dispatcher is stopped, reaches
// the receivers with a context of its own, whichever of the two the
// dispatcher sees first.
func TestDispatcherNotifiesAtShutdown(t *testing.T) {
	for range 40 {
		synctest.Test(t, func(t *testing.T) {
			hook := &sendLog{}
			d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), Webhook: hook,
				Logger: slog.New(slog.DiscardHandler)})
			stop := startDispatcher(d)
			synctest.Wait()
			d.Observe([]Sample{wqSample(time.Now(), 0, 5)}) // fires, notifies
			stop()
			if hook.sends != 1 || hook.cancelled != 0 {
				t.Fatalf("%d webhook sends, %d with the context already over; want 1 and 0", hook.sends, hook.cancelled)
			}
		})
	}
}

// Gathering ends when the hold does, also with a clock that stands still.
func TestDispatcherGathersWithAFrozenClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hist := &historyLog{}
		frozen := time.Now()
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), History: hist,
			Now: func() time.Time { return frozen }, Logger: slog.New(slog.DiscardHandler)})
		stop := startDispatcher(d)
		defer stop()
		old := frozen.Add(-48 * time.Hour)
		d.Observe([]Sample{wqSample(old, 0, 5)})
		synctest.Wait() // delivered at once
		d.Observe([]Sample{wqSample(old, 1, 1)})
		time.Sleep(time.Second)
		synctest.Wait()
		if w, n := hist.counts(); w != 2 || n != 2 {
			t.Fatalf("%d writes of %d lines, want 2 of 2", w, n)
		}
	})
}

// The alert history keys each point by the alert's identity: two
// parameters' SensorFault alerts at one station and sample time are two
// series (with param a field they were one point, the second overwriting
// the first); an alert without a parameter has no empty param tag.
func TestHistoryLineSeriesIsTheAlertIdentity(t *testing.T) {
	at := time.Date(2026, 10, 13, 2, 30, 0, 0, time.UTC)
	line := func(param string) string {
		labels := map[string]string{"alertname": "SensorFault", "station": "nianchu-bainang", "river": "nianchu", "severity": "warning"}
		if param != "" {
			labels["param"] = param
		}
		return historyLine(Transition{Alert: Alert{Labels: labels, Annotations: map[string]string{"summary": "a sensor has failed"}},
			State: StateFiring, Value: -1, Thresh: 4, Notify: true, At: at})
	}
	series := func(l string) string { return l[:strings.Index(l, " ")] }
	ph, do, none := line("ph"), line("do_mgl"), line("")
	if want := "alert,alertname=SensorFault,param=ph,river=nianchu,severity=warning,station=nianchu-bainang"; series(ph) != want {
		t.Errorf("series %q, want %q", series(ph), want)
	}
	if series(ph) == series(do) {
		t.Errorf("two parameters' alerts in one series: %q", series(ph))
	}
	if strings.Contains(none, "param") {
		t.Errorf("an alert without a parameter: %q", none)
	}
	if strings.Contains(ph[strings.Index(ph, " "):], "param") {
		t.Errorf("param also written as a field: %q", ph)
	}
}

// postLog is a Sender that keeps the status of each alert of each post.
type postLog struct {
	mu    sync.Mutex
	posts [][]string
}

func (p *postLog) Send(_ context.Context, as []Alert) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var post []string
	for _, a := range as {
		post = append(post, a.Labels["alertname"]+"="+a.Status)
	}
	p.posts = append(p.posts, post)
	return nil
}

// An alert that fires and resolves within one delivery (a replayed
// backlog) reaches Alertmanager firing, and resolved only a moment later:
// posted resolved at once, Alertmanager would never notify it.
func TestFlashedAlertReachesAlertmanagerFiringFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		am := &postLog{}
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), Alertmanager: am,
			ResendInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		stop := startDispatcher(d)
		synctest.Wait()
		now := time.Now()
		d.Observe([]Sample{wqSample(now, 0, 5), wqSample(now, 1, 1)}) // fires, then resolves
		synctest.Wait()
		am.mu.Lock()
		if len(am.posts) != 1 || len(am.posts[0]) != 1 || am.posts[0][0] != "WQ=firing" {
			t.Errorf("posts before the pause: %v, want one with WQ firing", am.posts)
		}
		am.mu.Unlock()
		time.Sleep(flashPause)
		synctest.Wait()
		stop()
		am.mu.Lock()
		defer am.mu.Unlock()
		if len(am.posts) != 2 || len(am.posts[1]) != 1 || am.posts[1][0] != "WQ=resolved" {
			t.Errorf("posts: %v, want WQ firing, then WQ resolved", am.posts)
		}
	})
}

// stuckReceiver is a receiver that answers nothing until released (or the
// send's context ends), as an Alertmanager behind a dead link does until
// its client times out.
type stuckReceiver struct {
	release chan struct{}
	postLog
}

func (s *stuckReceiver) Send(ctx context.Context, as []Alert) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.postLog.Send(ctx, as)
}

// A receiver that does not answer holds up no evaluation: the stored
// samples the stream hands over keep being taken and evaluated (their
// history stored) while Alertmanager and the webhook hang, and once they
// answer they get the latest state. Before, the dispatcher sent in the
// loop that reads the samples: the stream waited for Alertmanager.
func TestStuckReceiverHoldsUpNoEvaluation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		am := &stuckReceiver{release: make(chan struct{})}
		hook := &stuckReceiver{release: make(chan struct{})}
		hist := &historyLog{}
		observed := make(chan []Sample) // unbuffered: the stream waits for each hand-over
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), Alertmanager: am, Webhook: hook,
			History: hist, Observed: observed, ResendInterval: time.Hour, GatherEvery: -1, Logger: slog.New(slog.DiscardHandler)})
		stop := startDispatcher(d)
		now := time.Now()
		// 200 changes that notify: WQ fires and resolves by turns.
		for m := range 200 {
			observed <- []Sample{wqSample(now, m, []int{5, 1}[m%2])}
			synctest.Wait()
		}
		if _, lines := hist.counts(); lines != 200 {
			t.Fatalf("%d changes stored while the receivers hang, want 200", lines)
		}
		close(am.release)
		close(hook.release)
		synctest.Wait()
		time.Sleep(2 * flashPause)
		synctest.Wait()
		close(observed)
		stop()
		am.mu.Lock()
		defer am.mu.Unlock()
		if n := len(am.posts); n == 0 || n > 4 || am.posts[n-1][0] != "WQ=resolved" {
			t.Errorf("Alertmanager posts after the hang: %v; want a few, the last with WQ resolved", am.posts)
		}
		hook.mu.Lock()
		defer hook.mu.Unlock()
		sent := 0
		for _, p := range hook.posts {
			sent += len(p)
		}
		if sent != 200 {
			t.Errorf("webhook got %d changes, want all 200 in order", sent)
		}
	})
}

// timedPosts is a Sender noting when each post came.
type timedPosts struct {
	mu    sync.Mutex
	posts []string // "WQ=firing" …
	at    []time.Time
}

func (p *timedPosts) Send(_ context.Context, as []Alert) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range as {
		p.posts = append(p.posts, a.Labels["alertname"]+"="+a.Status)
		p.at = append(p.at, time.Now())
	}
	return nil
}

// An alert that resolves a few milliseconds after it fired, in another
// delivery, still stays firing at Alertmanager for flashPause before its
// resolution is posted: posted at once, the resolution could beat
// Alertmanager's flush of the group and the firing would never be
// notified.
func TestResolutionWaitsForTheFiringToBeSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		am := &timedPosts{}
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, time.Hour), Alertmanager: am,
			ResendInterval: time.Hour, GatherEvery: -1, Logger: slog.New(slog.DiscardHandler)})
		stop := startDispatcher(d)
		synctest.Wait()
		now := time.Now()
		d.Observe([]Sample{wqSample(now, 0, 5)}) // fires: posted firing at once
		synctest.Wait()
		time.Sleep(5 * time.Millisecond)
		d.Observe([]Sample{wqSample(now, 1, 1)}) // resolves, 5 ms later
		synctest.Wait()
		time.Sleep(2 * flashPause)
		synctest.Wait()
		stop()
		am.mu.Lock()
		defer am.mu.Unlock()
		if len(am.posts) != 2 || am.posts[0] != "WQ=firing" || am.posts[1] != "WQ=resolved" {
			t.Fatalf("posts %v, want WQ firing, then resolved", am.posts)
		}
		if gap := am.at[1].Sub(am.at[0]); gap < flashPause {
			t.Errorf("resolution posted %v after the firing, want at least %v", gap, flashPause)
		}
	})
}
