package influx_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/testenv"
)

func newWriter(t *testing.T, url string, reg prometheus.Registerer) *influx.Writer {
	w := influx.New(influx.Options{URL: url, Bucket: "rivermon/autogen", Registerer: reg,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(w.Close)
	return w
}

func lines(n int, base time.Time) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("reading,river=r,station=s level_m=%d.5,level_m_qc=2i %d", i, base.Add(time.Duration(i)*time.Second).UnixNano())
	}
	return out
}

func TestWriteRetriesServerErrorsHonouringRetryAfter(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := testenv.NewFaultProxy(t, in.URL)
	proxy.SetFault(testenv.FailFirst(2, http.StatusServiceUnavailable, http.Header{"Retry-After": {"1"}}))
	reg := prometheus.NewRegistry()
	w := newWriter(t, proxy.URL, reg)

	poison, err := w.Write(context.Background(), lines(50, time.Now().Add(-time.Hour)))
	if err != nil || len(poison) != 0 {
		t.Fatalf("Write: %v, poison %v", err, poison)
	}
	if n := in.Count(t, "reading", "level_m", ""); n != 50 {
		t.Fatalf("stored %d points, want 50", n)
	}
	arrivals := proxy.Arrivals()
	if len(arrivals) != 3 {
		t.Fatalf("%d requests, want 3", len(arrivals))
	}
	for i := 1; i < 3; i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]); gap < time.Second {
			t.Errorf("retry %d came %s after a 503 with Retry-After: 1", i, gap)
		}
	}
	if got := counterValue(t, reg, "rivermon_influx_write_errors_total", "server"); got != 2 {
		t.Errorf("server errors counted %v, want 2", got)
	}
}

func TestWriteWaitsOutThrottlingAndAuthFailures(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := testenv.NewFaultProxy(t, in.URL)
	w := newWriter(t, proxy.URL, nil)

	proxy.SetFault(testenv.FailFirst(3, http.StatusTooManyRequests, nil))
	if _, err := w.Write(context.Background(), lines(5, time.Now().Add(-2*time.Hour))); err != nil {
		t.Fatal(err)
	}

	// Refused credentials: the data is kept and retried, and the writer
	// says why it is stuck until the server takes the writes again.
	var refuse sync.Mutex
	refuse.Lock()
	proxy.SetFault(func(*http.Request, []byte) testenv.Fault {
		if refuse.TryLock() {
			refuse.Unlock()
			return testenv.Fault{}
		}
		return testenv.Fault{Status: http.StatusUnauthorized}
	})
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(context.Background(), lines(5, time.Now().Add(-time.Hour)))
		done <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() bool { _, auth := w.Problem(); return auth }, "auth failure not reported")
	refuse.Unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if reason, auth := w.Problem(); reason != "" || auth {
		t.Errorf("problem after recovery: %q %v", reason, auth)
	}
	if n := in.Count(t, "reading", "level_m", ""); n != 10 {
		t.Errorf("stored %d points, want 10", n)
	}
}

func TestWriteSplitsBatchesTheServerFindsTooLarge(t *testing.T) {
	in := testenv.StartInflux(t)
	proxy := testenv.NewFaultProxy(t, in.URL)
	proxy.SetFault(func(_ *http.Request, body []byte) testenv.Fault {
		if len(body) > 1000 {
			return testenv.Fault{Status: http.StatusRequestEntityTooLarge}
		}
		return testenv.Fault{}
	})
	w := newWriter(t, proxy.URL, nil)
	poison, err := w.Write(context.Background(), lines(100, time.Now().Add(-time.Hour)))
	if err != nil || len(poison) != 0 {
		t.Fatalf("Write: %v, poison %v", err, poison)
	}
	if n := in.Count(t, "reading", "level_m", ""); n != 100 {
		t.Errorf("stored %d points, want 100", n)
	}
}

func TestWriteGivesUpOnlyWhenTheContextEnds(t *testing.T) {
	w := newWriter(t, "http://127.0.0.1:1", nil) // nothing listens there
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := w.Write(ctx, lines(1, time.Now()))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want the context's error", err)
	}
	if reason, _ := w.Problem(); !strings.Contains(reason, "network") {
		t.Errorf("Problem() = %q, want a network failure", reason)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err        error
		kind       string
		retryAfter time.Duration
	}{
		{&ihttp.Error{StatusCode: 400, Message: "partial write: field type conflict"}, influx.KindRejected, 0},
		{&ihttp.Error{StatusCode: 422, Message: "unprocessable"}, influx.KindRejected, 0},
		{&ihttp.Error{StatusCode: 404, Message: "database not found: \"rivermon\""}, influx.KindOther, 0},
		{&ihttp.Error{StatusCode: 400, Message: "database not found: \"x\""}, influx.KindOther, 0},
		{&ihttp.Error{StatusCode: 401}, influx.KindAuth, 0},
		{&ihttp.Error{StatusCode: 403}, influx.KindAuth, 0},
		{&ihttp.Error{StatusCode: 413}, influx.KindTooLarge, 0},
		{&ihttp.Error{StatusCode: 429, RetryAfter: 7}, influx.KindThrottled, 7 * time.Second},
		{&ihttp.Error{StatusCode: 503, RetryAfter: 2}, influx.KindServer, 2 * time.Second},
		{&ihttp.Error{StatusCode: 0, Err: errors.New("connection refused")}, influx.KindNetwork, 0},
		{errors.New("dial tcp: refused"), influx.KindNetwork, 0},
	} {
		kind, ra := influx.Classify(c.err)
		if kind != c.kind || ra != c.retryAfter {
			t.Errorf("Classify(%v) = %s, %s; want %s, %s", c.err, kind, ra, c.kind, c.retryAfter)
		}
	}
}

// counterValue reads one labelled counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{kind=%q} not found", name, kind)
	return 0
}
