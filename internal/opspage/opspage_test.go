package opspage

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/alerts"
	"github.com/rivermon/rivermon/ingest"
	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/registry"
)

const testRegistry = `
rivers:
  - {id: nianchu, name: 年楚河, name_en: "Nianchu <b>river</b>"}
stations:
  - id: gauge
    name: 测站
    name_en: "Gauge <script>alert(1)</script>"
    river: nianchu
    county: Gyantse
    lat: 29
    lon: 89
    elevation_m: 3900
    params: [level_m, water_temp_c]
    interval: 5m
    limits: {level_warning_m: 2, level_critical_m: 3}
    rating:
      - valid_from: 2020-01-01T00:00:00Z
        segments: [{h_min: 0.2, h_max: 8, c: 10, e: 0.2, b: 1.5}]
  - id: quiet
    name: 静站
    name_en: Quiet
    river: nianchu
    lat: 29.1
    lon: 89.2
    elevation_m: 3800
    params: [flow_m3s]
    interval: 5m
  - id: offline
    name: 离线站
    name_en: Offline
    river: nianchu
    lat: 29.2
    lon: 89.4
    elevation_m: 3700
    params: [flow_m3s]
    interval: 5m
`

// Hand-written fakes at the page's own interfaces.
type fakeStations []ingest.StationView

func (f fakeStations) Snapshot(time.Time) []ingest.StationView { return slices.Clone(f) }

type fakeAlerts struct {
	firing []alerts.Alert
	silent map[string]bool
}

func (f fakeAlerts) Firing() []alerts.Alert          { return f.firing }
func (f fakeAlerts) SilentStations() map[string]bool { return f.silent }

type fakeHistory struct {
	rows []influx.Row
	err  error
	got  influx.HistoryQuery
}

func (f *fakeHistory) History(_ context.Context, q influx.HistoryQuery, each func([]influx.Row)) error {
	f.got = q
	if f.err != nil {
		return f.err
	}
	each(f.rows)
	return nil
}

var now = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func newTestPage(t *testing.T, h *fakeHistory) (*httptest.Server, *registry.Registry) {
	t.Helper()
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	off := false
	views := fakeStations{
		{ID: "gauge", Name: "测站", NameEN: "Gauge <script>alert(1)</script>", River: "nianchu", Values: map[string]ingest.ValueView{}},
		{ID: "quiet", Name: "静站", NameEN: "Quiet", River: "nianchu", Values: map[string]ingest.ValueView{}},
		{ID: "offline", Name: "离线站", NameEN: "Offline", River: "nianchu", Online: &off, Values: map[string]ingest.ValueView{}},
	}
	al := fakeAlerts{silent: map[string]bool{"quiet": true}, firing: []alerts.Alert{
		{Labels: map[string]string{"alertname": "WaterLevelWarning", "station": "gauge", "severity": "warning"}, StartsAt: now.Add(-time.Hour)},
		{Labels: map[string]string{"alertname": "WaterLevelCritical", "station": "gauge", "severity": "critical"}, StartsAt: now},
		{Labels: map[string]string{"alertname": "StationSilent", "station": "quiet", "severity": "warning"}, StartsAt: now},
	}}
	if h == nil {
		h = &fakeHistory{}
	}
	mux := http.NewServeMux()
	New(Options{Registry: reg, Stations: views, Alerts: al, History: h, Now: func() time.Time { return now }}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, reg
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestOverviewSaysWhatIsWrongWhere: each station's worst alert, its alerts
// worst first, silent by a silent_for alert or by being offline, and the
// registry's strings as they are (the page escapes them, not the JSON).
func TestOverviewSaysWhatIsWrongWhere(t *testing.T) {
	srv, _ := newTestPage(t, nil)
	resp, b := get(t, srv.URL+"/api/v1/overview")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var ov struct {
		Rivers   []River `json:"rivers"`
		Stations []struct {
			ID     string  `json:"id"`
			NameEN string  `json:"name_en"`
			Lat    float64 `json:"lat"`
			Worst  string  `json:"worst"`
			Silent bool    `json:"silent"`
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"active_alerts"`
			Limits      map[string]float64 `json:"limits"`
			DeadLetters map[string]int     `json:"dead_letters_24h"`
		} `json:"stations"`
	}
	if err := json.Unmarshal(b, &ov); err != nil {
		t.Fatal(err)
	}
	if len(ov.Rivers) != 1 || ov.Rivers[0].NameEN != "Nianchu <b>river</b>" || len(ov.Stations) != 3 {
		t.Fatalf("overview %s", b)
	}
	g, q, o := ov.Stations[0], ov.Stations[1], ov.Stations[2]
	if g.ID != "gauge" || g.NameEN != "Gauge <script>alert(1)</script>" || g.Lat != 29 || g.Limits["level_critical_m"] != 3 {
		t.Errorf("gauge %+v", g)
	}
	if g.Worst != "critical" || g.Silent || len(g.Alerts) != 2 || g.Alerts[0].Labels["alertname"] != "WaterLevelCritical" {
		t.Errorf("gauge: worst %q, silent %v, alerts %+v; want critical first, not silent", g.Worst, g.Silent, g.Alerts)
	}
	if q.Worst != "warning" || !q.Silent {
		t.Errorf("quiet: worst %q silent %v; want warning, silent (StationSilent fires)", q.Worst, q.Silent)
	}
	if o.Worst != "" || !o.Silent || o.Alerts == nil || len(o.Alerts) != 0 || o.Limits == nil {
		t.Errorf("offline: worst %q silent %v alerts %v limits %v; want silent (offline), no alert, empty lists", o.Worst, o.Silent, o.Alerts, o.Limits)
	}
}

// TestSeriesReadsTheStationsCodesFromHistory: the station view's chart
// data comes from InfluxDB through rivermon, for the codes the station
// reports (and its rated flow), over the hours asked for.
func TestSeriesReadsTheStationsCodesFromHistory(t *testing.T) {
	h := &fakeHistory{rows: []influx.Row{
		{Station: "gauge", Time: now.Add(-2 * time.Hour), Values: map[string]float64{"level_m": 1.5, "level_m_qc": 1, "flow_rated_m3s": 20}},
		{Station: "gauge", Time: now.Add(-time.Hour), Values: map[string]float64{"level_m": 9, "level_m_qc": 4, "water_temp_c": 2.5}},
	}}
	srv, _ := newTestPage(t, h)
	resp, b := get(t, srv.URL+"/api/v1/stations/gauge/series?hours=6")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s", resp.Status, b)
	}
	var s Series
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if !h.got.After.Equal(now.Add(-6*time.Hour)) || !slices.Equal(h.got.Stations, []string{"gauge"}) ||
		!slices.Equal(h.got.Fields, []string{"level_m", "level_m_qc", "water_temp_c", "water_temp_c_qc", "flow_rated_m3s", "flow_rated_m3s_qc"}) {
		t.Errorf("query %+v", h.got)
	}
	lv := s.Series["level_m"]
	if lv == nil || !slices.Equal(lv.V, []float64{1.5, 9}) || !slices.Equal(lv.QC, []int{1, 4}) || lv.T[1] != now.Add(-time.Hour).UnixMilli() {
		t.Errorf("level_m %+v", lv)
	}
	if wt := s.Series["water_temp_c"]; wt == nil || len(wt.V) != 1 || wt.QC[0] != 0 {
		t.Errorf("water_temp_c %+v", wt)
	}
	if fr := s.Series["flow_rated_m3s"]; fr == nil || len(fr.V) != 1 {
		t.Errorf("flow_rated_m3s %+v", fr)
	}

	for _, c := range []struct {
		path string
		want int
	}{
		{"/api/v1/stations/nowhere/series", http.StatusNotFound},
		{"/api/v1/stations/gauge/series?hours=0", http.StatusBadRequest},
		{"/api/v1/stations/gauge/series?hours=1000", http.StatusBadRequest},
		{"/api/v1/stations/gauge/series?hours=x", http.StatusBadRequest},
	} {
		if resp, b := get(t, srv.URL+c.path); resp.StatusCode != c.want || !json.Valid(b) {
			t.Errorf("%s: %s %s, want %d with a JSON error", c.path, resp.Status, b, c.want)
		}
	}
	h.err = errors.New("connection refused")
	if resp, b := get(t, srv.URL+"/api/v1/stations/gauge/series"); resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "connection refused") {
		t.Errorf("InfluxDB down: %s %s", resp.Status, b)
	}
	if !h.got.After.Equal(now.Add(-defaultSeriesHours * time.Hour)) {
		t.Errorf("default hours: after %v", h.got.After)
	}
}

func TestThinKeepsFailedValues(t *testing.T) {
	v := &Values{}
	for i := range 10000 {
		qc := 1
		if i == 4321 {
			qc = 4
		}
		v.T, v.V, v.QC = append(v.T, int64(i)), append(v.V, float64(i)), append(v.QC, qc)
	}
	v.thin(1000)
	if len(v.T) > 1002 || len(v.T) < 900 || v.T[len(v.T)-1] != 9999 || !slices.Contains(v.QC, 4) || !slices.IsSorted(v.T) {
		t.Errorf("thinned to %d points, last %d, failed kept %v", len(v.T), v.T[len(v.T)-1], slices.Contains(v.QC, 4))
	}
}

// TestPageIsSelfContained: / and its assets come from rivermon with a
// policy that lets nothing else in, and the assets name nothing elsewhere
// and never write markup from data.
func TestPageIsSelfContained(t *testing.T) {
	srv, _ := newTestPage(t, nil)
	for path, ctype := range map[string]string{"/": "text/html", "/static/app.js": "text/javascript", "/static/style.css": "text/css", "/static/icon.svg": "image/svg+xml"} {
		resp, b := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) || len(b) == 0 {
			t.Errorf("%s: %s %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
	}
	if resp, _ := get(t, srv.URL+"/nothing-here"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing-here: %s", resp.Status)
	}
	elsewhere := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(web, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := web.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range elsewhere.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" { // the SVG namespace and attribute, not a request
				t.Errorf("%s names %s", path, m)
			}
		}
		if strings.HasSuffix(path, ".js") {
			for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				if strings.Contains(string(b), sink) {
					t.Errorf("%s uses %s: build the DOM with textContent and setAttribute", path, sink)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
