package notify

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rivermon/rivermon/alerts"
)

func TestWebhookBody(t *testing.T) {
	as := []alerts.Alert{
		{Status: "resolved", Labels: map[string]string{"alertname": "A", "river": "nianchu", "station": "x"}, Annotations: map[string]string{"summary": "s1"}, Fingerprint: "f1"},
		{Status: "firing", Labels: map[string]string{"alertname": "A", "river": "nianchu", "station": "y"}, Annotations: map[string]string{"summary": "s2"}, Fingerprint: "f2"},
	}
	b := NewBody(as)
	if b.Version != "4" || b.Status != "firing" || b.CommonLabels["river"] != "nianchu" || b.CommonLabels["alertname"] != "A" ||
		b.CommonLabels["station"] != "" || len(b.CommonAnnotations) != 0 || len(b.Alerts) != 2 {
		t.Errorf("body %+v", b)
	}
}

func TestRetriesServerErrorsNotRefusals(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer flaky.Close()
	var refusals atomic.Int32
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refusals.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer refusing.Close()
	results := map[string]int{}
	count := func(receiver, result string) { results[receiver+"/"+result]++ }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := []alerts.Alert{{Status: "firing", Labels: map[string]string{"alertname": "A"}}}

	am := &Alertmanager{URLs: []string{flaky.URL, refusing.URL}, Client: http.DefaultClient, Log: log, Count: count}
	if err := am.Send(context.Background(), a); err == nil {
		t.Error("a refusing Alertmanager was not reported")
	}
	if calls.Load() != 3 || refusals.Load() != 1 {
		t.Errorf("%d calls to the flaky one (want 3), %d to the refusing one (want 1: a 400 is not retried)", calls.Load(), refusals.Load())
	}
	if results["alertmanager/success"] != 1 || results["alertmanager/failure"] != 1 {
		t.Errorf("counted %v", results)
	}
}
