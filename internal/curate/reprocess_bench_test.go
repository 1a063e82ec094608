package curate

import (
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
)

// BenchmarkReprocessYear reprocesses a year of one station at 5-minute
// steps (105,120 points) in a real InfluxDB, every point changing: each
// round alternates between the shipped curve and a new version with a
// shift over the whole year. s/reprocess is the time Reprocess takes (read,
// rate, journal); s/delivered adds delivery's writing of the rewritten
// points to InfluxDB. The target is a year in under a minute.
//
//	go test ./internal/curate -run '^$' -bench ReprocessYear -benchtime 3x
func BenchmarkReprocessYear(b *testing.B) {
	in := testenv.StartInflux(b)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 365 * 288
	regs := [2]*registry.Registry{shippedRegistry(b), shippedRegistry(b)}
	st := regs[1].Station(reprocessStation)
	st.Rating = append(st.Rating, registry.Rating{ValidFrom: start.Add(-time.Hour), Segments: []registry.Segment{
		{HMin: 0.3, HMax: 4.3, C: 70.2, E: 0.3, B: 1.75}, {HMin: 4.3, HMax: 12, C: 125, E: 0.7, B: 1.55}}})
	st.Shifts = []registry.Shift{{From: start.Add(-time.Hour), DH: 0.04}}
	hs := stages(n)
	for i := range hs {
		hs[i] = max(hs[i], 0.5) // rated by both registries
	}
	r := startRig(b, in, "rivermon", regs[0], 0)
	// The year as rivermon stores it with the shipped curve.
	old := regs[0].Station(reprocessStation)
	lines := make([]string, 0, 5000)
	for i, h := range hs {
		at := start.Add(time.Duration(i) * 5 * time.Minute)
		q, err := hydro.RatedFlow(old, at, h)
		if err != nil {
			b.Fatal(err)
		}
		l := lineproto.AppendSeries(nil, "reading", old.ID, old.River)
		l = lineproto.AppendFloatField(l, true, "level_m", h)
		l = lineproto.AppendFlagField(l, "level_m", 1)
		l = lineproto.AppendFloatField(l, false, "flow_rated_m3s", q)
		l = lineproto.AppendFlagField(l, "flow_rated_m3s", 1)
		l = lineproto.AppendTime(l, at)
		if lines = append(lines, string(l)); len(lines) == cap(lines) || i == n-1 {
			if _, err := r.store.Write(b.Context(), lines); err != nil {
				b.Fatal(err)
			}
			lines = lines[:0]
		}
	}
	var reprocessed, delivered time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rp := NewRatingReprocessor(RatingReprocessorOptions{Registry: regs[(i+1)%2], Store: r.store, Journal: r.journal, Logger: discard})
		t0 := time.Now()
		got, err := rp.Reprocess(b.Context(), reprocessStation, start, start.Add((n-1)*5*time.Minute), nil)
		if err != nil {
			b.Fatal(err)
		}
		reprocessed += time.Since(t0)
		r.drain(b)
		delivered += time.Since(t0)
		if got != n {
			b.Fatalf("round %d rewrote %d points, want %d", i, got, n)
		}
	}
	b.ReportMetric(reprocessed.Seconds()/float64(b.N), "s/reprocess")
	b.ReportMetric(delivered.Seconds()/float64(b.N), "s/delivered")
	b.ReportMetric(float64(n), "points/op")
}
