package simulators

import (
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

func loadRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg, err := registry.LoadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func series(st *registry.Station, seed uint64, from time.Time, n int, step time.Duration) []reading.Sample {
	m := NewStation(st, seed)
	out := make([]reading.Sample, n)
	for i := range out {
		out[i] = m.Next(from.Add(time.Duration(i) * step))
	}
	return out
}

func TestSameSeedSameReadings(t *testing.T) {
	reg := loadRegistry(t)
	st := reg.Station("nianchu-gyantse")
	from := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	a := series(st, 42, from, 2000, 5*time.Minute)
	b := series(st, 42, from, 2000, 5*time.Minute)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different readings")
	}
	c := series(st, 43, from, 2000, 5*time.Minute)
	if reflect.DeepEqual(a, c) {
		t.Fatal("another seed gave the same readings")
	}
}

func mean(samples []reading.Sample, code string) float64 {
	var sum float64
	var n int
	for _, s := range samples {
		for _, v := range s.Values {
			if v.Code == code {
				sum += v.Value
				n++
			}
		}
	}
	return sum / float64(n)
}

// TestSignalsFollowTheTibetanRegime checks the shape of a year: monsoon
// flow far above winter low flow, water near 0 °C in winter, dissolved
// oxygen below the sea-level saturation, every value a valid reading.
func TestSignalsFollowTheTibetanRegime(t *testing.T) {
	reg := loadRegistry(t)
	st := reg.Station("nianchu-mouth")
	jan := series(st, 1, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), 288*7, 5*time.Minute)
	aug := series(st, 1, time.Date(2026, 8, 10, 0, 0, 0, 0, time.UTC), 288*7, 5*time.Minute)
	qJan, qAug := mean(jan, "flow_m3s"), mean(aug, "flow_m3s")
	if qAug < 8*qJan {
		t.Errorf("August mean flow %.1f is not far above January's %.1f", qAug, qJan)
	}
	if q := st.Sim.MeanFlowM3s; qJan > 0.5*q || qAug < 2*q {
		t.Errorf("January %.1f / August %.1f m³/s against the annual mean %.0f", qJan, qAug, q)
	}
	if tw := mean(jan, "water_temp_c"); tw < 0 || tw > 3 {
		t.Errorf("January water temperature %.2f °C, want 0–3", tw)
	}
	if ts := mean(aug, "water_temp_c"); ts < 8 || ts > 18 {
		t.Errorf("August water temperature %.2f °C, want 8–18", ts)
	}
	if do := mean(aug, "do_mgl"); do > 7.5 || do < 4 {
		t.Errorf("August DO %.2f mg/L at %g m; saturation there is about 6", do, st.ElevationM)
	}
	if lj, la := mean(jan, "level_m"), mean(aug, "level_m"); la <= lj {
		t.Errorf("August stage %.2f m not above January's %.2f m", la, lj)
	}
	for _, s := range append(jan, aug...) {
		m := reading.Message{Station: st.ID, Samples: []reading.Sample{s}}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, rejs := reading.DecodeMessage(b, s.Time)
		if got == nil || len(rejs) > 0 {
			t.Fatalf("simulated sample does not decode cleanly: %s %v", b, rejs)
		}
	}
}

func TestGlacierFedMeltPulse(t *testing.T) {
	reg := loadRegistry(t)
	st := reg.Station("gyirong-zongga")
	day := series(st, 7, time.Date(2026, 7, 20, 16, 0, 0, 0, time.UTC), 288, 5*time.Minute) // 00:00 to 24:00 Beijing time
	morning, evening := day[9*12].Values, day[21*12].Values                                 // 09:00 and 21:00 local
	get := func(vs []reading.Value, code string) float64 {
		for _, v := range vs {
			if v.Code == code {
				return v.Value
			}
		}
		t.Fatalf("no %s", code)
		return 0
	}
	if get(evening, "flow_m3s") <= get(morning, "flow_m3s") {
		t.Errorf("melt pulse: evening flow %.2f not above morning %.2f", get(evening, "flow_m3s"), get(morning, "flow_m3s"))
	}
}

// TestStageFollowsTheRatingAcrossBreaks sweeps each station's flow from a
// trickle to twice its highest rated flow, finely around each break
// between segments: the gauge reading never falls as the flow rises and
// never jumps. Where the two segments of a curve missed each other by a
// rounding, a flow between them used to read as the top of the rated range
// (6.48 m at Gyantse instead of 2.27 m).
func TestStageFollowsTheRatingAcrossBreaks(t *testing.T) {
	reg := loadRegistry(t)
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for i := range reg.Stations {
		st := &reg.Stations[i]
		m := NewStation(st, 1)
		segs := st.Rating[len(st.Rating)-1].Segments
		flow := func(sg registry.Segment, h float64) float64 { return sg.C * math.Pow(h-sg.E, sg.B) }
		top := segs[len(segs)-1]
		var qs []float64
		for q := flow(top, top.HMax) / 1000; q < 2*flow(top, top.HMax); q *= 1.001 {
			qs = append(qs, q)
		}
		for k := 1; k < len(segs); k++ {
			a, b := flow(segs[k-1], segs[k-1].HMax), flow(segs[k], segs[k].HMin)
			lo, hi := 0.999*min(a, b), 1.001*max(a, b)
			for n := range 2001 {
				qs = append(qs, lo+(hi-lo)*float64(n)/2000)
			}
		}
		slices.Sort(qs)
		prev := m.stage(at, qs[0])
		for _, q := range qs[1:] {
			h := m.stage(at, q)
			if h < prev-1e-9 || h-prev > 0.05 {
				t.Fatalf("%s: stage %.4f m after %.4f m at %.3f m³/s", st.ID, h, prev, q)
			}
			prev = h
		}
	}
}

// TestTurbidityPassesQCInTheMonsoon runs a monsoon month of a glacier-fed
// water-quality section, storm floods included, through the turbidity QC
// of the registry: turbidity high in a flood is not a sensor fault.
func TestTurbidityPassesQCInTheMonsoon(t *testing.T) {
	reg := loadRegistry(t)
	st := reg.Station("pumqu-chentang")
	for seed := uint64(1); seed <= 4; seed++ {
		ser := quality.NewSeries(st.QC["turb_ntu"], time.Duration(st.Interval))
		for _, s := range series(st, seed, time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC), 28*288, 5*time.Minute) {
			v, _ := value(s, "turb_ntu")
			f, rev := ser.Add(s.Time, v)
			if f.Aggregate() == quality.Fail || rev != nil && rev.Flag == quality.Fail {
				t.Fatalf("seed %d: turbidity %.1f NTU at %s (or the reading before) fails QC", seed, v, s.Time.Format(time.RFC3339))
			}
		}
	}
}

// TestRainFollowsTheMonsoon runs a year of each rain gauge: dry in winter,
// most of the rain from June to September, a plausible annual total for
// the Himalayan slopes, a counter that only grows in whole 0.1 mm tips and
// whose steps are the interval amounts, and an hour's rain that stays well
// under the RainfallHeavy limit (the normal weather pages nobody). A
// station without a gauge reports no rain.
func TestRainFollowsTheMonsoon(t *testing.T) {
	reg := loadRegistry(t)
	gauges := 0
	for i := range reg.Stations {
		st := &reg.Stations[i]
		if !st.Reports("rain_total_mm") {
			continue
		}
		gauges++
		t.Run(st.ID, func(t *testing.T) {
			t.Parallel()
			limit := st.Limits["rain_1h_warning_mm"]
			from := time.Date(2026, 1, 1, 0, 0, 0, 0, reading.Zone)
			// The gauge alone: the rain depends on nothing else the
			// station reports, and a year of water quality is slow.
			gauge := *st
			gauge.Params = []string{"rain_mm", "rain_total_mm"}
			year := series(&gauge, 1, from, 365*288, 5*time.Minute)
			var monthly [12]float64
			var total, wettest float64
			var hour []float64 // the counter over the past hour
			prev := math.NaN()
			for _, s := range year {
				rain, ok1 := value(s, "rain_mm")
				counter, ok2 := value(s, "rain_total_mm")
				if !ok1 || !ok2 {
					t.Fatalf("%s: no rain values", s.Time.Format(time.RFC3339))
				}
				if tips := rain * 10; rain < 0 || math.Abs(tips-math.Round(tips)) > 1e-9 {
					t.Fatalf("%s: rain_mm %v is not whole 0.1 mm tips", s.Time.Format(time.RFC3339), rain)
				}
				if !math.IsNaN(prev) && math.Abs(counter-prev-rain) > 1e-6 {
					t.Fatalf("%s: the counter went from %.1f to %.1f, rain_mm says %.1f", s.Time.Format(time.RFC3339), prev, counter, rain)
				}
				prev = counter
				monthly[s.Time.In(reading.Zone).Month()-1] += rain
				total += rain
				if hour = append(hour, counter); len(hour) > 13 {
					hour = hour[1:]
				}
				wettest = max(wettest, hour[len(hour)-1]-hour[0])
			}
			monsoon := monthly[5] + monthly[6] + monthly[7] + monthly[8]
			if total < 300 || total > 1000 {
				t.Errorf("%.0f mm in the year, want 300–1,000 mm", total)
			}
			if monsoon < 0.8*total {
				t.Errorf("June–September %.0f mm of %.0f mm, want 80 %% or more", monsoon, total)
			}
			if winter := monthly[11] + monthly[0] + monthly[1]; winter != 0 {
				t.Errorf("%.1f mm from December to February, want a dry winter", winter)
			}
			if wettest >= limit/2 {
				t.Errorf("the wettest hour brought %.1f mm, want well under the %g mm/h of RainfallHeavy", wettest, limit)
			}
			t.Logf("%.0f mm, %.0f %% June–September, wettest hour %.1f mm, counter %.1f → %.1f mm", total, 100*monsoon/total, wettest,
				mean(year[:1], "rain_total_mm"), prev)
		})
	}
	if gauges != 4 {
		t.Errorf("%d rain gauges in the registry, want the four southern sections", gauges)
	}
	for _, s := range series(reg.Station("nianchu-mouth"), 1, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), 288, 5*time.Minute) {
		if _, ok := value(s, "rain_mm"); ok {
			t.Fatal("a station without a rain gauge reports rain_mm")
		}
	}
}
