package testenv

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to one request: answer it with Status
// (and Header) instead of passing it on, and/or hold it for Delay first.
type Fault struct {
	Status int
	Header http.Header
	Delay  time.Duration
}

// FaultProxy stands between a client and a real server (InfluxDB) and
// misbehaves as a failing or overloaded server would, as its fault function
// decides per request.
type FaultProxy struct {
	*httptest.Server
	mu       sync.Mutex
	fault    func(r *http.Request, body []byte) Fault
	arrivals []time.Time
}

// NewFaultProxy proxies to target until SetFault says otherwise.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &FaultProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		p.mu.Lock()
		p.arrivals = append(p.arrivals, time.Now())
		fault := p.fault
		p.mu.Unlock()
		var f Fault
		if fault != nil {
			f = fault(r, body)
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Status != 0 {
			for k, v := range f.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(f.Status)
			fmt.Fprintf(w, `{"error": "injected %d"}`, f.Status)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// SetFault sets the function that decides each request's fault; nil passes
// everything on.
func (p *FaultProxy) SetFault(f func(r *http.Request, body []byte) Fault) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

// Arrivals returns when each request arrived.
func (p *FaultProxy) Arrivals() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.arrivals...)
}

// FailFirst answers the first n requests with status and header.
func FailFirst(n int, status int, header http.Header) func(*http.Request, []byte) Fault {
	var mu sync.Mutex
	return func(*http.Request, []byte) Fault {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 {
			n--
			return Fault{Status: status, Header: header}
		}
		return Fault{}
	}
}
