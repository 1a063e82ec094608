package ingest

import (
	"context"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"slices"
	"time"

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

// DeliveryOptions configure a Delivery.
type DeliveryOptions struct {
	Journal *journal.Journal
	// Writer stores the points (InfluxDB).
	Writer PointWriter
	// DeadLetters publishes the rejections (the broker).
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

// Delivery is the last stage: it writes the journal to InfluxDB in order,
// publishes its dead letters, and trims what is done. An InfluxDB outage
// only grows the journal, and a restart resumes from it. A redelivery or a
// replay rewrites the same points, which InfluxDB stores once (same series
// and timestamp).
type Delivery struct {
	o DeliveryOptions
	m *Metrics
	// Arrays reused from one round to the next (deliver's goroutine).
	parts [writers][]*journal.Entry
	lines [writers][]string
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
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.deliver(work)
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

// deliver writes records in order until ctx ends.
func (d *Delivery) deliver(ctx context.Context) {
	j := d.o.Journal
	after := j.Trimmed()
	var rec journal.Record
	for {
		const maxRead = 8 << 20
		recs, err := j.Read(ctx, after, maxRead)
		if err != nil {
			return
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
		rec.Reset()
		for _, r := range recs {
			if err := journal.Decode(r.Data, &rec, false); err != nil {
				// Only a bug writes such a record (the spool checked its
				// bytes): say so loudly, keep the file, go on.
				d.o.Logger.Error("skipping a spool record that does not decode", "seq", r.Seq, "err", err)
			}
		}
		poison, err := d.write(ctx, rec.Entries)
		if err != nil {
			return
		}
		dls := append(rec.DeadLetters, d.poisonLetters(poison)...)
		if err := d.publishDeadLetters(ctx, dls); err != nil {
			return
		}
		after = recs[len(recs)-1].Seq
		if err := j.Trim(after); err != nil {
			d.o.Logger.Error("cannot trim the spool; delivered records may be sent again after a restart", "err", err)
		}
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
func (d *Delivery) write(ctx context.Context, entries []journal.Entry) ([]refused, error) {
	parts := &d.parts
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
			lines := d.lines[k][:0]
			defer func() { clear(lines); d.lines[k] = lines[:0] }()
			for start := 0; start < len(part); start += d.o.MaxBatchPoints {
				chunk := part[start:min(start+d.o.MaxBatchPoints, len(part))]
				lines = lines[:0]
				for _, e := range chunk {
					lines = append(lines, e.Line)
				}
				poison, err := d.o.Writer.Write(gctx, lines)
				if err != nil {
					return err
				}
				out[k] = appendRefused(out[k], chunk, poison)
				now := d.o.Now()
				for _, e := range chunk {
					if e.Kind == journal.KindReading {
						d.m.delay.Observe(now.Sub(e.Time).Seconds())
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

// poisonLetters turns points InfluxDB refused into dead letters.
func (d *Delivery) poisonLetters(rs []refused) []journal.DeadLetter {
	var out []journal.DeadLetter
	for _, r := range rs {
		d.o.Logger.Error("influxdb refused a point; dead-lettered", "station", r.entry.Station, "source", r.entry.Source, "err", r.err)
		body, _ := json.Marshal(map[string]any{
			"received_at": d.o.Now().UTC().Format(time.RFC3339Nano), "topic": "", "reason": ReasonInfluxRejected,
			"level": "point", "detail": r.err.Error(), "payload": r.entry.Line,
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
