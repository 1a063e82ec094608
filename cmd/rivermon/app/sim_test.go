package app_test

import (
	"context"
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
