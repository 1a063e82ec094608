package ingest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/sl651"
)

// FuzzDecodeFieldProtocols feeds anything to the stream's decoders of the
// field protocols, as each source hands it over (over TCP, and on the
// MQTT topics of a station): they never panic, and whatever a non-empty
// message holds comes out as samples, a status, a sign of life or dead
// letters, never as nothing.
func FuzzDecodeFieldProtocols(f *testing.F) {
	reg, err := registry.LoadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	s := NewStream(StreamOptions{Registry: reg, TopicPrefix: "rivermon/v1"})
	st := reg.Station("gyirong-zongga")
	now := time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC)
	obs := now.Add(-time.Hour)
	for _, enc := range []sl651.Encoding{sl651.HEX, sl651.ASCII} {
		vals := []sl651.Value{{Time: obs, Element: "Z", Code: "level_m", Value: 1.25}, {Time: obs, Element: "PT", Code: "rain_total_mm", Value: 12.5},
			{Time: obs, Element: "VT", Code: "battery_v", Value: 12.6}}
		body, err := sl651.BuildBody(enc, 0x32, &sl651.Report{Serial: 1, Sent: now, Stations: []sl651.StationReport{{Address: st.SL651Address, Class: 'H', Values: vals}}})
		if err != nil {
			f.Fatal(err)
		}
		fr := &sl651.Frame{Encoding: enc, Up: true, Centre: 1, Station: st.SL651Address, Password: st.SL651Password, Function: 0x32, Body: body, End: sl651.ETX}
		whole := fr.Encode()
		f.Add(uint8(0), whole)
		p1, p2 := *fr, *fr
		p1.Body, p1.Total, p1.Seq, p1.End = body[:len(body)/2], 2, 1, sl651.ETB
		p2.Body, p2.Total, p2.Seq = body[len(body)/2:], 2, 2
		f.Add(uint8(1), append(p1.Encode(), p2.Encode()...))
		f.Add(uint8(1), p2.Encode())
	}
	wq := reg.Station("gyirong-town")
	p := hj212.Packet{QN: "20260701070000000", ST: "21", CN: "2011", PW: "123456", MN: wq.HJ212MN, Flag: 7, PNUM: "2", PNO: "1",
		CP: "DataTime=20260701150000;w01001-Rtd=8.2"}
	f.Add(uint8(2), p.Encode())
	f.Add(uint8(3), []byte("##0010QN=1;CP=&&&&0000\r\n"))
	f.Fuzz(func(t *testing.T, how uint8, payload []byte) {
		m := Message{Payload: payload, Received: now, Reply: func([]byte) {}}
		switch how % 4 {
		case 0:
			m.Source = SourceSL651TCP
		case 1:
			m.Source, m.From, m.Reply = SourceMQTT, "rivermon/v1/stations/gyirong-zongga/sl651", nil
		case 2:
			m.Source = SourceHJ212TCP
		case 3:
			m.Source, m.From, m.Reply = SourceMQTT, "rivermon/v1/stations/gyirong-town/hj212", nil
		}
		held := func() int { _, n := s.pieces.assembler().Held(); return n }
		before := held()
		d := &s.dec
		s.decode(&m, d)
		if len(payload) > 0 && len(d.groups) == 0 && len(d.deadLetters) == 0 && d.heard == nil && d.status == nil && held() <= before {
			t.Fatalf("source %s: %q came out as nothing", m.Source, payload)
		}
	})
}
