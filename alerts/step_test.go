package alerts

import (
	"maps"
	"testing"
	"time"
)

func TestForAndHysteresis(t *testing.T) {
	e := newEval(t, 0)
	steps := []struct {
		m     int
		v     float64
		state string // transition expected at this step, "" none
	}{
		{0, 2.9, ""},
		{5, 3.1, ""},  // pending from 00:05
		{10, 3.0, ""}, // back at the threshold (not above): pending dropped, never sent
		{15, 3.2, ""}, // pending again from 00:15
		{20, 3.3, ""},
		{25, 3.2, StateFiring}, // 10 min above
		{30, 2.97, ""},         // below the threshold but not by clear (0.05): still firing
		{35, 2.94, StateResolved},
	}
	for _, s := range steps {
		tr := only(t, at(e, "gauge", s.m, "level_m", s.v), "LevelCritical")
		switch {
		case s.state == "" && len(tr) != 0:
			t.Fatalf("minute %d, level %v: unexpected %s", s.m, s.v, tr[0].State)
		case s.state != "" && (len(tr) != 1 || tr[0].State != s.state):
			t.Fatalf("minute %d, level %v: transitions %+v, want %s", s.m, s.v, tr, s.state)
		}
		if s.state == StateFiring {
			a := tr[0].Alert
			want := map[string]string{"alertname": "LevelCritical", "station": "gauge", "river": "nianchu", "severity": "critical", "param": "level_m", "team": "hydro"}
			for k, v := range want {
				if a.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
				}
			}
			if a.Annotations["summary"] != "Gauge: level 3.2 m above 3 m" || a.Annotations["value"] != "3.2" || a.Annotations["threshold"] != "3" {
				t.Errorf("annotations %v", a.Annotations)
			}
			if !a.StartsAt.Equal(t0.Add(25*time.Minute)) || a.Fingerprint == "" {
				t.Errorf("startsAt %s fingerprint %q", a.StartsAt, a.Fingerprint)
			}
		}
		if s.state == StateResolved && !tr[0].Alert.EndsAt.Equal(t0.Add(35*time.Minute)) {
			t.Errorf("endsAt %s", tr[0].Alert.EndsAt)
		}
	}
}

func TestRateWindow(t *testing.T) {
	e := newEval(t, 0)
	var fired bool
	// Rising 0.1 m per 5 minutes = 1.2 m/h, above 0.5 m/h over 30 min.
	for m := 0; m <= 30; m += 5 {
		tr := only(t, at(e, "gauge", m, "level_m", 1+float64(m)/50), "RisingFast")
		if len(tr) == 1 && tr[0].State == StateFiring {
			if m < 15 {
				t.Fatalf("fired at minute %d before half the window", m)
			}
			fired = true
		}
	}
	if !fired {
		t.Fatal("a 1.2 m/h rise did not fire")
	}
	// Flat for 30 minutes: the rate falls to 0 and it resolves.
	var resolved bool
	for m := 35; m <= 70; m += 5 {
		if tr := only(t, at(e, "gauge", m, "level_m", 1.6), "RisingFast"); len(tr) == 1 && tr[0].State == StateResolved {
			resolved = true
		}
	}
	if !resolved {
		t.Fatal("did not resolve once level")
	}
}

func TestSilenceByWallClockDoesNotResolveLevelAlerts(t *testing.T) {
	e := newEval(t, 0)
	at(e, "gauge", 0, "level_m", 3.5)
	at(e, "gauge", 10, "level_m", 3.5) // LevelCritical fires
	// levelonly has sent nothing since start-up (t0): silent after 30 min.
	tr := only(t, e.Tick(t0.Add(31*time.Minute)), "Silent")
	if len(tr) != 1 || tr[0].Alert.Labels["station"] != "levelonly" || tr[0].Alert.Annotations["summary"] != "Level only (levelonly): no data for 31m0s" {
		t.Fatalf("silence since start-up: %+v", tr)
	}
	if tr := only(t, e.Tick(t0.Add(39*time.Minute)), "Silent"); len(tr) != 0 {
		t.Fatalf("gauge silent too early (29 min): %+v", tr)
	}
	tr = e.Tick(t0.Add(41 * time.Minute))
	if s := only(t, tr, "Silent"); len(s) != 1 || s[0].State != StateFiring || s[0].Alert.Labels["station"] != "gauge" {
		t.Fatalf("silence of gauge not detected: %+v", s)
	}
	if len(only(t, tr, "LevelCritical")) != 0 {
		t.Fatal("silence moved the level alert")
	}
	firing := 0
	for _, a := range e.Firing() {
		if a.Labels["alertname"] == "LevelCritical" {
			firing++
		}
	}
	if firing != 1 {
		t.Error("the level alert did not stay firing through the silence")
	}
	if got := e.SilentStations(); !maps.Equal(got, map[string]bool{"gauge": true, "levelonly": true}) {
		t.Errorf("silent stations %v, want gauge and levelonly", got)
	}
	if s := only(t, at(e, "gauge", 42, "level_m", 3.5), "Silent"); len(s) != 1 || s[0].State != StateResolved {
		t.Fatalf("a new sample did not resolve the silence: %+v", s)
	}
	if got := e.SilentStations(); !maps.Equal(got, map[string]bool{"levelonly": true}) {
		t.Errorf("silent stations %v, want levelonly", got)
	}
}

// Silence is time since a station's last message arrived: a backlog of old
// samples is the station talking, and the silence it ends is resolved when
// the backlog arrived, never before the alert fired.
func TestSilenceByArrival(t *testing.T) {
	e := newEval(t, time.Hour)
	wall := t0.Add(2 * time.Hour)
	old := func(m int, received time.Time) []Transition {
		ts := t0.Add(time.Duration(m) * time.Minute) // sample time, long before arrival
		return only(t, e.Observe(Sample{Station: "gauge", Time: ts, Received: received, Values: []Value{{Code: "level_m", V: 1, Flag: 1}}}, received), "Silent")
	}
	// A replay of two hours of samples, all arriving now: not silent.
	for m := 0; m < 120; m += 5 {
		old(m, wall.Add(time.Duration(m)*time.Second))
	}
	if tr := only(t, e.Tick(wall.Add(10*time.Minute)), "Silent"); len(tr) != 1 || tr[0].Alert.Labels["station"] != "levelonly" {
		t.Fatalf("after a replay, only the station that sent nothing is silent: %+v", tr)
	}
	// gauge falls silent; its store-and-forward backlog, stamped before the
	// alert fired, ends the silence when it arrives.
	fired := wall.Add(40 * time.Minute)
	tr := only(t, e.Tick(fired), "Silent")
	if len(tr) != 1 || tr[0].Alert.Labels["station"] != "gauge" || !tr[0].Alert.StartsAt.Equal(fired) {
		t.Fatalf("silence of gauge: %+v", tr)
	}
	e.Active(fired, time.Hour) // announced
	arrived := fired.Add(7 * time.Minute)
	tr = old(125, arrived)
	if len(tr) != 1 || tr[0].State != StateResolved || !tr[0].Notify {
		t.Fatalf("the backlog did not resolve the silence: %+v", tr)
	}
	if a := tr[0].Alert; !a.EndsAt.Equal(arrived) || a.EndsAt.Before(a.StartsAt) {
		t.Fatalf("resolved silence: startsAt %v endsAt %v, want endsAt %v", a.StartsAt, a.EndsAt, arrived)
	}
	for _, a := range e.Active(arrived, time.Hour) {
		if a.EndsAt.Before(a.StartsAt) {
			t.Errorf("%s at %s: endsAt %v before startsAt %v", a.Labels["alertname"], a.Labels["station"], a.EndsAt, a.StartsAt)
		}
	}
	// A message without values (a status saying it is online) is a sign of
	// life too.
	e.Tick(arrived.Add(31 * time.Minute))
	tr = only(t, e.Observe(Sample{Station: "gauge", Received: arrived.Add(32 * time.Minute)}, arrived.Add(32*time.Minute)), "Silent")
	if len(tr) != 1 || tr[0].State != StateResolved {
		t.Fatalf("a sign of life did not resolve the silence: %+v", tr)
	}
}

// A threshold alert resolved by a sample stamped before it fired (a late
// sample cannot do it, but a clock that jumps back may) ends when it fired.
func TestResolveNeverBeforeStart(t *testing.T) {
	e := newEval(t, 0)
	in := e.ordered[0]
	in.State, in.StartsAt = StateFiring, t0.Add(time.Hour)
	e.resolve(in, t0, t0.Add(2*time.Hour), 0, true)
	if !in.EndsAt.Equal(in.StartsAt) {
		t.Fatalf("endsAt %v, startsAt %v", in.EndsAt, in.StartsAt)
	}
}

func TestSensorFault(t *testing.T) {
	e := newEval(t, 0)
	obs := func(m int, flag int) []Transition {
		ts := t0.Add(time.Duration(m) * time.Minute)
		return only(t, e.Observe(Sample{Station: "gauge", Time: ts, Values: []Value{{Code: "water_temp_c", V: 0, Flag: flag}}}, ts), "SensorFault")
	}
	for m := 0; m < 30; m += 5 {
		if tr := obs(m, 4); len(tr) != 0 {
			t.Fatalf("minute %d: %+v", m, tr)
		}
	}
	if tr := obs(30, 4); len(tr) != 1 || tr[0].State != StateFiring || tr[0].Alert.Labels["param"] != "water_temp_c" {
		t.Fatalf("30 min of fail: %+v", tr)
	}
	if tr := obs(35, 1); len(tr) != 1 || tr[0].State != StateResolved {
		t.Fatalf("passing again: %+v", tr)
	}
	// More values that pass leave it resolved, as a threshold alert: it is
	// still posted to Alertmanager resolved, and had it fired and resolved
	// within one delivery, it would still be posted firing first. (It went
	// back to inactive, and a sensor fault replayed at full speed never
	// reached Alertmanager.)
	if tr := obs(40, 1); len(tr) != 0 {
		t.Fatalf("passing on: %+v", tr)
	}
	sensorFault := func(as []Alert) []Alert {
		var out []Alert
		for _, a := range as {
			if a.Labels["alertname"] == "SensorFault" {
				out = append(out, a)
			}
		}
		return out
	}
	if as := sensorFault(e.Active(t0.Add(40*time.Minute), time.Minute)); len(as) != 1 || as[0].Status != StateResolved {
		t.Errorf("active after it resolved: %+v, want it resolved", as)
	}
	var fired []Transition
	for m := 45; m <= 75; m += 5 {
		fired = append(fired, obs(m, 4)...)
	}
	resolved := obs(80, 1)
	obs(85, 1)
	if len(fired) != 1 || len(resolved) != 1 {
		t.Fatalf("fired %+v, resolved %+v", fired, resolved)
	}
	if as := sensorFault(e.Unposted(t0.Add(85*time.Minute), time.Minute)); len(as) != 1 || as[0].Status != StateFiring {
		t.Errorf("a fault that fired and resolved before it was posted: %+v, want it firing", as)
	}
	if as := sensorFault(e.Unposted(t0.Add(86*time.Minute), time.Minute)); len(as) != 0 {
		t.Errorf("posted firing once only; again: %+v", as)
	}
}
