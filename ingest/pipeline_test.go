package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
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

// TestAcksFollowTheSpoolInArrivalOrder: messages are acknowledged once
// spooled, in arrival order, even while InfluxDB is stuck; the points then
// reach InfluxDB in the same order.
func TestAcksFollowTheSpoolInArrivalOrder(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{MaxBatchPoints: 7})
	start(t, p)
	acks := &ackLog{}
	now := time.Date(2026, 7, 2, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		st := []string{"nianchu-gyantse", "yarlung-lhatse", "sagya-sagya"}[i%3]
		p.Handle("rivermon/v1/stations/"+st+"/readings", readingPayload(st, i/3+1), now, acks.ack(i))
	}
	eventually(t, func() bool { return len(acks.get()) == 50 }, "not every message was acked while InfluxDB was stuck")
	for i, a := range acks.get() {
		if a != i {
			t.Fatalf("acks out of arrival order: %v", acks.get())
		}
	}
	close(w.gate)
	eventually(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.lines) == 50 }, "not every point reached the writer")
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, l := range w.lines {
		if !strings.Contains(l, fmt.Sprintf("level_m=%d,", i/3+1)) {
			t.Fatalf("line %d out of order: %s", i, l)
		}
	}
	if p.journal.Bytes() != 0 {
		eventually(t, func() bool { return p.journal.Bytes() == 0 }, "spool not trimmed after delivery")
	}
}

// TestFullSpoolStopsAcknowledging: at spool.max_bytes nothing more is
// acknowledged (the broker keeps it), readiness says why, and acking resumes
// by itself once InfluxDB takes the backlog.
func TestFullSpoolStopsAcknowledging(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{})}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{SpoolMaxBytes: 2000})
	start(t, p)
	acks := &ackLog{}
	for i := range 40 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), acks.ack(i))
		if i == 0 {
			eventually(t, func() bool { return len(acks.get()) == 1 }, "first message not acked")
		}
	}
	eventually(t, func() bool { return strings.Contains(p.Problem(), "spool full") }, "a full spool is not reported")
	n := len(acks.get())
	if n >= 40 {
		t.Fatalf("all %d messages acked with a spool of 2000 bytes and InfluxDB stuck", n)
	}
	close(w.gate)
	eventually(t, func() bool { return len(acks.get()) == 40 }, "acking did not resume")
	eventually(t, func() bool { return p.Problem() == "" }, "problem not cleared")
	eventually(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.lines) == 40 }, "not every point delivered")
}

// TestSpoolIsDeliveredAfterRestart: what was acked while InfluxDB was down
// is delivered by the next run from the same spool.
func TestSpoolIsDeliveredAfterRestart(t *testing.T) {
	dir := t.TempDir()
	down := &fakeWriter{fail: errors.New("influx down")}
	p := newPipeline(t, dir, down, &fakePublisher{}, Options{DrainTimeout: 50 * time.Millisecond})
	stop := start(t, p)
	acks := &ackLog{}
	for i := range 5 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), acks.ack(i))
	}
	eventually(t, func() bool { return len(acks.get()) == 5 }, "not acked into the spool")
	stop()
	p.spool.Close()
	// After the context ends, new messages are left for the broker.
	p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", 9), time.Now(), acks.ack(9))
	if len(acks.get()) != 5 {
		t.Error("a message was acked after shutdown")
	}

	up := &fakeWriter{}
	p2 := newPipeline(t, dir, up, &fakePublisher{}, Options{})
	start(t, p2)
	eventually(t, func() bool { up.mu.Lock(); defer up.mu.Unlock(); return len(up.lines) == 5 }, "spooled points not delivered after restart")
}

func TestDeadLettersAndPoisonArePublishedFromTheSpool(t *testing.T) {
	w := &fakeWriter{poison: func(l string) bool { return strings.Contains(l, "level_m=2,") }}
	pub := &fakePublisher{failures: 3}
	p := newPipeline(t, t.TempDir(), w, pub, Options{})
	start(t, p)
	acks := &ackLog{}
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", []byte(`{"station": "xiangqu-mouth", "samples": []}`), time.Now(), acks.ack(0))
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", readingPayload("xiangqu-mouth", 2), time.Now(), acks.ack(1))
	p.Handle("rivermon/v1/stations/xiangqu-mouth/readings", readingPayload("xiangqu-mouth", 3), time.Now(), acks.ack(2))
	eventually(t, func() bool { return len(acks.get()) == 3 }, "messages not acked")
	eventually(t, func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.sent["rivermon/v1/deadletter/xiangqu-mouth"]) == 2
	}, "dead letters not published despite retries")
	pub.mu.Lock()
	dls := strings.Join(pub.sent["rivermon/v1/deadletter/xiangqu-mouth"], "\n")
	pub.mu.Unlock()
	if !strings.Contains(dls, `"reason":"no_samples"`) || !strings.Contains(dls, `"reason":"influx_rejected"`) {
		t.Errorf("dead letters %v", dls)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lines) != 1 {
		t.Errorf("stored %v", w.lines)
	}
}

func TestSeqGapsAndRepeats(t *testing.T) {
	p := newPipeline(t, t.TempDir(), &fakeWriter{}, &fakePublisher{}, Options{})
	start(t, p)
	acks := &ackLog{}
	for i, seq := range []int{5, 6, 9, 9, 7, 10, 2, 3} {
		p.Handle("rivermon/v1/stations/yeru-dinggye/readings", readingPayload("yeru-dinggye", seq), time.Now(), acks.ack(i))
	}
	eventually(t, func() bool { return len(acks.get()) == 8 }, "not acked")
	for _, v := range p.Stations().Snapshot(time.Now()) {
		if v.ID == "yeru-dinggye" {
			// 5 6 [gap 7,8] 9 | 9 repeat | 7 repeat | 10 | 2 repeat | 3 repeat
			if v.Seq.Gaps != 2 || v.Seq.Repeats != 4 || v.Seq.Last != 10 {
				t.Errorf("seq %+v, want gaps 2, repeats 4, last 10", v.Seq)
			}
		}
	}
}

// fakeClock is a wall clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestSilentStationIsMarkedOffline: a station silent for three reporting
// intervals gets station_status online=false; its next reading brings it
// back online.
func TestSilentStationIsMarkedOffline(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 2, 4, 0, 0, 0, time.UTC)}
	w := &fakeWriter{}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{Now: clock.Now, SweepEvery: 5 * time.Millisecond})
	start(t, p)
	lines := func(prefix string) []string {
		w.mu.Lock()
		defer w.mu.Unlock()
		var out []string
		for _, l := range w.lines {
			if strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return out
	}
	acks := &ackLog{}
	p.Handle("rivermon/v1/stations/sagya-sagya/readings", readingPayload("sagya-sagya", 1), clock.Now(), acks.ack(0))
	eventually(t, func() bool { return len(acks.get()) == 1 }, "not acked")
	clock.Add(14 * time.Minute) // under three 5-minute intervals
	time.Sleep(30 * time.Millisecond)
	if got := lines("station_status,river=sagya,station=sagya-sagya"); len(got) != 0 {
		t.Fatalf("marked offline too early: %v", got)
	}
	clock.Add(2 * time.Minute)
	eventually(t, func() bool { return len(lines("station_status,river=sagya,station=sagya-sagya online=false")) == 1 }, "silent station not marked offline")
	p.Handle("rivermon/v1/stations/sagya-sagya/readings", readingPayload("sagya-sagya", 2), clock.Now(), acks.ack(1))
	eventually(t, func() bool { return len(lines("station_status,river=sagya,station=sagya-sagya online=true")) == 1 }, "station not back online")
	for _, v := range p.Stations().Snapshot(time.Now()) {
		if v.ID == "sagya-sagya" && (v.Online == nil || !*v.Online) {
			t.Errorf("view online %v", v.Online)
		}
	}
}

// TestReopenedDayIsWrittenBeforeItIsForgotten: a message that first adds a
// value to a closed ecological-flow day and then one a week and more later
// (which pushes that day out of the days kept) still rewrites the day's
// account with the new value in it.
func TestReopenedDayIsWrittenBeforeItIsForgotten(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 20, 0, 0, 0, 0, time.UTC)}
	w := &fakeWriter{}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{Now: clock.Now, Location: time.UTC})
	start(t, p)
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	msg := func(times ...time.Time) []byte {
		var ss []string
		for _, at := range times {
			ss = append(ss, fmt.Sprintf(`{"time": %d, "values": {"flow_m3s": 9}}`, at.UnixMilli()))
		}
		return []byte(`{"station": "nianchu-mouth", "samples": [` + strings.Join(ss, ",") + `]}`)
	}
	acks := &ackLog{}
	// Two values on the day, then one the next day: the day closes.
	p.Handle("rivermon/v1/stations/nianchu-mouth/readings", msg(day.Add(time.Hour), day.Add(2*time.Hour), day.Add(25*time.Hour)), clock.Now(), acks.ack(0))
	// A late value for the day, then one nine days on.
	p.Handle("rivermon/v1/stations/nianchu-mouth/readings", msg(day.Add(3*time.Hour), day.Add(9*24*time.Hour)), clock.Now(), acks.ack(1))
	eventually(t, func() bool { return len(acks.get()) == 2 }, "not acked")
	stamp := fmt.Sprintf(" %d", day.UnixNano())
	eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, l := range w.lines {
			if strings.HasPrefix(l, "eflow_daily,") && strings.HasSuffix(l, stamp) && strings.Contains(l, "samples=3i") {
				return true
			}
		}
		return false
	}, "the day's account with the late value was not written")
}

// TestIntakeIsBounded: beyond its bounds WaitRoom holds the reader (the
// broker connection) until the assembler takes the queue; a connection
// that closes is let go at once.
func TestIntakeIsBounded(t *testing.T) {
	w := &fakeWriter{gate: make(chan struct{})}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{SpoolMaxBytes: 2000, MaxQueueMessages: 5})
	waited := func(done <-chan struct{}) chan struct{} {
		out := make(chan struct{})
		go func() { p.WaitRoom(done, time.Minute); close(out) }()
		return out
	}
	acks := &ackLog{}
	for i := range 4 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), acks.ack(i))
	}
	select {
	case <-waited(nil):
	case <-time.After(5 * time.Second):
		t.Fatal("WaitRoom blocked below the bound")
	}
	p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", 5), time.Now(), acks.ack(4))
	blocked := waited(nil)
	closing := make(chan struct{})
	letGo := waited(closing)
	select {
	case <-blocked:
		t.Fatal("WaitRoom returned with the queue at its bound")
	case <-time.After(100 * time.Millisecond):
	}
	close(closing)
	select {
	case <-letGo:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitRoom held a closing connection")
	}
	start(t, p) // the assembler takes the queue
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitRoom still blocks after the queue was taken")
	}
	close(w.gate)
	eventually(t, func() bool { return len(acks.get()) == 5 }, "not every queued message acked")
}

func TestIntakeBoundCountsBytes(t *testing.T) {
	p := newPipeline(t, t.TempDir(), &fakeWriter{}, &fakePublisher{}, Options{MaxQueueBytes: 1000})
	p.Handle("rivermon/v1/stations/boqu-nyalam/readings", make([]byte, 1000), time.Now(), func() {})
	done := make(chan struct{})
	go func() { p.WaitRoom(nil, time.Minute); close(done) }()
	select {
	case <-done:
		t.Fatal("WaitRoom returned with 1000 bytes queued and a bound of 1000")
	case <-time.After(100 * time.Millisecond):
	}
	start(t, p)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitRoom still blocks after the queue was taken")
	}
}

// TestIntakeWaitIsShort: a wait for room ends after its limit, and does not
// start while acknowledging has stopped (spool full): the connection must
// go on reading the broker's answers then, and the broker sends nothing
// new while nothing is acknowledged.
func TestIntakeWaitIsShort(t *testing.T) {
	p := newPipeline(t, t.TempDir(), &fakeWriter{}, &fakePublisher{}, Options{MaxQueueMessages: 3})
	for i := range 3 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), func() {})
	}
	start := time.Now()
	p.WaitRoom(nil, 100*time.Millisecond)
	if el := time.Since(start); el < 100*time.Millisecond || el > 5*time.Second {
		t.Errorf("a wait with a limit of 100 ms took %v", el)
	}
	// Acknowledging stopped (the spool full or not writable): the queue is
	// past its bound, and still the connection is let read.
	p.intake.problem = func() string { return "spool full" }
	start = time.Now()
	p.WaitRoom(nil, time.Minute)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("WaitRoom held the connection for %v with the spool full", el)
	}
}

// TestSpikeRevisedLaterLeavesItsDay: a stage spike is flagged only when
// the next value comes; by then its rated flow is in the day's
// ecological-flow account. The revision takes it out again: the day's
// account is that of every other value.
func TestSpikeRevisedLaterLeavesItsDay(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 7, 20, 0, 0, 0, 0, time.UTC)}
	w := &fakeWriter{}
	p := newPipeline(t, t.TempDir(), w, &fakePublisher{}, Options{Now: clock.Now, Location: time.UTC})
	start(t, p)
	const st = "yarlung-dazhuka" // stage only: its flow is rated
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	const spike = 144 // at noon
	var ss []string
	for i := 0; i <= 288; i++ { // every 5 minutes, and the next day's first
		level := 2.0 + 0.01*float64(i%3) // not a flat line
		if i == spike {
			level = 3.0
		}
		ss = append(ss, fmt.Sprintf(`{"time": %d, "values": {"level_m": %g}}`, day.Add(time.Duration(i)*5*time.Minute).UnixMilli(), level))
	}
	acks := &ackLog{}
	p.Handle("rivermon/v1/stations/"+st+"/readings", []byte(`{"station": "`+st+`", "samples": [`+strings.Join(ss, ",")+`]}`), clock.Now(), acks.ack(0))
	eventually(t, func() bool { return len(acks.get()) == 1 }, "not acked")
	stamp := fmt.Sprintf(" %d", day.UnixNano())
	var account string
	eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, l := range w.lines {
			if strings.HasPrefix(l, "eflow_daily,") && strings.Contains(l, "station="+st) && strings.HasSuffix(l, stamp) {
				account = l
				return true
			}
		}
		return false
	}, "no account of the day")
	// The account of the day's rated flows that end with a flag of 1 or 2:
	// the spike, and its neighbours, which the spike test fails too.
	type value struct {
		q    float64
		flag float64
	}
	final := map[int64]*value{}
	w.mu.Lock()
	for _, l := range w.lines {
		if !strings.HasPrefix(l, "reading,") || !strings.Contains(l, "station="+st+" ") {
			continue
		}
		ns, _ := strconv.ParseInt(l[strings.LastIndex(l, " ")+1:], 10, 64)
		if final[ns] == nil {
			final[ns] = &value{}
		}
		if strings.Contains(l, "flow_rated_m3s=") {
			final[ns].q = fieldOf(t, l, "flow_rated_m3s")
		}
		final[ns].flag = fieldOf(t, l, "flow_rated_m3s_qc") // a revision comes after its reading
	}
	w.mu.Unlock()
	want := hydro.NewFlowDays(time.UTC, 5*time.Minute, 35, 8)
	flagged := 0
	for ns, v := range final {
		if at := time.Unix(0, ns).UTC(); at.Before(day.Add(24 * time.Hour)) {
			if v.flag > 2 {
				flagged++
				continue
			}
			want.Add(at, v.q)
		}
	}
	if flagged != 3 {
		t.Errorf("%d values flagged, want the spike and its two neighbours", flagged)
	}
	acc, _ := want.Account(day)
	if !strings.Contains(account, fmt.Sprintf("samples=%di", acc.Samples)) || acc.Samples != 285 {
		t.Errorf("account %s, want %d samples (the flagged ones taken out)", account, acc.Samples)
	}
	if mean := fieldOf(t, account, "mean_flow_m3s"); math.Abs(mean-acc.MeanFlow) > 1e-9 {
		t.Errorf("day mean %v, want %v (without the spike)", mean, acc.MeanFlow)
	}
}

// fieldOf reads a float field of a line of line protocol.
func fieldOf(t *testing.T, line, field string) float64 {
	t.Helper()
	_, rest, ok := strings.Cut(line, " "+field+"=")
	if !ok {
		_, rest, ok = strings.Cut(line, ","+field+"=")
	}
	if !ok {
		t.Fatalf("no %s in %s", field, line)
	}
	v := rest
	if i := strings.IndexAny(v, ", "); i >= 0 {
		v = v[:i]
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(v, "i"), 64)
	if err != nil {
		t.Fatalf("%s=%s in %s: %v", field, v, line, err)
	}
	return f
}

// TestOutputsDeliverAtTheirOwnPace: with two outputs, one stuck holds back
// neither the other nor acknowledgement; the spool keeps what the stuck one
// lacks, and forgets it once it has it; a dead letter is published once; a
// restart resumes each output where it was.
func TestOutputsDeliverAtTheirOwnPace(t *testing.T) {
	dir := t.TempDir()
	a, b := &fakeWriter{}, &fakeWriter{fail: errors.New("output b down")}
	pub := &fakePublisher{}
	p := newPipeline(t, dir, nil, pub, Options{DrainTimeout: 50 * time.Millisecond,
		Outputs: []Output{{Name: "a", Writer: a}, {Name: "b", Writer: b}}})
	stop := start(t, p)
	acks := &ackLog{}
	for i := range 30 {
		p.Handle("rivermon/v1/stations/boqu-nyalam/readings", readingPayload("boqu-nyalam", i+1), time.Now(), acks.ack(i))
	}
	p.Handle("rivermon/v1/stations/boqu-nyalam/readings", []byte(`{"station": "boqu-nyalam", "samples": []}`), time.Now(), acks.ack(30))
	eventually(t, func() bool { return len(acks.get()) == 31 }, "output b down held back acknowledgement")
	eventually(t, func() bool { a.mu.Lock(); defer a.mu.Unlock(); return len(a.lines) == 30 }, "output b down held back output a")
	eventually(t, func() bool { return p.journal.Behind(journal.OutputReader("a")) == 0 }, "output a not caught up")
	if p.journal.Bytes() == 0 || p.journal.Bytes() != p.journal.Behind(journal.OutputReader("b")) {
		t.Fatalf("the spool holds %d bytes, output b lacks %d: it must keep them for b", p.journal.Bytes(), p.journal.Behind(journal.OutputReader("b")))
	}
	eventually(t, func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return len(pub.sent["rivermon/v1/deadletter/boqu-nyalam"]) == 1
	}, "the dead letter was not published while output b was down")
	stop()
	p.spool.Close()

	// Restarted with b up: b gets everything, a nothing again.
	b2 := &fakeWriter{}
	a.mu.Lock()
	a.lines = nil
	a.mu.Unlock()
	p2 := newPipeline(t, dir, nil, pub, Options{Outputs: []Output{{Name: "a", Writer: a}, {Name: "b", Writer: b2}}})
	start(t, p2)
	eventually(t, func() bool { b2.mu.Lock(); defer b2.mu.Unlock(); return len(b2.lines) == 30 }, "output b did not catch up after the restart")
	eventually(t, func() bool { return p2.journal.Bytes() == 0 }, "the spool kept what both outputs have")
	a.mu.Lock()
	if len(a.lines) != 0 {
		t.Errorf("output a wrote %d points again after the restart", len(a.lines))
	}
	a.mu.Unlock()
	b2.mu.Lock()
	for i, l := range b2.lines {
		if !strings.Contains(l, fmt.Sprintf("level_m=%d,", i+1)) {
			t.Fatalf("output b: line %d out of order: %s", i, l)
		}
	}
	b2.mu.Unlock()
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if n := len(pub.sent["rivermon/v1/deadletter/boqu-nyalam"]); n != 1 {
		t.Errorf("the dead letter was published %d times", n)
	}
}
