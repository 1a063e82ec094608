package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/run"
	"github.com/rivermon/rivermon/internal/testenv"
)

// periodsHarness is a journal delivered to a real InfluxDB, with the
// statistics stage reading it, as app wires them.
type periodsHarness struct {
	in      *testenv.Influx
	journal *journal.Journal
	periods *Periods
	dir     string
	stop    func()
}

const periodsStation = "nianchu-manla-outlet" // 5-minute interval, eflow_m3s 2

func newPeriodsHarness(t *testing.T, in *testenv.Influx, dir string, now time.Time) *periodsHarness {
	t.Helper()
	return newPeriodsHarnessAt(t, in, in.URL, dir, now)
}

// newPeriodsHarnessAt writes to and reads from the InfluxDB at url.
func newPeriodsHarnessAt(t *testing.T, in *testenv.Influx, url, dir string, now time.Time) *periodsHarness {
	t.Helper()
	w := influx.New(influx.Options{URL: url, Bucket: "rivermon/autogen", MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(w.Close)
	sp, _, err := spool.Open(dir, spool.Options{Readers: append(journal.Readers([]string{"default"}), journal.PeriodsReader)})
	if err != nil {
		t.Fatal(err)
	}
	h := &periodsHarness{in: in, dir: dir, journal: journal.New(sp, journal.Options{})}
	h.periods, err = NewPeriods(PeriodsOptions{Journal: h.journal, Registry: testRegistry(t), Query: w,
		Output: journal.OutputReader("default"), MarksFile: filepath.Join(dir, "periods.json"),
		TakeEvery: 10 * time.Millisecond, ComputeEvery: 50 * time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDelivery(DeliveryOptions{Journal: h.journal, Outputs: []Output{{Name: "default", Writer: w}},
		DeadLetters: &fakePublisher{}, TopicPrefix: "rivermon/v1", Metrics: NewMetrics(nil)})
	ctx, cancel := context.WithCancel(context.Background())
	var g run.Group
	g.Go("periods", h.periods.Run)
	g.Go("delivery", d.Run)
	done := make(chan error, 1)
	go func() { done <- g.Wait(ctx) }()
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		sp.Close()
	}
	return h
}

// at is a local (UTC+8) time on 30 June 2026.
func at(hh, mm int) time.Time { return time.Date(2026, 6, 30, hh, mm, 0, 0, reading.Zone) }

// write appends one record of `reading` points of the test station: each
// "field=value,…" at its time.
func (h *periodsHarness) write(t *testing.T, kind journal.Kind, points map[time.Time]string) {
	t.Helper()
	var rec journal.Record
	for ts, fields := range points {
		line := fmt.Sprintf("reading,river=nianchu,station=%s %s %d", periodsStation, fields, ts.UnixNano())
		rec.Entries = append(rec.Entries, journal.Entry{Kind: kind, Station: periodsStation, Time: ts, Source: "test", Line: line})
	}
	if err := h.journal.Append(context.Background(), &rec); err != nil {
		t.Fatal(err)
	}
}

// stats reads a stored statistics point: its fields by name.
func (h *periodsHarness) stats(t *testing.T, measurement, param string, start time.Time) map[string]float64 {
	t.Helper()
	return fieldsOf(t, h.in, fmt.Sprintf("SELECT * FROM %s WHERE station = '%s' AND param = '%s' AND time = %d",
		measurement, periodsStation, param, start.UnixNano()))
}

// fieldsOf runs q and returns the numbers and booleans (as 0 or 1) of the
// rows it answers, by column.
func fieldsOf(t *testing.T, in *testenv.Influx, q string) map[string]float64 {
	t.Helper()
	series, err := in.Query("rivermon", q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range series {
		for _, row := range s.Rows() {
			for k, v := range row {
				switch x := v.(type) {
				case json.Number:
					out[k], _ = x.Float64()
				case bool:
					out[k] = map[bool]float64{false: 0, true: 1}[x]
				}
			}
		}
	}
	return out
}

// waitStats waits until the statistics point has the fields want (to 1e-9).
func (h *periodsHarness) waitStats(t *testing.T, measurement, param string, start time.Time, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		got = h.stats(t, measurement, param, start)
		if matches(got, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s at %s: got %v, want %v", measurement, param, start, got, want)
}

func matches(got, want map[string]float64) bool {
	for k, w := range want {
		g, ok := got[k]
		if !ok || math.Abs(g-w) > 1e-9 {
			return false
		}
	}
	return true
}

// TestPeriodStatistics checks hourly, daily and monthly statistics against
// tables computed by hand: a gap longer than three intervals, values
// flagged suspect and failed left out, a late value and a QC revision
// rewriting the periods they touch, a local day (UTC+8) and a month
// boundary, and marks kept across a restart.
func TestPeriodStatistics(t *testing.T) {
	in := testenv.StartInflux(t)
	dir := t.TempDir()
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, reading.Zone)
	h := newPeriodsHarness(t, in, dir, now)
	// Hour 00 of 30 June (local): stage every 5 minutes with a spike
	// (flag 4) at 00:15, nothing between 00:20 and 00:50 (a gap of six
	// intervals), a suspect value at 00:55; temperature at three times.
	h.write(t, journal.KindReading, map[time.Time]string{
		at(0, 0):  "level_m=1.0,level_m_qc=1i,water_temp_c=4,water_temp_c_qc=1i",
		at(0, 5):  "level_m=1.2,level_m_qc=1i",
		at(0, 10): "level_m=1.4,level_m_qc=2i",
		at(0, 15): "level_m=9.9,level_m_qc=4i",
		at(0, 20): "level_m=1.6,level_m_qc=1i",
		at(0, 30): "water_temp_c=6,water_temp_c_qc=1i",
		at(0, 45): "water_temp_c=100,water_temp_c_qc=4i",
		at(0, 50): "level_m=1.0,level_m_qc=1i",
		at(0, 55): "level_m=3.0,level_m_qc=3i",
		// 1 July 00:00 local: the next day and the next month.
		time.Date(2026, 7, 1, 0, 0, 0, 0, reading.Zone): "level_m=2.0,level_m_qc=1i",
	})
	// Stage (time-weighted): pairs 0–5, 5–10 and 10–20 joined
	// (330 + 390 + 900 m·s over 1,200 s); 1.6 at 00:20 ends a run and
	// holds 300 s (480); 1.0 at 00:50 ends the hour's data and holds
	// 300 s (300): 2,400 over 1,800 s.
	hour := map[string]float64{"count": 5, "flagged": 2, "expected": 12, "completeness": 5.0 / 12,
		"mean": 2400.0 / 1800, "min": 1.0, "max": 1.6, "covered_s": 1800}
	h.waitStats(t, "stats_hourly", "level_m", at(0, 0), hour)
	// Temperature is an arithmetic mean.
	h.waitStats(t, "stats_hourly", "water_temp_c", at(0, 0), map[string]float64{"count": 2, "flagged": 1, "mean": 5, "min": 4, "max": 6})
	// The local day: the same values, out of 288 expected.
	day := map[string]float64{"count": 5, "flagged": 2, "expected": 288, "completeness": 5.0 / 288, "mean": 2400.0 / 1800}
	h.waitStats(t, "stats_daily", "level_m", at(0, 0), day)
	h.waitStats(t, "stats_daily", "level_m", time.Date(2026, 7, 1, 0, 0, 0, 0, reading.Zone),
		map[string]float64{"count": 1, "mean": 2.0, "covered_s": 300})
	// June's month (its 1st, local) holds the 30th only; July the 1st only.
	june := time.Date(2026, 6, 1, 0, 0, 0, 0, reading.Zone)
	h.waitStats(t, "stats_monthly", "level_m", june, map[string]float64{"count": 5, "flagged": 2, "expected": 30 * 288, "mean": 2400.0 / 1800})
	h.waitStats(t, "stats_monthly", "level_m", time.Date(2026, 7, 1, 0, 0, 0, 0, reading.Zone),
		map[string]float64{"count": 1, "expected": 31 * 288, "mean": 2.0})

	// A restart in between: the marks of what comes next are kept.
	h.stop()
	h = newPeriodsHarness(t, in, dir, now)
	defer h.stop()
	// A late value at 00:25 fills part of the gap: 20–25 joined (465),
	// 1.5 at 00:25 holds 300 s (450): 2,835 over 2,100 s.
	h.write(t, journal.KindReading, map[time.Time]string{at(0, 25): "level_m=1.5,level_m_qc=1i"})
	h.waitStats(t, "stats_hourly", "level_m", at(0, 0), map[string]float64{"count": 6, "flagged": 2, "mean": 2835.0 / 2100, "covered_s": 2100})
	h.waitStats(t, "stats_monthly", "level_m", june, map[string]float64{"count": 6, "mean": 2835.0 / 2100})
	// The QC revision of 00:05 (a spike seen late): 0–10 becomes one pair
	// of 600 s (720), 10–20 (900), 20–25 (465), two tails (450, 300):
	// 2,835 over 2,100 s again, from five values.
	h.write(t, journal.KindRevision, map[time.Time]string{at(0, 5): "level_m_qc=4i"})
	h.waitStats(t, "stats_hourly", "level_m", at(0, 0), map[string]float64{"count": 5, "flagged": 3, "mean": 2835.0 / 2100})
	h.waitStats(t, "stats_daily", "level_m", at(0, 0), map[string]float64{"count": 5, "flagged": 3})
	h.waitStats(t, "stats_monthly", "level_m", june, map[string]float64{"count": 5, "flagged": 3})
}

// TestPeriodsAccountCorrectedDays: a closed day's ecological-flow account
// is computed from what is stored (with the stream's FlowDays), and a
// correction of the stored flow changes the day's account and its month's.
func TestPeriodsAccountCorrectedDays(t *testing.T) {
	in := testenv.StartInflux(t)
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, reading.Zone)
	h := newPeriodsHarness(t, in, t.TempDir(), now)
	defer h.stop()
	// 30 June: measured flow every 5 minutes, 2.5 m³/s (target 2).
	points := map[time.Time]string{}
	for m := 0; m < 24*60; m += 5 {
		points[at(0, m)] = "flow_m3s=2.5,flow_m3s_qc=1i"
	}
	h.write(t, journal.KindReading, points)
	eflow := func() map[string]float64 {
		return fieldsOf(t, in, fmt.Sprintf("SELECT * FROM eflow_daily WHERE station = '%s' AND time = %d", periodsStation, at(0, 0).UnixNano()))
	}
	wait := func(want map[string]float64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !matches(eflow(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("eflow_daily: got %v, want %v", eflow(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait(map[string]float64{"mean_flow_m3s": 2.5, "coverage": 1, "compliant": 1, "samples": 288})
	monthStart := time.Date(2026, 6, 1, 0, 0, 0, 0, reading.Zone)
	month := func() string {
		q := fmt.Sprintf("SELECT days_valid, days_compliant, rate, guaranteed FROM eflow_monthly WHERE station = '%s' AND time = %d", periodsStation, monthStart.UnixNano())
		series, err := in.Query("rivermon", q)
		if err != nil || len(series) == 0 {
			return fmt.Sprint(err)
		}
		return fmt.Sprint(series[0].Values[0][1:])
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return month() == "[1 1 1 true]" }, "eflow_monthly: %s", month())

	// A correction sets 06:00–11:55 to 0.4: 18 h at 2.5 and 6 h at 0.4,
	// joined at 05:55–06:00 and 11:55–12:00.
	corrected := map[time.Time]string{}
	for m := 6 * 60; m < 12*60; m += 5 {
		corrected[at(0, m)] = "flow_m3s=0.4,flow_m3s_qc=1i,flow_m3s_raw=2.5"
	}
	h.write(t, journal.KindCorrected, corrected)
	// Trapezoids: 2.5 over 05:55–06:00 and 11:55–12:00 rise or fall to
	// 0.4 (1.45 × 300 s each); the rest as it reads; the last value holds
	// to midnight: 1.975 m³/s, below the target.
	integral := 2.5*(6*3600-300) + 1.45*300 + 0.4*(6*3600-300) + 1.45*300 + 2.5*(12*3600-300) + 2.5*300
	wait(map[string]float64{"mean_flow_m3s": integral / 86400, "coverage": 1, "compliant": 0})
	testenv.Eventually(t, 15*time.Second, func() bool { return month() == "[1 0 0 false]" }, "eflow_monthly: %s", month())
}

// TestPeriodMarksSurviveARestart: the periods marked while InfluxDB is
// down are computed after a restart, although the stage's position went
// past the records that marked them: the marks were saved first.
func TestPeriodMarksSurviveARestart(t *testing.T) {
	in := testenv.StartInflux(t)
	dir := t.TempDir()
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, reading.Zone)
	down := "http://127.0.0.1:" + fmt.Sprint(testenv.FreePort(t)) // nothing listens
	h := newPeriodsHarnessAt(t, in, down, dir, now)
	h.write(t, journal.KindReading, map[time.Time]string{at(3, 0): "level_m=1.5,level_m_qc=1i", at(3, 5): "level_m=1.7,level_m_qc=1i"})
	testenv.Eventually(t, 5*time.Second, func() bool { return h.journal.Position(journal.PeriodsReader) > 0 },
		"the statistics stage did not take the record")
	h.stop()
	if b, err := os.ReadFile(filepath.Join(dir, "periods.json")); err != nil || !strings.Contains(string(b), periodsStation+" 2026-06-30") {
		t.Fatalf("marks not saved (%v): %s", err, b)
	}
	h = newPeriodsHarness(t, in, dir, now)
	defer h.stop()
	h.waitStats(t, "stats_hourly", "level_m", at(3, 0), map[string]float64{"count": 2, "mean": (480 + 510) / 600.0}) // 1.5–1.7 joined over 300 s, 1.7 holding 300 s
}
