package app_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// demoScenarios returns the scenarios `make run` plays: the default of
// SIM_SCENARIOS in scripts/run.sh, so that the two cannot part.
func demoScenarios(t *testing.T) []string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "scripts", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"\$\{SIM_SCENARIOS:=([^}"]*)\}"`).FindSubmatch(b)
	if m == nil || len(strings.Fields(string(m[1]))) == 0 {
		t.Fatal(`scripts/run.sh sets no default SIM_SCENARIOS (: "${SIM_SCENARIOS:=…}")`)
	}
	return strings.Fields(string(m[1]))
}

// TestScenariosPageExactlyTheirAlerts plays make run's scenarios through
// real Mosquitto, rivermon, Alertmanager and InfluxDB, once in the ice
// season and once in the thaw, days of simulated data at full speed:
// each scenario pages exactly the alerts it names, each firing once and
// resolving once, no other alert pages for those stations (a spiking gauge
// and a drifting one page nobody), no station is silent while the data
// replays, and Alertmanager takes every post (no 400 for an endsAt before
// its startsAt). The second window is in May: from June or July to October
// the simulated monsoon water of the class-II sections is class III by
// itself, and that pages too (README, "Scenarios").
func TestScenariosPageExactlyTheirAlerts(t *testing.T) {
	direct := newReceiver(t)
	viaAM := newReceiver(t)
	am := startAlertmanagerTo(t, viaAM, "alertname, station, param")
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	// The windows are in the past: samples of any age may page here.
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-scenarios-e2e", sweep: 100 * time.Millisecond,
		alerting: fmt.Sprintf("{alertmanager_urls: [%q], webhooks: [%q], resend_interval: 1s, max_sample_age: 100000h}", am.URL, direct.URL)})
	reg := loadRegistry(t)
	scenarios, err := simulators.ParseScenarios(demoScenarios(t))
	if err != nil {
		t.Fatal(err)
	}
	stations := slices.Sorted(maps.Keys(scenarios))
	// want: station → "alertname[/param]" → true.
	want := map[string]map[string]bool{}
	for st, names := range scenarios {
		want[st] = map[string]bool{}
		for _, n := range names {
			for _, a := range simulators.ExpectedAlerts(n, reg.Station(st)) {
				want[st][a] = true
			}
		}
	}
	samples := 0
	for _, start := range []time.Time{time.Date(2026, 1, 8, 0, 0, 0, 0, shanghai), time.Date(2026, 5, 20, 0, 0, 0, 0, shanghai)} {
		lead := start.Add(simulators.ScenarioLead)
		end := lead
		for st, names := range scenarios {
			for _, n := range names {
				if e := simulators.ScenarioEnd(n, reg.Station(st), lead); e.After(end) {
					end = e
				}
			}
		}
		sum, err := simulators.Run(context.Background(), simulators.Options{
			Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start, Speed: 1e9, Duration: end.Add(time.Hour).Sub(start),
			Seed: 5, ClientID: "sim-e2e-" + start.Format("0102"), Scenarios: scenarios, Stations: stations,
		})
		if err != nil || sum.Errors != 0 {
			t.Fatalf("simulator from %v: %v, %d errors", start, err, sum.Errors)
		}
		samples += sum.Samples
		testenv.Eventually(t, 2*time.Minute, func() bool {
			return in.Count(t, "reading", "level_m", "") >= int64(samples)
		}, "the simulated samples from %v were not all stored", start)
	}
	// got: station → "alertname[/param]" → status → count, from rivermon's
	// own webhook (one notification per change).
	key := func(l map[string]string) string {
		if l["alertname"] == "SensorFault" {
			return l["alertname"] + "/" + l["param"]
		}
		return l["alertname"]
	}
	count := func(r *receiver) map[string]map[string]map[string]int {
		r.mu.Lock()
		defer r.mu.Unlock()
		out := map[string]map[string]map[string]int{}
		for _, b := range r.bodies {
			for _, a := range b.Alerts {
				st := a.Labels["station"]
				if out[st] == nil {
					out[st] = map[string]map[string]int{}
				}
				k := key(a.Labels)
				if out[st][k] == nil {
					out[st][k] = map[string]int{}
				}
				out[st][k][a.Status]++
			}
		}
		return out
	}
	// Both seasons: each expected alert fired and resolved twice.
	testenv.Eventually(t, 60*time.Second, func() bool {
		got := count(direct)
		for st, as := range want {
			for a := range as {
				if got[st][a]["resolved"] < 2 {
					return false
				}
			}
		}
		return true
	}, "not every scenario's alerts fired and resolved in both seasons: want %v, got %v", want, count(direct))
	got := count(direct)
	for st, as := range got {
		for a, n := range as {
			switch {
			case !want[st][a]:
				t.Errorf("%s: %s paged %v, which no scenario there names", st, a, n)
			case n["firing"] != 2 || n["resolved"] != 2:
				t.Errorf("%s: %s: %v, want firing and resolved once in each season", st, a, n)
			}
		}
	}
	// Through Alertmanager: the same alerts, each resolved in the end.
	testenv.Eventually(t, 30*time.Second, func() bool {
		am := count(viaAM)
		for st, as := range want {
			for a := range as {
				if am[st][a]["resolved"] < 1 {
					return false
				}
			}
		}
		return true
	}, "Alertmanager did not pass every alert on resolved: want %v, got %v", want, count(viaAM))
	for st, as := range count(viaAM) {
		for a := range as {
			if !want[st][a] {
				t.Errorf("Alertmanager paged %s at %s, which no scenario there names", a, st)
			}
		}
	}
	if ok := svc.metric(`rivermon_notifications_total{receiver="alertmanager",result="success"}`); ok == 0 {
		t.Error("no successful post to Alertmanager counted")
	}
	if n := svc.metric(`rivermon_notifications_total{receiver="alertmanager",result="failure"}`); n != 0 {
		t.Errorf("%v posts refused by Alertmanager", n)
	}
}
