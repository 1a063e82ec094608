package ingest

import (
	"errors"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Derived field names (CONTRACT §6).
const (
	FieldFlowRated = "flow_rated_m3s"
	FieldWQClass   = "wq_class"
)

// eflowKeepDays is how many local days of flow each station keeps for
// rewriting a day's account when late data arrives.
const eflowKeepDays = 7

// station is the streaming state of one station: its QC series, its
// ecological-flow days, and when it was last heard from.
type station struct {
	reg      *registry.Station
	reading  string // "reading,river=…,station=… ", the start of its points
	series   map[string]*quality.Series
	days     *hydro.FlowDays // nil without an eflow_m3s limit
	heard    time.Time       // wall clock of the newest message
	silenced bool            // marked offline for silence, until heard again
	held     []heldValue     // values whose QC flag waits for the next value (final.go)
	graded   []gradedItem    // the latest valid value of each graded item
}

func newStation(st *registry.Station, loc *time.Location) *station {
	s := &station{reg: st, series: map[string]*quality.Series{},
		reading: string(appendSeries(nil, "reading", st.ID, st.River))}
	for code, cfg := range st.QC {
		s.series[code] = quality.NewSeries(cfg, time.Duration(st.Interval))
	}
	if target, ok := st.Limits["eflow_m3s"]; ok {
		s.days = hydro.NewFlowDays(loc, time.Duration(st.Interval), target, eflowKeepDays)
	}
	return s
}

// assessed is one sample with its QC flags and derived values.
type assessed struct {
	sample    *reading.Sample
	flags     []int // per sample value
	rated     float64
	hasRated  bool
	ratedFlag int
	wqClass   int // 0: no graded item
	revisions []revision
	eflow     []hydro.Day // accounts of days this sample closed
	reopened  time.Time   // start of the closed day this sample changed, if any
}

type revision struct {
	t     time.Time
	codes []string
	flag  int
}

// assess runs QC and the derivations on one sample. history is true while
// rebuilding state at start-up: nothing is counted.
func (p *Pipeline) assess(s *station, smp *reading.Sample, history bool) assessed {
	return p.assessForced(s, smp, nil, history)
}

// assessForced is assess with QC flags a device imposed on some values
// (HJ 212 data flags): a forced fail is not fed to the QC tests (a
// calibration value would spoil their windows); a forced suspect or not
// evaluated flag stands unless the tests find worse.
func (p *Pipeline) assessForced(s *station, smp *reading.Sample, forced map[string]int, history bool) assessed {
	a := assessed{sample: smp, flags: make([]int, len(smp.Values))}
	var level, flow, temp = math.NaN(), math.NaN(), math.NaN()
	levelFlag, flowFlag := 0, 0
	for i, v := range smp.Values {
		flag := quality.NotEvaluated
		imposed := quality.Flag(forced[v.Code])
		if ser := s.series[v.Code]; ser != nil && imposed != quality.Fail {
			fl, rev := ser.Add(smp.Time, v.Value)
			flag = fl.Aggregate()
			if rev != nil {
				codes := []string{v.Code}
				if v.Code == "level_m" && len(s.reg.Rating) > 0 {
					codes = append(codes, FieldFlowRated)
				}
				a.revisions = append(a.revisions, revision{t: rev.Time, codes: codes, flag: int(rev.Flag)})
			}
		}
		switch {
		case imposed == quality.Fail, imposed == quality.Suspect && flag != quality.Fail:
			flag = imposed
		case imposed == quality.NotEvaluated && flag == quality.Pass:
			flag = quality.NotEvaluated
		}
		a.flags[i] = int(flag)
		if !history {
			p.m.qcFlag[flag].Inc()
		}
		switch v.Code {
		case "level_m":
			level, levelFlag = v.Value, int(flag)
		case "flow_m3s":
			flow, flowFlag = v.Value, int(flag)
		case "water_temp_c":
			if flag != quality.Fail {
				temp = v.Value
			}
		}
	}
	// Discharge from the rating curve in force at the sample's time; never
	// extrapolated beyond the rated range.
	if !math.IsNaN(level) && len(s.reg.Rating) > 0 {
		r, err := hydro.RatingAt(s.reg.Rating, smp.Time)
		if err == nil {
			a.rated, err = hydro.Flow(r, level)
		}
		switch {
		case err == nil:
			a.hasRated, a.ratedFlag = true, levelFlag
		case !history && errors.Is(err, hydro.ErrOutsideRating):
			p.m.skipped.WithLabelValues("outside_rating").Inc()
		case !history:
			p.m.skipped.WithLabelValues("no_rating").Inc()
		}
	}
	// GB 3838-2002 class of the section, on samples with a graded item.
	cond := quality.Conditions{WaterTempC: temp, ElevationM: s.reg.ElevationM}
	graded := false
	for i, v := range smp.Values {
		if !quality.Graded(v.Code) {
			continue
		}
		graded = true
		if a.flags[i] == int(quality.Fail) {
			continue
		}
		if c, ok := quality.ItemClass(v.Code, v.Value, cond); ok {
			s.grade(v.Code, smp.Time, c)
		}
	}
	if graded {
		a.wqClass = s.sectionClass(smp.Time)
	}
	// Ecological flow: measured flow, else rated flow, from values that
	// passed QC or could not be judged (suspect and failed values excluded).
	if s.days != nil {
		q, ok := flow, !math.IsNaN(flow) && flowFlag <= int(quality.NotEvaluated)
		if math.IsNaN(flow) && a.hasRated {
			q, ok = a.rated, a.ratedFlag <= int(quality.NotEvaluated)
		}
		if ok {
			day, reopened, kept := s.days.Add(smp.Time, q)
			switch {
			case !kept && !history:
				p.m.skipped.WithLabelValues("eflow_too_late").Inc()
			case reopened:
				// Written again once the whole message is in (storeSamples).
				a.reopened = day
			}
			// Data for a later day closes the days before it.
			if kept {
				a.eflow = append(a.eflow, s.days.Close(day)...)
			}
		}
	}
	return a
}

// gradedItem is the latest value of one GB 3838-2002 item that did not fail
// QC, with its class.
type gradedItem struct {
	code    string
	t       time.Time
	class   int
	spacing time.Duration // between its last two values: the item's own interval
}

// minValidity is the least time a graded value stands for its item.
const minValidity = 4 * time.Hour

// valid is how long the item's latest value stands for it: three of its
// own reporting intervals, at least minValidity. An hourly nutrient
// analyser's value counts for the 5-minute samples of the hours after it.
func (g *gradedItem) valid() time.Duration { return max(minValidity, 3*g.spacing) }

// grade records the class of an item's value at t.
func (s *station) grade(code string, t time.Time, class int) {
	for i := range s.graded {
		g := &s.graded[i]
		if g.code != code {
			continue
		}
		switch {
		case t.After(g.t):
			g.spacing, g.t, g.class = t.Sub(g.t), t, class
		case t.Equal(g.t):
			g.class = class // the same time again: the later value wins
		}
		return
	}
	s.graded = append(s.graded, gradedItem{code: code, t: t, class: class, spacing: time.Duration(s.reg.Interval)})
}

// sectionClass is the water-quality class of the section at t (GB 3838-2002
// §5: the worst item decides): the worst class among the latest values of
// its items that are still valid at t; 0 when none is.
func (s *station) sectionClass(t time.Time) int {
	class := 0
	for i := range s.graded {
		g := &s.graded[i]
		if age := t.Sub(g.t); age >= 0 && age <= g.valid() {
			class = max(class, g.class)
		}
	}
	return class
}

// stored is the sample as observers see it.
func (a *assessed) stored(station string) StoredSample {
	s := StoredSample{Station: station, Time: a.sample.Time, Values: make([]StoredValue, len(a.sample.Values), len(a.sample.Values)+2)}
	for i, v := range a.sample.Values {
		s.Values[i] = StoredValue{v.Code, v.Value, a.flags[i]}
	}
	if a.hasRated {
		s.Values = append(s.Values, StoredValue{FieldFlowRated, a.rated, a.ratedFlag})
	}
	if a.wqClass > 0 {
		s.Values = append(s.Values, StoredValue{FieldWQClass, float64(a.wqClass), int(quality.Pass)})
	}
	return s
}

// readingLine renders an assessed sample as a point of measurement
// `reading` (CONTRACT §6); series is the station's "reading,river=…,station=… ".
func readingLine(b []byte, series string, a *assessed) []byte {
	b = append(b, series...)
	for i, v := range a.sample.Values {
		b = appendFloatField(b, i == 0, v.Code, v.Value)
		b = appendFlagField(b, v.Code, a.flags[i])
	}
	if a.hasRated {
		b = appendFloatField(b, false, FieldFlowRated, a.rated)
		b = appendFlagField(b, FieldFlowRated, a.ratedFlag)
	}
	if a.wqClass > 0 {
		b = appendIntField(b, FieldWQClass, int64(a.wqClass))
	}
	return appendTime(b, a.sample.Time)
}

// revisionLine rewrites the QC flags of an earlier point.
func revisionLine(b []byte, series string, r revision) []byte {
	b = append(b, series...)
	for i, c := range r.codes {
		if i == 0 {
			b = append(b, c...)
			b = append(b, "_qc="...)
			b = strconv.AppendInt(b, int64(r.flag), 10)
			b = append(b, 'i')
			continue
		}
		b = appendFlagField(b, c, r.flag)
	}
	return appendTime(b, r.t)
}

// eflowLine renders a day's account as a point of `eflow_daily`, stamped
// with the start of the local day.
func eflowLine(b []byte, station, river string, d hydro.Day) []byte {
	b = appendSeries(b, "eflow_daily", station, river)
	b = appendFloatField(b, true, "mean_flow_m3s", d.MeanFlow)
	b = appendFloatField(b, false, "target_m3s", d.Target)
	b = append(b, ",compliant="...)
	b = strconv.AppendBool(b, d.Compliant)
	b = appendFloatField(b, false, "coverage", d.Coverage)
	b = appendIntField(b, "samples", int64(d.Samples))
	return appendTime(b, d.Start)
}

// HistoryPoint is a stored sample read back at start-up to rebuild the
// streaming state (QC windows, ecological-flow days).
type HistoryPoint struct {
	Station string
	Time    time.Time
	Values  map[string]float64
}

// Rebuild feeds stored samples, oldest first, into the QC series and flow
// days, so that the first samples after a restart are judged as they would
// have been without it. It writes nothing. Call it before Run.
func (p *Pipeline) Rebuild(points []HistoryPoint) {
	sort.SliceStable(points, func(i, j int) bool { return points[i].Time.Before(points[j].Time) })
	for _, hp := range points {
		s := p.state[hp.Station]
		if s == nil {
			continue
		}
		smp := reading.Sample{Time: hp.Time}
		for _, prm := range reading.Params() {
			if v, ok := hp.Values[prm.Code]; ok {
				smp.Values = append(smp.Values, reading.Value{Code: prm.Code, Value: v})
			}
		}
		if len(smp.Values) > 0 {
			p.assess(s, &smp, true)
		}
	}
}

// HistoryNeeds says what Rebuild wants read back: every parameter for the
// longest QC window of any series, and flow and level (from which rated
// flow comes) for the ecological-flow days of the stations that keep them.
func (p *Pipeline) HistoryNeeds() (qcWindow time.Duration, flowDays time.Duration, flowStations []string) {
	for id, s := range p.state {
		for _, ser := range s.series {
			qcWindow = max(qcWindow, ser.Keep())
		}
		if s.days != nil {
			flowStations = append(flowStations, id)
		}
	}
	slices.Sort(flowStations)
	// The days kept, and the day under way.
	return qcWindow, (eflowKeepDays + 1) * 24 * time.Hour, flowStations
}

// SpoolHistory returns the samples held in the spool and not yet
// delivered, parsed back from their lines, for Rebuild.
func (p *Pipeline) SpoolHistory() []HistoryPoint {
	var out []HistoryPoint
	after := uint64(0)
	for {
		recs, err := p.o.Spool.Peek(after, 8<<20)
		if err != nil || len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			lines, _, err := decodeRecord(r.Data, nil, nil)
			if err != nil {
				continue
			}
			for _, l := range lines {
				if hp, ok := parseReadingLine(l); ok {
					out = append(out, hp)
				}
			}
			after = r.Seq
		}
	}
}

// parseReadingLine reads a `reading` line this package wrote back into a
// sample (float fields only; flags and derived fields are recomputed).
func parseReadingLine(l string) (HistoryPoint, bool) {
	if !strings.HasPrefix(l, "reading,") {
		return HistoryPoint{}, false
	}
	station := lineStation(l)
	sp := strings.IndexByte(l, ' ')
	end := strings.LastIndexByte(l, ' ')
	ts, ok := lineTime(l)
	if station == "" || sp < 0 || end <= sp || !ok {
		return HistoryPoint{}, false
	}
	hp := HistoryPoint{Station: station, Time: time.Unix(0, ts).UTC(), Values: map[string]float64{}}
	for _, f := range strings.Split(l[sp+1:end], ",") {
		k, v, found := strings.Cut(f, "=")
		if !found || !reading.IsParam(k) {
			continue
		}
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			hp.Values[k] = x
		}
	}
	return hp, len(hp.Values) > 0
}

// stateLine renders the `station_state` snapshot of a station for the
// dashboards: where it is, its limits, and how it is doing now. Written every
// StateEvery, it brings the registry's coordinates, names and limits into
// InfluxDB, where Grafana can draw them.
func stateLine(b []byte, st *registry.Station, v *StationView, alertLevel int, now time.Time) []byte {
	b = appendSeries(b, "station_state", st.ID, st.River)
	b = appendFloatField(b, true, "lat", st.Lat)
	b = appendFloatField(b, false, "lon", st.Lon)
	b = appendFloatField(b, false, "elevation_m", st.ElevationM)
	b = appendStringField(b, "name", st.Name)
	b = appendStringField(b, "name_en", st.NameEN)
	b = appendStringField(b, "county", st.County)
	for _, k := range slices.Sorted(maps.Keys(st.Limits)) {
		b = appendFloatField(b, false, k, st.Limits[k])
	}
	if c, ok := st.Limits["wq_target_class"]; ok {
		for _, code := range []string{"do_mgl", "codmn_mgl", "nh3n_mgl", "tp_mgl"} {
			if lim, ok := quality.ClassLimit(code, int(c)); ok && st.Reports(code) {
				b = appendFloatField(b, false, "wq_limit_"+code, lim)
			}
		}
	}
	online := v.Online == nil || *v.Online
	b = append(b, ",online="...)
	b = strconv.AppendBool(b, online)
	if v.LastSeen != nil {
		b = appendFloatField(b, false, "silent_s", math.Max(0, now.Sub(*v.LastSeen).Seconds()))
	}
	// The worst flag among the newest values: 4 over 3 over 1; 2 only when
	// nothing could be judged.
	worst := 0
	for _, x := range v.Values {
		switch {
		case x.QC == int(quality.NotEvaluated) && worst == 0:
			worst = x.QC
		case x.QC != int(quality.NotEvaluated) && (x.QC > worst || worst == int(quality.NotEvaluated)):
			worst = x.QC
		}
	}
	if worst > 0 {
		b = appendIntField(b, "qc_worst", int64(worst))
	}
	if v.WQClass != nil {
		b = appendIntField(b, "wq_class", int64(*v.WQClass))
	}
	b = appendIntField(b, "alert_level", int64(alertLevel))
	b = appendIntField(b, "seq_gaps", v.Seq.Gaps)
	b = appendIntField(b, "seq_repeats", v.Seq.Repeats)
	return appendTime(b, now)
}

var fieldStringEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func appendStringField(b []byte, key, v string) []byte {
	b = append(b, ',')
	b = append(b, key...)
	b = append(b, `="`...)
	b = append(b, fieldStringEscaper.Replace(v)...)
	return append(b, '"')
}
