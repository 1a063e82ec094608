package ingest

import (
	"slices"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// Alerts see a value once its QC flag is final. The spike test of a value
// needs the next value (quality.Series), so a value of a code with a spike
// test is held back until the next value of that code arrives, which
// completes its flag, or until two reporting intervals have passed without
// one (its spike flag then stays "not evaluated"). A spike is thereby
// flagged 4 before any rule sees it, and a failed value never moves a
// threshold or rate rule (issue: a spiking gauge paged WaterLevelRisingFast).

// heldValue is a value whose QC flag waits for the next value.
type heldValue struct {
	t        time.Time
	received time.Time // wall clock of its message
	v        reading.ObservedValue
}

// spiked tells whether code's flag at t waits for the next value; rated
// flow follows the stage it comes from.
func (s *station) spiked(code string, t time.Time) bool {
	if code == reading.FieldFlowRated {
		code = "level_m"
	}
	ser := s.series[code]
	return ser != nil && ser.Spiked(t)
}

// observe appends to out what alerts may see now of the assessed sample:
// its values whose flags are final, and the held values of earlier samples
// that this one completes (before it, at their own times).
func (s *station) observe(out []reading.Observed, a *assessed, received time.Time) []reading.Observed {
	smp := a.observed(s.reg.ID)
	smp.Received = received
	for _, r := range a.revisions {
		for _, c := range r.codes {
			if k := s.heldIndex(c); k >= 0 && s.held[k].t.Equal(r.t) {
				s.held[k].v.Flag = r.flag
			}
		}
	}
	var released []heldValue
	now := smp.Values[:0]
	for _, v := range smp.Values {
		if !s.spiked(v.Code, smp.Time) {
			now = append(now, v)
			continue
		}
		switch k := s.heldIndex(v.Code); {
		case k < 0:
			s.held = append(s.held, heldValue{smp.Time, received, v})
		case smp.Time.After(s.held[k].t):
			released = append(released, s.held[k])
			s.held[k] = heldValue{smp.Time, received, v}
		default:
			// Older than the value held: a late value, tested against its
			// stored neighbours, so its flag is final now.
			now = append(now, v)
		}
	}
	smp.Values = now
	out = s.appendReleased(out, released)
	// Even with every value held, the sample says the station was heard.
	return append(out, smp)
}

func (s *station) heldIndex(code string) int {
	for k := range s.held {
		if s.held[k].v.Code == code {
			return k
		}
	}
	return -1
}

// releaseStale appends the held values that waited two reporting
// intervals (wall clock) for a next value that did not come; every held
// value when now is zero (shutdown).
func (s *station) releaseStale(out []reading.Observed, now time.Time) []reading.Observed {
	wait := 2 * time.Duration(s.reg.Interval)
	var released []heldValue
	s.held = slices.DeleteFunc(s.held, func(h heldValue) bool {
		if !now.IsZero() && now.Sub(h.received) < wait {
			return false
		}
		released = append(released, h)
		return true
	})
	return s.appendReleased(out, released)
}

// appendReleased appends released values as samples, one per sample time,
// oldest first. Their Received is their message's, so that releasing them
// is not taken for a sign of life.
func (s *station) appendReleased(out []reading.Observed, released []heldValue) []reading.Observed {
	slices.SortStableFunc(released, func(a, b heldValue) int { return a.t.Compare(b.t) })
	for i, h := range released {
		if i > 0 && h.t.Equal(released[i-1].t) {
			last := &out[len(out)-1]
			last.Values = append(last.Values, h.v)
			continue
		}
		out = append(out, reading.Observed{Station: s.reg.ID, Time: h.t, Received: h.received, Values: []reading.ObservedValue{h.v}})
	}
	return out
}
