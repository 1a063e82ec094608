package ingest

import (
	"slices"
	"sort"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/reading"
)

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
func (s *Stream) Rebuild(points []HistoryPoint) {
	sort.SliceStable(points, func(i, j int) bool { return points[i].Time.Before(points[j].Time) })
	for _, hp := range points {
		ss := s.state[hp.Station]
		if ss == nil {
			continue
		}
		smp := reading.Sample{Time: hp.Time}
		for _, prm := range reading.Params() {
			if v, ok := hp.Values[prm.Code]; ok {
				smp.Values = append(smp.Values, reading.Value{Code: prm.Code, Value: v})
			}
		}
		if len(smp.Values) > 0 {
			ss.assess(&smp, nil, nil)
		}
	}
}

// HistoryNeeds says what Rebuild wants read back: every parameter for the
// longest QC window of any series, and flow and level (from which rated
// flow comes) for the ecological-flow days of the stations that keep them.
func (s *Stream) HistoryNeeds() (qcWindow time.Duration, flowDays time.Duration, flowStations []string) {
	for id, ss := range s.state {
		for _, ser := range ss.series {
			qcWindow = max(qcWindow, ser.Keep())
		}
		if ss.days != nil {
			flowStations = append(flowStations, id)
		}
	}
	slices.Sort(flowStations)
	// The days kept, and the day under way.
	return qcWindow, (eflowKeepDays + 1) * 24 * time.Hour, flowStations
}

// JournalHistory returns the samples the journal holds and delivery has not
// stored yet in output, with the values they were received with, for
// Rebuild after the history read back from that output.
func JournalHistory(j *journal.Journal, output string) []HistoryPoint {
	var out []HistoryPoint
	j.Readings(journal.OutputReader(output), func(e *journal.Entry) {
		hp := HistoryPoint{Station: e.Station, Time: e.Time, Values: make(map[string]float64, len(e.Values))}
		for _, v := range e.Values {
			hp.Values[v.Code] = v.Value
		}
		out = append(out, hp)
	})
	return out
}
