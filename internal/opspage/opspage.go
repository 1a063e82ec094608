// Package opspage serves the operations page: what on-call staff open from
// an alert, on a phone or a wall screen, to see which sections are down or
// alarming and why. The page is plain HTML, CSS and JavaScript embedded in
// the binary (no build step, nothing fetched from elsewhere: the stations'
// network has no internet); it polls rivermon's own JSON, built here from
// the live view, the alert state and, for a station's last hours, InfluxDB
// read server-side. The browser never talks to InfluxDB.
package opspage

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/rivermon/rivermon/alerts"
	"github.com/rivermon/rivermon/ingest"
	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

//go:embed web
var web embed.FS

// Stations is the live view of the stations (ingest.Stations).
type Stations interface {
	Snapshot(now time.Time) []ingest.StationView
}

// Alerts is the alert state (alerts.Evaluator).
type Alerts interface {
	Firing() []alerts.Alert
	SilentStations() map[string]bool
}

// History reads stored readings (influx.Writer).
type History interface {
	History(ctx context.Context, q influx.HistoryQuery, each func([]influx.Row)) error
}

// Options configure a Page.
type Options struct {
	Registry *registry.Registry
	Stations Stations
	Alerts   Alerts
	History  History
	// Now is the wall clock (the dead letters' window); nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Page is the operations page and the JSON it polls.
type Page struct {
	o      Options
	assets fs.FS
}

// New returns the page.
func New(o Options) *Page {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	assets, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded folder is there: the build put it in
	}
	return &Page{o: o, assets: assets}
}

// Register adds the page's routes to mux: / (the page), /static/ (its
// assets), /api/v1/overview and /api/v1/stations/{id}/series.
func (p *Page) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.index)
	mux.Handle("GET /static/", guarded(http.StripPrefix("/static/", http.FileServerFS(p.assets))))
	mux.HandleFunc("GET /api/v1/overview", p.overview)
	mux.HandleFunc("GET /api/v1/stations/{id}/series", p.series)
}

// guarded sets the headers of every answer of the page: its content may
// come only from rivermon itself (a registry string that slipped into
// markup could not run a script or call elsewhere), and it is fetched
// again rather than cached across an upgrade.
func guarded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
			"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (p *Page) index(w http.ResponseWriter, r *http.Request) {
	guarded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, p.assets, "index.html")
	})).ServeHTTP(w, r)
}

// Overview is the answer of /api/v1/overview: the registry's rivers and,
// per station, its registry entry, live view, alerts and state.
type Overview struct {
	Time     time.Time         `json:"time"`
	Rivers   []River           `json:"rivers"`
	Stations []StationOverview `json:"stations"`
}

// River is one river of the registry.
type River struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	NameEN string `json:"name_en"`
}

// StationOverview is one station on the page: the live view of
// /api/v1/stations, its firing alerts (worst first), and what the page
// draws from the registry.
type StationOverview struct {
	ingest.StationView
	County     string             `json:"county"`
	Lat        float64            `json:"lat"`
	Lon        float64            `json:"lon"`
	ElevationM float64            `json:"elevation_m"`
	Params     []string           `json:"params"`
	IntervalS  float64            `json:"interval_s"`
	Limits     map[string]float64 `json:"limits"`
	// Worst is the severity of its worst firing alert; "" for none.
	Worst string `json:"worst"`
	// Silent: a silent_for alert fires, or the station is offline (its
	// last will, or three reporting intervals without a message).
	Silent bool `json:"silent"`
}

// severityRank orders severities, worst first; unknown ones last.
func severityRank(s string) int {
	if i := slices.Index(alerts.Severities, s); i >= 0 {
		return i
	}
	return len(alerts.Severities)
}

// Build assembles the overview at now.
func (p *Page) Build(now time.Time) Overview {
	reg := p.o.Registry
	ov := Overview{Time: now.UTC(), Rivers: make([]River, 0, len(reg.Rivers)), Stations: make([]StationOverview, 0, len(reg.Stations))}
	for _, rv := range reg.Rivers {
		ov.Rivers = append(ov.Rivers, River{ID: rv.ID, Name: rv.Name, NameEN: rv.NameEN})
	}
	byStation := map[string][]alerts.Alert{}
	for _, a := range p.o.Alerts.Firing() {
		byStation[a.Labels["station"]] = append(byStation[a.Labels["station"]], a)
	}
	silent := p.o.Alerts.SilentStations()
	for _, v := range p.o.Stations.Snapshot(now) {
		st := reg.Station(v.ID)
		if st == nil {
			continue
		}
		as := byStation[v.ID]
		slices.SortStableFunc(as, func(a, b alerts.Alert) int {
			return cmp.Or(cmp.Compare(severityRank(a.Labels["severity"]), severityRank(b.Labels["severity"])), a.StartsAt.Compare(b.StartsAt))
		})
		so := StationOverview{StationView: v, County: st.County, Lat: st.Lat, Lon: st.Lon, ElevationM: st.ElevationM,
			Params: st.Params, IntervalS: time.Duration(st.Interval).Seconds(), Limits: st.Limits,
			Silent: silent[v.ID] || (v.Online != nil && !*v.Online)}
		so.ActiveAlerts = make([]any, len(as))
		for i, a := range as {
			so.ActiveAlerts[i] = a
		}
		if len(as) > 0 {
			so.Worst = as[0].Labels["severity"]
		}
		if so.Limits == nil {
			so.Limits = map[string]float64{}
		}
		ov.Stations = append(ov.Stations, so)
	}
	return ov
}

func (p *Page) overview(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.Build(p.o.Now()))
}

// Series is the answer of /api/v1/stations/{id}/series: a station's stored
// values of each code it reports over the last hours, oldest first.
type Series struct {
	Station string             `json:"station"`
	From    time.Time          `json:"from"`
	To      time.Time          `json:"to"`
	Series  map[string]*Values `json:"series"`
}

// Values are the points of one code: times (Unix milliseconds), values and
// QC flags (0 where none is stored).
type Values struct {
	T  []int64   `json:"t"`
	V  []float64 `json:"v"`
	QC []int     `json:"qc"`
}

// maxSeriesHours bounds ?hours=; defaultSeriesHours is the station view's.
const (
	maxSeriesHours     = 7 * 24
	defaultSeriesHours = 48
	// maxSeriesPoints bounds the points of one code: more (a station
	// reporting every minute) are thinned evenly, failed values kept.
	maxSeriesPoints = 1500
	seriesTimeout   = 15 * time.Second
)

func (p *Page) series(w http.ResponseWriter, r *http.Request) {
	st := p.o.Registry.Station(r.PathValue("id"))
	if st == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no station " + strconv.Quote(r.PathValue("id")) + " in the registry"})
		return
	}
	hours := defaultSeriesHours
	if s := r.URL.Query().Get("hours"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSeriesHours {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "hours: want a whole number from 1 to " + strconv.Itoa(maxSeriesHours)})
			return
		}
		hours = n
	}
	now := p.o.Now()
	codes := seriesCodes(st)
	fields := make([]string, 0, 2*len(codes))
	for _, c := range codes {
		fields = append(fields, c, c+"_qc")
	}
	out := Series{Station: st.ID, From: now.Add(-time.Duration(hours) * time.Hour).UTC(), To: now.UTC(), Series: map[string]*Values{}}
	for _, c := range codes {
		out.Series[c] = &Values{T: []int64{}, V: []float64{}, QC: []int{}}
	}
	ctx, cancel := context.WithTimeout(r.Context(), seriesTimeout)
	defer cancel()
	err := p.o.History.History(ctx, influx.HistoryQuery{After: out.From, Fields: fields, Stations: []string{st.ID}}, func(rows []influx.Row) {
		for _, row := range rows {
			for _, c := range codes {
				v, ok := row.Values[c]
				if !ok {
					continue
				}
				s := out.Series[c]
				s.T = append(s.T, row.Time.UnixMilli())
				s.V = append(s.V, v)
				s.QC = append(s.QC, int(row.Values[c+"_qc"]))
			}
		}
	})
	if err != nil {
		p.o.Logger.Warn("operations page: station history not read", "station", st.ID, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "InfluxDB: " + err.Error()})
		return
	}
	for _, s := range out.Series {
		s.thin(maxSeriesPoints)
	}
	writeJSON(w, http.StatusOK, out)
}

// seriesCodes are the codes the station view charts: what the station
// reports, and the rated flow where its stage is rated.
func seriesCodes(st *registry.Station) []string {
	codes := slices.Clone(st.Params)
	if len(st.Rating) > 0 && st.Reports("level_m") && !st.Reports("flow_m3s") {
		codes = append(codes, reading.FieldFlowRated)
	}
	return codes
}

// thin keeps about limit points, evenly spaced, and every failed value (a
// chart that hid them would hide the fault).
func (v *Values) thin(limit int) {
	n := len(v.T)
	if n <= limit {
		return
	}
	stride := (n + limit - 1) / limit
	k := 0
	for i := range n {
		if i%stride == 0 || i == n-1 || v.QC[i] == int(quality.Fail) {
			v.T[k], v.V[k], v.QC[k] = v.T[i], v.V[i], v.QC[i]
			k++
		}
	}
	v.T, v.V, v.QC = v.T[:k], v.V[:k], v.QC[:k]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
