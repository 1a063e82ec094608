package reading

import (
	"math"
	"slices"
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
		spanBuf [16]span // most messages carry one sample, or a few
		spans   = spanBuf[:0]
		vals    = make([]Value, 0, NumParams)
		first   = s.i // where the samples begin, to estimate their number
	)
	ok := s.elements(func() bool {
		var (
			t        time.Time
			haveTime bool
			haveVals bool
			got      [NumParams]float64
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
					idx := paramOf(code)
					if idx < 0 || present&(1<<idx) != 0 {
						return false
					}
					num, _, ok := s.num()
					if !ok {
						return false
					}
					v, ok := parseFloat(num)
					if !ok {
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
		if len(m.Samples) == 1 && s.i < len(s.b)/2 {
			// A backlog: size the arrays once, from the first sample's share
			// of the payload, rather than doubling them as they fill.
			n := min((len(s.b)-first)/max(s.i-first, 1)+1, MaxSamples)
			m.Samples = slices.Grow(m.Samples, n)
			vals = slices.Grow(vals, n*len(vals))
			spans = slices.Grow(spans, n)
		}
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

// ParamIndex is the index of code among Params, or -1. It is a switch,
// cheaper than hashing the code (TestParamOf holds it to params).
func ParamIndex(code string) int { return paramOf(code) }

// paramOf is ParamIndex on the decoder's bytes.
func paramOf[T string | []byte](code T) int {
	switch string(code) {
	case "level_m":
		return 0
	case "flow_m3s":
		return 1
	case "velocity_ms":
		return 2
	case "volume_m3":
		return 3
	case "water_temp_c":
		return 4
	case "ph":
		return 5
	case "do_mgl":
		return 6
	case "cond_uscm":
		return 7
	case "turb_ntu":
		return 8
	case "codmn_mgl":
		return 9
	case "nh3n_mgl":
		return 10
	case "tp_mgl":
		return 11
	case "tn_mgl":
		return 12
	case "rain_mm":
		return 13
	case "rain_total_mm":
		return 14
	}
	return -1
}

// exact10 holds the powers of ten that are exact in a float64.
var exact10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat reads a JSON number (as num returned it) as a finite
// float64, the value strconv.ParseFloat gives. Readings are short decimals:
// when the digits make an integer m ≤ 2^53 and the decimal exponent e is
// within ±22, m·10^e is one correctly rounded multiplication or division
// of two exact floats, which is the correctly rounded value of the decimal
// (Clinger's fast path); anything else goes to strconv.
func parseFloat(text []byte) (float64, bool) {
	i, neg := 0, false
	if i < len(text) && text[i] == '-' {
		neg, i = true, i+1
	}
	var m uint64
	digits, exp := 0, 0 // significant digits in m; decimal exponent
	frac := false
	for ; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= '0' && c <= '9':
			if m == 0 && c == '0' {
				// A leading zero adds no digit.
			} else if digits++; digits > 19 {
				return slowNumber(text)
			}
			m = m*10 + uint64(c-'0')
			if frac {
				exp--
			}
			continue
		case c == '.':
			frac = true
			continue
		}
		break
	}
	if i < len(text) { // an exponent: e or E, a sign, digits
		i++
		sign := 1
		if i < len(text) && (text[i] == '+' || text[i] == '-') {
			if text[i] == '-' {
				sign = -1
			}
			i++
		}
		e := 0
		for ; i < len(text); i++ {
			if e > 1000 {
				return slowNumber(text)
			}
			e = e*10 + int(text[i]-'0')
		}
		exp += sign * e
	}
	if m > 1<<53 || exp < -22 || exp > 22 {
		return slowNumber(text)
	}
	f := float64(m)
	if exp < 0 {
		f /= exact10[-exp]
	} else {
		f *= exact10[exp]
	}
	if neg {
		f = -f
	}
	return f, true
}

func slowNumber(text []byte) (float64, bool) {
	v, err := strconv.ParseFloat(string(text), 64)
	return v, err == nil && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// ParamCode is the code of the parameter at index i of Params.
func ParamCode(i int) string { return params[i].Code }
