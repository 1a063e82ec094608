package alerts

import "time"

// step moves a threshold, rate or class instance by one value.
func (e *Evaluator) step(in *instance, t time.Time, v float64, wall time.Time, notify bool) *Transition {
	r := in.rule
	var active, cleared bool
	th := in.limit
	switch {
	case r.Above != nil:
		active, cleared = v > th, v < th-r.Clear
	case r.Below != nil:
		active, cleared = v < th, v > th+r.Clear
	case r.WQClassAbove != nil:
		active, cleared = v > th, v <= th-r.Clear
	case r.RateAbove != nil || r.RateBelow != nil:
		rate, ok := in.rate(t, v, time.Duration(r.Window))
		if !ok {
			return nil
		}
		v = rate
		if r.RateAbove != nil {
			active, cleared = rate > th, rate < th-r.Clear
		} else {
			active, cleared = rate < th, rate > th+r.Clear
		}
	}
	in.LastValue, in.Threshold = v, th
	if r.Clear == 0 {
		cleared = !active
	}
	switch in.State {
	case StateInactive, StateResolved:
		if !active {
			return nil
		}
		in.State, in.ActiveAt = StatePending, t
		fallthrough
	case StatePending:
		if !active {
			in.State = StateInactive // a pending alert that clears is dropped, never sent
			return nil
		}
		if t.Sub(in.ActiveAt) >= time.Duration(r.For) {
			return e.fire(in, t, wall, notify)
		}
	case StateFiring:
		if notify {
			in.Evidence = wall
		}
		if cleared {
			return e.resolve(in, t, wall, v, notify)
		}
	}
	return nil
}

// rate returns the change per hour over the window ending at t, once the
// values span at least half the window.
func (in *instance) rate(t time.Time, v float64, window time.Duration) (float64, bool) {
	in.window = append(in.window, point{t, v})
	n := 0
	for n < len(in.window)-1 && t.Sub(in.window[n].t) > window {
		n++
	}
	in.window = in.window[n:]
	first := in.window[0]
	span := t.Sub(first.t)
	if span < window/2 || span <= 0 {
		return 0, false
	}
	return (v - first.v) / span.Hours(), true
}

// qcFail fires when a value has been flagged fail continuously for the
// rule's duration, and resolves at the first value that does not fail.
func (e *Evaluator) qcFail(in *instance, t, wall time.Time, val Value, notify bool) *Transition {
	in.LastValue, in.Threshold = float64(val.Flag), float64(qcFail)
	if val.Flag != qcFail {
		in.failSince = time.Time{}
		switch in.State {
		case StateFiring:
			return e.resolve(in, t, wall, float64(val.Flag), notify)
		case StatePending:
			in.State = StateInactive // a pending alert that clears is dropped, never sent
		}
		// A resolved alert stays resolved, as a threshold rule's does: it
		// is still posted to Alertmanager resolved (Active), and one that
		// fired and resolved before it was posted is still posted firing
		// first (Unposted).
		return nil
	}
	if in.failSince.IsZero() {
		in.failSince, in.ActiveAt, in.State = t, t, StatePending
	}
	if in.State != StateFiring && t.Sub(in.failSince) >= time.Duration(in.rule.QCFailFor) {
		return e.fire(in, t, wall, notify)
	}
	if in.State == StateFiring && notify {
		in.Evidence = wall
	}
	return nil
}

// fire moves an instance to firing at sample time t.
func (e *Evaluator) fire(in *instance, t, wall time.Time, notify bool) *Transition {
	in.State, in.StartsAt, in.EndsAt, in.Resolved, in.Announced, in.Posted = StateFiring, t, time.Time{}, time.Time{}, notify, time.Time{}
	if notify {
		in.Evidence = wall
	}
	return e.transition(in, StateFiring, t, notify)
}

// resolve moves a firing instance to resolved at t: the sample time of the
// change, never before the alert fired (Alertmanager refuses an endsAt
// before startsAt).
func (e *Evaluator) resolve(in *instance, t, wall time.Time, v float64, notify bool) *Transition {
	if t.Before(in.StartsAt) {
		t = in.StartsAt
	}
	in.State, in.EndsAt, in.Resolved, in.LastValue = StateResolved, t, wall, v
	return e.transition(in, StateResolved, t, notify && in.Announced)
}

func (e *Evaluator) transition(in *instance, state string, t time.Time, notify bool) *Transition {
	return &Transition{Alert: e.alertOf(in, state, time.Time{}), State: state, Value: in.LastValue, Thresh: in.Threshold, Notify: notify, At: t}
}

// Tick checks the wall-clock rules (silent_for) at now.
func (e *Evaluator) Tick(now time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	for _, in := range e.silent {
		last := e.heard[in.station.ID]
		if last.Before(e.started) {
			last = e.started
		}
		silent := now.Sub(last)
		in.LastValue, in.Threshold = silent.Seconds(), time.Duration(in.rule.SilentFor).Seconds()
		switch {
		case silent > time.Duration(in.rule.SilentFor) && in.State != StateFiring:
			in.ActiveAt = last
			out = append(out, *e.fire(in, now, now, true))
		case silent > time.Duration(in.rule.SilentFor):
			in.Evidence = now
		}
	}
	return out
}
