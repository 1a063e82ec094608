// Package journal is the durable log between acknowledgement and storage:
// records of points (each with its station, time and source beside the
// rendered line) and dead letters, appended by whoever produced them (the
// intake's batches, the alert history, the station_state snapshots) and
// read in order by delivery. It sits on package spool, which frames,
// checksums and fsyncs the bytes.
package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/run"
)

// Options configure a Journal.
type Options struct {
	// MaxBytes bounds the records not yet delivered, spool headers
	// included (default 1 GiB): at the bound, appends wait (Append) or are
	// refused (Add) until delivery frees room.
	MaxBytes int64
	Logger   *slog.Logger
	// Registerer, when set, gets rivermon_spool_bytes, rivermon_spool_full
	// and rivermon_influx_backlog_bytes{output}.
	Registerer prometheus.Registerer
}

// Journal is the spool seen as records.
type Journal struct {
	log  *spool.Log
	max  int64
	lg   *slog.Logger
	full prometheus.Gauge

	mu sync.Mutex
	// Why appends are not being made: the spool refused a write (notWritable
	// holds its error), or a record of waiting bytes waits for room.
	notWritable string
	waiting     int64
}

// The journal's readers, each with its own position in the spool: every
// InfluxDB output, and the publisher of dead letters (which are published
// once, whatever the number of outputs).
const DeadLetterReader = "deadletters"

// PeriodsReader is the statistics stage's reader (ingest.Periods): it
// marks the periods the records touch.
const PeriodsReader = "periods"

// OutputReader is the name of InfluxDB output's reader.
func OutputReader(output string) string { return "influx-" + output }

// Readers returns the readers of a journal writing to outputs: the spool
// is opened with them.
func Readers(outputs []string) []string {
	out := []string{DeadLetterReader}
	for _, o := range outputs {
		out = append(out, OutputReader(o))
	}
	return out
}

// describe says who reader is, for an operator.
func describe(reader string) string {
	if o, ok := strings.CutPrefix(reader, "influx-"); ok {
		return "influx output " + o
	}
	if reader == DeadLetterReader {
		return "the broker (dead letters)"
	}
	if reader == PeriodsReader {
		return "the statistics"
	}
	return reader
}

// ErrFull is returned by Add when the journal is at its bound.
var ErrFull = errors.New("spool full")

// New returns the journal over an open spool.
func New(l *spool.Log, o Options) *Journal {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 1 << 30
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	j := &Journal{log: l, max: o.MaxBytes, lg: o.Logger,
		full: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rivermon_spool_full",
			Help: "1 while the spool is at spool.max_bytes and rivermon does not acknowledge messages.",
		}),
	}
	if o.Registerer != nil {
		// Read when scraped: the figure is the spool's at that moment.
		bytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rivermon_spool_bytes",
			Help: "Bytes in the spool not yet delivered to InfluxDB (spool headers included; at most spool.max_bytes).",
		}, func() float64 { return float64(l.Bytes()) })
		o.Registerer.MustRegister(bytes, j.full)
		for _, r := range l.Readers() {
			output, ok := strings.CutPrefix(r, "influx-")
			if !ok {
				continue
			}
			o.Registerer.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "rivermon_influx_backlog_bytes",
				Help:        "Bytes in the spool this InfluxDB output has not written yet (the spool keeps them for it).",
				ConstLabels: prometheus.Labels{"output": output},
			}, func() float64 { return float64(l.Behind(r)) }))
		}
	}
	return j
}

// Problem says why records are not appended now (spool full, spool not
// writable), or "" when all is well. The figures are those of the moment.
func (j *Journal) Problem() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.notWritable != "":
		return "spool not writable: " + j.notWritable
	case j.waiting > 0:
		return fmt.Sprintf("spool full (%d of %d bytes; a record of %d bytes waits): not acknowledging until %s takes its backlog",
			j.log.Bytes(), j.max, j.waiting, describe(j.slowest()))
	}
	return ""
}

// slowest is the reader furthest behind.
func (j *Journal) slowest() string {
	var who string
	var most int64 = -1
	for _, r := range j.log.Readers() {
		if b := j.log.Behind(r); b > most {
			who, most = r, b
		}
	}
	return who
}

// Append makes rec durable. It waits while the spool has no room for it
// and retries while the disk refuses writes, until ctx ends: whoever waits
// on it (the intake) is then not acknowledging, and the broker keeps the
// messages (CONTRACT §7).
//
// A record larger than a quarter of the bound is stored as several, so
// that it never needs more room than the bound has and acknowledgement
// does not wait for an empty spool; so is one the disk refuses although
// the spool has given back all its space (a disk with less room left than
// the record). The pieces are appended in order; the caller acknowledges
// once all are durable (a crash between them leaves the first ones to be
// delivered and the messages to be sent again: duplicates, which InfluxDB
// stores once).
func (j *Journal) Append(ctx context.Context, rec *Record) error {
	if rec.Empty() {
		return nil
	}
	return j.appendRecord(ctx, rec, Encode(rec))
}

// errSplit asks appendRecord to store a record in two halves.
var errSplit = errors.New("journal: record to be split")

// appendRecord stores r, encoded as data (nil: not yet), as one record or
// as halves, each split again as needed.
func (j *Journal) appendRecord(ctx context.Context, r *Record, data []byte) error {
	if data == nil {
		data = Encode(r)
	}
	n := len(r.Entries) + len(r.DeadLetters)
	err := errSplit
	if n <= 1 || int64(len(data)+spool.HeaderBytes) <= j.max/4 {
		err = j.append(ctx, data, n > 1)
	}
	if !errors.Is(err, errSplit) {
		return err
	}
	half := n / 2
	var a, b Record
	if half <= len(r.Entries) {
		a.Entries, b.Entries, b.DeadLetters = r.Entries[:half], r.Entries[half:], r.DeadLetters
	} else {
		k := half - len(r.Entries)
		a.Entries, a.DeadLetters, b.DeadLetters = r.Entries, r.DeadLetters[:k], r.DeadLetters[k:]
	}
	if err := j.appendRecord(ctx, &a, nil); err != nil {
		return err
	}
	return j.appendRecord(ctx, &b, nil)
}

// append stores one record, waiting for room and retrying disk faults.
// When the disk refuses a record although the spool holds nothing (it has
// given back every segment it could), a splittable one is handed back with
// errSplit: a smaller record may fit where it does not.
func (j *Journal) append(ctx context.Context, data []byte, splittable bool) error {
	size := int64(len(data) + spool.HeaderBytes)
	bound := j.max
	if size > bound {
		// One dead letter (of a message over 1 MiB, with max_bytes at
		// 1 MiB) can be larger than the bound by itself: it goes into an
		// empty spool, alone, rather than block acknowledgement for ever.
		bound = size
		j.lg.Warn("a spool record is larger than spool.max_bytes; it waits for an empty spool and is stored alone", "bytes", size, "max_bytes", j.max)
	}
	for attempt := 0; ; {
		_, err := j.log.AppendWithin(data, bound)
		if err == nil {
			break
		}
		if errors.Is(err, spool.ErrFull) {
			j.setWaiting(size)
			if err := j.log.WaitBelow(ctx, bound, size); err != nil {
				j.setWaiting(0)
				return err
			}
			// Room now, unless another writer (Add) takes it first: try.
			continue
		}
		// A disk fault: nothing is acked until the spool takes writes
		// again; the broker holds the messages meanwhile. A full disk
		// gets room back when delivery has taken everything (the spool
		// then gives back its segment): try again at once then.
		freed := j.log.Freed()
		j.mu.Lock()
		was := j.notWritable
		j.notWritable = err.Error()
		j.mu.Unlock()
		if was != err.Error() {
			j.lg.Error("cannot write the spool; not acknowledging", "err", err)
		}
		if splittable && j.log.Bytes() == 0 {
			return errSplit
		}
		t := time.NewTimer(run.Backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		case <-freed:
			t.Stop()
		}
		attempt++
	}
	j.setWaiting(0)
	j.mu.Lock()
	was := j.notWritable
	j.notWritable = ""
	j.mu.Unlock()
	if was != "" {
		j.lg.Info("spool writable again; acknowledging")
	}
	return nil
}

// setWaiting records that a record of size bytes waits for room (0: none
// does), and says so when that changes.
func (j *Journal) setWaiting(size int64) {
	j.mu.Lock()
	was := j.waiting
	j.waiting = size
	j.mu.Unlock()
	switch {
	case was == 0 && size > 0:
		j.full.Set(1)
		j.lg.Error(j.Problem())
	case was > 0 && size == 0:
		j.full.Set(0)
		j.lg.Info("spool has room again; acknowledging", "bytes", j.log.Bytes())
	}
}

// Add makes rec durable if the spool has room for it, at once: what its
// owner (alert history, station_state) cannot store now it keeps or
// writes again later. It returns ErrFull at the bound.
func (j *Journal) Add(rec *Record) error {
	if rec.Empty() {
		return nil
	}
	_, err := j.log.AppendWithin(Encode(rec), j.max)
	if errors.Is(err, spool.ErrFull) {
		return fmt.Errorf("%w (%d of %d bytes)", ErrFull, j.log.Bytes(), j.max)
	}
	return err
}

// Read waits for records after seq and returns them, up to about maxBytes;
// Peek does not wait. Decode them with Decode.
func (j *Journal) Read(ctx context.Context, after uint64, maxBytes int64) ([]spool.Record, error) {
	return j.log.Read(ctx, after, maxBytes)
}

// Peek returns the records after seq that are there now.
func (j *Journal) Peek(after uint64, maxBytes int64) ([]spool.Record, error) {
	return j.log.Peek(after, maxBytes)
}

// Position is the sequence number through which reader has taken the
// records.
func (j *Journal) Position(reader string) uint64 { return j.log.Position(reader) }

// Delivered records that reader has taken every record through seq; the
// spool forgets a record once every reader has it.
func (j *Journal) Delivered(reader string, seq uint64) error { return j.log.Advance(reader, seq) }

// Behind is the size of the records reader has not taken yet.
func (j *Journal) Behind(reader string) int64 { return j.log.Behind(reader) }

// Trimmed is the sequence number through which every reader has the
// records.
func (j *Journal) Trimmed() uint64 { return j.log.Trimmed() }

// Last is the sequence number of the newest record: a reader whose
// Position has reached it has every record appended so far.
func (j *Journal) Last() uint64 { return j.log.Last() }

// Bytes is the size of what is not delivered yet (to every reader).
func (j *Journal) Bytes() int64 { return j.log.Bytes() }

// Drained waits until every record is delivered, or ctx ends.
func (j *Journal) Drained(ctx context.Context) error { return j.log.WaitBelow(ctx, 0, 0) }

// Readings calls fn with every sample the journal holds that reader has
// not taken, in journal order, with the values it was received with: a
// restart feeds them to the QC windows after those read back from the
// InfluxDB output reader writes to.
func (j *Journal) Readings(reader string, fn func(e *Entry)) {
	after := j.log.Position(reader)
	var rec Record
	for {
		recs, err := j.log.Peek(after, 8<<20)
		if err != nil || len(recs) == 0 {
			return
		}
		for _, r := range recs {
			after = r.Seq
			rec.Reset()
			if err := Decode(r.Data, &rec, true); err != nil {
				j.lg.Error("a spool record does not decode; its samples are not in the rebuilt state", "seq", r.Seq, "err", err)
				continue
			}
			for i := range rec.Entries {
				if e := &rec.Entries[i]; e.Kind == KindReading && len(e.Values) > 0 {
					fn(e)
				}
			}
		}
	}
}
