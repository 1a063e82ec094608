package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// receiver is an on-call webhook endpoint behind Alertmanager: it records
// every notification body.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []webhookBody
}

type webhookBody struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alerts  []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
		Fingerprint string            `json:"fingerprint"`
	} `json:"alerts"`
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body webhookBody
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("webhook body: %v: %s", err, b)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// startAlertmanagerTo starts Alertmanager passing every alert on to rcv at
// once (group_wait 0s, group_interval 1s), resolved ones too, grouped by the
// labels in groupBy (comma-separated).
func startAlertmanagerTo(t *testing.T, rcv *receiver, groupBy string) *testenv.Alertmanager {
	return testenv.StartAlertmanager(t, fmt.Sprintf(`route:
  receiver: hook
  group_by: [%s]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, groupBy, rcv.URL))
}

// notifications returns the alerts received with alertname and station, by
// status.
func (r *receiver) notifications(alertname, station string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for _, b := range r.bodies {
		for _, a := range b.Alerts {
			if a.Labels["alertname"] == alertname && a.Labels["station"] == station {
				out[a.Status]++
			}
		}
	}
	return out
}

// TestAlertsReachOnCallThroughAlertmanager: readings that cross a
// station's critical level for longer than `for` reach a webhook receiver
// through a real Alertmanager exactly once, with the contract's labels;
// readings back below the threshold minus `clear` resolve it; a backlog
// older than max_sample_age writes history but pages nobody.
func TestAlertsReachOnCallThroughAlertmanager(t *testing.T) {
	rcv := newReceiver(t)
	am := startAlertmanagerTo(t, rcv, "alertname, station")
	direct := newReceiver(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-alerts",
		alerting: fmt.Sprintf("{alertmanager_urls: [%q], webhooks: [%q], resend_interval: 1s, max_sample_age: 1h}", am.URL, direct.URL)})
	pub := testenv.NewClient(t, mq.URL, "station-alerts")
	watch := testenv.NewClient(t, mq.URL, "alerts-watch")
	watch.Subscribe(prefix + "/alerts/#")

	reg := loadRegistry(t)
	const st = "nianchu-mouth"
	critical := reg.Station(st).Limits["level_critical_m"]
	start := time.Now().UTC().Truncate(time.Minute).Add(-40 * time.Minute)
	level := func(i int) float64 {
		if i < 4 {
			return critical + 0.2 // 20 minutes above: fires after 10
		}
		return critical - 0.1 // back below by more than clear (0.05)
	}
	publishSeries(t, pub, st, "level_m", start, 5*time.Minute, 4, level)

	testenv.Eventually(t, 30*time.Second, func() bool { return rcv.notifications("WaterLevelCritical", st)["firing"] >= 1 },
		"no firing notification through Alertmanager")
	var active []struct {
		Labels map[string]string `json:"labels"`
	}
	svc.getJSON("/api/v1/alerts", &active)
	found := false
	for _, a := range active {
		if a.Labels["alertname"] == "WaterLevelCritical" && a.Labels["station"] == st {
			found = true
			want := map[string]string{"river": "nianchu", "severity": "critical", "param": "level_m"}
			for k, v := range want {
				if a.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
				}
			}
		}
	}
	if !found {
		t.Errorf("/api/v1/alerts does not list the firing alert: %+v", active)
	}
	rcv.mu.Lock()
	for _, b := range rcv.bodies {
		for _, a := range b.Alerts {
			if a.Labels["alertname"] == "WaterLevelCritical" && (b.Version != "4" || a.Annotations["summary"] == "" || a.Fingerprint == "" ||
				!a.StartsAt.Equal(start.Add(10*time.Minute))) {
				t.Errorf("notification %+v (version %s)", a, b.Version)
			}
		}
	}
	rcv.mu.Unlock()

	// Two values back below: the stage has a spike test, so a value is
	// evaluated once the next one has come (or two intervals later).
	publishSeries(t, pub, st, "level_m", start.Add(20*time.Minute), 5*time.Minute, 2, func(int) float64 { return level(4) })
	testenv.Eventually(t, 30*time.Second, func() bool { return rcv.notifications("WaterLevelCritical", st)["resolved"] >= 1 },
		"no resolved notification")
	if n := rcv.notifications("WaterLevelCritical", st)["firing"]; n != 1 {
		t.Errorf("%d firing notifications through Alertmanager, want exactly 1", n)
	}
	if got := direct.notifications("WaterLevelCritical", st); got["firing"] != 1 || got["resolved"] != 1 {
		t.Errorf("direct webhook got %v, want one firing and one resolved", got)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		var n int
		for _, m := range watch.Received(prefix + "/alerts/#") {
			var a struct{ Labels map[string]string }
			if json.Unmarshal(m.Payload, &a) == nil && a.Labels["alertname"] == "WaterLevelCritical" && m.Topic == prefix+"/alerts/"+st {
				n++
			}
		}
		return n == 2
	}, "the MQTT alerts topic did not carry the firing and the resolved alert")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "alert", "value", fmt.Sprintf("station = '%s' AND alertname = 'WaterLevelCritical'", st)) == 2
	}, "alert history (firing and resolved) not in InfluxDB")

	// A backlog three hours old crossing the critical level of another
	// station: history, but no page.
	const old = "nianchu-bainang"
	oldStart := time.Now().UTC().Add(-3 * time.Hour)
	publishSeries(t, pub, old, "level_m", oldStart, 5*time.Minute, 5, func(int) float64 { return reg.Station(old).Limits["level_critical_m"] + 0.5 })
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "alert", "value", fmt.Sprintf("station = '%s' AND alertname = 'WaterLevelCritical'", old)) == 1
	}, "history of the old crossing not written")
	// Several resend intervals pass; nothing may reach the receivers.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := rcv.notifications("WaterLevelCritical", old); len(n) > 0 {
			t.Fatalf("a backlog older than max_sample_age paged on-call: %v", n)
		}
		if n := direct.notifications("WaterLevelCritical", old); len(n) > 0 {
			t.Fatalf("a backlog older than max_sample_age reached the webhook: %v", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := svc.metric(`rivermon_notifications_total{receiver="alertmanager",result="success"}`); got < 2 {
		t.Errorf("alertmanager deliveries counted %v", got)
	}
}

// TestShippedAlertmanagerConfigLoads starts the real Alertmanager with
// configs/alertmanager/alertmanager.yml and checks it is ready with the
// routing and inhibition the file describes.
func TestShippedAlertmanagerConfigLoads(t *testing.T) {
	root, _ := testenv.RepoRoot()
	b, err := os.ReadFile(filepath.Join(root, "configs", "alertmanager", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	am := testenv.StartAlertmanager(t, string(b))
	var status struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get(am.URL + "/api/v2/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&status) == nil
	}, "alertmanager not ready with the shipped config")
	for _, want := range []string{"group_by:\n  - river\n  - severity", "inhibit_rules", "send_resolved: true"} {
		if !strings.Contains(status.Config.Original, want) {
			t.Errorf("loaded config lacks %q:\n%s", want, status.Config.Original)
		}
	}
}
