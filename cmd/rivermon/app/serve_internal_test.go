package app

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// At shutdown the requests under way see their context end (a reprocess
// of years, a correction waiting for delivery), so that none runs on
// after rivermon stopped, on a closed spool and curation log.
func TestServeHTTPEndsRequestsAtShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, ended := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(ended)
	}), ReadHeaderTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveHTTP(ctx, srv, ln) }()
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	got := make(chan struct{})
	go func() {
		defer close(got)
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	cancel()
	if err := <-served; err != nil {
		t.Error(err)
	}
	select {
	case <-ended:
	case <-time.After(500 * time.Millisecond):
		t.Error("a request under way still runs after serveHTTP returned")
	}
	ccancel()
	<-got
	<-ended
	http.DefaultClient.CloseIdleConnections()
}
