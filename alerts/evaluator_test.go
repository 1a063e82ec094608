package alerts

import (
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

const testRegistry = `
rivers:
  - {id: nianchu, name: 年楚河, name_en: Nianchu}
stations:
  - id: gauge
    name: 测站
    name_en: Gauge
    river: nianchu
    lat: 29
    lon: 89
    elevation_m: 3900
    params: [level_m, flow_m3s, water_temp_c, nh3n_mgl]
    interval: 5m
    limits: {level_critical_m: 3.0, eflow_m3s: 6.5, wq_target_class: 3}
  - id: levelonly
    name: 水位站
    name_en: Level only
    river: nianchu
    lat: 29
    lon: 89
    elevation_m: 3900
    params: [level_m]
    interval: 5m
    limits: {eflow_m3s: 4}
    rating:
      - valid_from: 2020-01-01T00:00:00Z
        segments: [{h_min: 0.2, h_max: 8, c: 10, e: 0.2, b: 1.5}]
`

const testRules = `
rules:
  - {name: LevelCritical, param: level_m, above: $level_critical_m, for: 10m, clear: 0.05, severity: critical,
     summary: "{{.StationName}}: level {{.Value}} m above {{.Threshold}} m", labels: {team: hydro}}
  - {name: RisingFast, param: level_m, rate_above: 0.5, window: 30m, severity: warning}
  - {name: LowFlow, param: flow_m3s, below: $eflow_m3s, for: 1h, severity: critical}
  - {name: WQ, wq_class_above: $wq_target_class, for: 0, severity: warning}
  - {name: Silent, silent_for: 30m, severity: warning}
  - {name: SensorFault, qc_fail_for: 30m, severity: warning}
`

var t0 = time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC)

func newEval(t *testing.T, maxAge time.Duration) *Evaluator {
	t.Helper()
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := LoadRules("rules.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return NewEvaluator(rules, Options{Registry: reg, MaxSampleAge: maxAge}, t0)
}

// at observes one value at minute m (wall clock = sample time).
func at(e *Evaluator, station string, m int, code string, v float64) []Transition {
	ts := t0.Add(time.Duration(m) * time.Minute)
	return e.Observe(Sample{Station: station, Time: ts, Received: ts, Values: []Value{{Code: code, V: v, Flag: 1}}}, ts)
}

func only(t *testing.T, ts []Transition, name string) []Transition {
	t.Helper()
	var out []Transition
	for _, x := range ts {
		if x.Alert.Labels["alertname"] == name {
			out = append(out, x)
		}
	}
	return out
}

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

func TestLateSamplesDoNotMoveState(t *testing.T) {
	e := newEval(t, 0)
	at(e, "gauge", 0, "level_m", 3.5)
	if tr := only(t, at(e, "gauge", 10, "level_m", 3.5), "LevelCritical"); len(tr) != 1 {
		t.Fatalf("not firing: %+v", tr)
	}
	// A late low value from before the newest does not resolve it.
	if tr := only(t, at(e, "gauge", 7, "level_m", 1.0), "LevelCritical"); len(tr) != 0 {
		t.Fatalf("late sample moved the state: %+v", tr)
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

func TestFlowFallsBackToRatedFlowAndClassRules(t *testing.T) {
	e := newEval(t, 0)
	// levelonly has no flow meter: LowFlow watches flow_rated_m3s.
	for m := 0; m <= 60; m += 5 {
		ts := t0.Add(time.Duration(m) * time.Minute)
		tr := only(t, e.Observe(Sample{Station: "levelonly", Time: ts, Values: []Value{{Code: "level_m", V: 0.5, Flag: 1}, {Code: "flow_rated_m3s", V: 1.6, Flag: 1}}}, ts), "LowFlow")
		if (m < 60) != (len(tr) == 0) {
			t.Fatalf("minute %d: %+v", m, tr)
		}
		if m == 60 && tr[0].Alert.Labels["param"] != "flow_rated_m3s" {
			t.Errorf("param label %q", tr[0].Alert.Labels["param"])
		}
	}
	// wq_class 4 above the target class 3, for 0: at once.
	if tr := only(t, at(e, "gauge", 1, "wq_class", 4), "WQ"); len(tr) != 1 || tr[0].State != StateFiring {
		t.Fatalf("wq class: %+v", tr)
	}
	if tr := only(t, at(e, "gauge", 2, "wq_class", 3), "WQ"); len(tr) != 1 || tr[0].State != StateResolved {
		t.Fatalf("wq class back to target: %+v", tr)
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
	if s := only(t, at(e, "gauge", 42, "level_m", 3.5), "Silent"); len(s) != 1 || s[0].State != StateResolved {
		t.Fatalf("a new sample did not resolve the silence: %+v", s)
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
}

func TestOldSamplesUpdateStateButDoNotNotify(t *testing.T) {
	e := newEval(t, time.Hour)
	wall := t0.Add(48 * time.Hour) // a backlog two days old
	var tr []Transition
	for m := 0; m <= 10; m += 5 {
		ts := t0.Add(time.Duration(m) * time.Minute)
		tr = append(tr, only(t, e.Observe(Sample{Station: "gauge", Time: ts, Values: []Value{{Code: "level_m", V: 3.5, Flag: 1}}}, wall), "LevelCritical")...)
	}
	if len(tr) != 1 || tr[0].State != StateFiring || tr[0].Notify {
		t.Fatalf("backlog: %+v, want one firing transition without notification", tr)
	}
	if as := e.Active(wall, 4*time.Minute); len(as) != 0 {
		t.Fatalf("an alert from old samples is sent to Alertmanager: %+v", as)
	}
	// A live sample still above keeps it firing, now with evidence: it goes out.
	live := wall.Add(time.Minute)
	e.Observe(Sample{Station: "gauge", Time: live, Values: []Value{{Code: "level_m", V: 3.5, Flag: 1}}}, live)
	as := e.Active(live, 4*time.Minute)
	if len(as) != 1 || !as[0].StartsAt.Equal(t0.Add(10*time.Minute)) || !as[0].EndsAt.Equal(live.Add(4*time.Minute)) {
		t.Fatalf("active %+v", as)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.json")
	e := newEval(t, 0)
	at(e, "gauge", 0, "level_m", 3.5)
	at(e, "gauge", 10, "level_m", 3.5)
	if err := e.Save(path); err != nil {
		t.Fatal(err)
	}
	e2 := newEval(t, 0)
	n, err := e2.Load(path)
	if err != nil || n == 0 {
		t.Fatalf("restored %d: %v", n, err)
	}
	as := e2.Active(t0.Add(11*time.Minute), 4*time.Minute)
	if len(as) != 1 || !as[0].StartsAt.Equal(t0.Add(10*time.Minute)) || as[0].Status != StateFiring {
		t.Fatalf("after restart: %+v", as)
	}
	// Still above: no new firing transition (not announced as new).
	if tr := only(t, at(e2, "gauge", 15, "level_m", 3.5), "LevelCritical"); len(tr) != 0 {
		t.Fatalf("announced again: %+v", tr)
	}
	// And the restored instance still knows its threshold: back below, it resolves.
	if tr := only(t, at(e2, "gauge", 20, "level_m", 1.0), "LevelCritical"); len(tr) != 1 || tr[0].State != StateResolved || tr[0].Thresh != 3 {
		t.Fatalf("a value below the threshold after restart: %+v", tr)
	}
}

func TestStatusParamsApplyToEveryStation(t *testing.T) {
	reg, _ := registry.Load("stations.yaml", []byte(testRegistry))
	rules, err := LoadRules("rules.yaml", []byte("rules:\n  - {name: LowBattery, param: battery_v, below: 11.5, for: 0, severity: warning}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEvaluator(rules, Options{Registry: reg}, t0)
	for _, st := range []string{"gauge", "levelonly"} {
		if tr := at(e, st, 1, "battery_v", 11.2); len(tr) != 1 || tr[0].State != StateFiring {
			t.Errorf("%s: %+v", st, tr)
		}
	}
}

// BenchmarkObserve is the evaluation cost of one sample with every shipped
// rule, at a water-quality station (the most rules apply there).
// benchEvaluator is an evaluator of the shipped rules and registry, and a
// sample's values of a water-quality station that move no alert.
func benchEvaluator(b *testing.B) (*Evaluator, []Value) {
	reg, err := registry.LoadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	rules, err := LoadRulesFile(filepath.Join("..", "configs", "rules.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	var values []Value
	for _, c := range reg.Station("nianchu-mouth").Params {
		values = append(values, Value{Code: c, V: 1, Flag: 1})
	}
	values = append(values, Value{Code: "wq_class", V: 2, Flag: 1})
	return NewEvaluator(rules, Options{Registry: reg, MaxSampleAge: time.Hour}, t0), values
}

func BenchmarkObserve(b *testing.B) {
	e, values := benchEvaluator(b)
	i := 0
	for b.Loop() {
		ts := t0.Add(time.Duration(i) * time.Minute)
		e.Observe(Sample{Station: "nianchu-mouth", Time: ts, Values: values}, ts)
		i++
	}
}

// BenchmarkObserveAll is BenchmarkObserve for a backlog: 100 samples of
// the station at once; reported per sample.
func BenchmarkObserveAll(b *testing.B) {
	e, values := benchEvaluator(b)
	batch := make([]Sample, 100)
	i := 0
	for b.Loop() {
		for k := range batch {
			batch[k] = Sample{Station: "nianchu-mouth", Time: t0.Add(time.Duration(i) * time.Minute), Values: values}
			i++
		}
		e.ObserveAll(batch, batch[len(batch)-1].Time)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/sample")
}

// ObserveAll on batches gives the transitions and state of Observe on each
// sample, also when the stations of a batch alternate.
func TestObserveAllAsOneByOne(t *testing.T) {
	one, all := newEval(t, 30*time.Minute), newEval(t, 30*time.Minute)
	rng := rand.New(rand.NewPCG(7, 7))
	var want, got []Transition
	var batch []Sample
	wall := t0.Add(24 * time.Hour)
	for m := range 3000 {
		st := []string{"gauge", "levelonly"}[rng.IntN(2)]
		s := Sample{Station: st, Time: t0.Add(time.Duration(m-rng.IntN(3)) * time.Minute), Received: t0.Add(time.Duration(m) * time.Minute), Values: []Value{
			{Code: "level_m", V: 2 + 2*rng.Float64(), Flag: 1 + 3*rng.IntN(2)},
			{Code: "flow_m3s", V: 4 + 5*rng.Float64(), Flag: 1},
			{Code: "wq_class", V: float64(1 + rng.IntN(6)), Flag: 1},
		}}
		// Wall time close to the samples now and then: some notify.
		if m%500 == 0 {
			got = append(got, all.ObserveAll(batch, wall)...)
			batch = batch[:0]
			wall = s.Time.Add(time.Duration(rng.IntN(60)) * time.Minute)
		}
		want = append(want, one.Observe(s, wall)...)
		batch = append(batch, s)
		if rng.IntN(20) == 0 || m == 2999 {
			got = append(got, all.ObserveAll(batch, wall)...)
			batch = batch[:0]
		}
	}
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("ObserveAll gave %d transitions, Observe one by one %d (or they differ)", len(got), len(want))
	}
	if len(one.heard) == 0 || !reflect.DeepEqual(all.heard, one.heard) {
		t.Fatalf("arrival times differ: %v, %v", all.heard, one.heard)
	}
}

// codeID numbers every code a sample can carry, each its own.
func TestCodeID(t *testing.T) {
	seen := map[int]string{}
	var all []string
	for _, p := range reading.Params() {
		all = append(all, p.Code)
	}
	all = append(all, "flow_rated_m3s", "wq_class")
	for c := range statusParams {
		all = append(all, c)
	}
	for _, c := range all {
		id := codeID(c)
		if id < 0 || id >= numCodes || seen[id] != "" {
			t.Fatalf("codeID(%q) = %d (seen for %q)", c, id, seen[id])
		}
		seen[id] = c
	}
	if len(seen) != numCodes || codeID("no_such_code") != -1 {
		t.Fatalf("%d codes numbered, numCodes is %d; codeID of an unknown code is %d", len(seen), numCodes, codeID("no_such_code"))
	}
}
