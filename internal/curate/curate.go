// Package curate is the hydrologist's side of rivermon (CONTRACT §12):
// corrections of stored readings with an audit trail that can undo each
// exactly, approvals of station-days, and the export of a station's values
// with their flags, raw values and approval. Every change goes through the
// journal, so that delivery writes it to every InfluxDB output, and into an
// append-only log in the spool folder (curation.log), from which the state
// is rebuilt at start-up and by which every correction is undone.
package curate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Store is an InfluxDB output as curation uses it: read, delete, write.
type Store interface {
	Query(ctx context.Context, stmt string, each func([]influx.Series)) error
	Exec(ctx context.Context, stmt string) error
	Write(ctx context.Context, lines []string) ([]influx.Poison, error)
}

// Output is one InfluxDB output by the name its journal reader has.
type Output struct {
	Name  string
	Store Store
}

// Journal is where curation puts the points it writes.
type Journal interface {
	Add(rec *journal.Record) error
	Last() uint64
	Position(reader string) uint64
}

// Options configure a Curator.
type Options struct {
	Registry *registry.Registry
	Journal  Journal
	// Outputs are every InfluxDB output; the first is read.
	Outputs []Output
	// LogPath is the append-only log, <spool.dir>/curation.log.
	LogPath string
	// Location gives the local days of approvals (default reading.Zone).
	Location *time.Location
	// Token is the bearer token of the calls that change data; empty
	// turns them off (404).
	Token string
	// Reprocessor, when set, serves POST /api/v1/reprocess (501 without).
	Reprocessor Reprocessor
	// DeliveryWait bounds the wait for the outputs to have every journal
	// record before a correction reads InfluxDB (default 10 s).
	DeliveryWait time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

// Curator makes and undoes corrections and approvals. Changes are made one
// at a time.
type Curator struct {
	o   Options
	log *logFile

	// mu makes changes one at a time; it is held while a correction
	// waits for delivery and reads and writes InfluxDB.
	mu          sync.Mutex
	corrections []*Correction          // in the order made
	byID        map[string]*Correction // the same
	lastID      int64
	pending     map[string][]restore // undos cut short, by correction id (while loading)
	unqueued    []*logRecord         // the log's last change when not marked queued (while loading)
	// reprocessing is the station a reprocess runs for: its corrections
	// and undos wait (409), since a reprocess writes flows it rated
	// from the stages it read before.
	reprocessing string
	closed       bool // by Close

	// smu guards spans alone, which the stream reads (Corrected): it
	// does not wait for a correction under way.
	smu   sync.RWMutex
	spans map[spanKey][]span // the ranges of the corrections not undone

	// amu guards approved alone, which the export reads: an export does
	// not wait for a correction under way.
	amu      sync.Mutex
	approved map[string]map[string]bool // approved local days by station
}

// Source is the journal source of the points curation writes.
const Source = "curation"

// New opens (or creates) the log and rebuilds the state from it.
func New(o Options) (*Curator, error) {
	if o.Location == nil {
		o.Location = reading.Zone
	}
	if o.DeliveryWait <= 0 {
		o.DeliveryWait = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.Outputs) == 0 {
		return nil, errors.New("curate: no InfluxDB output")
	}
	c := &Curator{o: o, byID: map[string]*Correction{}, spans: map[spanKey][]span{}, approved: map[string]map[string]bool{}, pending: map[string][]restore{}}
	lf, err := openLog(o.LogPath, c.replay, o.Logger)
	if err != nil {
		return nil, err
	}
	c.log = lf
	if err := c.requeue(); err != nil {
		lf.close()
		return nil, err
	}
	if err := c.finishRestores(); err != nil {
		lf.close()
		return nil, err
	}
	return c, nil
}

// Close waits for a change under way, then closes the log; changes asked
// for after it are refused (503).
func (c *Curator) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.log.close()
}

// open refuses a change once the curator is closed; c.mu is held.
func (c *Curator) open() error {
	if c.closed {
		return unavailable("rivermon is stopping; nothing changed, try again once it runs")
	}
	return nil
}

// Error is a refusal with its HTTP status and a message naming what is
// wrong.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Msg: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf(format, args...)}
}

// awaitDelivered waits until every output has written every journal
// record appended so far: a correction reads InfluxDB and must see what
// the spool still holds for it (late readings, an earlier correction).
func (c *Curator) awaitDelivered(ctx context.Context) error {
	names := make([]string, len(c.o.Outputs))
	for i, out := range c.o.Outputs {
		names[i] = out.Name
	}
	return WaitDelivered(ctx, c.o.Journal, names, c.o.DeliveryWait)
}

// WaitDelivered waits, at most wait, until each of the InfluxDB outputs
// has written every record of the journal appended before the call; it
// answers 503 (an *Error) naming the output still behind after that.
func WaitDelivered(ctx context.Context, j Journal, outputs []string, wait time.Duration) error {
	last := j.Last()
	deadline := time.Now().Add(wait)
	for {
		behind := ""
		for _, out := range outputs {
			if j.Position(journal.OutputReader(out)) < last {
				behind = out
				break
			}
		}
		if behind == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return unavailable("InfluxDB output %s has not yet written what the spool holds (it is down or behind); nothing changed, try again later", behind)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// add puts entries into the journal in records of at most 5,000 points.
func (c *Curator) add(entries []journal.Entry) error {
	const per = 5000
	for len(entries) > 0 {
		n := min(per, len(entries))
		if err := c.o.Journal.Add(&journal.Record{Entries: entries[:n]}); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// commit appends recs to the log, then entries to the journal as one
// record; when the journal refuses them (at its bound), the log takes the
// records back and commit answers 503: nothing changed. mark is the log's
// offset before.
func (c *Curator) commit(mark int64, recs []*logRecord, entries []journal.Entry) error {
	undo := func(cause error) error {
		if err := c.log.truncate(mark); err != nil {
			return &Error{Status: 500, Msg: fmt.Sprintf("%v; and taking the change back out of the log failed: %v (restart rivermon)", cause, err)}
		}
		return nil
	}
	for _, rec := range recs {
		if err := c.log.append(rec); err != nil {
			if uerr := undo(err); uerr != nil {
				return uerr
			}
			return &Error{Status: 500, Msg: err.Error()}
		}
	}
	if err := c.o.Journal.Add(&journal.Record{Entries: entries}); err != nil {
		cause := unavailable("the spool has no room for the %d points of this change now (%v); nothing changed: try again once InfluxDB has caught up, or split the range", len(entries), err)
		if uerr := undo(cause); uerr != nil {
			return uerr
		}
		return cause
	}
	// Without the mark (a crash now), a start queues the change again:
	// the same points.
	if err := c.log.append(&logRecord{Type: "queued", At: c.o.Now().UTC()}); err != nil {
		c.o.Logger.Error("the change is made but not marked queued in the curation log; a start queues it again", "err", err)
	}
	return nil
}

// notReprocessed refuses a change of a station while it is reprocessed,
// or once the curator is closed; c.mu is held.
func (c *Curator) notReprocessed(station string) error {
	if err := c.open(); err != nil {
		return err
	}
	if c.reprocessing == station {
		return conflict("station %s is being reprocessed; correct or undo when the reprocess is done", station)
	}
	return nil
}

// spanKey is a station's parameter.
type spanKey struct{ station, param string }

// span is the range of a correction not undone.
type span struct {
	id       string
	from, to time.Time
}

// standing adds k's range to the spans (k made) or takes it off (undone).
func (c *Curator) standing(k *Correction, stands bool) {
	c.smu.Lock()
	defer c.smu.Unlock()
	key := spanKey{k.Station, k.Param}
	if stands {
		c.spans[key] = append(c.spans[key], span{id: k.ID, from: k.From, to: k.To})
		return
	}
	c.spans[key] = slices.DeleteFunc(c.spans[key], func(s span) bool { return s.id == k.ID })
	if len(c.spans[key]) == 0 {
		delete(c.spans, key)
	}
}

// Corrected says whether a correction not undone stands on the value of
// param at station and t (ingest.StreamOptions.Corrected).
func (c *Curator) Corrected(station, param string, t time.Time) bool {
	c.smu.RLock()
	defer c.smu.RUnlock()
	for _, s := range c.spans[spanKey{station, param}] {
		if !t.Before(s.from) && !t.After(s.to) {
			return true
		}
	}
	return false
}
