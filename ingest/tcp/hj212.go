package tcp

import "github.com/rivermon/rivermon/internal/hj212"

// HJ212 frames HJ 212-2017 packets ("##" length segment CRC CR LF).
var HJ212 = Protocol{
	Name:       "hj212",
	NewSession: func() Session { return &hj212Session{} },
	// One frame of the largest data segment.
	MaxHeld: hj212.MaxDataLen + 12,
}

type hj212Session struct{ buf []byte }

func (h *hj212Session) Feed(data []byte) []Unit {
	h.buf = append(h.buf, data...)
	frames, rest := hj212.Split(h.buf)
	units := make([]Unit, 0, len(frames))
	for _, f := range frames {
		u := Unit{Payload: append([]byte(nil), f.Raw...), Valid: f.Err == nil}
		if f.Err != nil && f.Err.Reason != hj212.ReasonBadCRC && f.Err.Reason != hj212.ReasonBadSegment {
			// Bytes outside a frame, or a header whose length does not
			// hold: not a packet.
			u.Junk = true
		}
		units = append(units, u)
	}
	h.buf = append(h.buf[:0], rest...)
	return units
}

func (h *hj212Session) Held() int { return len(h.buf) }

func (h *hj212Session) Flush() []Unit {
	if len(h.buf) == 0 {
		return nil
	}
	u := Unit{Payload: h.buf, Junk: true}
	h.buf = nil
	return []Unit{u}
}
