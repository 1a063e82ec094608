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
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/run"
)

// Options configure a Journal.
type Options struct {
	// MaxBytes is the size at which appends wait (Append) or are refused
	// (Add) until delivery frees room (default 1 GiB).
	MaxBytes int64
	Logger   *slog.Logger
	// Registerer, when set, gets rivermon_spool_bytes and rivermon_spool_full.
	Registerer prometheus.Registerer
}

// Journal is the spool seen as records.
type Journal struct {
	log   *spool.Log
	max   int64
	lg    *slog.Logger
	bytes prometheus.Gauge
	full  prometheus.Gauge

	mu      sync.Mutex
	problem string // why appends are not being made, "" when they are
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
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rivermon_spool_bytes",
			Help: "Bytes in the spool not yet delivered to InfluxDB.",
		}),
		full: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rivermon_spool_full",
			Help: "1 while the spool is at spool.max_bytes and rivermon does not acknowledge messages.",
		}),
	}
	j.bytes.Set(float64(l.Bytes()))
	if o.Registerer != nil {
		o.Registerer.MustRegister(j.bytes, j.full)
	}
	return j
}

// Problem says why records are not appended now (spool full, spool not
// writable), or "" when all is well.
func (j *Journal) Problem() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.problem
}

func (j *Journal) setProblem(s string) {
	j.mu.Lock()
	j.problem = s
	j.mu.Unlock()
}

// Append makes rec durable. It waits while the spool is at its bound and
// retries while the disk refuses writes, until ctx ends: whoever waits on
// it (the intake) is then not acknowledging, and the broker keeps the
// messages (CONTRACT §7).
func (j *Journal) Append(ctx context.Context, rec *Record) error {
	if rec.Empty() {
		return nil
	}
	data := Encode(rec)
	if err := j.waitForRoom(ctx, int64(len(data))); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err := j.log.Append(data)
		if err == nil {
			break
		}
		// A disk fault: nothing is acked until the spool takes writes
		// again; the broker holds the messages meanwhile.
		j.setProblem("spool not writable: " + err.Error())
		j.lg.Error("cannot write the spool; not acknowledging", "err", err)
		if err := run.Sleep(ctx, run.Backoff(attempt)); err != nil {
			return err
		}
	}
	if j.Problem() != "" {
		j.setProblem("")
		j.lg.Info("spool writable again; acknowledging")
	}
	j.bytes.Set(float64(j.log.Bytes()))
	return nil
}

// Add makes rec durable if the spool has room for it, at once: what its
// owner (alert history, station_state) cannot store now it keeps or
// writes again later. It returns ErrFull at the bound.
func (j *Journal) Add(rec *Record) error {
	if rec.Empty() {
		return nil
	}
	data := Encode(rec)
	if n := j.log.Bytes(); n > 0 && n+int64(len(data)) > j.max {
		return fmt.Errorf("%w (%d of %d bytes)", ErrFull, n, j.max)
	}
	if _, err := j.log.Append(data); err != nil {
		return err
	}
	j.bytes.Set(float64(j.log.Bytes()))
	return nil
}

// waitForRoom blocks while the spool is at its size limit.
func (j *Journal) waitForRoom(ctx context.Context, size int64) error {
	sp := j.log
	if sp.Bytes() == 0 || sp.Bytes()+size <= j.max {
		return nil
	}
	msg := fmt.Sprintf("spool full (%d of %d bytes): not acknowledging until InfluxDB takes the backlog", sp.Bytes(), j.max)
	j.setProblem(msg)
	j.full.Set(1)
	j.lg.Error(msg)
	err := sp.WaitBelow(ctx, j.max, size)
	j.full.Set(0)
	j.setProblem("")
	if err == nil {
		j.lg.Info("spool has room again; acknowledging", "bytes", sp.Bytes())
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

// Trimmed is the sequence number through which records are delivered.
func (j *Journal) Trimmed() uint64 { return j.log.Trimmed() }

// Trim marks records through seq delivered.
func (j *Journal) Trim(seq uint64) error {
	err := j.log.Trim(seq)
	j.bytes.Set(float64(j.log.Bytes()))
	return err
}

// Bytes is the size of what is not delivered yet.
func (j *Journal) Bytes() int64 { return j.log.Bytes() }

// Drained waits until every record is delivered, or ctx ends.
func (j *Journal) Drained(ctx context.Context) error { return j.log.WaitBelow(ctx, 1, 0) }

// Readings calls fn with every sample the journal holds undelivered, in
// journal order, with the values it was received with: a restart feeds
// them to the QC windows after those read back from InfluxDB.
func (j *Journal) Readings(fn func(e *Entry)) {
	after := uint64(0)
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
