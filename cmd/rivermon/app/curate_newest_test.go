package app_test

import (
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// A correction of the newest value keeps its flag when the next sample
// arrives and the stream's spike test of the value runs (on the value as
// received).
func TestCorrectionOfTheNewestValueKeepsItsFlag(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-newest", adminToken: curToken})
	pub := testenv.NewClient(t, mq.URL, "station-newest")
	start := time.Now().Add(-time.Hour).Truncate(5 * time.Minute)
	level := func(i int) float64 {
		if i == 3 {
			return 1.9
		}
		return 1.5
	}
	publishSeries(t, pub, curStation, "level_m", start, 5*time.Minute, 4, level)
	spike := start.Add(15 * time.Minute)
	testenv.Eventually(t, 10*time.Second, func() bool { return curField(t, in, "level_m", spike) != nil }, "the spike was not stored")
	svc.correct(map[string]any{"station": curStation, "param": "level_m", "op": "set", "from": rfc(spike), "to": rfc(spike), "value": 1.5})
	testenv.Eventually(t, 10*time.Second, func() bool { return num(curField(t, in, "level_m", spike)) == 1.5 }, "the correction was not stored")
	publishSeries(t, pub, curStation, "level_m", start.Add(20*time.Minute), 5*time.Minute, 1, level)
	testenv.Eventually(t, 10*time.Second, func() bool { return curField(t, in, "level_m", start.Add(20*time.Minute)) != nil }, "the next sample was not stored")
	time.Sleep(time.Second)
	if qc := num(curField(t, in, "level_m_qc", spike)); qc != 1 {
		t.Errorf("corrected value 1.5 flagged %v after the next sample, want 1 (the correction's)", qc)
	}
}
