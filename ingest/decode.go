package ingest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/sl651"
)

// Reasons produced by ingest beyond those of package reading.
const (
	// ReasonInfluxRejected: InfluxDB refused the point itself (HTTP 400/422/413).
	ReasonInfluxRejected = "influx_rejected"
)

// decoded is what one message says, read and checked against the registry:
// the samples it brings, by station, its status, and its rejections as dead
// letters. decode fills it; the stream stores it.
type decoded struct {
	heard       *registry.Station // the station of a reading message, heard even if nothing in it is good
	groups      []group
	status      *reading.Status
	statusOf    *registry.Station
	statusAt    time.Time
	deadLetters []journal.DeadLetter
	// reply is the answer to a TCP peer's frame, sent once it is durable;
	// nil for none. It is the decoder's own: it is not reused.
	reply []byte
}

// group is samples of one station, with the QC flags their device imposed
// (HJ 212 data flags; nil when none).
type group struct {
	st      *registry.Station
	heard   bool // a sign of life of st (an HJ 212 packet)
	samples []reading.Sample
	forced  []map[string]int
}

func (d *decoded) reset() {
	clear(d.groups)
	clear(d.deadLetters)
	*d = decoded{groups: d.groups[:0], deadLetters: d.deadLetters[:0]}
}

// decode reads one message into d, by its source: MQTT messages by their
// topic (readings, status, hj212), HJ 212 packets from the TCP listener by
// their MN.
func (s *Stream) decode(m *Message, d *decoded) {
	d.reset()
	if m.Junk > 0 {
		s.rejectMessage(d, m, "_unknown", junkReason(m.Source),
			fmt.Sprintf("%d bytes that do not frame (the first %d kept)", m.Junk, len(m.Payload)))
		return
	}
	switch m.Source {
	case SourceHJ212TCP:
		s.decodeHJ212(m, nil, d)
		return
	case SourceSL651TCP:
		s.decodeSL651(m, nil, d)
		return
	}
	station, kind, ok := s.parseTopic(m.From)
	if !ok || !reading.ValidStationID(station) {
		s.rejectMessage(d, m, station, reading.ReasonBadTopic,
			fmt.Sprintf("topic %q is not %s/stations/{station}/{readings|status|hj212|sl651}", m.From, s.o.TopicPrefix))
		return
	}
	st := s.o.Registry.Station(station)
	if st == nil {
		s.rejectMessage(d, m, station, reading.ReasonUnknownStation, fmt.Sprintf("station %q is not in the registry", station))
		return
	}
	switch kind {
	case "readings":
		// A device saying it is offline (its last will) is not a sign of
		// life; a reading message, even a bad one, is.
		d.heard = st
		s.decodeReadings(m, st, d)
	case "status":
		s.decodeStatus(m, st, d)
	case "hj212":
		s.decodeHJ212(m, st, d)
	case "sl651":
		s.decodeSL651(m, st, d)
	default:
		s.rejectMessage(d, m, station, reading.ReasonBadTopic, fmt.Sprintf("unknown message kind %q", kind))
	}
}

// junkReason is the dead-letter reason of bytes that do not frame as a
// source's protocol.
func junkReason(source string) string {
	if source == SourceSL651TCP {
		return sl651.ReasonBadFrame
	}
	return hj212.ReasonBadFrame
}

// parseTopic splits {prefix}/stations/{station}/{kind}.
func (s *Stream) parseTopic(topic string) (station, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, s.o.TopicPrefix+"/stations/")
	if !found {
		return "", "", false
	}
	station, kind, found = strings.Cut(rest, "/")
	if !found || strings.Contains(kind, "/") {
		return "", "", false
	}
	return station, kind, true
}

func (s *Stream) decodeReadings(m *Message, st *registry.Station, d *decoded) {
	msg, rejs := reading.DecodeMessage(m.Payload, m.Received)
	if msg == nil {
		s.m.msgRejected.Inc()
		s.reject(d, m, st.ID, &rejs[0])
		return
	}
	if msg.Station != st.ID {
		s.rejectMessage(d, m, st.ID, reading.ReasonStationMismatch,
			fmt.Sprintf("payload station %q differs from topic station %q", msg.Station, st.ID))
		return
	}
	for i := range rejs {
		s.reject(d, m, st.ID, &rejs[i])
		if rejs[i].Level == reading.LevelSample {
			s.m.samplesRejected.Inc()
		}
	}
	if msg.HasSeq {
		gap, repeat := s.stations.seq(st.ID, msg.Seq)
		if gap > 0 {
			s.m.seqGaps.Add(float64(gap))
		}
		if repeat {
			s.m.seqRepeats.Inc()
		}
	}
	if len(rejs) == 0 {
		s.m.msgAccepted.Inc()
	} else {
		s.m.msgPartial.Inc()
	}
	if len(msg.Samples) > 0 {
		d.groups = append(d.groups, group{st: st, samples: msg.Samples})
	}
}

func (s *Stream) decodeStatus(m *Message, st *registry.Station, d *decoded) {
	status, rej := reading.DecodeStatus(m.Payload, m.Received)
	if rej != nil {
		s.m.msgRejected.Inc()
		s.reject(d, m, st.ID, rej)
		return
	}
	d.status, d.statusOf, d.statusAt = status, st, m.Received
	if status.HasTime {
		d.statusAt = status.Time
	}
	s.m.msgAccepted.Inc()
}

func (s *Stream) rejectMessage(d *decoded, m *Message, station, reason, detail string) {
	s.m.msgRejected.Inc()
	s.reject(d, m, station, &reading.Rejection{Level: reading.LevelMessage, Reason: reason, Detail: detail})
}

// reject records a rejection of (part of) message m as a dead letter with
// the payload: JSON as it is, anything else in base64.
func (s *Stream) reject(d *decoded, m *Message, station string, r *reading.Rejection) {
	s.m.rejected.WithLabelValues(r.Reason).Inc()
	s.o.Logger.Debug("rejected", "source", m.Source, "from", m.From, "reason", r.Reason, "detail", r.Detail)
	dl := struct {
		ReceivedAt string          `json:"received_at"`
		Topic      string          `json:"topic"`
		Reason     string          `json:"reason"`
		Level      reading.Level   `json:"level"`
		Detail     string          `json:"detail"`
		Payload    json.RawMessage `json:"payload,omitempty"`
		PayloadB64 string          `json:"payload_b64,omitempty"`
	}{ReceivedAt: m.Received.UTC().Format(time.RFC3339Nano), Topic: m.topic(), Reason: r.Reason, Level: r.Level, Detail: r.Detail}
	switch {
	case r.Payload != nil:
		dl.Payload = r.Payload
	case json.Valid(m.Payload) && len(m.Payload) > 0:
		dl.Payload = m.Payload
	default:
		dl.PayloadB64 = base64.StdEncoding.EncodeToString(m.Payload)
	}
	body, err := json.Marshal(dl)
	if err != nil {
		// Payload came from a JSON decoder, so it is valid; keep the bytes
		// all the same rather than lose them.
		dl.Payload, dl.PayloadB64 = nil, base64.StdEncoding.EncodeToString(m.Payload)
		body, _ = json.Marshal(dl)
	}
	d.deadLetters = append(d.deadLetters, journal.DeadLetter{Topic: deadLetterTopic(s.o.TopicPrefix, station), Reason: r.Reason, Body: body})
}

// topic is what a dead letter names as the message's topic: the MQTT
// topic, or for a TCP source the source and peer ("hj212+tcp://host:port").
func (m *Message) topic() string {
	if m.Source == SourceMQTT {
		return m.From
	}
	return m.Source + "://" + m.From
}

func deadLetterTopic(prefix, station string) string {
	if !reading.ValidStationID(station) {
		station = "_unknown"
	}
	return prefix + "/deadletter/" + station
}
