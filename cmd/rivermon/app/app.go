// Package app wires rivermon together: configuration, registry, InfluxDB
// writer, pipeline, broker session and HTTP endpoints. main parses flags and
// signals and calls Run; tests call Run in-process.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rivermon/rivermon/alerts"
	"github.com/rivermon/rivermon/alerts/notify"
	"github.com/rivermon/rivermon/ingest"
	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/mqtt"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/ingest/tcp"
	"github.com/rivermon/rivermon/internal/config"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

// Options configure Run.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// OnListen, when set, is called with the HTTP address once it listens
	// (tests listen on port 0).
	OnListen func(addr string)
	// DrainTimeout bounds the flush at shutdown (default: the pipeline's).
	DrainTimeout time.Duration
	// SweepEvery and EflowGrace tune the wall-clock checks (silence, end of
	// day); AlertTick how often wall-clock alert rules run. Zero means the
	// defaults. Tests shorten them.
	SweepEvery, EflowGrace, AlertTick, StateEvery time.Duration
	// Reload, when set, reloads the alert rules on every receive (SIGHUP).
	Reload <-chan struct{}
	// OnHJ212, when set, is called with the HJ 212 listener's address.
	OnHJ212 func(addr string)
}

// Check loads every configuration file the service config names and returns
// every problem found, each as "FILE:LINE: message".
func Check(configFile string) []string {
	cfg, err := config.LoadFile(configFile)
	if err != nil {
		return lines(strictyaml.AsProblems(configFile, err))
	}
	var out []string
	if _, err := registry.LoadFile(cfg.Stations); err != nil {
		out = append(out, lines(strictyaml.AsProblems(cfg.Stations, err))...)
	}
	if _, err := alerts.LoadRulesFile(cfg.Rules); err != nil {
		out = append(out, lines(strictyaml.AsProblems(cfg.Rules, err))...)
	}
	return out
}

func lines(ps strictyaml.Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Run runs the service until ctx ends, then stops taking messages, stores
// and acknowledges what is in flight (bounded by the pipeline's drain
// timeout), disconnects and returns nil.
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Logger
	if log == nil {
		log = slog.Default()
	}
	reg, err := registry.LoadFile(cfg.Stations)
	if err != nil {
		return fmt.Errorf("station registry:\n%w", err)
	}
	rules, err := alerts.LoadRulesFile(cfg.Rules)
	if err != nil {
		return fmt.Errorf("alert rules:\n%w", err)
	}
	sp, recovered, err := spool.Open(cfg.Spool.Dir, spool.Options{})
	if err != nil {
		return err
	}
	defer sp.Close()
	for _, cut := range recovered.Cut {
		log.Error("spool: damaged tail cut after the last good record (power cut or crash mid-write)", "spool", cfg.Spool.Dir, "cut", cut)
	}
	if recovered.Pending > 0 {
		log.Info("spool holds undelivered data; delivering it first", "records", recovered.Pending, "bytes", recovered.Bytes)
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	writer := influx.New(influx.Options{
		URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
		Logger: log.With("component", "influx"), Registerer: promReg,
	})
	defer writer.Close()

	// The pipeline publishes dead letters through the broker client, which
	// is created after it (the client hands messages to the pipeline).
	var broker *mqtt.Client
	publish := publisherFunc(func(ctx context.Context, topic string, retained bool, payload []byte) error {
		return broker.Publish(ctx, topic, retained, payload)
	})

	evaluator := alerts.NewEvaluator(rules, alerts.Options{Registry: reg, MaxSampleAge: time.Duration(cfg.Alerting.MaxSampleAge)}, time.Now())
	statePath := filepath.Join(cfg.Spool.Dir, "alerts-state.json")
	if n, err := evaluator.Load(statePath); err != nil {
		log.Error("alert state not restored; firing alerts will be announced again", "err", err)
	} else if n > 0 {
		log.Info("alert state restored", "alerts", n)
	}
	observer := &observerFunc{}
	pipe := ingest.New(ingest.Options{
		Registry:      reg,
		TopicPrefix:   cfg.MQTT.TopicPrefix,
		Writer:        writer,
		Spool:         sp,
		SpoolMaxBytes: cfg.Spool.MaxBytes,
		DeadLetters:   publish,
		Observer:      observer,
		Logger:        log.With("component", "ingest"),
		Metrics:       ingest.NewMetrics(promReg),
		Location:      cfg.Location,
		AlertLevel:    evaluator.WorstLevel,
		StateEvery:    o.StateEvery,
		SweepEvery:    o.SweepEvery,
		EflowGrace:    o.EflowGrace,
		DrainTimeout:  o.DrainTimeout,
	})

	rebuild(ctx, log, writer, pipe)
	// Loading the registry and the history leaves garbage many times the
	// size of the state; give it back now rather than carry it at idle.
	debug.FreeOSMemory()

	httpClient := &http.Client{Timeout: 10 * time.Second}
	dispatcher := alerts.NewDispatcher(alerts.DispatcherOptions{
		Evaluator: evaluator, MQTT: publish, TopicPrefix: cfg.MQTT.TopicPrefix, History: pipe,
		StatePath: statePath, ResendInterval: time.Duration(cfg.Alerting.ResendInterval),
		TickEvery: o.AlertTick, Logger: log.With("component", "alerts"), Registerer: promReg,
	})
	if len(cfg.Alerting.AlertmanagerURLs) > 0 {
		dispatcher.SetAlertmanager(&notify.Alertmanager{URLs: cfg.Alerting.AlertmanagerURLs, Client: httpClient,
			Log: log.With("component", "alertmanager"), Count: dispatcher.Count})
	}
	if len(cfg.Alerting.Webhooks) > 0 {
		dispatcher.SetWebhook(&notify.Webhook{URLs: cfg.Alerting.Webhooks, Client: httpClient,
			Log: log.With("component", "webhook"), Count: dispatcher.Count})
	}
	observer.f = func(ss []ingest.StoredSample) { dispatcher.Observe(toAlertSamples(ss)) }

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	prefix := cfg.MQTT.TopicPrefix
	broker, err = mqtt.Connect(mqtt.Options{
		Brokers: cfg.MQTT.Brokers(), ClientID: cfg.MQTT.ClientID,
		Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		CAFile: cfg.MQTT.TLS.CAFile, CertFile: cfg.MQTT.TLS.CertFile, KeyFile: cfg.MQTT.TLS.KeyFile,
		Filters:  []string{prefix + "/stations/+/readings", prefix + "/stations/+/status", prefix + "/stations/+/hj212"},
		Handle:   pipe.Handle,
		WaitRoom: pipe.WaitRoom,
		Logger:   log.With("component", "mqtt"),
	})
	if err != nil {
		ln.Close()
		return err
	}

	srv := &http.Server{
		Handler:           newMux(promReg, pipe, broker, writer, evaluator, cfg.Spool.Dir),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	if o.OnListen != nil {
		o.OnListen(ln.Addr().String())
	}
	log.Info("rivermon running", "stations", len(reg.Stations), "brokers", cfg.MQTT.Brokers(),
		"influx", cfg.Influx.URL, "http", ln.Addr().String())

	hj212Done := make(chan struct{})
	if cfg.HJ212.Listen != "" {
		srv212, err := tcp.Listen(tcp.Options{
			Listen: cfg.HJ212.Listen, IdleTimeout: time.Duration(cfg.HJ212.IdleTimeout), MaxConnections: int(cfg.HJ212.MaxConnections),
			Handle: func(source string, frame []byte, received time.Time, ack func()) {
				pipe.Handle(ingest.HJ212TCPSource+source, frame, received, ack)
			},
			Logger: log.With("component", "hj212"), Registerer: promReg,
		})
		if err != nil {
			broker.Close(0)
			ln.Close()
			return fmt.Errorf("hj212 listen: %w", err)
		}
		if o.OnHJ212 != nil {
			o.OnHJ212(srv212.Addr().String())
		}
		log.Info("hj212 listener open", "addr", srv212.Addr().String())
		go func() {
			defer close(hj212Done)
			_ = srv212.Serve(ctx)
		}()
	} else {
		close(hj212Done)
	}
	// The dispatcher outlives ctx until the pipeline has committed its
	// last batch: samples acknowledged during the drain are evaluated and
	// their transitions stored too.
	alertsCtx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAlerts()
	alertsDone := make(chan struct{})
	go func() {
		defer close(alertsDone)
		_ = dispatcher.Run(alertsCtx)
	}()
	if o.Reload != nil {
		go reloadRules(ctx, o.Reload, cfg.Rules, evaluator, log)
	}

	err = pipe.Run(ctx)
	stopAlerts()
	<-alertsDone
	<-hj212Done
	// Acks of the last batch are queued in paho: give them a moment to leave.
	broker.Close(500 * time.Millisecond)
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	log.Info("rivermon stopped")
	return err
}

// rebuild restores the streaming state (QC windows, ecological-flow days)
// from InfluxDB and from what the spool still holds, so that a restart does
// not change how the next samples are flagged. It reads only what the state
// holds: every parameter for the longest QC window, and before that, flow
// and level for the ecological-flow days of the stations that keep them,
// streamed in chunks. Without InfluxDB the state starts from the spool
// alone, and says so.
func rebuild(ctx context.Context, log *slog.Logger, writer *influx.Writer, pipe *ingest.Pipeline) {
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	now := time.Now()
	qcWindow, flowDays, flowStations := pipe.HistoryNeeds()
	var params []string
	for _, prm := range reading.Params() {
		params = append(params, prm.Code)
	}
	stored := 0
	feed := func(rows []influx.Row) {
		points := make([]ingest.HistoryPoint, len(rows))
		for i, r := range rows {
			points[i] = ingest.HistoryPoint{Station: r.Station, Time: r.Time, Values: r.Values}
		}
		pipe.Rebuild(points)
		stored += len(points)
	}
	// Oldest first: each station's samples must go in in time order.
	var err error
	if len(flowStations) > 0 {
		err = writer.History(hctx, influx.HistoryQuery{After: now.Add(-flowDays), Through: now.Add(-qcWindow),
			Fields: []string{"flow_m3s", "level_m"}, Stations: flowStations}, feed)
	}
	if err == nil {
		err = writer.History(hctx, influx.HistoryQuery{After: now.Add(-qcWindow), Fields: params}, feed)
	}
	if err != nil {
		log.Warn("QC windows and ecological-flow days start without (all of) their stored history", "err", err, "stored_samples", stored)
	}
	spooled := pipe.SpoolHistory()
	pipe.Rebuild(spooled)
	log.Info("streaming state rebuilt", "stored_samples", stored, "spooled_samples", len(spooled),
		"qc_window", qcWindow, "flow_stations", len(flowStations))
}

// reloadRules reads the rules file again on every signal; a file with
// problems is reported and the rules in force are kept.
func reloadRules(ctx context.Context, reload <-chan struct{}, path string, ev *alerts.Evaluator, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
		}
		rules, err := alerts.LoadRulesFile(path)
		if err != nil {
			log.Error("rules not reloaded; the previous rules stay in force", "file", path, "err", err)
			continue
		}
		ev.SetRules(rules)
		log.Info("rules reloaded", "file", path, "rules", len(rules.Rules))
	}
}

// observerFunc lets the pipeline be built before the dispatcher it feeds.
type observerFunc struct{ f func([]ingest.StoredSample) }

func (o *observerFunc) Observe(ss []ingest.StoredSample) {
	if o.f != nil {
		o.f(ss)
	}
}

// toAlertSamples converts a batch, its values in one array.
func toAlertSamples(ss []ingest.StoredSample) []alerts.Sample {
	n := 0
	for _, s := range ss {
		n += len(s.Values)
	}
	vals := make([]alerts.Value, 0, n)
	out := make([]alerts.Sample, len(ss))
	for i, s := range ss {
		from := len(vals)
		for _, v := range s.Values {
			vals = append(vals, alerts.Value{Code: v.Code, V: v.Value, Flag: v.Flag})
		}
		out[i] = alerts.Sample{Station: s.Station, Time: s.Time, Received: s.Received, Values: vals[from:len(vals):len(vals)]}
	}
	return out
}

type publisherFunc func(ctx context.Context, topic string, retained bool, payload []byte) error

func (f publisherFunc) Publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	return f(ctx, topic, retained, payload)
}

func newMux(promReg *prometheus.Registry, pipe *ingest.Pipeline, broker *mqtt.Client, writer *influx.Writer, ev *alerts.Evaluator, spoolDir string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{Registry: promReg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		var problems []string
		if !broker.Connected() {
			problems = append(problems, "not connected to the MQTT broker")
		}
		if err := probeWritable(spoolDir); err != nil {
			problems = append(problems, "spool not writable: "+err.Error())
		}
		if p := pipe.Problem(); p != "" {
			problems = append(problems, p)
		}
		if reason, auth := writer.Problem(); auth {
			problems = append(problems, reason)
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /api/v1/stations", func(w http.ResponseWriter, _ *http.Request) {
		views := pipe.Stations().Snapshot()
		byStation := map[string][]any{}
		for _, a := range ev.Firing() {
			byStation[a.Labels["station"]] = append(byStation[a.Labels["station"]], a)
		}
		for i := range views {
			if as := byStation[views[i].ID]; as != nil {
				views[i].ActiveAlerts = as
			}
		}
		writeJSON(w, views)
	})
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ev.Firing())
	})
	return mux
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
