package hydro

import (
	"math"
	"sort"
	"time"
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

type flowPoint struct {
	t time.Time
	q float64
}

type flowDay struct {
	pts    []flowPoint
	closed bool
}

// FlowDays keeps the recent days of one station's flow and computes their
// ecological-flow accounts (domain.md §6.3): the local day 00:00–24:00, a
// time-weighted mean in which consecutive values are joined trapezoidally
// and the last value of a run holds for one reporting interval, and the
// coverage of the day. Values more than three intervals apart are not
// joined: the time between them is not covered.
type FlowDays struct {
	loc      *time.Location
	interval time.Duration
	target   float64
	keep     int
	days     map[time.Time]*flowDay
}

// NewFlowDays accounts days in loc for a station reporting every interval
// against target; it remembers keepDays days back from the newest.
func NewFlowDays(loc *time.Location, interval time.Duration, target float64, keepDays int) *FlowDays {
	return &FlowDays{loc: loc, interval: interval, target: target, keep: keepDays, days: map[time.Time]*flowDay{}}
}

// DayStart is the local midnight starting the day of t.
func (f *FlowDays) DayStart(t time.Time) time.Time {
	l := t.In(f.loc)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, f.loc)
}

// Add records flow q at t. It returns the start of t's day and whether
// that day was already closed (its account must be written again), and
// ok = false when the day is older than the days remembered.
func (f *FlowDays) Add(t time.Time, q float64) (day time.Time, reopened, ok bool) {
	day = f.DayStart(t)
	if newest := f.newest(); !newest.IsZero() && day.Before(newest.AddDate(0, 0, -f.keep)) {
		return day, false, false
	}
	d := f.days[day]
	if d == nil {
		d = &flowDay{}
		f.days[day] = d
	}
	i := sort.Search(len(d.pts), func(i int) bool { return !d.pts[i].t.Before(t) })
	if i < len(d.pts) && d.pts[i].t.Equal(t) {
		d.pts[i].q = q
	} else {
		d.pts = append(d.pts, flowPoint{})
		copy(d.pts[i+1:], d.pts[i:])
		d.pts[i] = flowPoint{t: t, q: q}
	}
	f.forget()
	return day, d.closed, true
}

func (f *FlowDays) newest() time.Time {
	var n time.Time
	for d := range f.days {
		if d.After(n) {
			n = d
		}
	}
	return n
}

func (f *FlowDays) forget() {
	cut := f.newest().AddDate(0, 0, -f.keep)
	for d := range f.days {
		if d.Before(cut) {
			delete(f.days, d)
		}
	}
}

// Close marks every open day that starts before `before` closed and
// returns their accounts, oldest first.
func (f *FlowDays) Close(before time.Time) []Day {
	var out []Day
	for start, d := range f.days {
		if !d.closed && start.Before(before) {
			d.closed = true
			out = append(out, f.account(start, d))
		}
	}
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
	end := start.AddDate(0, 0, 1)
	dayLen := end.Sub(start).Seconds()
	maxGap := 3 * f.interval
	var integral, covered float64
	for i := 0; i < len(d.pts); {
		// A run of values no more than maxGap apart.
		j := i
		for j+1 < len(d.pts) && d.pts[j+1].t.Sub(d.pts[j].t) <= maxGap {
			j++
		}
		lo := d.pts[i].t.Sub(start).Seconds()
		hi := math.Min(d.pts[j].t.Sub(start).Seconds()+f.interval.Seconds(), dayLen)
		integral += d.pts[j].q * (hi - d.pts[j].t.Sub(start).Seconds())
		for k := i; k < j; k++ {
			integral += (d.pts[k].q + d.pts[k+1].q) / 2 * d.pts[k+1].t.Sub(d.pts[k].t).Seconds()
		}
		covered += hi - lo
		i = j + 1
	}
	day := Day{Start: start, Target: f.target, Samples: len(d.pts)}
	if covered > 0 {
		day.MeanFlow = integral / covered
		day.Coverage = math.Min(covered/dayLen, 1)
	}
	day.Compliant = day.Coverage >= ValidCoverage && day.MeanFlow >= f.target
	return day
}
