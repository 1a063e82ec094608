package app_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// TestLoadModeWithFaults: stationsim's load mode with duplicates, reversed
// samples, malformed payloads and a store-and-forward outage: every unique
// sample is stored once, every malformed payload dead-lettered.
func TestLoadModeWithFaults(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "stations.yaml")
	if err := os.WriteFile(reg, []byte(simulators.GenerateRegistry(200)), 0o644); err != nil {
		t.Fatal(err)
	}
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-load", stations: reg})
	sum, err := simulators.RunLoad(context.Background(), simulators.LoadOptions{
		Broker: mq.URL, TopicPrefix: prefix, Stations: 200, PerMessage: 5, Messages: 3000, Connections: 4,
		Start: time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Minute), Seed: 9,
		Duplicates: 0.05, OutOfOrder: 0.05, Malformed: 0.02,
		OutageStations: []string{"load-00007", "load-00150"}, OutageFrom: 3, OutageFor: 5,
	})
	if err != nil || sum.Errors != 0 || sum.Duplicates == 0 || sum.Malformed == 0 || sum.Backlogs != 2 {
		t.Fatalf("load run %+v: %v", sum, err)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") == int64(sum.Samples)
	}, "InfluxDB does not hold the %d unique samples", sum.Samples)
	testenv.Eventually(t, 10*time.Second, func() bool {
		return svc.metric(`rivermon_rejected_total{reason="bad_json"}`) == float64(sum.Malformed)
	}, "malformed payloads not all dead-lettered")
	if sum.Samples != 3000*5 {
		t.Errorf("%d samples sent, want 15000 (backlogs carry the held ones)", sum.Samples)
	}
}
