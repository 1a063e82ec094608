package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/rivermon/rivermon/internal/reading"
)

// Kind says what an entry's point is.
type Kind uint8

// Kinds of entries, one per measurement rivermon writes (CONTRACT §6).
const (
	KindReading    Kind = iota + 1 // `reading`: a sample with its flags and derivations
	KindRevision                   // `reading`: a later QC flag of an earlier sample
	KindEflow                      // `eflow_daily`
	KindStatus                     // `station_status`
	KindState                      // `station_state`
	KindAlert                      // `alert`
	KindEflowMonth                 // `eflow_monthly`
	KindStats                      // `stats_hourly`, `stats_daily`, `stats_monthly`
	KindCorrected                  // `reading`: values rewritten by a correction or a reprocess
	KindCorrection                 // `correction`
	KindApproval                   // `approval`
	numKinds
)

// Entry is one point to store and what delivery and a restart need to
// know of it without reading the line back.
type Entry struct {
	Kind    Kind
	Station string    // the station tag
	Time    time.Time // the point's timestamp
	Source  string    // what produced it: "mqtt", "hj212+tcp", "sweep", "alerts" …
	Line    string    // the point, in line protocol
	// Values are a reading's values as received (KindReading only), from
	// which a restart rebuilds the QC windows and flow days. Decode fills
	// them only when asked.
	Values []reading.Value
}

// DeadLetter is a rejection to publish on the dead-letter topic.
type DeadLetter struct {
	Topic  string
	Reason string
	Body   []byte
}

// Record is what one append makes durable.
type Record struct {
	Entries     []Entry
	DeadLetters []DeadLetter
}

// Empty says whether r holds nothing to deliver.
func (r *Record) Empty() bool { return len(r.Entries) == 0 && len(r.DeadLetters) == 0 }

// Reset empties r for reuse, keeping its arrays and letting go of what
// they held.
func (r *Record) Reset() {
	clear(r.Entries)
	clear(r.DeadLetters)
	r.Entries, r.DeadLetters = r.Entries[:0], r.DeadLetters[:0]
}

// version heads every record. Version 1 (lines and dead letters only) is
// still read: see legacy.go.
const version = 2

// Encode renders r as the bytes of one spool record:
//
//	2 | n sources {string} | n entries {kind u8, source uvarint, station,
//	time varint ns, line, [reading: n values {param u8, float64 LE}]} |
//	n dead letters {topic, reason, body}
//
// strings as uvarint length and bytes. Sources are listed once per record.
func Encode(r *Record) []byte {
	var sources []string
	n := 1 + 3*binary.MaxVarintLen64
	for i := range r.Entries {
		e := &r.Entries[i]
		// Kind, source, lengths of a few bytes, time: a close estimate,
		// since the buffer is cleared before use.
		n += 16 + len(e.Station) + len(e.Line) + 1 + 9*len(e.Values)
		if !contains(sources, e.Source) {
			sources = append(sources, e.Source)
		}
	}
	for _, s := range sources {
		n += binary.MaxVarintLen64 + len(s)
	}
	for _, d := range r.DeadLetters {
		n += 3*binary.MaxVarintLen64 + len(d.Topic) + len(d.Reason) + len(d.Body)
	}
	b := make([]byte, 0, n)
	b = append(b, version)
	b = binary.AppendUvarint(b, uint64(len(sources)))
	for _, s := range sources {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Entries)))
	for i := range r.Entries {
		e := &r.Entries[i]
		b = append(b, byte(e.Kind))
		b = binary.AppendUvarint(b, uint64(index(sources, e.Source)))
		b = appendString(b, e.Station)
		b = binary.AppendVarint(b, e.Time.UnixNano())
		b = appendString(b, e.Line)
		if e.Kind != KindReading {
			continue
		}
		at := len(b)
		b = append(b, 0)
		k := 0
		for _, v := range e.Values {
			// Sample values are parameters (package reading checked
			// them), of which there are fewer than 255.
			if p := reading.ParamIndex(v.Code); p >= 0 && k < 255 {
				b = append(b, byte(p))
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Value))
				k++
			}
		}
		b[at] = byte(k)
	}
	b = binary.AppendUvarint(b, uint64(len(r.DeadLetters)))
	for _, d := range r.DeadLetters {
		b = appendString(b, d.Topic)
		b = appendString(b, d.Reason)
		b = binary.AppendUvarint(b, uint64(len(d.Body)))
		b = append(b, d.Body...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func contains(ss []string, s string) bool { return index(ss, s) >= 0 }

// index is a linear search: a record has one or two sources.
func index(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}

// ErrMalformed is returned for bytes that are not a record.
var ErrMalformed = errors.New("spool record is malformed")

// Decode reads a record back, appending to r. The strings of r share b's
// memory rather than copy it (a record is megabytes, read afresh from the
// spool each time): b must not change while r is in use. Values of
// readings are read only when values is true (a restart needs them,
// delivery does not).
func Decode(b []byte, r *Record, values bool) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrMalformed)
	}
	switch b[0] {
	case version:
	case legacyVersion:
		return decodeLegacy(b, r, values)
	default:
		return fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	d := decoder{text: shared(b[1:])}
	ns := d.count()
	sources := make([]string, 0, min(ns, 16))
	for range ns {
		sources = append(sources, d.str())
	}
	ne := d.count()
	for range ne {
		if d.err != nil {
			break
		}
		e := Entry{Kind: Kind(d.byte())}
		if e.Kind == 0 || e.Kind >= numKinds {
			return fmt.Errorf("%w: unknown entry kind %d", ErrMalformed, e.Kind)
		}
		if src := d.uvarint(); d.err == nil && src < uint64(len(sources)) {
			e.Source = sources[src]
		} else {
			d.fail()
		}
		e.Station = d.str()
		e.Time = time.Unix(0, d.varint()).UTC()
		e.Line = d.str()
		if e.Kind == KindReading {
			nv := int(d.byte())
			if d.err == nil && len(d.text) < 9*nv {
				d.fail()
			}
			if d.err == nil && values {
				e.Values = make([]reading.Value, 0, nv)
				for k := range nv {
					v := d.text[9*k : 9*k+9]
					p := int(v[0])
					if p >= reading.NumParams {
						return fmt.Errorf("%w: unknown parameter %d", ErrMalformed, p)
					}
					e.Values = append(e.Values, reading.Value{Code: reading.ParamCode(p),
						Value: math.Float64frombits(le64(v[1:]))})
				}
			}
			if d.err == nil {
				d.text = d.text[9*nv:]
			}
		}
		r.Entries = append(r.Entries, e)
	}
	return d.deadLetters(r)
}

// DecodeDeadLetters reads only the dead letters of a record, appending
// them to r.DeadLetters: the publisher of dead letters reads every record
// and needs nothing else of it.
func DecodeDeadLetters(b []byte, r *Record) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty", ErrMalformed)
	}
	d := decoder{text: shared(b[1:])}
	switch b[0] {
	case version:
		for range d.count() {
			d.str()
		}
		for range d.count() {
			if d.err != nil {
				break
			}
			kind := Kind(d.byte())
			d.uvarint()
			d.str()
			d.varint()
			d.str()
			if kind == KindReading {
				nv := int(d.byte())
				if d.err == nil && len(d.text) < 9*nv {
					d.fail()
				}
				if d.err == nil {
					d.text = d.text[9*nv:]
				}
			}
		}
	case legacyVersion:
		for range d.count() {
			d.str()
		}
	default:
		return fmt.Errorf("%w: unknown version %d", ErrMalformed, b[0])
	}
	return d.deadLetters(r)
}

// deadLetters reads the dead letters that end a record (every version) and
// checks that nothing follows them.
func (d *decoder) deadLetters(r *Record) error {
	nd := d.count()
	for range nd {
		if d.err != nil {
			break
		}
		dl := DeadLetter{Topic: d.str(), Reason: d.str()}
		dl.Body = []byte(d.str())
		r.DeadLetters = append(r.DeadLetters, dl)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.text) != 0 {
		return fmt.Errorf("%w: %d bytes left over", ErrMalformed, len(d.text))
	}
	return nil
}

// decoder reads a record's fields in order; the first fault sticks.
type decoder struct {
	text string
	err  error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: cut short", ErrMalformed)
	}
	d.text = ""
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < len(d.text) && i < binary.MaxVarintLen64; i++ {
		c := d.text[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.text = d.text[i+1:]
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail()
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a number of items, each at least a byte long.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.text)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) byte() byte {
	if len(d.text) == 0 {
		d.fail()
		return 0
	}
	c := d.text[0]
	d.text = d.text[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.text)) {
		d.fail()
		return ""
	}
	s := d.text[:n]
	d.text = d.text[n:]
	return s
}

// le64 reads a little-endian uint64 from the first 8 bytes of s.
func le64(s string) uint64 {
	var x uint64
	for i := 7; i >= 0; i-- {
		x = x<<8 | uint64(s[i])
	}
	return x
}

// shared is b as a string without a copy; b must not change afterwards.
func shared(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
