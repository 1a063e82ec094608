package ingest

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/run"
)

// StreamOptions configure a Stream.
type StreamOptions struct {
	Registry *registry.Registry
	// TopicPrefix is the MQTT topic prefix (CONTRACT §3).
	TopicPrefix string
	// Intake is where messages are taken from, and acknowledged.
	Intake *Intake
	// Observed, when set, receives every stored sample once it is durable
	// (for the alert rules), in arrival order, a committed batch at a
	// time; the stream closes it when it stops. Its reader must keep up:
	// the stream waits for it.
	Observed chan<- []reading.Observed
	Metrics  *Metrics
	Logger   *slog.Logger
	// MaxBatchPoints caps the points of one batch (default 5000).
	MaxBatchPoints int
	// DrainTimeout bounds how long Run goes on after its context ends
	// (default 3 s): messages already received are made durable and acked.
	DrainTimeout time.Duration
	// Now is the wall clock: silence, closing ecological-flow days, and
	// holding values for their final flag; nil means time.Now.
	Now func() time.Time
	// Location is the local time of the daily ecological-flow accounts
	// (default UTC+8, reading.Zone).
	Location *time.Location
	// Corrected, when set, says whether a hydrologist's correction stands
	// on the value of code at station and t (curate): the stream's later
	// QC revision of such a value (its spike test, run on the value as
	// received once the next sample came) is not written, since the
	// correction's flag stands.
	Corrected func(station, code string, t time.Time) bool
	// EflowGrace is how long after a local day ends its account is closed
	// when no data of a later day has closed it (default 2 h).
	EflowGrace time.Duration
	// SweepEvery is how often silence and day ends are checked (default 30 s).
	SweepEvery time.Duration
	// MonthsFile is where the days behind the monthly ecological-flow
	// accounts are kept across restarts (beside the spool); "" keeps them
	// in memory.
	MonthsFile string
}

// Stream is the second stage: it takes the intake's messages in arrival
// order, decodes them (decode.go), runs each station's QC and derivations
// (station.go), renders the points (render.go) and hands batches to the
// intake to make durable and acknowledge; then it updates the live view
// and tells the alert rules.
type Stream struct {
	o        StreamOptions
	m        *Metrics
	stations *Stations
	state    map[string]*station // owned by the assembler goroutine once Run starts
	free     chan *batch         // committed batches, for the assembler to reuse
	dec      decoded             // the message being stored (assembler goroutine)
	months   *monthAccounts      // days behind the monthly ecological-flow accounts (months.go)
	pieces   hj212Pieces         // pieces of split HJ 212 packets (hj212.go; assembler goroutine)
}

// NewStream returns a Stream; Run starts it. Every station counts as heard
// from at its creation: one never heard from is silent from then.
func NewStream(o StreamOptions) *Stream {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatchPoints <= 0 {
		o.MaxBatchPoints = 5000
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 3 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Location == nil {
		o.Location = reading.Zone
	}
	if o.EflowGrace <= 0 {
		o.EflowGrace = 2 * time.Hour
	}
	if o.SweepEvery <= 0 {
		o.SweepEvery = 30 * time.Second
	}
	months, err := loadMonthAccounts(o.MonthsFile, o.Location)
	if err != nil {
		o.Logger.Error("ecological-flow month accounts not read; months are accounted from the days written from now on", "err", err)
	}
	s := &Stream{o: o, m: o.Metrics, stations: newStations(o.Registry, o.Metrics.lastSeen),
		state: map[string]*station{}, free: make(chan *batch, 2), months: months}
	start := o.Now()
	for i := range o.Registry.Stations {
		st := &o.Registry.Stations[i]
		s.state[st.ID] = newStation(st, o.Location)
		s.state[st.ID].heard = start
	}
	return s
}

// Stations returns the live station view.
func (s *Stream) Stations() *Stations { return s.stations }

// batch is what one journal record stores and acknowledges.
type batch struct {
	rec      journal.Record
	acks     []func()
	received []time.Time // when each acked message arrived
	updates  []update
	observed []reading.Observed
	buf      []byte // scratch for rendering
}

func (b *batch) empty() bool {
	return len(b.acks) == 0 && b.rec.Empty() && len(b.observed) == 0
}

// add appends an entry; buf is the scratch space the renderer returned.
func (b *batch) add(e journal.Entry, buf []byte) {
	b.rec.Entries = append(b.rec.Entries, e)
	b.buf = buf
}

// reset empties b for reuse, keeping its arrays and letting go of what
// they held. The observed samples went to the alert rules: a new array.
func (b *batch) reset() {
	b.rec.Reset()
	clear(b.acks)
	clear(b.updates)
	// The next batch is likely the size of this one: room for as many
	// observed samples saves growing the array again.
	n := cap(b.observed)
	b.acks, b.received, b.updates, b.observed = b.acks[:0], b.received[:0], b.updates[:0], nil
	if n > 0 {
		b.observed = make([]reading.Observed, 0, n)
	}
}

// newBatch returns an empty batch, one the committer is done with when
// there is one, so that the arrays of a busy intake are not grown anew for
// every batch.
func (s *Stream) newBatch() *batch {
	select {
	case b := <-s.free:
		return b
	default:
		return &batch{}
	}
}

// Run processes messages until ctx ends, then closes the intake, makes
// durable and acknowledges what it holds (for at most DrainTimeout), closes
// Observed and returns nil.
func (s *Stream) Run(ctx context.Context) error {
	if s.o.Observed != nil {
		defer close(s.o.Observed)
	}
	// Committing outlives ctx by DrainTimeout so that a shutdown still
	// acknowledges what arrived (unless the spool stays full).
	commitCtx, stop := run.Grace(ctx, s.o.DrainTimeout)
	defer stop()

	batches := make(chan *batch)
	assembled := make(chan struct{})
	go func() {
		defer close(assembled)
		s.assemble(ctx, batches)
	}()
	defer func() { <-assembled }()
	for b := range batches {
		if err := s.commit(commitCtx, b); err != nil {
			s.o.Logger.Warn("shutdown before the batch was spooled; the broker will resend it",
				"messages", len(b.acks), "points", len(b.rec.Entries), "err", err)
			for range batches {
			}
			break
		}
		b.reset()
		select {
		case s.free <- b:
		default:
		}
	}
	return nil
}

// commit makes a batch durable and acknowledged, then shows it.
func (s *Stream) commit(ctx context.Context, b *batch) error {
	if err := s.o.Intake.commit(ctx, &b.rec, b.acks, b.received); err != nil {
		return err
	}
	for i := range b.updates {
		s.stations.stored(&b.updates[i])
	}
	s.stations.deadLettered(b.rec.DeadLetters, s.o.Now())
	if s.o.Observed != nil && len(b.observed) > 0 {
		s.o.Observed <- b.observed
	}
	return nil
}

// assemble turns queued messages into batches, in arrival order. It hands
// a batch over as soon as the committer is free, so batches grow while a
// write is in flight and stay small when the load is light.
func (s *Stream) assemble(ctx context.Context, out chan<- *batch) {
	defer close(out)
	done := ctx.Done()
	cur := s.newBatch()
	tick := time.NewTicker(s.o.SweepEvery)
	defer tick.Stop()
	for {
		items, closed := s.o.Intake.take()
		for i := range items {
			s.store(&items[i], cur)
			s.saveMonths()
			// Dead letters count too: a flood of bad messages while the
			// spool is full must not pile up here either.
			if len(cur.rec.Entries)+len(cur.rec.DeadLetters) >= s.o.MaxBatchPoints {
				out <- cur
				cur = s.newBatch()
			}
		}
		if closed {
			s.expirePieces(cur, time.Time{})
			if s.o.Observed != nil {
				// Values still waiting for a next one are evaluated as they
				// are: after a restart nothing would show them to alerts.
				for i := range s.o.Registry.Stations {
					cur.observed = s.state[s.o.Registry.Stations[i].ID].releaseStale(cur.observed, time.Time{})
				}
			}
			if !cur.empty() {
				out <- cur
			}
			return
		}
		// An empty batch is not handed over: a nil channel never sends.
		var send chan<- *batch
		if !cur.empty() {
			send = out
		}
		select {
		case send <- cur:
			cur = s.newBatch()
		case <-s.o.Intake.notify:
		case <-tick.C:
			s.sweep(cur)
			s.saveMonths()
		case <-done:
			s.o.Intake.close()
			done = nil
		}
	}
}

// store decodes one message (decode.go) and adds what it says to b.
func (s *Stream) store(m *Message, b *batch) {
	d := &s.dec
	s.decode(m, d)
	b.acks = append(b.acks, answer(m, d.reply))
	b.received = append(b.received, m.Received)
	b.rec.DeadLetters = append(b.rec.DeadLetters, d.deadLetters...)
	if d.heard != nil {
		s.heard(s.state[d.heard.ID], b, m)
	}
	if d.status != nil {
		s.storeStatus(d.statusOf, d.status, d.statusAt, m, b)
	}
	for i := range d.groups {
		g := &d.groups[i]
		if g.heard {
			s.heard(s.state[g.st.ID], b, m)
		}
		s.storeSamples(g.st, g.samples, g.forced, m, b)
	}
}

// answer is what acknowledges m once it is durable: the broker's ack, or
// for a TCP peer the protocol's answer that decoding chose (nothing when
// the frame must not be answered).
func answer(m *Message, reply []byte) func() {
	if m.Reply == nil {
		return m.Ack
	}
	if reply == nil {
		return nil
	}
	send := m.Reply
	return func() { send(reply) }
}

// storeStatus records a device's status report.
func (s *Stream) storeStatus(st *registry.Station, status *reading.Status, t time.Time, m *Message, b *batch) {
	if status.Online {
		// A station reporting itself online is alive; its last will
		// ({"online": false}) is not a sign of life.
		ss := s.state[st.ID]
		ss.heard, ss.silenced = m.Received, false
	}
	b.add(statusEntry(b.buf, st, status, t, m.Source))
	if s.o.Observed != nil {
		obs := reading.Observed{Station: st.ID, Time: t, Received: m.Received}
		for _, f := range []struct {
			code string
			v    *float64
		}{{"battery_v", status.BatteryV}, {"signal_dbm", status.SignalDBm}, {"enclosure_temp_c", status.EnclosureTempC}} {
			if f.v != nil {
				obs.Values = append(obs.Values, reading.ObservedValue{Code: f.code, V: *f.v, Flag: int(quality.NotEvaluated)})
			}
		}
		// Values, or a station saying it is online: a sign of life.
		if len(obs.Values) > 0 || status.Online {
			b.observed = append(b.observed, obs)
		}
	}
	b.updates = append(b.updates, update{station: st.ID, received: m.Received, status: status, statusTime: t})
}

// storeSamples assesses the samples of one message and adds their points to
// the batch. forced holds, per sample, QC flags the device imposed (HJ 212
// data flags); nil when none.
func (s *Stream) storeSamples(st *registry.Station, samples []reading.Sample, forced []map[string]int, m *Message, b *batch) {
	ss := s.state[st.ID]
	var newest *assessed
	// Accounts of days to write. A backlog reopening a closed day has its
	// account written once, with every sample of the message in it.
	var days []hydro.Day
	var reopened []time.Time
	put := func(d hydro.Day) {
		if k := slices.IndexFunc(days, func(e hydro.Day) bool { return e.Start.Equal(d.Start) }); k >= 0 {
			days[k] = d
		} else {
			days = append(days, d)
		}
	}
	// account writes the reopened days as they are now.
	account := func() {
		for _, day := range reopened {
			if acc, ok := ss.days.Account(day); ok {
				put(acc)
			}
		}
		reopened = reopened[:0]
	}
	for i := range samples {
		var f map[string]int
		if forced != nil {
			f = forced[i]
		}
		if len(reopened) > 0 {
			// A sample of a later day may push a reopened day out of
			// the days kept: account for it first.
			if day := ss.days.DayStart(samples[i].Time); slices.ContainsFunc(reopened, day.After) {
				account()
			}
		}
		a := ss.assess(&samples[i], f, s.m)
		b.add(readingEntry(b.buf, ss, &a, m.Source))
		for _, r := range a.revisions {
			if s.o.Corrected != nil && s.o.Corrected(ss.reg.ID, r.codes[0], r.t) {
				continue
			}
			b.add(revisionEntry(b.buf, ss, r, m.Source))
		}
		for _, d := range a.eflow {
			put(d)
		}
		for _, day := range a.reopened {
			if !slices.ContainsFunc(reopened, day.Equal) {
				reopened = append(reopened, day)
			}
		}
		if s.o.Observed != nil {
			b.observed = ss.observe(b.observed, &a, m.Received)
		}
		if newest == nil || !a.sample.Time.Before(newest.sample.Time) {
			newest = &a
		}
	}
	account()
	for _, d := range days {
		s.eflowDay(b, st, d, m.Source)
	}
	s.m.samplesStored.Add(float64(len(samples)))
	u := update{station: st.ID, received: m.Received, sample: newest.sample, flags: newest.flags, wqClass: newest.wqClass}
	if newest.hasRated {
		u.rated, u.ratedFlag, u.hasRated = newest.rated, newest.ratedFlag, true
	}
	if ss.days != nil {
		if acc, ok := ss.days.Account(ss.days.DayStart(s.o.Now())); ok {
			u.today = &acc
		}
	}
	b.updates = append(b.updates, u)
}

// heard notes a message from a station; one that was marked offline for
// its silence is online again.
func (s *Stream) heard(ss *station, b *batch, m *Message) {
	ss.heard = m.Received
	if !ss.silenced {
		return
	}
	ss.silenced = false
	st := &reading.Status{Online: true}
	b.add(statusEntry(b.buf, ss.reg, st, m.Received, m.Source))
	b.updates = append(b.updates, update{station: ss.reg.ID, received: m.Received, status: st, statusTime: m.Received})
}

// eflowDay adds a day's ecological-flow account to b, and its month's.
func (s *Stream) eflowDay(b *batch, st *registry.Station, d hydro.Day, source string) {
	b.add(eflowEntry(b.buf, st, d, source))
	b.add(eflowMonthEntry(b.buf, st, s.months.put(st.ID, d), source))
}

// saveMonths saves the month accounts' day marks when they changed, before
// the batch holding the days is made durable.
func (s *Stream) saveMonths() {
	if err := s.months.save(); err != nil {
		s.o.Logger.Error("ecological-flow month accounts not saved; after a crash a month's account may miss the days written since", "err", err)
	}
}

// sweep runs on the wall clock: a station silent for three reporting
// intervals is marked offline (station_status online=false), the
// ecological-flow days that ended more than EflowGrace ago are closed, and
// held values that waited too long for the next one are released.
func (s *Stream) sweep(b *batch) {
	now := s.o.Now()
	s.expirePieces(b, now)
	var silenced []string
	for i := range s.o.Registry.Stations {
		ss := s.state[s.o.Registry.Stations[i].ID]
		if !ss.silenced && now.Sub(ss.heard) > 3*time.Duration(ss.reg.Interval) {
			ss.silenced = true
			st := &reading.Status{Online: false}
			b.add(statusEntry(b.buf, ss.reg, st, now, sourceSweep))
			b.updates = append(b.updates, update{station: ss.reg.ID, received: now, status: st, statusTime: now})
			silenced = append(silenced, ss.reg.ID)
		}
		if ss.days != nil {
			for _, d := range ss.days.Close(ss.days.DayStart(now.Add(-s.o.EflowGrace))) {
				s.eflowDay(b, ss.reg, d, sourceSweep)
			}
		}
		if s.o.Observed != nil {
			b.observed = ss.releaseStale(b.observed, now)
		}
	}
	if len(silenced) > 0 {
		// One line per sweep, not one per station: at 10,000 stations a
		// broker outage would otherwise flood the log.
		shown := silenced[:min(len(silenced), 10)]
		s.o.Logger.Warn("stations silent for three reporting intervals; marked offline",
			"count", len(silenced), "stations", strings.Join(shown, ","), "more", len(silenced)-len(shown))
	}
}
