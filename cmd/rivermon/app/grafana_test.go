package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

const dataSourceUID = "rivermon-influxdb"

type dashTarget struct {
	RefID        string `json:"refId"`
	Query        string `json:"query"`
	RawQuery     bool   `json:"rawQuery"`
	ResultFormat string `json:"resultFormat"`
	Alias        string `json:"alias"`
	Datasource   struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
}

// dashPanel is what the tests read of a panel: its queries, and the field
// config and transformations that decide what Grafana draws of them.
type dashPanel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	GridPos    *struct{ X, Y, W, H int } `json:"gridPos"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets     []dashTarget `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit   string         `json:"unit"`
			Custom map[string]any `json:"custom"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Transformations []struct {
		ID      string          `json:"id"`
		Options json.RawMessage `json:"options"`
	} `json:"transformations"`
}

type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      string `json:"query"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string `json:"name"`
			Query      string `json:"query"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
	Links []struct {
		URL string `json:"url"`
	} `json:"links"`
	Panels []dashPanel `json:"panels"`
}

func loadDashboards(t *testing.T) map[string]dashboard {
	t.Helper()
	root, _ := testenv.RepoRoot()
	files, _ := filepath.Glob(filepath.Join(root, "configs", "grafana", "dashboards", "*.json"))
	if len(files) != 5 {
		t.Fatalf("%d dashboards, want 5", len(files))
	}
	out := map[string]dashboard{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, dup := out[d.UID]; dup || d.UID == "" {
			t.Fatalf("%s: uid %q empty or used twice", f, d.UID)
		}
		out[d.UID] = d
	}
	return out
}

var (
	varRE           = regexp.MustCompile(`\$(\{)?([A-Za-z_]\w*)`)
	stationFilterRE = regexp.MustCompile(`"station" =~ /\^\$station\$/`)
)

// TestGrafanaDashboardsAreWellFormed: Grafana's required fields, the
// provisioned data source only, variables that exist, links to dashboards
// that exist, panels that do not overlap; a station variable that every query
// honours; a unit for every drawn series and one unit per axis side; QC
// panels on every code; limits drawn as thresholds that do not depend on the
// time range.
func TestGrafanaDashboardsAreWellFormed(t *testing.T) {
	dashboards := loadDashboards(t)
	limitNames := map[string]bool{}
	for _, st := range loadRegistry(t).Stations {
		for k := range st.Limits {
			limitNames[k] = true
		}
	}
	builtin := map[string]bool{"timeFilter": true, "__interval": true, "interval": true, "__url_time_range": true,
		"tag_station": true, "col": true}
	for uid, d := range dashboards {
		if d.Title == "" || d.SchemaVersion < 36 || len(d.Panels) == 0 {
			t.Errorf("%s: title %q, schemaVersion %d, %d panels", uid, d.Title, d.SchemaVersion, len(d.Panels))
		}
		defined := map[string]bool{}
		for _, v := range d.Templating.List {
			defined[v.Name] = true
			if v.Datasource.UID != dataSourceUID {
				t.Errorf("%s: variable %s uses data source %q", uid, v.Name, v.Datasource.UID)
			}
			// Station detail is one station's page; elsewhere any
			// selection of stations, all of them by default.
			if v.Name == "station" && uid != "rivermon-station" && !(v.Multi && v.IncludeAll) {
				t.Errorf("%s: variable station is not multi-value with All", uid)
			}
		}
		if !defined["station"] {
			t.Errorf("%s: no station variable", uid)
		}
		// Every query honours the station selection (variables aside: the
		// station list itself is narrowed by river).
		honours := func(where, q string) {
			if !stationFilterRE.MatchString(q) {
				t.Errorf("%s: %s ignores $station: %s", uid, where, q)
			}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				honours(fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Query)
			}
		}
		for _, a := range d.Annotations.List {
			if a.Query != "" {
				honours("annotation "+a.Name, a.Query)
			}
		}
		check := func(where, text string) {
			for _, m := range varRE.FindAllStringSubmatch(text, -1) {
				if !defined[m[2]] && !builtin[m[2]] {
					t.Errorf("%s: %s uses $%s, which the dashboard does not define", uid, where, m[2])
				}
			}
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			if p.ID == 0 || ids[p.ID] || p.Type == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: panel %q lacks id, type or gridPos, or repeats id %d", uid, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Datasource.UID != dataSourceUID || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q: data source %q, %d queries", uid, p.Title, p.Datasource.UID, len(p.Targets))
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != dataSourceUID || !tg.RawQuery || tg.RefID == "" || tg.Query == "" {
					t.Errorf("%s: panel %q query %s: %+v", uid, p.Title, tg.RefID, tg)
				}
				check("panel "+p.Title, tg.Query)
			}
			if p.Type == "timeseries" {
				checkUnits(t, uid, p)
			}
			checkQCCodes(t, uid, p)
			checkLimits(t, uid, p, limitNames)
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				refIDs[tg.RefID] = true
			}
			for ref := range configSources(p) {
				if !refIDs[ref] {
					t.Errorf("%s: panel %q: configFromData reads query %q, which the panel does not have", uid, p.Title, ref)
				}
			}
		}
		for i, a := range d.Panels {
			for _, b := range d.Panels[i+1:] {
				if a.GridPos != nil && b.GridPos != nil && a.GridPos.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < a.GridPos.X+a.GridPos.W &&
					a.GridPos.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < a.GridPos.Y+a.GridPos.H {
					t.Errorf("%s: panels %q and %q overlap", uid, a.Title, b.Title)
				}
			}
		}
		for _, a := range d.Annotations.List {
			if a.Query != "" {
				if a.Datasource.UID != dataSourceUID {
					t.Errorf("%s: annotation %s uses %q", uid, a.Name, a.Datasource.UID)
				}
				check("annotation "+a.Name, a.Query)
			}
		}
		for _, l := range d.Links {
			check("link", l.URL)
			target := strings.TrimPrefix(strings.SplitN(l.URL, "?", 2)[0], "/d/")
			if _, ok := dashboards[target]; !ok {
				t.Errorf("%s: link to unknown dashboard %q", uid, target)
			}
		}
	}
}

var aliasRE = regexp.MustCompile(`AS "([^"]+)"`)

// TestGrafanaDashboardQueriesReturnData runs every panel, variable and
// annotation query, with Grafana's macros and variables expanded as Grafana
// expands them, against a real influxd holding two simulated days of all 23
// stations (scenarios included) and a few days written for the purpose, and
// checks each returns the columns its panel needs; then what the panels
// show: one station's selection answers for it alone, each alert once in its
// latest state, failed days only among valid days, the limits and the map
// over a range before station_state, and the QC panels for every code a
// station reports.
func TestGrafanaDashboardQueriesReturnData(t *testing.T) {
	dashboards := loadDashboards(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-grafana", sweep: 100 * time.Millisecond, grace: time.Minute, state: 200 * time.Millisecond,
		adminToken: curToken})
	reg := loadRegistry(t)
	start := time.Date(2026, 10, 10, 0, 0, 0, 0, shanghai)
	scenarios, _ := simulators.ParseScenarios([]string{"flood:pumqu-chentang", "pollution:nianchu-mouth", "sensor-stuck:boqu-nyalam",
		"lowflow:sagya-sagya", "sensor-spike:yarlung-dazhuka"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := simulators.Run(ctx, simulators.Options{Broker: mq.URL, TopicPrefix: prefix, Registry: reg,
		Start: start, Speed: 1e9, Duration: 48 * time.Hour, Seed: 8, ClientID: "sim-grafana", Scenarios: scenarios})
	if err != nil || sum.Errors != 0 || ctx.Err() != nil {
		t.Fatalf("simulator: %v, %d errors, %v", err, sum.Errors, ctx.Err())
	}
	// Out-of-range readings, so that the data-quality tables have failed
	// values.
	pub := testenv.NewClient(t, mq.URL, "grafana-bad-values")
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", start.Add(30*time.Hour+time.Minute), time.Minute, 1, func(int) float64 { return -5 })
	for i, code := range []string{"ph", "do_mgl", "turb_ntu"} {
		publishSeries(t, pub, "nianchu-mouth", code, start.Add(30*time.Hour+time.Duration(2+i)*time.Minute), time.Minute, 1, func(int) float64 { return -1 })
	}
	// Two days below the ecological target (6.5 m³/s) after the simulated
	// ones: one whole day, which failed, and half an hour of the next, too
	// little data (coverage < 0.75) for the day to count either way.
	failedDay, thinDay := start.AddDate(0, 0, 3), start.AddDate(0, 0, 4)
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", failedDay, 5*time.Minute, 288, func(int) float64 { return 2 })
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", thinDay, 5*time.Minute, 6, func(int) float64 { return 2 })
	// Alerts of one station after the simulated days: the pH and DO sensors
	// fail together for 40 minutes (SensorFault fires for each), then pH
	// recovers (its alert resolves, DO's fires on); the water level stays
	// above the critical level for 15 minutes, then falls back below it
	// (WaterLevelCritical fires, then resolves).
	const alerting = "nianchu-bainang"
	critical := reg.Station(alerting).Limits["level_critical_m"]
	faultAt, floodAt := start.AddDate(0, 0, 3).Add(10*time.Hour), start.AddDate(0, 0, 3).Add(12*time.Hour)
	publishSamples := func(at time.Time, n int, values func(i int) map[string]float64) {
		var samples []any
		for i := range n {
			samples = append(samples, map[string]any{"time": at.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339), "values": values(i)})
		}
		pub.Publish(readingsTopic(alerting), mustJSON(t, map[string]any{"station": alerting, "samples": samples}))
	}
	// The recovering values come three times: a value with a spike test is
	// evaluated once the next one has come, and the first good pH after
	// the failed ones is itself a spike (a step of 8.6 against its
	// neighbours' mean).
	publishSamples(faultAt, 12, func(i int) map[string]float64 {
		if i >= 9 {
			return map[string]float64{"ph": 7.6, "do_mgl": -1}
		}
		return map[string]float64{"ph": -1, "do_mgl": -1}
	})
	publishSamples(floodAt, 6, func(i int) map[string]float64 {
		if i >= 4 {
			return map[string]float64{"level_m": critical - 0.1}
		}
		return map[string]float64{"level_m": critical + 0.2}
	})
	// A hydrologist approves the first simulated day of the station the
	// single-station dashboard shows.
	if code, body := svc.call("POST", "/api/v1/approvals", curToken, map[string]any{"station": "nianchu-mouth",
		"from": start.Format(time.DateOnly), "to": start.Format(time.DateOnly), "level": "approved", "author": "test", "reason": "checked"}); code != 200 {
		t.Fatalf("approval: %d %v", code, body)
	}
	why := ""
	defer func() {
		if t.Failed() {
			t.Log("the last condition unmet:", why)
		}
	}()
	testenv.Eventually(t, 60*time.Second, func() bool {
		if in.Count(t, "alert", "value", fmt.Sprintf(`"station" = '%s' AND "alertname" = 'WaterLevelCritical' AND "state" = 'resolved' AND time >= %d`, alerting, floodAt.UnixNano())) < 1 {
			why = "WaterLevelCritical not resolved"
			return false
		}
		if in.Count(t, "alert", "value", fmt.Sprintf(`"station" = '%s' AND "alertname" = 'SensorFault' AND "state" = 'resolved' AND time >= %d`, alerting, faultAt.UnixNano())) < 1 {
			why = "SensorFault not resolved"
			return false
		}
		if field(t, in, "eflow_daily", "compliant", "nianchu-mouth", failedDay) != "false" ||
			field(t, in, "eflow_daily", "compliant", "nianchu-mouth", thinDay) != "false" {
			why = "eflow days"
			return false
		}
		why = "bad values"
		if in.Count(t, "reading", "flow_m3s", `"station" = 'nianchu-mouth' AND "flow_m3s" < 0`) < 1 {
			return false // the bad values, published last, are not all in yet
		}
		for _, code := range []string{"ph", "do_mgl", "turb_ntu"} {
			if in.Count(t, "reading", code, fmt.Sprintf(`"station" = 'nianchu-mouth' AND %q < 0`, code)) < 1 {
				return false
			}
		}
		why = "counts"
		return in.Count(t, "stats_monthly", "count", `"station" = 'nianchu-mouth' AND "param" = 'level_m'`) > 0 &&
			in.Count(t, "reading", "level_m", "") >= int64(sum.Samples) && in.Count(t, "eflow_daily", "mean_flow_m3s", "") > 0 &&
			in.Count(t, "station_state", "qc_worst", "") >= 23 && in.Count(t, "alert", "value", "") > 0
	}, "the simulated days and the bad values did not all arrive")
	// The map colours sections by their worst active alert: some fire. The
	// snapshots come every 200 ms here, and the alert that stays firing (DO's
	// SensorFault) may have fired after the last one: wait for the next.
	testenv.Eventually(t, 10*time.Second, func() bool {
		ss, err := in.Query("rivermon", `SELECT max("alert_level") FROM "station_state"`)
		return err == nil && len(ss) == 1 && fmt.Sprint(ss[0].Values[0][1]) != "0"
	}, "station_state.alert_level never above 0")

	from, to := start.Add(-time.Hour), time.Now().Add(time.Hour)
	tags := func(key string) string {
		ss, err := in.Query("rivermon", fmt.Sprintf(`SHOW TAG VALUES FROM "reading" WITH KEY = %q`, key))
		if err != nil || len(ss) == 0 {
			t.Fatalf("SHOW TAG VALUES %s: %v", key, err)
		}
		var vals []string
		for _, row := range ss[0].Values {
			vals = append(vals, fmt.Sprint(row[1]))
		}
		sort.Strings(vals)
		if key == "station" && len(vals) != 23 {
			t.Errorf("%d stations, want 23", len(vals))
		}
		// Grafana formats a multi-value or All selection inside /^…$/ as a
		// regex alternation of the values.
		return "(" + strings.Join(vals, "|") + ")"
	}
	allRivers, allStations := tags("river"), tags("station")
	// expand puts in Grafana's macros and variables: station is the
	// selection as Grafana formats it, the time filter is [from, to].
	expand := func(q, station string, from, to time.Time) string {
		return strings.NewReplacer(
			"$timeFilter", fmt.Sprintf("time >= %dms and time <= %dms", from.UnixMilli(), to.UnixMilli()),
			"$__interval", "30m", "$river", allRivers, "$station", station,
		).Replace(q)
	}
	selection := func(d dashboard) string {
		for _, v := range d.Templating.List {
			if v.Name == "station" && !v.Multi {
				return "nianchu-mouth"
			}
		}
		return allStations
	}
	run := func(where, q string) []testenv.Series {
		ss, err := in.Query("rivermon", q)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, q)
			return nil
		}
		if len(ss) == 0 {
			t.Errorf("%s: no series\n%s", where, q)
			return nil
		}
		cols := map[string]bool{}
		nonNull := false
		for _, s := range ss {
			for _, c := range s.Columns {
				cols[c] = true
			}
			for _, row := range s.Values {
				for _, v := range row[1:] {
					nonNull = nonNull || v != nil
				}
			}
		}
		for _, m := range aliasRE.FindAllStringSubmatch(outerSelect(q), -1) {
			if !cols[m[1]] {
				t.Errorf("%s: column %q missing (have %v)", where, m[1], cols)
			}
		}
		if !nonNull {
			t.Errorf("%s: only nulls\n%s", where, q)
		}
		return ss
	}
	// reporting is the station a panel of a one-station dashboard is tried
	// with: the selection, or, when the panel reads a code the selection
	// does not report (rain at a section without a gauge), the first
	// station that reports every code it reads.
	reporting := func(station, q string) string {
		sel := reg.Station(station)
		if sel == nil {
			return station // every station selected
		}
		var codes []string
		for _, prm := range reading.Params() {
			if strings.Contains(q, `"`+prm.Code+`"`) {
				codes = append(codes, prm.Code)
			}
		}
		reports := func(st *registry.Station) bool {
			for _, c := range codes {
				if !st.Reports(c) {
					return false
				}
			}
			return true
		}
		if reports(sel) {
			return station
		}
		for i := range reg.Stations {
			if reports(&reg.Stations[i]) {
				return reg.Stations[i].ID
			}
		}
		return station
	}
	queries := 0
	for uid, d := range dashboards {
		station := selection(d)
		for _, v := range d.Templating.List {
			run(uid+" variable "+v.Name, expand(v.Query, station, from, to))
			queries++
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				run(fmt.Sprintf("%s panel %q %s", uid, p.Title, tg.RefID), expand(tg.Query, reporting(station, tg.Query), from, to))
				queries++
			}
		}
		for _, a := range d.Annotations.List {
			if a.Query != "" {
				run(uid+" annotation "+a.Name, expand(a.Query, station, from, to))
				queries++
			}
		}
	}
	t.Logf("%d queries of %d dashboards ran against %d simulated samples", queries, len(dashboards), sum.Samples)

	// One station selected, the queries grouped by station answer for it
	// alone.
	const one = "pumqu-chentang"
	for uid, d := range dashboards {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Query, `GROUP BY "station"`) && !strings.Contains(tg.Query, `, "station"`) {
					continue
				}
				q := expand(tg.Query, one, from, to)
				ss, err := in.Query("rivermon", q)
				if err != nil {
					t.Errorf("%s panel %q %s: %v", uid, p.Title, tg.RefID, err)
				}
				for _, s := range ss {
					if s.Tags["station"] != one {
						t.Errorf("%s panel %q %s: station %s selected, series of %q\n%s", uid, p.Title, tg.RefID, one, s.Tags["station"], q)
					}
				}
			}
		}
	}

	// The alert table shows each alert once, in its latest state: resolved
	// for the flood and the pH sensor, firing for the DO sensor.
	alertChecks := 0
	for uid, d := range dashboards {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if p.Type != "table" || !strings.Contains(tg.Query, `FROM "alert"`) {
					continue
				}
				alertChecks++
				where := fmt.Sprintf("%s panel %q %s", uid, p.Title, tg.RefID)
				got := map[string][]any{}
				for _, s := range run(where, expand(tg.Query, alerting, faultAt, floodAt.Add(time.Hour))) {
					for _, r := range s.Rows() {
						key := fmt.Sprintf("%s %s", r["alertname"], r["param"])
						got[key] = append(got[key], r["state"])
					}
				}
				for key, want := range map[string]string{"WaterLevelCritical level_m": "resolved", "SensorFault ph": "resolved", "SensorFault do_mgl": "firing"} {
					if len(got[key]) != 1 || got[key][0] != want {
						t.Errorf("%s: alert %s shown as %v, want once %s (all: %v)", where, key, got[key], want, got)
					}
				}
			}
		}
	}
	if alertChecks == 0 {
		t.Error("no alert table found")
	}

	// Failed days are valid days (coverage ≥ 0.75) below target: the whole
	// day below target is one, the day with half an hour of data is not.
	if c, _ := strconv.ParseFloat(field(t, in, "eflow_daily", "coverage", "nianchu-mouth", thinDay), 64); c >= hydro.ValidCoverage {
		t.Fatalf("coverage of the thin day %v, want < %v", c, hydro.ValidCoverage)
	}
	failedChecks := 0
	for uid, d := range dashboards {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if !strings.Contains(tg.Query, `"compliant" = false`) {
					continue
				}
				failedChecks++
				where := fmt.Sprintf("%s panel %q %s", uid, p.Title, tg.RefID)
				days := map[string]bool{}
				for _, s := range run(where, expand(tg.Query, "nianchu-mouth", failedDay.Add(-time.Hour), thinDay.Add(25*time.Hour))) {
					for _, r := range s.Rows() {
						ns, _ := r["time"].(json.Number).Int64()
						days[time.Unix(0, ns).In(shanghai).Format(time.DateOnly)] = true
					}
				}
				failed, thin := failedDay.Format(time.DateOnly), thinDay.Format(time.DateOnly)
				if !days[failed] || days[thin] || len(days) != 1 {
					t.Errorf("%s: failed days %v, want only %s (not %s, which has too little data)", where, slices.Sorted(maps.Keys(days)), failed, thin)
				}
			}
		}
	}
	if failedChecks == 0 {
		t.Error("no query of failed days found")
	}

	// Limit lines hold over a range before rivermon first wrote
	// station_state (the simulated days are weeks before this test ran): the
	// configuration query of each still gives the station's limits, as the
	// registry has them.
	before, beforeEnd := start, start.Add(48*time.Hour)
	if n := in.Count(t, "station_state", "lat", fmt.Sprintf("time >= %dms AND time <= %dms", before.UnixMilli(), beforeEnd.UnixMilli())); n != 0 {
		t.Fatalf("%d station_state points in the simulated days; the range must be before rivermon wrote any", n)
	}
	limitNames := map[string]bool{}
	for _, st := range reg.Stations {
		for k := range st.Limits {
			limitNames[k] = true
		}
	}
	limitChecks := 0
	for uid, d := range dashboards {
		station := selection(d)
		st := reg.Station(station)
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if configMappings(p)[tg.RefID] == nil {
					continue
				}
				where := fmt.Sprintf("%s panel %q %s, range before station_state", uid, p.Title, tg.RefID)
				rows := map[string]any{}
				for _, s := range run(where, expand(tg.Query, station, before, beforeEnd)) {
					for _, r := range s.Rows() {
						maps.Copy(rows, r)
					}
				}
				for field, alias := range limitsOf(tg.Query, limitNames) {
					want, ok := st.Limits[field]
					if code, isWQ := strings.CutPrefix(field, "wq_limit_"); isWQ {
						want, ok = quality.ClassLimit(code, int(st.Limits["wq_target_class"]))
					}
					if got := fmt.Sprint(rows[alias]); !ok || got != strconv.FormatFloat(want, 'g', -1, 64) {
						t.Errorf("%s: %s = %s, want %v (registry of %s)", where, alias, got, want, station)
					}
					limitChecks++
				}
			}
		}
	}
	if limitChecks == 0 {
		t.Error("no limit line checked")
	}
	// So do the other queries without $timeFilter, and the map places every
	// section.
	for uid, d := range dashboards {
		for _, p := range d.Panels {
			placed := 0
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s panel %q %s, range before station_state", uid, p.Title, tg.RefID)
				q := expand(tg.Query, selection(d), before, beforeEnd)
				var ss []testenv.Series
				if !strings.Contains(tg.Query, "$timeFilter") {
					ss = run(where, q)
				} else if p.Type == "geomap" {
					ss, _ = in.Query("rivermon", q)
				}
				for _, s := range ss {
					for _, r := range s.Rows() {
						if r["lat"] != nil && r["lon"] != nil {
							placed++
						}
					}
				}
			}
			if p.Type == "geomap" && placed != len(reg.Stations) {
				t.Errorf("%s panel %q, range before station_state: %d sections placed, want %d", uid, p.Title, placed, len(reg.Stations))
			}
		}
	}

	// The QC panels show every code a station reports: for each station
	// alone, the queries on QC flags of a panel return, once Grafana has
	// renamed their columns, a non-null column named by (or starting with)
	// each code of the station's registry entry, and the rated flow where
	// the station has one.
	for uid, d := range dashboards {
		for _, p := range d.Panels {
			if !slices.ContainsFunc(p.Targets, func(tg dashTarget) bool { return strings.Contains(tg.Query, "_qc") }) {
				continue
			}
			for _, st := range reg.Stations {
				want := slices.Clone(st.Params)
				if in.Count(t, "reading", "flow_rated_m3s", fmt.Sprintf("station = '%s'", st.ID)) > 0 {
					want = append(want, "flow_rated_m3s")
				}
				where := fmt.Sprintf("%s panel %q, station %s", uid, p.Title, st.ID)
				got := map[string]bool{}
				for _, tg := range p.Targets {
					for _, s := range run(where+" "+tg.RefID, expand(tg.Query, st.ID, from, to)) {
						for i, c := range s.Columns[1:] {
							for _, row := range s.Values {
								if f := strings.Fields(renamed(p, c)); row[i+1] != nil && len(f) > 0 {
									got[f[0]] = true
								}
							}
						}
					}
				}
				var missing []string
				for _, code := range want {
					if !got[code] {
						missing = append(missing, code)
					}
				}
				if len(missing) > 0 {
					t.Errorf("%s: no values for %v (have %v)", where, missing, slices.Sorted(maps.Keys(got)))
				}
			}
		}
	}
}

// checkQCCodes: a panel on QC flags selects them all, by the regex /_qc$/
// or by naming the flag of every parameter code and of the rated flow, so
// that a code added to the contract is not silently left out.
func checkQCCodes(t *testing.T, uid string, p dashPanel) {
	t.Helper()
	for _, tg := range p.Targets {
		if !strings.Contains(tg.Query, "_qc") || strings.Contains(tg.Query, "(/_qc$/)") {
			continue
		}
		codes := []string{"flow_rated_m3s"}
		for _, prm := range reading.Params() {
			codes = append(codes, prm.Code)
		}
		for _, c := range codes {
			if !strings.Contains(tg.Query, `"`+c+`_qc"`) {
				t.Errorf("%s: panel %q query %s leaves out the flags of %s", uid, p.Title, tg.RefID, c)
			}
		}
	}
}

var selectedRE = regexp.MustCompile(`last\("([^"]+)"\) AS "([^"]+)"`)

// limitsOf returns, for a query on station_state, the station limits it
// selects (field → alias).
func limitsOf(q string, limitNames map[string]bool) map[string]string {
	out := map[string]string{}
	if !strings.Contains(q, `FROM "station_state"`) {
		return out
	}
	for _, m := range selectedRE.FindAllStringSubmatch(q, -1) {
		if limitNames[m[1]] || strings.HasPrefix(m[1], "wq_limit_") {
			out[m[1]] = m[2]
		}
	}
	return out
}

// configMappings returns, per configFromData source refId, the handler
// each field name is mapped to.
func configMappings(p dashPanel) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, tr := range p.Transformations {
		if tr.ID != "configFromData" {
			continue
		}
		var o struct {
			ConfigRefID string `json:"configRefId"`
			Mappings    []struct {
				FieldName  string `json:"fieldName"`
				HandlerKey string `json:"handlerKey"`
			} `json:"mappings"`
		}
		if json.Unmarshal(tr.Options, &o) != nil {
			continue
		}
		out[o.ConfigRefID] = map[string]string{}
		for _, m := range o.Mappings {
			out[o.ConfigRefID][m.FieldName] = m.HandlerKey
		}
	}
	return out
}

// checkLimits: a limit (warning level, ecological target, class limit…) a
// panel reads from station_state is drawn as a threshold from a query
// without $timeFilter, so that it does not vanish over a range in which
// rivermon wrote no station_state: every limit the panel selects is in a
// configFromData source, as a table, mapped to a threshold that the panel
// draws.
func checkLimits(t *testing.T, uid string, p dashPanel, limitNames map[string]bool) {
	t.Helper()
	mappings := configMappings(p)
	asThreshold := map[string]bool{}
	for _, tg := range p.Targets {
		m, isConfig := mappings[tg.RefID]
		if !isConfig {
			continue
		}
		if strings.Contains(tg.Query, "$timeFilter") || tg.ResultFormat != "table" {
			t.Errorf("%s: panel %q: configuration query %s depends on the time range or is not a table: %s", uid, p.Title, tg.RefID, tg.Query)
		}
		for field, alias := range limitsOf(tg.Query, limitNames) {
			if m[alias] != "threshold1" {
				t.Errorf("%s: panel %q: %s (%q) of query %s is mapped to %q, not to a threshold", uid, p.Title, field, alias, tg.RefID, m[alias])
				continue
			}
			asThreshold[field] = true
		}
	}
	for _, tg := range p.Targets {
		for field := range limitsOf(tg.Query, limitNames) {
			if !asThreshold[field] {
				t.Errorf("%s: panel %q: limit %s (query %s) is not a threshold from a query without $timeFilter", uid, p.Title, field, tg.RefID)
			}
		}
	}
	if len(asThreshold) > 0 {
		style, _ := p.FieldConfig.Defaults.Custom["thresholdsStyle"].(map[string]any)
		if mode, _ := style["mode"].(string); mode == "" || mode == "off" {
			t.Errorf("%s: panel %q: thresholds from limits, but not drawn (thresholdsStyle %v)", uid, p.Title, style)
		}
	}
}

// renamed is the name Grafana shows for column c of panel p after the
// panel's renameByRegex transformations.
func renamed(p dashPanel, c string) string {
	for _, tr := range p.Transformations {
		if tr.ID != "renameByRegex" {
			continue
		}
		var o struct {
			Regex         string `json:"regex"`
			RenamePattern string `json:"renamePattern"`
		}
		if json.Unmarshal(tr.Options, &o) == nil {
			c = regexp.MustCompile(o.Regex).ReplaceAllString(c, o.RenamePattern)
		}
	}
	return c
}

// drawnSeries are the series a panel draws, as Grafana names them: per
// query not used as configuration (configFromData), one per column of its
// outer SELECT, named by the query's alias template ($col, $m) or by
// Grafana's default "measurement.column". known is false when the name
// depends on the data (tag values, unaliased columns).
type drawnSeries struct {
	refID, name string
	known       bool
}

var (
	fromRE    = regexp.MustCompile(`FROM "([^"]+)"`)
	groupTags = regexp.MustCompile(`GROUP BY [^"]*"`)
)

func seriesOf(p dashPanel) []drawnSeries {
	config := configSources(p)
	var out []drawnSeries
	for _, tg := range p.Targets {
		if config[tg.RefID] {
			continue
		}
		measurement := ""
		if m := fromRE.FindStringSubmatch(tg.Query); m != nil {
			measurement = m[1]
		}
		cols := []string{""}
		if as := aliasRE.FindAllStringSubmatch(outerSelect(tg.Query), -1); as != nil {
			cols = cols[:0]
			for _, m := range as {
				cols = append(cols, m[1])
			}
		}
		for _, col := range cols {
			tmpl, known := tg.Alias, col != ""
			if tmpl == "" {
				tmpl = "$m.$col"
				known = known && !groupTags.MatchString(tg.Query)
			}
			name := strings.NewReplacer("$col", col, "$measurement", measurement, "$m", measurement).Replace(tmpl)
			known = known && !strings.Contains(name, "$") && !strings.Contains(name, "[[")
			out = append(out, drawnSeries{refID: tg.RefID, name: name, known: known})
		}
	}
	return out
}

// outerSelect is the select list of a query's outermost SELECT.
func outerSelect(q string) string {
	if i := strings.Index(q, " FROM "); i >= 0 {
		return q[:i]
	}
	return q
}

// configSources are the refIds whose results a configFromData
// transformation turns into field config rather than series.
func configSources(p dashPanel) map[string]bool {
	out := map[string]bool{}
	for _, tr := range p.Transformations {
		if tr.ID != "configFromData" {
			continue
		}
		var o struct {
			ConfigRefID string `json:"configRefId"`
		}
		if json.Unmarshal(tr.Options, &o) == nil {
			out[o.ConfigRefID] = true
		}
	}
	return out
}

// checkUnits: every series a timeseries panel draws has a unit, from the
// defaults or an override, and no axis side carries two units (a
// temperature and a conductivity on one unit-less axis read as neither).
// Overrides are applied as Grafana applies them, in order, by field name,
// name regex or query.
func checkUnits(t *testing.T, uid string, p dashPanel) {
	t.Helper()
	sides := map[string]map[string][]string{} // side → unit → series
	for _, s := range seriesOf(p) {
		unit, side := p.FieldConfig.Defaults.Unit, ""
		if v, ok := p.FieldConfig.Defaults.Custom["axisPlacement"].(string); ok {
			side = v
		}
		for _, o := range p.FieldConfig.Overrides {
			opt, _ := o.Matcher.Options.(string)
			var match bool
			switch o.Matcher.ID {
			case "byName":
				match = s.known && s.name == opt
			case "byRegexp":
				re, err := regexp.Compile(opt)
				if err != nil {
					t.Errorf("%s: panel %q: override regex %q: %v", uid, p.Title, opt, err)
				}
				match = err == nil && s.known && re.MatchString(s.name)
			case "byFrameRefID":
				match = s.refID == opt
			default:
				t.Errorf("%s: panel %q: override matcher %q, which this test cannot follow", uid, p.Title, o.Matcher.ID)
			}
			if !match {
				continue
			}
			for _, pr := range o.Properties {
				v, _ := pr.Value.(string)
				switch pr.ID {
				case "unit":
					unit = v
				case "custom.axisPlacement":
					side = v
				}
			}
		}
		if unit == "" {
			t.Errorf("%s: panel %q: series %q (query %s) has no unit", uid, p.Title, s.name, s.refID)
		}
		if side == "hidden" {
			continue
		}
		if side == "" {
			side = "auto"
		}
		if sides[side] == nil {
			sides[side] = map[string][]string{}
		}
		sides[side][unit] = append(sides[side][unit], s.name)
	}
	for side, units := range sides {
		if len(units) > 1 {
			t.Errorf("%s: panel %q: axis %s mixes units %v", uid, p.Title, side, units)
		}
	}
}
