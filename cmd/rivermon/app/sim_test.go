package app_test

import (
	"context"
	"fmt"
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

// TestSimulatorScenariosAreRecognised runs stationsim's scenarios for eight
// simulated days through Mosquitto and rivermon: the spiking gauge is
// flagged fail, the stuck sensor suspect, the pollution pulse reaches worse
// than Class V, and the low-flow section's days are non-compliant.
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
	sum, err := simulators.Run(context.Background(), simulators.Options{
		Broker: mq.URL, TopicPrefix: prefix, Registry: loadRegistry(t), Start: start, Speed: 1e9, Duration: 8 * 24 * time.Hour,
		Seed: 11, ClientID: "sim-scenarios", Scenarios: scenarios,
		Stations: []string{"yarlung-dazhuka", "nianchu-bainang", "xiangqu-namling", "sagya-sagya"},
	})
	if err != nil || sum.Errors != 0 {
		t.Fatalf("simulator: %v, %d errors", err, sum.Errors)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") == int64(sum.Samples)
	}, "not every simulated sample stored")
	lead := start.Add(time.Hour)
	// The gauge spikes +0.5 m for one reading every three hours.
	for k := range 3 {
		at := lead.Add(time.Duration(k) * 3 * time.Hour)
		if got := field(t, in, "reading", "level_m_qc", "yarlung-dazhuka", at); got != "4" {
			t.Errorf("spike at %s: level_m_qc = %s, want 4", at.UTC(), got)
		}
	}
	// Stuck from the lead time on: suspect once flat for 12 h, fail at 48 h.
	if got := field(t, in, "reading", "water_temp_c_qc", "nianchu-bainang", lead.Add(12*time.Hour+5*time.Minute)); got != "3" {
		t.Errorf("stuck 12 h: water_temp_c_qc = %s, want 3", got)
	}
	if got := field(t, in, "reading", "water_temp_c_qc", "nianchu-bainang", lead.Add(49*time.Hour)); got != "4" {
		t.Errorf("stuck 49 h: water_temp_c_qc = %s, want 4", got)
	}
	ss, err := in.Query("rivermon", `SELECT max(wq_class) FROM reading WHERE station = 'xiangqu-namling'`)
	if err != nil || len(ss) != 1 || fmt.Sprint(ss[0].Values[0][1]) != "6" {
		t.Errorf("pollution pulse: max wq_class %v %v, want 6", ss, err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "eflow_daily", "mean_flow_m3s", "station = 'sagya-sagya'") >= 7
	}, "eflow_daily of the low-flow section missing")
	ss, err = in.Query("rivermon", `SELECT count(mean_flow_m3s) FROM eflow_daily WHERE station = 'sagya-sagya' AND compliant = true AND time > '2026-10-10T00:00:00Z'`)
	if err != nil || len(ss) != 0 {
		t.Errorf("low-flow days counted compliant: %v %v", ss, err)
	}
}
