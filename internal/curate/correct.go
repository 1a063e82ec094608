package curate

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Operations of a correction (CONTRACT §12).
const (
	OpDelete = "delete" // the values flagged 4, kept
	OpSet    = "set"    // every value becomes value
	OpOffset = "offset" // value added
	OpDrift  = "drift"  // a linear offset from 0 at from to value at to
	// OpReprocess marks, in the `correction` measurement and the log, a
	// reprocess (rated flow from the registry's curves); not an op of
	// POST /api/v1/corrections.
	OpReprocess = "reprocess"
)

// CorrectedFlag is the QC flag of a value a correction set, offset or
// drifted: a hydrologist's judgement that the value is now right
// (docs/HYDROLOGY.md). A deleted value gets quality.Fail.
const CorrectedFlag = int(quality.Pass)

// MaxRange is the longest range of one correction, approval or export.
const MaxRange = 366 * 24 * time.Hour

// classWindow is how far around a correction of a graded item the
// section's class is recomputed: the values before it that still stand
// at its start, and the samples after it that its values stand for.
const classWindow = 72 * time.Hour

// Request is a correction as asked for.
type Request struct {
	Station string   `json:"station"`
	Param   string   `json:"param"`
	Op      string   `json:"op"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Value   *float64 `json:"value"`
	Author  string   `json:"author"`
	Reason  string   `json:"reason"`
	Force   bool     `json:"force"`
}

// Correction is a correction as made, with (in the log) the points it
// changed.
type Correction struct {
	ID      string    `json:"id"`
	Station string    `json:"station"`
	River   string    `json:"river"`
	Param   string    `json:"param"`
	Op      string    `json:"op"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Value   float64   `json:"value"`
	Author  string    `json:"author"`
	Reason  string    `json:"reason"`
	Made    time.Time `json:"made"`
	Undone  bool      `json:"undone,omitempty"`
	Points  []Point   `json:"points,omitempty"`
}

// Point is one `reading` point a correction changed: each field it wrote,
// before (nil: the point had none) and after.
type Point struct {
	T      time.Time           `json:"t"`
	Before map[string]*float64 `json:"before"`
	After  map[string]float64  `json:"after"`
}

// parseTime reads an RFC 3339 time for the key named.
func parseTime(key, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, badRequest("%s is required (an RFC 3339 time, e.g. 2026-07-15T06:00:00Z)", key)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s %q is not an RFC 3339 time (e.g. 2026-07-15T06:00:00Z)", key, s)
	}
	return t.UTC(), nil
}

// checkRange refuses from after to and a range over MaxRange.
func checkRange(from, to time.Time) error {
	if from.After(to) {
		return badRequest("from %s is after to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if to.Sub(from) > MaxRange {
		return badRequest("the range from %s to %s is over a year (366 days); split it", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return nil
}

// station returns the registry's station reporting param (when given).
func (c *Curator) station(id, param string) (*registry.Station, error) {
	if id == "" {
		return nil, badRequest("station is required")
	}
	st := c.o.Registry.Station(id)
	if st == nil {
		return nil, badRequest("unknown station %q", id)
	}
	if param == "" {
		return st, nil
	}
	if reading.ParamIndex(param) < 0 {
		return nil, badRequest("unknown param %q", param)
	}
	if !st.Reports(param) {
		return nil, badRequest("station %s does not report %q (it reports %s)", id, param, strings.Join(st.Params, ", "))
	}
	return st, nil
}

// validate checks a request and returns the correction it asks for.
func (c *Curator) validate(r *Request) (*Correction, *registry.Station, error) {
	st, err := c.station(r.Station, r.Param)
	if err != nil {
		return nil, nil, err
	}
	if r.Param == "" {
		return nil, nil, badRequest("param is required")
	}
	switch r.Op {
	case OpDelete, OpSet, OpOffset, OpDrift:
	case "":
		return nil, nil, badRequest("op is required: delete, set, offset or drift")
	default:
		return nil, nil, badRequest("unknown op %q: want delete, set, offset or drift", r.Op)
	}
	from, err := parseTime("from", r.From)
	if err != nil {
		return nil, nil, err
	}
	to, err := parseTime("to", r.To)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRange(from, to); err != nil {
		return nil, nil, err
	}
	v := 0.0
	if r.Op != OpDelete {
		if r.Value == nil {
			return nil, nil, badRequest("value is required for op %s", r.Op)
		}
		v = *r.Value
	} else if r.Value != nil {
		v = *r.Value
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, nil, badRequest("value must be a finite number")
	}
	if strings.TrimSpace(r.Author) == "" {
		return nil, nil, badRequest("author is required")
	}
	if strings.TrimSpace(r.Reason) == "" {
		return nil, nil, badRequest("reason is required")
	}
	return &Correction{Station: st.ID, River: st.River, Param: r.Param, Op: r.Op, From: from, To: to, Value: v,
		Author: r.Author, Reason: r.Reason}, st, nil
}

// Correct makes a correction and returns its id.
func (c *Curator) Correct(ctx context.Context, r Request) (string, error) {
	k, st, err := c.validate(&r)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.notReprocessed(st.ID); err != nil {
		return "", err
	}
	days := c.approvedDays(st.ID, k.From, k.To)
	if len(days) > 0 && !r.Force {
		return "", conflict("station %s is approved on %s, which the range touches; send \"force\": true to correct and reopen them", st.ID, strings.Join(days, ", "))
	}
	if err := c.awaitDelivered(ctx); err != nil {
		return "", err
	}
	rows, err := c.read(ctx, st, k)
	if err != nil {
		return "", unavailable("reading the values to correct: %v", err)
	}
	k.Points = compute(st, k, rows)
	if len(k.Points) == 0 {
		return "", badRequest("station %s has no stored %s between %s and %s: nothing to correct", st.ID, k.Param,
			k.From.Format(time.RFC3339Nano), k.To.Format(time.RFC3339Nano))
	}
	// The class it rewrites may reach an approved day past the range.
	days = c.approvedDaysOf(st.ID, k.From, k.To, k.Points)
	if len(days) > 0 && !r.Force {
		return "", conflict("station %s is approved on %s, which the correction changes (values, or the class they make); send \"force\": true to correct and reopen them", st.ID, strings.Join(days, ", "))
	}
	k.Made = c.o.Now().UTC()
	k.ID = c.newID(k.Made)
	points := k.Points
	entries := make([]journal.Entry, 0, len(points)+1+len(days))
	for _, p := range points {
		entries = append(entries, readingEntry(st, p.T, p.After))
	}
	entries = append(entries, correctionEntry(k))
	var reopen *Approval
	if len(days) > 0 {
		reopen = &Approval{Station: st.ID, Days: days, Level: Provisional, Author: k.Author,
			Reason: "reopened by correction " + k.ID}
		entries = append(entries, c.approvalEntries(st, reopen)...)
	}
	// The log first, then the journal, in one record: either the whole
	// correction is queued for InfluxDB, or none of it is and the log
	// takes it back (a spool at its bound refuses it whole, never half).
	mark, err := c.log.offset()
	if err != nil {
		return "", &Error{Status: 500, Msg: err.Error()}
	}
	recs := []*logRecord{{Type: "correction", At: k.Made, Correction: k}}
	if reopen != nil {
		recs = append(recs, &logRecord{Type: "approval", At: k.Made, Approval: reopen})
	}
	// Standing before it is queued: a QC revision the stream renders
	// meanwhile is not written after it.
	c.standing(k, true)
	if err := c.commit(mark, recs, entries); err != nil {
		c.standing(k, false)
		return "", err
	}
	k.Points = nil
	c.remember(k)
	if reopen != nil {
		c.setApproval(reopen)
	}
	c.o.Logger.Info("correction made", "id", k.ID, "station", k.Station, "param", k.Param, "op", k.Op,
		"from", k.From, "to", k.To, "points", len(points), "author", k.Author)
	return k.ID, nil
}

// newID returns a new correction id: "c-" and the time made in base-36
// milliseconds, above every id given before (so unique across restarts,
// the log holding the last).
func (c *Curator) newID(t time.Time) string {
	n := max(t.UnixMilli(), c.lastID+1)
	c.lastID = n
	return "c-" + strconv.FormatInt(n, 36)
}

// remember adds a correction to the state (its span apart: standing).
func (c *Curator) remember(k *Correction) {
	c.corrections = append(c.corrections, k)
	c.byID[k.ID] = k
	if n, err := strconv.ParseInt(strings.TrimPrefix(k.ID, "c-"), 36, 64); err == nil {
		c.lastID = max(c.lastID, n)
	}
}

// row is a stored `reading` point: its numeric fields.
type row struct {
	t time.Time
	f map[string]float64
}

// fields returns what a correction of k reads and may write: the value,
// its flag and raw value; rated flow for a stage with a rating; for a
// graded item the section's class and what it is made of.
func fields(st *registry.Station, param string) []string {
	fs := []string{param, param + "_qc", param + "_raw"}
	if param == "level_m" && len(st.Rating) > 0 {
		fs = append(fs, reading.FieldFlowRated, reading.FieldFlowRated+"_qc")
	}
	if classed(st, param) {
		fs = append(fs, reading.FieldWQClass)
		for _, code := range append(quality.GradedCodes(), "water_temp_c") {
			if code != param && st.Reports(code) {
				fs = append(fs, code, code+"_qc")
			}
		}
	}
	return fs
}

// read returns the stored points of the station the correction reads, in
// time order.
func (c *Curator) read(ctx context.Context, st *registry.Station, k *Correction) ([]row, error) {
	from, to := k.From, k.To
	if classed(st, k.Param) {
		from, to = from.Add(-classWindow), to.Add(classWindow)
	}
	return readRows(ctx, c.o.Outputs[0].Store, st.ID, fields(st, k.Param), from, to)
}

// readRows reads fields of the station's `reading` points in [from, to].
func readRows(ctx context.Context, s Store, station string, fs []string, from, to time.Time) ([]row, error) {
	quoted := make([]string, len(fs))
	for i, f := range fs {
		quoted[i] = strconv.Quote(f)
	}
	stmt := fmt.Sprintf("SELECT %s FROM reading WHERE station = '%s' AND time >= %d AND time <= %d",
		strings.Join(quoted, ", "), station, from.UnixNano(), to.UnixNano())
	byTime := map[int64]int{}
	var rows []row
	err := s.Query(ctx, stmt, func(series []influx.Series) {
		for _, sr := range series {
			for _, vals := range sr.Values {
				t := sr.Time(vals)
				i, ok := byTime[t.UnixNano()]
				if !ok {
					i = len(rows)
					byTime[t.UnixNano()] = i
					rows = append(rows, row{t: t, f: map[string]float64{}})
				}
				for j, col := range sr.Columns {
					if f, ok := sr.Float(vals, j); ok && col != "time" {
						rows[i].f[col] = f
					}
				}
			}
		}
	})
	slices.SortFunc(rows, func(a, b row) int { return a.t.Compare(b.t) })
	return rows, err
}

// compute works out the points a correction changes: its parameter's
// values in the range, and what is derived from them.
func compute(st *registry.Station, k *Correction, rows []row) []Point {
	param, qcKey, rawKey := k.Param, k.Param+"_qc", k.Param+"_raw"
	changed := map[int64]*Point{}
	point := func(r *row) *Point {
		p := changed[r.t.UnixNano()]
		if p == nil {
			p = &Point{T: r.t, Before: map[string]*float64{}, After: map[string]float64{}}
			changed[r.t.UnixNano()] = p
		}
		return p
	}
	set := func(r *row, p *Point, key string, v float64) {
		if old, ok := r.f[key]; ok {
			p.Before[key] = &old
		} else {
			p.Before[key] = nil
		}
		p.After[key] = v
	}
	// corrected holds the new value and flag of each corrected point, for
	// the class below.
	type value struct {
		v    float64
		flag int
	}
	corrected := map[int64]value{}
	span := k.To.Sub(k.From)
	for i := range rows {
		r := &rows[i]
		v, ok := r.f[param]
		if !ok || r.t.Before(k.From) || r.t.After(k.To) {
			continue
		}
		nv, flag := v, CorrectedFlag
		switch k.Op {
		case OpDelete:
			flag = int(quality.Fail)
		case OpSet:
			nv = k.Value
		case OpOffset:
			nv = v + k.Value
		case OpDrift:
			frac := 1.0
			if span > 0 {
				frac = float64(r.t.Sub(k.From)) / float64(span)
			}
			nv = v + k.Value*frac
		}
		p := point(r)
		set(r, p, param, nv)
		set(r, p, qcKey, float64(flag))
		raw, had := r.f[rawKey]
		if !had {
			raw = v // the first raw stays raw across stacked corrections
		}
		set(r, p, rawKey, raw)
		corrected[r.t.UnixNano()] = value{nv, flag}
		if param == "level_m" && len(st.Rating) > 0 {
			q, err := ratedFlow(st, r.t, nv)
			switch {
			case err == nil:
				set(r, p, reading.FieldFlowRated, q)
				set(r, p, reading.FieldFlowRated+"_qc", float64(flag))
			case hasKey(r.f, reading.FieldFlowRated):
				// Outside the rating now: rivermon never extrapolates,
				// and a field cannot be taken off a point; the rated
				// flow left from the old stage is failed.
				set(r, p, reading.FieldFlowRated+"_qc", float64(quality.Fail))
			}
		}
	}
	if classed(st, param) {
		before := classes(st, rows, nil)
		after := classes(st, rows, func(t time.Time, code string) (float64, int, bool) {
			if code != param {
				return 0, 0, false
			}
			x, ok := corrected[t.UnixNano()]
			return x.v, x.flag, ok
		})
		end := k.To.Add(classWindow)
		for i := range rows {
			r := &rows[i]
			if r.t.Before(k.From) || r.t.After(end) {
				continue
			}
			b, a := before[i], after[i]
			if a == 0 || a == b {
				continue
			}
			set(r, point(r), reading.FieldWQClass, float64(a))
		}
	}
	out := make([]Point, 0, len(changed))
	for _, p := range changed {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Point) int { return a.T.Compare(b.T) })
	return out
}

func hasKey(m map[string]float64, k string) bool { _, ok := m[k]; return ok }

// classedParam says whether a parameter enters the water-quality class: a
// graded item, or the water temperature by which dissolved oxygen is
// judged against saturation.
func classedParam(param string) bool { return quality.Graded(param) || param == "water_temp_c" }

// classed says whether correcting param can change the station's class.
func classed(st *registry.Station, param string) bool {
	return quality.Graded(param) || (param == "water_temp_c" && st.Reports("do_mgl"))
}

// ratedFlow is the discharge of stage h at t by the station's rating and
// shifts, as the stream derives it.
func ratedFlow(st *registry.Station, t time.Time, h float64) (float64, error) {
	return hydro.RatedFlow(st, t, h)
}

// graded is the latest valid value of one GB 3838-2002 item, as the
// stream keeps it (ingest/station.go).
type graded struct {
	t       time.Time
	class   int
	spacing time.Duration
}

// classes is the section's class at each row with a graded item (0
// elsewhere), computed as the stream does: the worst class among the
// latest value of each item that did not fail QC and still stands (three
// of the item's own intervals, at least 4 h). override, when set, gives
// a row's corrected value and flag of an item.
func classes(st *registry.Station, rows []row, override func(time.Time, string) (float64, int, bool)) []int {
	const minValidity = 4 * time.Hour
	items := map[string]*graded{}
	out := make([]int, len(rows))
	codes := quality.GradedCodes()
	for i := range rows {
		r := &rows[i]
		temp := math.NaN()
		tv, ok := r.f["water_temp_c"]
		tflag := int(r.f["water_temp_c_qc"])
		if override != nil {
			if ov, of, ok2 := override(r.t, "water_temp_c"); ok2 {
				tv, tflag, ok = ov, of, true
			}
		}
		if ok && tflag != int(quality.Fail) {
			temp = tv
		}
		cond := quality.Conditions{WaterTempC: temp, ElevationM: st.ElevationM}
		gradedHere := false
		for _, code := range codes {
			v, ok := r.f[code]
			flag := int(r.f[code+"_qc"])
			if override != nil {
				if ov, of, ok2 := override(r.t, code); ok2 {
					v, flag, ok = ov, of, true
				}
			}
			if !ok {
				continue
			}
			gradedHere = true
			if flag == int(quality.Fail) {
				continue
			}
			class, ok := quality.ItemClass(code, v, cond)
			if !ok {
				continue
			}
			g := items[code]
			switch {
			case g == nil:
				items[code] = &graded{t: r.t, class: class, spacing: time.Duration(st.Interval)}
			case r.t.After(g.t):
				g.spacing, g.t, g.class = r.t.Sub(g.t), r.t, class
			case r.t.Equal(g.t):
				g.class = class
			}
		}
		if !gradedHere {
			continue
		}
		class := 0
		for _, g := range items {
			if age := r.t.Sub(g.t); age >= 0 && age <= max(minValidity, 3*g.spacing) {
				class = max(class, g.class)
			}
		}
		out[i] = class
	}
	return out
}

// intField says whether a `reading` field is an integer: QC flags and the
// class.
func intField(key string) bool {
	return strings.HasSuffix(key, "_qc") || key == reading.FieldWQClass
}

// appendField writes one field of a point, preceded by a comma unless
// first, as an integer or a float as its name says.
func appendField(b []byte, first bool, key string, v float64) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, key...)
	b = append(b, '=')
	if intField(key) {
		b = strconv.AppendInt(b, int64(v), 10)
		return append(b, 'i')
	}
	return lineproto.AppendFloat(b, v)
}

// readingEntry is a `reading` point of the station at t with fields.
func readingEntry(st *registry.Station, t time.Time, fields map[string]float64) journal.Entry {
	b := lineproto.AppendSeries(nil, "reading", st.ID, st.River)
	for i, key := range slices.Sorted(maps.Keys(fields)) {
		b = appendField(b, i == 0, key, fields[key])
	}
	b = lineproto.AppendTime(b, t)
	return journal.Entry{Kind: journal.KindCorrected, Station: st.ID, Time: t, Source: Source, Line: string(b)}
}

// correctionEntry is the `correction` point of k (CONTRACT §6), stamped
// with the time it was made.
func correctionEntry(k *Correction) journal.Entry {
	b := []byte("correction")
	b = lineproto.AppendTag(b, "op", k.Op)
	b = lineproto.AppendTag(b, "param", k.Param)
	b = lineproto.AppendTag(b, "river", k.River)
	b = lineproto.AppendTag(b, "station", k.Station)
	b = append(b, " id="...)
	b = strconv.AppendQuote(b, k.ID) // ids are letters, digits and '-'
	b = lineproto.AppendStringField(b, "from", k.From.Format(time.RFC3339Nano))
	b = lineproto.AppendStringField(b, "to", k.To.Format(time.RFC3339Nano))
	if k.Op != OpDelete {
		b = lineproto.AppendFloatField(b, false, "value", k.Value)
	}
	b = lineproto.AppendStringField(b, "reason", k.Reason)
	b = lineproto.AppendStringField(b, "author", k.Author)
	b = lineproto.AppendBoolField(b, "undone", k.Undone)
	b = lineproto.AppendTime(b, k.Made)
	return journal.Entry{Kind: journal.KindCorrection, Station: k.Station, Time: k.Made, Source: Source, Line: string(b)}
}

// overlaps says whether two corrections change the same values: the same
// station and parameter (or two graded items, which make the same class)
// over ranges that meet.
func overlaps(a, b *Correction) bool {
	if a.Station != b.Station {
		return false
	}
	aTo, bTo := a.To, b.To
	switch {
	case a.Param == b.Param:
	case classedParam(a.Param) && classedParam(b.Param):
		aTo, bTo = aTo.Add(classWindow), bTo.Add(classWindow)
	default:
		return false
	}
	return !a.From.After(bTo) && !b.From.After(aTo)
}

// Undo restores every point correction id changed to what it was before,
// exactly, and marks the correction undone.
func (c *Curator) Undo(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return err
	}
	k := c.byID[id]
	if k == nil {
		return &Error{Status: 404, Msg: fmt.Sprintf("no correction %q", id)}
	}
	if k.Undone {
		return conflict("correction %s is already undone", id)
	}
	var later []string
	seen := false
	for _, o := range c.corrections {
		if o == k {
			seen = true
			continue
		}
		if seen && !o.Undone && overlaps(k, o) {
			later = append(later, fmt.Sprintf("%s (%s %s %s to %s)", o.ID, o.Op, o.Param,
				o.From.Format(time.RFC3339), o.To.Format(time.RFC3339)))
		}
	}
	if len(later) > 0 {
		return conflict("correction %s cannot be undone: the later correction %s overlaps it and is not undone; undo that first",
			id, strings.Join(later, ", "))
	}
	st := c.o.Registry.Station(k.Station)
	if st == nil {
		return conflict("station %s of correction %s is no longer in the registry", k.Station, id)
	}
	if err := c.notReprocessed(st.ID); err != nil {
		return err
	}
	points, err := c.log.points(id)
	if err != nil {
		return &Error{Status: 500, Msg: err.Error()}
	}
	if days := c.approvedDaysOf(st.ID, k.From, k.To, points); len(days) > 0 {
		return conflict("station %s is approved on %s, which correction %s touches; reopen them (level provisional) first",
			st.ID, strings.Join(days, ", "), id)
	}
	if err := c.awaitDelivered(ctx); err != nil {
		return err
	}
	if err := c.restore(ctx, id, st, points); err != nil {
		return unavailable("undoing correction %s: %v; nothing is recorded as undone, try again", id, err)
	}
	now := c.o.Now().UTC()
	if err := c.log.append(&logRecord{Type: "undo", At: now, ID: id}); err != nil {
		return &Error{Status: 500, Msg: err.Error()}
	}
	k.Undone = true
	c.standing(k, false)
	if err := c.add([]journal.Entry{correctionEntry(k)}); err != nil {
		return unavailable("correction %s is undone in InfluxDB but its record could not be queued (a start queues it): %v", id, err)
	}
	if err := c.log.append(&logRecord{Type: "queued", At: now}); err != nil {
		c.o.Logger.Error("the undo is made but not marked queued in the curation log; a start queues its record again", "err", err)
	}
	c.o.Logger.Info("correction undone", "id", id, "station", k.Station, "param", k.Param, "points", len(points))
	return nil
}

// restore writes the points back as they were before. A point that had
// all the fields the correction wrote gets them back through the journal.
// A field that was absent cannot be taken off a point in InfluxDB 1.8, so
// the station's points from the first to the last such point of each UTC
// day are read whole, deleted from every output, and written again whole
// as they were before the correction, at once to every output and through
// the journal (for the stages that recompute what follows a correction).
// A day at a time bounds the memory a long range takes, and a restore cut
// short is done again the same way by the next undo: applying the
// before-state twice gives the same points. The points of a day are in the
// log before they are deleted: a crash between the delete and the write
// loses none (New writes them again).
func (c *Curator) restore(ctx context.Context, id string, st *registry.Station, points []Point) error {
	var simple []journal.Entry
	days := map[string][]*Point{}
	for i := range points {
		p := &points[i]
		absent := false
		before := map[string]float64{}
		for key, v := range p.Before {
			if v == nil {
				absent = true
			} else {
				before[key] = *v
			}
		}
		if absent {
			day := p.T.UTC().Format(dayLayout)
			days[day] = append(days[day], p)
		} else {
			simple = append(simple, readingEntry(st, p.T, before))
		}
	}
	for _, day := range slices.Sorted(maps.Keys(days)) {
		if err := c.rewrite(ctx, id, st, days[day]); err != nil {
			return err
		}
	}
	return c.add(simple)
}

// rewrite restores points (in time order, each with a field that was
// absent before) by deleting the station's points between the first and
// the last of them and writing them again whole.
func (c *Curator) rewrite(ctx context.Context, id string, st *registry.Station, points []*Point) error {
	lo, hi := points[0].T, points[len(points)-1].T
	byTime := make(map[int64]*Point, len(points))
	for _, p := range points {
		byTime[p.T.UnixNano()] = p
	}
	stored, err := readWhole(ctx, c.o.Outputs[0].Store, st.ID, lo, hi)
	if err != nil {
		return err
	}
	var lines []string
	var entries []journal.Entry
	for _, sp := range stored {
		if p := byTime[sp.t.UnixNano()]; p != nil {
			for key, v := range p.Before {
				if v == nil {
					delete(sp.fields, key)
				} else {
					sp.fields[key] = storedValue{num: json.Number(lineproto.AppendFloat(nil, *v)), typ: fieldType(key)}
				}
			}
		}
		if len(sp.fields) == 0 {
			continue
		}
		line := sp.line(st.ID)
		lines = append(lines, line)
		entries = append(entries, journal.Entry{Kind: journal.KindCorrected, Station: st.ID, Time: sp.t, Source: Source, Line: line})
	}
	if err := c.log.append(&logRecord{Type: "restore", At: c.o.Now().UTC(), ID: id, Station: st.ID, Lines: lines}); err != nil {
		return err
	}
	stmt := fmt.Sprintf("DELETE FROM reading WHERE station = '%s' AND time >= %d AND time <= %d", st.ID, lo.UnixNano(), hi.UnixNano())
	err = c.deleteAndWrite(ctx, stmt, lines)
	// Through the journal whatever happened: an output that deleted the
	// day and then failed to write it gets the points from delivery,
	// which tries until it can, and an undo tried again reads them back
	// from the first output rather than finding the day empty.
	if qerr := c.add(entries); qerr != nil {
		if err == nil {
			err = qerr
		}
		return err // the restore stays to be done again at start
	}
	if lerr := c.log.append(&logRecord{Type: "restored", At: c.o.Now().UTC(), ID: id}); lerr != nil && err == nil {
		err = lerr
	}
	return err
}

// deleteAndWrite deletes the points stmt says from every output and
// writes lines to it.
func (c *Curator) deleteAndWrite(ctx context.Context, stmt string, lines []string) error {
	for _, out := range c.o.Outputs {
		if err := out.Store.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("output %s: %w", out.Name, err)
		}
		for start := 0; start < len(lines); start += 5000 {
			poison, err := out.Store.Write(ctx, lines[start:min(start+5000, len(lines))])
			if err != nil {
				return fmt.Errorf("output %s: %w", out.Name, err)
			}
			if len(poison) > 0 {
				return fmt.Errorf("output %s refused a restored point (%v): %s", out.Name, poison[0].Err, poison[0].Line)
			}
		}
	}
	return nil
}

// fieldType is the InfluxDB type of a `reading` field rivermon writes.
func fieldType(key string) string {
	if intField(key) {
		return "integer"
	}
	return "float"
}

// storedValue is a field of a stored point, as InfluxDB answered it.
type storedValue struct {
	num json.Number // numbers
	str *string     // strings
	b   *bool       // booleans
	typ string      // "float", "integer", "string", "boolean"
}

// storedPoint is a stored point read whole, tags and fields.
type storedPoint struct {
	t      time.Time
	river  string
	fields map[string]storedValue
}

// line renders the point again in line protocol.
func (p *storedPoint) line(station string) string {
	b := lineproto.AppendSeries(nil, "reading", station, p.river)
	for i, key := range slices.Sorted(maps.Keys(p.fields)) {
		v := p.fields[key]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, key...)
		b = append(b, '=')
		switch v.typ {
		case "integer":
			b = append(b, v.num...)
			b = append(b, 'i')
		case "string":
			b = strconv.AppendQuote(b, *v.str)
		case "boolean":
			b = strconv.AppendBool(b, *v.b)
		default:
			f, _ := v.num.Float64()
			b = lineproto.AppendFloat(b, f)
		}
	}
	b = lineproto.AppendTime(b, p.t)
	return string(b)
}

// readWhole reads every field and tag of the station's `reading` points in
// [from, to], with the fields' types from SHOW FIELD KEYS.
func readWhole(ctx context.Context, s Store, station string, from, to time.Time) ([]*storedPoint, error) {
	types := map[string]string{}
	err := s.Query(ctx, "SHOW FIELD KEYS FROM reading", func(series []influx.Series) {
		for _, sr := range series {
			for _, v := range sr.Values {
				if len(v) >= 2 {
					k, _ := v[0].(string)
					t, _ := v[1].(string)
					types[k] = t
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	stmt := fmt.Sprintf("SELECT * FROM reading WHERE station = '%s' AND time >= %d AND time <= %d GROUP BY *",
		station, from.UnixNano(), to.UnixNano())
	var out []*storedPoint
	err = s.Query(ctx, stmt, func(series []influx.Series) {
		for _, sr := range series {
			for _, vals := range sr.Values {
				p := &storedPoint{t: sr.Time(vals), river: sr.Tags["river"], fields: map[string]storedValue{}}
				for j, col := range sr.Columns {
					if col == "time" || j >= len(vals) || vals[j] == nil {
						continue
					}
					typ := cmp.Or(types[col], fieldType(col))
					switch x := vals[j].(type) {
					case json.Number:
						p.fields[col] = storedValue{num: x, typ: typ}
					case string:
						p.fields[col] = storedValue{str: &x, typ: "string"}
					case bool:
						p.fields[col] = storedValue{b: &x, typ: "boolean"}
					}
				}
				out = append(out, p)
			}
		}
	})
	return out, err
}
