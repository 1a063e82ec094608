package ingest

import (
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// TestLiveStagesAreShifted: the stream rates a stage with the shift in
// force at the sample's time, as hydro.RatedFlow does, and the plain curve
// outside the shift's period.
func TestLiveStagesAreShifted(t *testing.T) {
	st := *testRegistry(t).Station("yarlung-dazhuka")
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, reading.Zone)
	st.Shifts = []registry.Shift{{From: from, To: from.AddDate(0, 0, 10), DH: 0.2}}
	s := newStation(&st, reading.Zone)
	for _, at := range []time.Time{from.Add(-5 * time.Minute), from, from.AddDate(0, 0, 10)} {
		a := s.assess(&reading.Sample{Time: at, Values: []reading.Value{{Code: "level_m", Value: 1.8}}}, nil, nil)
		r, err := hydro.RatingAt(st.Rating, at)
		if err != nil {
			t.Fatal(err)
		}
		h := 1.8
		if st.Shifts[0].Covers(at) {
			h += 0.2
		}
		want, err := hydro.Flow(r, h)
		if err != nil {
			t.Fatal(err)
		}
		if !a.hasRated || a.rated != want {
			t.Errorf("%s: rated %v (%v), want %v", at, a.rated, a.hasRated, want)
		}
	}
}
