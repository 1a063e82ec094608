package ingest

import (
	"fmt"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/sl651"
)

// Reasons of SL 651 rejections beyond those of package sl651.
const (
	ReasonSL651UnknownAddress  = "sl651_unknown_address"
	ReasonSL651AddressMismatch = "sl651_address_mismatch"
	ReasonSL651BadPassword     = "sl651_bad_password"
	reasonSL651Incomplete      = "sl651_incomplete"
)

func sl651Reasons() []string {
	return []string{sl651.ReasonBadFrame, sl651.ReasonBadLength, sl651.ReasonBadCRC, sl651.ReasonBadBody,
		sl651.ReasonUnsupportedFunction, ReasonSL651UnknownAddress, ReasonSL651AddressMismatch,
		ReasonSL651BadPassword, reasonSL651Incomplete}
}

// rainPreference orders the elements that give rain_mm: when one station
// reports several at one time, the shortest period is kept and the others
// are skipped (counted): a 5-minute amount, then the period's (PJ), then
// the hour's, then the day's.
var rainPreference = map[string]int{"DRP": 1, "PN05": 1, "PJ": 2, "P1": 3, "PD": 4}

// decodeSL651 reads one or more SL 651-2014 frames: from MQTT (st is the
// topic's station, whose sl651_address each frame's header must carry) or
// from the TCP listener (st nil: the station is found by its address). The
// packets of an M3 transfer are joined first; a transfer that is not
// complete in the message is dead-lettered whole. A frame's body may carry
// several stations (a relay), each found by the address in the body.
// Over TCP a good data frame is answered with the standard's confirmation.
func (s *Stream) decodeSL651(m *Message, st *registry.Station, d *decoded) {
	found, rest := sl651.Split(m.Payload)
	if len(rest) > 0 {
		found = append(found, sl651.Found{Raw: rest, Err: &sl651.Error{Reason: reasonSL651Incomplete, Detail: "a frame is cut short"}})
	}
	from := "_unknown"
	if st != nil {
		from = st.ID
	}
	accepted, rejected := 0, 0
	reject := func(raw []byte, station, reason, detail string, level reading.Level) {
		mm := *m
		mm.Payload = raw
		s.reject(d, &mm, station, &reading.Rejection{Level: level, Reason: reason, Detail: detail})
		if level == reading.LevelMessage {
			rejected++
		}
	}
	// M3 packets wait for the rest of their transfer.
	type transfer struct {
		packets []*sl651.Frame
		raw     []byte
	}
	var transfers map[string]*transfer
	var frames []*sl651.Frame
	for _, f := range found {
		switch {
		case f.Err != nil:
			reject(f.Raw, from, f.Err.Reason, f.Err.Detail, reading.LevelMessage)
		case f.Frame.Total > 0:
			key := fmt.Sprintf("%s/%02X/%d", f.Frame.Station, f.Frame.Function, f.Frame.Total)
			if transfers == nil {
				transfers = map[string]*transfer{}
			}
			t := transfers[key]
			if t == nil {
				t = &transfer{}
				transfers[key] = t
			}
			t.packets = append(t.packets, f.Frame)
			t.raw = append(t.raw, f.Raw...)
			if len(t.packets) == f.Frame.Total {
				joined, err := sl651.Join(t.packets)
				delete(transfers, key)
				if err != nil {
					reject(t.raw, from, reasonSL651Incomplete, err.Error(), reading.LevelMessage)
					continue
				}
				joined.Raw = t.raw
				frames = append(frames, joined)
			}
		default:
			frames = append(frames, f.Frame)
		}
	}
	for _, t := range transfers {
		reject(t.raw, from, reasonSL651Incomplete,
			fmt.Sprintf("%d of the %d packets of an M3 transfer", len(t.packets), t.packets[0].Total), reading.LevelMessage)
	}
	for _, f := range frames {
		if s.decodeSL651Frame(m, st, f, d, reject) {
			accepted++
		}
	}
	switch {
	case rejected == 0 && accepted > 0:
		s.m.msgAccepted.Inc()
	case accepted == 0:
		s.m.msgRejected.Inc()
	default:
		s.m.msgPartial.Inc()
	}
}

// decodeSL651Frame reads one frame (or a joined M3 transfer) and reports
// whether it was taken.
func (s *Stream) decodeSL651Frame(m *Message, st *registry.Station, f *sl651.Frame, d *decoded,
	reject func(raw []byte, station, reason, detail string, level reading.Level)) bool {
	from := "_unknown"
	if st != nil {
		from = st.ID
	}
	if !f.Up {
		reject(f.Raw, from, sl651.ReasonBadFrame, "a downlink frame (centre to station)", reading.LevelMessage)
		return false
	}
	sender := st
	switch {
	case st == nil:
		sender = s.o.Registry.StationBySL651Address(f.Station)
		if sender == nil {
			reject(f.Raw, "_unknown", ReasonSL651UnknownAddress, fmt.Sprintf("address %s is no station's sl651_address", f.Station), reading.LevelMessage)
			return false
		}
	case st.SL651Address != f.Station:
		reject(f.Raw, st.ID, ReasonSL651AddressMismatch, fmt.Sprintf("address %s is not station %s's (%s)", f.Station, st.ID, st.SL651Address), reading.LevelMessage)
		return false
	}
	if sender.SL651Password != "" && f.Password != sender.SL651Password {
		reject(f.Raw, sender.ID, ReasonSL651BadPassword, fmt.Sprintf("password %s is not the station's sl651_password", f.Password), reading.LevelMessage)
		return false
	}
	rep, err := sl651.ParseBody(f)
	if err != nil {
		reject(f.Raw, sender.ID, err.Reason, err.Detail, reading.LevelMessage)
		return false
	}
	// A frame that frames, from a known station with its password, is a
	// sign of life, a keep-alive (2F) too.
	if d.heard == nil {
		d.heard = sender
	}
	if m.Reply != nil && f.Function != 0x2F {
		d.reply = sl651.Confirm(f, m.Received, false).Encode()
	}
	for i := range rep.Stations {
		s.sl651Station(m, f, sender, &rep.Stations[i], d, reject)
	}
	return true
}

// sl651Station turns what a body says of one station into samples of the
// registry's station with that address.
func (s *Stream) sl651Station(m *Message, f *sl651.Frame, sender *registry.Station, sr *sl651.StationReport, d *decoded,
	reject func(raw []byte, station, reason, detail string, level reading.Level)) {
	target := sender
	if sr.Address != "" && sr.Address != sender.SL651Address {
		target = s.o.Registry.StationBySL651Address(sr.Address)
		if target == nil {
			reject(f.Raw, sender.ID, ReasonSL651UnknownAddress,
				fmt.Sprintf("the body's station %s (relayed by %s) is no station's sl651_address", sr.Address, sender.ID), reading.LevelSample)
			return
		}
	}
	for _, el := range sr.Skipped {
		s.m.sl651Skipped.WithLabelValues(elementLabel(el), "unmapped").Inc()
	}
	var samples []reading.Sample
	rain := map[time.Time]int{} // the preference of the rain_mm taken at each time
	var battery *float64
	var batteryAt time.Time
	for _, v := range sr.Values {
		if v.Missing {
			s.m.sl651Skipped.WithLabelValues(elementLabel(v.Element), "missing").Inc()
			continue
		}
		switch v.Code {
		case "":
			s.m.sl651Skipped.WithLabelValues(elementLabel(v.Element), "unmapped").Inc()
			continue
		case "battery_v":
			if battery == nil || !v.Time.Before(batteryAt) {
				b := v.Value
				battery, batteryAt = &b, v.Time
			}
			continue
		}
		if err := reading.Storable(v.Time); err != nil {
			reject(f.Raw, target.ID, reading.ReasonBadTime, fmt.Sprintf("%s: %s", v.Element, err), reading.LevelSample)
			continue
		}
		if v.Time.Sub(m.Received) > reading.MaxFuture {
			reject(f.Raw, target.ID, reading.ReasonFutureTime,
				fmt.Sprintf("%s at %s is ahead of the receive time", v.Element, v.Time.Format(time.RFC3339)), reading.LevelSample)
			continue
		}
		value := v.Value
		if v.Relative && v.Code == "level_m" && target.SL651LevelBase != nil {
			value += *target.SL651LevelBase
		}
		if v.Code == "rain_mm" {
			p := rainPreference[v.Element]
			if q, ok := rain[v.Time]; ok && q < p {
				s.m.sl651Skipped.WithLabelValues(elementLabel(v.Element), "superseded").Inc()
				continue
			}
			rain[v.Time] = p
		}
		samples = addValue(samples, v.Time, v.Code, value)
	}
	if battery != nil {
		if d.status == nil || !batteryAt.Before(d.statusAt) {
			d.status = &reading.Status{Time: batteryAt, HasTime: true, Online: true, BatteryV: battery}
			d.statusOf, d.statusAt = target, batteryAt
		}
	}
	if len(samples) == 0 {
		return
	}
	for i := range samples {
		sortValues(&samples[i])
	}
	d.groups = append(d.groups, group{st: target, heard: true, samples: samples})
}

// mappedElements are the mnemonics of the elements rivermon maps.
var mappedElements = func() map[string]bool {
	m := map[string]bool{}
	for _, e := range sl651.Elements() {
		m[e.Name] = true
	}
	return m
}()

// elementLabel is the label an element skipped gets in a metric: the
// identifier of a HEX element ("7A", "FF03": at most 510 of them), a
// mapped mnemonic, or "other". Never the device's text: a name from an
// ASCII frame can be anything, invalid UTF-8 too (which the metrics
// library refuses with a panic), and would grow the series without end.
func elementLabel(el string) string {
	hex := func(s string) bool {
		for _, c := range s {
			if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
				return false
			}
		}
		return true
	}
	switch {
	case mappedElements[el]:
		return el
	case len(el) == 2 && hex(el), len(el) == 4 && el[:2] == "FF" && hex(el):
		return el
	}
	return "other"
}

// addValue sets code at time t among samples, the later value winning.
func addValue(samples []reading.Sample, t time.Time, code string, v float64) []reading.Sample {
	for i := range samples {
		if !samples[i].Time.Equal(t) {
			continue
		}
		for j := range samples[i].Values {
			if samples[i].Values[j].Code == code {
				samples[i].Values[j].Value = v
				return samples
			}
		}
		samples[i].Values = append(samples[i].Values, reading.Value{Code: code, Value: v})
		return samples
	}
	return append(samples, reading.Sample{Time: t, Values: []reading.Value{{Code: code, Value: v}}})
}
