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
