// Package hydro holds the hydrology rivermon computes: discharge from
// stage–discharge rating curves (domain.md §5) and, later, ecological-flow
// day accounting.
package hydro

import (
	"errors"
	"math"
	"time"

	"github.com/rivermon/rivermon/internal/registry"
)

// ErrOutsideRating means the stage lies outside every segment of the curve in
// force: the rating says nothing there and rivermon does not extrapolate.
var ErrOutsideRating = errors.New("stage outside the rated range")

// ErrNoRating means no curve version is in force at the time asked.
var ErrNoRating = errors.New("no rating curve in force")

// RatingAt returns the curve version in force at t: the last whose ValidFrom
// is not after t.
func RatingAt(ratings []registry.Rating, t time.Time) (*registry.Rating, error) {
	var in *registry.Rating
	for i := range ratings {
		if ratings[i].ValidFrom.After(t) {
			break
		}
		in = &ratings[i]
	}
	if in == nil {
		return nil, ErrNoRating
	}
	return in, nil
}

// Flow returns the discharge for stage h on curve r: Q = c·(h − e)^b on the
// segment with h_min ≤ h < h_max (the last segment includes its h_max).
func Flow(r *registry.Rating, h float64) (float64, error) {
	for i, sg := range r.Segments {
		last := i == len(r.Segments)-1
		if h >= sg.HMin && (h < sg.HMax || (last && h == sg.HMax)) {
			return sg.C * math.Pow(math.Max(h-sg.E, 0), sg.B), nil
		}
	}
	return 0, ErrOutsideRating
}

// ShiftAt is the stage offset in force at t: the DH of the shift covering
// t, 0 when none does (registry validation keeps shifts from overlapping).
func ShiftAt(shifts []registry.Shift, t time.Time) float64 {
	for i := range shifts {
		if shifts[i].Covers(t) {
			return shifts[i].DH
		}
	}
	return 0
}

// RatedFlow is the discharge rivermon derives from a stage h read at t at
// station st, the one function the stream and a reprocess use: the curve
// version in force at t (RatingAt), entered with the effective stage h +
// dh of the shift in force at t (ShiftAt), on the segment the effective
// stage falls in (Flow): Q = c·(h + dh − e)^b. A stage whose effective
// stage lies outside every segment has no rated flow (ErrOutsideRating).
func RatedFlow(st *registry.Station, t time.Time, h float64) (float64, error) {
	r, err := RatingAt(st.Rating, t)
	if err != nil {
		return 0, err
	}
	return Flow(r, h+ShiftAt(st.Shifts, t))
}

// Stage is the inverse of Flow: the stage at which curve r gives discharge
// q. Used by the simulator to turn a flow signal into what a gauge reads.
func Stage(r *registry.Rating, q float64) (float64, error) {
	for _, sg := range r.Segments {
		h := sg.E + math.Pow(math.Max(q, 0)/sg.C, 1/sg.B)
		if h >= sg.HMin && h <= sg.HMax {
			return h, nil
		}
	}
	return 0, ErrOutsideRating
}
