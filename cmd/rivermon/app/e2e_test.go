package app_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/testenv"
)

const prefix = "rivermon/v1"

func readingsTopic(station string) string { return prefix + "/stations/" + station + "/readings" }

// expected is what InfluxDB must hold: station → time (ns) → field → value.
type expected map[string]map[int64]map[string]float64

func (e expected) add(station string, t time.Time, values map[string]float64) {
	if e[station] == nil {
		e[station] = map[int64]map[string]float64{}
	}
	ns := t.UnixNano()
	if e[station][ns] == nil {
		e[station][ns] = map[string]float64{}
	}
	for k, v := range values {
		// Same station, time and code twice: the later value wins.
		e[station][ns][k] = v
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEndToEndStoresEverySampleExactly(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-e2e")
	reg := loadRegistry(t)
	pub := testenv.NewClient(t, mq.URL, "station-e2e")

	t0 := time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Hour)
	want := expected{}
	rivers := map[string]string{"nianchu-gyantse": "nianchu", "yarlung-lhatse": "yarlung", "sagya-sagya": "sagya"}

	// One sample, RFC 3339 time in UTC.
	v1 := map[string]float64{"level_m": 1.23, "flow_m3s": 20.5, "ph": 8.1, "do_mgl": 6.62, "water_temp_c": -0.05}
	pub.Publish(readingsTopic("nianchu-gyantse"), mustJSON(t, map[string]any{
		"station": "nianchu-gyantse", "seq": 1,
		"samples": []any{map[string]any{"time": t0.Format(time.RFC3339), "values": v1}}}))
	want.add("nianchu-gyantse", t0, v1)

	// A backlog of 500 samples in one message (a station back from a link
	// outage), times as epoch milliseconds.
	var backlog []any
	for i := range 500 {
		ts := t0.Add(-time.Duration(500-i) * 5 * time.Minute)
		vals := map[string]float64{"level_m": 1 + float64(i)/1000, "water_temp_c": 3.5 + float64(i%7)/10}
		backlog = append(backlog, map[string]any{"time": ts.UnixMilli(), "values": vals})
		want.add("yarlung-lhatse", ts, vals)
	}
	pub.Publish(readingsTopic("yarlung-lhatse"), mustJSON(t, map[string]any{"station": "yarlung-lhatse", "seq": 7, "samples": backlog}))

	// Out of order, with a +08:00 offset and a fraction.
	cst := time.FixedZone("CST", 8*3600)
	var ooo []any
	for _, m := range []int{10, 0, 5} {
		ts := t0.Add(time.Duration(m)*time.Minute + 250*time.Millisecond)
		vals := map[string]float64{"level_m": 0.4 + float64(m)/100, "flow_m3s": 2.5}
		ooo = append(ooo, map[string]any{"time": ts.In(cst).Format(time.RFC3339Nano), "values": vals})
		want.add("sagya-sagya", ts, vals)
	}
	pub.Publish(readingsTopic("sagya-sagya"), mustJSON(t, map[string]any{"station": "sagya-sagya", "samples": ooo}))

	// A duplicate of the first sample with a new level: stored once, the
	// later value wins, the other fields stay.
	pub.Publish(readingsTopic("nianchu-gyantse"), mustJSON(t, map[string]any{
		"station": "nianchu-gyantse", "seq": 2,
		"samples": []any{map[string]any{"time": t0.Format(time.RFC3339), "values": map[string]float64{"level_m": 1.3}}}}))
	want.add("nianchu-gyantse", t0, map[string]float64{"level_m": 1.3})

	// Device health.
	pub.Publish(prefix+"/stations/nianchu-gyantse/status", []byte(fmt.Sprintf(
		`{"time": %q, "online": true, "battery_v": 12.6, "signal_dbm": -87, "enclosure_temp_c": -18.5}`, t0.Format(time.RFC3339))))

	total := 0
	for _, byTime := range want {
		total += len(byTime)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") == int64(total) && svc.metric("rivermon_messages_total{result=\"accepted\"}") == 5
	}, "InfluxDB does not hold the %d samples", total)

	for station, byTime := range want {
		ss, err := in.Query("rivermon", fmt.Sprintf(`SELECT * FROM reading WHERE station = '%s'`, station))
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 1 {
			t.Fatalf("%s: %d series", station, len(ss))
		}
		rows := ss[0].Rows()
		if len(rows) != len(byTime) {
			t.Errorf("%s: %d rows, want %d", station, len(rows), len(byTime))
		}
		for _, row := range rows {
			ns, _ := strconv.ParseInt(string(row["time"].(json.Number)), 10, 64)
			wantVals, ok := byTime[ns]
			if !ok {
				t.Errorf("%s: unexpected point at %s", station, time.Unix(0, ns).UTC())
				continue
			}
			if row["river"] != rivers[station] || row["station"] != station {
				t.Errorf("%s: tags river=%v station=%v", station, row["river"], row["station"])
			}
			for code, v := range wantVals {
				got, ok := row[code].(json.Number)
				if !ok {
					t.Errorf("%s %s: %s missing", station, time.Unix(0, ns).UTC(), code)
					continue
				}
				if f, _ := got.Float64(); f != v {
					t.Errorf("%s %s: %s = %v, want %v", station, time.Unix(0, ns).UTC(), code, f, v)
				}
				if q := fmt.Sprint(row[code+"_qc"]); q < "1" || q > "4" || len(q) != 1 {
					t.Errorf("%s %s: %s_qc = %v, want a QARTOD flag", station, time.Unix(0, ns).UTC(), code, q)
				}
			}
			// The rating curve of the station gives flow_rated_m3s from level_m.
			st := reg.Station(station)
			wantQ, err := hydro.RatedFlow(st, time.Unix(0, ns), wantVals["level_m"])
			if got, _ := row["flow_rated_m3s"].(json.Number).Float64(); err != nil || got != wantQ {
				t.Errorf("%s %s: flow_rated_m3s = %v, want %v (%v)", station, time.Unix(0, ns).UTC(), got, wantQ, err)
			}
			for col, v := range row {
				if _, isWanted := wantVals[col]; v != nil && !isWanted && col != "time" && col != "river" && col != "station" &&
					col != "flow_rated_m3s" && col != "wq_class" && !strings.HasSuffix(col, "_qc") {
					t.Errorf("%s %s: unexpected field %s = %v", station, time.Unix(0, ns).UTC(), col, v)
				}
			}
		}
	}

	// GB 3838-2002: DO 6.62 mg/L at −0.05 °C and 4,030 m is below 90 % of
	// saturation (≈ 7.9 mg/L) but above 6 mg/L: Class II; pH 8.1: Class I.
	ss, err := in.Query("rivermon", fmt.Sprintf(`SELECT wq_class FROM reading WHERE station = 'nianchu-gyantse' AND time = %d`, t0.UnixNano()))
	if err != nil || len(ss) != 1 || fmt.Sprint(ss[0].Values[0][1]) != "2" {
		t.Errorf("wq_class of nianchu-gyantse: %v %v, want 2", ss, err)
	}

	ss, err = in.Query("rivermon", `SELECT online, battery_v, signal_dbm, enclosure_temp_c FROM station_status WHERE station = 'nianchu-gyantse'`)
	if err != nil || len(ss) != 1 || len(ss[0].Values) != 1 {
		t.Fatalf("station_status: %v %v", ss, err)
	}
	row := ss[0].Rows()[0]
	if row["online"] != true || fmt.Sprint(row["battery_v"]) != "12.6" || fmt.Sprint(row["signal_dbm"]) != "-87" || fmt.Sprint(row["enclosure_temp_c"]) != "-18.5" {
		t.Errorf("station_status row %v", row)
	}

	// The station API shows the newest values, last seen and the counter.
	var stations []struct {
		ID       string     `json:"id"`
		River    string     `json:"river"`
		LastSeen *time.Time `json:"last_seen"`
		Values   map[string]struct {
			Value float64 `json:"value"`
			QC    int     `json:"qc"`
		} `json:"values"`
		Seq     struct{ Last, Gaps, Repeats int64 } `json:"seq"`
		Online  *bool                               `json:"online"`
		WQClass *int                                `json:"wq_class"`
	}
	svc.getJSON("/api/v1/stations", &stations)
	if len(stations) != 23 {
		t.Fatalf("/api/v1/stations lists %d stations, want 23", len(stations))
	}
	for _, st := range stations {
		switch st.ID {
		case "nianchu-gyantse":
			if st.LastSeen == nil || !st.LastSeen.Equal(t0) || st.Values["level_m"].Value != 1.3 || st.Values["flow_m3s"].Value != 20.5 ||
				st.Values["level_m"].QC != 1 || st.Seq.Last != 2 || st.Online == nil || !*st.Online || st.WQClass == nil || *st.WQClass != 2 {
				t.Errorf("nianchu-gyantse view: %+v", st)
			}
		case "sagya-sagya":
			newest := t0.Add(10*time.Minute + 250*time.Millisecond)
			if st.LastSeen == nil || !st.LastSeen.Equal(newest) || math.Abs(st.Values["level_m"].Value-0.5) > 1e-12 {
				t.Errorf("sagya-sagya view: %+v", st)
			}
		case "sagya-nowhere":
			t.Error("unexpected station")
		}
	}
	if got := svc.metric(`rivermon_samples_total{result="stored"}`); got != float64(1+500+3+1) {
		t.Errorf("rivermon_samples_total{result=stored} = %v, want %d", got, 505)
	}
	if got := svc.metric("rivermon_seq_repeats_total"); got != 0 {
		t.Errorf("seq repeats %v", got)
	}
	if got := svc.metric(fmt.Sprintf("rivermon_station_last_seen_timestamp_seconds{station=%q}", "nianchu-gyantse")); got != float64(t0.Unix()) {
		t.Errorf("last seen gauge %v, want %d", got, t0.Unix())
	}
	if got := svc.metric(`rivermon_ingest_delay_seconds_count{output="default"}`); got != 505 {
		t.Errorf("ingest delay histogram counted %v samples, want 505", got)
	}
}
