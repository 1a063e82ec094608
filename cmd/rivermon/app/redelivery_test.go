package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestUnackedMessageIsRedeliveredAfterRestart: rivermon receives a message
// while InfluxDB is down, stops before it could store (and so acknowledge)
// it, and gets it again from its persistent session when it comes back.
func TestUnackedMessageIsRedeliveredAfterRestart(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-redeliver")
	pub := testenv.NewClient(t, mq.URL, "station-redeliver")

	in.Stop()
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	pub.Publish(readingsTopic("xiangqu-mouth"), mustJSON(t, map[string]any{
		"station": "xiangqu-mouth", "seq": 1,
		"samples": []any{map[string]any{"time": ts.Format(time.RFC3339), "values": map[string]any{"level_m": 0.77, "flow_m3s": 3.1}}}}))
	// rivermon has taken the message and is failing to write it.
	testenv.Eventually(t, 15*time.Second, func() bool {
		return svc.metric(`rivermon_influx_write_errors_total{kind="network"}`) > 0
	}, "rivermon never tried to write")
	svc.stop()

	in.Start()
	if n := in.Count(t, "reading", "level_m", ""); n != 0 {
		t.Fatalf("the point was stored while InfluxDB was down? count %d", n)
	}
	svc2 := startService(t, mq, in, "rivermon-redeliver")
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", fmt.Sprintf("time = %d", ts.UnixNano())) == 1
	}, "the unacknowledged message was not redelivered and stored")
	if got := svc2.metric(`rivermon_samples_total{result="stored"}`); got != 1 {
		t.Errorf("second run stored %v samples, want 1", got)
	}
}

// TestPointRefusedByInfluxIsDeadLetteredAndTheBatchStored: InfluxDB refuses
// one point of a batch (a field type conflict, HTTP 400 "partial write");
// rivermon finds it by splitting the batch, dead-letters it with reason
// influx_rejected, stores every other point and acknowledges the message.
func TestPointRefusedByInfluxIsDeadLetteredAndTheBatchStored(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	base := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Minute)
	// Make ph an integer field in this shard, so that a float ph conflicts.
	writeLine(t, in, fmt.Sprintf("reading,river=nianchu,station=nianchu-mouth ph=8i %d", base.Add(-time.Minute).UnixNano()))

	svc := startService(t, mq, in, "rivermon-poison")
	watch := testenv.NewClient(t, mq.URL, "poison-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	pub := testenv.NewClient(t, mq.URL, "station-poison")
	var samples []any
	for i := range 10 {
		samples = append(samples, map[string]any{"time": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339),
			"values": map[string]any{"level_m": 1 + float64(i)/10}})
	}
	samples = append(samples, map[string]any{"time": base.Add(time.Minute).Format(time.RFC3339), "values": map[string]any{"ph": 8.2}})
	pub.Publish(readingsTopic("nianchu-mouth"), mustJSON(t, map[string]any{"station": "nianchu-mouth", "samples": samples}))

	testenv.Eventually(t, 20*time.Second, func() bool {
		for _, m := range watch.Received(prefix + "/deadletter/#") {
			var dl map[string]any
			if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == "influx_rejected" {
				if m.Topic != prefix+"/deadletter/nianchu-mouth" || !strings.Contains(fmt.Sprint(dl["payload"]), "ph=8.2") {
					t.Errorf("dead letter %s %v", m.Topic, dl)
				}
				return true
			}
		}
		return false
	}, "the refused point was not dead-lettered")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "station = 'nianchu-mouth'") == 10
	}, "the good points of the batch were not stored")
	if got := svc.metric(`rivermon_rejected_total{reason="influx_rejected"}`); got != 1 {
		t.Errorf("influx_rejected counted %v, want 1", got)
	}
	if got := svc.metric(`rivermon_influx_write_errors_total{kind="rejected"}`); got < 1 {
		t.Errorf("rejected write errors counted %v", got)
	}
}
