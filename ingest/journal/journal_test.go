package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/spool"
)

func openJournal(t *testing.T, max int64) (*Journal, *spool.Log) {
	t.Helper()
	l, _, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return New(l, Options{MaxBytes: max, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), l
}

// points returns a record of n readings of about 100 bytes each.
func points(n, from int) *Record {
	r := &Record{}
	for i := range n {
		r.Entries = append(r.Entries, Entry{Kind: KindStatus, Station: "boqu-nyalam", Time: time.Unix(int64(from+i), 0), Source: "mqtt",
			Line: fmt.Sprintf("station_status,station=boqu-nyalam battery_v=%d.5 %d", from+i, from+i)})
	}
	return r
}

// The bound is exact: an intake appending (and waiting), alert history and
// snapshots adding (and being refused) and a delivery trimming, all at
// once, never take the spool past max_bytes, headers included, and every
// record appended comes out once.
func TestBoundIsExactUnderConcurrentWriters(t *testing.T) {
	const max = 64 << 10
	j, l := openJournal(t, max)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var highest atomic.Int64
	watch := func() {
		if b := l.Bytes(); b > highest.Load() {
			highest.Store(b)
		}
	}
	var wg sync.WaitGroup
	var appended, added atomic.Int64
	wg.Add(3)
	go func() { // the intake: batches of varying size, some over a quarter of the bound
		defer wg.Done()
		for i := range 200 {
			n := 1 + i%37
			if i%50 == 0 {
				n = 1500 // about 150 KiB: more than the bound, stored in pieces
			}
			if err := j.Append(ctx, points(n, i*10000)); err != nil {
				t.Error(err)
				return
			}
			appended.Add(int64(n))
			watch()
		}
	}()
	for range 2 { // alert history and snapshots
		go func() {
			defer wg.Done()
			for i := range 400 {
				err := j.Add(points(5, 1<<30+i))
				switch {
				case err == nil:
					added.Add(5)
				case !errors.Is(err, ErrFull):
					t.Error(err)
					return
				}
				watch()
			}
		}()
	}
	delivered := make(chan int64)
	go func() { // delivery: slower than the writers, so that the bound is met
		var n int64
		var rec Record
		defer func() { delivered <- n }()
		after := uint64(0)
		for {
			recs, err := j.Read(ctx, after, 4<<10)
			if err != nil {
				return
			}
			for _, r := range recs {
				rec.Reset()
				if err := Decode(r.Data, &rec, false); err != nil {
					t.Error(err)
				}
				n += int64(len(rec.Entries))
				after = r.Seq
			}
			watch()
			time.Sleep(time.Millisecond)
			if err := j.Delivered(spool.DefaultReader, after); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	if err := j.Drained(ctx); err != nil {
		t.Fatalf("not drained: %v (%d bytes left)", err, l.Bytes())
	}
	cancel()
	got := <-delivered
	if h := highest.Load(); h > max {
		t.Errorf("the spool held %d bytes, over max_bytes %d", h, max)
	} else {
		t.Logf("highest: %d of %d bytes", h, max)
	}
	if want := appended.Load() + added.Load(); got != want {
		t.Errorf("delivered %d points, want %d (%d appended, %d added)", got, want, appended.Load(), added.Load())
	}
}

// While a record waits for room, Problem gives the spool's figure of the
// moment, not the one at which the wait began.
func TestProblemGivesTheCurrentFigure(t *testing.T) {
	const max = 8 << 10
	j, l := openJournal(t, max)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; ; i++ {
		if err := j.Add(points(10, i*10)); err != nil {
			break
		}
	}
	full := l.Bytes()
	done := make(chan error, 1)
	go func() { done <- j.Append(ctx, points(15, 1000)) }() // about 1.5 KiB
	waitFor(t, func() bool { return strings.Contains(j.Problem(), "spool full") })
	if p := j.Problem(); !strings.Contains(p, fmt.Sprintf("(%d of %d bytes", full, max)) {
		t.Errorf("Problem() = %q, want the figure %d", p, full)
	}
	if err := j.Delivered(spool.DefaultReader, 1); err != nil { // frees one small record: not enough
		t.Fatal(err)
	}
	// The waiting Append may take what the trim freed at any moment (it
	// stores what fits): the figure is the one of the moment it is asked,
	// between two readings of the spool's size.
	before := l.Bytes()
	p := j.Problem()
	after := l.Bytes()
	if p != "" && !strings.Contains(p, fmt.Sprintf("(%d of %d bytes", before, max)) && !strings.Contains(p, fmt.Sprintf("(%d of %d bytes", after, max)) {
		t.Errorf("after a trim, Problem() = %q, want the figure of the moment (%d or %d)", p, before, after)
	}
	if err := j.Delivered(spool.DefaultReader, 10); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := j.Problem(); p != "" {
		t.Errorf("Problem() = %q once the record is in", p)
	}
}

// A dead letter larger than the whole bound cannot be split: it waits for
// an empty spool and goes in alone; acknowledgement does not stop for ever.
func TestRecordLargerThanTheBoundGoesInAlone(t *testing.T) {
	const max = 4 << 10
	j, _ := openJournal(t, max)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.Append(ctx, points(3, 0)); err != nil {
		t.Fatal(err)
	}
	big := &Record{DeadLetters: []DeadLetter{{Topic: "rivermon/v1/deadletter/_unknown", Reason: "too_large", Body: make([]byte, 2*max)}}}
	done := make(chan error, 1)
	go func() { done <- j.Append(ctx, big) }()
	waitFor(t, func() bool { return strings.Contains(j.Problem(), "spool full") })
	if err := j.Add(points(1, 10)); err != nil {
		t.Fatalf("Add while a large record waits: %v", err)
	}
	if err := j.Delivered(spool.DefaultReader, 2); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs, err := j.Peek(2, 1<<20)
	if err != nil || len(recs) != 1 || len(recs[0].Data) < 2*max {
		t.Fatalf("after the trim: %d records, %v; want the large one alone", len(recs), err)
	}
	if err := j.Add(points(1, 20)); !errors.Is(err, ErrFull) {
		t.Errorf("Add beside the large record: %v, want ErrFull", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}
