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

	"github.com/rivermon/rivermon/internal/packed"
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

// Series is the recent history of one parameter at one station, kept in
// time order for the streaming tests. Its times and values are packed
// (package packed): a station reporting every minute on the minute, in
// millimetres or hundredths, holds its 72 hours in 4 bytes a value, where
// a time, a value and its flags took 24.
type Series struct {
	cfg      registry.QC
	interval time.Duration
	gap      time.Duration
	keep     time.Duration
	ns       packed.Ints   // Unix nanoseconds, in order
	v        packed.Floats // the value at each time
	// last holds the flags of the last two values, the only flags read
	// again: when a value comes after the newest, the one before it (then
	// the last but one) gets its spike flag. A value's place from the end
	// only grows, so no other value's flags are needed again.
	last [2]Flags
	// tns and tv are the last three times and values as the columns hold
	// them, tns[2] the newest: a value in order reads nothing else of the
	// columns but the time prune looks at.
	tns [3]int64
	tv  [3]float64
	// q and qns: prune's look at the time of the q-th value, kept while
	// no value comes before it (q 0: none kept).
	q   int
	qns int64
	run flatRun

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
func (s *Series) Len() int { return s.ns.Len() }

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
	s := &Series{cfg: cfg, interval: interval, gap: 3 * interval, keep: keep + 2*interval}
	// Values reporting every interval: keep/interval+1 in the window, and
	// prune lets a third more wait.
	window := int(min(s.keep/interval, 1<<20)) + 1
	s.ns.SetHint(window + window/3 + 2)
	s.ns.SetStep(int64(interval)) // times off the schedule by seconds: a few bits each
	s.v.SetHint(window + window/3 + 2)
	return s
}

// Add tests the value v at t and returns its flags, and the revision of the
// previous value when its spike flag could now be computed and its
// aggregate changed.
func (s *Series) Add(t time.Time, v float64) (Flags, *Revision) {
	ns := t.UnixNano()
	n := s.ns.Len()
	i := n
	if i > 0 && s.tns[2] >= ns { // not simply the next value
		i = sort.Search(n, func(i int) bool { return s.ns.At(i) >= ns })
	}
	inserted := false
	switch {
	case i == n:
		s.ns.Append(ns)
		s.v.Append(v)
		if v == 0 {
			v = 0 // as the column holds it, without the sign of a zero
		}
		s.tns = [3]int64{s.tns[1], s.tns[2], ns}
		s.tv = [3]float64{s.tv[1], s.tv[2], v}
		inserted, n = true, n+1
	case s.ns.At(i) == ns:
		s.v.Set(i, v) // the same time again: the later value wins
		s.readTail()
	default:
		s.ns.Insert(i, ns)
		s.v.Insert(i, v)
		inserted, n = true, n+1
		s.readTail()
		if i < s.q {
			s.q = 0
		}
	}
	newest := i == n-1
	if !newest {
		s.run = flatRun{} // a value inside the run changes it
	}
	var cur, prev point
	if newest {
		cur, prev = point{s.tns[2], s.tv[2]}, point{s.tns[1], s.tv[1]}
	} else if cur = s.at(i); i > 0 {
		prev = s.at(i - 1)
	}
	flags := s.evaluate(i, t, cur, prev)
	switch {
	case inserted && i == n-1: // a new newest value
		s.last = [2]Flags{s.last[1], flags}
	case inserted && i == n-2: // a late value just before the newest
		s.last[0] = flags
	case i == n-1: // the newest value again
		s.last[1] = flags
	case i == n-2: // the one before it again
		s.last[0] = flags
	}
	var rev *Revision
	if newest && i >= 1 {
		// The previous value now has its next neighbour: its spike test
		// can run.
		pf := &s.last[0]
		before := pf.Aggregate()
		pf.Spike = s.spikeOf(i-1, point{s.tns[0], s.tv[0]}, prev, cur)
		if after := pf.Aggregate(); after != before {
			rev = &Revision{Time: time.Unix(0, prev.ns).In(t.Location()), Flag: after}
		}
	}
	s.prune()
	return flags, rev
}

// readTail reads the last three times and values from the columns.
func (s *Series) readTail() {
	n := s.ns.Len()
	for k := range 3 {
		if i := n - 3 + k; i >= 0 {
			s.tns[k], s.tv[k] = s.ns.At(i), s.v.At(i)
		}
	}
}

// point is a value and its time (Unix ns).
type point struct {
	ns int64
	v  float64
}

// at is the i-th value.
func (s *Series) at(i int) point {
	if k := i - s.ns.Len() + 3; uint(k) < 3 {
		return point{s.tns[k], s.tv[k]}
	}
	return point{s.ns.At(i), s.v.At(i)}
}

// joined reports whether values at a and then b are consecutive without a
// gap. Values more than 292 years apart overflow the difference, which is
// then negative: not joined either.
func (s *Series) joined(a, b point) bool {
	d := b.ns - a.ns
	return d >= 0 && time.Duration(d) <= s.gap
}

// evaluate tests the i-th value, cur, at t; prev is the value before it
// (when i > 0).
func (s *Series) evaluate(i int, t time.Time, cur, prev point) Flags {
	v := cur.v
	joined := i > 0 && s.joined(prev, cur)
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
		if i == s.ns.Len()-1 {
			f.Spike = NotEvaluated // until the next value comes
		} else {
			f.Spike = s.spike(i)
		}
	}
	if r := s.cfg.RateOfChange; r != nil {
		f.ROC = NotEvaluated
		if joined {
			dt := time.Duration(cur.ns - prev.ns).Seconds()
			if dt > 0 {
				f.ROC = Pass
				if math.Abs(v-prev.v)/dt > r.SuspectPerHour/3600 {
					f.ROC = Suspect
				}
			}
		}
	}
	if fl := s.cfg.FlatLine; fl != nil && !(fl.SkipBelow != nil && v < *fl.SkipBelow) {
		f.Flat = s.flat(i, fl, t, cur, prev, joined)
	}
	return f
}

// spike is the "average" method: |x[i] − (x[i−1] + x[i+1])/2| against the
// thresholds; 2 without both neighbours (first, newest, after a gap).
func (s *Series) spike(i int) Flag {
	if s.cfg.Spike == nil {
		return None
	}
	var prev, next point
	if i > 0 {
		prev = s.at(i - 1)
	}
	if i < s.ns.Len()-1 {
		next = s.at(i + 1)
	}
	return s.spikeOf(i, prev, s.at(i), next)
}

// spikeOf is the spike of the i-th value cur, between prev and next (each
// read only when there is one).
func (s *Series) spikeOf(i int, prev, cur, next point) Flag {
	sp := s.cfg.Spike
	if sp == nil || skipMonth(sp.SkipMonths, time.Unix(0, cur.ns)) {
		return None
	}
	if i == 0 || i == s.ns.Len()-1 || !s.joined(prev, cur) || !s.joined(cur, next) {
		return NotEvaluated
	}
	d := math.Abs(cur.v - (prev.v+next.v)/2)
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
// two; only a stuck sensor walks the whole window. cur is the i-th value,
// prev the one before it (when i > 0), joined whether they are.
func (s *Series) flat(i int, fl *registry.FlatLine, t time.Time, cur, prev point, joined bool) Flag {
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
	v := cur.v
	last := s.ns.Len() - 1
	var run int
	if r := &s.run; !s.noRunCache && i == last && i > 0 && r.n > 0 && r.tol == fl.Tolerance &&
		prev.ns == r.at && prev.v == r.v {
		// The previous value's run, extended by this one if it stays
		// flat and joined, else walked again below.
		if lo, hi := math.Min(r.lo, v), math.Max(r.hi, v); hi-lo < fl.Tolerance && joined {
			r.n, r.lo, r.hi = r.n+1, lo, hi
			// Values before the first held have been pruned: the walk
			// would not see them either.
			run = min(r.n, i+1)
		}
	}
	if run == 0 {
		lo, hi := v, v
		run = 1
		later := cur
		for j := i - 1; j >= 0 && run <= longest; j-- {
			p := s.at(j)
			if !s.joined(p, later) {
				break
			}
			nlo, nhi := math.Min(lo, p.v), math.Max(hi, p.v)
			if nhi-nlo >= fl.Tolerance {
				break
			}
			lo, hi = nlo, nhi
			run++
			later = p
		}
		s.run = flatRun{n: run, lo: lo, hi: hi}
	}
	if i == last {
		s.run.at, s.run.v, s.run.tol = cur.ns, v, fl.Tolerance
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

// prune drops the values older than keep before the newest, once a
// quarter of the series is stale: moving the window costs its length. The
// values are in time order, so whether a quarter is stale is one
// comparison, and where the stale ones end is a binary search; a walk over
// them cost a quarter of the window on every value of a station reporting
// every few seconds.
func (s *Series) prune() {
	n := s.ns.Len()
	last := n - 2 // the newest two values always stay
	q := max(n/4, 1)
	if q > last {
		return
	}
	newest := s.tns[2]
	cut := newest - int64(s.keep)
	if q != s.q {
		s.q, s.qns = q, s.ns.At(q-1)
	}
	if cut > newest || s.qns >= cut { // (cut > newest: 1677, underflow)
		return
	}
	k := sort.Search(last, func(i int) bool { return s.ns.At(i) >= cut })
	s.ns.DropFront(k)
	s.v.DropFront(k)
	s.q = 0
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
