package hydro

import (
	"math"
	"sort"
	"time"

	"github.com/rivermon/rivermon/internal/packed"
)

// ValidCoverage is the share of a day that must hold data for the day to
// count (domain.md §6.3: 18 of 24 hours); a day with less is reported with
// its coverage and is never compliant.
const ValidCoverage = 0.75

// Day is the ecological-flow account of one local day at one station.
type Day struct {
	Start     time.Time // local midnight
	MeanFlow  float64   // time-weighted mean, m³/s
	Target    float64
	Coverage  float64 // share of the day with data, 0–1
	Compliant bool    // Coverage ≥ ValidCoverage and MeanFlow ≥ Target
	Samples   int
}

// flowDay holds a day's values in time order: their times as offsets from
// the start of the day and the values, packed (package packed), so that a
// station reporting every minute in litres a second holds a day in 6 KB
// rather than 23 KB (16 bytes a value). The sums over consecutive pairs of
// values are kept as values arrive at the end of the day, so that the
// account of a day being filled in order costs the same at its last value
// as at its first; a value arriving in the middle makes the next account
// add them up again.
type flowDay struct {
	offs              packed.Ints   // nanoseconds from the start of the day
	qs                packed.Floats // the value at each
	lastOff           int64         // the last of offs,
	lastQ             float64       // and of qs, as they hold it
	closed            bool
	summed            bool    // integral and covered hold the pairs of values
	integral, covered float64 // over the pairs of values k, k+1, left to right
}

// FlowDays keeps the recent days of one station's flow and computes their
// ecological-flow accounts (domain.md §6.3): the local day 00:00–24:00, a
// time-weighted mean in which consecutive values are joined trapezoidally
// and the last value of a run holds for one reporting interval, and the
// coverage of the day. Values more than three intervals apart are not
// joined: the time between them is not covered.
type FlowDays struct {
	loc       *time.Location
	interval  time.Duration
	target    float64
	keep      int
	days      map[time.Time]*flowDay
	newestDay time.Time // start of the newest day held
	cutoff    time.Time // days before it are not kept: newestDay less keep days
	// Values come in runs of one day: the day DayStart found last, as Unix
	// nanoseconds [dayFrom, dayTo) and its start, and the day Add found
	// last, so that a run costs neither the calendar nor the map.
	dayFrom, dayTo int64
	dayStart       time.Time
	lastStart      time.Time
	last           *flowDay
	// oldestOpen is the start of the oldest day not closed (zero when every
	// day held is closed): Close runs for every flow value, and nearly
	// always has nothing to close.
	oldestOpen time.Time

	walkClose bool // tests: Close always walks the days
	noCache   bool // tests: DayStart and Add look every day up
}

// NewFlowDays accounts days in loc for a station reporting every interval
// against target; it remembers keepDays days back from the newest.
func NewFlowDays(loc *time.Location, interval time.Duration, target float64, keepDays int) *FlowDays {
	return &FlowDays{loc: loc, interval: interval, target: target, keep: keepDays, days: map[time.Time]*flowDay{}}
}

// DayStart is the local midnight starting the day of t.
func (f *FlowDays) DayStart(t time.Time) time.Time {
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
func (f *FlowDays) Add(t time.Time, q float64) (day time.Time, reopened, ok bool) {
	day = f.DayStart(t)
	if !f.newestDay.IsZero() && day.Before(f.cutoff) {
		return day, false, false
	}
	d := f.last
	if d == nil || day != f.lastStart || f.noCache {
		d = f.days[day]
		if d == nil {
			d = &flowDay{}
			// A day's values at the interval (a day made longer by a change
			// of daylight saving time grows its arrays once more).
			n := int(min(24*time.Hour/max(f.interval, time.Second), 1<<20)) + 1
			d.offs.SetHint(n)
			d.offs.SetStep(int64(f.interval))
			d.qs.SetHint(n)
			f.days[day] = d
			if f.oldestOpen.IsZero() || day.Before(f.oldestOpen) {
				f.oldestOpen = day
			}
		}
		f.lastStart, f.last = day, d
	}
	off := int64(t.Sub(day))
	if n := d.offs.Len(); n == 0 || d.lastOff < off {
		// In order: one more pair.
		d.offs.Append(off)
		d.qs.Append(q)
		if q == 0 {
			q = 0 // as the column holds it, without the sign of a zero
		}
		if d.summed && n > 0 {
			d.add(f.pair(d.lastOff, d.lastQ, off, q))
		}
		d.lastOff, d.lastQ = off, q
	} else {
		i := sort.Search(n, func(i int) bool { return d.offs.At(i) >= off })
		if i < n && d.offs.At(i) == off {
			d.qs.Set(i, q)
			if i == n-1 {
				d.lastQ = d.qs.At(i)
			}
		} else {
			d.offs.Insert(i, off)
			d.qs.Insert(i, q)
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

// Remove takes out the value at t, one that QC has since flagged suspect or
// failed (a spike is seen only when the next value comes). It returns the
// start of t's day, whether that day was closed (its account must be
// written again), and whether there was a value at t.
func (f *FlowDays) Remove(t time.Time) (day time.Time, reopened, removed bool) {
	day = f.DayStart(t)
	d := f.days[day]
	if d == nil {
		return day, false, false
	}
	off := int64(t.Sub(day))
	n := d.offs.Len()
	i := sort.Search(n, func(i int) bool { return d.offs.At(i) >= off })
	if i == n || d.offs.At(i) != off {
		return day, false, false
	}
	// The columns have no deletion: they are written again without the
	// value (rare: a revision to suspect or failed).
	var offs packed.Ints
	var qs packed.Floats
	offs.SetHint(n)
	offs.SetStep(int64(f.interval))
	qs.SetHint(n)
	for k := range n {
		if k != i {
			offs.Append(d.offs.At(k))
			qs.Append(d.qs.At(k))
		}
	}
	d.offs, d.qs = offs, qs
	d.lastOff, d.lastQ = 0, 0
	if n > 1 {
		d.lastOff, d.lastQ = offs.At(n-2), qs.At(n-2)
	}
	d.summed = false
	return day, d.closed, true
}

func (f *FlowDays) forget() {
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

func (f *FlowDays) findOldestOpen() {
	f.oldestOpen = time.Time{}
	for start, d := range f.days {
		if !d.closed && (f.oldestOpen.IsZero() || start.Before(f.oldestOpen)) {
			f.oldestOpen = start
		}
	}
}

// Close marks every open day that starts before `before` closed and
// returns their accounts, oldest first.
func (f *FlowDays) Close(before time.Time) []Day {
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
func (f *FlowDays) Account(start time.Time) (Day, bool) {
	d := f.days[start]
	if d == nil {
		return Day{}, false
	}
	return f.account(start, d), true
}

func (f *FlowDays) account(start time.Time, d *flowDay) Day {
	dayLen := start.AddDate(0, 0, 1).Sub(start).Seconds()
	n := d.offs.Len()
	if !d.summed {
		d.integral, d.covered, d.summed = 0, 0, true
		for k := 0; k+1 < n; k++ {
			d.add(f.pair(d.offs.At(k), d.qs.At(k), d.offs.At(k+1), d.qs.At(k+1)))
		}
	}
	day := Day{Start: start, Target: f.target, Samples: n}
	if n == 0 {
		return day
	}
	// The last value holds for one interval, within the day.
	integral, covered := d.integral, d.covered
	ti, ci := f.tail(time.Duration(d.lastOff), d.lastQ, dayLen)
	integral += ti
	covered += ci
	if covered > 0 {
		day.MeanFlow = integral / covered
		day.Coverage = math.Min(covered/dayLen, 1)
	}
	day.Compliant = day.Coverage >= ValidCoverage && day.MeanFlow >= f.target
	return day
}

// pair is what a pair of consecutive values, q1 at off1 and q2 at off2,
// adds to the day's sums: joined trapezoidally when no more than three
// intervals apart, otherwise the first ends a run and holds for one
// interval (which ends before the second, so within the day).
func (f *FlowDays) pair(off1 int64, q1 float64, off2 int64, q2 float64) (integral, covered float64) {
	if gap := time.Duration(off2 - off1); gap <= 3*f.interval { // exact, in nanoseconds
		return (q1 + q2) / 2 * gap.Seconds(), gap.Seconds()
	}
	return f.tail(time.Duration(off1), q1, math.Inf(1))
}

// add adds a pair's integral and covered time to the day's sums.
func (d *flowDay) add(integral, covered float64) {
	d.integral += integral
	d.covered += covered
}

// tail is what a value q at off ending a run adds: it holds for one
// interval, but not past the end of the day (dayLen seconds).
func (f *FlowDays) tail(at time.Duration, q, dayLen float64) (integral, covered float64) {
	off := at.Seconds()
	hi := math.Min(off+f.interval.Seconds(), dayLen)
	return q * (hi - off), hi - off
}
