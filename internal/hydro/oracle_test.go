package hydro

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

// oracleFlowPoint is a value and its time as the offset from the start of its
// day: 16 bytes.
type oracleFlowPoint struct {
	off time.Duration
	q   float64
}

// oracleFlowDay holds a day's values in time order. The sums over consecutive
// pairs of values are kept as values arrive at the end of the day, so that
// the account of a day being filled in order costs the same at its last
// value as at its first; a value arriving in the middle makes the next
// account add them up again.
type oracleFlowDay struct {
	pts               []oracleFlowPoint
	closed            bool
	summed            bool    // integral and covered hold the pairs of pts
	integral, covered float64 // over the pairs pts[k], pts[k+1], left to right
}

// oracleFlowDays is FlowDays as it was before its values were packed: the
// reference the packed days must agree with, account for account
// (TestFlowDaysAsBefore). Kept as it was, but for the names.
//
// It keeps the recent days of one station's flow and computes their
// ecological-flow accounts (domain.md §6.3): the local day 00:00–24:00, a
// time-weighted mean in which consecutive values are joined trapezoidally
// and the last value of a run holds for one reporting interval, and the
// coverage of the day. Values more than three intervals apart are not
// joined: the time between them is not covered.
type oracleFlowDays struct {
	loc       *time.Location
	interval  time.Duration
	target    float64
	keep      int
	days      map[time.Time]*oracleFlowDay
	newestDay time.Time // start of the newest day held
	cutoff    time.Time // days before it are not kept: newestDay less keep days
	// Values come in runs of one day: the day DayStart found last, as Unix
	// nanoseconds [dayFrom, dayTo) and its start, and the day Add found
	// last, so that a run costs neither the calendar nor the map.
	dayFrom, dayTo int64
	dayStart       time.Time
	lastStart      time.Time
	last           *oracleFlowDay
	// oldestOpen is the start of the oldest day not closed (zero when every
	// day held is closed): Close runs for every flow value, and nearly
	// always has nothing to close.
	oldestOpen time.Time

	walkClose bool // tests: Close always walks the days
	noCache   bool // tests: DayStart and Add look every day up
}

func newOracleFlowDays(loc *time.Location, interval time.Duration, target float64, keepDays int) *oracleFlowDays {
	return &oracleFlowDays{loc: loc, interval: interval, target: target, keep: keepDays, days: map[time.Time]*oracleFlowDay{}}
}

// DayStart is the local midnight starting the day of t.
func (f *oracleFlowDays) DayStart(t time.Time) time.Time {
	if n := t.UnixNano(); n >= f.dayFrom && n < f.dayTo && !f.noCache {
		return f.dayStart
	}
	l := t.In(f.loc)
	start := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, f.loc)
	// The day ends where the next begins; where a change of daylight
	// saving time skips midnight, the times near it are not remembered.
	end := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, f.loc)
	if y, m, d := end.Add(-1).In(f.loc).Date(); y == l.Year() && m == l.Month() && d == l.Day() && !t.Before(start) {
		f.dayStart, f.dayFrom, f.dayTo = start, start.UnixNano(), end.UnixNano()
	}
	return start
}

// Add records flow q at t. It returns the start of t's day and whether
// that day was already closed (its account must be written again), and
// ok = false when the day is older than the days remembered.
func (f *oracleFlowDays) Add(t time.Time, q float64) (day time.Time, reopened, ok bool) {
	day = f.DayStart(t)
	if !f.newestDay.IsZero() && day.Before(f.cutoff) {
		return day, false, false
	}
	d := f.last
	if d == nil || day != f.lastStart || f.noCache {
		d = f.days[day]
		if d == nil {
			d = &oracleFlowDay{}
			f.days[day] = d
			if f.oldestOpen.IsZero() || day.Before(f.oldestOpen) {
				f.oldestOpen = day
			}
		}
		f.lastStart, f.last = day, d
	}
	pt := oracleFlowPoint{off: t.Sub(day), q: q}
	if n := len(d.pts); n == 0 || d.pts[n-1].off < pt.off {
		// In order: one more pair.
		d.pts = append(d.pts, pt)
		if d.summed && n > 0 {
			f.addPair(d, n-1)
		}
	} else {
		i := sort.Search(len(d.pts), func(i int) bool { return d.pts[i].off >= pt.off })
		if i < len(d.pts) && d.pts[i].off == pt.off {
			d.pts[i] = pt
		} else {
			d.pts = append(d.pts, oracleFlowPoint{})
			copy(d.pts[i+1:], d.pts[i:])
			d.pts[i] = pt
		}
		d.summed = false
	}
	if day.After(f.newestDay) {
		// A new newest day: the oldest may go.
		f.newestDay = day
		f.forget()
	}
	return day, d.closed, true
}

func (f *oracleFlowDays) forget() {
	f.cutoff = f.newestDay.AddDate(0, 0, -f.keep)
	for d := range f.days {
		if d.Before(f.cutoff) {
			delete(f.days, d)
		}
	}
	if f.lastStart.Before(f.cutoff) {
		f.last = nil // lets its values go (Add refuses its day before looking)
	}
	f.findOldestOpen()
}

func (f *oracleFlowDays) findOldestOpen() {
	f.oldestOpen = time.Time{}
	for start, d := range f.days {
		if !d.closed && (f.oldestOpen.IsZero() || start.Before(f.oldestOpen)) {
			f.oldestOpen = start
		}
	}
}

// Close marks every open day that starts before `before` closed and
// returns their accounts, oldest first.
func (f *oracleFlowDays) Close(before time.Time) []Day {
	if !f.walkClose && (f.oldestOpen.IsZero() || !f.oldestOpen.Before(before)) {
		return nil // no open day starts before it
	}
	var out []Day
	for start, d := range f.days {
		if !d.closed && start.Before(before) {
			d.closed = true
			out = append(out, f.account(start, d))
		}
	}
	f.findOldestOpen()
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Account returns the account of the day starting at start so far.
func (f *oracleFlowDays) Account(start time.Time) (Day, bool) {
	d := f.days[start]
	if d == nil {
		return Day{}, false
	}
	return f.account(start, d), true
}

func (f *oracleFlowDays) account(start time.Time, d *oracleFlowDay) Day {
	dayLen := start.AddDate(0, 0, 1).Sub(start).Seconds()
	if !d.summed {
		d.integral, d.covered, d.summed = 0, 0, true
		for k := 0; k+1 < len(d.pts); k++ {
			f.addPair(d, k)
		}
	}
	day := Day{Start: start, Target: f.target, Samples: len(d.pts)}
	if len(d.pts) == 0 {
		return day
	}
	// The last value holds for one interval, within the day.
	integral, covered := d.integral, d.covered
	ti, ci := f.tail(d.pts[len(d.pts)-1], dayLen)
	integral += ti
	covered += ci
	if covered > 0 {
		day.MeanFlow = integral / covered
		day.Coverage = math.Min(covered/dayLen, 1)
	}
	day.Compliant = day.Coverage >= ValidCoverage && day.MeanFlow >= f.target
	return day
}

// addPair adds the pair pts[k], pts[k+1] to the day's sums: joined
// trapezoidally when no more than three intervals apart, otherwise pts[k]
// ends a run and holds for one interval (which ends before pts[k+1], so
// within the day).
func (f *oracleFlowDays) addPair(d *oracleFlowDay, k int) {
	a, b := d.pts[k], d.pts[k+1]
	var integral, covered float64
	if gap := b.off - a.off; gap <= 3*f.interval { // exact, in nanoseconds
		integral, covered = (a.q+b.q)/2*gap.Seconds(), gap.Seconds()
	} else {
		integral, covered = f.tail(a, math.Inf(1))
	}
	d.integral += integral
	d.covered += covered
}

// tail is what a value ending a run adds: it holds for one interval, but
// not past the end of the day (dayLen seconds).
func (f *oracleFlowDays) tail(p oracleFlowPoint, dayLen float64) (integral, covered float64) {
	off := p.off.Seconds()
	hi := math.Min(off+f.interval.Seconds(), dayLen)
	return p.q * (hi - off), hi - off
}

// flowDaysAsBefore runs ops on FlowDays and on the oracle and fails at the
// first answer that differs. Each op is two bytes: what to do and when, and
// the value.
func flowDaysAsBefore(t *testing.T, ops []byte) {
	t.Helper()
	interval := time.Minute
	f, o := NewFlowDays(shanghai, interval, 5, 3), newOracleFlowDays(shanghai, interval, 5, 3)
	start := time.Date(2026, 3, 10, 22, 0, 0, 0, shanghai)
	newest := start
	values := []float64{5, 4.999, 12.345, 0, 0.30000000000000004, 1.0 / 3, math.Copysign(0, -1), 1e-9, 2500.125, 123456.789, 7}
	for k := 0; k+1 < len(ops); k += 2 {
		op, vb := ops[k], ops[k+1]
		var at time.Time
		switch op % 8 {
		case 0, 1, 2: // the next value
			at = newest.Add(interval)
		case 3: // off the minute, the millisecond
			at = newest.Add(interval + time.Duration(op>>3)*time.Millisecond + time.Duration(op>>6))
		case 4: // after a gap of up to a day and a half
			at = newest.Add(time.Duration(op>>3) * time.Hour)
		case 5: // late, up to five days back
			at = newest.Add(-time.Duration(op>>3) * 4 * time.Hour)
		case 6: // the newest again
			at = newest
		default: // close the days before a day up to three back
			before := f.DayStart(newest.AddDate(0, 0, -int(op>>3)%4))
			if a, b := f.Close(before), o.Close(before); !slices.Equal(a, b) {
				t.Fatalf("op %d: Close(%v) gave %+v, before %+v", k/2, before, a, b)
			}
			continue
		}
		if at.After(newest) {
			newest = at
		}
		q := values[vb%11]
		if vb >= 88 {
			q = float64(int(vb)*37%5000) / 1000 // litres a second
		}
		d1, r1, ok1 := f.Add(at, q)
		d2, r2, ok2 := o.Add(at, q)
		if d1 != d2 || r1 != r2 || ok1 != ok2 {
			t.Fatalf("op %d: Add(%v, %v) = %v %v %v, before %v %v %v", k/2, at, q, d1, r1, ok1, d2, r2, ok2)
		}
		a1, k1 := f.Account(d1)
		a2, k2 := o.Account(d2)
		if a1 != a2 || k1 != k2 {
			t.Fatalf("op %d: account %+v, before %+v", k/2, a1, a2)
		}
	}
}

// TestFlowDaysAsBefore: packed, the days give the accounts they gave with
// 16-byte values, to the bit, on random sequences of values in order,
// late, repeated, off the grid, after gaps, with closes between.
func TestFlowDaysAsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		ops := make([]byte, 2*(100+rng.IntN(1500)))
		for i := range ops {
			ops[i] = byte(rng.IntN(256))
			if i%2 == 0 && rng.IntN(3) > 0 {
				ops[i] &^= 7 // the next value
			}
		}
		flowDaysAsBefore(t, ops)
	}
}

// FuzzFlowDaysAsBefore: the same on any sequence.
func FuzzFlowDaysAsBefore(f *testing.F) {
	f.Add([]byte{0, 100, 0, 101, 0, 102, 5 | 8, 3, 0, 103, 7 | 8, 0, 6, 4, 3 | 64, 5, 4 | 80, 6, 0, 7})
	f.Fuzz(flowDaysAsBefore)
}
