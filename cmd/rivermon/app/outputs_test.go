package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestReadyzNamesAFailingOutput: a second output whose server refuses the
// credentials makes rivermon not ready, and /readyz names it; the first
// output stores every sample meanwhile, and messages are acknowledged.
// Once the server takes the writes, rivermon is ready again and the second
// output catches up.
func TestReadyzNamesAFailingOutput(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	inA, inB := testenv.StartInflux(t), testenv.StartInflux(t)
	proxy := testenv.NewFaultProxy(t, inB.URL)
	svc := startServiceWith(t, mq, inA, serviceOptions{clientID: "rivermon-outputs",
		outputs: fmt.Sprintf("[{name: b, url: %q}]", proxy.URL)})
	proxy.SetFault(func(*http.Request, []byte) testenv.Fault { return testenv.Fault{Status: http.StatusUnauthorized} })
	pub := testenv.NewClient(t, mq.URL, "station-outputs")
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	const messages = 20
	for m := range messages {
		pub.Publish(readingsTopic("xiangqu-mouth"), mustJSON(t, map[string]any{"station": "xiangqu-mouth", "samples": []any{
			map[string]any{"time": base.Add(time.Duration(m) * time.Second).Format(time.RFC3339), "values": map[string]any{"level_m": 1 + float64(m)/100}}}}))
	}
	testenv.Eventually(t, 20*time.Second, func() bool {
		return inA.Count(t, "reading", "level_m", "station = 'xiangqu-mouth'") == messages
	}, "output default did not store every sample while output b refused the credentials")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc.metric("rivermon_ack_delay_seconds_count") == messages }, "not every message acknowledged")
	var body string
	testenv.Eventually(t, 10*time.Second, func() bool {
		var code int
		code, body = svc.get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "influx output b: refuses the credentials since ")
	}, "/readyz does not name output b: %q", body)
	if strings.Contains(body, "influx output default") {
		t.Errorf("/readyz names output default, which works: %q", body)
	}
	if n := svc.metric(`rivermon_influx_write_errors_total{kind="auth",output="b"}`); n == 0 {
		t.Error("no auth failure counted for output b")
	}
	if n := svc.metric(`rivermon_influx_backlog_bytes{output="b"}`); n == 0 {
		t.Error("output b's backlog is not shown")
	}

	proxy.SetFault(nil)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return inB.Count(t, "reading", "level_m", "station = 'xiangqu-mouth'") == messages
	}, "output b did not catch up")
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, body := svc.get("/readyz")
		return code == http.StatusOK && strings.TrimSpace(body) == "ready"
	}, "not ready once output b takes the writes")
	testenv.Eventually(t, 10*time.Second, func() bool { return svc.metric("rivermon_spool_bytes") == 0 }, "spool not emptied")
}
