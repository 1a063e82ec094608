// Package app wires rivermon together: configuration, registry, the
// journal and InfluxDB, the intake with its sources (MQTT, HJ 212 TCP), the
// stream, alerts, delivery and the HTTP endpoints. main parses flags and
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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rivermon/rivermon/alerts"
	"github.com/rivermon/rivermon/alerts/notify"
	"github.com/rivermon/rivermon/ingest"
	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/mqtt"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/ingest/tcp"
	"github.com/rivermon/rivermon/internal/config"
	"github.com/rivermon/rivermon/internal/curate"
	"github.com/rivermon/rivermon/internal/opspage"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/run"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

// Options configure Run.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// OnListen, when set, is called with the HTTP address once it listens
	// (tests listen on port 0).
	OnListen func(addr string)
	// DrainTimeout bounds the flush at shutdown: the stream's commits and
	// delivery's writes (default 3 s each).
	DrainTimeout time.Duration
	// SweepEvery and EflowGrace tune the wall-clock checks (silence, end of
	// day); AlertTick how often wall-clock alert rules run. Zero means the
	// defaults. Tests shorten them.
	SweepEvery, EflowGrace, AlertTick, StateEvery time.Duration
	// PeriodsEvery is how often statistics are computed (default 1 min).
	PeriodsEvery time.Duration
	// Reload, when set, reloads the alert rules on every receive (SIGHUP).
	Reload <-chan struct{}
	// OnTCP, when set, is called with each field-protocol listener's
	// protocol ("hj212", "sl651") and address.
	OnTCP func(protocol, addr string)
}

// Check loads every configuration file the service config names and returns
// every problem found, each as "FILE:LINE: message", and the warnings about
// what is allowed but likely a mistake, as "FILE:LINE: warning: message".
func Check(configFile string) (problems, warnings []string) {
	cfg, err := config.LoadFile(configFile)
	if err != nil {
		return lines(strictyaml.AsProblems(configFile, err)), nil
	}
	var out []string
	if _, err := registry.LoadFile(cfg.Stations); err != nil {
		out = append(out, lines(strictyaml.AsProblems(cfg.Stations, err))...)
	}
	if _, err := alerts.LoadRulesFile(cfg.Rules); err != nil {
		out = append(out, lines(strictyaml.AsProblems(cfg.Rules, err))...)
	}
	return out, lines(cfg.Warnings)
}

func lines(ps strictyaml.Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Run runs the service until ctx ends, then stops taking messages, stores
// and acknowledges what is in flight (bounded by the drain timeout),
// disconnects and returns nil; or returns the error of a stage that failed.
//
// The parts are built in the order data flows through them: the journal
// and InfluxDB (the stores), the intake and its sources, the stream, the
// alerts, the snapshots, delivery, HTTP. They are started the other way
// round, each reader before what feeds it, and stopped in the order data
// flows: sources first, delivery last, each once what feeds it has
// returned (docs/ARCHITECTURE.md).
func Run(ctx context.Context, o Options) error {
	cfg, log := o.Config, o.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w.String())
	}
	reg, err := registry.LoadFile(cfg.Stations)
	if err != nil {
		return fmt.Errorf("station registry:\n%w", err)
	}
	rules, err := alerts.LoadRulesFile(cfg.Rules)
	if err != nil {
		return fmt.Errorf("alert rules:\n%w", err)
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(promReg)

	// The stores: the journal (the spool) and InfluxDB.
	// Every InfluxDB output, and the dead letters, read the spool from a
	// position of their own.
	outputs := cfg.Influx.All()
	var names []string
	for _, out := range outputs {
		names = append(names, out.Name)
	}
	sp, recovered, err := spool.Open(cfg.Spool.Dir, spool.Options{Readers: append(journal.Readers(names), journal.PeriodsReader)})
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
	jrn := journal.New(sp, journal.Options{MaxBytes: cfg.Spool.MaxBytes, Logger: log.With("component", "journal"), Registerer: promReg})
	influxMetrics := influx.NewMetrics(promReg)
	writers := make([]*influx.Writer, len(outputs))
	for i, out := range outputs {
		writers[i] = influx.New(influx.Options{Output: out.Name,
			URL: out.URL, Token: out.Token, Org: out.Org, Bucket: out.Bucket,
			Logger: log.With("component", "influx", "output", out.Name), Metrics: influxMetrics,
		})
		defer writers[i].Close()
	}

	// Intake and its sources.
	intake := ingest.NewIntake(ingest.IntakeOptions{Journal: jrn, Metrics: metrics, Logger: log.With("component", "intake")})
	prefix := cfg.MQTT.TopicPrefix
	broker, err := mqtt.Connect(mqtt.Options{
		Brokers: cfg.MQTT.Brokers(), ClientID: cfg.MQTT.ClientID,
		Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
		CAFile: cfg.MQTT.TLS.CAFile, CertFile: cfg.MQTT.TLS.CertFile, KeyFile: cfg.MQTT.TLS.KeyFile,
		Filters:    []string{prefix + "/stations/+/readings", prefix + "/stations/+/status", prefix + "/stations/+/hj212", prefix + "/stations/+/sl651"},
		Handle:     intake.Source(ingest.SourceMQTT),
		WaitRoom:   intake.WaitRoom,
		Logger:     log.With("component", "mqtt"),
		Registerer: promReg,
	})
	if err != nil {
		return err
	}
	// Acks of the last batch and the last dead letters are queued in paho
	// when the stages have stopped: give them a moment to leave.
	defer broker.Close(500 * time.Millisecond)
	var listeners []*tcp.Server
	for _, l := range []struct {
		cfg      config.Listener
		protocol tcp.Protocol
		source   string
	}{{cfg.HJ212, tcp.HJ212, ingest.SourceHJ212TCP}, {cfg.SL651, tcp.SL651, ingest.SourceSL651TCP}} {
		if l.cfg.Listen == "" {
			continue
		}
		srv, err := tcp.Listen(tcp.Options{
			Listen: l.cfg.Listen, Protocol: l.protocol, Handle: intake.Peer(l.source), WaitRoom: intake.WaitRoom,
			IdleTimeout: time.Duration(l.cfg.IdleTimeout), FirstFrameTimeout: time.Duration(l.cfg.FirstFrameTimeout),
			MaxConnections: int(l.cfg.MaxConnections), MaxPerAddress: int(l.cfg.MaxConnectionsPerAddress),
			Logger: log.With("component", l.protocol.Name), Registerer: promReg,
		})
		if err != nil {
			return fmt.Errorf("%s listen: %w", l.protocol.Name, err)
		}
		defer srv.Close()
		if o.OnTCP != nil {
			o.OnTCP(l.protocol.Name, srv.Addr().String())
		}
		log.Info(l.protocol.Name+" listener open", "addr", srv.Addr().String())
		listeners = append(listeners, srv)
	}

	// The stream, which the alert rules read.
	observed := make(chan []reading.Observed, 64)
	// The curator, made below: a corrected value's flag is its.
	var curator *curate.Curator
	stream := ingest.NewStream(ingest.StreamOptions{
		Corrected: func(station, code string, t time.Time) bool {
			return curator != nil && curator.Corrected(station, code, t)
		},
		Registry: reg, TopicPrefix: prefix, Intake: intake, Observed: observed,
		Metrics: metrics, Logger: log.With("component", "ingest"), Location: cfg.Location,
		MonthsFile: filepath.Join(cfg.Spool.Dir, "eflow-months.json"),
		SweepEvery: o.SweepEvery, EflowGrace: o.EflowGrace, DrainTimeout: o.DrainTimeout,
	})
	rebuild(ctx, log, writers[0], outputs[0].Name, stream, jrn)
	// Loading the registry and the history leaves garbage many times the
	// size of the state; give it back now rather than carry it at idle.
	debug.FreeOSMemory()

	// The HTTP listener opens here, before the alerts: they link to the
	// operations page, at the address it listens on unless
	// http.external_url says where people reach it. It serves once every
	// part is built.
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	defer ln.Close()
	pageURL := pageURL(cfg.HTTP.ExternalURL, ln.Addr().String())

	// Alerts: evaluated from the stream, history into the journal.
	evaluator := alerts.NewEvaluator(rules, alerts.Options{Registry: reg, MaxSampleAge: time.Duration(cfg.Alerting.MaxSampleAge),
		PageURL: pageURL}, time.Now())
	statePath := filepath.Join(cfg.Spool.Dir, "alerts-state.json")
	if n, err := evaluator.Load(statePath); err != nil {
		log.Error("alert state not restored; firing alerts will be announced again", "err", err)
	} else if n > 0 {
		log.Info("alert state restored", "alerts", n)
	}
	notes := alerts.NewNotifications(promReg)
	httpClient := &http.Client{Timeout: 10 * time.Second}
	dopts := alerts.DispatcherOptions{
		Evaluator: evaluator, Observed: observed, History: jrn, MQTT: broker, TopicPrefix: prefix,
		Notifications: notes, StatePath: statePath, ResendInterval: time.Duration(cfg.Alerting.ResendInterval),
		TickEvery: o.AlertTick, Logger: log.With("component", "alerts"), Registerer: promReg,
	}
	if len(cfg.Alerting.AlertmanagerURLs) > 0 {
		dopts.Alertmanager = &notify.Alertmanager{URLs: cfg.Alerting.AlertmanagerURLs, Client: httpClient,
			Log: log.With("component", "alertmanager"), Count: notes.Count}
	}
	if len(cfg.Alerting.Webhooks) > 0 {
		dopts.Webhook = &notify.Webhook{URLs: cfg.Alerting.Webhooks, Client: httpClient,
			Log: log.With("component", "webhook"), Count: notes.Count}
	}
	dispatcher := alerts.NewDispatcher(dopts)

	// The dashboards' station_state, from the live view and the alerts.
	snapshots := ingest.NewSnapshots(ingest.SnapshotOptions{Registry: reg, Stations: stream.Stations(), Journal: jrn,
		AlertLevel: evaluator.WorstLevel, Every: o.StateEvery, Logger: log.With("component", "state")})

	// Delivery: the journal into InfluxDB, rejections to the broker.
	var delivered []ingest.Output
	for i, out := range outputs {
		delivered = append(delivered, ingest.Output{Name: out.Name, Writer: writers[i]})
	}
	delivery := ingest.NewDelivery(ingest.DeliveryOptions{Journal: jrn, Outputs: delivered, DeadLetters: broker, TopicPrefix: prefix,
		DrainTimeout: o.DrainTimeout, Metrics: metrics, Logger: log.With("component", "delivery"), Stations: stream.Stations()})

	// Statistics and accounts of periods, from what the first output stores.
	periods, err := ingest.NewPeriods(ingest.PeriodsOptions{Journal: jrn, Registry: reg, Query: writers[0],
		Output: journal.OutputReader(outputs[0].Name), Location: cfg.Location,
		MarksFile: filepath.Join(cfg.Spool.Dir, "periods.json"), ComputeEvery: o.PeriodsEvery,
		Logger: log.With("component", "periods"), Registerer: promReg})
	if err != nil {
		log.Error("the periods to compute were not read; statistics are computed from the data that arrives from now on", "err", err)
	}

	// Corrections, approvals and the export (CONTRACT §12), their log
	// beside the spool.
	var stores []curate.Output
	for i, out := range outputs {
		stores = append(stores, curate.Output{Name: out.Name, Store: writers[i]})
	}
	// Reprocess (rated flows after a rating change for the past) reads
	// the first output once every output has what the spool holds.
	reprocessor := curate.NewRatingReprocessor(curate.RatingReprocessorOptions{Registry: reg, Store: writers[0], Journal: jrn,
		AwaitDelivered: func(ctx context.Context) error { return curate.WaitDelivered(ctx, jrn, names, 10*time.Second) },
		Logger:         log.With("component", "reprocess")})
	curator, err = curate.New(curate.Options{Registry: reg, Journal: jrn, Outputs: stores,
		LogPath: filepath.Join(cfg.Spool.Dir, "curation.log"), Location: cfg.Location, Token: cfg.HTTP.AdminToken,
		Reprocessor: reprocessor, Logger: log.With("component", "curate")})
	if err != nil {
		return err
	}
	defer curator.Close()

	mux := newMux(promReg, stream, intake, broker, names, writers, jrn, evaluator, cfg.Spool.Dir,
		opspage.New(opspage.Options{Registry: reg, Stations: stream.Stations(), Alerts: evaluator, History: writers[0],
			Logger: log.With("component", "opspage")}))
	curator.Register(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	var g run.Group
	// Periods follows delivery: started first, it stops last.
	g.Go("periods", periods.Run)
	g.Go("delivery", delivery.Run)
	g.Go("snapshots", snapshots.Run)
	g.Go("alerts", dispatcher.Run)
	g.Go("stream", stream.Run)
	for _, l := range listeners {
		g.Go(l.Name(), l.Serve)
	}
	if o.Reload != nil {
		g.Go("rules", func(ctx context.Context) error { return reloadRules(ctx, o.Reload, cfg.Rules, evaluator, log) })
	}
	g.Go("http", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln) })
	if o.OnListen != nil {
		o.OnListen(ln.Addr().String())
	}
	var urls []string
	for _, out := range outputs {
		urls = append(urls, out.Name+"="+out.URL)
	}
	log.Info("rivermon running", "stations", len(reg.Stations), "brokers", cfg.MQTT.Brokers(),
		"influx", urls, "http", ln.Addr().String())
	err = g.Wait(ctx)
	if err != nil {
		log.Error("rivermon stopped on a failure", "err", err)
	} else {
		log.Info("rivermon stopped")
	}
	return err
}

// pageURL is the operations page's address: external, or else http:// and
// the address listened on; with a trailing slash, so that the page's
// relative links and the alerts' "#/station/…" stay under its path.
func pageURL(external, listening string) string {
	if external == "" {
		external = "http://" + listening
	}
	return strings.TrimRight(external, "/") + "/"
}

// serveHTTP serves until ctx ends, then lets requests under way finish for
// a second. Their contexts end with ctx: a reprocess or a correction
// waiting for delivery stops rather than run on after rivermon stopped,
// on a closed spool.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rebuild restores the streaming state (QC windows, ecological-flow days)
// from InfluxDB (the first output) and from what the spool still holds for
// it, so that a restart does not change how the next samples are flagged.
// It reads only what the state holds: every parameter for the longest QC
// window, and before that, flow and level for the ecological-flow days of
// the stations that keep them, streamed in chunks. Without InfluxDB the
// state starts from the spool alone, and says so.
func rebuild(ctx context.Context, log *slog.Logger, writer *influx.Writer, output string, stream *ingest.Stream, jrn *journal.Journal) {
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	now := time.Now()
	qcWindow, flowDays, flowStations := stream.HistoryNeeds()
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
		stream.Rebuild(points)
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
	spooled := ingest.JournalHistory(jrn, output)
	stream.Rebuild(spooled)
	log.Info("streaming state rebuilt", "stored_samples", stored, "spooled_samples", len(spooled),
		"qc_window", qcWindow, "flow_stations", len(flowStations))
}

// reloadRules reads the rules file again on every signal; a file with
// problems is reported and the rules in force are kept.
func reloadRules(ctx context.Context, reload <-chan struct{}, path string, ev *alerts.Evaluator, log *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
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

func newMux(promReg *prometheus.Registry, stream *ingest.Stream, intake *ingest.Intake, broker *mqtt.Client,
	outputs []string, writers []*influx.Writer, jrn *journal.Journal, ev *alerts.Evaluator, spoolDir string, page *opspage.Page) *http.ServeMux {
	mux := http.NewServeMux()
	page.Register(mux)
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
		if p := intake.Problem(); p != "" {
			problems = append(problems, p)
		}
		// An output that cannot write is named. Refused credentials are a
		// set-up fault: not ready. An output down or failing is not: the
		// spool holds its points, the other outputs and acknowledgement go
		// on (CONTRACT §7, §8), and it shows under "ready" (until the
		// spool is full, which is not ready above).
		var notes []string
		for i, out := range outputs {
			iw := writers[i]
			reason, auth := iw.Problem()
			if reason == "" {
				continue
			}
			state := "failing"
			if strings.Contains(reason, "("+influx.KindNetwork+")") {
				state = "unreachable"
			}
			if auth {
				state = "refuses the credentials"
			}
			line := fmt.Sprintf("influx output %s: %s since %s, %d bytes behind in the spool: %s", out, state,
				iw.FailingSince().UTC().Format(time.RFC3339), jrn.Behind(journal.OutputReader(out)), reason)
			if auth {
				problems = append(problems, line)
			} else {
				notes = append(notes, line)
			}
		}
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range append(problems, notes...) {
				fmt.Fprintln(w, p)
			}
			return
		}
		fmt.Fprintln(w, "ready")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	})
	mux.HandleFunc("GET /api/v1/stations", func(w http.ResponseWriter, _ *http.Request) {
		views := stream.Stations().Snapshot(time.Now())
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
