package quality

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// oraclePoint is a value with its time in Unix nanoseconds and its flags.
type oraclePoint struct {
	ns    int64
	v     float64
	flags Flags
}

// oracleSeries is Series as it was before its values were packed (24 bytes
// a value: time, value and flags): the reference the packed Series must
// agree with, flag for flag (FuzzSeriesAsBefore). Kept as it was, but for
// the names.
type oracleSeries struct {
	cfg      registry.QC
	interval time.Duration
	gap      time.Duration
	keep     time.Duration
	pts      []oraclePoint
	run      oracleFlatRun

	noRunCache bool // tests: always walk
}

// oracleFlatRun is the flat-line state of the newest value: the run of values
// ending at it that span less than the tolerance (after a walk that hit
// the test's longest count, a part of that run). The next value in order
// extends it in constant time; anything else walks back again.
type oracleFlatRun struct {
	at     int64   // the value it ends at (Unix ns),
	v      float64 // with this value,
	tol    float64 // under this tolerance
	n      int     // values in it
	lo, hi float64
}

func newOracleSeries(cfg registry.QC, interval time.Duration) *oracleSeries {
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	keep := time.Hour
	if fl := cfg.FlatLine; fl != nil {
		keep = max(keep, fl.Longest())
	}
	return &oracleSeries{cfg: cfg, interval: interval, gap: 3 * interval, keep: keep + 2*interval}
}

// Add tests the value v at t and returns its flags, and the revision of the
// previous value when its spike flag could now be computed and its
// aggregate changed.
func (s *oracleSeries) Add(t time.Time, v float64) (Flags, *Revision) {
	ns := t.UnixNano()
	i := len(s.pts)
	if i > 0 && s.pts[i-1].ns >= ns { // not simply the next value
		i = sort.Search(len(s.pts), func(i int) bool { return s.pts[i].ns >= ns })
	}
	if i < len(s.pts) && s.pts[i].ns == ns {
		s.pts[i].v = v // the same time again: the later value wins
	} else {
		s.pts = append(s.pts, oraclePoint{})
		copy(s.pts[i+1:], s.pts[i:])
		s.pts[i] = oraclePoint{ns: ns, v: v}
	}
	newest := i == len(s.pts)-1
	if !newest {
		s.run = oracleFlatRun{} // a value inside the run changes it
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

func (s *oracleSeries) evaluate(i int, t time.Time) Flags {
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
func (s *oracleSeries) spike(i int) Flag {
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
func (s *oracleSeries) flat(i int, fl *registry.FlatLine, t time.Time) Flag {
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
		s.run = oracleFlatRun{n: run, lo: lo, hi: hi}
	}
	if i == len(s.pts)-1 {
		s.run.at, s.run.v, s.run.tol = s.pts[i].ns, v, fl.Tolerance
	} else {
		s.run = oracleFlatRun{} // kept for the newest value only
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
func (s *oracleSeries) joined(a, b int) bool {
	d := s.pts[b].ns - s.pts[a].ns
	return d >= 0 && time.Duration(d) <= s.gap
}

// prune drops the values older than keep before the newest, once a
// quarter of the series is stale: moving the window costs its length. The
// values are in time order, so whether a quarter is stale is one
// comparison, and where the stale ones end is a binary search; a walk over
// them cost a quarter of the window on every value of a station reporting
// every few seconds.
func (s *oracleSeries) prune() {
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

// asBefore feeds the same values to a Series and to the oracle and fails
// at the first flags, revision or count of values held that differ. Each
// op is two bytes: how the time moves, and the value.
func asBefore(t *testing.T, cfgKind byte, ops []byte) {
	t.Helper()
	skip := 0.5
	interval := 5 * time.Minute
	var cfg registry.QC
	switch cfgKind % 3 {
	case 0: // a stage: windows of a few values, longer in winter
		cfg = registry.QC{
			GrossRange:   &registry.GrossRange{Fail: []float64{0, 15}, Suspect: []float64{0.2, 6}},
			Spike:        &registry.Spike{Suspect: 0.1, Fail: 0.3, SkipMonths: []int{5}},
			RateOfChange: &registry.RateOfChange{SuspectPerHour: 0.5},
			FlatLine: &registry.FlatLine{Suspect: dur(30 * time.Minute), Fail: dur(time.Hour), Tolerance: 0.002,
				Winter: &registry.FlatLineWinter{Months: []int{12, 1, 2, 3}, Suspect: dur(time.Hour), Fail: dur(2 * time.Hour)}},
		}
	case 1: // a water temperature, not judged flat near freezing
		cfg = registry.QC{
			GrossRange:   &registry.GrossRange{Fail: []float64{-1, 35}, Suspect: []float64{-0.5, 22}},
			Spike:        &registry.Spike{Suspect: 1, Fail: 3},
			RateOfChange: &registry.RateOfChange{SuspectPerHour: 3},
			FlatLine:     &registry.FlatLine{Suspect: dur(20 * time.Minute), Fail: dur(40 * time.Minute), Tolerance: 0.01, SkipBelow: &skip},
		}
	default: // every minute, the generated registry's stage
		interval = time.Minute
		cfg = registry.QC{
			GrossRange:   &registry.GrossRange{Fail: []float64{0, 15}, Suspect: []float64{0.2, 6}},
			Spike:        &registry.Spike{Suspect: 0.1, Fail: 0.3},
			RateOfChange: &registry.RateOfChange{SuspectPerHour: 0.5},
			FlatLine:     &registry.FlatLine{Suspect: dur(6 * time.Minute), Fail: dur(12 * time.Minute), Tolerance: 0.002},
		}
	}
	s, o := NewSeries(cfg, interval), newOracleSeries(cfg, interval)
	// The end of March, local time: the winter windows end on the way.
	tm := time.Date(2026, 3, 31, 20, 0, 0, 0, reading.Zone)
	newest := tm
	values := []float64{1, 1.001, 1.002, 1.5, 0.2, 2.25, 4.5, 0, 0.3, 1.0 / 3, math.Copysign(0, -1), 7e-7, 1e10, 0.30000000000000004, 1.23456789, 6.0000001}
	for k := 0; k+1 < len(ops); k += 2 {
		op, vb := ops[k], ops[k+1]
		switch op % 16 {
		case 0, 1, 2, 3, 4, 5: // the next value
			tm = newest.Add(interval)
		case 6: // a few milliseconds late
			tm = newest.Add(interval + time.Duration(op>>4)*time.Millisecond)
		case 7: // off the millisecond
			tm = newest.Add(interval + time.Duration(op>>4)*time.Microsecond + 1)
		case 8: // after a gap
			tm = newest.Add(time.Duration(2+op>>4) * interval)
		case 9: // the newest again
			tm = newest
		case 10, 11: // late: between earlier values, or before the oldest
			tm = newest.Add(-time.Duration(op>>4) * interval / 2)
		case 12: // much later (a day, a month)
			tm = newest.Add(time.Duration(op>>4) * 30 * time.Hour)
		case 13: // a clock set to another century
			tm = time.Date(1700+int(op>>4)*50, 1, 1, 0, 0, 0, 0, time.UTC)
		case 14: // the next on the schedule, whole seconds off it either side (HJ 212's DataTime)
			tm = newest.Truncate(interval).Add(interval + time.Duration(int(op>>4)-8)*time.Second)
		default: // half an interval on
			tm = newest.Add(interval / 2)
		}
		if tm.After(newest) {
			newest = tm
		}
		v := values[vb%16]
		if vb >= 128 {
			v = 1 + float64(vb%32)/1000 // near-flat stage values
		}
		sf, sr := s.Add(tm, v)
		of, or := o.Add(tm, v)
		if sf != of || (sr == nil) != (or == nil) || (sr != nil && *sr != *or) || s.Len() != len(o.pts) {
			t.Fatalf("op %d (%d, %d: %v at %v): packed gives %+v %v with %d values, before %+v %v with %d",
				k/2, op, vb, v, tm, sf, sr, s.Len(), of, or, len(o.pts))
		}
	}
}

// FuzzSeriesAsBefore: the packed series flags every value as the series
// of 24-byte values did, whatever the times (in order, jittered around the
// schedule, late, repeated, after gaps, off the millisecond, centuries
// away) and values (short
// decimals, others, a negative zero).
func FuzzSeriesAsBefore(f *testing.F) {
	f.Add(byte(0), []byte{0, 128, 0, 128, 0, 128, 0, 128, 0, 128, 0, 128, 0, 128, 0, 129, 0, 128, 0, 3, 0, 128})
	f.Add(byte(1), []byte{0, 4, 0, 4, 10 | 32, 6, 9, 5, 7, 8, 0, 10, 13, 4, 0, 4, 0, 4, 8, 1, 11 | 96, 2})
	f.Add(byte(2), []byte{0, 0, 0, 1, 12 | 16, 2, 0, 3, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2, 0, 2})
	f.Fuzz(asBefore)
}

// TestSeriesAsBefore: the same on random sequences long enough to fill and
// move each window many times.
func TestSeriesAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 4))
	for trial := range 600 {
		ops := make([]byte, 2*(200+rng.IntN(800)))
		for i := 0; i < len(ops); i += 2 {
			ops[i] = byte(rng.IntN(256))
			switch {
			case trial%3 == 0 && rng.IntN(20) > 0:
				ops[i] &^= 15 // the next value
			case trial%3 == 1 && rng.IntN(20) > 0:
				ops[i] |= 14 // the next, seconds off the schedule
			}
			ops[i+1] = byte(rng.IntN(256))
			if rng.IntN(3) > 0 {
				ops[i+1] |= 128
			}
		}
		asBefore(t, byte(trial), ops)
	}
}

// BenchmarkSeriesMemory: the memory a series holds per value, the series
// as it was (before) and packed, for the generated registry's stage
// (simulators.GenerateRegistry: a 72-hour flat-line window in winter)
// reporting every minute for 96 hours, when the quarter prune lets most
// values wait; values in millimetres drawn at random, times on the minute,
// with a minute missing every 6 hours, or up to a second after the
// minute. Heap after a collection, less before, over the values held.
func BenchmarkSeriesMemory(b *testing.B) {
	cfg := registry.QC{
		GrossRange:   &registry.GrossRange{Fail: []float64{0, 15}, Suspect: []float64{0.2, 6}},
		Spike:        &registry.Spike{Suspect: 0.1, Fail: 0.3},
		RateOfChange: &registry.RateOfChange{SuspectPerHour: 0.5},
		FlatLine: &registry.FlatLine{Suspect: dur(6 * time.Hour), Fail: dur(24 * time.Hour), Tolerance: 0.002,
			Winter: &registry.FlatLineWinter{Months: []int{12, 1, 2, 3}, Suspect: dur(24 * time.Hour), Fail: dur(72 * time.Hour)}},
	}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, reading.Zone)
	const series, minutes = 200, 96*60 - 1
	for _, times := range []string{"minute", "gaps", "jitter"} {
		for _, kind := range []string{"before", "packed"} {
			b.Run(times+"/"+kind, func(b *testing.B) {
				for range b.N {
					rng := rand.New(rand.NewPCG(1, 2))
					runtime.GC()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					heap := ms.HeapAlloc
					type adder interface {
						Add(time.Time, float64) (Flags, *Revision)
					}
					held := make([]adder, series)
					for k := range held {
						if kind == "before" {
							held[k] = newOracleSeries(cfg, time.Minute)
						} else {
							held[k] = NewSeries(cfg, time.Minute)
						}
					}
					for i := range minutes {
						at := start.Add(time.Duration(i) * time.Minute)
						switch {
						case times == "gaps" && i%360 == 359:
							continue
						case times == "jitter":
							at = at.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
						}
						for _, s := range held {
							s.Add(at, float64(1000+rng.IntN(400))/1000)
						}
					}
					runtime.GC()
					runtime.ReadMemStats(&ms)
					values := 0
					for _, s := range held {
						if o, ok := s.(*oracleSeries); ok {
							values += len(o.pts)
						} else {
							values += s.(*Series).Len()
						}
					}
					b.ReportMetric(float64(ms.HeapAlloc-heap)/float64(values), "B/value")
					runtime.KeepAlive(held)
				}
			})
		}
	}
}
