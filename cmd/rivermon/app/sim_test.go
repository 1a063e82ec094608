package app_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// TestSimulatedStationsArriveInInflux runs stationsim's engine for the 23
// stations of the shipped registry through Mosquitto and rivermon and counts
// every sample in InfluxDB.
func TestSimulatedStationsArriveInInflux(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-sim")
	reg := loadRegistry(t)
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	sum, err := simulators.Run(context.Background(), simulators.Options{
		Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start,
		Speed: 1e6, Duration: time.Hour, Seed: 3, ClientID: "sim-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 23 * 12; sum.Samples != want || sum.Errors != 0 {
		t.Fatalf("simulator sent %d samples with %d errors, want %d", sum.Samples, sum.Errors, want)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") == int64(sum.Samples)
	}, "InfluxDB does not hold the %d simulated samples", sum.Samples)
	ss, err := in.Query("rivermon", `SELECT count(level_m) FROM reading GROUP BY station`)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 23 {
		t.Fatalf("%d stations in InfluxDB, want 23", len(ss))
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "station_status", "online", "") >= 23
	}, "status messages missing")
	if got := svc.metric(`rivermon_messages_total{result="rejected"}`); got != 0 {
		t.Errorf("rivermon rejected %v simulated messages", got)
	}
}

// TestSimulatorScenariosAreRecognised runs stationsim's scenarios for two
// simulated days through Mosquitto and rivermon: the spiking gauge is
// flagged fail, the stuck stage suspect and then fail until it comes free
// (the water temperature goes on), the pollution pulse reaches the class
// two worse than the section's target, and the low flow goes below the
// ecological target.
func TestSimulatorScenariosAreRecognised(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-scenarios", sweep: 100 * time.Millisecond, grace: time.Minute})
	start := time.Date(2026, 10, 10, 0, 0, 0, 0, shanghai)
	scenarios, err := simulators.ParseScenarios([]string{"sensor-spike:yarlung-dazhuka", "sensor-stuck:nianchu-bainang",
		"pollution:xiangqu-namling", "lowflow:sagya-sagya"})
	if err != nil {
		t.Fatal(err)
	}
	reg := loadRegistry(t)
	sum, err := simulators.Run(context.Background(), simulators.Options{
		Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start, Speed: 1e9, Duration: 2 * 24 * time.Hour,
		Seed: 11, ClientID: "sim-scenarios", Scenarios: scenarios,
		Stations: []string{"yarlung-dazhuka", "nianchu-bainang", "xiangqu-namling", "sagya-sagya"},
	})
	if err != nil || sum.Errors != 0 {
		t.Fatalf("simulator: %v, %d errors", err, sum.Errors)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") == int64(sum.Samples)
	}, "not every simulated sample stored")
	lead := start.Add(simulators.ScenarioLead)
	// The gauge spikes +0.5 m for one reading every three hours for 12 h.
	for k := range 4 {
		at := lead.Add(time.Duration(k) * 3 * time.Hour)
		if got := field(t, in, "reading", "level_m_qc", "yarlung-dazhuka", at); got != "4" {
			t.Errorf("spike at %s: level_m_qc = %s, want 4", at.UTC(), got)
		}
	}
	// Stuck from the lead time on (October: the summer flat-line windows):
	// suspect once flat for 6 h, fail after 24 h, free again by the end.
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{6*time.Hour + 5*time.Minute, "3"}, {24*time.Hour + 30*time.Minute, "4"}} {
		if got := field(t, in, "reading", "level_m_qc", "nianchu-bainang", lead.Add(c.after)); got != c.want {
			t.Errorf("stuck %s: level_m_qc = %s, want %s", c.after, got, c.want)
		}
	}
	stuckEnd := simulators.ScenarioEnd(simulators.ScenarioSensorStuck, reg.Station("nianchu-bainang"), lead)
	if got := field(t, in, "reading", "level_m_qc", "nianchu-bainang", stuckEnd); got == "4" || got == "" {
		t.Errorf("stuck gauge at its end %s: level_m_qc = %q, want it free", stuckEnd.UTC(), got)
	}
	if got := field(t, in, "reading", "water_temp_c_qc", "nianchu-bainang", lead.Add(25*time.Hour)); got == "4" || got == "3" {
		t.Errorf("the water temperature is stuck too: water_temp_c_qc = %s", got)
	}
	// Target Class II: the pulse holds Class IV.
	ss, err := in.Query("rivermon", `SELECT max(wq_class) FROM reading WHERE station = 'xiangqu-namling'`)
	if err != nil || len(ss) != 1 || fmt.Sprint(ss[0].Values[0][1]) != "4" {
		t.Errorf("pollution pulse: max wq_class %v %v, want 4", ss, err)
	}
	if got := field(t, in, "reading", "wq_class", "xiangqu-namling", lead.Add(2*time.Hour)); got != "4" {
		t.Errorf("pollution pulse 2 h in: wq_class = %s, want 4", got)
	}
	// 80 % of the 0.4 m³/s target for two hours.
	lowEnd := simulators.ScenarioEnd(simulators.ScenarioLowFlow, reg.Station("sagya-sagya"), lead)
	ss, err = in.Query("rivermon", fmt.Sprintf(`SELECT min(flow_m3s) FROM reading WHERE station = 'sagya-sagya' AND time >= %d AND time < %d`,
		lead.UnixNano(), lowEnd.UnixNano()))
	if err != nil || len(ss) != 1 {
		t.Fatalf("low flow: %v %v", ss, err)
	}
	if q, err := strconv.ParseFloat(fmt.Sprint(ss[0].Values[0][1]), 64); err != nil || q > 0.34 || q < 0.3 {
		t.Errorf("low flow: min flow_m3s %v %v, want about 0.32", ss[0].Values[0][1], err)
	}
}
