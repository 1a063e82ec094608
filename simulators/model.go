// Package simulators stands in for the field stations: signal models that
// produce plausible readings for Tibetan rivers (snow and glacier melt,
// July–September monsoon floods, winter low flow under ice, a diurnal melt
// pulse, dissolved oxygen limited by altitude), and a publisher that sends
// them over MQTT the way real stations do. The same seed gives the same
// readings.
package simulators

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// flowFactor is the mean flow of each month as a share of the annual mean
// (domain.md §7.5: August ≈ 25 % of annual runoff, ≈ 15 × the lowest month).
var flowFactor = [12]float64{0.26, 0.21, 0.20, 0.24, 0.40, 1.06, 2.47, 3.03, 2.27, 1.01, 0.50, 0.34}

// waterTemp is the mean water temperature of each month, °C, for a lower
// reach; glacier-fed sections run cooler (domain.md §7.7).
var waterTemp = [12]float64{0.6, 1.0, 2.5, 5.5, 8.0, 11.0, 13.0, 13.0, 11.0, 7.0, 3.5, 1.2}

// Station generates one station's readings in time order.
type Station struct {
	st     *registry.Station
	rng    *rand.Rand
	mean   float64
	noise  float64 // AR(1) log-flow noise
	turb   float64 // AR(1) log-turbidity noise
	flood  flood
	volume float64
	last   time.Time

	plans []plan // the scenarios it plays
	calm  bool   // no storm floods: it plays a scenario
}

type flood struct {
	start, peak, end time.Time
	factor           float64
}

// NewStation returns the model of st; seed and st's id fix its randomness.
func NewStation(st *registry.Station, seed uint64) *Station {
	h := uint64(14695981039346656037)
	for _, c := range []byte(st.ID) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	mean := meanFlow(st)
	return &Station{st: st, rng: rand.New(rand.NewPCG(seed, h)), mean: mean, volume: 1e6 * mean}
}

// meanFlow is the mean annual flow of st's model, m³/s.
func meanFlow(st *registry.Station) float64 {
	if st.Sim != nil && st.Sim.MeanFlowM3s > 0 {
		return st.Sim.MeanFlowM3s
	}
	return 20
}

// melt is the relative amplitude of st's diurnal flow cycle in month m
// (0–11): the afternoon melt of glacier-fed rivers, strongest in summer.
func melt(st *registry.Station, m int) float64 {
	if st.Sim != nil && st.Sim.GlacierFed && m >= 3 && m <= 9 {
		if m >= 5 && m <= 8 {
			return 0.22
		}
		return 0.1
	}
	return 0.05
}

// nutrientsDue reports whether st's reading at t carries the nutrient
// analysers' values: they run hourly cycles, so the values come with the
// first reading of each hour (with every reading of an hourly station).
func nutrientsDue(st *registry.Station, t time.Time) bool {
	iv := time.Duration(st.Interval)
	return iv >= time.Hour || t.In(reading.Zone).Minute() < int(iv/time.Minute)
}

// ID is the station id.
func (s *Station) ID() string { return s.st.ID }

// Next returns the sample at t, which must be later than the previous one.
func (s *Station) Next(t time.Time) reading.Sample {
	dt := t.Sub(s.last)
	if s.last.IsZero() || dt <= 0 || dt > 24*time.Hour {
		dt = time.Duration(s.st.Interval)
	}
	s.last = t
	local := t.In(reading.Zone)
	month := seasonal(local, flowFactor)
	hour := float64(local.Hour()) + float64(local.Minute())/60
	m := int(local.Month()) - 1

	// Discharge: seasonal mean × diurnal melt pulse × storm flood × slow
	// noise. A flood or a dry spell played sets the true stage; the flow
	// follows it through the rating curve.
	diurnal := 1 + melt(s.st, m)*math.Sin(2*math.Pi*(hour-14)/24) // trough mid-morning, peak in the evening
	s.noise = 0.995*s.noise + 0.01*s.rng.NormFloat64()
	storm := 1.0
	if !s.calm {
		storm = s.floodFactor(t, m)
	}
	normal := s.mean * month * diurnal * storm * math.Exp(s.noise)
	q := normal
	h, changed := s.riverScenario(t, s.stage(t, normal))
	if changed {
		q = flowAt(s.st, s.mean, t, h)
	}
	ratio := q / s.mean

	values := map[string]float64{}
	if s.st.Reports("flow_m3s") {
		values["flow_m3s"] = round(q*(1+0.01*s.rng.NormFloat64()), 3)
	}
	if s.st.Reports("level_m") {
		values["level_m"] = round(h+0.002*s.rng.NormFloat64(), 3)
	}
	if s.st.Reports("velocity_ms") {
		values["velocity_ms"] = round(0.25+0.55*math.Pow(ratio, 0.4)+0.01*s.rng.NormFloat64(), 3)
	}
	s.volume += q * dt.Seconds()
	if s.st.Reports("volume_m3") {
		values["volume_m3"] = math.Round(s.volume)
	}
	temp := seasonal(local, waterTemp)
	if s.st.Sim != nil && s.st.Sim.GlacierFed {
		temp *= 0.6
	}
	amp := 1.0
	if m >= 4 && m <= 8 {
		amp = 2.5
	}
	temp += amp*math.Sin(2*math.Pi*(hour-10)/24) + 0.05*s.rng.NormFloat64() // peak mid-afternoon
	temp = math.Max(temp, 0)                                                // liquid water; a sensor in ice reads ≈ 0
	if s.st.Reports("water_temp_c") {
		values["water_temp_c"] = round(temp, 2)
	}
	sun := math.Max(0, math.Sin(2*math.Pi*(hour-8)/24)) // photosynthesis, early afternoon
	if s.st.Reports("ph") {
		values["ph"] = round(8.35-0.15*math.Min(ratio/3, 1)+0.15*sun+0.03*s.rng.NormFloat64(), 2)
	}
	if s.st.Reports("do_mgl") {
		sat := quality.DOSaturation(temp, s.st.ElevationM)
		values["do_mgl"] = round(sat*(0.9+0.12*sun+0.01*s.rng.NormFloat64()), 2)
	}
	if s.st.Reports("cond_uscm") {
		values["cond_uscm"] = round(430-170*math.Min(ratio/3, 1)+5*s.rng.NormFloat64(), 1)
	}
	if s.st.Reports("turb_ntu") {
		// Sediment comes and goes over hours, not from one reading to the
		// next: independent noise of 10 % made spikes of more than the
		// QC fail step (1000 NTU) at flood turbidities. The same spread,
		// correlated from reading to reading.
		s.turb = 0.9*s.turb + 0.0436*s.rng.NormFloat64()
		values["turb_ntu"] = round(math.Min(4000, 4+120*math.Pow(ratio, 2)*math.Exp(s.turb)), 1)
	}
	// Nutrient analysers run hourly cycles: their values come once an
	// hour. They follow the river without a played flood or dry spell: a
	// scenario changes what it names, and a flood that washed the station
	// out of its water-quality class would be a pollution event too.
	if nutrientsDue(s.st, t) {
		base := normal / s.mean
		nut := func(code string, v float64) {
			if s.st.Reports(code) {
				spread := math.Exp(0.08 * s.rng.NormFloat64())
				values[code] = round(s.pollution(t, code, v*spread, spread), 3)
			}
		}
		nut("codmn_mgl", 0.8+0.9*math.Pow(base, 0.8))
		nut("nh3n_mgl", 0.06+0.05*math.Sqrt(base))
		nut("tp_mgl", 0.02+0.03*math.Pow(base, 1.2))
		nut("tn_mgl", 0.45+0.2*math.Sqrt(base))
	}
	s.sensorScenario(t, values)
	sample := reading.Sample{Time: t}
	for _, p := range reading.Params() {
		if v, ok := values[p.Code]; ok {
			sample.Values = append(sample.Values, reading.Value{Code: p.Code, Value: v})
		}
	}
	return sample
}

// Status returns the device health report at t.
func (s *Station) Status(t time.Time) reading.Status {
	local := t.In(reading.Zone)
	hour := float64(local.Hour()) + float64(local.Minute())/60
	air := 8 - 12*math.Cos(2*math.Pi*float64(local.YearDay()-15)/365) + 8*math.Sin(2*math.Pi*(hour-9)/24) - s.st.ElevationM/400 + 8
	solar := math.Max(0, math.Sin(2*math.Pi*(hour-7)/24))
	battery := round(12.4+1.2*solar-0.01*math.Max(0, -air)+0.05*s.rng.NormFloat64(), 2)
	signal := math.Round(-88 + 6*s.rng.NormFloat64())
	enclosure := round(air+5*solar, 1)
	return reading.Status{Time: t, HasTime: true, Online: true, BatteryV: &battery, SignalDBm: &signal, EnclosureTempC: &enclosure}
}

// floodFactor raises the flow during monsoon storm floods: events of one to
// three days, a fast rise and a slower recession. They come at random and
// take the stage past the warning and critical levels and the water
// quality (through the flow) out of its class: a station that plays a
// scenario has none.
func (s *Station) floodFactor(t time.Time, month int) float64 {
	if t.After(s.flood.end) && month >= 5 && month <= 8 {
		// About one flood in twelve days of the monsoon.
		p := float64(time.Duration(s.st.Interval)) / float64(12*24*time.Hour)
		if s.rng.Float64() < p {
			d := time.Duration(24+s.rng.IntN(48)) * time.Hour
			s.flood = flood{start: t, peak: t.Add(d / 4), end: t.Add(d), factor: 1.5 + 1.5*s.rng.Float64()}
		}
	}
	f := s.flood
	switch {
	case t.Before(f.start) || t.After(f.end):
		return 1
	case t.Before(f.peak):
		return 1 + (f.factor-1)*float64(t.Sub(f.start))/float64(f.peak.Sub(f.start))
	default:
		return 1 + (f.factor-1)*float64(f.end.Sub(t))/float64(f.end.Sub(f.peak))
	}
}

// stage turns a flow into the gauge reading through the station's rating
// curve, or a generic power law when it has none.
func (s *Station) stage(t time.Time, q float64) float64 { return stageAt(s.st, s.mean, t, q) }

// stageAt is the stage at which st's rating curve in force at t passes q
// (mean is the station's mean flow, for the generic power law of a station
// without a curve). Where two segments do not quite meet, a flow between
// them reads as the stage of the break; above the rated range the last
// segment goes on: the gauge still reads there.
func stageAt(st *registry.Station, mean float64, t time.Time, q float64) float64 {
	r, err := hydro.RatingAt(st.Rating, t)
	if err != nil {
		return 0.2 + math.Pow(math.Max(q, 0)/mean, 0.55)
	}
	if h, err := hydro.Stage(r, q); err == nil {
		return h
	}
	for _, sg := range r.Segments {
		if h := sg.E + math.Pow(math.Max(q, 0)/sg.C, 1/sg.B); h <= sg.HMax {
			return math.Max(h, sg.HMin)
		}
	}
	last := r.Segments[len(r.Segments)-1]
	return last.E + math.Pow(math.Max(q, 0)/last.C, 1/last.B)
}

// seasonal interpolates a monthly table (values at mid-month) at t.
func seasonal(t time.Time, table [12]float64) float64 {
	doy := float64(t.YearDay()-1) + float64(t.Hour())/24
	pos := doy/365.25*12 - 0.5 // months since mid-January
	i := int(math.Floor(pos))
	frac := pos - float64(i)
	a, b := table[(i+12)%12], table[(i+13)%12]
	return a + (b-a)*frac
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
