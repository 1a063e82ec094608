package simulators

import (
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

func value(s reading.Sample, code string) (float64, bool) {
	for _, v := range s.Values {
		if v.Code == code {
			return v.Value, true
		}
	}
	return 0, false
}

func TestScenariosChangeWhatTheyClaim(t *testing.T) {
	reg := loadRegistry(t)
	start := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	play := func(id string, names []string, n int) []reading.Sample {
		m := NewStation(reg.Station(id), 5).WithScenarios(names, start)
		out := make([]reading.Sample, n)
		for i := range out {
			out[i] = m.Next(start.Add(time.Duration(i) * 5 * time.Minute))
		}
		return out
	}
	at := func(h float64) int { return int(h * 12) }
	st := "nianchu-mouth"
	base := play(st, nil, 400)

	flood := play(st, []string{ScenarioFlood}, 400)
	q0, _ := value(base[at(13)], "flow_m3s")
	q1, _ := value(flood[at(13)], "flow_m3s")
	if q1 < 4*q0 {
		t.Errorf("flood: flow %.1f at the peak, %.1f without", q1, q0)
	}
	if a, _ := value(flood[at(0.5)], "flow_m3s"); a != must(value(base[at(0.5)], "flow_m3s")) {
		t.Error("the flood began before its lead time")
	}

	low := play(st, []string{ScenarioLowFlow}, 400)
	if q, target := must(value(low[at(10)], "flow_m3s")), reg.Station(st).Limits["eflow_m3s"]; q > 0.9*target || q < 0.7*target {
		t.Errorf("lowflow: %.2f m³/s against a target of %.1f", q, target)
	}

	poll := play(st, []string{ScenarioPollution}, 400)
	if n, ok := value(poll[at(13)], "nh3n_mgl"); !ok || n < 2 {
		t.Errorf("pollution: NH3-N %.2f at the peak hour, want above Class V (2.0)", n)
	}

	spike := play("yarlung-dazhuka", []string{ScenarioSensorSpike}, 400)
	plain := play("yarlung-dazhuka", nil, 400)
	if d := must(value(spike[at(1)], "level_m")) - must(value(plain[at(1)], "level_m")); d < 0.49 || d > 0.51 {
		t.Errorf("sensor-spike: +%.3f m", d)
	}
	if d := must(value(spike[at(1)+1], "level_m")) - must(value(plain[at(1)+1], "level_m")); d != 0 {
		t.Errorf("sensor-spike lasts more than one reading: +%.3f", d)
	}

	stuck := play("boqu-nyalam", []string{ScenarioSensorStuck}, 400)
	first := must(value(stuck[at(1)], "water_temp_c"))
	for _, smp := range stuck[at(1):] {
		if must(value(smp, "water_temp_c")) != first {
			t.Fatal("sensor-stuck: the water temperature moved")
		}
	}

	drift := play("yarlung-dazhuka", []string{ScenarioDrift}, 300)
	if d := must(value(drift[at(1)+288-1], "level_m")) - must(value(plain[at(1)+288-1], "level_m")); d < 0.049 || d > 0.051 {
		t.Errorf("drift after a day: +%.3f m, want +0.05", d)
	}

	if _, err := ParseScenarios([]string{"tsunami:nianchu-mouth"}); err == nil {
		t.Error("unknown scenario accepted")
	}
	got, err := ParseScenarios([]string{"flood:a,b", "drift:b"})
	if err != nil || len(got["b"]) != 2 || got["a"][0] != ScenarioFlood {
		t.Errorf("ParseScenarios: %v %v", got, err)
	}
}

func must(v float64, ok bool) float64 {
	if !ok {
		panic("value missing")
	}
	return v
}
