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
)

// historyLog is a LineWriter that keeps each write.
type historyLog struct {
	mu     sync.Mutex
	writes [][]string
}

func (h *historyLog) WriteLines(lines []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
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

// wqSample is a sample of the water-quality class at minute m: class 5
// fires WQ (target class 3, for 0), class 1 resolves it.
func wqSample(m, class int) Sample {
	return Sample{Station: "gauge", Time: t0.Add(time.Duration(m) * time.Minute),
		Values: []Value{{Code: "wq_class", V: float64(class), Flag: 1}}}
}

// A storm of transitions is delivered in a few gathered rounds, the first
// at once; what is queued at shutdown is still stored.
func TestDispatcherGathersTransitions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hist := &historyLog{}
		state := filepath.Join(t.TempDir(), "alerts-state.json")
		d := NewDispatcher(DispatcherOptions{Evaluator: newEval(t, 0), History: hist, StatePath: state,
			Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			_ = d.Run(ctx)
		}()

		d.Observe([]Sample{wqSample(0, 5)})
		synctest.Wait()
		if w, n := hist.counts(); w != 1 || n != 1 {
			t.Fatalf("first transition: %d writes of %d lines, want it written at once", w, n)
		}
		// 99 more transitions (resolved, firing, …) with no time passing.
		for m := 1; m < 100; m++ {
			d.Observe([]Sample{wqSample(m, []int{5, 1}[m%2])})
		}
		synctest.Wait()
		if w, _ := hist.counts(); w != 1 {
			t.Fatalf("%d writes within the gather interval, want 1", w)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if w, n := hist.counts(); w != 2 || n != 100 {
			t.Fatalf("after the interval: %d writes of %d lines, want 2 writes of 100", w, n)
		}

		// Queued during a hold, then shutdown: written and saved all the same.
		d.Observe([]Sample{wqSample(100, 5)})
		synctest.Wait()
		cancel()
		<-done
		if w, n := hist.counts(); w != 3 || n != 101 {
			t.Fatalf("after shutdown: %d writes of %d lines, want 3 of 101", w, n)
		}
		b, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"state": "firing"`) {
			t.Fatalf("saved state does not hold the last transition (firing):\n%s", b)
		}
	})
}
