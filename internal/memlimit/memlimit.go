// Package memlimit bounds the memory of a process whose heap can grow large.
// rivermon collects garbage at 200 % of its live heap (cmd/rivermon): a few
// MiB at idle with the shipped stations, but 390–680 MiB of QC windows and
// flow days with 10,000 stations (docs/BENCHMARKS.md), which that target
// lets grow to three times as much after a burst of work (a restart's
// rebuild, a backlog). A soft memory limit (runtime/debug.SetMemoryLimit)
// makes the collector run before then; it is raised with the live heap, so
// that a heap larger than planned slows the collector down rather than makes
// it run all the time. Manage is that set-up, for rivermon and for the
// benchmarks that measure its memory.
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

// Defaults of rivermon's memory management (cmd/rivermon), which the soak
// benchmark runs under too.
const (
	// GCPercent is the garbage-collection target without GOGC: three times
	// the live heap rather than twice. The heap is small (a few MiB at
	// idle), and under a full load this trades some tens of MiB for about
	// a tenth of the CPU.
	GCPercent = 200
	// Floor is the soft memory limit without GOMEMLIMIT while the live
	// heap is below two thirds of it (Limit): 1 GiB less what the process
	// maps besides the Go runtime's memory (the executable).
	Floor = 960 << 20
	// Every is how often the limit follows the live heap.
	Every = 10 * time.Second
)

// Manage runs the process's memory as rivermon runs it, unless getenv (as
// os.Getenv) finds the runtime's own settings: it sets a garbage-collection
// target of GCPercent unless GOGC is set, and unless GOMEMLIMIT is set,
// keeps the soft memory limit with Keep(ctx, Floor, Every) until ctx ends.
// Without that it returns at once.
func Manage(ctx context.Context, getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		Keep(ctx, Floor, Every)
	}
}
