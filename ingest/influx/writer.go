// Package influx writes line protocol to InfluxDB through the v2 write API
// (InfluxDB 1.8+, 2.x, 3.x) and decides, per failure, whether to retry, to
// wait, to split the batch or to give a point up as poison. It uses the
// client's blocking write API only: the async WriteAPI discards batches on
// its own (reference/peers.md §2.2), and durability is decided here.
package influx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/prometheus/client_golang/prometheus"
)

// Error kinds, the values of the `kind` label of
// rivermon_influx_write_errors_total.
const (
	KindNetwork   = "network"
	KindServer    = "server"
	KindThrottled = "throttled"
	KindAuth      = "auth"
	KindRejected  = "rejected"
	KindTooLarge  = "too_large"
	KindOther     = "other"
)

// Options configure a Writer.
type Options struct {
	// Output names the server in metrics (the output label) and messages
	// (default "default").
	Output string
	URL    string
	Token  string // "user:password" on 1.8
	Org    string
	Bucket string // "db/retention-policy" on 1.8
	// HTTPClient is used for requests; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Metrics are shared by the writers of every output; when nil, the
	// writer makes its own and registers them with Registerer (if set).
	Metrics    *Metrics
	Registerer prometheus.Registerer
	// MinBackoff and MaxBackoff bound the wait between retries (defaults
	// 200 ms and 30 s).
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock of Problem's "since" (default time.Now).
	Now func() time.Time
}

// Metrics are the writers' Prometheus metrics, by output.
type Metrics struct {
	errors  *prometheus.CounterVec
	written *prometheus.CounterVec
}

// NewMetrics builds the writers' metrics and registers them with r (nil:
// not registered).
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_influx_write_errors_total",
			Help: "Failed InfluxDB write requests by output and kind (network, server, throttled, auth, rejected, too_large, other).",
		}, []string{"output", "kind"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_points_written_total",
			Help: "Points InfluxDB confirmed, by output.",
		}, []string{"output"}),
	}
	if r != nil {
		r.MustRegister(m.errors, m.written)
	}
	return m
}

// Poison is a line InfluxDB refused on its own (400/422/413 for a single
// point): retrying cannot help, so it is handed back to be dead-lettered.
type Poison struct {
	Line string
	Err  error
}

// Writer writes batches of line protocol, retrying until they are stored.
type Writer struct {
	url, token, bucket string
	http               *http.Client
	client             influxdb2.Client
	api                api.WriteAPIBlocking
	log                *slog.Logger
	minBackoff         time.Duration
	maxBackoff         time.Duration
	errors             *prometheus.CounterVec
	written            prometheus.Counter
	now                func() time.Time
	authFailed         atomic.Bool
	lastErr            atomic.Pointer[failure]
}

// failure is why writes fail, and since when.
type failure struct {
	msg   string
	since time.Time
}

// New returns a Writer. It does not contact the server.
func New(o Options) *Writer {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Output == "" {
		o.Output = "default"
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(o.Registerer)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	opts := influxdb2.DefaultOptions().SetHTTPClient(o.HTTPClient).SetPrecision(time.Nanosecond)
	client := influxdb2.NewClientWithOptions(o.URL, o.Token, opts)
	w := &Writer{
		url: o.URL, token: o.Token, bucket: o.Bucket, http: o.HTTPClient,
		client:     client,
		api:        client.WriteAPIBlocking(o.Org, o.Bucket),
		log:        o.Logger,
		minBackoff: o.MinBackoff,
		maxBackoff: o.MaxBackoff,
		errors:     o.Metrics.errors.MustCurryWith(prometheus.Labels{"output": o.Output}),
		written:    o.Metrics.written.WithLabelValues(o.Output),
		now:        o.Now,
	}
	for _, k := range []string{KindNetwork, KindServer, KindThrottled, KindAuth, KindRejected, KindTooLarge, KindOther} {
		w.errors.WithLabelValues(k)
	}
	return w
}

// Close releases idle connections.
func (w *Writer) Close() { w.client.Close() }

// Problem returns why writes are failing now, or "" when the last write
// succeeded. Credentials refused by the server make rivermon not ready.
func (w *Writer) Problem() (reason string, auth bool) {
	if p := w.lastErr.Load(); p != nil {
		return p.msg, w.authFailed.Load()
	}
	return "", false
}

// FailingSince is when the writes that fail now began to fail (zero when
// the last write succeeded).
func (w *Writer) FailingSince() time.Time {
	if p := w.lastErr.Load(); p != nil {
		return p.since
	}
	return time.Time{}
}

// Write stores lines. It returns when every line is stored or handed back
// as poison, or with ctx's error when ctx ends first (nothing may be taken as
// stored then). Transient failures are retried with backoff, honouring
// Retry-After; a refused batch is split to find the refused points.
func (w *Writer) Write(ctx context.Context, lines []string) ([]Poison, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	var poison []Poison
	err := w.write(ctx, lines, &poison)
	return poison, err
}

func (w *Writer) write(ctx context.Context, lines []string, poison *[]Poison) error {
	for attempt := 0; ; attempt++ {
		err := w.api.WriteRecord(ctx, lines...)
		if err == nil {
			w.written.Add(float64(len(lines)))
			if w.lastErr.Load() != nil {
				w.log.Info("influxdb writes succeed again")
				w.lastErr.Store(nil)
				w.authFailed.Store(false)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		kind, retryAfter := Classify(err)
		w.errors.WithLabelValues(kind).Inc()
		f := &failure{msg: fmt.Sprintf("influxdb write failed (%s): %v", kind, err), since: w.now()}
		if prev := w.lastErr.Load(); prev != nil {
			f.since = prev.since
		}
		w.lastErr.Store(f)
		switch kind {
		case KindRejected, KindTooLarge:
			if len(lines) == 1 {
				*poison = append(*poison, Poison{Line: lines[0], Err: err})
				return nil
			}
			// Split to find the refused points; InfluxDB overwrites the
			// good ones it may already have taken (same series and time).
			mid := len(lines) / 2
			if err := w.write(ctx, lines[:mid], poison); err != nil {
				return err
			}
			return w.write(ctx, lines[mid:], poison)
		case KindAuth:
			w.authFailed.Store(true)
			w.log.Error("influxdb refuses the credentials; data is kept and retried: check influx.token", "err", err)
		default:
			w.log.Warn("influxdb write failed; retrying", "kind", kind, "points", len(lines), "attempt", attempt+1, "err", err)
		}
		wait := w.backoff(attempt)
		if retryAfter > wait {
			wait = retryAfter
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (w *Writer) backoff(attempt int) time.Duration {
	d := w.minBackoff << min(attempt, 20)
	if d > w.maxBackoff || d <= 0 {
		d = w.maxBackoff
	}
	// ±20 % jitter so that replicas do not retry in step.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Classify sorts a write error into a kind and the Retry-After the server
// asked for.
func Classify(err error) (kind string, retryAfter time.Duration) {
	var he *ihttp.Error
	if !errors.As(err, &he) {
		return KindNetwork, 0
	}
	retryAfter = time.Duration(he.RetryAfter) * time.Second
	switch s := he.StatusCode; {
	case s == 0:
		return KindNetwork, 0
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return KindAuth, retryAfter
	case s == http.StatusRequestEntityTooLarge:
		return KindTooLarge, 0
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		// A database that does not exist is a set-up fault, not a bad
		// point: keep the data and retry until an operator creates it.
		if strings.Contains(he.Message, "database not found") || strings.Contains(he.Message, "bucket not found") {
			return KindOther, retryAfter
		}
		return KindRejected, 0
	case s == http.StatusNotFound:
		return KindOther, retryAfter
	case s == http.StatusTooManyRequests:
		return KindThrottled, retryAfter
	case s >= 500:
		return KindServer, retryAfter
	default:
		return KindOther, retryAfter
	}
}
