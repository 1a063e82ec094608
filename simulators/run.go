package simulators

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Options configure a simulation run.
type Options struct {
	Broker      string
	Username    string
	Password    string
	TopicPrefix string
	Registry    *registry.Registry
	// Stations limits the run to these ids; empty means all.
	Stations []string
	// Start is the simulated time of the first readings.
	Start time.Time
	// Speed is simulated seconds per real second. Simulated time never runs
	// ahead of the wall clock: once it catches up, the run goes on in real
	// time (stations do not publish the future).
	Speed float64
	// Duration of simulated time to run: the run publishes every reading
	// and status due before Start + Duration, then returns. 0 runs until
	// ctx ends.
	Duration time.Duration
	// Protocol is "native" (JSON readings, the default) or "hj212": the
	// water-quality values of stations with an hj212_mn go as HJ 212-2017
	// real-time packets, over Transport "mqtt" (the station's hj212 topic)
	// or "tcp" (to HJ212Addr, waiting for the 9014 answer like a data
	// logger).
	Protocol  string
	Transport string
	HJ212Addr string
	// HJ212CRC, when set, frames every station's HJ 212 packets with this
	// CRC (hj212.CRCVariantHJ212 or hj212.CRCVariantModbus) instead of the
	// one its registry entry gives (hj212_crc), to try a mismatch. The PW
	// is the station's hj212_pw, else 123456.
	HJ212CRC string
	// Scenarios maps station ids to the scenarios they play (ParseScenarios).
	Scenarios map[string][]string
	// ScenarioStart is when the scenarios start; the zero time means
	// Start + ScenarioLead.
	ScenarioStart time.Time
	// StatusEvery is the simulated interval of status messages (default 1h).
	StatusEvery time.Duration
	Seed        uint64
	ClientID    string // prefix of the per-station client ids
	Logger      *slog.Logger
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
}

// maxPublishErrors ends a run whose broker keeps failing.
const maxPublishErrors = 20

// Summary counts what a run sent.
type Summary struct {
	Packets  int // HJ 212 packets
	Messages int
	Samples  int
	Statuses int
	Errors   int
	SimEnd   time.Time
}

type simStation struct {
	model     *Station
	client    paho.Client
	topic     string
	statusTop string
	hjTopic   string
	hj        *hjLink // nil: no HJ 212 for this station
	due       time.Time
	statusDue time.Time
	interval  time.Duration
	seq       int64
}

// Run connects one MQTT client per station (each with its last will on its
// status topic) and publishes readings at each station's interval until the
// simulated duration is over or ctx ends.
func Run(ctx context.Context, o Options) (Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.StatusEvery <= 0 {
		o.StatusEvery = time.Hour
	}
	if o.ClientID == "" {
		o.ClientID = "stationsim"
	}
	var sum Summary
	switch o.HJ212CRC {
	case "", hj212.CRCVariantHJ212, hj212.CRCVariantModbus:
	default:
		return sum, fmt.Errorf("HJ 212 CRC %q: want %s or %s", o.HJ212CRC, hj212.CRCVariantHJ212, hj212.CRCVariantModbus)
	}
	stations, err := o.pick()
	if err != nil {
		return sum, err
	}
	if o.ScenarioStart.IsZero() {
		o.ScenarioStart = o.Start.Add(ScenarioLead)
	}
	for _, id := range slices.Sorted(maps.Keys(o.Scenarios)) {
		st := o.Registry.Station(id)
		if st == nil {
			return sum, fmt.Errorf("scenario for station %q, which is not in the registry", id)
		}
		for _, name := range o.Scenarios[id] {
			if err := CanPlay(name, st); err != nil {
				return sum, err
			}
			o.Logger.Info("scenario", "station", id, "scenario", name,
				"start", o.ScenarioStart.UTC().Format(time.RFC3339),
				"end", ScenarioEnd(name, st, o.ScenarioStart).UTC().Format(time.RFC3339),
				"alerts", strings.Join(ExpectedAlerts(name, st), ","))
		}
	}
	var sims []*simStation
	defer func() {
		// A clean goodbye: each station says it is offline (its will covers
		// the unclean case). All at once, with one deadline for the lot.
		var toks []paho.Token
		for _, s := range sims {
			if s.client.IsConnectionOpen() {
				toks = append(toks, s.client.Publish(s.statusTop, 1, true, []byte(`{"online": false}`)))
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for _, t := range toks {
			t.WaitTimeout(max(time.Until(deadline), 0))
		}
		for _, s := range sims {
			s.client.Disconnect(100)
			if s.hj != nil {
				s.hj.close()
			}
		}
	}()
	for _, st := range stations {
		s := &simStation{
			model:     NewStation(st, o.Seed).WithScenarios(o.Scenarios[st.ID], o.ScenarioStart),
			topic:     o.TopicPrefix + "/stations/" + st.ID + "/readings",
			statusTop: o.TopicPrefix + "/stations/" + st.ID + "/status",
			hjTopic:   o.TopicPrefix + "/stations/" + st.ID + "/hj212",
			interval:  time.Duration(st.Interval),
			due:       o.Start.Truncate(time.Duration(st.Interval)),
			statusDue: o.Start,
		}
		if s.due.Before(o.Start) {
			s.due = s.due.Add(s.interval)
		}
		po := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(o.ClientID+"-"+st.ID).
			SetUsername(o.Username).SetPassword(o.Password).SetCleanSession(true).
			SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
			SetMaxReconnectInterval(10*time.Second).
			SetWill(s.statusTop, `{"online": false}`, 1, true)
		s.client = paho.NewClient(po)
		if o.Protocol == "hj212" && st.HJ212MN != "" {
			s.hj = newHJLink(st, o.HJ212CRC, o.Transport, o.HJ212Addr)
		}
		if t := s.client.Connect(); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			return sum, fmt.Errorf("station %s: connect %s: %v", st.ID, o.Broker, t.Error())
		}
		sims = append(sims, s)
	}
	wallStart := o.Now()
	simNow := func() time.Time {
		wall := o.Now()
		t := o.Start.Add(time.Duration(float64(wall.Sub(wallStart)) * o.Speed))
		if t.After(wall) {
			t = wall
		}
		return t
	}
	end := time.Time{}
	if o.Duration > 0 {
		end = o.Start.Add(o.Duration)
	}
	lastReport := o.Now()
	for {
		// The station due first; ties go to registry order, so that a seed
		// always gives the same sequence of messages.
		next := sims[0]
		for _, s := range sims[1:] {
			if s.nextDue().Before(next.nextDue()) {
				next = s
			}
		}
		due := next.nextDue()
		if !end.IsZero() && !due.Before(end) {
			sum.SimEnd = end
			return sum, nil
		}
		if at := publishAt(o.Start, wallStart, o.Speed, due); at.After(o.Now()) {
			wait := max(at.Sub(o.Now()), time.Millisecond)
			select {
			case <-ctx.Done():
				sum.SimEnd = simNow()
				return sum, nil
			case <-time.After(min(wait, time.Second)):
			}
			continue
		}
		if err := next.publishDue(ctx, &o, &sum); err != nil {
			if ctx.Err() != nil {
				sum.SimEnd = due
				return sum, nil
			}
			sum.Errors++
			o.Logger.Warn("publish failed", "station", next.model.ID(), "err", err)
			if sum.Errors >= maxPublishErrors {
				// Each failure waited for its PUBACK; a broker that takes
				// nothing would otherwise hold the run for hours.
				sum.SimEnd = due
				return sum, fmt.Errorf("%d publishes failed; giving up (last: %w)", sum.Errors, err)
			}
		}
		if ctx.Err() != nil {
			sum.SimEnd = due
			return sum, nil
		}
		if o.Now().Sub(lastReport) >= 10*time.Second {
			lastReport = o.Now()
			o.Logger.Info("progress", "sim_time", due.UTC().Format(time.RFC3339), "messages", sum.Messages, "samples", sum.Samples, "errors", sum.Errors)
		}
	}
}

// publishAt is the wall-clock time at which what is due at simulated time
// due may go out, in a run that started at simulated time start and wall
// time wallStart and goes speed simulated seconds a second: when simulated
// time reaches due at that speed, but never before the wall clock does
// (stations do not publish the future). A run of the past at a high speed
// publishes at once what is due before now, then goes on in real time.
func publishAt(start, wallStart time.Time, speed float64, due time.Time) time.Time {
	at := wallStart.Add(time.Duration(float64(due.Sub(start)) / speed))
	if due.After(at) {
		at = due
	}
	return at
}

func (s *simStation) nextDue() time.Time {
	if s.statusDue.Before(s.due) {
		return s.statusDue
	}
	return s.due
}

// publishDue sends whatever of the station is due: its status or a reading.
func (s *simStation) publishDue(ctx context.Context, o *Options, sum *Summary) error {
	if s.statusDue.Before(s.due) {
		st := s.model.Status(s.statusDue)
		s.statusDue = s.statusDue.Add(o.StatusEvery)
		b, err := st.Encode()
		if err != nil {
			return err
		}
		if err := publish(ctx, s.client, s.statusTop, true, b); err != nil {
			return err
		}
		sum.Statuses++
		return nil
	}
	sample := s.model.Next(s.due)
	s.due = s.due.Add(s.interval)
	if s.hj != nil {
		var packet []byte
		sample, packet = s.hj.packet(sample)
		if packet != nil {
			if err := s.hj.send(ctx, s.client, s.hjTopic, packet); err != nil {
				return err
			}
			sum.Packets++
		}
		if len(sample.Values) == 0 {
			sum.Samples++
			return nil
		}
	}
	s.seq++
	m := reading.Message{Station: s.model.ID(), Seq: s.seq, HasSeq: true, Samples: []reading.Sample{sample}}
	b, err := m.Encode()
	if err != nil {
		return err
	}
	if err := publish(ctx, s.client, s.topic, false, b); err != nil {
		return err
	}
	sum.Messages++
	sum.Samples++
	return nil
}

// publish sends at QoS 1 and waits for the PUBACK, as a station that keeps
// its data until the broker has it.
func publish(ctx context.Context, c paho.Client, topic string, retained bool, payload []byte) error {
	t := c.Publish(topic, 1, retained, payload)
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("publish %s: no PUBACK within 30 s", topic)
	}
}

func (o *Options) pick() ([]*registry.Station, error) {
	if len(o.Stations) == 0 {
		out := make([]*registry.Station, len(o.Registry.Stations))
		for i := range o.Registry.Stations {
			out[i] = &o.Registry.Stations[i]
		}
		return out, nil
	}
	var out []*registry.Station
	for _, id := range o.Stations {
		st := o.Registry.Station(id)
		if st == nil {
			return nil, fmt.Errorf("station %q is not in the registry", id)
		}
		out = append(out, st)
	}
	return out, nil
}
