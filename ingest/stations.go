package ingest

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// ValueView is the newest stored value of one parameter.
type ValueView struct {
	Value float64   `json:"value"`
	QC    int       `json:"qc"`
	Time  time.Time `json:"time"`
}

// SeqView counts a station's message counter anomalies.
type SeqView struct {
	Last    int64 `json:"last"`
	Gaps    int64 `json:"gaps"`
	Repeats int64 `json:"repeats"`
}

// StatusView is the newest device-health report.
type StatusView struct {
	Time           time.Time `json:"time"`
	BatteryV       *float64  `json:"battery_v,omitempty"`
	SignalDBm      *float64  `json:"signal_dbm,omitempty"`
	EnclosureTempC *float64  `json:"enclosure_temp_c,omitempty"`
}

// EflowView is today's ecological-flow account so far.
type EflowView struct {
	Day       time.Time `json:"day"`
	MeanFlow  float64   `json:"mean_flow_m3s"`
	Target    float64   `json:"target_m3s"`
	Coverage  float64   `json:"coverage"`
	Compliant bool      `json:"compliant_so_far"`
}

// StationView is what /api/v1/stations shows for one station.
type StationView struct {
	ID           string               `json:"id"`
	Name         string               `json:"name"`
	NameEN       string               `json:"name_en"`
	River        string               `json:"river"`
	LastSeen     *time.Time           `json:"last_seen"`
	LastReceived *time.Time           `json:"last_received"`
	Values       map[string]ValueView `json:"values"`
	WQClass      *int                 `json:"wq_class"`
	EflowToday   *EflowView           `json:"eflow_today"`
	Seq          SeqView              `json:"seq"`
	Online       *bool                `json:"online"`
	Status       *StatusView          `json:"status,omitempty"`
	// DeadLetters counts the station's rejections by reason over the last
	// DeadLetterWindow (since rivermon started, at most), at an hour's
	// resolution: what the station has been sending wrong lately.
	DeadLetters  map[string]int `json:"dead_letters_24h"`
	ActiveAlerts []any          `json:"active_alerts"`
}

// Stations is the live view of every registered station, updated as
// samples are stored.
type Stations struct {
	mu       sync.Mutex
	order    []string
	byID     map[string]*StationView
	seqSeen  map[string]bool
	lastSeen *prometheus.GaugeVec
	// The last-seen gauge of each station that has one (a station never
	// heard from has none), resolved once.
	lastSeenOf map[string]prometheus.Gauge
	dead       map[string]*deadLetterHours
}

func newStations(reg *registry.Registry, lastSeen *prometheus.GaugeVec) *Stations {
	s := &Stations{byID: map[string]*StationView{}, seqSeen: map[string]bool{}, lastSeen: lastSeen,
		lastSeenOf: map[string]prometheus.Gauge{}, dead: map[string]*deadLetterHours{}}
	for _, st := range reg.Stations {
		s.order = append(s.order, st.ID)
		s.dead[st.ID] = &deadLetterHours{}
		s.byID[st.ID] = &StationView{ID: st.ID, Name: st.Name, NameEN: st.NameEN, River: st.River,
			Values: map[string]ValueView{}, ActiveAlerts: []any{}}
	}
	return s
}

// Snapshot returns a copy of every station's view in registry order, with
// the dead letters of the window ending at now.
func (s *Stations) Snapshot(now time.Time) []StationView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StationView, 0, len(s.order))
	for _, id := range s.order {
		v := *s.byID[id]
		v.Values = make(map[string]ValueView, len(v.Values))
		for k, x := range s.byID[id].Values {
			v.Values[k] = x
		}
		v.DeadLetters = map[string]int{}
		s.dead[id].count(now, v.DeadLetters)
		out = append(out, v)
	}
	return out
}

// deadLettered counts dead letters made at at. Those of a station not in
// the registry (unknown_station, _unknown) are not counted here: they have
// no row to show them (rivermon_rejected_total counts every one).
func (s *Stations) deadLettered(dls []journal.DeadLetter, at time.Time) {
	if len(dls) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range dls {
		if c := s.dead[deadLetterStation(dls[i].Topic)]; c != nil {
			c.add(dls[i].Reason, at)
		}
	}
}

// seqRestart is how far below the last counter a value must fall to be taken
// for a device restart rather than a late repeat.
const seqRestart = 1000

// seq records a message counter: a counter above last+1 is a gap of the
// messages skipped, one at or below last is a repeat (a redelivery or a
// duplicate), one far below last is a device restart.
func (s *Stations) seq(id string, seq int64) (gap int64, repeat bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.byID[id]
	if !s.seqSeen[id] {
		s.seqSeen[id] = true
		v.Seq.Last = seq
		return 0, false
	}
	switch {
	case seq < v.Seq.Last-seqRestart:
		v.Seq.Last = seq
	case seq <= v.Seq.Last:
		v.Seq.Repeats++
		repeat = true
	case seq > v.Seq.Last+1:
		gap = seq - v.Seq.Last - 1
		v.Seq.Gaps += gap
		v.Seq.Last = seq
	default:
		v.Seq.Last = seq
	}
	return gap, repeat
}

// stored applies what a committed message changed.
func (s *Stations) stored(u *update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.byID[u.station]
	if v == nil {
		return
	}
	rt := u.received
	if v.LastReceived == nil || rt.After(*v.LastReceived) {
		v.LastReceived = &rt
	}
	if u.sample != nil {
		t := u.sample.Time
		if v.LastSeen == nil || !t.Before(*v.LastSeen) {
			v.LastSeen = &t
			g := s.lastSeenOf[u.station]
			if g == nil {
				g = s.lastSeen.WithLabelValues(u.station)
				s.lastSeenOf[u.station] = g
			}
			g.Set(float64(t.UnixNano()) / 1e9)
		}
		for i, x := range u.sample.Values {
			if old, ok := v.Values[x.Code]; !ok || !t.Before(old.Time) {
				v.Values[x.Code] = ValueView{Value: x.Value, QC: u.flags[i], Time: t}
			}
		}
		if old, ok := v.Values[reading.FieldFlowRated]; u.hasRated && (!ok || !t.Before(old.Time)) {
			v.Values[reading.FieldFlowRated] = ValueView{Value: u.rated, QC: u.ratedFlag, Time: t}
		}
		if u.wqClass > 0 {
			c := u.wqClass
			v.WQClass = &c
		}
	}
	if u.today != nil {
		v.EflowToday = &EflowView{Day: u.today.Start, MeanFlow: u.today.MeanFlow, Target: u.today.Target,
			Coverage: u.today.Coverage, Compliant: u.today.MeanFlow >= u.today.Target}
	}
	if st := u.status; st != nil {
		if v.Status == nil || !u.statusTime.Before(v.Status.Time) {
			online := st.Online
			v.Online = &online
			v.Status = &StatusView{Time: u.statusTime, BatteryV: st.BatteryV, SignalDBm: st.SignalDBm, EnclosureTempC: st.EnclosureTempC}
		}
	}
}

// update is what one message changes in a station's view once stored.
type update struct {
	station    string
	received   time.Time
	sample     *reading.Sample // the newest sample of the message
	flags      []int
	rated      float64
	ratedFlag  int
	hasRated   bool
	wqClass    int
	today      *hydro.Day
	status     *reading.Status
	statusTime time.Time
}
