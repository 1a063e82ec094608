package ingest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Reasons produced by ingest beyond those of package reading.
const (
	// ReasonInfluxRejected: InfluxDB refused the point itself (HTTP 400/422/413).
	ReasonInfluxRejected = "influx_rejected"
)

// process decodes one message into b, by its source: MQTT messages by
// their topic (readings, status, hj212), HJ 212 packets from the TCP
// listener by their MN.
func (s *Stream) process(m *Message, b *batch) {
	b.acks = append(b.acks, m.Ack)
	b.received = append(b.received, m.Received)
	if m.Source == SourceHJ212TCP {
		s.processHJ212(m, nil, b)
		return
	}
	station, kind, ok := s.parseTopic(m.From)
	if !ok || !reading.ValidStationID(station) {
		s.rejectMessage(b, m, station, reading.ReasonBadTopic,
			fmt.Sprintf("topic %q is not %s/stations/{station}/{readings|status|hj212}", m.From, s.o.TopicPrefix))
		return
	}
	st := s.o.Registry.Station(station)
	if st == nil {
		s.rejectMessage(b, m, station, reading.ReasonUnknownStation, fmt.Sprintf("station %q is not in the registry", station))
		return
	}
	switch kind {
	case "readings":
		// A device saying it is offline (its last will) is not a sign of
		// life; a reading message, even a bad one, is.
		s.heard(s.state[st.ID], b, m)
		s.processReadings(m, st, b)
	case "status":
		s.processStatus(m, st, b)
	case "hj212":
		s.processHJ212(m, st, b)
	default:
		s.rejectMessage(b, m, station, reading.ReasonBadTopic, fmt.Sprintf("unknown message kind %q", kind))
	}
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

func (s *Stream) processReadings(m *Message, st *registry.Station, b *batch) {
	msg, rejs := reading.DecodeMessage(m.Payload, m.Received)
	if msg == nil {
		s.m.msgRejected.Inc()
		s.reject(b, m, st.ID, &rejs[0])
		return
	}
	if msg.Station != st.ID {
		s.rejectMessage(b, m, st.ID, reading.ReasonStationMismatch,
			fmt.Sprintf("payload station %q differs from topic station %q", msg.Station, st.ID))
		return
	}
	for i := range rejs {
		s.reject(b, m, st.ID, &rejs[i])
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
		s.storeSamples(st, msg.Samples, nil, m, b)
	}
}

func (s *Stream) processStatus(m *Message, st *registry.Station, b *batch) {
	status, rej := reading.DecodeStatus(m.Payload, m.Received)
	if rej != nil {
		s.m.msgRejected.Inc()
		s.reject(b, m, st.ID, rej)
		return
	}
	t := m.Received
	if status.HasTime {
		t = status.Time
	}
	if status.Online {
		// A station reporting itself online is alive; its last will
		// ({"online": false}) is not a sign of life.
		ss := s.state[st.ID]
		ss.heard, ss.silenced = m.Received, false
	}
	b.add(statusEntry(b.buf, st, status, t, m.Source))
	s.m.msgAccepted.Inc()
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

func (s *Stream) rejectMessage(b *batch, m *Message, station, reason, detail string) {
	s.m.msgRejected.Inc()
	s.reject(b, m, station, &reading.Rejection{Level: reading.LevelMessage, Reason: reason, Detail: detail})
}

// reject records a rejection of (part of) message m in batch b, as a dead
// letter with the payload: JSON as it is, anything else in base64.
func (s *Stream) reject(b *batch, m *Message, station string, r *reading.Rejection) {
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
	b.rec.DeadLetters = append(b.rec.DeadLetters, journal.DeadLetter{Topic: deadLetterTopic(s.o.TopicPrefix, station), Reason: r.Reason, Body: body})
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
