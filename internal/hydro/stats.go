package hydro

import (
	"math"
	"time"
)

// Stats is the summary of one parameter of one station over a period (an
// hour, a local day, a calendar month): the statistics rivermon writes to
// `stats_hourly`, `stats_daily` and `stats_monthly` (CONTRACT §6).
type Stats struct {
	Mean, Min, Max float64 // over the values used; meaningless when Count is 0
	Count          int     // values used: QC flag 1 (pass) or 2 (not evaluated)
	Flagged        int     // values left out: QC flag 3 (suspect) or 4 (fail)
	Expected       float64 // values the period should hold: its length over the reporting interval
	Completeness   float64 // Count / Expected, at most 1
	// Covered is the time the mean stands for, in seconds: for a
	// time-weighted mean, the time covered by runs of values (as in the
	// ecological-flow day, FlowDays); for an arithmetic one, Count
	// intervals. A month is made of its days by these weights.
	Covered float64
}

// Value is one stored value of a parameter with its QC flag.
type Value struct {
	T    time.Time
	V    float64
	Flag int
}

// Used says whether a value with flag counts in statistics and
// ecological-flow days: it passed QC (1) or could not be judged (2). A
// value stored without a flag (0) has not been judged either.
func Used(flag int) bool { return flag <= 2 }

// Summarize computes the statistics of values (in time order, every one
// inside [start, end)) for a station reporting every interval. With
// timeWeighted (stage and discharge) the mean is time-weighted as the
// ecological-flow day's is: consecutive values no more than three
// intervals apart are joined trapezoidally, and the last value of a run
// holds for one interval, not past end; otherwise it is the arithmetic
// mean. Values flagged 3 or 4 are left out, and so leave a gap.
func Summarize(values []Value, start, end time.Time, interval time.Duration, timeWeighted bool) Stats {
	length := end.Sub(start).Seconds()
	s := Stats{Expected: length / interval.Seconds(), Min: math.Inf(1), Max: math.Inf(-1)}
	var sum, integral, covered float64
	var prev *Value
	for i := range values {
		v := &values[i]
		if !Used(v.Flag) {
			s.Flagged++
			continue
		}
		s.Count++
		sum += v.V
		s.Min = math.Min(s.Min, v.V)
		s.Max = math.Max(s.Max, v.V)
		if prev != nil {
			in, c := pairOver(prev, v, start, interval)
			integral += in
			covered += c
		}
		prev = v
	}
	if prev != nil {
		in, c := tailOver(prev, start, interval, length)
		integral += in
		covered += c
	}
	switch {
	case s.Count == 0:
		s.Min, s.Max = 0, 0
	case timeWeighted && covered > 0:
		s.Mean, s.Covered = integral/covered, covered
	default:
		s.Mean, s.Covered = sum/float64(s.Count), float64(s.Count)*interval.Seconds()
	}
	if s.Expected > 0 {
		s.Completeness = math.Min(float64(s.Count)/s.Expected, 1)
	}
	return s
}

// pairOver and tailOver are FlowDays.pair and FlowDays.tail over a period
// starting at start, in the same arithmetic, so that a day's mean flow in
// `stats_daily` is the one in `eflow_daily` to the last bit.
func pairOver(a, b *Value, start time.Time, interval time.Duration) (integral, covered float64) {
	if gap := b.T.Sub(a.T); gap <= 3*interval {
		return (a.V + b.V) / 2 * gap.Seconds(), gap.Seconds()
	}
	return tailOver(a, start, interval, math.Inf(1))
}

func tailOver(a *Value, start time.Time, interval time.Duration, length float64) (integral, covered float64) {
	off := a.T.Sub(start).Seconds()
	hi := math.Min(off+interval.Seconds(), length)
	return a.V * (hi - off), hi - off
}

// Combine makes the statistics of a period from those of its parts (a
// month from its days): counts add up; the mean is the parts' means
// weighted by the time each stands for (Covered); expected is given, as
// the parts with no data at all are not among them.
func Combine(parts []Stats, expected float64) Stats {
	s := Stats{Expected: expected, Min: math.Inf(1), Max: math.Inf(-1)}
	var weighted float64
	for _, p := range parts {
		s.Flagged += p.Flagged
		if p.Count == 0 {
			continue
		}
		s.Count += p.Count
		s.Min = math.Min(s.Min, p.Min)
		s.Max = math.Max(s.Max, p.Max)
		weighted += p.Mean * p.Covered
		s.Covered += p.Covered
	}
	switch {
	case s.Count == 0:
		s.Min, s.Max = 0, 0
	case s.Covered > 0:
		s.Mean = weighted / s.Covered
	}
	if s.Expected > 0 {
		s.Completeness = math.Min(float64(s.Count)/s.Expected, 1)
	}
	return s
}
