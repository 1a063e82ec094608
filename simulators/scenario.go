package simulators

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Scenario names, each a situation rivermon must recognise.
const (
	ScenarioFlood       = "flood"        // a monsoon flood: flow ×6 over 12 h, receding over 36 h
	ScenarioLowFlow     = "lowflow"      // a dry spell or over-abstraction: flow held at 80 % of the ecological target
	ScenarioPollution   = "pollution"    // NH3-N, TP and CODMn rise through Classes III→V and back over a day
	ScenarioSensorSpike = "sensor-spike" // the stage gauge jumps +0.5 m for one reading every 3 h
	ScenarioSensorStuck = "sensor-stuck" // stage and water temperature freeze at their values
	ScenarioDrift       = "drift"        // the stage gauge drifts +0.05 m a day
)

// Scenarios lists every scenario name.
var Scenarios = []string{ScenarioFlood, ScenarioLowFlow, ScenarioPollution, ScenarioSensorSpike, ScenarioSensorStuck, ScenarioDrift}

// scenarioLead is how long after the start of a run a scenario begins, so
// that rivermon sees normal data first.
const scenarioLead = time.Hour

// ParseScenarios reads "name:station,station" specs into a map from station
// id to scenario names.
func ParseScenarios(specs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, spec := range specs {
		name, list, ok := strings.Cut(spec, ":")
		if !ok || list == "" {
			return nil, fmt.Errorf("scenario %q: want name:station[,station…]", spec)
		}
		if !contains(Scenarios, name) {
			return nil, fmt.Errorf("scenario %q: unknown; choose from %s", name, strings.Join(Scenarios, ", "))
		}
		for _, st := range strings.Split(list, ",") {
			if st = strings.TrimSpace(st); st != "" {
				out[st] = append(out[st], name)
			}
		}
	}
	return out, nil
}

func contains(set []string, s string) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}

// WithScenarios makes the station play the named scenarios from start.
func (s *Station) WithScenarios(names []string, start time.Time) *Station {
	s.scenarios = append(s.scenarios, names...)
	s.scenarioStart = start.Add(scenarioLead)
	return s
}

func (s *Station) has(name string) bool {
	for _, x := range s.scenarios {
		if x == name {
			return true
		}
	}
	return false
}

// flowScenario changes the river's flow q while a flood or a dry spell is
// played.
func (s *Station) flowScenario(t time.Time, q float64) float64 {
	since := t.Sub(s.scenarioStart)
	if len(s.scenarios) == 0 || since < 0 {
		return q
	}
	if s.has(ScenarioFlood) {
		switch h := since.Hours(); {
		case h < 12:
			q *= 1 + 5*h/12
		case h < 48:
			q *= 1 + 5*(48-h)/36
		}
	}
	if target, ok := s.st.Limits["eflow_m3s"]; ok && s.has(ScenarioLowFlow) {
		q = 0.8 * target * math.Exp(s.noise)
	}
	return q
}

// sensorScenario alters what the sensors report (not the river).
func (s *Station) sensorScenario(t time.Time, values map[string]float64) {
	since := t.Sub(s.scenarioStart)
	if len(s.scenarios) == 0 || since < 0 {
		return
	}
	if s.has(ScenarioPollution) {
		// A pulse peaking 8 h in and gone after 24 h.
		pulse := math.Max(0, math.Sin(math.Pi*math.Min(since.Hours(), 24)/24))
		for code, peak := range map[string]float64{"nh3n_mgl": 2.4, "tp_mgl": 0.45, "codmn_mgl": 12} {
			if v, ok := values[code]; ok {
				values[code] = round(v+peak*pulse, 3)
			}
		}
	}
	if v, ok := values["level_m"]; ok {
		if s.has(ScenarioDrift) {
			values["level_m"] = round(v+0.05*since.Hours()/24, 3)
		}
		if s.has(ScenarioSensorSpike) && since%(3*time.Hour) < time.Duration(s.st.Interval) {
			values["level_m"] = round(values["level_m"]+0.5, 3)
		}
	}
	if s.has(ScenarioSensorStuck) {
		if s.stuck == nil {
			s.stuck = map[string]float64{}
			for _, code := range []string{"level_m", "water_temp_c"} {
				if v, ok := values[code]; ok {
					s.stuck[code] = v
				}
			}
		}
		for code, v := range s.stuck {
			values[code] = v
		}
	}
}
