package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// The statistics stage (Periods) computes what is said of a period rather
// than of a sample: `stats_hourly`, `stats_daily` and `stats_monthly`, and
// the ecological-flow day and month accounts again whenever something
// other than the stream's own flow days changed them. It works from what
// InfluxDB stores, after delivery: late data, a QC revision, a correction
// and a reprocess all reach a period the same way, as points of its
// station written in it, and the period is computed again from every
// value stored in it.
//
// It is a reader of the journal with a position of its own (the
// `periods` cursor): every entry touching a station's readings marks the
// station's local day, and the hour in it, as to be computed; the marks
// are saved in a file beside the spool before the position moves past
// them, so that nothing is forgotten in a crash, and are computed once the
// first InfluxDB output has the records that made them. The results go
// back into the journal, to every output. Marks wait while InfluxDB is
// down; they never hold back acknowledgement, and the spool forgets the
// records once they are marked.

// busyBacklog is the output's backlog above which no period is computed.
const busyBacklog = 4 << 20

// sourcePeriods is the source of the points the stage writes.
const sourcePeriods = "periods"

// Querier reads from InfluxDB; see influx.Writer.Query.
type Querier interface {
	Query(ctx context.Context, stmt string, each func([]influx.Series)) error
}

// PeriodsOptions configure a Periods stage.
type PeriodsOptions struct {
	Journal  *journal.Journal
	Registry *registry.Registry
	// Query reads the first InfluxDB output, whose reader is Output
	// (journal.OutputReader): a period is computed once that reader has
	// the records that touched it.
	Query  Querier
	Output string
	// Location is the local time of days and months (default UTC+8).
	Location *time.Location
	// MarksFile keeps the periods to compute across restarts (beside the
	// spool); "" keeps them in memory.
	MarksFile string
	// TakeEvery is how often new records are marked (default 1 s);
	// ComputeEvery how often marked periods are computed (default 1 min),
	// at most MaxDays station-days at a time (default 500), those marked
	// first first: a day being filled is computed once a round, and the
	// load on InfluxDB stays bounded however many stations report (at
	// 10,000 stations a day waits about 20 rounds).
	TakeEvery, ComputeEvery time.Duration
	MaxDays                 int
	Now                     func() time.Time
	Logger                  *slog.Logger
	Registerer              prometheus.Registerer
}

// Periods is the statistics stage.
type Periods struct {
	o       PeriodsOptions
	marks   map[dayKey]*dayMarks
	dirty   bool     // marks changed since saved
	added   uint64   // the journal's last record after the last round's results
	lastDay struct { // the station-day mark found last (dayOf)
		key        dayKey
		start, end time.Time
	}
	pending prometheus.Gauge
	written *prometheus.CounterVec
	failed  prometheus.Counter
}

// dayKey is a station's local day, as its date.
type dayKey struct {
	station string
	date    string // "2006-01-02", local
}

// dayMarks says what of a station's day is to be computed.
type dayMarks struct {
	Hours uint32 `json:"hours"` // bit i: the hour starting i hours after local midnight
	Eflow bool   `json:"eflow"` // the ecological-flow account, and its month's
	Seq   uint64 `json:"seq"`   // the newest journal record marking it
	First uint64 `json:"first"` // the first: marks are computed in this order
}

// NewPeriods returns the stage; Run starts it.
func NewPeriods(o PeriodsOptions) (*Periods, error) {
	if o.Location == nil {
		o.Location = reading.Zone
	}
	if o.TakeEvery <= 0 {
		o.TakeEvery = time.Second
	}
	if o.ComputeEvery <= 0 {
		o.ComputeEvery = time.Minute
	}
	if o.MaxDays <= 0 {
		o.MaxDays = 500
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Periods{o: o, marks: map[dayKey]*dayMarks{},
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rivermon_periods_pending",
			Help: "Station-days whose statistics or ecological-flow accounts wait to be computed again."}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rivermon_periods_written_total",
			Help: "Points of statistics and ecological-flow accounts computed from stored data, by measurement."}, []string{"measurement"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "rivermon_periods_errors_total",
			Help: "Station-days whose computation failed (InfluxDB unreadable, spool full) and waits for the next round."}),
	}
	for _, m := range []string{"stats_hourly", "stats_daily", "stats_monthly", "eflow_daily", "eflow_monthly"} {
		p.written.WithLabelValues(m)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(p.pending, p.written, p.failed)
	}
	return p, p.load()
}

// load reads the marks saved by an earlier run.
func (p *Periods) load() error {
	if p.o.MarksFile == "" {
		return nil
	}
	b, err := os.ReadFile(p.o.MarksFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var saved map[string]*dayMarks
	if err := json.Unmarshal(b, &saved); err != nil {
		return fmt.Errorf("%s: %w", p.o.MarksFile, err)
	}
	for k, m := range saved {
		st, date, ok := strings.Cut(k, " ")
		if !ok || m == nil {
			return fmt.Errorf("%s: bad key %q", p.o.MarksFile, k)
		}
		p.marks[dayKey{st, date}] = m
	}
	p.pending.Set(float64(len(p.marks)))
	return nil
}

// save writes the marks when they changed.
func (p *Periods) save() error {
	if !p.dirty || p.o.MarksFile == "" {
		p.dirty = false
		return nil
	}
	out := make(map[string]*dayMarks, len(p.marks))
	for k, m := range p.marks {
		out[k.station+" "+k.date] = m
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := writeFileSynced(p.o.MarksFile, b); err != nil {
		return err
	}
	p.dirty = false
	return nil
}

// Run marks and computes periods until ctx ends. Started before delivery,
// it stops after it, so that its position follows delivery's to the end.
func (p *Periods) Run(ctx context.Context) error {
	take := time.NewTicker(p.o.TakeEvery)
	defer take.Stop()
	compute := time.NewTicker(p.o.ComputeEvery)
	defer compute.Stop()
	saveFailed := false
	for {
		err := p.take()
		if err != nil && !saveFailed {
			p.o.Logger.Error("cannot save the periods to compute; kept in memory until it can (a crash meanwhile forgets them)", "err", err)
		}
		saveFailed = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-take.C:
		case <-compute.C:
			p.compute(ctx)
		}
	}
}

// take marks the periods the journal's new records touch, saves the
// marks, and moves the stage's position past the records.
func (p *Periods) take() error {
	j := p.o.Journal
	after := j.Position(journal.PeriodsReader)
	last := after
	var rec journal.Record
	for {
		recs, err := j.Peek(last, 8<<20)
		if err != nil || len(recs) == 0 {
			break
		}
		for _, r := range recs {
			rec.Reset()
			if err := journal.Decode(r.Data, &rec, false); err != nil {
				p.o.Logger.Error("skipping a spool record that does not decode", "seq", r.Seq, "err", err)
			}
			for i := range rec.Entries {
				p.mark(&rec.Entries[i], r.Seq)
			}
			last = r.Seq
		}
	}
	if last == after {
		return nil
	}
	p.pending.Set(float64(len(p.marks)))
	// Marks that cannot be saved (a full disk) are kept in memory, and the
	// position moves on all the same: the spool must be able to let its
	// records go to get its disk back. Only a crash before the next save
	// then forgets them (their periods keep their old statistics).
	saveErr := p.save()
	if err := j.Delivered(journal.PeriodsReader, last); err != nil {
		return err
	}
	return saveErr
}

// mark notes what an entry touches.
func (p *Periods) mark(e *journal.Entry, seq uint64) {
	if e.Source == sourcePeriods {
		return
	}
	st := p.o.Registry.Station(e.Station)
	if st == nil {
		return
	}
	_, hasTarget := st.Limits["eflow_m3s"]
	eflow := false
	switch e.Kind {
	case journal.KindReading, journal.KindRevision, journal.KindCorrected:
		// A day the stream has closed and that changes again is
		// accounted from what is stored; one still open is the
		// stream's to account when it closes.
		eflow = hasTarget && !p.dayEnd(e.Time).After(p.o.Now())
	case journal.KindEflow:
		// The stream's account of a day: accounted again from what is
		// stored, which holds the corrections the stream never saw,
		// and the month with it.
		eflow = hasTarget
	default:
		return
	}
	k, start := p.dayOf(e.Station, e.Time)
	m := p.marks[k]
	if m == nil {
		m = &dayMarks{}
		p.marks[k] = m
	}
	if e.Kind != journal.KindEflow {
		m.Hours |= 1 << uint(min(e.Time.Sub(start)/time.Hour, 31))
	}
	m.Eflow = m.Eflow || eflow
	m.Seq = max(m.Seq, seq)
	if m.First == 0 {
		m.First = seq
	}
	p.dirty = true
}

// dayOf is the station-day of a time and the day's start. Records hold a
// station's samples in runs of one day: the last day found is kept, so
// that a run costs neither the calendar nor a formatted date.
func (p *Periods) dayOf(station string, t time.Time) (dayKey, time.Time) {
	if c := &p.lastDay; station == c.key.station && !t.Before(c.start) && t.Before(c.end) {
		return c.key, c.start
	}
	start := p.dayStart(t)
	p.lastDay.key, p.lastDay.start, p.lastDay.end = dayKey{station, start.Format(time.DateOnly)}, start, start.AddDate(0, 0, 1)
	return p.lastDay.key, start
}

func (p *Periods) dayStart(t time.Time) time.Time {
	l := t.In(p.o.Location)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, p.o.Location)
}

func (p *Periods) dayEnd(t time.Time) time.Time { return p.dayStart(t).AddDate(0, 0, 1) }

// compute computes the marked station-days whose records the output has,
// oldest marks first, and the months they are in.
func (p *Periods) compute(ctx context.Context) {
	stored := p.o.Journal.Position(p.o.Output)
	if stored < p.added {
		// The days a month is made of are read back from InfluxDB: wait
		// until what the last round wrote is there.
		return
	}
	if p.o.Journal.Behind(p.o.Output) > busyBacklog {
		// Ingestion first: while the output has a backlog, the queries
		// would take InfluxDB's time from it. The marks wait.
		return
	}
	var due []dayKey
	for k, m := range p.marks {
		if m.Seq <= stored {
			due = append(due, k)
		}
	}
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b dayKey) int {
		return cmp.Or(cmp.Compare(p.marks[a].First, p.marks[b].First), cmp.Compare(a.station, b.station), cmp.Compare(a.date, b.date))
	})
	due = due[:min(len(due), p.o.MaxDays)]
	// A station's days of one month are computed together, then the month.
	type monthKey struct{ station, month string }
	byMonth := map[monthKey][]dayKey{}
	var order []monthKey
	for _, k := range due {
		mk := monthKey{k.station, k.date[:7]}
		if byMonth[mk] == nil {
			order = append(order, mk)
		}
		byMonth[mk] = append(byMonth[mk], k)
	}
	start := time.Now()
	taken := start
	done := 0
	for _, mk := range order {
		if ctx.Err() != nil {
			break
		}
		// A long round goes on marking the new records, so that the spool
		// can let them go (the stage's position would hold it).
		if time.Since(taken) >= p.o.TakeEvery {
			if err := p.take(); err != nil {
				p.o.Logger.Error("cannot save the periods to compute; kept in memory until it can (a crash meanwhile forgets them)", "err", err)
			}
			taken = time.Now()
		}
		days := byMonth[mk]
		seqs := make([]uint64, len(days))
		for i, k := range days {
			seqs[i] = p.marks[k].Seq
		}
		var rec journal.Record
		err := p.computeMonth(ctx, &rec, mk.station, days)
		if err == nil {
			err = p.o.Journal.Add(&rec)
		}
		if err == nil {
			p.added = p.o.Journal.Last()
		}
		if err != nil {
			p.failed.Add(float64(len(days)))
			if ctx.Err() == nil {
				p.o.Logger.Warn("statistics not computed; trying again next round", "station", mk.station, "month", mk.month, "err", err)
			}
			continue
		}
		for _, e := range rec.Entries {
			p.written.WithLabelValues(measurementOf(e.Line)).Inc()
		}
		for i, k := range days {
			// A day marked again meanwhile is computed again.
			if p.marks[k].Seq == seqs[i] {
				delete(p.marks, k)
			}
		}
		p.dirty = true
		done += len(days)
	}
	if err := p.save(); err != nil {
		p.o.Logger.Error("cannot save the periods to compute", "err", err)
	}
	p.pending.Set(float64(len(p.marks)))
	if done > 0 {
		p.o.Logger.Debug("statistics computed", "station_days", done, "pending", len(p.marks), "took", time.Since(start))
	}
}

func measurementOf(line string) string {
	m, _, _ := strings.Cut(line, ",")
	return m
}

// computeMonth computes the marked days of one station in one month into
// rec, then the month's statistics and, when a day's ecological-flow
// account was computed, the month's account.
func (p *Periods) computeMonth(ctx context.Context, rec *journal.Record, station string, days []dayKey) error {
	st := p.o.Registry.Station(station)
	if st == nil {
		return nil
	}
	fresh := map[time.Time]map[string]hydro.Stats{}
	freshDays := map[time.Time]hydro.Day{}
	for _, k := range days {
		day := k.dayTime(p.o.Location)
		m := p.marks[k]
		stats, flowDay, err := p.computeDay(ctx, rec, st, day, m)
		if err != nil {
			return err
		}
		fresh[day] = stats
		if flowDay != nil {
			freshDays[day] = *flowDay
		}
	}
	monthStart := p.dayStart(days[0].dayTime(p.o.Location))
	monthStart = monthStart.AddDate(0, 0, 1-monthStart.Day())
	monthEnd := monthStart.AddDate(0, 1, 0)
	if err := p.monthStats(ctx, rec, st, monthStart, monthEnd, fresh); err != nil {
		return err
	}
	if len(freshDays) > 0 {
		return p.monthEflow(ctx, rec, st, monthStart, monthEnd, freshDays)
	}
	return nil
}

// dayTime is the local midnight of k's day (the date was written by
// Format, so it parses).
func (k dayKey) dayTime(loc *time.Location) time.Time {
	t, _ := time.ParseInLocation(time.DateOnly, k.date, loc)
	return t
}

// statsParams are the parameters a station's statistics are computed for:
// the codes it reports, and rated flow where it has a curve.
func statsParams(st *registry.Station) []string {
	params := slices.Clone(st.Params)
	if len(st.Rating) > 0 && !slices.Contains(params, reading.FieldFlowRated) {
		params = append(params, reading.FieldFlowRated)
	}
	return params
}

// timeWeighted says whether a parameter's mean is time-weighted: stage and
// discharge, whose means stand for volumes and levels over time; the
// others (quality, rain, temperature) are arithmetic means of the values.
func timeWeighted(param string) bool {
	switch param {
	case "level_m", "flow_m3s", reading.FieldFlowRated:
		return true
	}
	return false
}

// stationFilter is the WHERE clause choosing a station's points in [from, to).
func stationFilter(station string, from, to time.Time) string {
	return fmt.Sprintf("station = '%s' AND time >= %d AND time < %d",
		strings.ReplaceAll(station, "'", "\\'"), from.UnixNano(), to.UnixNano())
}

// computeDay computes a station's marked hours and its day from the
// stored readings of the day into rec, and the day's ecological-flow
// account when marked. It returns the day's statistics by parameter and
// the account (nil when not computed).
func (p *Periods) computeDay(ctx context.Context, rec *journal.Record, st *registry.Station, day time.Time, m *dayMarks) (map[string]hydro.Stats, *hydro.Day, error) {
	end := day.AddDate(0, 0, 1)
	params := statsParams(st)
	values := make(map[string][]hydro.Value, len(params))
	var flow []hydro.Value // what the ecological-flow day takes, as the stream takes it
	err := p.o.Query.Query(ctx, "SELECT * FROM reading WHERE "+stationFilter(st.ID, day, end), func(series []influx.Series) {
		for _, sr := range series {
			cols := make([][2]int, len(params)) // column of each parameter and of its flag
			for i, param := range params {
				cols[i] = [2]int{sr.Column(param), sr.Column(param + "_qc")}
			}
			flowCol, ratedCol := sr.Column("flow_m3s"), sr.Column(reading.FieldFlowRated)
			for _, row := range sr.Values {
				t := sr.Time(row)
				for i, param := range params {
					v, ok := sr.Float(row, cols[i][0])
					if !ok {
						continue
					}
					flag, _ := sr.Float(row, cols[i][1])
					values[param] = append(values[param], hydro.Value{T: t, V: v, Flag: int(flag)})
				}
				// Measured flow, else rated flow (station.go).
				if v, ok := sr.Float(row, flowCol); ok {
					flag, _ := sr.Float(row, sr.Column("flow_m3s_qc"))
					flow = append(flow, hydro.Value{T: t, V: v, Flag: int(flag)})
				} else if v, ok := sr.Float(row, ratedCol); ok {
					flag, _ := sr.Float(row, sr.Column(reading.FieldFlowRated+"_qc"))
					flow = append(flow, hydro.Value{T: t, V: v, Flag: int(flag)})
				}
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	interval := time.Duration(st.Interval)
	for h := range 32 {
		if m.Hours&(1<<uint(h)) == 0 {
			continue
		}
		from := day.Add(time.Duration(h) * time.Hour)
		if !from.Before(end) {
			break
		}
		to := from.Add(time.Hour)
		if to.After(end) {
			to = end
		}
		for _, param := range params {
			vs := values[param]
			lo, _ := slices.BinarySearchFunc(vs, from, func(v hydro.Value, t time.Time) int { return v.T.Compare(t) })
			hi, _ := slices.BinarySearchFunc(vs, to, func(v hydro.Value, t time.Time) int { return v.T.Compare(t) })
			if lo == hi {
				continue
			}
			rec.Entries = append(rec.Entries, statsEntry("stats_hourly", st, param, from,
				hydro.Summarize(vs[lo:hi], from, to, interval, timeWeighted(param))))
		}
	}
	daily := make(map[string]hydro.Stats, len(params))
	for _, param := range params {
		if vs := values[param]; len(vs) > 0 {
			daily[param] = hydro.Summarize(vs, day, end, interval, timeWeighted(param))
			rec.Entries = append(rec.Entries, statsEntry("stats_daily", st, param, day, daily[param]))
		}
	}
	target, hasTarget := st.Limits["eflow_m3s"]
	if !m.Eflow || !hasTarget || end.After(p.o.Now()) {
		return daily, nil, nil
	}
	fd := hydro.NewFlowDays(p.o.Location, interval, target, 2)
	for _, v := range flow {
		if hydro.Used(v.Flag) {
			fd.Add(v.T, v.V)
		}
	}
	acc, ok := fd.Account(day)
	if !ok {
		acc = hydro.Day{Start: day, Target: target}
	}
	e, _ := eflowEntry(nil, st, acc, sourcePeriods)
	rec.Entries = append(rec.Entries, e)
	return daily, &acc, nil
}

// monthStats computes the statistics of a station's month from those of
// its days: the days stored in InfluxDB, and fresh, the days just computed.
func (p *Periods) monthStats(ctx context.Context, rec *journal.Record, st *registry.Station, from, to time.Time, fresh map[time.Time]map[string]hydro.Stats) error {
	days := map[time.Time]map[string]hydro.Stats{}
	err := p.o.Query.Query(ctx, "SELECT * FROM stats_daily WHERE "+stationFilter(st.ID, from, to)+" GROUP BY param", func(series []influx.Series) {
		for _, sr := range series {
			param := sr.Tags["param"]
			for _, row := range sr.Values {
				t := sr.Time(row)
				if days[t] == nil {
					days[t] = map[string]hydro.Stats{}
				}
				days[t][param] = statsOf(&sr, row)
			}
		}
	})
	if err != nil {
		return err
	}
	for t, s := range fresh {
		days[t.UTC()] = s
	}
	byParam := map[string][]hydro.Stats{}
	for _, ps := range days {
		for param, s := range ps {
			byParam[param] = append(byParam[param], s)
		}
	}
	expected := to.Sub(from).Seconds() / time.Duration(st.Interval).Seconds()
	for _, param := range slices.Sorted(maps.Keys(byParam)) {
		rec.Entries = append(rec.Entries, statsEntry("stats_monthly", st, param, from, hydro.Combine(byParam[param], expected)))
	}
	return nil
}

// statsOf reads a stored statistics point back.
func statsOf(sr *influx.Series, row []any) hydro.Stats {
	f := func(col string) float64 {
		v, _ := sr.Float(row, sr.Column(col))
		return v
	}
	return hydro.Stats{Mean: f("mean"), Min: f("min"), Max: f("max"), Count: int(f("count")), Flagged: int(f("flagged")),
		Expected: f("expected"), Completeness: f("completeness"), Covered: f("covered_s")}
}

// monthEflow writes the ecological-flow account of a station's month from
// its days' accounts: those stored, and fresh, those just computed.
func (p *Periods) monthEflow(ctx context.Context, rec *journal.Record, st *registry.Station, from, to time.Time, fresh map[time.Time]hydro.Day) error {
	days := map[time.Time]hydro.Day{}
	err := p.o.Query.Query(ctx, "SELECT * FROM eflow_daily WHERE "+stationFilter(st.ID, from, to), func(series []influx.Series) {
		for _, sr := range series {
			for _, row := range sr.Values {
				t := sr.Time(row)
				d := hydro.Day{Start: t}
				d.MeanFlow, _ = sr.Float(row, sr.Column("mean_flow_m3s"))
				d.Target, _ = sr.Float(row, sr.Column("target_m3s"))
				d.Coverage, _ = sr.Float(row, sr.Column("coverage"))
				if c := sr.Column("compliant"); c >= 0 {
					d.Compliant, _ = row[c].(bool)
				}
				days[t] = d
			}
		}
	})
	if err != nil {
		return err
	}
	for t, d := range fresh {
		days[t.UTC()] = d
	}
	ma, _ := loadMonthAccounts("", p.o.Location)
	var acc monthAccount
	for _, t := range slices.SortedFunc(maps.Keys(days), time.Time.Compare) {
		acc = ma.put(st.ID, days[t])
	}
	e, _ := eflowMonthEntry(nil, st, acc, sourcePeriods)
	rec.Entries = append(rec.Entries, e)
	return nil
}

// writeFileSynced replaces path with b: a new file, synced, renamed over
// the old one, the folder synced.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return nil
}
