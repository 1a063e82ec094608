package curate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
)

// The log, curation.log in the spool folder, is JSON lines, one per
// change, each fsynced before the change is made:
//
//	{"type":"correction","at":…,"correction":{id, station, param, op, from,
//	  to, value, author, reason, made, points:[{t, before, after}]}}
//	{"type":"undo","at":…,"id":"c-…"}
//	{"type":"approval","at":…,"approval":{station, days:[…], level, author,
//	  reason}}
//	{"type":"restore","at":…,"id":"c-…","station":…,"lines":[…]}
//	{"type":"restored","at":…,"id":"c-…"}
//	{"type":"queued","at":…}
//	{"type":"reprocess","at":…,"correction":{id "r-…", station, param
//	  flow_rated_m3s, op "reprocess", from, to, value (points rewritten),
//	  author, reason, made}}
//
// A queued record follows a change (a correction, with the approval of
// the days it reopened, an approval, the `correction` point of an undo
// or a reprocess) once its points are in the journal: a last change
// without one is queued again at start.
//
// A correction's points give, for every point it changed, each field it
// wrote before (null: the point had no such field) and after, so that the
// log can be replayed (after) and undone (before). A restore holds the
// points of a day an undo is about to delete and write again whole
// (Curator.rewrite), in line protocol: should neither a restored (they
// are queued in the journal, which writes them to every output) nor the
// undo be recorded after it (a crash), they are written again at start,
// once.
type logRecord struct {
	Type       string      `json:"type"`
	At         time.Time   `json:"at"`
	Correction *Correction `json:"correction,omitempty"`
	ID         string      `json:"id,omitempty"`
	Approval   *Approval   `json:"approval,omitempty"`
	Station    string      `json:"station,omitempty"`
	Lines      []string    `json:"lines,omitempty"`
}

// logFile is the open log.
type logFile struct {
	path string
	f    *os.File
}

// openLog reads every record of the log at path, in order, into apply,
// and opens it for appending. A last line cut short (a crash while
// writing it) is cut off: the change it described was not made.
func openLog(path string, apply func(*logRecord) error, lg *slog.Logger) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("curation log: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				lg.Error("curation log: a last line cut short is cut off", "path", path, "line", n, "bytes", len(line))
			}
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("curation log: %w", err)
		}
		var rec logRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			f.Close()
			return nil, fmt.Errorf("curation log %s:%d: %w", path, n, err)
		}
		if err := apply(&rec); err != nil {
			f.Close()
			return nil, fmt.Errorf("curation log %s:%d: %w", path, n, err)
		}
		good += int64(len(line))
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("curation log: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("curation log: %w", err)
	}
	return &logFile{path: path, f: f}, nil
}

// append writes rec as one line and fsyncs it.
func (l *logFile) append(rec *logRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("curation log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("curation log: %w", err)
	}
	return nil
}

// offset is where the next record goes.
func (l *logFile) offset() (int64, error) {
	off, err := l.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("curation log: %w", err)
	}
	return off, nil
}

// truncate takes back the records appended from off on: the change they
// describe was not made after all.
func (l *logFile) truncate(off int64) error {
	if err := l.f.Truncate(off); err != nil {
		return fmt.Errorf("curation log: %w", err)
	}
	if _, err := l.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("curation log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("curation log: %w", err)
	}
	return nil
}

// points reads back the points of correction id.
func (l *logFile) points(id string) ([]Point, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("curation log: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	needle := []byte(`"id":"` + id + `"`)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return nil, fmt.Errorf("curation log: correction %s not found", id)
		}
		if err != nil {
			return nil, fmt.Errorf("curation log: %w", err)
		}
		if !bytes.Contains(line, needle) || !bytes.HasPrefix(line, []byte(`{"type":"correction"`)) {
			continue
		}
		var rec logRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("curation log: %w", err)
		}
		if rec.Correction != nil && rec.Correction.ID == id {
			return rec.Correction.Points, nil
		}
	}
}

func (l *logFile) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}

// replay applies one record of the log to the state.
func (c *Curator) replay(rec *logRecord) error {
	switch rec.Type {
	case "correction":
		if rec.Correction == nil {
			return errors.New("correction record without its correction")
		}
		k := *rec.Correction
		k.Points = nil // read again from the log when undone
		c.remember(&k)
		c.standing(&k, true)
		c.unqueued = []*logRecord{rec}
		return nil
	case "queued":
	case "undo":
		k := c.byID[rec.ID]
		if k == nil {
			return fmt.Errorf("undo of unknown correction %s", rec.ID)
		}
		k.Undone = true
		c.standing(k, false)
		delete(c.pending, rec.ID)
		c.unqueued = []*logRecord{rec} // its `correction` point, undone
		return nil
	case "restore":
		if c.byID[rec.ID] == nil {
			return fmt.Errorf("restore of unknown correction %s", rec.ID)
		}
		c.pending[rec.ID] = append(c.pending[rec.ID], restore{station: rec.Station, lines: rec.Lines})
	case "restored":
		if c.byID[rec.ID] == nil {
			return fmt.Errorf("restored of unknown correction %s", rec.ID)
		}
		delete(c.pending, rec.ID)
	case "reprocess":
		// Recorded for the audit trail; nothing to restore: the curve in
		// force decides.
		if rec.Correction != nil {
			c.lastID = max(c.lastID, rec.Correction.Made.UnixMilli())
			c.unqueued = []*logRecord{rec} // its `correction` point
			return nil
		}
	case "approval":
		if rec.Approval == nil {
			return errors.New("approval record without its approval")
		}
		c.setApproval(rec.Approval)
		// The days a correction reopened are queued with it.
		if len(c.unqueued) == 1 && c.unqueued[0].Correction != nil &&
			rec.Approval.Reason == "reopened by correction "+c.unqueued[0].Correction.ID {
			c.unqueued = append(c.unqueued, rec)
		} else {
			c.unqueued = []*logRecord{rec}
		}
		return nil
	default:
		return fmt.Errorf("unknown record type %q", rec.Type)
	}
	// Whatever came after a change was made after it was queued.
	c.unqueued = nil
	return nil
}

// requeue queues again the last change of the log when it is not marked
// queued: rivermon stopped (a crash) between logging it and queuing its
// points, or just after. Its points are written as it wrote them
// (written twice, they are the same), and it is marked queued.
func (c *Curator) requeue() error {
	recs := c.unqueued
	c.unqueued = nil
	if len(recs) == 0 {
		return nil
	}
	var entries []journal.Entry
	for _, rec := range recs {
		switch {
		case rec.Type == "reprocess":
			entries = append(entries, correctionEntry(rec.Correction))
		case rec.Correction != nil:
			k := rec.Correction
			st := c.o.Registry.Station(k.Station)
			if st == nil {
				continue
			}
			for _, p := range k.Points {
				entries = append(entries, readingEntry(st, p.T, p.After))
			}
			entries = append(entries, correctionEntry(k))
		case rec.Approval != nil:
			if st := c.o.Registry.Station(rec.Approval.Station); st != nil {
				entries = append(entries, c.approvalEntries(st, rec.Approval)...)
			}
		case rec.Type == "undo":
			if k := c.byID[rec.ID]; k != nil {
				entries = append(entries, correctionEntry(k))
			}
		}
	}
	if err := c.add(entries); err != nil {
		return fmt.Errorf("curation log: queuing the last change again: %w", err)
	}
	c.o.Logger.Warn("the last change of the curation log was not marked queued (rivermon stopped while making it); its points are queued again", "points", len(entries))
	return c.log.append(&logRecord{Type: "queued", At: c.o.Now().UTC()})
}

// restore is the points of a day an undo deletes and writes again whole.
type restore struct {
	station string
	lines   []string
}

// finishRestores writes again the points of undos cut short (their
// restore in the log, their undo not): the day may have been deleted and
// not yet written.
func (c *Curator) finishRestores() error {
	for _, id := range slices.Sorted(maps.Keys(c.pending)) {
		n := 0
		for _, r := range c.pending[id] {
			entries := make([]journal.Entry, 0, len(r.lines))
			for _, l := range r.lines {
				ts := l[strings.LastIndexByte(l, ' ')+1:]
				ns, err := strconv.ParseInt(ts, 10, 64)
				if err != nil {
					return fmt.Errorf("curation log: restore of %s: bad line %q", id, l)
				}
				entries = append(entries, journal.Entry{Kind: journal.KindCorrected, Station: r.station,
					Time: time.Unix(0, ns).UTC(), Source: Source, Line: l})
			}
			if err := c.add(entries); err != nil {
				return fmt.Errorf("curation log: restore of %s: %w", id, err)
			}
			n += len(entries)
		}
		// Queued: a later start must not write them again over what
		// was written to the points since.
		if err := c.log.append(&logRecord{Type: "restored", At: c.o.Now().UTC(), ID: id}); err != nil {
			return err
		}
		c.o.Logger.Warn("the undo of a correction was cut short (crash); the points it had deleted are written again as they were before the correction. Undo it again to finish", "id", id, "points", n)
	}
	clear(c.pending)
	return nil
}
