package ingest

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/run"
)

// PointWriter stores line protocol; see influx.Writer.Write.
type PointWriter interface {
	Write(ctx context.Context, lines []string) ([]influx.Poison, error)
}

// Publisher sends a message at QoS 1 and waits for the broker's PUBACK.
type Publisher interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
}

// Output is one InfluxDB server: every point goes to every output.
type Output struct {
	// Name is the output's, in metrics, dead letters and its spool reader
	// (journal.OutputReader).
	Name   string
	Writer PointWriter
}

// DeliveryOptions configure a Delivery.
type DeliveryOptions struct {
	Journal *journal.Journal
	// Outputs store the points (InfluxDB servers), each from its own
	// position in the journal, at its own pace.
	Outputs []Output
	// DeadLetters publishes the rejections (the broker), once whatever
	// the number of outputs.
	DeadLetters Publisher
	TopicPrefix string
	// MaxBatchPoints caps the points of one write (default 5000).
	MaxBatchPoints int
	// FlushEvery is how long delivery gathers records when few are
	// waiting, so that a trickle of readings becomes one write to InfluxDB
	// rather than one per message (default 50 ms; negative: never wait).
	FlushEvery time.Duration
	// DrainTimeout bounds how long Run goes on after its context ends
	// (default 3 s): delivery goes on until the journal is empty or the
	// time is up; what is left stays in the spool for the next start.
	DrainTimeout time.Duration
	Metrics      *Metrics
	Logger       *slog.Logger
	Now          func() time.Time
	// Stations, when set, counts the points InfluxDB refused among their
	// stations' dead letters (the stream counts the others).
	Stations *Stations
}

// Delivery is the last stage: it writes the journal to every InfluxDB
// output in order, each output from its own position and with its own
// retries, so that one down holds back neither the others nor
// acknowledgement (until the spool is full); it publishes the dead
// letters once, from a position of their own; the journal forgets a
// record once all have it. An InfluxDB outage only grows the journal, and
// a restart resumes each output where it was. A redelivery or a replay
// rewrites the same points, which InfluxDB stores once (same series and
// timestamp).
type Delivery struct {
	o DeliveryOptions
	m *Metrics
}

// outputDelivery is one output's loop and what it reuses from one round to
// the next (its goroutine's only).
type outputDelivery struct {
	*Delivery
	out    Output
	reader string
	delay  prometheus.Observer
	parts  [writers][]*journal.Entry
	lines  [writers][]string
}

// NewDelivery returns a Delivery; Run starts it.
func NewDelivery(o DeliveryOptions) *Delivery {
	if o.MaxBatchPoints <= 0 {
		o.MaxBatchPoints = 5000
	}
	if o.FlushEvery == 0 {
		o.FlushEvery = 50 * time.Millisecond
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 3 * time.Second
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Delivery{o: o, m: o.Metrics}
}

// Run delivers until ctx ends, then until the journal is empty, for at most
// DrainTimeout, and returns nil.
func (d *Delivery) Run(ctx context.Context) error {
	work, stop := run.Grace(ctx, d.o.DrainTimeout)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1 + len(d.o.Outputs))
	go func() {
		defer wg.Done()
		d.publish(work)
	}()
	for _, out := range d.o.Outputs {
		od := &outputDelivery{Delivery: d, out: out, reader: journal.OutputReader(out.Name),
			delay: d.m.delay.WithLabelValues(out.Name)}
		go func() {
			defer wg.Done()
			od.deliver(work)
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-ctx.Done():
		_ = d.o.Journal.Drained(work)
	case <-done:
	}
	stop()
	<-done
	return nil
}

// maxRead bounds what one round reads from the journal.
const maxRead = 8 << 20

// read returns the records after the reader's position, waiting for one,
// and gathering more for FlushEvery when few are waiting.
func (d *Delivery) read(ctx context.Context, after uint64) ([]spool.Record, error) {
	j := d.o.Journal
	recs, err := j.Read(ctx, after, maxRead)
	if err != nil {
		return nil, err
	}
	if size := recordBytes(recs); d.o.FlushEvery > 0 && size < maxRead/8 {
		// Little is waiting: gather a while longer.
		if run.Sleep(ctx, d.o.FlushEvery) == nil {
			// An error here comes back from the next Read.
			if more, err := j.Peek(recs[len(recs)-1].Seq, maxRead-size); err == nil {
				recs = append(recs, more...)
			}
		}
	}
	return recs, nil
}

// deliver writes the output's records in order until ctx ends.
func (od *outputDelivery) deliver(ctx context.Context) {
	j := od.o.Journal
	after := j.Position(od.reader)
	var rec journal.Record
	trimFailed := false
	for {
		recs, err := od.read(ctx, after)
		if err != nil {
			return
		}
		rec.Reset()
		for _, r := range recs {
			if err := journal.Decode(r.Data, &rec, false); err != nil {
				// Only a bug writes such a record (the spool checked its
				// bytes): say so loudly, keep the file, go on.
				od.o.Logger.Error("skipping a spool record that does not decode", "output", od.out.Name, "seq", r.Seq, "err", err)
			}
		}
		poison, err := od.write(ctx, rec.Entries)
		if err != nil {
			return
		}
		// The record's own dead letters are the publisher's; the points
		// this output refused are this output's.
		if err := od.publishDeadLetters(ctx, od.poisonLetters(poison)); err != nil {
			return
		}
		after = recs[len(recs)-1].Seq
		err = j.Delivered(od.reader, after)
		if err != nil && !trimFailed {
			od.o.Logger.Error("cannot save the output's position in the spool; its records may be written again after a restart", "output", od.out.Name, "err", err)
		}
		trimFailed = err != nil
	}
}

// publish sends the journal's dead letters in order until ctx ends.
func (d *Delivery) publish(ctx context.Context) {
	j := d.o.Journal
	after := j.Position(journal.DeadLetterReader)
	var rec journal.Record
	trimFailed := false
	for {
		recs, err := d.read(ctx, after)
		if err != nil {
			return
		}
		rec.Reset()
		for _, r := range recs {
			if err := journal.DecodeDeadLetters(r.Data, &rec); err != nil {
				d.o.Logger.Error("skipping a spool record that does not decode", "seq", r.Seq, "err", err)
			}
		}
		if err := d.publishDeadLetters(ctx, rec.DeadLetters); err != nil {
			return
		}
		after = recs[len(recs)-1].Seq
		err = j.Delivered(journal.DeadLetterReader, after)
		if err != nil && !trimFailed {
			d.o.Logger.Error("cannot save the dead letters' position in the spool; they may be published again after a restart", "err", err)
		}
		trimFailed = err != nil
	}
}

// writers is how many writes to InfluxDB delivery keeps going at once: two
// let InfluxDB use both cores of a small server while rivermon prepares the
// next round.
const writers = 2

// refused is a point InfluxDB refused, with its entry.
type refused struct {
	entry *journal.Entry
	err   error
}

// write stores the entries' points, the stations split between the writers
// so that each station's points (a reading, then the revision of its QC
// flag) arrive in their order. It returns when all are stored or refused.
func (od *outputDelivery) write(ctx context.Context, entries []journal.Entry) ([]refused, error) {
	parts := &od.parts
	for k := range parts {
		clear(parts[k])
		parts[k] = parts[k][:0]
	}
	for i := range entries {
		e := &entries[i]
		k := 0
		if e.Station != "" {
			k = int(crc32.ChecksumIEEE([]byte(e.Station)) % writers)
		}
		parts[k] = append(parts[k], e)
	}
	var out [writers][]refused
	g, gctx := errgroup.WithContext(ctx)
	for k, part := range parts {
		g.Go(func() error {
			lines := od.lines[k][:0]
			defer func() { clear(lines); od.lines[k] = lines[:0] }()
			for start := 0; start < len(part); start += od.o.MaxBatchPoints {
				chunk := part[start:min(start+od.o.MaxBatchPoints, len(part))]
				lines = lines[:0]
				for _, e := range chunk {
					lines = append(lines, e.Line)
				}
				poison, err := od.out.Writer.Write(gctx, lines)
				if err != nil {
					return err
				}
				out[k] = appendRefused(out[k], chunk, poison)
				now := od.o.Now()
				for _, e := range chunk {
					if e.Kind == journal.KindReading {
						od.delay.Observe(now.Sub(e.Time).Seconds())
					}
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return slices.Concat(out[:]...), err
}

// appendRefused finds the entries of the lines InfluxDB refused.
func appendRefused(out []refused, chunk []*journal.Entry, poison []influx.Poison) []refused {
	if len(poison) == 0 {
		return out
	}
	byLine := make(map[string]*journal.Entry, len(chunk))
	for _, e := range chunk {
		byLine[e.Line] = e
	}
	for _, p := range poison {
		e := byLine[p.Line]
		if e == nil {
			e = &journal.Entry{Line: p.Line}
		}
		out = append(out, refused{entry: e, err: p.Err})
	}
	return out
}

func recordBytes(recs []spool.Record) int64 {
	var n int64
	for _, r := range recs {
		n += int64(len(r.Data))
	}
	return n
}

// poisonLetters turns points the output refused into dead letters, which
// name it: another output may have taken them.
func (od *outputDelivery) poisonLetters(rs []refused) []journal.DeadLetter {
	var out []journal.DeadLetter
	d := od.Delivery
	for _, r := range rs {
		d.o.Logger.Error("influxdb refused a point; dead-lettered", "output", od.out.Name, "station", r.entry.Station, "source", r.entry.Source, "err", r.err)
		body, _ := json.Marshal(map[string]any{
			"received_at": d.o.Now().UTC().Format(time.RFC3339Nano), "topic": "", "reason": ReasonInfluxRejected,
			"level": "point", "output": od.out.Name, "detail": "influx output " + od.out.Name + ": " + r.err.Error(), "payload": r.entry.Line,
		})
		out = append(out, journal.DeadLetter{Topic: deadLetterTopic(d.o.TopicPrefix, r.entry.Station), Reason: ReasonInfluxRejected, Body: body})
		d.m.rejected.WithLabelValues(ReasonInfluxRejected).Inc()
	}
	if d.o.Stations != nil {
		d.o.Stations.deadLettered(out, d.o.Now())
	}
	return out
}

// publishDeadLetters sends every rejection at QoS 1, retrying until the
// broker has it: a rejection is data too, and is not acked away unsent.
func (d *Delivery) publishDeadLetters(ctx context.Context, dls []journal.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, dl := range dls {
		g.Go(func() error {
			for attempt := 0; ; attempt++ {
				err := d.o.DeadLetters.Publish(gctx, dl.Topic, false, dl.Body)
				if err == nil {
					return nil
				}
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if attempt == 0 {
					d.o.Logger.Warn("dead-letter publish failed; retrying", "topic", dl.Topic, "err", err)
				}
				if err := run.Sleep(gctx, run.Backoff(attempt)); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}
