package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// The stations the operations page test gives a part: one that floods, one
// that never sends anything (and reports every second in the test's
// registry, so that it is overdue within seconds), one that sends a malformed
// message, and one whose names and river carry markup (the last in the
// registry, and its river's Chinese name only, so that the README's
// screenshot, the first screen in English, does not show them).
const (
	opsFlood   = "pumqu-chentang"
	opsSilent  = "kangmar-kangmar"
	opsBad     = "yarlung-lhatse"
	opsMarkup  = "sagya-sagya"
	markupEN   = `Sa'gya <script>window.__pwned=1</script>`
	markupZH   = `萨迦<img src=x onerror="window.__pwned=2">`
	markupRive = `萨迦河<b onmouseover="window.__pwned=3">`
)

// TestOperationsPageInABrowser opens the operations page in headless
// Chromium against a real rivermon (Mosquitto, InfluxDB, Alertmanager)
// fed by the simulator: 23 markers; the station that sends nothing is
// marked silent; a malformed message shows among its station's dead
// letters; registry strings with markup show as text; the language switch
// works and is remembered; on a 360 px phone nothing scrolls sideways; a
// flood turns its station's marker red within seconds of its alert, and
// the alert's generatorURL in Alertmanager opens the station's view with
// the alert and its last 48 h charted. No request leaves localhost.
// Screenshots go to var/test-artifacts/opspage/ (RIVERMON_TEST_ARTIFACTS
// overrides var/test-artifacts); RIVERMON_UPDATE_DOCS=1 also writes the
// README's docs/ops-page.png.
func TestOperationsPageInABrowser(t *testing.T) {
	br := testenv.StartChromium(t)
	shots := artifactDir(t, "opspage")
	am := startAlertmanagerTo(t, newReceiver(t), "alertname, station")
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	regPath := opsRegistry(t)
	reg, err := registry.LoadFile(regPath)
	if err != nil {
		t.Fatal(err)
	}
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-ops", stations: regPath, sweep: 100 * time.Millisecond,
		alerting: fmt.Sprintf("{alertmanager_urls: [%q], resend_interval: 1s}", am.URL)})

	// Twelve hours of every station but the flooding and the silent one,
	// then on in real time (the stations stay connected: no goodbye).
	now := time.Now()
	var normal []string
	for _, st := range reg.Stations {
		if st.ID != opsFlood && st.ID != opsSilent {
			normal = append(normal, st.ID)
		}
	}
	simulate(t, simulators.Options{Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: now.Add(-12 * time.Hour),
		Speed: 1e9, Seed: 7, ClientID: "sim-ops", Stations: normal})
	testenv.Eventually(t, 60*time.Second, func() bool {
		var views []struct {
			ID       string     `json:"id"`
			LastSeen *time.Time `json:"last_seen"`
		}
		svc.getJSON("/api/v1/stations", &views)
		caught := 0
		for _, v := range views {
			if slices.Contains(normal, v.ID) && v.LastSeen != nil && v.LastSeen.After(now.Add(-15*time.Minute)) {
				caught++
			}
		}
		return caught == len(normal)
	}, "the simulated stations did not catch up to the present")
	bad := testenv.NewClient(t, mq.URL, "station-ops-bad")
	bad.Publish(readingsTopic(opsBad), []byte(`{"station": "yarlung-lhatse", "samples": [`))

	p := &opsPage{t: t, br: br, shots: shots}
	wall := chromedp.EmulateViewport(1920, 1080)
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile)

	// The overview on a wall screen.
	p.do("open the page", wall, chromedp.Navigate(svc.base+"/"))
	p.wait("23 markers", 20*time.Second, `document.querySelectorAll('#map .marker[data-station]').length === 23`)
	var ids []string
	for _, st := range reg.Stations {
		ids = append(ids, st.ID)
	}
	slices.Sort(ids)
	if got := evalJS[[]string](p, `[...document.querySelectorAll('#map .marker[data-station]')].map(m => m.dataset.station).sort()`); !slices.Equal(got, ids) {
		t.Errorf("markers %v, want the registry's %v", got, ids)
	}
	p.wait("the silent station marked", 20*time.Second, marker(opsSilent)+`.dataset.silent === 'true'`)
	if n := evalJS[int](p, `document.querySelectorAll('#map .marker[data-silent="true"]').length`); n != 1 {
		t.Errorf("%d stations marked silent, want only %s", n, opsSilent)
	}
	if fill := evalJS[string](p, `getComputedStyle(`+marker(opsSilent)+`).fill`); !strings.Contains(fill, "url(") {
		t.Errorf("silent marker fill %q, want the hatching", fill)
	}
	if lv := evalJS[string](p, marker(opsFlood)+`.dataset.level`); lv == "critical" {
		t.Fatalf("%s is critical before its flood", opsFlood)
	}
	p.wait("the malformed message among the dead letters", 20*time.Second,
		`document.querySelector('tr[data-station="`+opsBad+`"] .chip.dead[data-reason="bad_json"]')?.textContent === 'bad_json 1'`)

	// Registry strings are text, never markup.
	notMarkup := func(lang string) {
		t.Helper()
		if pwned := evalJS[bool](p, `window.__pwned !== undefined`); pwned {
			t.Errorf("%s: markup from the registry ran", lang)
		}
		if n := evalJS[int](p, `document.scripts.length + document.querySelectorAll('img, b').length`); n != 1 {
			t.Errorf("%s: %d script, img or b elements, want the page's one script", lang, n)
		}
	}
	shown := func(s string) {
		t.Helper()
		if !evalJS[bool](p, `document.body.textContent.includes(`+jsString(s)+`)`) {
			t.Errorf("%q is not shown as text", s)
		}
	}
	shown(markupEN)
	notMarkup("en")
	p.noSideScroll("overview on the wall screen", 1920)
	p.shot("overview-wall-en")

	// Chinese, remembered across a reload.
	p.do("switch to Chinese", chromedp.Click(chromedp.CSS("#lang")))
	p.wait("the page in Chinese", 5*time.Second, `document.documentElement.lang === 'zh-CN' && document.querySelector('#stations-head th').textContent === '断面'`)
	p.do("reload", chromedp.Reload())
	p.wait("Chinese remembered", 10*time.Second, `document.documentElement.lang === 'zh-CN' && document.querySelectorAll('#map .marker').length >= 23`)
	shown(markupZH)
	shown(markupRive)
	if !evalJS[bool](p, `[...document.querySelectorAll('#map .river-label')].some(e => e.textContent === `+jsString(markupRive)+`)`) {
		t.Errorf("the river %q is not named on the schematic", markupRive)
	}
	notMarkup("zh")
	p.shot("overview-wall-zh")
	p.do("switch to English", chromedp.Click(chromedp.CSS("#lang")))
	p.wait("the page in English", 5*time.Second, `document.documentElement.lang === 'en' && document.querySelector('#stations-head th').textContent === 'Station'`)

	// A phone: 360 CSS pixels, nothing to scroll sideways.
	p.do("phone", phone, chromedp.Reload())
	p.wait("23 markers on the phone", 10*time.Second, `document.querySelectorAll('#map .marker[data-station]').length === 23 && document.querySelectorAll('#stations-body tr').length === 23`)
	p.noSideScroll("overview on the phone", 360)
	p.shot("overview-phone")

	// The flood: the station's marker turns red within seconds of its alert.
	p.do("wall screen", wall, chromedp.Reload())
	p.wait("23 markers", 10*time.Second, `document.querySelectorAll('#map .marker[data-station]').length === 23`)
	st := reg.Station(opsFlood)
	scenarioStart := floodPeakNow(st, time.Now())
	simulate(t, simulators.Options{Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: now.Add(-12 * time.Hour),
		Speed: 1e9, Seed: 7, ClientID: "sim-ops-flood", Stations: []string{opsFlood},
		Scenarios: map[string][]string{opsFlood: {simulators.ScenarioFlood}}, ScenarioStart: scenarioStart})
	var fired time.Time
	testenv.Eventually(t, 60*time.Second, func() bool {
		var firing []struct{ Labels map[string]string }
		svc.getJSON("/api/v1/alerts", &firing)
		for _, a := range firing {
			if a.Labels["alertname"] == "WaterLevelCritical" && a.Labels["station"] == opsFlood {
				fired = time.Now()
				return true
			}
		}
		return false
	}, "WaterLevelCritical did not fire at %s", opsFlood)
	p.wait("the flooding station red", 10*time.Second, marker(opsFlood)+`.dataset.level === 'critical' && getComputedStyle(`+marker(opsFlood)+`).fill === 'rgb(211, 47, 47)'`)
	t.Logf("%s red on the page %v after its alert fired", opsFlood, time.Since(fired).Round(10*time.Millisecond))
	p.shot("overview-wall-flood")
	if os.Getenv("RIVERMON_UPDATE_DOCS") != "" {
		root, _ := testenv.RepoRoot()
		p.copyShot("overview-wall-flood-screen", filepath.Join(root, "docs", "ops-page.png"))
	}

	// The alert's link in Alertmanager opens the station's view.
	var link string
	testenv.Eventually(t, 30*time.Second, func() bool {
		link = generatorURL(t, am.URL, "WaterLevelCritical", opsFlood)
		return link != ""
	}, "Alertmanager holds no WaterLevelCritical of %s", opsFlood)
	if want := svc.base + "/#/station/" + opsFlood; link != want {
		t.Fatalf("generatorURL %q, want %q", link, want)
	}
	p.do("follow the alert's link", chromedp.Evaluate[chromedp.Void](`location.assign(`+jsString(link)+`)`))
	p.wait("the station view with its alert and charts", 20*time.Second,
		`document.querySelector('#station-name')?.textContent === `+jsString(st.NameEN)+
			` && document.querySelector('#station-alerts [data-alert="WaterLevelCritical"]') !== null`+
			` && document.querySelector('#charts-panel .chart[data-code="level_m"] polyline') !== null`+
			` && document.querySelector('#charts-panel .chart[data-code="level_m"] .limit-critical') !== null`)
	p.noSideScroll("station view on the wall screen", 1920)
	p.shot("station-wall")
	p.do("phone", phone, chromedp.Reload())
	p.wait("the station view on the phone", 20*time.Second, `document.querySelector('#charts-panel .chart[data-code="level_m"] polyline') !== null`)
	p.noSideScroll("station view on the phone", 360)
	p.shot("station-phone")

	for _, pr := range br.Problems() {
		t.Errorf("browser: %s", pr)
	}
	reqs := br.Requests()
	if len(reqs) == 0 {
		t.Fatal("no request seen: the network events are not recorded")
	}
	for _, r := range reqs {
		u, err := url.Parse(r)
		if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
			t.Errorf("a request left localhost: %s", r)
		}
	}
	t.Logf("%d requests, all to localhost", len(reqs))
}

// opsPage drives the browser for the test, each step failing it with the
// step's name.
type opsPage struct {
	t     *testing.T
	br    *testenv.Browser
	shots string
}

func (p *opsPage) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.br.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (browser problems: %v)", step, err, p.br.Problems())
	}
}

// wait polls a JavaScript condition in the page until it holds.
func (p *opsPage) wait(what string, timeout time.Duration, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.br.Ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		p.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s: not within %v: %v (browser problems: %v)", what, timeout, err, p.br.Problems())
	}
}

func evalJS[T any](p *opsPage, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.br.Ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// noSideScroll fails when the page is wider than the screen, width CSS
// pixels: nothing must scroll sideways.
func (p *opsPage) noSideScroll(view string, width int) {
	p.t.Helper()
	w := evalJS[[]int](p, `[window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth]`)
	if w[0] != width || w[1] > width || w[2] > width {
		wide := evalJS[[]string](p, `[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > `+
			strconv.Itoa(width)+` + 0.5).slice(-5).map(e => e.tagName + '.' + e.getAttribute('class') + ' ' + Math.round(e.getBoundingClientRect().right) + ': ' + (e.textContent || '').slice(0, 40))`)
		p.t.Errorf("%s: viewport %d px, page %d px, body %d px; want everything within %d px; too wide: %q", view, w[0], w[1], w[2], width, wide)
	}
}

// shot saves the whole page as name.png, and what the screen shows first
// as name-screen.png.
func (p *opsPage) shot(name string) {
	p.t.Helper()
	p.capture(name, chromedp.FullScreenshot(100))
	p.capture(name+"-screen", chromedp.CaptureScreenshot())
}

func (p *opsPage) capture(name string, a chromedp.Action[[]byte]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.br.Ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(p.shots, name+".png"), png, 0o644); err != nil {
		p.t.Error(err)
	}
}

func (p *opsPage) copyShot(name, to string) {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.shots, name+".png"))
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		p.t.Error(err)
	}
	p.t.Logf("wrote %s", to)
}

func marker(station string) string {
	return `document.querySelector('#map .marker[data-station="` + station + `"]')`
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// artifactDir is where a test keeps what a person looks at afterwards:
// var/test-artifacts/<name>/ in the repository (ignored by git), or under
// RIVERMON_TEST_ARTIFACTS.
func artifactDir(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("RIVERMON_TEST_ARTIFACTS")
	if base == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(root, "var", "test-artifacts")
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// opsRegistry is the shipped registry with markup in one station's names
// and its river's Chinese name, and the silent station reporting every
// second, so that it is overdue (three intervals) within seconds.
func opsRegistry(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	replace := func(from, old, new string) {
		t.Helper()
		i := strings.Index(s, from)
		j := strings.Index(s[max(i, 0):], old)
		if i < 0 || j < 0 {
			t.Fatalf("stations.yaml: %q after %q not found", old, from)
		}
		s = s[:i+j] + new + s[i+j+len(old):]
	}
	replace("  - id: "+opsMarkup+" ", "    name: 萨迦河萨迦\n", "    name: "+jsString(markupZH)+"\n")
	replace("  - id: "+opsMarkup+" ", `    name_en: "Sa'gya river at Sa'gya"`, "    name_en: "+jsString(markupEN))
	replace("  - {id: sagya,", `name: 萨迦河,`, "name: "+jsString(markupRive)+",")
	replace("  - id: "+opsSilent+" ", "    interval: 5m\n", "    interval: 1s\n")
	path := filepath.Join(t.TempDir(), "stations.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// simulate runs the simulator in the background until the test ends.
func simulate(t *testing.T, o simulators.Options) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := simulators.Run(ctx, o)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulator %s: %v", o.ClientID, err)
		}
	})
}

// floodPeakNow is when a flood must start at st for its stage to be half
// way through its hour at the peak at now: the flood rises for R, holds 1 h
// and falls for R, R depending on the station and the season.
func floodPeakNow(st *registry.Station, now time.Time) time.Time {
	start := now.Add(-3 * time.Hour)
	for range 3 {
		rise := (simulators.ScenarioEnd(simulators.ScenarioFlood, st, start).Sub(start) - time.Hour) / 2
		start = now.Add(-rise - 30*time.Minute)
	}
	return start
}

// generatorURL is the link of an alert Alertmanager holds; empty when it
// holds none.
func generatorURL(t *testing.T, amURL, alertname, station string) string {
	t.Helper()
	resp, err := http.Get(amURL + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []struct {
		Labels       map[string]string `json:"labels"`
		GeneratorURL string            `json:"generatorURL"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Labels["alertname"] == alertname && a.Labels["station"] == station {
			return a.GeneratorURL
		}
	}
	return ""
}
