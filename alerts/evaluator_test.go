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

// TestAlertsLinkToTheirStationsView: with the operations page's URL, every
// alert, firing or resolved, links to its station's view; without it, to
// nothing.
func TestAlertsLinkToTheirStationsView(t *testing.T) {
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := LoadRules("rules.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEvaluator(rules, Options{Registry: reg, PageURL: "https://ops.example.org/rivermon/"}, t0)
	const want = "https://ops.example.org/rivermon/#/station/gauge"
	at(e, "gauge", 0, "level_m", 3.5)
	fired := only(t, at(e, "gauge", 10, "level_m", 3.5), "LevelCritical")
	resolved := only(t, at(e, "gauge", 15, "level_m", 1), "LevelCritical")
	if len(fired) != 1 || len(resolved) != 1 {
		t.Fatalf("fired %+v, resolved %+v", fired, resolved)
	}
	for _, tr := range append(fired, resolved...) {
		if tr.Alert.GeneratorURL != want {
			t.Errorf("%s: generatorURL %q, want %q", tr.State, tr.Alert.GeneratorURL, want)
		}
	}
	e = newEval(t, 0)
	at(e, "gauge", 0, "level_m", 3.5)
	if tr := only(t, at(e, "gauge", 10, "level_m", 3.5), "LevelCritical"); len(tr) != 1 || tr[0].Alert.GeneratorURL != "" {
		t.Errorf("without a page URL: %+v", tr)
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

// BenchmarkObserve is the evaluation cost of one sample with every shipped
// rule, at a water-quality station (the most rules apply there).
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
