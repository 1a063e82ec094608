package memlimit

import (
	"context"
	"math"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ live, floor, want int64 }{
		{0, 960 * mib, 960 * mib},
		{380 * mib, 960 * mib, 960 * mib},   // 10,000 stations on the minute
		{640 * mib, 960 * mib, 960 * mib},   // up to two thirds of the floor
		{1000 * mib, 960 * mib, 1500 * mib}, // beyond: room to collect in
	} {
		if got := Limit(c.live, c.floor); got != c.want {
			t.Errorf("Limit(%d MiB, %d MiB) = %d MiB, want %d MiB", c.live/mib, c.floor/mib, got/mib, c.want/mib)
		}
	}
}

// TestKeepSetsTheLimitUntilCancelled: Keep sets the limit at once (the live
// heap of a test is far below the floor), and returns when its context
// ends.
func TestKeepSetsTheLimitUntilCancelled(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	const floor = 3 << 30
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Keep(ctx, floor, time.Hour)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) != floor {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d after 10 s, want %d", debug.SetMemoryLimit(-1), floor)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

// TestManage: without GOGC and GOMEMLIMIT, Manage sets rivermon's target
// and keeps the limit until its context ends; with them, it leaves both as
// they are and returns at once.
func TestManage(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, c := range []struct {
		name      string
		env       map[string]string
		gc, limit int64
	}{
		{"defaults", nil, GCPercent, Floor},
		{"GOGC and GOMEMLIMIT set", map[string]string{"GOGC": "100", "GOMEMLIMIT": "2GiB"}, 100, math.MaxInt64},
	} {
		t.Run(c.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				Manage(ctx, func(k string) string { return c.env[k] })
			}()
			if c.env != nil {
				select {
				case <-done: // at once, without cancel
				case <-time.After(10 * time.Second):
					t.Fatal("Manage still running 10 s after it started, with GOMEMLIMIT set")
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for debug.SetMemoryLimit(-1) != c.limit {
				if time.Now().After(deadline) {
					t.Fatalf("limit %d after 10 s, want %d", debug.SetMemoryLimit(-1), c.limit)
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			if got := debug.SetGCPercent(100); int64(got) != c.gc {
				t.Errorf("GC target %d %%, want %d %%", got, c.gc)
			}
		})
	}
}
