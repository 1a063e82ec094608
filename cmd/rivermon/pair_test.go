package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// hook is a webhook receiver for Alertmanager's notifications.
type hook struct {
	mu     sync.Mutex
	firing map[string]int // alertname/station → firing notifications
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	for _, a := range body.Alerts {
		if a.Status == "firing" {
			h.firing[a.Labels["alertname"]+"/"+a.Labels["station"]]++
		}
	}
	h.mu.Unlock()
}

func (h *hook) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.firing[key]
}

// TestFaultActivePair: two rivermon instances (own client ids and spools)
// on one broker page through one Alertmanager. An alert both evaluate is
// paged once (the same labels and startsAt: Alertmanager keeps one); one
// instance is killed in the middle of 10,000 samples; nothing is lost, the
// survivor keeps the alert alive in Alertmanager, and the killed one,
// restarted on its spool and session, catches up on what it missed.
func TestFaultActivePair(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	h := &hook{firing: map[string]int{}}
	rcv := httptest.NewServer(h)
	defer rcv.Close()
	am := testenv.StartAlertmanager(t, fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, station]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
`, rcv.URL))
	paging := procEnv{mqURL: mq.URL, influxURL: in.URL, alertmanager: am.URL, resendInterval: "1s"}
	ea, eb := paging, paging
	ea.spoolDir, ea.clientID = t.TempDir(), "rivermon-a"
	eb.spoolDir, eb.clientID = t.TempDir(), "rivermon-b"
	a := startRivermon(t, ea)
	b := startRivermon(t, eb)

	// A flood at Chentang, in the last half hour: both instances fire
	// WaterLevelCritical from the same samples.
	const st = "pumqu-chentang"
	s := newSampleStream(t, mq.URL)
	now := time.Now().UTC().Truncate(time.Minute)
	var samples []map[string]any
	for k := 5; k >= 1; k-- {
		samples = append(samples, map[string]any{"time": now.Add(-time.Duration(5*k) * time.Minute).Format(time.RFC3339), "values": map[string]any{"level_m": 5.0}})
	}
	flood, _ := json.Marshal(map[string]any{"station": st, "samples": samples})
	s.pub.Publish("rivermon/v1/stations/"+st+"/readings", flood)
	key := "WaterLevelCritical/" + st
	testenv.Eventually(t, 20*time.Second, func() bool { return h.count(key) > 0 }, "the flood was not paged")
	sent := func(p *rivermonProc) float64 {
		return p.metric(`rivermon_notifications_total{receiver="alertmanager",result="success"}`)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return sent(a) > 1 && sent(b) > 1 }, "both instances did not send the alert")

	// 10,000 samples; a is killed in the middle.
	stream := s.publishAsync(0, s.messages())
	testenv.Eventually(t, 30*time.Second, func() bool {
		return a.metric(`rivermon_messages_total{result="accepted"}`) > float64(s.messages()/3)
	}, "instance a is not taking messages")
	taken := a.metric(`rivermon_messages_total{result="accepted"}`)
	a.kill9()
	killed := time.Now()
	if err := <-stream; err != nil {
		t.Fatal(err)
	}
	s.verify(in)

	// The survivor goes on sending the alert: Alertmanager keeps it active.
	before := sent(b)
	testenv.Eventually(t, 10*time.Second, func() bool { return sent(b) >= before+3 }, "the survivor stopped sending the alert")
	if n := activeAlerts(t, am.URL, "WaterLevelCritical", st); n != 1 {
		t.Errorf("Alertmanager holds %d active WaterLevelCritical alerts for %s, want 1", n, st)
	}
	if n := h.count(key); n != 1 {
		t.Errorf("the flood was paged %d times, want once", n)
	}
	t.Logf("a took %.0f messages before the kill; b sent the alert %.0f times in the %s after it", taken, sent(b)-before, time.Since(killed).Round(time.Second))

	// a, restarted on its spool and session, catches up on what it missed:
	// the broker hands its session's queue over in order, so once a2 has
	// taken a marker published after the restart, it has taken all of it.
	// (Counting is no measure: a goes on taking messages between the
	// metric read and the kill, so what it missed is not known exactly.)
	a2 := startRivermon(t, ea)
	const markerStation = "sagya-sagya"
	marker := time.Now().UTC().Truncate(time.Second)
	mb, _ := json.Marshal(map[string]any{"station": markerStation, "samples": []map[string]any{
		{"time": marker.Format(time.RFC3339), "values": map[string]any{"level_m": 1.0}}}})
	s.pub.Publish("rivermon/v1/stations/"+markerStation+"/readings", mb)
	deadline := time.Now().Add(150 * time.Second)
	for a2.lastSeen(markerStation).Before(marker) {
		if time.Now().After(deadline) {
			took := a2.metric(`rivermon_messages_total{result="accepted"}`)
			a2.stacks() // where it waits, for the log
			t.Fatalf("after 150s the restarted instance has not reached the marker; it took %.0f messages (a took %.0f of %d before the kill)",
				took, taken, s.messages())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Some tens of messages a took after the read of its count, before the
	// kill: a2 takes the rest, never fewer than a third of them here.
	took := a2.metric(`rivermon_messages_total{result="accepted"}`)
	if took < float64(s.messages())/3 {
		t.Errorf("a took %.0f messages before the kill and only %.0f after the restart, of %d", taken, took, s.messages())
	}
	t.Logf("restarted, a took %.0f messages and the marker in %s", took, time.Since(deadline.Add(-150*time.Second)).Round(100*time.Millisecond))
	if n := h.count(key); n != 1 {
		t.Errorf("after the restart the flood was paged %d times, want once", n)
	}
}

// activeAlerts counts Alertmanager's active alerts with alertname and
// station.
func activeAlerts(t *testing.T, amURL, alertname, station string) int {
	t.Helper()
	resp, err := http.Get(amURL + "/api/v2/alerts?active=true&filter=" + fmt.Sprintf("alertname=%q", alertname))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range alerts {
		if a.Labels["station"] == station {
			n++
		}
	}
	return n
}
