package alerts

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sender delivers alerts (notify.Alertmanager, notify.Webhook).
type Sender interface {
	Send(ctx context.Context, alerts []Alert) error
}

// Publisher sends an MQTT message at QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
}

// LineWriter stores line protocol durably (the ingest spool).
type LineWriter interface {
	WriteLines(lines []string) error
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Evaluator    *Evaluator
	Alertmanager Sender // nil: none configured
	Webhook      Sender // nil: none configured
	MQTT         Publisher
	TopicPrefix  string
	History      LineWriter
	// StatePath is where alert state is saved (firing alerts survive a
	// restart); empty: not saved.
	StatePath      string
	ResendInterval time.Duration
	// TickEvery is how often wall-clock rules are checked (default 10 s).
	TickEvery time.Duration
	// GatherEvery is the least time between two deliveries of changes that
	// notify nobody (default 100 ms): those of samples older than
	// max_sample_age, a backlog replayed, which may come by the thousand
	// and are saved and written to history together a few times a second
	// rather than once per sample. A change that notifies goes out at once,
	// with what has gathered. Negative: deliver at every wake.
	GatherEvery time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Dispatcher evaluates stored samples and delivers what changes: history
// to InfluxDB, transitions to webhooks and MQTT, and every active alert to
// Alertmanager at once and every resend interval.
type Dispatcher struct {
	o       DispatcherOptions
	mu      sync.Mutex
	queue   []Transition
	urgent  bool // the queue holds a change that notifies
	wake    chan struct{}
	active  *prometheus.GaugeVec
	changes *prometheus.CounterVec
	notes   *prometheus.CounterVec
}

// NewDispatcher returns a Dispatcher; Run starts it.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TickEvery <= 0 {
		o.TickEvery = 10 * time.Second
	}
	if o.ResendInterval <= 0 {
		o.ResendInterval = time.Minute
	}
	if o.GatherEvery == 0 {
		o.GatherEvery = 100 * time.Millisecond
	}
	d := &Dispatcher{o: o, wake: make(chan struct{}, 1),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rivermon_alerts_active", Help: "Firing alerts by severity."}, []string{"severity"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_alert_transitions_total", Help: "Alerts that fired or resolved."}, []string{"state"}),
		notes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_notifications_total", Help: "Alert deliveries by receiver (alertmanager, webhook, mqtt) and result (success, failure)."},
			[]string{"receiver", "result"}),
	}
	for _, s := range Severities {
		d.active.WithLabelValues(s)
	}
	for _, r := range []string{"alertmanager", "webhook", "mqtt"} {
		for _, res := range []string{"success", "failure"} {
			d.notes.WithLabelValues(r, res)
		}
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(d.active, d.changes, d.notes)
	}
	return d
}

// SetAlertmanager and SetWebhook set the senders (before Run); the senders
// report their results through Count, so they are made after the
// Dispatcher.
func (d *Dispatcher) SetAlertmanager(s Sender) { d.o.Alertmanager = s }

// SetWebhook sets the webhook sender (before Run).
func (d *Dispatcher) SetWebhook(s Sender) { d.o.Webhook = s }

// Count records a delivery result; the notify senders report through it.
func (d *Dispatcher) Count(receiver, result string) { d.notes.WithLabelValues(receiver, result).Inc() }

// Observe evaluates stored samples, in order. It never blocks on delivery.
func (d *Dispatcher) Observe(ss []Sample) {
	ts := d.o.Evaluator.ObserveAll(ss, d.o.Now())
	if len(ts) == 0 {
		return
	}
	d.enqueue(ts)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) enqueue(ts []Transition) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(d.queue, ts...)
	for i := range ts {
		d.urgent = d.urgent || ts[i].Notify
	}
}

// Run delivers until ctx ends, then delivers what is queued (history and
// state; receivers get what they take before shutdown's short deadline).
// Cancel ctx once nothing more is observed, so that no transition is left
// behind.
func (d *Dispatcher) Run(ctx context.Context) error {
	resend := time.NewTicker(d.o.ResendInterval)
	defer resend.Stop()
	tick := time.NewTicker(d.o.TickEvery)
	defer tick.Stop()
	// hold ends a wait for GatherEvery to pass; holding: it runs.
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	holding := false
	var last time.Time // when the last delivery began
	// Receivers are sent to under a context that outlives ctx by a second:
	// a notification under way when shutdown begins, or queued then, still
	// reaches them, and shutdown is not held up longer than that.
	send, stopSend := afterGrace(ctx, shutdownGrace)
	defer stopSend()
	d.sendActive(send) // firing alerts restored from disk go out again, with their startsAt
	for {
		waited := false // the hold ended: what gathered goes now
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-hold.C:
			holding, waited = false, true
		case <-tick.C:
			d.enqueue(d.o.Evaluator.Tick(d.o.Now()))
		case <-resend.C:
			// Held changes go first: the state is saved before anyone is
			// told of it.
			if ts := d.take(); len(ts) > 0 {
				last = d.o.Now()
				d.deliver(send, ts)
			}
			d.sendActive(send)
			continue
		}
		if ctx.Err() != nil {
			hold.Stop()
			if ts := d.take(); len(ts) > 0 {
				d.deliver(send, ts) // saves the state too
			} else {
				d.save()
			}
			return nil
		}
		now := d.o.Now()
		if !waited && !d.isUrgent() {
			if holding {
				continue // the hold's end delivers what gathered
			}
			if wait := d.o.GatherEvery - now.Sub(last); wait > 0 && !last.IsZero() {
				holding = true
				hold.Reset(wait)
				continue
			}
		}
		if holding {
			hold.Stop()
			holding = false
		}
		ts := d.take()
		if len(ts) == 0 {
			continue
		}
		last = now
		d.deliver(send, ts)
	}
}

// shutdownGrace is how long receivers are still sent to once Run's context
// has ended.
const shutdownGrace = time.Second

// afterGrace returns a context that ends grace after ctx does (or when stop
// is called).
func afterGrace(ctx context.Context, grace time.Duration) (_ context.Context, stop func()) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if out.Err() == nil {
			timer = time.AfterFunc(grace, cancel)
		}
	})
	return out, func() {
		stopAfter()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}
}

// take empties the queue of transitions.
func (d *Dispatcher) take() []Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.queue
	d.queue, d.urgent = nil, false
	return ts
}

func (d *Dispatcher) isUrgent() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.urgent
}

func (d *Dispatcher) deliver(ctx context.Context, ts []Transition) {
	var lines []string
	var notify []Alert
	for _, t := range ts {
		d.changes.WithLabelValues(t.State).Inc()
		lines = append(lines, historyLine(t))
		if t.Notify {
			notify = append(notify, t.Alert)
		}
		d.o.Logger.Info("alert "+t.State, "alertname", t.Alert.Labels["alertname"], "station", t.Alert.Labels["station"],
			"param", t.Alert.Labels["param"], "value", t.Value, "threshold", t.Thresh, "notify", t.Notify)
	}
	if d.o.History != nil {
		if err := d.o.History.WriteLines(lines); err != nil {
			d.o.Logger.Error("alert history not stored", "err", err)
		}
	}
	d.save()
	if len(notify) == 0 {
		d.updateGauge()
		return
	}
	d.sendActive(ctx)
	if d.o.Webhook != nil {
		_ = d.o.Webhook.Send(ctx, notify)
	}
	if d.o.MQTT != nil {
		for _, a := range notify {
			b, _ := json.Marshal(a)
			topic := d.o.TopicPrefix + "/alerts/" + a.Labels["station"]
			if err := d.o.MQTT.Publish(ctx, topic, false, b); err != nil {
				d.Count("mqtt", "failure")
				d.o.Logger.Warn("alert not published on MQTT", "topic", topic, "err", err)
				continue
			}
			d.Count("mqtt", "success")
		}
	}
}

// sendActive posts every active alert to Alertmanager with endsAt four
// resend intervals ahead (Prometheus: two failed sends may pass).
func (d *Dispatcher) sendActive(ctx context.Context) {
	as := d.o.Evaluator.Active(d.o.Now(), 4*d.o.ResendInterval)
	d.updateGauge()
	if d.o.Alertmanager != nil && len(as) > 0 {
		_ = d.o.Alertmanager.Send(ctx, as)
	}
}

func (d *Dispatcher) updateGauge() {
	for sev, n := range d.o.Evaluator.CountFiring() {
		d.active.WithLabelValues(sev).Set(float64(n))
	}
}

func (d *Dispatcher) save() {
	if d.o.StatePath == "" {
		return
	}
	if err := d.o.Evaluator.Save(d.o.StatePath); err != nil {
		d.o.Logger.Error("alert state not saved; firing alerts may be announced again after a restart", "err", err)
	}
}

var tagEscaper = strings.NewReplacer(",", `\,`, " ", `\ `, "=", `\=`)
var stringEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// historyLine renders a transition as a point of `alert` (CONTRACT §6), at
// the sample time of the change, for Grafana annotations and the alert
// table. The series is the alert's identity, (alertname, station[, param])
// (CONTRACT §10): param is a tag, so that the alerts of one rule on two
// parameters of a station (SensorFault) are two series, whose latest states
// can be told apart and whose changes at the same sample time do not
// overwrite each other.
func historyLine(t Transition) string {
	l := t.Alert.Labels
	var b strings.Builder
	b.WriteString("alert,alertname=" + tagEscaper.Replace(l["alertname"]))
	if p := l["param"]; p != "" {
		b.WriteString(",param=" + tagEscaper.Replace(p))
	}
	b.WriteString(",river=" + tagEscaper.Replace(l["river"]) +
		",severity=" + tagEscaper.Replace(l["severity"]) + ",station=" + tagEscaper.Replace(l["station"]))
	b.WriteString(` state="` + t.State + `",value=` + strconv.FormatFloat(t.Value, 'g', -1, 64) +
		",threshold=" + strconv.FormatFloat(t.Thresh, 'g', -1, 64) +
		`,summary="` + stringEscaper.Replace(t.Alert.Annotations["summary"]) + `"`)
	b.WriteString(",notified=" + strconv.FormatBool(t.Notify))
	b.WriteString(" " + strconv.FormatInt(t.At.UnixNano(), 10))
	return b.String()
}
