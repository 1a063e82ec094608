package simulators

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

func value(s reading.Sample, code string) (float64, bool) {
	for _, v := range s.Values {
		if v.Code == code {
			return v.Value, true
		}
	}
	return 0, false
}

// seasons are the run starts the scenarios are tested from: a winter day
// (ice months, long flat-line windows, low flow) and a monsoon one.
var seasons = []time.Time{
	time.Date(2026, 1, 10, 0, 0, 0, 0, reading.Zone),
	time.Date(2026, 7, 10, 0, 0, 0, 0, reading.Zone),
}

// normalCrossings lists, per season and station, the alerts that the
// station's normal data fires by itself with the shipped rules, without
// any scenario (seed 1, storm floods off): the normal model and the
// registry disagree there (README, "Simulated stations"). The test fails
// when one appears or goes away, so that the list stays true; where the
// scenario's own alert is among them, its once-only firing is not checked.
//
// In July the nine target-Class-II sections go to Class III by themselves:
// total phosphorus (0.02 + 0.03 × (flow / mean flow)^1.2 mg/L) passes the
// Class II 0.1 mg/L at two and a half times the mean flow; at Bainang,
// Lhatse, Phuntsoling and Namling dissolved oxygen too: at night it sits at
// 90 % saturation, the Class I bound, which there at 12–13 °C is below the
// Class II 6 mg/L.
var normalCrossings = map[string][]string{
	"2026-07-10/nianchu-gyantse":      {"WaterQualityWorseThanTarget"},
	"2026-07-10/nianchu-bainang":      {"WaterQualityWorseThanTarget"},
	"2026-07-10/yarlung-lhatse":       {"WaterQualityWorseThanTarget"},
	"2026-07-10/duoxiong-phuntsoling": {"WaterQualityWorseThanTarget"},
	"2026-07-10/xiangqu-namling":      {"WaterQualityWorseThanTarget"},
	"2026-07-10/pumqu-chentang":       {"WaterQualityWorseThanTarget"},
	"2026-07-10/gyirong-town":         {"WaterQualityWorseThanTarget"},
	"2026-07-10/boqu-nyalam":          {"WaterQualityWorseThanTarget"},
	"2026-07-10/yadong-yadong":        {"WaterQualityWorseThanTarget"},
}

// TestScenariosProduceTheirAlerts plays every scenario at every shipped
// station that can play it, from a winter and a summer start, through the
// registry's QC (as rivermon runs it, spike flags revised when the next
// value comes) and a replay of the shipped rules, and checks the timeline
// against the table of Scenarios: the events the alerts need last long
// enough, nothing fails QC but the spikes and the stuck stage, exactly the
// expected alerts fire and resolve once, and from ScenarioEnd on the
// station sends its normal data again.
func TestScenariosProduceTheirAlerts(t *testing.T) {
	reg := loadRegistry(t)
	rules := loadRules(t)
	const seed = 1
	for _, run := range seasons {
		start := run.Add(ScenarioLead)
		for i := range reg.Stations {
			st := &reg.Stations[i]
			key := run.Format("2006-01-02") + "/" + st.ID
			t.Run(key, func(t *testing.T) {
				t.Parallel()
				// The longest window any scenario needs.
				last := run
				for _, name := range Scenarios {
					if end := ScenarioEnd(name, st, start); end.After(last) {
						last = end
					}
				}
				base := NewStation(st, seed)
				base.calm = true
				normal := generate(base, run, last.Add(2*time.Hour))
				crossings := alertNames(replay(rules, st, assess(st, normal)))
				if want := normalCrossings[key]; !slices.Equal(crossings, want) {
					t.Errorf("the normal data fires %v, want %v (normalCrossings)", crossings, want)
				}
				for _, name := range Scenarios {
					if CanPlay(name, st) != nil {
						continue
					}
					t.Run(name, func(t *testing.T) {
						end := ScenarioEnd(name, st, start)
						samples := generate(NewStation(st, seed).WithScenarios([]string{name}, start), run, end.Add(2*time.Hour))
						recs := assess(st, samples)
						checkQC(t, name, st, start, end, recs)
						checkEvent(t, name, st, start, end, recs)
						checkBackToNormal(t, name, st, start, end, samples, normal)
						checkAlerts(t, name, st, start, end, replay(rules, st, recs), normalCrossings[key])
					})
				}
			})
		}
	}
}

// TestScenarioPlayability checks which shipped stations can play which
// scenario: every station the level and flow ones, the eleven
// water-quality sections the pollution pulse, the four southern sections
// with a rain gauge the storm.
func TestScenarioPlayability(t *testing.T) {
	reg := loadRegistry(t)
	counts := map[string]int{}
	for i := range reg.Stations {
		for _, name := range Scenarios {
			if CanPlay(name, &reg.Stations[i]) == nil {
				counts[name]++
			}
		}
	}
	want := map[string]int{ScenarioFlood: 23, ScenarioLowFlow: 23, ScenarioPollution: 11, ScenarioSensorSpike: 23, ScenarioSensorStuck: 23, ScenarioDrift: 23,
		ScenarioStorm: 4}
	for _, name := range Scenarios {
		if counts[name] != want[name] {
			t.Errorf("%s: %d stations can play it, want %d", name, counts[name], want[name])
		}
	}
	st := &registry.Station{ID: "bare", Params: []string{"water_temp_c"}, Interval: 5 * 60e9}
	for _, name := range Scenarios {
		if CanPlay(name, st) == nil || ExpectedAlerts(name, st) != nil || !ScenarioEnd(name, st, seasons[0]).IsZero() {
			t.Errorf("%s: a station with nothing to play it on plays it", name)
		}
	}
	if CanPlay("tsunami", reg.Station("nianchu-mouth")) == nil {
		t.Error("an unknown scenario can be played")
	}
}

// TestStuckGaugeWaitsForTheWindowInForce checks the freeze against the
// flat-line fail window of the month: 24 h in summer, 72 h in winter, and
// 72 h for a freeze that starts in November and runs into December.
func TestStuckGaugeWaitsForTheWindowInForce(t *testing.T) {
	st := loadRegistry(t).Station("boqu-nyalam")
	for _, c := range []struct {
		start  time.Time
		freeze time.Duration
	}{
		{time.Date(2026, 7, 10, 1, 0, 0, 0, reading.Zone), 24 * time.Hour},
		{time.Date(2026, 1, 10, 1, 0, 0, 0, reading.Zone), 72 * time.Hour},
		{time.Date(2026, 11, 30, 12, 0, 0, 0, reading.Zone), 72 * time.Hour},
		{time.Date(2026, 3, 31, 12, 0, 0, 0, reading.Zone), 72 * time.Hour},
	} {
		want := c.start.Add(c.freeze + stuckExtra + stuckCatchUp)
		if got := ScenarioEnd(ScenarioSensorStuck, st, c.start); !got.Equal(want) {
			t.Errorf("stuck from %s: ends %s, want %s", c.start, got, want)
		}
	}
}

func TestParseScenarios(t *testing.T) {
	if _, err := ParseScenarios([]string{"tsunami:nianchu-mouth"}); err == nil {
		t.Error("unknown scenario accepted")
	}
	if _, err := ParseScenarios([]string{"flood"}); err == nil {
		t.Error("scenario without stations accepted")
	}
	got, err := ParseScenarios([]string{"flood:a,b", "drift:b"})
	if err != nil || len(got["b"]) != 2 || got["a"][0] != ScenarioFlood {
		t.Errorf("ParseScenarios: %v %v", got, err)
	}
}

// generate returns m's samples at its station's interval from run, on the
// grid Run keeps, until before end.
func generate(m *Station, run, end time.Time) []reading.Sample {
	iv := time.Duration(m.st.Interval)
	var out []reading.Sample
	for at := run.Truncate(iv); at.Before(end); at = at.Add(iv) {
		if !at.Before(run) {
			out = append(out, m.Next(at))
		}
	}
	return out
}

// flagged is a value with its QC flag as stored once the flags are final.
type flagged struct {
	v    float64
	flag quality.Flag
}

// record is a sample as rivermon stores it: QC flags, and the derived
// rated flow and water-quality class.
type record struct {
	t      time.Time
	values map[string]flagged
}

// assess runs the station's QC over samples as rivermon does (each value
// flagged as it comes; the previous value's flag revised once its spike
// test can run) and derives flow_rated_m3s (flagged as the stage) and
// wq_class: the worst GB 3838 class over the latest valid value of each
// graded item, a value valid for 3 × the interval, at least 4 h.
func assess(st *registry.Station, samples []reading.Sample) []record {
	iv := time.Duration(st.Interval)
	series := map[string]*quality.Series{}
	for code, cfg := range st.QC {
		series[code] = quality.NewSeries(cfg, iv)
	}
	recs := make([]record, len(samples))
	lastAt := map[string]int{}
	for i, s := range samples {
		recs[i] = record{t: s.Time, values: map[string]flagged{}}
		for _, v := range s.Values {
			f := quality.NotEvaluated
			if ser := series[v.Code]; ser != nil {
				flags, rev := ser.Add(s.Time, v.Value)
				f = flags.Aggregate()
				if j, ok := lastAt[v.Code]; ok && rev != nil && rev.Time.Equal(recs[j].t) {
					x := recs[j].values[v.Code]
					x.flag = rev.Flag
					recs[j].values[v.Code] = x
				}
			}
			recs[i].values[v.Code] = flagged{v.Value, f}
			lastAt[v.Code] = i
		}
	}
	valid := max(3*iv, 4*time.Hour)
	type item struct {
		v  float64
		at time.Time
	}
	latest := map[string]item{}
	for i := range recs {
		r := &recs[i]
		if h, ok := r.values["level_m"]; ok {
			if q, err := hydro.RatedFlow(st, r.t, h.v); err == nil {
				r.values["flow_rated_m3s"] = flagged{q, h.flag}
			}
		}
		for code, x := range r.values {
			if x.flag != quality.Fail && (quality.Graded(code) || code == "water_temp_c") {
				latest[code] = item{x.v, r.t}
			}
		}
		temp := math.NaN()
		if x, ok := latest["water_temp_c"]; ok && r.t.Sub(x.at) <= valid {
			temp = x.v
		}
		class := 0
		for code, x := range latest {
			if r.t.Sub(x.at) > valid {
				continue
			}
			if c, ok := quality.ItemClass(code, x.v, quality.Conditions{WaterTempC: temp, ElevationM: st.ElevationM}); ok {
				class = max(class, c)
			}
		}
		if class > 0 {
			r.values["wq_class"] = flagged{float64(class), quality.Pass}
		}
	}
	return recs
}

// rule is the part of an alert rule (CONTRACT §10) the replay needs.
type rule struct {
	Name         string   `yaml:"name"`
	Param        string   `yaml:"param"`
	Above        string   `yaml:"above"`
	Below        string   `yaml:"below"`
	For          string   `yaml:"for"`
	Clear        float64  `yaml:"clear"`
	RateAbove    string   `yaml:"rate_above"`
	Window       string   `yaml:"window"`
	WQClassAbove string   `yaml:"wq_class_above"`
	SilentFor    string   `yaml:"silent_for"`
	QCFailFor    string   `yaml:"qc_fail_for"`
	Stations     []string `yaml:"stations"`
	Rivers       []string `yaml:"rivers"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "configs", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Rules []rule `yaml:"rules"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Rules
}

// alert is one firing of an alert instance: "alertname" or
// "alertname/param" for the per-parameter SensorFault.
type alert struct {
	id              string
	fired, resolved time.Time // resolved zero: still firing
}

func alertNames(as []alert) []string {
	var out []string
	for _, a := range as {
		if name, _, _ := strings.Cut(a.id, "/"); !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// replay runs the rules over the records of st the way rivermon's
// evaluator does (alerts/evaluator.go: pending for `for`, resolved past
// `clear`, a value flagged fail moves no threshold, rate over `window` once
// half of it is seen), with the stored (final) flags. Wall-clock and
// device-status rules are left out.
func replay(rules []rule, st *registry.Station, recs []record) []alert {
	var out []alert
	for _, r := range rules {
		if r.SilentFor != "" || (len(r.Stations) > 0 && !slices.Contains(r.Stations, st.ID)) ||
			(len(r.Rivers) > 0 && !slices.Contains(r.Rivers, st.River)) {
			continue
		}
		th, ok := threshold(r, st)
		if !ok {
			continue
		}
		var params []string
		switch {
		case r.QCFailFor != "":
			params = st.Params
		case r.WQClassAbove != "":
			params = []string{"wq_class"}
		case r.Param == "flow_m3s" && !st.Reports("flow_m3s") && len(st.Rating) > 0 && st.Reports("level_m"):
			params = []string{"flow_rated_m3s"}
		case st.Reports(r.Param):
			params = []string{r.Param}
		}
		for _, param := range params {
			id := r.Name
			if r.QCFailFor != "" {
				id += "/" + param
			}
			out = append(out, replayOne(r, id, param, th, recs)...)
		}
	}
	return out
}

func threshold(r rule, st *registry.Station) (float64, bool) {
	for _, s := range []string{r.Above, r.Below, r.RateAbove, r.WQClassAbove} {
		if s == "" {
			continue
		}
		if name, ok := strings.CutPrefix(s, "$"); ok {
			v, ok := st.Limits[name]
			return v, ok
		}
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	return 0, true // qc_fail_for
}

func duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

func replayOne(r rule, id, param string, th float64, recs []record) []alert {
	var out []alert
	pending, firing := false, false
	var since time.Time
	type point struct {
		t time.Time
		v float64
	}
	var window []point
	for _, rec := range recs {
		x, ok := rec.values[param]
		if !ok {
			continue
		}
		if r.QCFailFor != "" {
			switch {
			case x.flag != quality.Fail:
				if firing {
					out[len(out)-1].resolved = rec.t
				}
				pending, firing = false, false
			case !pending && !firing:
				pending, since = true, rec.t
				fallthrough
			case pending:
				if rec.t.Sub(since) >= duration(r.QCFailFor) {
					pending, firing = false, true
					out = append(out, alert{id: id, fired: rec.t})
				}
			}
			continue
		}
		if x.flag == quality.Fail {
			continue
		}
		v := x.v
		var active, cleared bool
		switch {
		case r.Above != "":
			active, cleared = v > th, v < th-r.Clear
		case r.Below != "":
			active, cleared = v < th, v > th+r.Clear
		case r.WQClassAbove != "":
			active, cleared = v > th, v <= th-r.Clear
		case r.RateAbove != "":
			w := duration(r.Window)
			window = append(window, point{rec.t, v})
			n := 0
			for n < len(window)-1 && rec.t.Sub(window[n].t) > w {
				n++
			}
			window = window[n:]
			span := rec.t.Sub(window[0].t)
			if span < w/2 || span <= 0 {
				continue
			}
			rate := (v - window[0].v) / span.Hours()
			active, cleared = rate > th, rate < th-r.Clear
		}
		if r.Clear == 0 {
			cleared = !active
		}
		switch {
		case firing:
			if cleared {
				out[len(out)-1].resolved = rec.t
				firing = false
			}
		case !active:
			pending = false
		default:
			if !pending {
				pending, since = true, rec.t
			}
			if rec.t.Sub(since) >= duration(r.For) {
				pending, firing = false, true
				out = append(out, alert{id: id, fired: rec.t})
			}
		}
	}
	return out
}

// checkQC: nothing fails QC but the spikes and the stuck stage, and those
// do.
func checkQC(t *testing.T, name string, st *registry.Station, start, end time.Time, recs []record) {
	t.Helper()
	iv := time.Duration(st.Interval)
	for _, r := range recs {
		since := r.t.Sub(start)
		spike := name == ScenarioSensorSpike && since >= 0 && r.t.Before(end) && since%spikeEvery < iv
		stuck := name == ScenarioSensorStuck && since >= 0 && r.t.Before(end)
		for code, x := range r.values {
			if code == "flow_rated_m3s" || code == "wq_class" {
				continue
			}
			if spike && code == "level_m" && x.flag != quality.Fail {
				t.Errorf("spike at %s: level_m %.3f flagged %d, want 4", r.t.Format(time.RFC3339), x.v, x.flag)
			}
			if x.flag == quality.Fail && !(code == "level_m" && (spike || stuck)) {
				t.Errorf("%s %.3f at %s fails QC", code, x.v, r.t.Format(time.RFC3339))
			}
		}
	}
}

// checkEvent: the condition each expected alert needs holds long enough:
// as long as the scenario holds it, which is more than the rules need
// (`for` 10 min to 1 h, 30 min of failed values).
func checkEvent(t *testing.T, name string, st *registry.Station, start, end time.Time, recs []record) {
	t.Helper()
	// longest is the longest run of consecutive readings of code meeting
	// cond, first to last.
	longest := func(code string, cond func(flagged) bool) time.Duration {
		var best time.Duration
		var from time.Time
		in := false
		for _, r := range recs {
			x, ok := r.values[code]
			if !ok {
				continue
			}
			if !cond(x) {
				in = false
				continue
			}
			if !in {
				from, in = r.t, true
			}
			best = max(best, r.t.Sub(from))
		}
		return best
	}
	flowCode := "flow_m3s"
	if !st.Reports(flowCode) {
		flowCode = "flow_rated_m3s"
	}
	lim := st.Limits
	switch name {
	case ScenarioFlood:
		top, ok := lim["level_critical_m"]
		if !ok {
			top = lim["level_warning_m"]
		}
		if d := longest("level_m", func(x flagged) bool { return x.flag != quality.Fail && x.v > top }); d < time.Hour {
			t.Errorf("the stage is above %.2f m for %s, want an hour at least", top, d)
		}
		var prev *flagged
		var steepest float64
		for _, r := range recs {
			if x, ok := r.values["level_m"]; ok {
				if prev != nil {
					steepest = max(steepest, math.Abs(x.v-prev.v))
				}
				prev = &x
			}
		}
		if sp := st.QC["level_m"].Spike; sp != nil && steepest >= 2*sp.Suspect {
			t.Errorf("a step of %.3f m between readings, want below %.2f m", steepest, 2*sp.Suspect)
		}
	case ScenarioLowFlow:
		target := lim["eflow_m3s"]
		if d := longest(flowCode, func(x flagged) bool { return x.flag != quality.Fail && x.v < target }); d < 2*time.Hour {
			t.Errorf("%s below %.2f m³/s for %s, want 2 h at least", flowCode, target, d)
		}
	case ScenarioPollution:
		target := lim["wq_target_class"]
		if d := longest("wq_class", func(x flagged) bool { return x.v > target }); d < 3*time.Hour {
			t.Errorf("class worse than %v for %s, want 3 h at least", target, d)
		}
		worst := 0.0
		for _, r := range recs {
			if x, ok := r.values["wq_class"]; ok && !r.t.Before(start) && r.t.Before(end) {
				worst = max(worst, x.v)
			}
		}
		if want := min(target+pollutionClasses, quality.Class6); worst != want {
			t.Errorf("worst class %v during the pulse, want %v", worst, want)
		}
	case ScenarioSensorStuck:
		if d := longest("level_m", func(x flagged) bool { return x.flag == quality.Fail }); d < time.Hour {
			t.Errorf("the stuck stage fails QC for %s, want an hour at least", d)
		}
	case ScenarioStorm:
		limit := lim["rain_1h_warning_mm"]
		var best time.Duration
		var from time.Time
		in := false
		for i, r := range recs {
			x, ok := r.values["rain_total_mm"]
			if !ok {
				continue
			}
			j := i
			for j > 0 && r.t.Sub(recs[j-1].t) <= stormWindow {
				j--
			}
			span := r.t.Sub(recs[j].t)
			if span < stormWindow/2 || (x.v-recs[j].values["rain_total_mm"].v)/span.Hours() <= limit {
				in = false
				continue
			}
			if !in {
				from, in = r.t, true
			}
			best = max(best, r.t.Sub(from))
		}
		if best < time.Hour {
			t.Errorf("the rain of the past hour is above %g mm for %s, want an hour at least", limit, best)
		}
	}
}

// checkBackToNormal: before the start and from ScenarioEnd on the station
// sends what it sends without the scenario (the volume counter keeps the
// water a flood or a dry spell added or took, the rain counter the
// storm's rain; a drifted gauge stays high).
func checkBackToNormal(t *testing.T, name string, st *registry.Station, start, end time.Time, samples, normal []reading.Sample) {
	t.Helper()
	kept := math.NaN() // the storm's rain in the counter
	for i, s := range samples {
		if !s.Time.Before(start) && s.Time.Before(end) {
			continue
		}
		for _, v := range s.Values {
			want, _ := value(normal[i], v.Code)
			switch {
			case v.Code == "volume_m3":
			case name == ScenarioStorm && v.Code == "rain_total_mm" && !s.Time.Before(end):
				d := round(v.Value-want, 1)
				if math.IsNaN(kept) {
					kept = d
				}
				if d != kept || d <= 0 {
					t.Fatalf("rain counter at %s: %.1f mm above the normal one, want the storm's %.1f mm throughout", s.Time.Format(time.RFC3339), d, kept)
				}
			case name == ScenarioDrift && v.Code == "level_m" && !s.Time.Before(end):
				if d := v.Value - want; math.Abs(d-driftPerDay) > 0.0011 {
					t.Fatalf("drifted gauge at %s reads %+.3f m off, want +%.2f", s.Time.Format(time.RFC3339), d, driftPerDay)
				}
			case v.Value != want:
				t.Fatalf("%s at %s: %v, %v without the scenario", v.Code, s.Time.Format(time.RFC3339), v.Value, want)
			}
		}
	}
}

// checkAlerts: the expected alerts fire once within the scenario and
// resolve by its end; no other alert fires, but those the normal data
// fires by itself (normalCrossings).
func checkAlerts(t *testing.T, name string, st *registry.Station, start, end time.Time, got []alert, crossing []string) {
	t.Helper()
	expected := ExpectedAlerts(name, st)
	fired := map[string][]alert{}
	for _, a := range got {
		fired[a.id] = append(fired[a.id], a)
	}
	for _, id := range expected {
		if slices.Contains(crossing, id) {
			t.Logf("%s: the normal data fires it too; not checked", id)
			continue
		}
		as := fired[id]
		if len(as) != 1 {
			t.Errorf("%s fired %d times, want once", id, len(as))
			continue
		}
		a := as[0]
		if a.fired.Before(start) || a.resolved.IsZero() || a.resolved.After(end) {
			t.Errorf("%s fired %s, resolved %s; want both within %s – %s", id, a.fired.Format(time.RFC3339), a.resolved.Format(time.RFC3339),
				start.Format(time.RFC3339), end.Format(time.RFC3339))
		}
	}
	for id, as := range fired {
		name, _, _ := strings.Cut(id, "/")
		if !slices.Contains(expected, id) && !slices.Contains(crossing, name) {
			t.Errorf("%s fired %d times (first at %s), not expected", id, len(as), as[0].fired.Format(time.RFC3339))
		}
	}
}

func TestExpectedAlertsOfTheShippedStations(t *testing.T) {
	reg := loadRegistry(t)
	for _, c := range []struct {
		name, station string
		want          string
	}{
		{ScenarioFlood, "pumqu-chentang", "WaterLevelWarning WaterLevelCritical WaterLevelRisingFast"},
		{ScenarioLowFlow, "sagya-sagya", "EcologicalFlowBelowTarget EcologicalFlowBelowWarning"},
		{ScenarioLowFlow, "yarlung-dazhuka", "EcologicalFlowBelowTarget EcologicalFlowBelowWarning"},
		{ScenarioPollution, "nianchu-mouth", "WaterQualityWorseThanTarget"},
		{ScenarioPollution, "sagya-sagya", ""},
		{ScenarioSensorSpike, "yarlung-dazhuka", ""},
		{ScenarioSensorStuck, "boqu-nyalam", "SensorFault/level_m"},
		{ScenarioDrift, "maquan-saga", ""},
		{ScenarioStorm, "gyirong-zongga", "RainfallHeavy"},
		{ScenarioStorm, "nianchu-mouth", ""},
	} {
		if got := strings.Join(ExpectedAlerts(c.name, reg.Station(c.station)), " "); got != c.want {
			t.Errorf("%s at %s: %q, want %q", c.name, c.station, got, c.want)
		}
	}
}
