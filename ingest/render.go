package ingest

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Sources of the points rivermon derives on the wall clock rather than
// from a message.
const (
	sourceSweep = "sweep" // silence, days closed by the clock
	sourceState = "state" // station_state snapshots
)

// The renderers below turn what the stream decided into journal entries:
// the point in line protocol (CONTRACT §6) beside its station, time and
// source. buf is scratch space, returned for reuse.

// readingEntry renders an assessed sample as a point of `reading`.
func readingEntry(buf []byte, s *station, a *assessed, source string) (journal.Entry, []byte) {
	b := append(buf[:0], s.reading...)
	for i, v := range a.sample.Values {
		b = lineproto.AppendFloatField(b, i == 0, v.Code, v.Value)
		b = lineproto.AppendFlagField(b, v.Code, a.flags[i])
	}
	if a.hasRated {
		b = lineproto.AppendFloatField(b, false, reading.FieldFlowRated, a.rated)
		b = lineproto.AppendFlagField(b, reading.FieldFlowRated, a.ratedFlag)
	}
	if a.wqClass > 0 {
		b = lineproto.AppendIntField(b, reading.FieldWQClass, int64(a.wqClass))
	}
	b = lineproto.AppendTime(b, a.sample.Time)
	return journal.Entry{Kind: journal.KindReading, Station: s.reg.ID, Time: a.sample.Time, Source: source,
		Line: string(b), Values: a.sample.Values}, b
}

// revisionEntry rewrites the QC flags of an earlier point.
func revisionEntry(buf []byte, s *station, r revision, source string) (journal.Entry, []byte) {
	b := append(buf[:0], s.reading...)
	for i, c := range r.codes {
		if i == 0 {
			b = append(b, c...)
			b = append(b, "_qc="...)
			b = strconv.AppendInt(b, int64(r.flag), 10)
			b = append(b, 'i')
			continue
		}
		b = lineproto.AppendFlagField(b, c, r.flag)
	}
	b = lineproto.AppendTime(b, r.t)
	return journal.Entry{Kind: journal.KindRevision, Station: s.reg.ID, Time: r.t, Source: source, Line: string(b)}, b
}

// eflowEntry renders a day's account as a point of `eflow_daily`, stamped
// with the start of the local day.
func eflowEntry(buf []byte, st *registry.Station, d hydro.Day, source string) (journal.Entry, []byte) {
	b := lineproto.AppendSeries(buf[:0], "eflow_daily", st.ID, st.River)
	b = lineproto.AppendFloatField(b, true, "mean_flow_m3s", d.MeanFlow)
	b = lineproto.AppendFloatField(b, false, "target_m3s", d.Target)
	b = lineproto.AppendBoolField(b, "compliant", d.Compliant)
	b = lineproto.AppendFloatField(b, false, "coverage", d.Coverage)
	b = lineproto.AppendIntField(b, "samples", int64(d.Samples))
	b = lineproto.AppendTime(b, d.Start)
	return journal.Entry{Kind: journal.KindEflow, Station: st.ID, Time: d.Start, Source: source, Line: string(b)}, b
}

// eflowMonthEntry renders a month's account as a point of
// `eflow_monthly`, stamped with the local midnight of its 1st.
func eflowMonthEntry(buf []byte, st *registry.Station, a monthAccount, source string) (journal.Entry, []byte) {
	b := lineproto.AppendSeries(buf[:0], "eflow_monthly", st.ID, st.River)
	b = lineproto.AppendFloatField(b, true, "rate_calendar", a.RateCalendar)
	b = lineproto.AppendIntField(b, "days", int64(a.Days))
	b = lineproto.AppendIntField(b, "days_valid", int64(a.Valid))
	b = lineproto.AppendIntField(b, "days_compliant", int64(a.Compliant))
	if a.hasRate {
		b = lineproto.AppendFloatField(b, false, "rate", a.Rate)
		b = lineproto.AppendFloatField(b, false, "mean_flow_m3s", a.MeanFlow)
	}
	b = lineproto.AppendFloatField(b, false, "target_m3s", a.Target)
	b = lineproto.AppendBoolField(b, "guaranteed", a.MeetsGuarantee)
	b = lineproto.AppendTime(b, a.Start)
	return journal.Entry{Kind: journal.KindEflowMonth, Station: st.ID, Time: a.Start, Source: source, Line: string(b)}, b
}

// statusEntry renders a status message as a point of `station_status`.
func statusEntry(buf []byte, st *registry.Station, s *reading.Status, t time.Time, source string) (journal.Entry, []byte) {
	b := lineproto.AppendSeries(buf[:0], "station_status", st.ID, st.River)
	b = append(b, "online="...)
	b = strconv.AppendBool(b, s.Online)
	for _, f := range []struct {
		key string
		v   *float64
	}{{"battery_v", s.BatteryV}, {"signal_dbm", s.SignalDBm}, {"enclosure_temp_c", s.EnclosureTempC}} {
		if f.v != nil {
			b = lineproto.AppendFloatField(b, false, f.key, *f.v)
		}
	}
	b = lineproto.AppendTime(b, t)
	return journal.Entry{Kind: journal.KindStatus, Station: st.ID, Time: t, Source: source, Line: string(b)}, b
}

// StateEntry renders the `station_state` snapshot of a station for the
// dashboards: where it is, its limits, and how it is doing now, with the
// severity of its worst firing alert (0 none, 1 info, 2 warning, 3
// critical). Written every few minutes, it brings the registry's
// coordinates, names and limits into InfluxDB, where Grafana can draw them.
func StateEntry(st *registry.Station, v *StationView, alertLevel int, now time.Time) journal.Entry {
	b := lineproto.AppendSeries(nil, "station_state", st.ID, st.River)
	b = lineproto.AppendFloatField(b, true, "lat", st.Lat)
	b = lineproto.AppendFloatField(b, false, "lon", st.Lon)
	b = lineproto.AppendFloatField(b, false, "elevation_m", st.ElevationM)
	b = lineproto.AppendStringField(b, "name", st.Name)
	b = lineproto.AppendStringField(b, "name_en", st.NameEN)
	b = lineproto.AppendStringField(b, "county", st.County)
	for _, k := range slices.Sorted(maps.Keys(st.Limits)) {
		b = lineproto.AppendFloatField(b, false, k, st.Limits[k])
	}
	if c, ok := st.Limits["wq_target_class"]; ok {
		for _, code := range quality.GradedCodes() {
			if lim, ok := quality.ClassLimit(code, int(c)); ok && st.Reports(code) {
				b = lineproto.AppendFloatField(b, false, "wq_limit_"+code, lim)
			}
		}
	}
	b = lineproto.AppendBoolField(b, "online", v.Online == nil || *v.Online)
	if v.LastSeen != nil {
		b = lineproto.AppendFloatField(b, false, "silent_s", math.Max(0, now.Sub(*v.LastSeen).Seconds()))
	}
	if worst := worstFlag(v.Values); worst > 0 {
		b = lineproto.AppendIntField(b, "qc_worst", int64(worst))
	}
	if v.WQClass != nil {
		b = lineproto.AppendIntField(b, reading.FieldWQClass, int64(*v.WQClass))
	}
	b = lineproto.AppendIntField(b, "alert_level", int64(alertLevel))
	b = lineproto.AppendIntField(b, "seq_gaps", v.Seq.Gaps)
	b = lineproto.AppendIntField(b, "seq_repeats", v.Seq.Repeats)
	b = lineproto.AppendTime(b, now)
	return journal.Entry{Kind: journal.KindState, Station: st.ID, Time: now, Source: sourceState, Line: string(b)}
}

// worstFlag is the worst flag among the newest values: 4 over 3 over 1; 2
// only when nothing could be judged; 0 without values.
func worstFlag(vs map[string]ValueView) int {
	worst := 0
	for _, x := range vs {
		switch {
		case x.QC == int(quality.NotEvaluated) && worst == 0:
			worst = x.QC
		case x.QC != int(quality.NotEvaluated) && (x.QC > worst || worst == int(quality.NotEvaluated)):
			worst = x.QC
		}
	}
	return worst
}

// statsEntry renders the statistics of one parameter over a period as a
// point of measurement (`stats_hourly`, `stats_daily`, `stats_monthly`),
// stamped with the start of the period. Mean, min and max are written
// only when values were used: a period left with none keeps count 0.
func statsEntry(measurement string, st *registry.Station, param string, start time.Time, s hydro.Stats) journal.Entry {
	b := append([]byte(measurement), ",param="...)
	b = append(b, param...) // parameter codes need no escaping
	b = lineproto.AppendTag(b, "river", st.River)
	b = lineproto.AppendTag(b, "station", st.ID)
	b = append(b, ' ')
	b = lineproto.AppendFloatField(b, true, "expected", s.Expected)
	b = lineproto.AppendIntField(b, "count", int64(s.Count))
	b = lineproto.AppendIntField(b, "flagged", int64(s.Flagged))
	b = lineproto.AppendFloatField(b, false, "completeness", s.Completeness)
	b = lineproto.AppendFloatField(b, false, "covered_s", s.Covered)
	if s.Count > 0 {
		b = lineproto.AppendFloatField(b, false, "mean", s.Mean)
		b = lineproto.AppendFloatField(b, false, "min", s.Min)
		b = lineproto.AppendFloatField(b, false, "max", s.Max)
	}
	b = lineproto.AppendTime(b, start)
	return journal.Entry{Kind: journal.KindStats, Station: st.ID, Time: start, Source: sourcePeriods, Line: string(b)}
}
