package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestSpooledDataSurvivesRestart: a message that arrives while InfluxDB is
// down is acknowledged once spooled, and a restarted rivermon delivers it
// from the spool when InfluxDB is back.
func TestSpooledDataSurvivesRestart(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	spoolDir := t.TempDir()
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-spool", spoolDir: spoolDir})
	pub := testenv.NewClient(t, mq.URL, "station-spool")

	in.Stop()
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	pub.Publish(readingsTopic("xiangqu-mouth"), mustJSON(t, map[string]any{
		"station": "xiangqu-mouth", "seq": 1,
		"samples": []any{map[string]any{"time": ts.Format(time.RFC3339), "values": map[string]any{"level_m": 0.77, "flow_m3s": 3.1}}}}))
	testenv.Eventually(t, 15*time.Second, func() bool { return svc.metric("rivermon_spool_bytes") > 0 }, "the message was not spooled")
	svc.stop()

	in.Start()
	svc2 := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-spool", spoolDir: spoolDir})
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", fmt.Sprintf("time = %d", ts.UnixNano())) == 1
	}, "the spooled message was not delivered after the restart")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc2.metric("rivermon_spool_bytes") == 0 }, "spool not emptied")
	if got := svc2.metric(`rivermon_messages_total{result="accepted"}`); got != 0 {
		t.Errorf("the broker redelivered %v acknowledged messages", got)
	}
}

// TestFullSpoolLeavesMessagesWithTheBroker: with InfluxDB down the spool
// fills to max_bytes; rivermon then stops acknowledging and says so; the
// broker keeps the rest across a rivermon restart; once InfluxDB is back
// every sample is stored.
func TestFullSpoolLeavesMessagesWithTheBroker(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	spoolDir := t.TempDir()
	so := serviceOptions{clientID: "rivermon-full", spoolDir: spoolDir, maxBytes: 1 << 20}
	svc := startServiceWith(t, mq, in, so)
	pub := testenv.NewClient(t, mq.URL, "station-full")
	in.Stop()

	const messages, perMessage = 12, 2000
	base := time.Now().UTC().Truncate(time.Second).Add(-48 * time.Hour)
	for m := range messages {
		var samples []any
		for i := range perMessage {
			ts := base.Add(time.Duration(m*perMessage+i) * time.Second)
			samples = append(samples, map[string]any{"time": ts.UnixMilli(), "values": map[string]any{"level_m": float64(m*perMessage+i) / 1000, "water_temp_c": 4.5}})
		}
		pub.Publish(readingsTopic("yarlung-dazhuka"), mustJSON(t, map[string]any{"station": "yarlung-dazhuka", "samples": samples}))
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return svc.metric("rivermon_spool_full") == 1 }, "the spool never filled")
	code, body := svc.get("/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz is %d while the spool is full", code)
	}
	// The bound is exact, and /readyz gives the figure of the moment (the
	// spool does not change while InfluxDB is down and it is full).
	b := svc.metric("rivermon_spool_bytes")
	if b > 1<<20 {
		t.Errorf("spool holds %v bytes, over max_bytes %d", b, 1<<20)
	}
	if want := fmt.Sprintf("spool full (%d of %d bytes", int64(b), 1<<20); !strings.Contains(body, want) {
		t.Errorf("/readyz says %q, want %q", body, want)
	}
	svc.stop()

	in.Start()
	svc = startServiceWith(t, mq, in, so)
	testenv.Eventually(t, 60*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "station = 'yarlung-dazhuka'") == messages*perMessage
	}, "not every sample was stored")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc.status("/readyz") == http.StatusOK }, "not ready after the backlog")
}

// TestFullSpoolRecoversWithoutRestart: the spool fills to max_bytes (1 MiB,
// standing for a small disk) while InfluxDB is down; once InfluxDB is back,
// acknowledgement resumes and /readyz returns to 200 by themselves, and
// every sample is stored. The spool is never over its bound meanwhile.
func TestFullSpoolRecoversWithoutRestart(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	const max = 1 << 20
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-recover", maxBytes: max})
	pub := testenv.NewClient(t, mq.URL, "station-recover")
	in.Stop()

	highest := make(chan float64)
	stopWatch := make(chan struct{})
	go func() { // the spool's size, as scraped, all through the test
		var h float64
		defer func() { highest <- h }()
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			resp, err := http.Get(svc.base + "/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "rivermon_spool_bytes "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					h = math.Max(h, f)
				}
			}
		}
	}()

	const messages, perMessage = 12, 2000
	base := time.Now().UTC().Truncate(time.Second).Add(-48 * time.Hour)
	for m := range messages {
		var samples []any
		for i := range perMessage {
			ts := base.Add(time.Duration(m*perMessage+i) * time.Second)
			samples = append(samples, map[string]any{"time": ts.UnixMilli(), "values": map[string]any{"level_m": float64(m*perMessage+i) / 1000}})
		}
		pub.Publish(readingsTopic("nianchu-mouth"), mustJSON(t, map[string]any{"station": "nianchu-mouth", "samples": samples}))
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return svc.metric("rivermon_spool_full") == 1 }, "the spool never filled")
	if code, body := svc.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz %d %q while the spool is full", code, body)
	}
	acked := svc.metric("rivermon_ack_delay_seconds_count")
	if acked >= messages {
		t.Fatalf("%v of %d messages acknowledged with the spool full", acked, messages)
	}

	in.Start()
	testenv.Eventually(t, 60*time.Second, func() bool { return svc.metric("rivermon_ack_delay_seconds_count") == messages }, "acknowledgement did not resume")
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "station = 'nianchu-mouth'") == messages*perMessage
	}, "not every sample was stored")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc.status("/readyz") == http.StatusOK }, "not ready again")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc.metric("rivermon_spool_bytes") == 0 }, "spool not emptied")
	close(stopWatch)
	if h := <-highest; h > max || h == 0 {
		t.Errorf("the spool held at most %v bytes, want between 1 and max_bytes %d", h, max)
	} else {
		t.Logf("%v acknowledged while full; the spool held at most %v of %d bytes", acked, h, max)
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
	if got := svc.metric(`rivermon_influx_write_errors_total{kind="rejected",output="default"}`); got < 1 {
		t.Errorf("rejected write errors counted %v", got)
	}
}
