package ingest

import (
	"context"
	"errors"
	"fmt"

	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/registry"
)

// fakeWriter records writes; it blocks while gate is closed and fails while
// fail is set. Hand-written at our own interface (no InfluxDB is faked).
type fakeWriter struct {
	mu      sync.Mutex
	lines   []string
	fail    error
	gate    chan struct{}
	entered chan struct{}
	poison  func(line string) bool
}

func (w *fakeWriter) Write(ctx context.Context, lines []string) ([]influx.Poison, error) {
	if w.entered != nil {
		w.entered <- struct{}{}
	}
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var poison []influx.Poison
	for _, l := range lines {
		if w.poison != nil && w.poison(l) {
			poison = append(poison, influx.Poison{Line: l, Err: errors.New("refused")})
			continue
		}
		w.lines = append(w.lines, l)
	}
	return poison, nil
}

type fakePublisher struct {
	mu       sync.Mutex
	failures int
	sent     map[string][]string
}

func (p *fakePublisher) Publish(_ context.Context, topic string, _ bool, payload []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		p.failures--
		return errors.New("not connected")
	}
	if p.sent == nil {
		p.sent = map[string][]string{}
	}
	p.sent[topic] = append(p.sent[topic], string(payload))
	return nil
}

func testRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	r, err := registry.LoadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type ackLog struct {
	mu   sync.Mutex
	acks []int
}

func (a *ackLog) ack(i int) func() {
	return func() { a.mu.Lock(); a.acks = append(a.acks, i); a.mu.Unlock() }
}

func (a *ackLog) get() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.acks...)
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readingPayload(station string, i int) []byte {
	return []byte(fmt.Sprintf(`{"station": %q, "seq": %d, "samples": [{"time": %d, "values": {"level_m": %d}}]}`,
		station, i, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).UnixMilli()+int64(i)*1000, i))
}

func TestAcksFollowStorageInArrivalOrder(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := New(Options{Registry: testRegistry(t), TopicPrefix: "rivermon/v1", Writer: w, DeadLetters: &fakePublisher{}, MaxBatchPoints: 7})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()

	acks := &ackLog{}
	now := time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		st := []string{"nianchu-gyantse", "yarlung-lhatse", "sagya-sagya"}[i%3]
		p.Handle("rivermon/v1/stations/"+st+"/readings", readingPayload(st, i/3+1), now, acks.ack(i))
	}
	<-w.entered // the first batch is being written
	if got := acks.get(); len(got) != 0 {
		t.Fatalf("acked %v before anything was stored", got)
	}
	close(w.gate)
	eventually(t, func() bool { return len(acks.get()) == 50 }, "not every message was acked")
	for i, a := range acks.get() {
		if a != i {
			t.Fatalf("acks out of arrival order: %v", acks.get())
		}
	}
	if len(w.lines) != 50 {
		t.Errorf("%d lines written, want 50", len(w.lines))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNothingAckedWhenTheWriteNeverSucceeds(t *testing.T) {
	w := &fakeWriter{fail: errors.New("influx down")}
	p := New(Options{Registry: testRegistry(t), TopicPrefix: "rivermon/v1", Writer: w, DeadLetters: &fakePublisher{}, DrainTimeout: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	acks := &ackLog{}
	for i := range 5 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), acks.ack(i))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its drain timeout")
	}
	if got := acks.get(); len(got) != 0 {
		t.Fatalf("acked %v although nothing was stored", got)
	}
	// After the context ends, new messages are left for the broker.
	p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", 9), time.Now(), acks.ack(9))
	if len(p.queue) != 0 {
		t.Error("a message was queued after shutdown")
	}
}

func TestAckWaitsForDeadLettersAndPoison(t *testing.T) {
	w := &fakeWriter{poison: func(l string) bool { return strings.Contains(l, "level_m=2,") }}
	pub := &fakePublisher{failures: 3}
	p := New(Options{Registry: testRegistry(t), TopicPrefix: "rivermon/v1", Writer: w, DeadLetters: pub})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	acks := &ackLog{}
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", []byte(`{"station": "xiangqu-mouth", "samples": []}`), time.Now(), acks.ack(0))
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", readingPayload("xiangqu-mouth", 2), time.Now(), acks.ack(1))
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", readingPayload("xiangqu-mouth", 3), time.Now(), acks.ack(2))
	eventually(t, func() bool { return len(acks.get()) == 3 }, "messages not acked")
	pub.mu.Lock()
	defer pub.mu.Unlock()
	dls := pub.sent["rivermon/v1/deadletter/xiangqu-mouth"]
	if len(dls) != 2 || !strings.Contains(strings.Join(dls, "\n"), `"reason":"no_samples"`) || !strings.Contains(strings.Join(dls, "\n"), `"reason":"influx_rejected"`) {
		t.Errorf("dead letters %v", dls)
	}
	if len(w.lines) != 1 {
		t.Errorf("stored %v", w.lines)
	}
}

func TestSeqGapsAndRepeats(t *testing.T) {
	w := &fakeWriter{}
	p := New(Options{Registry: testRegistry(t), TopicPrefix: "rivermon/v1", Writer: w, DeadLetters: &fakePublisher{}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	acks := &ackLog{}
	for i, seq := range []int{5, 6, 9, 9, 7, 10, 2, 3} {
		p.Handle("rivermon/v1/stations/yeru-dinggye/readings", readingPayload("yeru-dinggye", seq), time.Now(), acks.ack(i))
	}
	eventually(t, func() bool { return len(acks.get()) == 8 }, "not acked")
	for _, v := range p.Stations().Snapshot() {
		if v.ID == "yeru-dinggye" {
			// 5 6 [gap 7,8] 9 | 9 repeat | 7 repeat | 10 | 2 repeat | 3 repeat
			if v.Seq.Gaps != 2 || v.Seq.Repeats != 4 || v.Seq.Last != 10 {
				t.Errorf("seq %+v, want gaps 2, repeats 4, last 10", v.Seq)
			}
		}
	}
}

func TestLineProtocol(t *testing.T) {
	got := lineStation("reading,river=nianchu,station=nianchu-mouth level_m=1 1")
	if got != "nianchu-mouth" {
		t.Errorf("lineStation = %q", got)
	}
	b := appendSeries(nil, "reading", "a b", "c,d=e")
	if string(b) != `reading,river=c\,d\=e,station=a\ b ` {
		t.Errorf("escaping: %s", b)
	}
}
