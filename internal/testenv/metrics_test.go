package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does, without failing the test around it.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// metricOf runs Metric in a goroutine of its own, so that a Fatalf ends
// that goroutine and not the test; msg is what Fatalf said, if called.
func metricOf(t *testing.T, url, series string) (v float64, msg string) {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		v = Metric(r, url, series)
	}()
	<-done
	return v, r.msg
}

func TestMetricFailsOnAMissingSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `# HELP rivermon_rejected_total Rejected.
# TYPE rivermon_rejected_total counter
rivermon_rejected_total{reason="bad_json"} 3
rivermon_rejected_total{reason="bad_time"} 0
rivermon_rejected_total_extra 7
rivermon_spool_bytes 1.5e+06
`)
	}))
	defer srv.Close()
	url := srv.URL + "/metrics"
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`rivermon_rejected_total{reason="bad_json"}`, 3},
		{`rivermon_rejected_total{reason="bad_time"}`, 0},
		{"rivermon_spool_bytes", 1.5e6},
	} {
		if v, msg := metricOf(t, url, tc.series); msg != "" || v != tc.want {
			t.Errorf("%s = %v (%q), want %v", tc.series, v, msg, tc.want)
		}
	}
	// A label value that is not there names the series that are, and only
	// those of the metric.
	_, msg := metricOf(t, url, `rivermon_rejected_total{reason="bad_topic"}`)
	for _, want := range []string{`rivermon_rejected_total{reason="bad_topic"}`, `{reason="bad_json"} 3`, `{reason="bad_time"} 0`} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure for a missing label value does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "extra") {
		t.Errorf("the failure lists another metric:\n%s", msg)
	}
	if _, msg := metricOf(t, url, "rivermon_no_such_total"); !strings.Contains(msg, "no series of rivermon_no_such_total") {
		t.Errorf("a missing metric: %q", msg)
	}
	srv.Close()
	if _, msg := metricOf(t, url, "rivermon_spool_bytes"); msg == "" {
		t.Error("a server that does not answer did not fail the test")
	}
}
