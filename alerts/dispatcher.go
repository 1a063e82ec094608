package alerts

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/run"
)

// Sender delivers alerts (notify.Alertmanager, notify.Webhook).
type Sender interface {
	Send(ctx context.Context, alerts []Alert) error
}

// Publisher sends an MQTT message at QoS 1.
type Publisher interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
}

// Journal stores points durably within its size bound (ingest/journal):
// Add refuses what does not fit, and the dispatcher writes it again later.
type Journal interface {
	Add(rec *journal.Record) error
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Evaluator    *Evaluator
	Alertmanager Sender // nil: none configured
	Webhook      Sender // nil: none configured
	MQTT         Publisher
	TopicPrefix  string
	// History is where alert history is stored.
	History Journal
	// Observed, when set, is read for stored samples until it is closed
	// (ingest's stream); Observe does the same for a caller of its own.
	Observed <-chan []reading.Observed
	// Notifications counts deliveries; the senders report through it too.
	Notifications *Notifications
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
	// unstored is alert history the journal had no room for, written
	// before the next.
	unstored []journal.Entry
	// outbox holds what is to be sent to the receivers, which the
	// notifier goroutine sends: a slow or unreachable receiver never
	// holds up the evaluation of stored samples, hence the stream.
	outbox outbox
}

// outbox is what the notifier has to send, merged: whether the active set
// is to be posted to Alertmanager, and the changes that notify, for the
// webhooks and MQTT, in order.
type outbox struct {
	mu     sync.Mutex
	active bool
	notify []Alert
	closed bool // Run delivers nothing more
	wake   chan struct{}
}

// maxOutbox bounds the changes waiting for the webhooks and MQTT while
// they are slow: the oldest go first.
const maxOutbox = 10000

// maxUnstored bounds the history kept while the journal is full: alert
// changes are few while nothing is acknowledged (only silence).
const maxUnstored = 100000

// Notifications counts alert deliveries by receiver and result.
type Notifications struct{ c *prometheus.CounterVec }

// NewNotifications returns the counter rivermon_notifications_total,
// registered with r when r is not nil.
func NewNotifications(r prometheus.Registerer) *Notifications {
	n := &Notifications{c: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rivermon_notifications_total", Help: "Alert deliveries by receiver (alertmanager, webhook, mqtt) and result (success, failure)."},
		[]string{"receiver", "result"})}
	for _, rc := range []string{"alertmanager", "webhook", "mqtt"} {
		for _, res := range []string{"success", "failure"} {
			n.c.WithLabelValues(rc, res)
		}
	}
	if r != nil {
		r.MustRegister(n.c)
	}
	return n
}

// Count records a delivery result.
func (n *Notifications) Count(receiver, result string) { n.c.WithLabelValues(receiver, result).Inc() }

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
	d := &Dispatcher{o: o, wake: make(chan struct{}, 1), outbox: outbox{wake: make(chan struct{}, 1)},
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rivermon_alerts_active", Help: "Firing alerts by severity."}, []string{"severity"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_alert_transitions_total", Help: "Alerts that fired or resolved."}, []string{"state"}),
	}
	if d.o.Notifications == nil {
		d.o.Notifications = NewNotifications(o.Registerer)
	}
	for _, s := range Severities {
		d.active.WithLabelValues(s)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(d.active, d.changes)
	}
	return d
}

// Count records a delivery result.
func (d *Dispatcher) Count(receiver, result string) { d.o.Notifications.Count(receiver, result) }

// drain evaluates what is left in observed without waiting for more.
func (d *Dispatcher) drain(observed <-chan []reading.Observed) {
	for observed != nil {
		select {
		case ss, ok := <-observed:
			if !ok {
				return
			}
			d.Observe(ss)
		default:
			return
		}
	}
}

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
	send, stopSend := run.Grace(ctx, shutdownGrace)
	defer stopSend()
	notified := make(chan struct{})
	go func() {
		defer close(notified)
		d.notifier(send)
	}()
	// The notifier sends what the last delivery left, then returns.
	defer func() { <-notified }()
	defer d.post(nil, false, true)
	d.post(nil, true, false) // firing alerts restored from disk go out again, with their startsAt
	observed := d.o.Observed
	for {
		waited := false // the hold ended: what gathered goes now
		select {
		case <-ctx.Done():
			// The stream stopped first and closed Observed: what it sent
			// last is evaluated before the last delivery.
			d.drain(observed)
		case ss, ok := <-observed:
			if !ok {
				observed = nil
				continue
			}
			d.Observe(ss)
			continue
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
				d.deliver(ts)
			}
			d.post(nil, true, false)
			continue
		}
		if ctx.Err() != nil {
			hold.Stop()
			if ts := d.take(); len(ts) > 0 {
				d.deliver(ts) // saves the state too
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
		d.deliver(ts)
	}
}

// flashPause is the least time an alert stays firing at Alertmanager
// before its resolution is posted.
const flashPause = time.Second

// shutdownGrace is how long receivers are still sent to once Run's context
// has ended.
const shutdownGrace = time.Second

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

// deliver stores the history of transitions and the alert state, and
// hands what notifies to the notifier.
func (d *Dispatcher) deliver(ts []Transition) {
	var notify []Alert
	for _, t := range ts {
		d.changes.WithLabelValues(t.State).Inc()
		d.unstored = append(d.unstored, journal.Entry{Kind: journal.KindAlert, Station: t.Alert.Labels["station"],
			Time: t.At, Source: "alerts", Line: historyLine(t)})
		if t.Notify {
			notify = append(notify, t.Alert)
		}
		d.o.Logger.Info("alert "+t.State, "alertname", t.Alert.Labels["alertname"], "station", t.Alert.Labels["station"],
			"param", t.Alert.Labels["param"], "value", t.Value, "threshold", t.Thresh, "notify", t.Notify)
	}
	d.storeHistory()
	d.save()
	d.updateGauge()
	if len(notify) == 0 {
		return
	}
	if d.o.Webhook == nil && d.o.MQTT == nil {
		notify = nil // nobody to hand the changes to
	}
	d.post(notify, true, false)
}

// post hands the notifier changes for the webhooks and MQTT, and whether
// to post the active set; last says nothing more will come.
func (d *Dispatcher) post(notify []Alert, active, last bool) {
	ob := &d.outbox
	ob.mu.Lock()
	ob.notify = append(ob.notify, notify...)
	if over := len(ob.notify) - maxOutbox; over > 0 {
		ob.notify = append(ob.notify[:0], ob.notify[over:]...)
		d.o.Logger.Error("alert notifications dropped: the webhooks and MQTT stayed too slow", "changes", over)
	}
	ob.active = ob.active || active
	ob.closed = ob.closed || last
	ob.mu.Unlock()
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// notifier sends what the outbox holds, merged when it gathered while a
// send was under way, until Run says nothing more will come (then the
// last is sent, under ctx, which ends shortly after Run's).
func (d *Dispatcher) notifier(ctx context.Context) {
	ob := &d.outbox
	for {
		ob.mu.Lock()
		notify, active, closed := ob.notify, ob.active, ob.closed
		ob.notify, ob.active = nil, false
		ob.mu.Unlock()
		d.send(ctx, notify, active)
		if closed {
			return
		}
		if len(notify) == 0 && !active {
			select {
			case <-ob.wake:
			case <-ctx.Done():
				// Only Run's last post ends the loop: wait for it.
				<-ob.wake
			}
		}
	}
}

// send posts to the receivers: the active set to Alertmanager, then the
// changes to the webhooks and MQTT.
//
// Alertmanager decides what to notify when it flushes an alert's group; a
// resolution that arrives before the flush cancels the firing unseen. So
// an alert that resolved before it was ever posted is posted firing first,
// and the active set waits until every alert it resolves was posted firing
// flashPause before.
func (d *Dispatcher) send(ctx context.Context, notify []Alert, active bool) {
	if active && d.o.Alertmanager != nil {
		if unposted := d.o.Evaluator.Unposted(d.o.Now(), 4*d.o.ResendInterval); len(unposted) > 0 {
			_ = d.o.Alertmanager.Send(ctx, unposted)
		}
		if wait := d.o.Evaluator.PostedWithin(d.o.Now(), flashPause); wait > 0 {
			_ = run.Sleep(ctx, wait)
		}
	}
	if active {
		d.sendActive(ctx)
	}
	if len(notify) == 0 {
		return
	}
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

// storeHistory appends the alert history not stored yet to the journal.
// What finds no room (the spool full) is kept for the next try, up to
// maxUnstored changes.
func (d *Dispatcher) storeHistory() {
	if d.o.History == nil {
		d.unstored = d.unstored[:0]
		return
	}
	if len(d.unstored) == 0 {
		return
	}
	rec := journal.Record{Entries: d.unstored}
	if err := d.o.History.Add(&rec); err != nil {
		if over := len(d.unstored) - maxUnstored; over > 0 {
			d.unstored = append(d.unstored[:0], d.unstored[over:]...)
			d.o.Logger.Error("alert history lost: the spool stayed full", "changes", over)
		}
		d.o.Logger.Warn("alert history not stored yet; kept for the next try", "changes", len(d.unstored), "err", err)
		return
	}
	clear(d.unstored)
	d.unstored = d.unstored[:0]
}

// historyLine renders a transition as a point of `alert` (CONTRACT §6), at
// the sample time of the change, for Grafana annotations and the alert
// table. The series is the alert's identity, (alertname, station[, param])
// (CONTRACT §10): param is a tag, so that the alerts of one rule on two
// parameters of a station (SensorFault) are two series, whose latest states
// can be told apart and whose changes at the same sample time do not
// overwrite each other.
func historyLine(t Transition) string {
	l := t.Alert.Labels
	b := []byte("alert")
	b = lineproto.AppendTag(b, "alertname", l["alertname"])
	if p := l["param"]; p != "" {
		b = lineproto.AppendTag(b, "param", p)
	}
	b = lineproto.AppendTag(b, "river", l["river"])
	b = lineproto.AppendTag(b, "severity", l["severity"])
	b = lineproto.AppendTag(b, "station", l["station"])
	b = append(b, ` state="`...)
	b = append(b, t.State...)
	b = append(b, '"')
	b = lineproto.AppendFloatField(b, false, "value", t.Value)
	b = lineproto.AppendFloatField(b, false, "threshold", t.Thresh)
	b = lineproto.AppendStringField(b, "summary", t.Alert.Annotations["summary"])
	b = lineproto.AppendBoolField(b, "notified", t.Notify)
	return string(lineproto.AppendTime(b, t.At))
}
