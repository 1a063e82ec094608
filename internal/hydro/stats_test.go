package hydro

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestSummarizeMatchesFlowDays: the time-weighted mean of a day in the
// statistics is the ecological-flow day's mean to the last bit, on days
// with gaps, irregular times and values left out.
func TestSummarizeMatchesFlowDays(t *testing.T) {
	loc := time.FixedZone("UTC+8", 8*3600)
	day := time.Date(2026, 6, 30, 0, 0, 0, 0, loc)
	interval := 5 * time.Minute
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		var vs []Value
		fd := NewFlowDays(loc, interval, 2, 2)
		for off := time.Duration(rng.IntN(600)) * time.Second; off < 24*time.Hour; off += time.Duration(1+rng.IntN(1500)) * time.Second {
			v := Value{T: day.Add(off), V: rng.Float64() * 10, Flag: []int{1, 1, 1, 2, 3, 4}[rng.IntN(6)]}
			vs = append(vs, v)
			if Used(v.Flag) {
				fd.Add(v.T, v.V)
			}
		}
		s := Summarize(vs, day, day.AddDate(0, 0, 1), interval, true)
		d, ok := fd.Account(day)
		if !ok {
			continue
		}
		if s.Mean != d.MeanFlow || math.Abs(s.Covered/86400-d.Coverage) > 1e-12 || s.Count != d.Samples {
			t.Fatalf("run %d: statistics mean %v covered %v count %d; flow day mean %v coverage %v samples %d",
				run, s.Mean, s.Covered, s.Count, d.MeanFlow, d.Coverage, d.Samples)
		}
	}
}

// TestCombineWeighsDaysByTheirTime: a month's time-weighted mean weighs
// each day by the time its data covers; counts add up; a day with only
// flagged values adds its flagged count and nothing else.
func TestCombineWeighsDaysByTheirTime(t *testing.T) {
	parts := []Stats{
		{Mean: 2, Min: 1, Max: 3, Count: 288, Covered: 86400},
		{Mean: 5, Min: 4, Max: 9, Count: 72, Flagged: 3, Covered: 21600},
		{Flagged: 7},
	}
	got := Combine(parts, 30*288)
	want := Stats{Mean: (2*86400 + 5*21600) / 108000.0, Min: 1, Max: 9, Count: 360, Flagged: 10,
		Expected: 8640, Completeness: 360.0 / 8640, Covered: 108000}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if empty := Combine([]Stats{{Flagged: 2}}, 10); empty.Count != 0 || empty.Min != 0 || empty.Max != 0 || empty.Completeness != 0 {
		t.Fatalf("no values used: %+v", empty)
	}
}
