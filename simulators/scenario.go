package simulators

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Scenario names. A scenario plays a situation rivermon must recognise at
// one station, measured against that station's own limits and QC settings,
// on a timeline that starts at S (by default ScenarioLead after the run
// starts) and ends at ScenarioEnd, after which the station sends its normal
// data again (drift excepted). Played alone at a station, each produces
// with the shipped configs/rules.yaml exactly the alerts of the table
// (ExpectedAlerts), each firing once and resolving once by ScenarioEnd, and
// no other alert for that station:
//
//	flood         The stage rises at a steady rate from normal to a peak P of
//	              level_critical_m + 0.3 m (level_warning_m + 0.3 m without
//	              a critical level) in R, stays at P for 1 h and falls back to
//	              normal in R. R is 1 h, longer where a step of one reading
//	              would otherwise reach 0.9 × 2 × the level spike suspect
//	              threshold (a winter flood from a low river: up to 2 h 45 min
//	              on the Yarlung Tsangpo), and
//	              shorter where the rise would be slower than 1 m/h. The flow,
//	              velocity and turbidity follow the stage through the rating
//	              curve; the nutrient concentrations do not (a flood that
//	              took the section out of its water-quality class would be
//	              a pollution event too). End: S + 2R + 1 h.
//	              Alerts: WaterLevelWarning, WaterLevelCritical (with a
//	              critical level), WaterLevelRisingFast.
//	lowflow       The flow (and the stage, through the rating curve) falls
//	              to 0.8 × eflow_m3s in D, 30 min or longer where the steps
//	              of the stage would reach the spike limit above (a summer
//	              river), holds 2 h, and comes back with the stage rising at
//	              0.4 m/h at most, so that the return is not taken for a
//	              flash flood (WaterLevelRisingFast): 30 min to 2 h in
//	              winter, up to 9 h on the Yarlung Tsangpo in summer. End:
//	              S + D + 2 h + the return, sized for the highest normal
//	              stage of the season.
//	              Alerts: EcologicalFlowBelowTarget, EcologicalFlowBelowWarning
//	              (with eflow_warning_m3s); on a section without a flow meter
//	              they watch the flow rated from the stage.
//	pollution     NH3-N, TP and CODMn (those the station reports) rise in 1 h
//	              to the middle of the GB 3838 class two worse than
//	              wq_target_class (1.3 × the Class V limit for "worse than
//	              V"), hold 3 h and fall back in 1 h. The analysers still
//	              report hourly, so the peak stands in the station's latest
//	              values for about 4 h. End: the first nutrient report at or
//	              after S + 5 h.
//	              Alerts: WaterQualityWorseThanTarget.
//	sensor-spike  The stage reads high by one jump for one reading every 3 h
//	              (at S, S+3h, S+6h, S+9h). The jump is 0.5 m, kept between
//	              1.25 and 1.75 × the level spike fail threshold: the spike
//	              fails QC (4) while its neighbours, off the mean of theirs by
//	              half the jump, do not. End: S + 12 h.
//	              Alerts: none. Each spike is stored flagged 4, which no
//	              threshold rule may act on; on arrival its flag is only 3
//	              (its spike test waits for the next reading, the rate of
//	              change is suspect), and a rule engine that acted on that
//	              would see a rise of 1 m/h (WaterLevelRisingFast).
//	sensor-stuck  The stage (only) repeats its reading at S for the level
//	              flat-line fail window in force (FlatLine.Windows of the
//	              local month: 24 h in summer, 72 h in winter with the shipped
//	              registry; the longer one where the freeze runs into a
//	              month with a longer window) + 1 h 30 min, then comes free:
//	              it moves to the river's stage at 0.4 m/h at most (no spike,
//	              no fast rise) and follows the river again. End: S + window
//	              + 1 h 30 min + 2 h.
//	              Alerts: SensorFault{param=level_m}.
//	drift         The stage gauge drifts +0.05 m a day for 24 h and then
//	              stays 0.05 m high: the data does not come back to normal.
//	              End: S + 24 h, when the drift stops.
//	              Alerts: none.
//	storm         A cloudburst at the rain gauge: on top of the normal
//	              showers, the intensity rises in 30 min to 2 ×
//	              rain_1h_warning_mm, holds 1 h and falls back in 30 min
//	              (1.5 h of the peak's rain in all: 60 mm at the shipped
//	              20 mm/h). The rain of the past hour is above the limit
//	              for about 1.5 h, from 45 min in. The counter keeps what
//	              fell; the river does not answer (the flood a storm may
//	              bring is the flood scenario's). End: S + 3 h, when the
//	              storm's last rain has left the rule's 1-hour window.
//	              Alerts: RainfallHeavy.
//
// A station that plays a scenario has none of the model's random monsoon
// storm floods for the whole run, so that what it sends is the scenario's
// event only.
// Scenarios combined at one station are played together, but their alerts
// are not promised.
const (
	ScenarioFlood       = "flood"
	ScenarioLowFlow     = "lowflow"
	ScenarioPollution   = "pollution"
	ScenarioSensorSpike = "sensor-spike"
	ScenarioSensorStuck = "sensor-stuck"
	ScenarioDrift       = "drift"
	ScenarioStorm       = "storm"
)

// Scenarios lists every scenario name.
var Scenarios = []string{ScenarioFlood, ScenarioLowFlow, ScenarioPollution, ScenarioSensorSpike, ScenarioSensorStuck, ScenarioDrift, ScenarioStorm}

// ScenarioLead is how long after the start of a run its scenarios begin by
// default, so that rivermon sees normal data first.
const ScenarioLead = time.Hour

// Timeline constants of the scenarios (see Scenarios). The rates are set
// against the shipped rules: WaterLevelRisingFast fires above 0.5 m/h over
// 30 min.
const (
	floodAbove       = 0.3 // m above the critical (or warning) level at the peak
	floodRise        = time.Hour
	floodHold        = time.Hour
	floodMinRate     = 1.0 // m/h: twice the rule's rate, over a window of any phase
	lowFlowShare     = 0.8 // of eflow_m3s
	lowFlowRamp      = 30 * time.Minute
	lowFlowHold      = 2 * time.Hour
	pollutionRamp    = time.Hour
	pollutionHold    = 3 * time.Hour
	pollutionClasses = 2   // classes worse than the target
	pollutionBeyondV = 1.3 // × the Class V limit for "worse than V"
	spikeEvery       = 3 * time.Hour
	spikeFor         = 12 * time.Hour
	spikeJump        = 0.5 // m, within [1.25, 1.75] × the spike fail threshold
	stuckExtra       = 90 * time.Minute
	stuckCatchUp     = 2 * time.Hour
	driftPerDay      = 0.05 // m
	driftFor         = 24 * time.Hour
	stormPeak        = 2.0 // × rain_1h_warning_mm
	stormRamp        = 30 * time.Minute
	stormHold        = time.Hour
	stormWindow      = time.Hour // the window of the shipped RainfallHeavy rule
	// stormMaxLimit is the highest rain_1h_warning_mm a storm is played
	// against: at twice it, a 5-minute amount (1/12 of the hour's) must
	// still fit a slot of an SL 651 hourly report (DRP, at most 25.4 mm).
	stormMaxLimit = 150.0
	// comeBackRate is the fastest a played stage rises back to the river
	// after a dry spell or a stuck gauge, m/h: below the rule's 0.5 m/h,
	// so that the return is not taken for a flash flood. (The window rate
	// of a stage that is the lower of the river and this ramp is at most
	// the faster of the two.)
	comeBackRate = 0.4
	// stepShare of twice the level spike suspect threshold is the largest
	// step a ramp makes between two readings: a ramp's bend is then off the
	// mean of its neighbours by less than the suspect threshold.
	stepShare = 0.9
	// noiseSpread bounds the slow log-flow noise of the model (AR(1),
	// stationary standard deviation 0.1) at three deviations, for ramps
	// sized before the river is seen.
	noiseSpread = 0.3
)

// ParseScenarios reads "name:station,station" specs into a map from station
// id to scenario names.
func ParseScenarios(specs []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, spec := range specs {
		name, list, ok := strings.Cut(spec, ":")
		if !ok || list == "" {
			return nil, fmt.Errorf("scenario %q: want name:station[,station…]", spec)
		}
		if !slices.Contains(Scenarios, name) {
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

// CanPlay returns why st cannot play the scenario name (it lacks a limit,
// a parameter or a QC test the scenario is measured against), or nil.
func CanPlay(name string, st *registry.Station) error {
	_, err := planFor(name, st, time.Time{}) // what it needs does not depend on the date
	return err
}

// ExpectedAlerts returns the alerts that the scenario name produces at st
// with the shipped rules: alert names, or "alertname/param" where the rule
// fires per parameter. Nil when the scenario produces none or st cannot
// play it (CanPlay).
func ExpectedAlerts(name string, st *registry.Station) []string {
	if CanPlay(name, st) != nil {
		return nil
	}
	switch name {
	case ScenarioFlood:
		var out []string
		if _, ok := st.Limits["level_warning_m"]; ok {
			out = append(out, "WaterLevelWarning")
		}
		if _, ok := st.Limits["level_critical_m"]; ok {
			out = append(out, "WaterLevelCritical")
		}
		return append(out, "WaterLevelRisingFast")
	case ScenarioLowFlow:
		out := []string{"EcologicalFlowBelowTarget"}
		if _, ok := st.Limits["eflow_warning_m3s"]; ok {
			out = append(out, "EcologicalFlowBelowWarning")
		}
		return out
	case ScenarioPollution:
		return []string{"WaterQualityWorseThanTarget"}
	case ScenarioSensorStuck:
		return []string{"SensorFault/level_m"}
	case ScenarioStorm:
		return []string{"RainfallHeavy"}
	}
	return nil
}

// ScenarioEnd returns when the data of st is back to normal after the
// scenario name started at start (for drift: when the drift stops). It
// depends on the station's limits and QC settings and on the local month
// (the ramps of a flood or a dry spell, the flat-line window of a stuck
// gauge). The zero time when st cannot play it.
func ScenarioEnd(name string, st *registry.Station, start time.Time) time.Time {
	p, err := planFor(name, st, start)
	if err != nil {
		return time.Time{}
	}
	return p.end
}

// plan is the timeline of one scenario at one station.
type plan struct {
	name             string
	start, end       time.Time
	rise, hold, fall time.Duration
	stage            float64            // flood: the peak; lowflow: the stage of the low flow
	conc             map[string]float64 // pollution: the concentration held, per code
	jump             float64            // sensor-spike
	frozen           float64            // sensor-stuck: the reading repeated,
	frozenSet        bool               // once taken
	rain             float64            // storm: the peak intensity, mm/h
}

// weight is how far the scenario has taken the station from normal at t:
// 0 before and after, rising linearly to 1 over rise, 1 over hold, back to
// 0 over fall.
func (p *plan) weight(t time.Time) float64 {
	since := t.Sub(p.start)
	switch {
	case since < 0 || !t.Before(p.start.Add(p.rise+p.hold+p.fall)):
		return 0
	case since < p.rise:
		return float64(since) / float64(p.rise)
	case since < p.rise+p.hold:
		return 1
	default:
		return float64(p.rise+p.hold+p.fall-since) / float64(p.fall)
	}
}

// planFor works out the timeline of scenario name at st from start.
func planFor(name string, st *registry.Station, start time.Time) (plan, error) {
	p := plan{name: name, start: start}
	level := func() error {
		if !st.Reports("level_m") {
			return fmt.Errorf("scenario %s: station %s does not report level_m", name, st.ID)
		}
		return nil
	}
	switch name {
	case ScenarioFlood:
		if err := level(); err != nil {
			return p, err
		}
		top, ok := st.Limits["level_critical_m"]
		if !ok {
			if top, ok = st.Limits["level_warning_m"]; !ok {
				return p, fmt.Errorf("scenario %s: station %s has neither level_critical_m nor level_warning_m", name, st.ID)
			}
		}
		p.stage = top + floodAbove
		lo, hi := normalFlows(st, start)
		mean := meanFlow(st)
		far, near := p.stage-stageAt(st, mean, start, lo), p.stage-stageAt(st, mean, start, hi)
		p.rise = ramp(st, start, far, near, floodRise, floodMinRate)
		p.hold, p.fall = floodHold, p.rise
	case ScenarioLowFlow:
		target, ok := st.Limits["eflow_m3s"]
		if !ok {
			return p, fmt.Errorf("scenario %s: station %s has no eflow_m3s", name, st.ID)
		}
		if !st.Reports("flow_m3s") && (!st.Reports("level_m") || len(st.Rating) == 0) {
			return p, fmt.Errorf("scenario %s: station %s reports neither flow_m3s nor level_m with a rating curve", name, st.ID)
		}
		mean := meanFlow(st)
		p.stage = stageAt(st, mean, start, lowFlowShare*target)
		_, hi := normalFlows(st, start)
		far := stageAt(st, mean, start, hi) - p.stage
		p.rise, p.hold = ramp(st, start, far, 0, lowFlowRamp, 0), lowFlowHold
		p.fall = max(lowFlowRamp, time.Duration(far/comeBackRate*float64(time.Hour)))
		iv := time.Duration(st.Interval)
		p.fall = (p.fall + iv - 1) / iv * iv
	case ScenarioPollution:
		target, ok := st.Limits["wq_target_class"]
		if !ok {
			return p, fmt.Errorf("scenario %s: station %s has no wq_target_class", name, st.ID)
		}
		class := min(int(target)+pollutionClasses, quality.Class6)
		p.conc = map[string]float64{}
		for _, code := range []string{"codmn_mgl", "nh3n_mgl", "tp_mgl"} {
			if !st.Reports(code) {
				continue
			}
			if class == quality.Class6 {
				limit, _ := quality.ClassLimit(code, 5)
				p.conc[code] = pollutionBeyondV * limit
			} else {
				lo, _ := quality.ClassLimit(code, class-1)
				hi, _ := quality.ClassLimit(code, class)
				p.conc[code] = (lo + hi) / 2
			}
		}
		if len(p.conc) == 0 {
			return p, fmt.Errorf("scenario %s: station %s reports none of codmn_mgl, nh3n_mgl, tp_mgl", name, st.ID)
		}
		p.rise, p.hold, p.fall = pollutionRamp, pollutionHold, pollutionRamp
		p.end = nutrientReport(st, start.Add(p.rise+p.hold+p.fall))
		return p, nil
	case ScenarioSensorSpike:
		if err := level(); err != nil {
			return p, err
		}
		sp := st.QC["level_m"].Spike
		if sp == nil || sp.Fail <= 0 {
			return p, fmt.Errorf("scenario %s: station %s has no spike test on level_m", name, st.ID)
		}
		p.jump = min(max(spikeJump, 1.25*sp.Fail), 1.75*sp.Fail)
		p.hold = spikeFor
	case ScenarioSensorStuck:
		if err := level(); err != nil {
			return p, err
		}
		fl := st.QC["level_m"].FlatLine
		if fl == nil || fl.Tolerance <= 0 {
			return p, fmt.Errorf("scenario %s: station %s has no flat-line test on level_m", name, st.ID)
		}
		window := func(t time.Time) time.Duration { _, fail := fl.Windows(t.In(reading.Zone).Month()); return fail }
		w := window(start)
		if later := window(start.Add(w + stuckExtra)); later > w {
			w = later // the freeze runs into a month that waits longer
		}
		if w < time.Duration(st.Interval) {
			return p, fmt.Errorf("scenario %s: station %s's level_m flat-line fail window is shorter than its interval", name, st.ID)
		}
		p.hold, p.fall = w+stuckExtra, stuckCatchUp
	case ScenarioDrift:
		if err := level(); err != nil {
			return p, err
		}
		p.end = start.Add(driftFor)
		return p, nil
	case ScenarioStorm:
		if !st.Reports("rain_total_mm") {
			return p, fmt.Errorf("scenario %s: station %s does not report rain_total_mm", name, st.ID)
		}
		limit, ok := st.Limits["rain_1h_warning_mm"]
		if !ok || limit <= 0 || limit > stormMaxLimit {
			return p, fmt.Errorf("scenario %s: station %s needs a rain_1h_warning_mm above 0 and at most %g", name, st.ID, stormMaxLimit)
		}
		p.rain = stormPeak * limit
		p.rise, p.hold, p.fall = stormRamp, stormHold, stormRamp
		p.end = start.Add(p.rise + p.hold + p.fall + stormWindow)
		return p, nil
	default:
		return p, fmt.Errorf("scenario %q: unknown; choose from %s", name, strings.Join(Scenarios, ", "))
	}
	p.end = start.Add(p.rise + p.hold + p.fall)
	return p, nil
}

// ramp returns how long a ramp of the stage takes: want, but long enough
// that a change of up to far metres keeps each step below the spike limit,
// and, when minRate > 0, short enough that a change of near metres goes at
// minRate m/h or faster; in whole reporting intervals.
func ramp(st *registry.Station, t time.Time, far, near float64, want time.Duration, minRate float64) time.Duration {
	iv := time.Duration(st.Interval)
	d := want
	if minRate > 0 && near > 0 {
		d = min(d, time.Duration(near/minRate*float64(time.Hour)))
	}
	if step := maxStep(st, t); far > 0 && !math.IsInf(step, 1) {
		d = max(d, time.Duration(math.Ceil(far/step))*iv)
	}
	d = (d + iv - 1) / iv * iv
	return max(d, iv)
}

// maxStep is the largest change of the stage between two readings of a
// ramp at st in the month of t: +Inf without a spike test.
func maxStep(st *registry.Station, t time.Time) float64 {
	sp := st.QC["level_m"].Spike
	if sp == nil || sp.Suspect <= 0 || slices.Contains(sp.SkipMonths, int(t.In(reading.Zone).Month())) {
		return math.Inf(1)
	}
	return stepShare * 2 * sp.Suspect
}

// normalFlows bounds the flow of st's normal model around t (no storm
// flood): the seasonal mean, the diurnal melt cycle and three deviations of
// the slow noise.
func normalFlows(st *registry.Station, t time.Time) (lo, hi float64) {
	local := t.In(reading.Zone)
	q := meanFlow(st) * seasonal(local, flowFactor)
	m := melt(st, int(local.Month())-1)
	return q * (1 - m) * math.Exp(-noiseSpread), q * (1 + m) * math.Exp(noiseSpread)
}

// nutrientReport is the first reading at or after t that carries the
// nutrient analysers' values, on the grid of st's interval that Run keeps.
func nutrientReport(st *registry.Station, t time.Time) time.Time {
	iv := time.Duration(st.Interval)
	at := t.Truncate(iv)
	if at.Before(t) {
		at = at.Add(iv)
	}
	for !nutrientsDue(st, at) {
		at = at.Add(iv)
	}
	return at
}

// WithScenarios makes the station play the named scenarios from start (the
// scenario start itself: Run passes the run's start + ScenarioLead unless
// told otherwise). Names the station cannot play (CanPlay) are left out.
func (s *Station) WithScenarios(names []string, start time.Time) *Station {
	for _, name := range names {
		if p, err := planFor(name, s.st, start); err == nil {
			s.plans = append(s.plans, p)
		}
	}
	if len(s.plans) > 0 {
		s.calm = true
	}
	return s
}

// riverScenario changes the river's true stage h at t while a flood or a
// dry spell is played; changed is false when it did not. A flood only
// raises the river, a dry spell only lowers it.
func (s *Station) riverScenario(t time.Time, h float64) (_ float64, changed bool) {
	for i := range s.plans {
		p := &s.plans[i]
		since := t.Sub(p.start)
		if since < 0 || !t.Before(p.end) {
			continue
		}
		switch p.name {
		case ScenarioFlood:
			if c := h + p.weight(t)*(p.stage-h); c > h {
				h, changed = c, true
			}
		case ScenarioLowFlow:
			c := p.stage + comeBackRate*(since-p.rise-p.hold).Hours()
			if since < p.rise+p.hold {
				c = h + p.weight(t)*(p.stage-h)
			}
			if c < h {
				h, changed = c, true
			}
		}
	}
	return h, changed
}

// pollution returns the concentration of code at t while a pollution
// pulse is played: v, the normal value, drawn towards the pulse's level;
// spread is v's random factor, of which the pulse keeps a quarter.
func (s *Station) pollution(t time.Time, code string, v, spread float64) float64 {
	for i := range s.plans {
		p := &s.plans[i]
		if c, ok := p.conc[code]; ok {
			if w := p.weight(t); w > 0 {
				v = max(v, v+w*(c*math.Pow(spread, 0.25)-v))
			}
		}
	}
	return v
}

// sensorScenario alters what the stage gauge reports (not the river).
func (s *Station) sensorScenario(t time.Time, values map[string]float64) {
	v, ok := values["level_m"]
	if !ok || len(s.plans) == 0 {
		return
	}
	for i := range s.plans {
		p := &s.plans[i]
		since := t.Sub(p.start)
		if since < 0 {
			continue
		}
		switch p.name {
		case ScenarioDrift:
			v += driftPerDay * min(since.Hours(), driftFor.Hours()) / 24
		case ScenarioSensorSpike:
			if t.Before(p.end) && since%spikeEvery < time.Duration(s.st.Interval) {
				v += p.jump
			}
		case ScenarioSensorStuck:
			if !p.frozenSet {
				p.frozen, p.frozenSet = v, true
			}
			switch free := since - p.hold + time.Duration(s.st.Interval); {
			case since < p.hold:
				v = p.frozen
			case t.Before(p.end):
				// Comes free towards the river at comeBackRate at most.
				d, most := v-p.frozen, comeBackRate*free.Hours()
				v = p.frozen + math.Copysign(min(math.Abs(d), most), d)
			}
		}
	}
	values["level_m"] = round(v, 3)
}

// flowAt is the flow of st's rating curve and shift in force at t for the
// gauge reading h (the inverse of stageAt).
func flowAt(st *registry.Station, mean float64, t time.Time, h float64) float64 {
	r, err := hydro.RatingAt(st.Rating, t)
	if err != nil {
		return mean * math.Pow(math.Max(h-0.2, 0), 1/0.55)
	}
	h += hydro.ShiftAt(st.Shifts, t) // the effective stage
	if q, err := hydro.Flow(r, h); err == nil {
		return q
	}
	first, last := r.Segments[0], r.Segments[len(r.Segments)-1]
	if h < first.HMin {
		return 0
	}
	return last.C * math.Pow(h-last.E, last.B)
}
