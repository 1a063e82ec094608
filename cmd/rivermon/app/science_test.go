package app_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

var shanghai = time.FixedZone("CST", 8*3600)

// series publishes one message per station with the samples value(i) at
// start + i·step, i < n.
func publishSeries(t *testing.T, pub *testenv.Client, station, code string, start time.Time, step time.Duration, n int, value func(i int) float64) {
	t.Helper()
	const perMsg = 500
	for from := 0; from < n; from += perMsg {
		var samples []any
		for i := from; i < min(from+perMsg, n); i++ {
			samples = append(samples, map[string]any{"time": start.Add(time.Duration(i) * step).Format(time.RFC3339),
				"values": map[string]any{code: value(i)}})
		}
		pub.Publish(readingsTopic(station), mustJSON(t, map[string]any{"station": station, "samples": samples}))
	}
}

// field returns the value of field at station and time, or "" when absent.
func field(t *testing.T, in *testenv.Influx, measurement, fieldName, station string, at time.Time) string {
	t.Helper()
	ss, err := in.Query("rivermon", fmt.Sprintf(`SELECT %q FROM %q WHERE station = '%s' AND time = %d`, fieldName, measurement, station, at.UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 || len(ss[0].Values) == 0 || ss[0].Values[0][1] == nil {
		return ""
	}
	return fmt.Sprint(ss[0].Values[0][1])
}

// TestRiverScienceEndToEnd publishes through Mosquitto the situations QC,
// GB 3838 and the ecological-flow accounts exist for, and reads the flags,
// classes and daily accounts back from InfluxDB.
func TestRiverScienceEndToEnd(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-science", sweep: 100 * time.Millisecond, grace: time.Minute})
	pub := testenv.NewClient(t, mq.URL, "station-science")
	today := time.Now().In(shanghai)
	midnight := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, shanghai)
	step := 5 * time.Minute

	// A spike on the stage: 1.50 m steady, one reading of 1.90, back to 1.50.
	// Spike (average method, suspect 0.10, fail 0.30): the spike fails
	// (|1.9 − 1.5| = 0.4); its neighbours are suspect (|1.5 − 1.7| = 0.2).
	spikeAt := midnight.Add(-30 * time.Hour)
	publishSeries(t, pub, "yarlung-dazhuka", "level_m", spikeAt, step, 12, func(i int) float64 {
		if i == 6 {
			return 1.9
		}
		return 1.5
	})

	// A stuck water-temperature sensor: 8.00 °C for 13 hours. Flat line
	// (suspect after 12 h at 5-minute reports, tolerance 0.01) flags the
	// readings once the 12-hour window is full.
	stuckAt := midnight.Add(-60 * time.Hour)
	publishSeries(t, pub, "boqu-nyalam", "water_temp_c", stuckAt, step, 157, func(int) float64 { return 8 })

	// A pollution pulse: NH3-N rising through Classes II, III, IV, V and
	// beyond (limits 0.5, 1.0, 1.5, 2.0 mg/L).
	pulse := []float64{0.4, 0.8, 1.2, 1.8, 2.5}
	pulseAt := midnight.Add(-20 * time.Hour)
	publishSeries(t, pub, "xiangqu-namling", "nh3n_mgl", pulseAt, time.Hour, len(pulse), func(i int) float64 { return pulse[i] })

	// A low-flow week on the lower Nianchu (target 6.5 m³/s): seven whole
	// local days at 5.0 m³/s, then one day at 8.0.
	weekAt := midnight.AddDate(0, 0, -8)
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", weekAt, step, 8*288, func(i int) float64 {
		if i >= 7*288 {
			return 8
		}
		return 5
	})

	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "eflow_daily", "mean_flow_m3s", "station = 'nianchu-mouth'") == 8
	}, "the eight days of eflow_daily were not written")

	// Spike flags, rewritten once the next reading arrived.
	for i, want := range map[int]string{4: "1", 5: "3", 6: "4", 7: "3", 8: "1"} {
		if got := field(t, in, "reading", "level_m_qc", "yarlung-dazhuka", spikeAt.Add(time.Duration(i)*step)); got != want {
			t.Errorf("spike series, reading %d: level_m_qc = %s, want %s", i, got, want)
		}
	}
	if got := field(t, in, "reading", "flow_rated_m3s_qc", "yarlung-dazhuka", spikeAt.Add(6*step)); got != "4" {
		t.Errorf("rated flow of the spike: flow_rated_m3s_qc = %s, want 4 (it follows the stage)", got)
	}
	// Stuck sensor.
	for i, want := range map[int]string{143: "1", 144: "3", 156: "3"} {
		if got := field(t, in, "reading", "water_temp_c_qc", "boqu-nyalam", stuckAt.Add(time.Duration(i)*step)); got != want {
			t.Errorf("stuck sensor, reading %d: water_temp_c_qc = %s, want %s", i, got, want)
		}
	}
	// Pollution pulse.
	for i := range pulse {
		if got := field(t, in, "reading", "wq_class", "xiangqu-namling", pulseAt.Add(time.Duration(i)*time.Hour)); got != strconv.Itoa(i+2) {
			t.Errorf("NH3-N %.1f mg/L: wq_class = %s, want %d", pulse[i], got, i+2)
		}
	}
	// Low-flow week: every day below target and fully covered; the eighth
	// compliant.
	for d := range 8 {
		day := weekAt.AddDate(0, 0, d)
		mean, _ := strconv.ParseFloat(field(t, in, "eflow_daily", "mean_flow_m3s", "nianchu-mouth", day), 64)
		compliant := field(t, in, "eflow_daily", "compliant", "nianchu-mouth", day)
		coverage, _ := strconv.ParseFloat(field(t, in, "eflow_daily", "coverage", "nianchu-mouth", day), 64)
		wantMean, wantCompliant := 5.0, "false"
		if d == 7 {
			wantMean, wantCompliant = 8, "true"
		}
		if d == 6 {
			// 23:55 holds 5.0 until midnight; the day ends before the 8.0.
			wantMean = 5
		}
		if math.Abs(mean-wantMean) > 1e-9 || compliant != wantCompliant || coverage != 1 {
			t.Errorf("day %s: mean %v compliant %s coverage %v; want %v %s 1", day.Format("2006-01-02"), mean, compliant, coverage, wantMean, wantCompliant)
		}
		if target := field(t, in, "eflow_daily", "target_m3s", "nianchu-mouth", day); target != "6.5" {
			t.Errorf("target %s", target)
		}
	}

	// A late reading for a closed day rewrites that day's account.
	late := weekAt.AddDate(0, 0, 2).Add(12 * time.Hour)
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", late, step, 1, func(int) float64 { return 600 })
	testenv.Eventually(t, 10*time.Second, func() bool {
		return field(t, in, "eflow_daily", "compliant", "nianchu-mouth", weekAt.AddDate(0, 0, 2)) == "true"
	}, "the late reading did not rewrite its day")

	// Compliance rate over the period, as a hydrologist would query it.
	ss, err := in.Query("rivermon", `SELECT count(mean_flow_m3s) AS days FROM eflow_daily WHERE station = 'nianchu-mouth' AND coverage >= 0.75 AND compliant = true`)
	if err != nil || len(ss) != 1 || fmt.Sprint(ss[0].Values[0][1]) != "2" {
		t.Errorf("compliant days: %v %v, want 2 of 8", ss, err)
	}
}

// TestRestartKeepsQCState: a sensor stuck for 11 h 55 min before a restart
// and 10 more minutes after it is flagged exactly as without the restart,
// because the QC windows are rebuilt from InfluxDB.
func TestRestartKeepsQCState(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-restart-qc")
	pub := testenv.NewClient(t, mq.URL, "station-restart-qc")
	start := time.Now().UTC().Truncate(time.Hour).Add(-24 * time.Hour)
	step := 5 * time.Minute
	publishSeries(t, pub, "boqu-nyalam", "water_temp_c", start, step, 144, func(int) float64 { return 6.5 })
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "reading", "water_temp_c", "station = 'boqu-nyalam'") == 144
	}, "first part not stored")
	svc.stop()

	startService(t, mq, in, "rivermon-restart-qc")
	publishSeries(t, pub, "boqu-nyalam", "water_temp_c", start.Add(144*step), step, 2, func(int) float64 { return 6.5 })
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "reading", "water_temp_c", "station = 'boqu-nyalam'") == 146
	}, "second part not stored")
	if got := field(t, in, "reading", "water_temp_c_qc", "boqu-nyalam", start.Add(144*step)); got != "3" {
		t.Errorf("first reading after the restart: water_temp_c_qc = %s, want 3 (flat for 12 h)", got)
	}
}

// TestRestartKeepsEflowDays: the flow of the days kept (older than any QC
// window) is read back at start-up, so a late reading for a closed day
// after a restart rewrites that day's account with every value in it, not
// with the late one alone.
func TestRestartKeepsEflowDays(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startService(t, mq, in, "rivermon-restart-eflow")
	pub := testenv.NewClient(t, mq.URL, "station-restart-eflow")
	now := time.Now().In(shanghai)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, shanghai).AddDate(0, 0, -5)
	// Hourly flow for the whole day and the first hour of the next: the
	// day closes with 24 values.
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", day, time.Hour, 25, func(int) float64 { return 8 })
	testenv.Eventually(t, 20*time.Second, func() bool {
		return field(t, in, "eflow_daily", "samples", "nianchu-mouth", day) == "24"
	}, "the day's account was not written")
	svc.stop()

	startService(t, mq, in, "rivermon-restart-eflow")
	publishSeries(t, pub, "nianchu-mouth", "flow_m3s", day.Add(23*time.Hour+30*time.Minute), time.Hour, 1, func(int) float64 { return 8 })
	testenv.Eventually(t, 20*time.Second, func() bool {
		return field(t, in, "eflow_daily", "samples", "nianchu-mouth", day) == "25"
	}, "the late reading after the restart did not rewrite the day with all its values")
}
