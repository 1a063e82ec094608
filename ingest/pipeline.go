// Package ingest is rivermon's pipeline from a broker message to stored
// points: decode, validate against the registry, dead-letter what fails,
// enrich with tags, QC flags, batch, spool, acknowledge, deliver.
//
// The acknowledgement point is Pipeline.commit: a message is acked once
// every point it produced and every rejection of it are in the spool (a
// local append-only log, fsynced). Until then the broker keeps the message
// in rivermon's persistent session, so a crash loses nothing. A second
// goroutine, Pipeline.deliver, writes the spool to InfluxDB in order,
// publishes the dead letters, and trims what is done; an InfluxDB outage
// only grows the spool, and a restart resumes from it. A redelivery or a
// replay rewrites the same points, which InfluxDB stores once (same series
// and timestamp).
package ingest

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Reasons produced by the pipeline beyond those of package reading.
const (
	// ReasonInfluxRejected: InfluxDB refused the point itself (HTTP 400/422/413).
	ReasonInfluxRejected = "influx_rejected"
)

// PointWriter stores line protocol; see influx.Writer.Write.
type PointWriter interface {
	Write(ctx context.Context, lines []string) ([]influx.Poison, error)
}

// Publisher sends a message at QoS 1 and waits for the broker's PUBACK.
type Publisher interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
}

// StoredSample is a sample as stored: its values (codes and the derived
// flow_rated_m3s and wq_class) with their QC flags. One without values
// only says that its station was heard from.
type StoredSample struct {
	Station  string
	Time     time.Time
	Received time.Time // wall clock at which its message arrived
	Values   []StoredValue
}

// StoredValue is one value of a StoredSample.
type StoredValue struct {
	Code  string
	Value float64
	Flag  int
}

// Observer is told of every sample once it is durable (the alert
// evaluator), in arrival order, a committed batch at a time. It must not
// block, and must not keep the slice.
type Observer interface {
	Observe([]StoredSample)
}

// Options configure a Pipeline.
type Options struct {
	Registry    *registry.Registry
	TopicPrefix string
	Writer      PointWriter
	DeadLetters Publisher
	// Spool is the durable log between acknowledgement and InfluxDB.
	Spool *spool.Log
	// Observer, when set, sees every stored sample.
	Observer Observer
	// SpoolMaxBytes is the size at which rivermon stops acknowledging
	// until delivery frees room (the broker keeps the messages).
	SpoolMaxBytes int64
	Logger        *slog.Logger
	Metrics       *Metrics
	// MaxBatchPoints caps the points of one write (default 5000).
	MaxBatchPoints int
	// FlushEvery is how long delivery gathers records when few are
	// waiting, so that a trickle of readings becomes one write to InfluxDB
	// rather than one per message (default 50 ms; negative: never wait).
	FlushEvery time.Duration
	// DrainTimeout bounds how long Run goes on after its context ends
	// (default 3 s): messages already received are spooled and acked, and
	// delivery to InfluxDB goes on until the spool is empty or the time is
	// up; what is left stays in the spool for the next start.
	DrainTimeout time.Duration
	// Now is the wall clock: commit-time measurements, silence, closing
	// ecological-flow days; nil means time.Now.
	Now func() time.Time
	// Location is the local time of the daily ecological-flow accounts
	// (default Asia/Shanghai).
	Location *time.Location
	// EflowGrace is how long after a local day ends its account is closed
	// when no data of a later day has closed it (default 2 h).
	EflowGrace time.Duration
	// SweepEvery is how often silence and day ends are checked (default 30 s).
	SweepEvery time.Duration
	// StateEvery is how often the `station_state` snapshot of every station
	// is written for dashboards (default 1 min).
	StateEvery time.Duration
	// AlertLevel, when set, gives the worst firing alert of a station for
	// station_state: 0 none, 1 info, 2 warning, 3 critical.
	AlertLevel func(station string) int
	// MaxQueueMessages and MaxQueueBytes bound the intake: beyond either,
	// WaitRoom blocks (the broker connection is then not read) until the
	// assembler takes the queue, for at most its limit (defaults 10,000
	// messages and 8 MiB of payload, a fraction of a second of work). The
	// HJ 212 TCP listener does not ask: an analyser waits for each answer.
	MaxQueueMessages int
	MaxQueueBytes    int
}

// Delivery is one broker message waiting to be processed.
type Delivery struct {
	Topic    string
	Payload  []byte
	Received time.Time
	Ack      func()
}

// Pipeline turns deliveries into stored points.
type Pipeline struct {
	o        Options
	m        *Metrics
	stations *Stations
	state    map[string]*station // owned by the assembler goroutine once Run starts

	mu         sync.Mutex
	queue      []Delivery
	queueBytes int
	room       chan struct{} // closed when the queue is taken; nil when nobody waits
	closed     bool
	notify     chan struct{}
	free       chan *batch // committed batches, for the assembler to reuse

	problemMu sync.Mutex
	problem   string // why messages are not being acknowledged, "" when they are

	lastState time.Time // when station_state was last written (assembler goroutine)
}

// New returns a Pipeline; Run starts it.
func New(o Options) *Pipeline {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatchPoints <= 0 {
		o.MaxBatchPoints = 5000
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 3 * time.Second
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = 50 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SpoolMaxBytes <= 0 {
		o.SpoolMaxBytes = 1 << 30
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Location == nil {
		if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
			o.Location = loc
		} else {
			o.Location = time.FixedZone("CST", 8*3600)
		}
	}
	if o.EflowGrace <= 0 {
		o.EflowGrace = 2 * time.Hour
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 30 * time.Second
	}
	if o.StateEvery <= 0 {
		o.StateEvery = time.Minute
	}
	if o.MaxQueueMessages <= 0 {
		o.MaxQueueMessages = 10000
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 8 << 20
	}
	p := &Pipeline{o: o, m: o.Metrics, stations: newStations(o.Registry, o.Metrics.lastSeen),
		state: map[string]*station{}, notify: make(chan struct{}, 1), free: make(chan *batch, 2)}
	start := o.Now()
	for i := range o.Registry.Stations {
		st := &o.Registry.Stations[i]
		p.state[st.ID] = newStation(st, o.Location)
		// A station not heard from since start-up counts as silent from now.
		p.state[st.ID].heard = start
	}
	return p
}

// Stations returns the live station view.
func (p *Pipeline) Stations() *Stations { return p.stations }

// Handle queues a message. It never blocks. The broker's in-flight window
// does not bound the queue: Mosquitto 2.0 sends far beyond
// max_inflight_messages to a subscriber that acknowledges (4,400 messages
// of 10 KB were measured waiting with the window at 100), so the
// connection asks WaitRoom before it reads. After Run's context ends,
// messages are left unacknowledged for the broker to resend.
func (p *Pipeline) Handle(topic string, payload []byte, received time.Time, ack func()) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, Delivery{Topic: topic, Payload: payload, Received: received, Ack: ack})
	p.queueBytes += len(payload)
	n := len(p.queue)
	p.mu.Unlock()
	p.m.queued.Set(float64(n))
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// WaitRoom blocks while the intake is over its bounds, until the assembler
// takes the queue, done is closed, or limit has passed. The broker
// connection calls it before reading, so that a flood waits in the broker
// (and in TCP) rather than in memory. It does not block while
// acknowledging has stopped (spool full or not writable): the broker then
// sends no more by itself, and the connection must go on reading the
// broker's answers (the PUBACK of a dead letter that delivery waits for
// before it can trim the spool, PINGRESP).
func (p *Pipeline) WaitRoom(done <-chan struct{}, limit time.Duration) {
	var timeout <-chan time.Time
	p.mu.Lock()
	for !p.closed && (len(p.queue) >= p.o.MaxQueueMessages || p.queueBytes >= p.o.MaxQueueBytes) {
		if p.Problem() != "" {
			break
		}
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(limit)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-done:
			return
		case <-timeout:
			return
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
}

func (p *Pipeline) take() ([]Delivery, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue, p.queueBytes = nil, 0
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.m.queued.Set(0)
	return q, p.closed
}

func (p *Pipeline) closeIntake() {
	p.mu.Lock()
	p.closed = true
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
}

// Run processes messages until ctx ends, then stops taking new ones,
// spools and acknowledges what it holds, delivers what it can within
// DrainTimeout, and returns nil. What is not delivered stays in the spool.
func (p *Pipeline) Run(ctx context.Context) error {
	// Spooling outlives ctx by DrainTimeout so that a shutdown still
	// acknowledges what arrived (unless the spool stays full).
	commitCtx, cancelCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCommits()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(p.o.DrainTimeout, cancelCommits) })
	defer stop()

	deliverCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		p.deliver(deliverCtx)
	}()

	batches := make(chan *batch)
	go p.assemble(ctx, batches)
	for b := range batches {
		if err := p.commit(commitCtx, b); err != nil {
			p.o.Logger.Warn("shutdown before the batch was spooled; the broker will resend it",
				"messages", len(b.acks), "points", len(b.lines), "err", err)
			for range batches {
			}
			break
		}
		b.reset()
		select {
		case p.free <- b:
		default:
		}
	}
	// Intake is closed and everything received is acked or left to the
	// broker. Let delivery empty the spool while there is time.
	wait, cancelWait := context.WithTimeout(context.WithoutCancel(ctx), p.o.DrainTimeout)
	_ = p.o.Spool.WaitBelow(wait, 1, 0)
	cancelWait()
	stopDelivery()
	<-delivered
	return nil
}

// Problem says why messages are not acknowledged now (spool full, spool not
// writable), or "" when all is well.
func (p *Pipeline) Problem() string {
	p.problemMu.Lock()
	defer p.problemMu.Unlock()
	return p.problem
}

func (p *Pipeline) setProblem(s string) {
	p.problemMu.Lock()
	p.problem = s
	p.problemMu.Unlock()
}

// batch is what one write stores and acknowledges.
type batch struct {
	lines       []string
	deadLetters []deadLetter
	acks        []func()
	received    []time.Time // when each acked message arrived
	updates     []update
	observed    []StoredSample
}

func (b *batch) empty() bool {
	return len(b.acks) == 0 && len(b.lines) == 0 && len(b.deadLetters) == 0 && len(b.observed) == 0
}

// reset empties b for reuse, keeping its arrays and letting go of what
// they held.
func (b *batch) reset() {
	clear(b.lines)
	clear(b.deadLetters)
	clear(b.acks)
	clear(b.updates)
	clear(b.observed)
	b.lines, b.deadLetters, b.acks, b.received = b.lines[:0], b.deadLetters[:0], b.acks[:0], b.received[:0]
	b.updates, b.observed = b.updates[:0], b.observed[:0]
}

// newBatch returns an empty batch, one the committer is done with when
// there is one, so that the arrays of a busy intake are not grown anew for
// every batch.
func (p *Pipeline) newBatch() *batch {
	select {
	case b := <-p.free:
		return b
	default:
		return &batch{}
	}
}

type deadLetter struct {
	topic  string
	reason string
	body   []byte
}

// assemble turns queued deliveries into batches, in arrival order. It hands
// a batch over as soon as the committer is free, so batches grow while a
// write is in flight and stay small when the load is light.
func (p *Pipeline) assemble(ctx context.Context, out chan<- *batch) {
	defer close(out)
	done := ctx.Done()
	cur := p.newBatch()
	var buf []byte
	tick := time.NewTicker(p.o.SweepEvery)
	defer tick.Stop()
	for {
		items, closed := p.take()
		for _, d := range items {
			buf = p.process(d, cur, buf[:0])
			// Dead letters count too: a flood of bad messages while the
			// spool is full must not pile up here either.
			if len(cur.lines)+len(cur.deadLetters) >= p.o.MaxBatchPoints {
				out <- cur
				cur = p.newBatch()
			}
		}
		if closed {
			if p.o.Observer != nil {
				// Values still waiting for a next one are evaluated as they
				// are: after a restart nothing would show them to alerts.
				for i := range p.o.Registry.Stations {
					cur.observed = p.state[p.o.Registry.Stations[i].ID].releaseStale(cur.observed, time.Time{})
				}
			}
			if !cur.empty() {
				out <- cur
			}
			return
		}
		// An empty batch is not handed over: a nil channel never sends.
		var send chan<- *batch
		if !cur.empty() {
			send = out
		}
		select {
		case send <- cur:
			cur = p.newBatch()
		case <-p.notify:
		case <-tick.C:
			buf = p.sweep(cur, buf)
		case <-done:
			p.closeIntake()
			done = nil
		}
	}
}

// commit makes a batch durable in the spool and then acknowledges its
// messages in arrival order. This is the acknowledgement point.
func (p *Pipeline) commit(ctx context.Context, b *batch) error {
	if len(b.lines) > 0 || len(b.deadLetters) > 0 {
		rec := encodeRecord(b.lines, b.deadLetters)
		if err := p.waitForRoom(ctx, int64(len(rec))); err != nil {
			return err
		}
		for attempt := 0; ; attempt++ {
			_, err := p.o.Spool.Append(rec)
			if err == nil {
				break
			}
			// A disk fault: nothing is acked until the spool takes writes
			// again; the broker holds the messages meanwhile.
			p.setProblem("spool not writable: " + err.Error())
			p.o.Logger.Error("cannot write the spool; not acknowledging", "err", err)
			if err := sleep(ctx, min(100*time.Millisecond<<min(attempt, 8), 10*time.Second)); err != nil {
				return err
			}
		}
		p.setProblem("")
		p.m.spoolBytes.Set(float64(p.o.Spool.Bytes()))
	}
	now := p.o.Now()
	for i, ack := range b.acks {
		if ack != nil {
			ack()
		}
		p.m.ackDelay.Observe(now.Sub(b.received[i]).Seconds())
	}
	for i := range b.updates {
		p.stations.stored(&b.updates[i])
	}
	if p.o.Observer != nil && len(b.observed) > 0 {
		p.o.Observer.Observe(b.observed)
	}
	return nil
}

// WriteLines stores lines durably in the spool, to be delivered with the
// rest (alert history uses it).
func (p *Pipeline) WriteLines(lines []string) error {
	_, err := p.o.Spool.Append(encodeRecord(lines, nil))
	if err == nil {
		p.m.spoolBytes.Set(float64(p.o.Spool.Bytes()))
	}
	return err
}

// waitForRoom blocks while the spool is at its size limit: rivermon then
// stops acknowledging, and the broker keeps the messages (CONTRACT §7).
func (p *Pipeline) waitForRoom(ctx context.Context, size int64) error {
	sp := p.o.Spool
	if sp.Bytes() == 0 || sp.Bytes()+size <= p.o.SpoolMaxBytes {
		return nil
	}
	msg := fmt.Sprintf("spool full (%d of %d bytes): not acknowledging until InfluxDB takes the backlog", sp.Bytes(), p.o.SpoolMaxBytes)
	p.setProblem(msg)
	p.m.spoolFull.Set(1)
	p.o.Logger.Error(msg)
	err := sp.WaitBelow(ctx, p.o.SpoolMaxBytes, size)
	p.m.spoolFull.Set(0)
	p.setProblem("")
	if err == nil {
		p.o.Logger.Info("spool has room again; acknowledging", "bytes", sp.Bytes())
	}
	return err
}

// deliver writes the spool to InfluxDB in order, publishes its dead letters,
// and trims what is done, until ctx ends.
func (p *Pipeline) deliver(ctx context.Context) {
	sp := p.o.Spool
	after := sp.Trimmed()
	var lines []string
	var dls []deadLetter
	for {
		const maxRead = 8 << 20
		recs, err := sp.Read(ctx, after, maxRead)
		if err != nil {
			return
		}
		if size := recordBytes(recs); p.o.FlushEvery > 0 && size < maxRead/8 {
			// Little is waiting: gather a while longer.
			t := time.NewTimer(p.o.FlushEvery)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			// An error here comes back from the next Read.
			if more, err := sp.Peek(recs[len(recs)-1].Seq, maxRead-size); err == nil {
				recs = append(recs, more...)
			}
		}
		lines, dls = lines[:0], dls[:0]
		for _, r := range recs {
			if lines, dls, err = decodeRecord(r.Data, lines, dls); err != nil {
				// Only a bug writes such a record (the spool checked its
				// bytes): say so loudly, keep the file, go on.
				p.o.Logger.Error("skipping a spool record that does not decode", "seq", r.Seq, "err", err)
			}
		}
		poison, err := p.write(ctx, lines)
		if err != nil {
			return
		}
		dls = append(dls, p.poisonLetters(poison)...)
		if err := p.publishDeadLetters(ctx, dls); err != nil {
			return
		}
		after = recs[len(recs)-1].Seq
		if err := sp.Trim(after); err != nil {
			p.o.Logger.Error("cannot trim the spool; delivered records may be sent again after a restart", "err", err)
		}
		p.m.spoolBytes.Set(float64(sp.Bytes()))
	}
}

// writers is how many writes to InfluxDB delivery keeps going at once: two
// let InfluxDB use both cores of a small server while rivermon prepares the
// next round.
const writers = 2

// write stores lines, the stations split between the writers so that each
// station's points (a reading, then the revision of its QC flag) arrive in
// their order. It returns when all are stored or refused.
func (p *Pipeline) write(ctx context.Context, lines []string) ([]influx.Poison, error) {
	var parts [writers][]string
	for _, l := range lines {
		k := 0
		if st := lineStation(l); st != "" {
			k = int(crc32.ChecksumIEEE([]byte(st)) % writers)
		}
		parts[k] = append(parts[k], l)
	}
	var poison [writers][]influx.Poison
	g, gctx := errgroup.WithContext(ctx)
	for k, part := range parts {
		g.Go(func() error {
			for start := 0; start < len(part); start += p.o.MaxBatchPoints {
				chunk := part[start:min(start+p.o.MaxBatchPoints, len(part))]
				refused, err := p.o.Writer.Write(gctx, chunk)
				if err != nil {
					return err
				}
				poison[k] = append(poison[k], refused...)
				now := p.o.Now().UnixNano()
				for _, l := range chunk {
					if !strings.HasPrefix(l, "reading,") {
						continue // device status is not a sample
					}
					if ts, ok := lineTime(l); ok {
						p.m.delay.Observe(float64(now-ts) / 1e9)
					}
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return slices.Concat(poison[:]...), err
}

func recordBytes(recs []spool.Record) int64 {
	var n int64
	for _, r := range recs {
		n += int64(len(r.Data))
	}
	return n
}

// poisonLetters turns points InfluxDB refused into dead letters.
func (p *Pipeline) poisonLetters(poison []influx.Poison) []deadLetter {
	var out []deadLetter
	for _, ps := range poison {
		station := lineStation(ps.Line)
		p.o.Logger.Error("influxdb refused a point; dead-lettered", "station", station, "err", ps.Err)
		body, _ := json.Marshal(map[string]any{
			"received_at": p.o.Now().UTC().Format(time.RFC3339Nano), "topic": "", "reason": ReasonInfluxRejected,
			"level": "point", "detail": ps.Err.Error(), "payload": ps.Line,
		})
		out = append(out, deadLetter{topic: p.deadLetterTopic(station), reason: ReasonInfluxRejected, body: body})
		p.m.rejected.WithLabelValues(ReasonInfluxRejected).Inc()
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// publishDeadLetters sends every rejection at QoS 1, retrying until the
// broker has it: a rejection is data too, and is not acked away unsent.
func (p *Pipeline) publishDeadLetters(ctx context.Context, dls []deadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, dl := range dls {
		g.Go(func() error {
			for attempt := 0; ; attempt++ {
				err := p.o.DeadLetters.Publish(gctx, dl.topic, false, dl.body)
				if err == nil {
					return nil
				}
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if attempt == 0 {
					p.o.Logger.Warn("dead-letter publish failed; retrying", "topic", dl.topic, "err", err)
				}
				if err := sleep(gctx, min(100*time.Millisecond<<min(attempt, 8), 10*time.Second)); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

func (p *Pipeline) deadLetterTopic(station string) string {
	if !reading.ValidStationID(station) {
		station = "_unknown"
	}
	return p.o.TopicPrefix + "/deadletter/" + station
}

// reject records a rejection of (part of) delivery d in batch b.
func (p *Pipeline) reject(b *batch, d *Delivery, station string, r *reading.Rejection) {
	p.m.rejected.WithLabelValues(r.Reason).Inc()
	p.o.Logger.Debug("rejected", "topic", d.Topic, "reason", r.Reason, "detail", r.Detail)
	dl := struct {
		ReceivedAt string          `json:"received_at"`
		Topic      string          `json:"topic"`
		Reason     string          `json:"reason"`
		Level      reading.Level   `json:"level"`
		Detail     string          `json:"detail"`
		Payload    json.RawMessage `json:"payload,omitempty"`
		PayloadB64 string          `json:"payload_b64,omitempty"`
	}{ReceivedAt: d.Received.UTC().Format(time.RFC3339Nano), Topic: d.Topic, Reason: r.Reason, Level: r.Level, Detail: r.Detail}
	switch {
	case r.Payload != nil:
		dl.Payload = r.Payload
	case json.Valid(d.Payload) && len(d.Payload) > 0:
		dl.Payload = d.Payload
	default:
		dl.PayloadB64 = base64.StdEncoding.EncodeToString(d.Payload)
	}
	body, err := json.Marshal(dl)
	if err != nil {
		// Payload came from a JSON decoder, so it is valid; keep the bytes
		// all the same rather than lose them.
		dl.Payload, dl.PayloadB64 = nil, base64.StdEncoding.EncodeToString(d.Payload)
		body, _ = json.Marshal(dl)
	}
	b.deadLetters = append(b.deadLetters, deadLetter{topic: p.deadLetterTopic(station), reason: r.Reason, body: body})
}

// parseTopic splits {prefix}/stations/{station}/{kind}.
func (p *Pipeline) parseTopic(topic string) (station, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, p.o.TopicPrefix+"/stations/")
	if !found {
		return "", "", false
	}
	station, kind, found = strings.Cut(rest, "/")
	if !found || strings.Contains(kind, "/") {
		return "", "", false
	}
	return station, kind, true
}

// process decodes one delivery into b. buf is scratch space for line
// rendering, returned for reuse.
func (p *Pipeline) process(d Delivery, b *batch, buf []byte) []byte {
	b.acks = append(b.acks, d.Ack)
	b.received = append(b.received, d.Received)
	if strings.HasPrefix(d.Topic, HJ212TCPSource) {
		return p.processHJ212(d, nil, b, buf)
	}
	station, kind, ok := p.parseTopic(d.Topic)
	if !ok || !reading.ValidStationID(station) {
		p.rejectMessage(b, &d, station, reading.ReasonBadTopic,
			fmt.Sprintf("topic %q is not %s/stations/{station}/{readings|status|hj212}", d.Topic, p.o.TopicPrefix))
		return buf
	}
	st := p.o.Registry.Station(station)
	if st == nil {
		p.rejectMessage(b, &d, station, reading.ReasonUnknownStation, fmt.Sprintf("station %q is not in the registry", station))
		return buf
	}
	if kind == "readings" {
		// A device saying it is offline (its last will) is not a sign of life.
		buf = p.heard(p.state[st.ID], b, d.Received, buf)
	}
	switch kind {
	case "readings":
		return p.processReadings(d, st, b, buf)
	case "status":
		return p.processStatus(d, st, b, buf)
	case "hj212":
		return p.processHJ212(d, st, b, buf)
	default:
		p.rejectMessage(b, &d, station, reading.ReasonBadTopic, fmt.Sprintf("unknown message kind %q", kind))
	}
	return buf
}

func (p *Pipeline) rejectMessage(b *batch, d *Delivery, station, reason, detail string) {
	p.m.msgRejected.Inc()
	p.reject(b, d, station, &reading.Rejection{Level: reading.LevelMessage, Reason: reason, Detail: detail})
}

func (p *Pipeline) processReadings(d Delivery, st *registry.Station, b *batch, buf []byte) []byte {
	m, rejs := reading.DecodeMessage(d.Payload, d.Received)
	if m == nil {
		p.m.msgRejected.Inc()
		p.reject(b, &d, st.ID, &rejs[0])
		return buf
	}
	if m.Station != st.ID {
		p.rejectMessage(b, &d, st.ID, reading.ReasonStationMismatch,
			fmt.Sprintf("payload station %q differs from topic station %q", m.Station, st.ID))
		return buf
	}
	for i := range rejs {
		p.reject(b, &d, st.ID, &rejs[i])
		if rejs[i].Level == reading.LevelSample {
			p.m.samplesRejected.Inc()
		}
	}
	if m.HasSeq {
		gap, repeat := p.stations.seq(st.ID, m.Seq)
		if gap > 0 {
			p.m.seqGaps.Add(float64(gap))
		}
		if repeat {
			p.m.seqRepeats.Inc()
		}
	}
	if len(rejs) == 0 {
		p.m.msgAccepted.Inc()
	} else {
		p.m.msgPartial.Inc()
	}
	if len(m.Samples) == 0 {
		return buf
	}
	return p.storeSamples(st, m.Samples, nil, d, b, buf)
}

// storeSamples assesses samples of one message and adds their points to
// the batch. forced holds, per sample, QC flags the device imposed (HJ 212
// data flags); nil when none.
func (p *Pipeline) storeSamples(st *registry.Station, samples []reading.Sample, forced []map[string]int, d Delivery, b *batch, buf []byte) []byte {
	s := p.state[st.ID]
	var newest *assessed
	// Accounts of days to write. A backlog reopening a closed day has its
	// account written once, with every sample of the message in it.
	var days []hydro.Day
	var reopened []time.Time
	put := func(d hydro.Day) {
		if k := slices.IndexFunc(days, func(e hydro.Day) bool { return e.Start.Equal(d.Start) }); k >= 0 {
			days[k] = d
		} else {
			days = append(days, d)
		}
	}
	// account writes the reopened days as they are now.
	account := func() {
		for _, day := range reopened {
			if acc, ok := s.days.Account(day); ok {
				put(acc)
			}
		}
		reopened = reopened[:0]
	}
	for i := range samples {
		var f map[string]int
		if forced != nil {
			f = forced[i]
		}
		if len(reopened) > 0 {
			// A sample of a later day may push a reopened day out of
			// the days kept: account for it first.
			if day := s.days.DayStart(samples[i].Time); slices.ContainsFunc(reopened, day.After) {
				account()
			}
		}
		a := p.assessForced(s, &samples[i], f, false)
		buf = readingLine(buf[:0], s.reading, &a)
		b.lines = append(b.lines, string(buf))
		for _, r := range a.revisions {
			buf = revisionLine(buf[:0], s.reading, r)
			b.lines = append(b.lines, string(buf))
		}
		for _, d := range a.eflow {
			put(d)
		}
		if !a.reopened.IsZero() && !slices.ContainsFunc(reopened, a.reopened.Equal) {
			reopened = append(reopened, a.reopened)
		}
		if p.o.Observer != nil {
			b.observed = s.observe(b.observed, &a, d.Received)
		}
		if newest == nil || !a.sample.Time.Before(newest.sample.Time) {
			newest = &a
		}
	}
	account()
	for _, d := range days {
		buf = eflowLine(buf[:0], st.ID, st.River, d)
		b.lines = append(b.lines, string(buf))
	}
	p.m.samplesStored.Add(float64(len(samples)))
	u := update{station: st.ID, received: d.Received, sample: newest.sample, flags: newest.flags, wqClass: newest.wqClass}
	if newest.hasRated {
		u.rated, u.ratedFlag, u.hasRated = newest.rated, newest.ratedFlag, true
	}
	if s.days != nil {
		if acc, ok := s.days.Account(s.days.DayStart(p.o.Now())); ok {
			u.today = &acc
		}
	}
	b.updates = append(b.updates, u)
	return buf
}

// heard notes a message from a station; one that was marked offline for
// its silence is online again.
func (p *Pipeline) heard(s *station, b *batch, now time.Time, buf []byte) []byte {
	s.heard = now
	if !s.silenced {
		return buf
	}
	s.silenced = false
	st := &reading.Status{Online: true}
	buf = statusLine(buf[:0], s.reg.ID, s.reg.River, st, now)
	b.lines = append(b.lines, string(buf))
	b.updates = append(b.updates, update{station: s.reg.ID, received: now, status: st, statusTime: now})
	return buf
}

// sweep runs on the wall clock: a station silent for three reporting
// intervals is marked offline (station_status online=false), and the
// ecological-flow days that ended more than EflowGrace ago are closed.
func (p *Pipeline) sweep(b *batch, buf []byte) []byte {
	now := p.o.Now()
	var silenced []string
	for i := range p.o.Registry.Stations {
		s := p.state[p.o.Registry.Stations[i].ID]
		if !s.silenced && now.Sub(s.heard) > 3*time.Duration(s.reg.Interval) {
			s.silenced = true
			st := &reading.Status{Online: false}
			buf = statusLine(buf[:0], s.reg.ID, s.reg.River, st, now)
			b.lines = append(b.lines, string(buf))
			b.updates = append(b.updates, update{station: s.reg.ID, received: now, status: st, statusTime: now})
			silenced = append(silenced, s.reg.ID)
		}
		if s.days != nil {
			for _, d := range s.days.Close(s.days.DayStart(now.Add(-p.o.EflowGrace))) {
				buf = eflowLine(buf[:0], s.reg.ID, s.reg.River, d)
				b.lines = append(b.lines, string(buf))
			}
		}
		if p.o.Observer != nil {
			b.observed = s.releaseStale(b.observed, now)
		}
	}
	if len(silenced) > 0 {
		// One line per sweep, not one per station: at 10,000 stations a
		// broker outage would otherwise flood the log.
		shown := silenced[:min(len(silenced), 10)]
		p.o.Logger.Warn("stations silent for three reporting intervals; marked offline",
			"count", len(silenced), "stations", strings.Join(shown, ","), "more", len(silenced)-len(shown))
	}
	if now.Sub(p.lastState) >= p.o.StateEvery {
		p.lastState = now
		for _, v := range p.stations.Snapshot() {
			level := 0
			if p.o.AlertLevel != nil {
				level = p.o.AlertLevel(v.ID)
			}
			buf = stateLine(buf[:0], p.o.Registry.Station(v.ID), &v, level, now)
			b.lines = append(b.lines, string(buf))
		}
	}
	return buf
}

func (p *Pipeline) processStatus(d Delivery, st *registry.Station, b *batch, buf []byte) []byte {
	s, rej := reading.DecodeStatus(d.Payload, d.Received)
	if rej != nil {
		p.m.msgRejected.Inc()
		p.reject(b, &d, st.ID, rej)
		return buf
	}
	t := d.Received
	if s.HasTime {
		t = s.Time
	}
	if s.Online {
		// A station reporting itself online is alive; its last will
		// ({"online": false}) is not a sign of life.
		state := p.state[st.ID]
		state.heard, state.silenced = d.Received, false
	}
	buf = statusLine(buf[:0], st.ID, st.River, s, t)
	b.lines = append(b.lines, string(buf))
	p.m.msgAccepted.Inc()
	if p.o.Observer != nil {
		obs := StoredSample{Station: st.ID, Time: t, Received: d.Received}
		for _, f := range []struct {
			code string
			v    *float64
		}{{"battery_v", s.BatteryV}, {"signal_dbm", s.SignalDBm}, {"enclosure_temp_c", s.EnclosureTempC}} {
			if f.v != nil {
				obs.Values = append(obs.Values, StoredValue{f.code, *f.v, int(quality.NotEvaluated)})
			}
		}
		// Values, or a station saying it is online: a sign of life.
		if len(obs.Values) > 0 || s.Online {
			b.observed = append(b.observed, obs)
		}
	}
	b.updates = append(b.updates, update{station: st.ID, received: d.Received, status: s, statusTime: t})
	return buf
}
