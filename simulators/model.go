// Package simulators stands in for the field stations: signal models that
// produce plausible readings for Tibetan rivers (snow and glacier melt,
// July–September monsoon floods, winter low flow under ice, a diurnal melt
// pulse, dissolved oxygen limited by altitude, monsoon showers on the rain
// gauges), and a publisher that sends them the way real stations do:
// native JSON over MQTT, HJ 212-2017 from water-quality analysers and SL
// 651-2014 from level, flow and rain RTUs. The same seed gives the same
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

// showersPerDay is the mean number of showers a day at the rain gauges in
// each month (mid-month values): about 85 % of the year's rain falls from
// June to September (domain.md §7.1, §7.5); from November to March the
// gauges stay dry (what falls then is snow, which an unheated tipping
// bucket does not count).
var showersPerDay = [12]float64{0, 0, 0, 0.05, 0.2, 0.8, 1.2, 1.1, 0.7, 0.1, 0, 0}

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

	// The rain gauge, for a station that reports rain_mm or
	// rain_total_mm. Its randomness is its own, so that the gauge changes
	// none of the station's other signals.
	rainy     bool
	rainRNG   *rand.Rand
	shower    shower
	rainExact float64 // mm of normal rain since the run started
	stormRain float64 // mm of played storm rain (kept apart: see rainfall)
	rainBase  int64   // the counter at the start, in 0.1 mm tips
	rainTips  int64   // the counter at the last reading

	plans []plan // the scenarios it plays
	calm  bool   // no storm floods: it plays a scenario
}

type flood struct {
	start, peak, end time.Time
	factor           float64
}

// shower is one monsoon shower at a rain gauge: the intensity rises
// linearly to peak (mm/h) over rise, then falls back to 0 over fall.
type shower struct {
	start      time.Time
	rise, fall time.Duration
	peak       float64
}

func (w shower) end() time.Time { return w.start.Add(w.rise + w.fall) }

// NewStation returns the model of st; seed and st's id fix its randomness.
func NewStation(st *registry.Station, seed uint64) *Station {
	h := uint64(14695981039346656037)
	for _, c := range []byte(st.ID) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	mean := meanFlow(st)
	s := &Station{st: st, rng: rand.New(rand.NewPCG(seed, h)), mean: mean, volume: 1e6 * mean}
	if st.Reports("rain_mm") || st.Reports("rain_total_mm") {
		s.rainy = true
		s.rainRNG = rand.New(rand.NewPCG(seed, h^0x9E3779B97F4A7C15))
		// A counter that has run for a few years since its last reset:
		// 100.0 to 2,099.9 mm.
		s.rainBase = 1000 + s.rainRNG.Int64N(20000)
		s.rainTips = s.rainBase
	}
	return s
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
	if s.rainy {
		s.rainfall(t, dt, values)
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

// rainfall sets the rain gauge's values at t: rain_mm, what fell in the
// interval dt ending at t, and rain_total_mm, the gauge's counter. The
// gauge is a tipping bucket of 0.1 mm: both are whole tips, and rain_mm is
// exactly the counter's step (SL 651 PJ and PT, N(5,1) and N(6,1)).
//
// Showers come at random, more at night (the monsoon rains of the plateau
// are mostly nocturnal), one at a time, 45 min to 4 h long, with a peak of
// 0.6 to 8 mm/h (mostly light): an hour's rain stays below 8 mm, well
// under the 20 mm/h of RainfallHeavy. A storm played adds its own rain;
// normal and storm rain are counted in tips apart, so that after the storm
// rain_mm is again exactly what it would have been without it.
func (s *Station) rainfall(t time.Time, dt time.Duration, values map[string]float64) {
	from := t.Add(-dt)
	if !t.Before(s.shower.end()) {
		local := t.In(reading.Zone)
		hour := float64(local.Hour()) + float64(local.Minute())/60
		perDay := seasonal(local, showersPerDay) * (1 + 0.6*math.Cos(2*math.Pi*(hour-2)/24)) // most around 02:00
		if s.rainRNG.Float64() < perDay*dt.Hours()/24 {
			d := 45*time.Minute + time.Duration(s.rainRNG.Float64()*float64(195*time.Minute))
			u := s.rainRNG.Float64()
			s.shower = shower{start: t, rise: d / 3, fall: d - d/3, peak: 0.6 + 7.4*u*u}
		}
	}
	w := s.shower
	s.rainExact += w.peak * trapezoid(w.start, w.rise, 0, w.fall, from, t)
	for i := range s.plans {
		if p := &s.plans[i]; p.name == ScenarioStorm {
			s.stormRain += p.rain * trapezoid(p.start, p.rise, p.hold, p.fall, from, t)
		}
	}
	tips := s.rainBase + int64(math.Floor(s.rainExact*10+1e-9)) + int64(math.Floor(s.stormRain*10+1e-9))
	if s.st.Reports("rain_mm") {
		values["rain_mm"] = float64(tips-s.rainTips) / 10
	}
	if s.st.Reports("rain_total_mm") {
		values["rain_total_mm"] = float64(tips) / 10
	}
	s.rainTips = tips
}

// trapezoid is the integral over [a, b], in hours, of a pulse that starts
// at start, rises linearly from 0 to 1 over rise, holds 1 over hold and
// falls back to 0 over fall.
func trapezoid(start time.Time, rise, hold, fall time.Duration, a, b time.Time) float64 {
	r, h, f := rise.Hours(), hold.Hours(), fall.Hours()
	upTo := func(t time.Time) float64 {
		switch x := t.Sub(start).Hours(); {
		case x <= 0:
			return 0
		case x < r:
			return x * x / (2 * r)
		case x < r+h:
			return r/2 + x - r
		case x < r+h+f:
			y := r + h + f - x
			return r/2 + h + f/2 - y*y/(2*f)
		}
		return r/2 + h + f/2
	}
	return upTo(b) - upTo(a)
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

// stageAt is the gauge reading at which st's rating curve and shift in
// force at t pass q (mean is the station's mean flow, for the generic power
// law of a station without a curve). Where two segments do not quite meet, a flow between
// them reads as the stage of the break; above the rated range the last
// segment goes on: the gauge still reads there.
func stageAt(st *registry.Station, mean float64, t time.Time, q float64) float64 {
	r, err := hydro.RatingAt(st.Rating, t)
	if err != nil {
		return 0.2 + math.Pow(math.Max(q, 0)/mean, 0.55)
	}
	// The curve gives the effective stage; the gauge reads it less the
	// shift in force (hydro.RatedFlow adds the shift back).
	dh := hydro.ShiftAt(st.Shifts, t)
	if h, err := hydro.Stage(r, q); err == nil {
		return h - dh
	}
	for _, sg := range r.Segments {
		if h := sg.E + math.Pow(math.Max(q, 0)/sg.C, 1/sg.B); h <= sg.HMax {
			return math.Max(h, sg.HMin) - dh
		}
	}
	last := r.Segments[len(r.Segments)-1]
	return last.E + math.Pow(math.Max(q, 0)/last.C, 1/last.B) - dh
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
