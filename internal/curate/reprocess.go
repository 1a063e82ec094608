package curate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// A reprocess (CONTRACT §12) rates the stored stages of a station again
// after a rating version or a shift was added for the past. It reads the
// stored `reading` points a batch (a day) at a time and writes the rated
// flows that change as journal entries of kind KindCorrected, so that
// delivery stores them in every InfluxDB output in order and the stage
// that recomputes ecological-flow days and statistics sees them.
//
// The flow is hydro.RatedFlow of the stored level_m at the point's time, as
// the stream computes it from the received stage (the stored float is the
// received one: line protocol and InfluxDB's JSON both round-trip it), and
// its flag is the stored level_m_qc, as the stream gives flow_rated_m3s_qc
// the stage's flag and revises both together. So a reprocessed point holds
// what ingesting the stage afresh with the registry in force gives, with
// one exception: InfluxDB cannot take a field out of a point, so a stored
// flow whose stage the registry no longer rates (outside the rated range, or
// before the first version) keeps its value and gets flow_rated_m3s_qc 4
// (fail), what the contract's deletion makes of a value (§12), which
// statistics and ecological-flow days leave out; afresh, the point would
// have no rated flow.

// SourceReprocess is the journal source of the points a reprocess writes.
const SourceReprocess = "reprocess"

// reprocessStore reads stored points: an InfluxDB output
// ((*influx.Writer).Query).
type reprocessStore interface {
	Query(ctx context.Context, stmt string, each func([]influx.Series)) error
}

// reprocessSpool is where a reprocess puts its points: the journal.
type reprocessSpool interface {
	Add(rec *journal.Record) error
	Bytes() int64
}

// RatingReprocessorOptions configure a RatingReprocessor.
type RatingReprocessorOptions struct {
	// Registry gives the stations and their ratings and shifts: the ones
	// the stream uses.
	Registry *registry.Registry
	// Store is the InfluxDB output read (the first output).
	Store reprocessStore
	// Journal takes the rewritten points.
	Journal reprocessSpool
	// AwaitDelivered, when set, is called before the first batch is read
	// and waits until every output has written what the journal held: a
	// reprocess must see points still in the spool (rendered with the
	// rating in force before a restart, for instance).
	AwaitDelivered func(ctx context.Context) error
	// Batch is the span of one read and one journal record (default 24 h).
	Batch time.Duration
	// MaxSpoolBytes: a reprocess waits while the journal holds more than
	// this many undelivered bytes (default 64 MiB), so that it never fills
	// the spool and holds up acknowledgement of live readings; it waits
	// (never drops) when the journal refuses a record as full.
	MaxSpoolBytes int64
	// Wait is the longest pause between two tries of a full journal
	// (default 1 s).
	Wait   time.Duration
	Logger *slog.Logger
}

// RatingReprocessor recomputes the rated flows of stored readings: the
// Reprocessor behind POST /api/v1/reprocess and rivermon reprocess.
type RatingReprocessor struct {
	o RatingReprocessorOptions
	// one keeps to one reprocess at a time: each reads a year in under a
	// minute on two cores, and two would only slow the live stream.
	one sync.Mutex
}

// NewRatingReprocessor returns a RatingReprocessor.
func NewRatingReprocessor(o RatingReprocessorOptions) *RatingReprocessor {
	if o.Batch <= 0 {
		o.Batch = 24 * time.Hour
	}
	if o.MaxSpoolBytes <= 0 {
		o.MaxSpoolBytes = 64 << 20
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &RatingReprocessor{o: o}
}

// ErrReprocessRequest is the class of a request that cannot be made (an
// unknown station, a range that is not one); the message says what.
var ErrReprocessRequest = errors.New("reprocess")

// ErrReprocessRunning is returned while another reprocess runs.
var ErrReprocessRunning = errors.New("a reprocess is running; try again when it is done")

// Reprocess rates the stored stages of station from from through to (both
// inclusive) again with the registry's ratings and shifts, writes the
// points whose flow_rated_m3s or flow_rated_m3s_qc changes, and returns
// how many it wrote. progress, when set, is called after each batch with
// the batches done and their total. Stopped by ctx, it returns what it
// wrote so far: a reprocess can always be run again, since it writes the
// same values.
func (rp *RatingReprocessor) Reprocess(ctx context.Context, station string, from, to time.Time, progress func(done, total int)) (n int, err error) {
	st, err := rp.check(station, from, to)
	if err != nil {
		return 0, err
	}
	if !rp.one.TryLock() {
		return 0, ErrReprocessRunning
	}
	defer rp.one.Unlock()
	if rp.o.AwaitDelivered != nil {
		if err := rp.o.AwaitDelivered(ctx); err != nil {
			return 0, fmt.Errorf("reprocess %s: %w", station, err)
		}
	}
	lg := rp.o.Logger.With("station", station)
	total := int((to.Sub(from))/rp.o.Batch) + 1
	lg.Info("reprocess starts", "from", from.Format(time.RFC3339), "to", to.Format(time.RFC3339), "batches", total)
	for k := range total {
		start := from.Add(time.Duration(k) * rp.o.Batch)
		end := start.Add(rp.o.Batch) // exclusive
		if end.After(to) {
			end = to.Add(time.Nanosecond)
		}
		entries, read, err := rp.batch(ctx, st, start, end)
		if err == nil {
			err = rp.add(ctx, entries)
		}
		if err != nil {
			lg.Error("reprocess stopped", "batch", k+1, "of", total, "points", n, "err", err)
			return n, fmt.Errorf("reprocess %s from %s: %w", station, start.Format(time.RFC3339), err)
		}
		n += len(entries)
		lg.Info("reprocess batch", "batch", k+1, "of", total, "from", start.Format(time.RFC3339), "points_read", read, "points_rewritten", len(entries))
		if progress != nil {
			progress(k+1, total)
		}
	}
	lg.Info("reprocess done", "points_rewritten", n)
	return n, nil
}

// maxReprocessRange bounds a request's range, below the 292 years a
// time.Duration holds.
const maxReprocessRange = 100 * 365 * 24 * time.Hour

// check finds the station of a request and checks its range.
func (rp *RatingReprocessor) check(station string, from, to time.Time) (*registry.Station, error) {
	st := rp.o.Registry.Station(station)
	switch {
	case st == nil:
		return nil, fmt.Errorf("%w: unknown station %q", ErrReprocessRequest, station)
	case from.IsZero() || to.IsZero():
		return nil, fmt.Errorf("%w: from and to are required", ErrReprocessRequest)
	case to.Before(from):
		return nil, fmt.Errorf("%w: to %s is before from %s", ErrReprocessRequest, to.Format(time.RFC3339), from.Format(time.RFC3339))
	case to.Sub(from) > maxReprocessRange:
		return nil, fmt.Errorf("%w: from %s to %s is more than 100 years; reprocess the years with data", ErrReprocessRequest, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return st, nil
}

// batch reads station's stored readings in [start, end) and returns the
// entries of those whose rated flow changes, and how many it read.
func (rp *RatingReprocessor) batch(ctx context.Context, st *registry.Station, start, end time.Time) ([]journal.Entry, int, error) {
	// Station ids are lower-case letters, digits and hyphens: nothing to
	// escape. GROUP BY river keeps the series of a point whose station
	// has changed river since: a rewrite must land on the stored point.
	stmt := fmt.Sprintf(`SELECT "level_m", "level_m_qc", %q, %q FROM reading WHERE station = '%s' AND time >= %d AND time < %d GROUP BY river`,
		reading.FieldFlowRated, reading.FieldFlowRated+"_qc", st.ID, start.UnixNano(), end.UnixNano())
	var (
		entries []journal.Entry
		buf     []byte
		read    int
	)
	err := rp.o.Store.Query(ctx, stmt, func(series []influx.Series) {
		for _, sr := range series {
			cols := [4]int{sr.Column("level_m"), sr.Column("level_m_qc"), sr.Column(reading.FieldFlowRated), sr.Column(reading.FieldFlowRated + "_qc")}
			river := sr.Tags["river"]
			for _, row := range sr.Values {
				read++
				level, ok := sr.Float(row, cols[0])
				if !ok {
					continue // nothing to rate (a status-only point, a deleted stage)
				}
				p := ratedPoint{t: sr.Time(row), level: level, levelFlag: int(quality.NotEvaluated)}
				if f, ok := sr.Float(row, cols[1]); ok {
					p.levelFlag = int(f)
				}
				p.flow, p.hasFlow = sr.Float(row, cols[2])
				if f, ok := sr.Float(row, cols[3]); ok {
					p.flowFlag, p.hasFlowFlag = int(f), true
				}
				var e journal.Entry
				if e, buf = rerate(buf, st, river, &p); e.Line != "" {
					entries = append(entries, e)
				}
			}
		}
	})
	return entries, read, err
}

// ratedPoint is what a reprocess reads of a stored reading.
type ratedPoint struct {
	t           time.Time
	level       float64
	levelFlag   int
	flow        float64
	hasFlow     bool
	flowFlag    int
	hasFlowFlag bool
}

// rerate renders the rewrite of p's rated flow, or an entry without a line
// when nothing changes. The flag is written only when it changes, so that
// a QC revision the stream writes meanwhile (the spike test of the newest
// value) is not undone by the flag read before it.
func rerate(buf []byte, st *registry.Station, river string, p *ratedPoint) (journal.Entry, []byte) {
	b := lineproto.AppendSeries(buf[:0], "reading", st.ID, river)
	q, err := hydro.RatedFlow(st, p.t, p.level)
	if err != nil {
		// Not rated now. A flow rated before stays in InfluxDB, which
		// cannot take a field out of a point: it is failed instead.
		if !p.hasFlow || (p.hasFlowFlag && p.flowFlag == int(quality.Fail)) {
			return journal.Entry{}, buf
		}
		b = append(b, reading.FieldFlowRated+"_qc="...)
		b = strconv.AppendInt(b, int64(quality.Fail), 10)
		b = append(b, 'i')
	} else {
		flagChanged := !p.hasFlowFlag || p.flowFlag != p.levelFlag
		if p.hasFlow && q == p.flow && !flagChanged {
			return journal.Entry{}, buf
		}
		b = lineproto.AppendFloatField(b, true, reading.FieldFlowRated, q)
		if flagChanged {
			b = lineproto.AppendFlagField(b, reading.FieldFlowRated, p.levelFlag)
		}
	}
	b = lineproto.AppendTime(b, p.t)
	return journal.Entry{Kind: journal.KindCorrected, Station: st.ID, Time: p.t, Source: SourceReprocess, Line: string(b)}, b
}

// add puts entries into the journal as one record, waiting while the
// journal holds more than MaxSpoolBytes or refuses the record as full; a
// record the journal refuses although it is empty (larger than its bound)
// is split.
func (rp *RatingReprocessor) add(ctx context.Context, entries []journal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rec := &journal.Record{Entries: entries}
	pause := rp.o.Wait / 16
	said := false
	for {
		var err error
		if rp.o.Journal.Bytes() <= rp.o.MaxSpoolBytes {
			err = rp.o.Journal.Add(rec)
			if err == nil {
				return nil
			}
			if !errors.Is(err, journal.ErrFull) {
				return err
			}
			if rp.o.Journal.Bytes() == 0 && len(entries) > 1 {
				half := len(entries) / 2
				if err := rp.add(ctx, entries[:half]); err != nil {
					return err
				}
				return rp.add(ctx, entries[half:])
			}
		}
		if !said {
			// Delivery is behind (InfluxDB down or slow): wait for it.
			rp.o.Logger.Warn("reprocess waits for room in the spool", "spool_bytes", rp.o.Journal.Bytes(), "err", err)
			said = true
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		pause = min(2*pause, rp.o.Wait)
	}
}
