package hydro

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/registry"
)

// The two-segment example of domain.md §5.4: e = 0.20, b = 1.8, C = 28.69
// below 2.8 m; e = 0.5, b = 1.5, C = 45.92 above (continuous at 2.8 m).
var nianchu = registry.Rating{
	ValidFrom: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	Segments: []registry.Segment{
		{HMin: 0.2, HMax: 2.8, C: 28.69, E: 0.2, B: 1.8},
		{HMin: 2.8, HMax: 6, C: 45.92, E: 0.5, B: 1.5},
	},
}

func TestFlowMatchesTheWorkedExample(t *testing.T) {
	for _, c := range []struct{ h, q float64 }{
		{1.5, 46.0}, {0.58, 5.0}, {2.6, 139.0}, {3.0, 181.5}, {4.0, 300.7}, {4.5, 367.4},
	} {
		q, err := Flow(&nianchu, c.h)
		if err != nil || math.Abs(q-c.q)/c.q > 0.01 {
			t.Errorf("Flow(%.2f) = %.1f, %v; want %.1f", c.h, q, err, c.q)
		}
		h, err := Stage(&nianchu, q)
		if err != nil || math.Abs(h-c.h) > 1e-9 {
			t.Errorf("Stage(%.1f) = %.4f, %v; want %.2f", q, h, err, c.h)
		}
	}
}

func TestOutsideTheRatingIsNotExtrapolated(t *testing.T) {
	for _, h := range []float64{0.1, 6.01, -1} {
		if _, err := Flow(&nianchu, h); !errors.Is(err, ErrOutsideRating) {
			t.Errorf("Flow(%g) err = %v, want ErrOutsideRating", h, err)
		}
	}
	if q, err := Flow(&nianchu, 6); err != nil || q <= 0 {
		t.Errorf("the top of the last segment is rated: %v %v", q, err)
	}
}

func TestRatingVersions(t *testing.T) {
	v2 := nianchu
	v2.ValidFrom = time.Date(2026, 8, 20, 0, 0, 0, 0, time.UTC)
	all := []registry.Rating{nianchu, v2}
	if _, err := RatingAt(all, time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrNoRating) {
		t.Errorf("before the first version: %v", err)
	}
	if r, _ := RatingAt(all, time.Date(2026, 8, 19, 23, 0, 0, 0, time.UTC)); r != &all[0] {
		t.Error("picked the wrong version before the change")
	}
	if r, _ := RatingAt(all, v2.ValidFrom); r != &all[1] {
		t.Error("picked the wrong version at the change")
	}
}

// TestRatedFlowAppliesShiftsWithinTheirPeriod: a shift moves the stage
// entering the curve from its from (inclusive) to its to (exclusive);
// outside it, and after a new version, the plain curve applies.
func TestRatedFlowAppliesShiftsWithinTheirPeriod(t *testing.T) {
	jul := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	aug := jul.AddDate(0, 1, 0)
	st := &registry.Station{
		Rating: []registry.Rating{nianchu},
		Shifts: []registry.Shift{
			{From: jul, To: aug, DH: 0.15},
			{From: aug.AddDate(0, 1, 0), DH: -0.1}, // open-ended
		},
	}
	plain := func(h float64) float64 {
		q, err := Flow(&nianchu, h)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	for _, c := range []struct {
		t    time.Time
		h, q float64
	}{
		{jul.Add(-time.Nanosecond), 1.5, plain(1.5)},
		{jul, 1.5, plain(1.65)},
		{aug.Add(-time.Nanosecond), 1.5, plain(1.65)},
		{aug, 1.5, plain(1.5)},
		{aug.AddDate(0, 1, 0), 1.5, plain(1.4)},
		{aug.AddDate(5, 0, 0), 1.5, plain(1.4)},
		// The segment is the effective stage's: 2.7 + 0.15 is above the
		// 2.8 m break.
		{jul, 2.7, plain(2.85)},
	} {
		q, err := RatedFlow(st, c.t, c.h)
		if err != nil || q != c.q {
			t.Errorf("RatedFlow(%s, %g) = %v, %v; want %v", c.t, c.h, q, err, c.q)
		}
	}
	if q, _ := RatedFlow(st, jul, 1.5); q <= plain(1.5) {
		t.Errorf("a positive shift (scour) raises the flow: %v <= %v", q, plain(1.5))
	}
	// The rated range is the effective stage's: 0.1 m reads 0.25 m,
	// rated, inside the shift; 5.9 m reads 6.05 m, above the curve.
	if _, err := RatedFlow(st, jul, 0.1); err != nil {
		t.Errorf("0.1 m shifted by 0.15 m: %v", err)
	}
	if _, err := RatedFlow(st, jul, 5.9); !errors.Is(err, ErrOutsideRating) {
		t.Errorf("5.9 m shifted by 0.15 m: err = %v, want ErrOutsideRating", err)
	}
	if _, err := RatedFlow(st, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), 1.5); !errors.Is(err, ErrNoRating) {
		t.Errorf("before the first version: %v", err)
	}
	if got := ShiftAt(st.Shifts, aug.Add(time.Hour)); got != 0 {
		t.Errorf("between shifts: %v", got)
	}
}
