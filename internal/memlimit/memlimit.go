// Package memlimit bounds the memory of a process whose heap can grow
// large. rivermon collects garbage at 200 % of its live heap (cmd/rivermon):
// a few MiB at idle with the shipped stations, but 380–550 MiB of QC windows
// and flow days with 10,000 stations, which that target lets grow to three
// times as much after a burst of work (a restart's rebuild, a backlog). A
// soft memory limit (runtime/debug.SetMemoryLimit) makes the collector run
// before then; it is raised with the live heap, so that a heap larger than
// planned slows the collector down rather than makes it run all the time.
package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Limit is the soft memory limit for a live heap of live bytes: floor, or
// half as much again as the live heap when that is more.
func Limit(live, floor int64) int64 { return max(floor, live+live/2) }

// Keep sets the soft memory limit to Limit of the live heap now and every
// interval until ctx ends; the limit stays at its last value.
func Keep(ctx context.Context, floor int64, every time.Duration) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		var live int64
		if sample[0].Value.Kind() == metrics.KindUint64 {
			live = int64(sample[0].Value.Uint64())
		}
		debug.SetMemoryLimit(Limit(live, floor))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
