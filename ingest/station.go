package ingest

import (
	"errors"
	"math"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// eflowKeepDays is how many local days of flow, before the newest, each
// station keeps for rewriting a day's account when late data arrives: the
// day before and the one before it, which cover a day's close (two hours
// after midnight) and a night's backlog. A later value for an older day is
// accounted by the statistics stage (periods.go) from what InfluxDB
// stores, as a correction is; memory holds no week of flow per station.
const eflowKeepDays = 2

// station is the streaming state of one station: its QC series, its
// ecological-flow days, and when it was last heard from. It sees samples
// and the time, and answers with assessed values; it writes nothing.
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
		reading: string(lineproto.AppendSeries(nil, "reading", st.ID, st.River))}
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
	reopened  []time.Time // starts of the closed days this sample changed (nil nearly always)
}

type revision struct {
	t     time.Time
	codes []string
	flag  int
}

// assess runs QC and the derivations on one sample. forced holds QC flags
// a device imposed on some values (HJ 212 data flags): a forced fail is not
// fed to the QC tests (a calibration value would spoil their windows); a
// forced suspect or not evaluated flag stands unless the tests find worse.
// m counts flags and skipped derivations; nil while rebuilding state at
// start-up.
func (s *station) assess(smp *reading.Sample, forced map[string]int, m *Metrics) assessed {
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
					codes = append(codes, reading.FieldFlowRated)
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
		if m != nil {
			m.qcFlag[flag].Inc()
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
	// Discharge from the rating curve and the shift in force at the
	// sample's time (a reprocess rates stored stages with the same
	// function); never extrapolated beyond the rated range.
	if !math.IsNaN(level) && len(s.reg.Rating) > 0 {
		var err error
		a.rated, err = hydro.RatedFlow(s.reg, smp.Time, level)
		switch {
		case err == nil:
			a.hasRated, a.ratedFlag = true, levelFlag
		case m != nil && errors.Is(err, hydro.ErrOutsideRating):
			m.skipped.WithLabelValues("outside_rating").Inc()
		case m != nil:
			m.skipped.WithLabelValues("no_rating").Inc()
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
		// A value flagged suspect or failed only now (its spike seen with
		// this sample) leaves its day: measured flow's own revision, or
		// the stage's at a station without a flow meter (rated flow).
		for _, r := range a.revisions {
			if r.flag <= int(quality.NotEvaluated) || (r.codes[0] != "flow_m3s" && (r.codes[0] != "level_m" || s.reg.Reports("flow_m3s"))) {
				continue
			}
			if day, reopened, removed := s.days.Remove(r.t); removed && reopened {
				a.reopened = append(a.reopened, day)
			}
		}
		q, ok := flow, !math.IsNaN(flow) && flowFlag <= int(quality.NotEvaluated)
		if math.IsNaN(flow) && a.hasRated {
			q, ok = a.rated, a.ratedFlag <= int(quality.NotEvaluated)
		}
		if ok {
			day, reopened, kept := s.days.Add(smp.Time, q)
			switch {
			case !kept && m != nil:
				m.skipped.WithLabelValues("eflow_too_late").Inc()
			case reopened:
				// Written again once the whole message is in.
				a.reopened = append(a.reopened, day)
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

// observed is the sample as alert rules see it.
func (a *assessed) observed(station string) reading.Observed {
	s := reading.Observed{Station: station, Time: a.sample.Time, Values: make([]reading.ObservedValue, len(a.sample.Values), len(a.sample.Values)+2)}
	for i, v := range a.sample.Values {
		s.Values[i] = reading.ObservedValue{Code: v.Code, V: v.Value, Flag: a.flags[i]}
	}
	if a.hasRated {
		s.Values = append(s.Values, reading.ObservedValue{Code: reading.FieldFlowRated, V: a.rated, Flag: a.ratedFlag})
	}
	if a.wqClass > 0 {
		s.Values = append(s.Values, reading.ObservedValue{Code: reading.FieldWQClass, V: float64(a.wqClass), Flag: int(quality.Pass)})
	}
	return s
}
