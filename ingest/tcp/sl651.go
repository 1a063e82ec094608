package tcp

import (
	"fmt"

	"github.com/rivermon/rivermon/internal/sl651"
)

// SL651 frames SL 651-2014 frames, HEX/BCD and ASCII. The packets of an M3
// transfer are handed over together once all have arrived, so that the
// transfer is confirmed once, as the standard has it.
var SL651 = Protocol{
	Name:       "sl651",
	NewSession: func() Session { return &sl651Session{} },
	// The packets of a large M3 transfer (a picture report is not taken):
	// 64 packets of the largest body.
	MaxHeld: 64 * (4095 + 32),
}

type sl651Session struct {
	buf []byte
	// m3 holds the packets of unfinished M3 transfers, by transfer.
	m3   map[string]*m3Transfer
	held int
}

type m3Transfer struct {
	raw  []byte
	seen map[int]bool
}

func (s *sl651Session) Feed(data []byte) []Unit {
	s.buf = append(s.buf, data...)
	found, rest := sl651.Split(s.buf)
	units := make([]Unit, 0, len(found))
	for _, f := range found {
		raw := append([]byte(nil), f.Raw...)
		switch {
		case f.Err == nil && f.Frame.Total > 0:
			units = append(units, s.packet(f.Frame, raw))
		case f.Err == nil:
			units = append(units, Unit{Payload: raw, Valid: true})
		case f.Err.Reason == sl651.ReasonBadCRC:
			// A frame, damaged on the way: the decoder says so.
			units = append(units, Unit{Payload: raw})
		default:
			units = append(units, Unit{Payload: raw, Junk: true})
		}
	}
	s.buf = append(s.buf[:0], rest...)
	return units
}

// packet adds an M3 packet to its transfer and returns the transfer's
// packets once all are there; until then a unit without payload, which
// says the peer speaks SL 651. A packet sent again replaces nothing: the
// first copy is kept.
func (s *sl651Session) packet(f *sl651.Frame, raw []byte) Unit {
	key := fmt.Sprintf("%s/%02X/%d", f.Station, f.Function, f.Total)
	if s.m3 == nil {
		s.m3 = map[string]*m3Transfer{}
	}
	t := s.m3[key]
	if t == nil {
		t = &m3Transfer{seen: map[int]bool{}}
		s.m3[key] = t
	}
	if t.seen[f.Seq] {
		return Unit{Valid: true}
	}
	t.seen[f.Seq] = true
	t.raw = append(t.raw, raw...)
	s.held += len(raw)
	if len(t.seen) < f.Total {
		return Unit{Valid: true}
	}
	delete(s.m3, key)
	s.held -= len(t.raw)
	return Unit{Payload: t.raw, Valid: true}
}

func (s *sl651Session) Held() int { return len(s.buf) + s.held }

func (s *sl651Session) Flush() []Unit {
	var units []Unit
	// Unfinished transfers go to the decoder, which dead-letters them
	// whole; the RTU, unconfirmed, sends them again.
	for _, t := range s.m3 {
		units = append(units, Unit{Payload: t.raw})
	}
	if len(s.buf) > 0 {
		units = append(units, Unit{Payload: s.buf, Junk: true})
	}
	s.m3, s.buf, s.held = nil, nil, 0
	return units
}
