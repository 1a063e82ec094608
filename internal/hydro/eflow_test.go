package hydro

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		panic(err)
	}
	return l
}()

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestFullDayIsTheTimeWeightedMean(t *testing.T) {
	f := NewFlowDays(shanghai, time.Hour, 5, 7)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	// Hourly values 0:00 … 23:00: 4 m³/s for twelve hours, then 8.
	for h := range 24 {
		q := 4.0
		if h >= 12 {
			q = 8
		}
		f.Add(day.Add(time.Duration(h)*time.Hour), q)
	}
	d, _ := f.Account(day)
	// Joined trapezoidally: 11 h of 4, the 11→12 hour at 6, 11 h of 8, and
	// the last value holds for its hour, 23:00–24:00.
	want := (11*4 + 6 + 11*8 + 8) / 24.0
	if !near(d.MeanFlow, want) || !near(d.Coverage, 1) || !d.Compliant || d.Samples != 24 {
		t.Errorf("account %+v, want mean %.4f, coverage 1", d, want)
	}
}

func TestDayWithGapsHasPartialCoverage(t *testing.T) {
	f := NewFlowDays(shanghai, time.Hour, 5, 7)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	for _, h := range []int{0, 1, 2, 3, 4, 5, 12, 13} { // a 7-hour gap
		f.Add(day.Add(time.Duration(h)*time.Hour), 6)
	}
	d, _ := f.Account(day)
	// Runs 0–5 h (covering 0 … 6 h) and 12–13 h (12 … 14 h): 8 h.
	if !near(d.Coverage, 8.0/24) || !near(d.MeanFlow, 6) || d.Compliant {
		t.Errorf("account %+v: coverage %.4f want %.4f, not compliant", d, d.Coverage, 8.0/24)
	}
}

// TestLocalDayNotUTCDay: 23:00 UTC on 9 March is 07:00 on 10 March in
// Shigatse's official time, so it belongs to the local day of 10 March.
func TestLocalDayNotUTCDay(t *testing.T) {
	f := NewFlowDays(shanghai, time.Hour, 5, 7)
	start, _, _ := f.Add(time.Date(2026, 3, 9, 23, 0, 0, 0, time.UTC), 3)
	if want := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai); !start.Equal(want) {
		t.Errorf("day %s, want %s", start, want)
	}
	start, _, _ = f.Add(time.Date(2026, 3, 9, 15, 59, 0, 0, time.UTC), 3) // 23:59 local on 9 March
	if want := time.Date(2026, 3, 9, 0, 0, 0, 0, shanghai); !start.Equal(want) {
		t.Errorf("day %s, want %s", start, want)
	}
}

func TestLateSampleReopensAClosedDay(t *testing.T) {
	f := NewFlowDays(shanghai, time.Hour, 5, 7)
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	for h := range 24 {
		if h != 6 {
			f.Add(day.Add(time.Duration(h)*time.Hour), 4)
		}
	}
	closed := f.Close(day.AddDate(0, 0, 1))
	if len(closed) != 1 || closed[0].Compliant || !near(closed[0].MeanFlow, 4) {
		t.Fatalf("closed %+v", closed)
	}
	_, reopened, ok := f.Add(day.Add(6*time.Hour), 100) // the missing hour arrives late
	if !reopened || !ok {
		t.Fatal("late sample did not reopen its closed day")
	}
	d, _ := f.Account(day)
	if d.MeanFlow <= 4 || d.Samples != 24 {
		t.Errorf("rewritten account %+v", d)
	}
	if again := f.Close(day.AddDate(0, 0, 1)); len(again) != 0 {
		t.Errorf("closed twice: %+v", again)
	}
	// Older than the days remembered: not accounted.
	if _, _, ok := f.Add(day.AddDate(0, 0, -30), 1); ok {
		t.Error("a sample 30 days old was taken")
	}
}

// refAccount is the account computed from scratch by runs, as domain.md
// §6.3 describes it: the reference for the sums FlowDays keeps.
func refAccount(start time.Time, interval time.Duration, pts map[time.Time]float64) (mean, coverage float64) {
	var ts []time.Time
	for t := range pts {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	dayLen := start.AddDate(0, 0, 1).Sub(start).Seconds()
	var integral, covered float64
	for i := 0; i < len(ts); {
		j := i
		for j+1 < len(ts) && ts[j+1].Sub(ts[j]) <= 3*interval {
			j++
		}
		for k := i; k < j; k++ {
			integral += (pts[ts[k]] + pts[ts[k+1]]) / 2 * ts[k+1].Sub(ts[k]).Seconds()
		}
		hi := math.Min(ts[j].Sub(start).Seconds()+interval.Seconds(), dayLen)
		integral += pts[ts[j]] * (hi - ts[j].Sub(start).Seconds())
		covered += hi - ts[i].Sub(start).Seconds()
		i = j + 1
	}
	if covered == 0 {
		return 0, 0
	}
	return integral / covered, math.Min(covered/dayLen, 1)
}

// Values in order, late, repeated and in gaps: after every one the kept
// sums give the account computed from scratch.
func TestAccountKeptAsValuesArrive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	for run := range 50 {
		interval := 5 * time.Minute
		f := NewFlowDays(shanghai, interval, 5, 7)
		pts := map[time.Time]float64{}
		tm := day
		for range 300 {
			var at time.Time
			switch r := rng.IntN(10); {
			case r < 6: // next in order, now and then after a gap
				tm = tm.Add(interval * time.Duration(1+rng.IntN(2)*rng.IntN(6)))
				at = tm
			case r < 9: // late, into the day so far
				at = day.Add(time.Duration(rng.Int64N(int64(tm.Sub(day)) + 1)))
			default: // again at a time already held
				at = tm
			}
			if !at.Before(day.AddDate(0, 0, 1)) {
				continue
			}
			q := rng.Float64() * 10
			pts[at] = q
			f.Add(at, q)
			d, _ := f.Account(day)
			mean, cov := refAccount(day, interval, pts)
			if math.Abs(d.MeanFlow-mean) > 1e-9*math.Max(1, mean) || math.Abs(d.Coverage-cov) > 1e-9 || d.Samples != len(pts) {
				t.Fatalf("run %d after %d values: account %+v, from scratch mean %v coverage %v", run, len(pts), d, mean, cov)
			}
		}
	}
}

// Values exactly three intervals apart are joined, whatever their fraction
// of a second (the gap is compared in nanoseconds, not float seconds).
func TestThreeIntervalsApartAreJoined(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	for ms := 0; ms < 60000; ms += 7 {
		f := NewFlowDays(shanghai, 5*time.Minute, 5, 7)
		a := day.Add(8*time.Hour + 59*time.Minute + time.Duration(ms)*time.Millisecond)
		f.Add(a, 4)
		f.Add(a.Add(15*time.Minute), 4)
		d, _ := f.Account(day)
		if want := 20 * 60.0 / 86400; !near(d.Coverage, want) {
			t.Fatalf("values at %s and 15 min later: coverage %v s, want 1200 s", a.Format("15:04:05.000"), d.Coverage*86400)
		}
	}
}

// TestCloseSkipsAsTheWalk: Close's shortcut (nothing open before the day
// asked) gives what walking every day gives, over values in any order,
// late days, forgotten days and closes at any day.
// The walk, the reference, also looks every day up afresh: the days
// DayStart and Add remember are only shortcuts.
func TestCloseSkipsAsTheWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, shanghai)
	for trial := range 300 {
		fast := NewFlowDays(shanghai, 10*time.Minute, 5, 3)
		walk := NewFlowDays(shanghai, 10*time.Minute, 5, 3)
		walk.walkClose, walk.noCache = true, true
		for op := range 400 {
			at := start.Add(time.Duration(rng.IntN(10*24*60)) * time.Minute)
			if rng.IntN(4) == 0 {
				a, b := fast.Close(fast.DayStart(at)), walk.Close(walk.DayStart(at))
				if !slices.Equal(a, b) {
					t.Fatalf("trial %d op %d: Close(%v) gave %d days, the walk %d", trial, op, at, len(a), len(b))
				}
				continue
			}
			q := rng.Float64() * 10
			d1, r1, ok1 := fast.Add(at, q)
			d2, r2, ok2 := walk.Add(at, q)
			if d1 != d2 || r1 != r2 || ok1 != ok2 {
				t.Fatalf("trial %d op %d: Add(%v) = %v %v %v, the walk %v %v %v", trial, op, at, d1, r1, ok1, d2, r2, ok2)
			}
			a1, _ := fast.Account(d1)
			a2, _ := walk.Account(d2)
			if a1 != a2 {
				t.Fatalf("trial %d op %d: account %+v, the walk %+v", trial, op, a1, a2)
			}
		}
	}
}

// DayStart remembers the last day it found; across a change of daylight
// saving time, also one that skips midnight, it still gives the local
// midnight of a fresh lookup.
func TestDayStartAcrossDST(t *testing.T) {
	for _, zone := range []string{"America/New_York", "Asia/Beirut", "Asia/Tehran", "Africa/Casablanca", "Asia/Shanghai"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		f := NewFlowDays(loc, 10*time.Minute, 5, 3)
		fresh := NewFlowDays(loc, 10*time.Minute, 5, 3)
		fresh.noCache = true
		for at := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC); at.Year() < 2012; at = at.Add(10 * time.Minute) {
			if got, want := f.DayStart(at), fresh.DayStart(at); got != want {
				t.Fatalf("%s: DayStart(%v) = %v, want %v", zone, at.In(loc), got, want)
			}
		}
	}
}

// TestRemoveTakesAValueOut: a day with a value removed has the account of
// the day that never had it, in the middle, at the end, and once closed
// (then it says the day must be written again).
func TestRemoveTakesAValueOut(t *testing.T) {
	day := time.Date(2026, 3, 10, 0, 0, 0, 0, shanghai)
	fill := func(skip ...int) *FlowDays {
		f := NewFlowDays(shanghai, time.Hour, 5, 7)
		for h := range 24 {
			if !slices.Contains(skip, h) {
				f.Add(day.Add(time.Duration(h)*time.Hour), 4+float64(h%5))
			}
		}
		return f
	}
	for _, h := range []int{12, 23, 0} {
		f := fill()
		if _, reopened, removed := f.Remove(day.Add(time.Duration(h) * time.Hour)); !removed || reopened {
			t.Fatalf("remove %d h: removed %v, reopened %v", h, removed, reopened)
		}
		got, _ := f.Account(day)
		want, _ := fill(h).Account(day)
		if !near(got.MeanFlow, want.MeanFlow) || !near(got.Coverage, want.Coverage) || got.Samples != want.Samples {
			t.Errorf("remove %d h: account %+v, want %+v", h, got, want)
		}
		// Values after a removal still come in order.
		f.Add(day.Add(24*time.Hour-time.Minute), 6)
	}
	f := fill()
	f.Close(day.AddDate(0, 0, 1))
	if _, reopened, removed := f.Remove(day.Add(5 * time.Hour)); !removed || !reopened {
		t.Errorf("remove from a closed day: removed %v, reopened %v", removed, reopened)
	}
	if _, _, removed := f.Remove(day.Add(5*time.Hour + time.Minute)); removed {
		t.Error("removed a value that is not there")
	}
}
