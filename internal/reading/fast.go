package reading

import (
	"math"
	"strconv"
	"time"
)

// decodeFast decodes the common case in one pass over the payload: a
// well-formed message whose every sample and value is kept. It gives up
// (ok false) on anything else — a rejection of any level, a string with an
// escape or a non-ASCII byte, a repeated key, deep nesting — and
// DecodeMessage then takes the general path, which is the definition of the
// rules. The two must agree wherever the fast one answers; FuzzFastPath
// checks that on arbitrary input.
//
// It allocates the message, its samples and one array of values shared by
// all samples, nothing per key or per value.
func decodeFast(p []byte, now time.Time) (m *Message, ok bool) {
	if len(p) > MaxMessageBytes {
		return nil, false
	}
	s := scanner{b: p}
	s.ws()
	m = &Message{}
	var haveStation, haveSeq, haveSamples bool
	ok = s.members(func(key []byte) bool {
		switch string(key) {
		case "station":
			v, ok := s.str()
			if !ok || haveStation || !validStationID(v) {
				return false
			}
			m.Station, haveStation = string(v), true
		case "seq":
			if haveSeq {
				return false
			}
			haveSeq = true
			if s.literal("null") {
				return true
			}
			v, isInt, ok := s.num()
			if !ok || !isInt {
				return false
			}
			seq, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || seq < 0 {
				return false
			}
			m.Seq, m.HasSeq = seq, true
		case "samples":
			if haveSamples || !s.samples(m, now) {
				return false
			}
			haveSamples = true
		default:
			return s.skip(0)
		}
		return true
	})
	s.ws()
	if !ok || s.i != len(s.b) || !haveStation || !haveSamples {
		return nil, false
	}
	return m, true
}

// samples reads the "samples" array into m.
func (s *scanner) samples(m *Message, now time.Time) bool {
	type span struct{ from, to int }
	var (
		vals  []Value
		spans []span
	)
	ok := s.elements(func() bool {
		var (
			t        time.Time
			haveTime bool
			haveVals bool
			got      [numParams]float64
			present  uint32
		)
		ok := s.members(func(key []byte) bool {
			switch string(key) {
			case "time":
				if haveTime {
					return false
				}
				var ok bool
				t, ok = s.time()
				haveTime = true
				return ok
			case "values":
				if haveVals {
					return false
				}
				haveVals = true
				return s.members(func(code []byte) bool {
					idx, known := paramIndex[string(code)]
					if !known || present&(1<<idx) != 0 {
						return false
					}
					num, _, ok := s.num()
					if !ok {
						return false
					}
					v, err := strconv.ParseFloat(string(num), 64)
					if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
						return false
					}
					got[idx], present = v, present|1<<idx
					return true
				})
			}
			return s.skip(1)
		})
		if !ok || !haveTime || present == 0 || t.Sub(now) > MaxFuture {
			return false // present == 0: no values, or none
		}
		from := len(vals)
		for idx := range params {
			if present&(1<<idx) != 0 {
				vals = append(vals, Value{Code: params[idx].Code, Value: got[idx]})
			}
		}
		spans = append(spans, span{from, len(vals)})
		m.Samples = append(m.Samples, Sample{Time: t})
		return len(m.Samples) <= MaxSamples
	})
	if !ok || len(m.Samples) == 0 {
		return false
	}
	// The values array no longer grows: the samples may share it.
	for i, sp := range spans {
		m.Samples[i].Values = vals[sp.from:sp.to:sp.to]
	}
	return true
}

// time reads a sample time as ParseTime does.
func (s *scanner) time() (time.Time, bool) {
	if s.peek() == '"' {
		v, ok := s.str()
		if !ok {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(v))
		return t, err == nil && Storable(t) == nil
	}
	v, isInt, ok := s.num()
	if !ok || !isInt {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || ms < minEpochMs || ms > maxEpochMs {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// scanner walks a JSON text, accepting only what json.Valid accepts and, of
// that, only the plain forms the fast path handles.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// members reads an object, calling member with each key and the scanner
// at its value, which member must read.
func (s *scanner) members(member func(key []byte) bool) bool {
	if !s.byte('{') {
		return false
	}
	s.ws()
	if s.byte('}') {
		return true
	}
	for {
		s.ws()
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.byte(':') {
			return false
		}
		s.ws()
		if !member(key) {
			return false
		}
		s.ws()
		if !s.byte(',') {
			return s.byte('}')
		}
	}
}

// elements reads an array, calling element with the scanner at each value,
// which element must read.
func (s *scanner) elements(element func() bool) bool {
	if !s.byte('[') {
		return false
	}
	s.ws()
	if s.byte(']') {
		return true
	}
	for {
		s.ws()
		if !element() {
			return false
		}
		s.ws()
		if !s.byte(',') {
			return s.byte(']')
		}
	}
}

// str reads a string of printable ASCII without escapes and returns its
// contents.
func (s *scanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// num reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *scanner) num() (text []byte, isInt, ok bool) {
	start := s.i
	s.byte('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return nil, false, false
	}
	isInt = true
	if s.byte('.') {
		isInt = false
		if s.digits() == 0 {
			return nil, false, false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		isInt = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false, false
		}
	}
	return s.b[start:s.i], isInt, true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// skip passes over one value of any kind.
func (s *scanner) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, _, ok := s.num()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '[':
		return s.elements(func() bool { return s.skip(depth + 1) })
	case c == '{':
		return s.members(func([]byte) bool { return s.skip(depth + 1) })
	}
	return false
}

// validStationID is ValidStationID on bytes, without a regular expression:
// lower-case letters and digits in runs joined by single hyphens.
func validStationID[T string | []byte](id T) bool {
	if len(id) == 0 || len(id) > 64 || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && id[i-1] != '-':
		default:
			return false
		}
	}
	return true
}
