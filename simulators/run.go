package simulators

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/sl651"
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
	// Protocol is a comma-separated list of the field protocols the
	// stations speak: "hj212", the water-quality values of stations with
	// an hj212_mn as HJ 212-2017 real-time packets; "sl651", the level,
	// flow, water temperature, rain and battery voltage of stations with an
	// sl651_address as SL 651-2014 frames (see rtu). Native JSON readings
	// carry whatever the chosen protocols do not; "native" or empty is JSON
	// only. Both go over Transport: "mqtt" (the station's hj212 and sl651
	// topics) or "tcp" (to HJ212Addr and SL651Addr, waiting for the centre's
	// answer like a data logger or an RTU).
	Protocol  string
	Transport string
	HJ212Addr string
	SL651Addr string
	// SL651Encoding is the SL 651 frames' encoding: "hex" (HEX/BCD, the
	// default) or "ascii".
	SL651Encoding string
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
	// Sent, when set, is called with each payload a station delivered (a
	// native message once the broker has it, an HJ 212 packet or SL 651
	// frame once published or answered, an SL 651 keep-alive once
	// written): protocol is "native", "status", "hj212" or "sl651".
	Sent func(station, protocol string, payload []byte)
}

// maxPublishErrors ends a run whose broker keeps failing.
const maxPublishErrors = 20

// Summary counts what a run sent.
type Summary struct {
	Packets    int // HJ 212 packets
	Frames     int // SL 651 reports
	KeepAlives int // SL 651 keep-alives
	Messages   int
	Samples    int
	Statuses   int
	Errors     int
	SimEnd     time.Time
}

type simStation struct {
	model     *Station
	client    paho.Client
	topic     string
	statusTop string
	hjTopic   string
	hj        *hjLink // nil: no HJ 212 for this station
	rtu       *rtu    // nil: no SL 651 for this station
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
	protocols, err := ParseProtocols(o.Protocol)
	if err != nil {
		return sum, err
	}
	switch o.HJ212CRC {
	case "", hj212.CRCVariantHJ212, hj212.CRCVariantModbus:
	default:
		return sum, fmt.Errorf("HJ 212 CRC %q: want %s or %s", o.HJ212CRC, hj212.CRCVariantHJ212, hj212.CRCVariantModbus)
	}
	if o.Transport == "" {
		o.Transport = "mqtt"
	}
	if o.Transport != "mqtt" && o.Transport != "tcp" {
		return sum, fmt.Errorf("transport %q: want mqtt or tcp", o.Transport)
	}
	enc, err := parseEncoding(o.SL651Encoding)
	if err != nil {
		return sum, err
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
			if s.rtu != nil {
				s.rtu.close()
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
		if protocols[ProtocolHJ212] && st.HJ212MN != "" {
			s.hj = newHJLink(st, o.HJ212CRC, o.Transport, o.HJ212Addr)
		}
		if protocols[ProtocolSL651] && st.SL651Address != "" {
			s.rtu = newRTU(st, enc)
			s.rtu.now = o.Now
			id := st.ID
			if o.Sent != nil {
				s.rtu.sent = func(frame []byte) { o.Sent(id, ProtocolSL651, frame) }
			}
			if o.Transport == "tcp" {
				addr := o.SL651Addr
				s.rtu.dial = func(ctx context.Context) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "tcp", addr)
				}
			} else {
				topic, client := o.TopicPrefix+"/stations/"+st.ID+"/sl651", s.client
				s.rtu.publish = func(ctx context.Context, frame []byte) error { return publish(ctx, client, topic, false, frame) }
			}
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
			// Idle: the RTUs that stay online keep their links alive.
			for _, s := range sims {
				if s.rtu == nil {
					continue
				}
				sent, err := s.rtu.keepAlive(simNow())
				if err != nil {
					o.Logger.Warn("keep-alive failed", "station", s.model.ID(), "err", err)
				}
				if sent {
					sum.KeepAlives++
				}
			}
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
			o.Logger.Info("progress", "sim_time", due.UTC().Format(time.RFC3339), "messages", sum.Messages, "hj212_packets", sum.Packets,
				"sl651_frames", sum.Frames, "samples", sum.Samples, "errors", sum.Errors)
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
	id := s.model.ID()
	sent := func(protocol string, payload []byte) {
		if o.Sent != nil {
			o.Sent(id, protocol, payload)
		}
	}
	if s.statusDue.Before(s.due) {
		st := s.model.Status(s.statusDue)
		s.statusDue = s.statusDue.Add(o.StatusEvery)
		if s.rtu != nil {
			// The RTU measures the supply voltage and sends it (VT).
			s.rtu.battery, st.BatteryV = st.BatteryV, nil
		}
		b, err := st.Encode()
		if err != nil {
			return err
		}
		if err := publish(ctx, s.client, s.statusTop, true, b); err != nil {
			return err
		}
		sent("status", b)
		sum.Statuses++
		return nil
	}
	sample := s.model.Next(s.due)
	s.due = s.due.Add(s.interval)
	sum.Samples++
	// Each protocol takes its values; a failure of one does not keep the
	// others from sending theirs.
	var errs []error
	if s.rtu != nil {
		var carried []reading.Value
		sample, carried = s.rtu.take(sample)
		frames, err := s.rtu.reports(sample.Time, carried)
		errs = append(errs, err)
		for _, f := range frames {
			if err := s.rtu.send(ctx, f); err != nil {
				errs = append(errs, err)
				break
			}
			sum.Frames++
		}
	}
	if s.hj != nil {
		var packet []byte
		sample, packet = s.hj.packet(sample)
		if packet != nil {
			if err := s.hj.send(ctx, s.client, s.hjTopic, packet); err != nil {
				errs = append(errs, err)
			} else {
				sent(ProtocolHJ212, packet)
				sum.Packets++
			}
		}
	}
	if len(sample.Values) > 0 {
		s.seq++
		m := reading.Message{Station: id, Seq: s.seq, HasSeq: true, Samples: []reading.Sample{sample}}
		b, err := m.Encode()
		if err == nil {
			err = publish(ctx, s.client, s.topic, false, b)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			sent(ProtocolNative, b)
			sum.Messages++
		}
	}
	return errors.Join(errs...)
}

// The protocols of Options.Protocol.
const (
	ProtocolNative = "native"
	ProtocolHJ212  = "hj212"
	ProtocolSL651  = "sl651"
)

// ParseProtocols reads a comma-separated list of protocols (Options
// .Protocol) into a set; native JSON is always in it.
func ParseProtocols(list string) (map[string]bool, error) {
	out := map[string]bool{ProtocolNative: true}
	for _, p := range strings.Split(list, ",") {
		switch p = strings.TrimSpace(p); p {
		case "", ProtocolNative, ProtocolHJ212, ProtocolSL651:
			if p != "" {
				out[p] = true
			}
		default:
			return nil, fmt.Errorf("protocol %q: want %s, %s or %s, or a comma-separated list of them", p, ProtocolNative, ProtocolHJ212, ProtocolSL651)
		}
	}
	return out, nil
}

func parseEncoding(s string) (sl651.Encoding, error) {
	switch s {
	case "", "hex":
		return sl651.HEX, nil
	case "ascii":
		return sl651.ASCII, nil
	}
	return 0, fmt.Errorf("SL 651 encoding %q: want hex or ascii", s)
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
