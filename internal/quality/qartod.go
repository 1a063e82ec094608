// Package quality holds the data-quality science of rivermon: streaming
// QARTOD tests (domain.md §1) that flag each value as it arrives, and the
// GB 3838-2002 surface-water class of a sample (domain.md §2).
//
// The tests follow the reference implementation ioos_qc (qartod.py) as
// described in domain.md §1.3: bounds of the gross range pass when equal,
// spike and rate-of-change thresholds are strict (>), a threshold of 0
// disables its level, flat line compares the range of a window with the
// tolerance (strict <). Where streaming must differ, the choice is made
// here and documented in docs/HYDROLOGY.md:
//   - spike needs the next value: the newest value gets 2 for spike, and
//     when the next one arrives its spike flag is computed and, if that
//     changes its aggregate flag, the caller rewrites that one flag (the
//     exception QARTOD itself names, QM-WL §3.3.1);
//   - a gap of more than three reporting intervals resets the tests: the
//     first value after it gets 2 for rate of change (ioos_qc gives 1) and
//     the flat-line window starts again;
//   - flat line counts its window in nominal reporting intervals
//     (ioos_qc uses the median spacing of a batch), and does not run when
//     the threshold is shorter than one interval (ioos_qc would then fail
//     every value);
//   - a value arriving late, older than the newest, is tested against its
//     stored neighbours; the neighbours' flags are not revised.
package quality

import (
	"math"
	"sort"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Flag is a QARTOD flag (domain.md §1.1).
type Flag uint8

// Flag values.
const (
	None         Flag = 0 // the test is not configured or not applicable
	Pass         Flag = 1
	NotEvaluated Flag = 2
	Suspect      Flag = 3
	Fail         Flag = 4
)

// Flags are the results of each test for one value.
type Flags struct {
	Gross, Spike, ROC, Flat Flag
}

// Aggregate is the worst of the evaluated flags (4 over 3 over 1); 2 when
// no test could evaluate the value.
func (f Flags) Aggregate() Flag {
	agg := NotEvaluated
	for _, x := range []Flag{f.Gross, f.Spike, f.ROC, f.Flat} {
		switch {
		case x == Fail:
			return Fail
		case x == Suspect:
			agg = Suspect
		case x == Pass && agg == NotEvaluated:
			agg = Pass
		}
	}
	return agg
}

// point is a value with its time in Unix nanoseconds (24 bytes, where a
// time.Time alone is 24).
type point struct {
	ns    int64
	v     float64
	flags Flags
}

// Series is the recent history of one parameter at one station, kept in
// time order for the streaming tests.
type Series struct {
	cfg      registry.QC
	interval time.Duration
	gap      time.Duration
	keep     time.Duration
	pts      []point
	run      flatRun

	noRunCache bool // tests: always walk
}

// flatRun is the flat-line state of the newest value: the run of values
// ending at it that span less than the tolerance (after a walk that hit
// the test's longest count, a part of that run). The next value in order
// extends it in constant time; anything else walks back again.
type flatRun struct {
	at     int64   // the value it ends at (Unix ns),
	v      float64 // with this value,
	tol    float64 // under this tolerance
	n      int     // values in it
	lo, hi float64
}

// Len is how many values the series holds.
func (s *Series) Len() int { return len(s.pts) }

// Keep is how far back from its newest value the series needs earlier
// values: what a restart has to read back.
func (s *Series) Keep() time.Duration { return s.keep }

// Spiked tells whether the spike test runs on a value at t: its flag is
// then final only once the next value has come.
func (s *Series) Spiked(t time.Time) bool {
	return s.cfg.Spike != nil && !skipMonth(s.cfg.Spike.SkipMonths, t)
}

// Revision is a changed aggregate flag of an earlier value.
type Revision struct {
	Time time.Time
	Flag Flag
}

// NewSeries returns the state of one parameter tested with cfg, for a
// station that reports every interval.
func NewSeries(cfg registry.QC, interval time.Duration) *Series {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	keep := time.Hour
	if fl := cfg.FlatLine; fl != nil {
		keep = max(keep, fl.Longest())
	}
	return &Series{cfg: cfg, interval: interval, gap: 3 * interval, keep: keep + 2*interval}
}

// Add tests the value v at t and returns its flags, and the revision of the
// previous value when its spike flag could now be computed and its
// aggregate changed.
func (s *Series) Add(t time.Time, v float64) (Flags, *Revision) {
	ns := t.UnixNano()
	i := len(s.pts)
	if i > 0 && s.pts[i-1].ns >= ns { // not simply the next value
		i = sort.Search(len(s.pts), func(i int) bool { return s.pts[i].ns >= ns })
	}
	if i < len(s.pts) && s.pts[i].ns == ns {
		s.pts[i].v = v // the same time again: the later value wins
	} else {
		s.pts = append(s.pts, point{})
		copy(s.pts[i+1:], s.pts[i:])
		s.pts[i] = point{ns: ns, v: v}
	}
	newest := i == len(s.pts)-1
	if !newest {
		s.run = flatRun{} // a value inside the run changes it
	}
	s.pts[i].flags = s.evaluate(i, t)
	flags := s.pts[i].flags
	var rev *Revision
	if newest && i >= 1 {
		// The previous value now has its next neighbour: its spike test
		// can run.
		prev := &s.pts[i-1]
		before := prev.flags.Aggregate()
		prev.flags.Spike = s.spike(i - 1)
		if after := prev.flags.Aggregate(); after != before {
			rev = &Revision{Time: time.Unix(0, prev.ns).In(t.Location()), Flag: after}
		}
	}
	s.prune()
	return flags, rev
}

func (s *Series) evaluate(i int, t time.Time) Flags {
	v := s.pts[i].v
	var f Flags
	if g := s.cfg.GrossRange; g != nil {
		f.Gross = Pass
		if len(g.Suspect) == 2 && (v < g.Suspect[0] || v > g.Suspect[1]) {
			f.Gross = Suspect
		}
		if len(g.Fail) == 2 && (v < g.Fail[0] || v > g.Fail[1]) {
			f.Gross = Fail
		}
	}
	if s.cfg.Spike != nil && !skipMonth(s.cfg.Spike.SkipMonths, t) {
		f.Spike = s.spike(i)
	}
	if r := s.cfg.RateOfChange; r != nil {
		f.ROC = NotEvaluated
		if i > 0 && s.joined(i-1, i) {
			dt := time.Duration(s.pts[i].ns - s.pts[i-1].ns).Seconds()
			if dt > 0 {
				f.ROC = Pass
				if math.Abs(v-s.pts[i-1].v)/dt > r.SuspectPerHour/3600 {
					f.ROC = Suspect
				}
			}
		}
	}
	if fl := s.cfg.FlatLine; fl != nil && !(fl.SkipBelow != nil && v < *fl.SkipBelow) {
		f.Flat = s.flat(i, fl, t)
	}
	return f
}

// spike is the "average" method: |x[i] − (x[i−1] + x[i+1])/2| against the
// thresholds; 2 without both neighbours (first, newest, after a gap).
func (s *Series) spike(i int) Flag {
	sp := s.cfg.Spike
	if sp == nil || skipMonth(sp.SkipMonths, time.Unix(0, s.pts[i].ns)) {
		return None
	}
	if i == 0 || i == len(s.pts)-1 || !s.joined(i-1, i) || !s.joined(i, i+1) {
		return NotEvaluated
	}
	d := math.Abs(s.pts[i].v - (s.pts[i-1].v+s.pts[i+1].v)/2)
	switch {
	case sp.Fail > 0 && d > sp.Fail:
		return Fail
	case sp.Suspect > 0 && d > sp.Suspect:
		return Suspect
	}
	return Pass
}

// flat fails (or makes suspect) a value whose window of the last count+1
// values, count = threshold / interval, spans less than the tolerance. The
// window test is done as one walk back from the value: the range of the
// last k values only grows with k, so the flat run ends where the range
// reaches the tolerance. On varying data the walk stops after a value or
// two; only a stuck sensor walks the whole window.
func (s *Series) flat(i int, fl *registry.FlatLine, t time.Time) Flag {
	if fl.Tolerance <= 0 {
		return Pass // max − min < 0 never holds
	}
	suspect, fail := fl.Windows(t.In(reading.Zone).Month())
	countS, countF := int(suspect/s.interval), int(fail/s.interval)
	longest := max(countS, countF)
	if longest < 1 {
		return Pass
	}
	// run = how many values ending at i (without a gap) span less than the
	// tolerance, up to longest+1.
	v := s.pts[i].v
	var run int
	if r := &s.run; !s.noRunCache && i == len(s.pts)-1 && i > 0 && r.n > 0 && r.tol == fl.Tolerance &&
		s.pts[i-1].ns == r.at && s.pts[i-1].v == r.v {
		// The previous value's run, extended by this one if it stays
		// flat and joined, else walked again below.
		if lo, hi := math.Min(r.lo, v), math.Max(r.hi, v); hi-lo < fl.Tolerance && s.joined(i-1, i) {
			r.n, r.lo, r.hi = r.n+1, lo, hi
			// Values before pts[0] have been pruned: the walk would not
			// see them either.
			run = min(r.n, i+1)
		}
	}
	if run == 0 {
		lo, hi := v, v
		run = 1
		for j := i - 1; j >= 0 && run <= longest && s.joined(j, j+1); j-- {
			nlo, nhi := math.Min(lo, s.pts[j].v), math.Max(hi, s.pts[j].v)
			if nhi-nlo >= fl.Tolerance {
				break
			}
			lo, hi = nlo, nhi
			run++
		}
		s.run = flatRun{n: run, lo: lo, hi: hi}
	}
	if i == len(s.pts)-1 {
		s.run.at, s.run.v, s.run.tol = s.pts[i].ns, v, fl.Tolerance
	} else {
		s.run = flatRun{} // kept for the newest value only
	}
	run = min(run, longest+1)
	switch {
	case countF >= 1 && run >= countF+1:
		return Fail
	case countS >= 1 && run >= countS+1:
		return Suspect
	}
	return Pass
}

// joined reports whether values a < b are consecutive without a gap.
// Values more than 292 years apart overflow the difference, which is then
// negative: not joined either.
func (s *Series) joined(a, b int) bool {
	d := s.pts[b].ns - s.pts[a].ns
	return d >= 0 && time.Duration(d) <= s.gap
}

// prune drops the values older than keep before the newest, once a
// quarter of the series is stale: moving the window costs its length. The
// values are in time order, so whether a quarter is stale is one
// comparison, and where the stale ones end is a binary search; a walk over
// them cost a quarter of the window on every value of a station reporting
// every few seconds.
func (s *Series) prune() {
	last := len(s.pts) - 2 // the newest two values always stay
	q := max(len(s.pts)/4, 1)
	if q > last {
		return
	}
	newest := s.pts[len(s.pts)-1].ns
	cut := newest - int64(s.keep)
	if cut > newest || s.pts[q-1].ns >= cut { // (cut > newest: 1677, underflow)
		return
	}
	n := sort.Search(last, func(i int) bool { return s.pts[i].ns >= cut })
	s.pts = append(s.pts[:0], s.pts[n:]...)
}

func skipMonth(months []int, t time.Time) bool {
	if len(months) == 0 {
		return false
	}
	m := int(t.In(reading.Zone).Month())
	for _, x := range months {
		if x == m {
			return true
		}
	}
	return false
}
