// Package sl651 reads and writes SL 651-2014 frames, the hydrological
// telemetry protocol that most Chinese level, flow and rain RTUs speak
// (domain.md §4, reference/sl651.md): framing in both encodings (HEX/BCD,
// starting 7E 7E, and ASCII, starting SOH), the CRC, multi-packet (M3)
// reassembly, the centre's confirmation, and the bodies of the uplink
// reports rivermon stores (functions 2F–35). It imports the standard library
// only, apart from the module's reading.Zone (Beijing time) and crc16.
package sl651

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/rivermon/rivermon/internal/crc16"
)

// Control characters (SL 651-2014 Table 10).
const (
	SOH = 0x01 // start of an ASCII frame
	STX = 0x02 // start of the body
	ETX = 0x03 // end of the message
	EOT = 0x04 // downlink: end of transmission, the station may hang up
	ENQ = 0x05 // downlink: query or command
	ACK = 0x06 // downlink: positive acknowledgement
	NAK = 0x15 // downlink: negative acknowledgement (M3: resend a packet)
	SYN = 0x16 // start of the body of an M3 packet
	ETB = 0x17 // end of a packet, more follow
	ESC = 0x1B // downlink: end, but the station stays online
)

// Frame limits (Tables 16 and 20): the 12-bit length word counts at most
// 4095 bytes (HEX) or characters (ASCII) between STX/SYN and the end
// character.
const (
	MaxBody = 4095
	// MaxFrame is the longest frame of either encoding.
	MaxFrame = MaxBody + asciiOverhead

	hexHeader     = 14 // 7E 7E, centre, station (5), password (2), function, length (2), STX
	hexOverhead   = hexHeader + 3
	asciiHeader   = 24 // SOH, centre (2), station (10), password (4), function (2), length (4), STX
	asciiOverhead = asciiHeader + 5
)

// Encoding is how a frame is written (SL 651-2014 §6.1): the two must not be
// mixed on one link, but a centre accepts both.
type Encoding uint8

// The two encodings.
const (
	HEX   Encoding = iota + 1 // HEX/BCD, starting 7E 7E
	ASCII                     // ASCII characters, starting SOH
)

func (e Encoding) String() string {
	switch e {
	case HEX:
		return "HEX"
	case ASCII:
		return "ASCII"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// CRC is CRC-16/MODBUS (init 0xFFFF, reflected polynomial 0xA001, no final
// XOR), which SL 651 uses over every byte before the CRC. The standard gives
// the polynomial X¹⁶+X¹⁵+X²+1 but not the initial value; every public
// implementation and sample frame uses these (domain.md §4.10). Frames carry
// it high byte first, unlike Modbus RTU.
func CRC(data []byte) uint16 { return crc16.Modbus(data) }

// Error reasons, the dead-letter reason codes of SL 651 input (CONTRACT §11).
const (
	ReasonBadFrame            = "sl651_bad_frame"  // bytes outside a frame, bad start/STX/end characters, bad addresses
	ReasonBadLength           = "sl651_bad_length" // length word impossible or not matching the end character's position
	ReasonBadCRC              = "sl651_bad_crc"
	ReasonBadBody             = "sl651_bad_body" // the body cannot be parsed
	ReasonUnsupportedFunction = "sl651_unsupported_function"
)

// Error is input that cannot be used, with its reason code.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Detail }

func errorf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Frame is one framed SL 651 message (either encoding), as it travelled.
type Frame struct {
	Encoding Encoding
	Up       bool   // uplink (station → centre); false for downlink
	Centre   uint8  // centre address (the standard says 1–255; 0 is accepted, public sample frames use it)
	Station  string // station address as 10 upper-case hex digits, as it appears in the frame
	Password string // 4 upper-case hex digits
	Function uint8  // function code, e.g. 0x32
	Total    int    // M3: the number of packets; 0 when not M3
	Seq      int    // M3: this packet's number, 1 to Total; 0 when not M3
	Body     []byte // the body between STX (or SYN and the packet word) and the end character, exactly as sent
	End      byte   // ETX or ETB uplink; EOT, ESC, ENQ, ACK or NAK downlink
	Raw      []byte // the whole frame including the CRC; nil for a frame made by Join
}

// Found is one result of Split: a frame, or a stretch that could not be
// framed (Err set, Raw the bytes).
type Found struct {
	Raw   []byte
	Frame *Frame
	Err   *Error
}

func isEnd(c byte) bool {
	switch c {
	case ETX, ETB, EOT, ESC, ENQ, ACK, NAK:
		return true
	}
	return false
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

// parseHex reads upper- or lower-case hex digits; -1 if any is not one.
func parseHex(s []byte) int {
	n := 0
	for _, c := range s {
		v := hexVal(c)
		if v < 0 {
			return -1
		}
		n = n<<4 | v
	}
	return n
}

const hexDigits = "0123456789ABCDEF"

func upperHex(b []byte) string {
	s := make([]byte, 2*len(b))
	for i, c := range b {
		s[2*i] = hexDigits[c>>4]
		s[2*i+1] = hexDigits[c&0x0F]
	}
	return string(s)
}

// startState says whether a frame can start at the beginning of a buffer.
type startState int

const (
	notStart     startState = iota
	partialStart            // the buffer ends inside what could be a header
	fullStart               // a whole header: start marker, fields of the right syntax, STX or SYN
)

// scanStart classifies b as the start of a frame. A HEX header is 7E 7E with
// STX or SYN at byte 13; an ASCII header is SOH, 22 upper-case hex digits
// and STX or SYN. Everything else is not a frame start, so that a stray 01
// or 7E in noise does not break a run of noise into pieces.
func scanStart(b []byte) startState {
	if len(b) == 0 {
		return notStart
	}
	switch b[0] {
	case 0x7E:
		if len(b) < 2 {
			return partialStart
		}
		if b[1] != 0x7E {
			return notStart
		}
		if len(b) < hexHeader {
			return partialStart
		}
		if b[13] != STX && b[13] != SYN {
			return notStart
		}
		return fullStart
	case SOH:
		for i := 1; i < asciiHeader-1 && i < len(b); i++ {
			if !isUpperHex(b[i]) {
				return notStart
			}
		}
		if len(b) < asciiHeader {
			return partialStart
		}
		if b[23] != STX && b[23] != SYN {
			return notStart
		}
		return fullStart
	}
	return notStart
}

// frameSize reads the length word of a whole header and returns the size of
// the frame it announces. In M3 the length counts the packet word too
// (Table 22: "the bytes after SYN up to the end character"; the M3 picture
// packets of yu-xiaoyao/sl651-2014-server netty-client
// Sl651ClientApplication.java count it), and the body after it must hold at
// least one byte.
func frameSize(b []byte) (int, *Error) {
	if b[0] == SOH {
		dir := b[19]
		n := parseHex(b[20:23])
		least := 1
		if b[23] == SYN {
			least = 7
		}
		if dir != '0' && dir != '8' {
			return 0, errorf(ReasonBadLength, "length field %q: the first character is neither 0 (up) nor 8 (down)", b[19:23])
		}
		if n < least {
			return 0, errorf(ReasonBadLength, "length field %q: %d characters after STX/SYN, the least is %d", b[19:23], n, least)
		}
		return n + asciiOverhead, nil
	}
	word := int(b[11])<<8 | int(b[12])
	least := 1
	if b[13] == SYN {
		least = 4
	}
	if dir := word >> 12; dir != 0 && dir != 8 {
		return 0, errorf(ReasonBadLength, "length word %04X: direction bits %X are neither 0 (up) nor 8 (down)", word, dir)
	}
	if n := word & 0x0FFF; n < least {
		return 0, errorf(ReasonBadLength, "length word %04X: %d bytes after STX/SYN, the least is %d", word, n, least)
	}
	return word&0x0FFF + hexOverhead, nil
}

// endPos is where the end character of a frame of the given size sits.
func endPos(b []byte, size int) int {
	if b[0] == SOH {
		return size - 5
	}
	return size - 3
}

// Decode parses exactly one complete frame (either encoding). The Frame it
// returns owns its bytes (Raw is a copy of raw).
func Decode(raw []byte) (*Frame, *Error) {
	var enc Encoding
	switch {
	case len(raw) >= 2 && raw[0] == 0x7E && raw[1] == 0x7E:
		enc = HEX
		if len(raw) < hexHeader {
			return nil, errorf(ReasonBadFrame, "HEX frame of %d bytes is shorter than its %d-byte header", len(raw), hexHeader)
		}
		if raw[13] != STX && raw[13] != SYN {
			return nil, errorf(ReasonBadFrame, "byte 13 is %02X, not STX (02) or SYN (16)", raw[13])
		}
	case len(raw) >= 1 && raw[0] == SOH:
		enc = ASCII
		if len(raw) < asciiHeader {
			return nil, errorf(ReasonBadFrame, "ASCII frame of %d bytes is shorter than its %d-character header", len(raw), asciiHeader)
		}
		for i := 1; i < asciiHeader-1; i++ {
			if !isUpperHex(raw[i]) {
				return nil, errorf(ReasonBadFrame, "header character %d is %q, not an upper-case hex digit", i, raw[i])
			}
		}
		if raw[23] != STX && raw[23] != SYN {
			return nil, errorf(ReasonBadFrame, "character 23 is %02X, not STX (02) or SYN (16)", raw[23])
		}
	default:
		return nil, errorf(ReasonBadFrame, "frame starts % X, not 7E 7E (HEX) or 01 (ASCII)", raw[:min(len(raw), 2)])
	}
	size, err := frameSize(raw)
	if err != nil {
		return nil, err
	}
	if len(raw) != size {
		return nil, errorf(ReasonBadLength, "the length field announces a %d-byte frame, got %d bytes", size, len(raw))
	}
	end := raw[endPos(raw, size)]
	if !isEnd(end) {
		return nil, errorf(ReasonBadLength, "the length field puts the end character at byte %d, which is %02X", endPos(raw, size), end)
	}
	if enc == HEX {
		want := uint16(raw[size-2])<<8 | uint16(raw[size-1])
		if got := CRC(raw[:size-2]); got != want {
			return nil, errorf(ReasonBadCRC, "CRC %04X, computed %04X", want, got)
		}
	} else {
		field := raw[size-4:]
		for _, c := range field {
			if !isUpperHex(c) {
				return nil, errorf(ReasonBadCRC, "CRC field %q is not 4 upper-case hex digits", field)
			}
		}
		if got := CRC(raw[:size-4]); int(got) != parseHex(field) {
			return nil, errorf(ReasonBadCRC, "CRC %s, computed %04X", field, got)
		}
	}

	raw = bytes.Clone(raw)
	f := &Frame{Encoding: enc, End: end, Raw: raw}
	bodyStart := hexHeader
	if enc == ASCII {
		bodyStart = asciiHeader
	}
	m3 := raw[bodyStart-1] == SYN
	if enc == HEX {
		f.Up = raw[11]>>4 == 0
		if f.Up {
			f.Centre, f.Station = raw[2], upperHex(raw[3:8])
		} else {
			f.Station, f.Centre = upperHex(raw[2:7]), raw[7]
		}
		f.Password = upperHex(raw[8:10])
		f.Function = raw[10]
		if m3 {
			f.Total = int(raw[14])<<4 | int(raw[15])>>4
			f.Seq = int(raw[15]&0x0F)<<8 | int(raw[16])
			bodyStart += 3
		}
	} else {
		f.Up = raw[19] == '0'
		if f.Up {
			f.Centre, f.Station = uint8(parseHex(raw[1:3])), string(raw[3:13])
		} else {
			f.Station, f.Centre = string(raw[1:11]), uint8(parseHex(raw[11:13]))
		}
		f.Password = string(raw[13:17])
		f.Function = uint8(parseHex(raw[17:19]))
		if m3 {
			word := raw[24:30]
			for _, c := range word {
				if !isUpperHex(c) {
					return nil, errorf(ReasonBadFrame, "packet field %q is not 6 upper-case hex digits", word)
				}
			}
			f.Total, f.Seq = parseHex(word[:3]), parseHex(word[3:])
			bodyStart += 6
		}
	}
	f.Body = raw[bodyStart:endPos(raw, size)]
	if m3 {
		if f.Total < 1 || f.Seq < 1 || f.Seq > f.Total {
			return nil, errorf(ReasonBadFrame, "M3 packet %d of %d: the count is 1–4095 and the number 1 to the count", f.Seq, f.Total)
		}
	}
	if err := checkEnd(f.Up, f.End); err != nil {
		return nil, err
	}
	return f, nil
}

// checkEnd applies Tables 16/17 and 20/21: an uplink ends with ETX or ETB, a
// downlink with EOT, ESC, ENQ, ACK or NAK.
func checkEnd(up bool, end byte) *Error {
	switch {
	case up && (end == ETX || end == ETB):
		return nil
	case !up && (end == EOT || end == ESC || end == ENQ || end == ACK || end == NAK):
		return nil
	case up:
		return errorf(ReasonBadFrame, "uplink frame ends with %02X, not ETX (03) or ETB (17)", end)
	}
	return errorf(ReasonBadFrame, "downlink frame ends with %02X, not EOT (04), ESC (1B), ENQ (05), ACK (06) or NAK (15)", end)
}

// Check reports what makes f impossible to encode as a valid frame.
func (f *Frame) Check() error {
	if f.Encoding != HEX && f.Encoding != ASCII {
		return fmt.Errorf("frame encoding %v is neither HEX nor ASCII", f.Encoding)
	}
	if !isHexString(f.Station, 10) {
		return fmt.Errorf("station address %q is not 10 upper-case hex digits", f.Station)
	}
	if !isHexString(f.Password, 4) {
		return fmt.Errorf("password %q is not 4 upper-case hex digits", f.Password)
	}
	n := len(f.Body)
	if f.Total != 0 || f.Seq != 0 {
		if f.Total < 1 || f.Total > 0xFFF || f.Seq < 1 || f.Seq > f.Total {
			return fmt.Errorf("M3 packet %d of %d: the count is 1–4095 and the number 1 to the count", f.Seq, f.Total)
		}
		n += f.packetWordLen()
	}
	if len(f.Body) < 1 || n > MaxBody {
		return fmt.Errorf("body of %d bytes: the length field counts 1–%d", len(f.Body), MaxBody)
	}
	if err := checkEnd(f.Up, f.End); err != nil {
		return fmt.Errorf("%s", err.Detail)
	}
	return nil
}

func (f *Frame) packetWordLen() int {
	if f.Encoding == ASCII {
		return 6
	}
	return 3
}

func isHexString(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if !isUpperHex(s[i]) {
			return false
		}
	}
	return true
}

// hexField decodes s as n bytes; characters that are not hex digits count
// as 0 (Check reports them).
func hexField(s string, n int) []byte {
	b := make([]byte, n)
	for i := range min(len(s), 2*n) {
		if v := hexVal(s[i]); v > 0 {
			b[i/2] |= byte(v) << (4 * (1 - i%2))
		}
	}
	return b
}

// Encode renders f in f.Encoding (HEX unless ASCII), computing the length
// word and the CRC: uplink or downlink address order by f.Up, SYN and the
// packet word when f.Total > 0. For a frame that passes Check,
// Decode(f.Encode()) gives f back; for every valid frame x,
// Decode(x).Encode() is x.
func (f *Frame) Encode() []byte {
	n := len(f.Body)
	start := byte(STX)
	if f.Total > 0 {
		n += f.packetWordLen()
		start = SYN
	}
	if f.Encoding == ASCII {
		return f.encodeASCII(n, start)
	}
	b := make([]byte, 0, hexOverhead+n)
	b = append(b, 0x7E, 0x7E)
	if f.Up {
		b = append(b, f.Centre)
		b = append(b, hexField(f.Station, 5)...)
	} else {
		b = append(b, hexField(f.Station, 5)...)
		b = append(b, f.Centre)
	}
	b = append(b, hexField(f.Password, 2)...)
	word := n & 0x0FFF
	if !f.Up {
		word |= 0x8000
	}
	b = append(b, f.Function, byte(word>>8), byte(word), start)
	if f.Total > 0 {
		p := (f.Total&0xFFF)<<12 | f.Seq&0xFFF
		b = append(b, byte(p>>16), byte(p>>8), byte(p))
	}
	b = append(b, f.Body...)
	b = append(b, f.End)
	crc := CRC(b)
	return append(b, byte(crc>>8), byte(crc))
}

func (f *Frame) encodeASCII(n int, start byte) []byte {
	var b strings.Builder
	b.Grow(asciiOverhead + n)
	b.WriteByte(SOH)
	station := fmt.Sprintf("%-10.10s", f.Station)
	password := fmt.Sprintf("%-4.4s", f.Password)
	dir := '0'
	if f.Up {
		fmt.Fprintf(&b, "%02X%s", f.Centre, station)
	} else {
		fmt.Fprintf(&b, "%s%02X", station, f.Centre)
		dir = '8'
	}
	fmt.Fprintf(&b, "%s%02X%c%03X", password, f.Function, dir, n&0xFFF)
	b.WriteByte(start)
	if f.Total > 0 {
		fmt.Fprintf(&b, "%03X%03X", f.Total&0xFFF, f.Seq&0xFFF)
	}
	b.Write(f.Body)
	b.WriteByte(f.End)
	out := []byte(b.String())
	return fmt.Appendf(out, "%04X", CRC(out))
}

// Split finds frames in a byte stream (both encodings). It returns what it
// found, complete frames and errors in stream order, and the bytes to keep
// for the next read: an incomplete frame at the end, never more than
// MaxFrame bytes. Raw of an error and rest alias buf; frames own their bytes.
//
// After a bad frame it resynchronises at the next possible start, as
// internal/hj212.Split does. Bytes that are not a frame come back as one
// Found (ReasonBadFrame) per contiguous run. A frame whose CRC fails, or
// whose end has not arrived, is cut short where a whole valid frame starts
// inside it (a failed one also where a frame starts whose end has not
// arrived), so a damaged length word can neither swallow nor hold back the
// good frame after it, however the stream is cut into reads.
func Split(buf []byte) (found []Found, rest []byte) {
	junk := -1
	flush := func(end int) {
		if junk >= 0 && end > junk {
			found = append(found, Found{Raw: buf[junk:end], Err: errorf(ReasonBadFrame, "%d bytes outside a frame", end-junk)})
		}
		junk = -1
	}
	i := 0
	for i < len(buf) {
		switch scanStart(buf[i:]) {
		case notStart:
			if junk < 0 {
				junk = i
			}
			i++
			continue
		case partialStart:
			flush(i)
			return found, buf[i:]
		}
		flush(i)
		size, err := frameSize(buf[i:])
		if err != nil {
			j := nextStart(buf, i+1)
			found = append(found, Found{Raw: buf[i:j], Err: err})
			i = j
			continue
		}
		if size > len(buf)-i {
			if j := validWithin(buf, i+1, len(buf), false); j >= 0 {
				found = append(found, Found{Raw: buf[i:j], Err: errorf(ReasonBadLength,
					"the length field announces a %d-byte frame, but a whole frame starts %d bytes in", size, j-i)})
				i = j
				continue
			}
			return found, buf[i:]
		}
		raw := buf[i : i+size]
		if e := endPos(raw, size); !isEnd(raw[e]) {
			j := nextStart(buf, i+1)
			found = append(found, Found{Raw: buf[i:j], Err: errorf(ReasonBadLength,
				"the length field puts the end character at byte %d, which is %02X", e, raw[e])})
			i = j
			continue
		}
		f, derr := Decode(raw)
		switch {
		case derr == nil:
			found = append(found, Found{Raw: f.Raw, Frame: f})
		case derr.Reason == ReasonBadCRC:
			// The length word may be wrong too: do not let the frame
			// swallow one that starts inside it, nor one that may start
			// inside it but has not fully arrived.
			if j := validWithin(buf, i+1, i+size, true); j >= 0 {
				found = append(found, Found{Raw: buf[i:j], Err: derr})
				i = j
				continue
			}
			fallthrough
		default:
			found = append(found, Found{Raw: raw, Err: derr})
		}
		i += size
	}
	flush(len(buf))
	return found, nil
}

// nextStart is the first index from from on where a frame could start, or
// len(buf).
func nextStart(buf []byte, from int) int {
	for j := from; j < len(buf); j++ {
		if scanStart(buf[j:]) != notStart {
			return j
		}
	}
	return len(buf)
}

// validWithin is the first index in [from, to) where a whole frame with a
// good CRC starts, or with undecided set also where a frame starts whose
// end is not in buf yet; -1 if there is none.
func validWithin(buf []byte, from, to int, undecided bool) int {
	for j := from; j < to; j++ {
		switch scanStart(buf[j:]) {
		case notStart:
			continue
		case partialStart:
			if undecided {
				return j
			}
			continue
		}
		size, err := frameSize(buf[j:])
		if err != nil {
			continue
		}
		if size > len(buf)-j {
			if undecided {
				return j
			}
			continue
		}
		raw := buf[j : j+size]
		if isEnd(raw[endPos(raw, size)]) && crcOK(raw) {
			return j
		}
	}
	return -1
}

// crcOK checks the CRC of a frame whose size is known, without Decode's
// copy: validWithin may try many candidates.
func crcOK(raw []byte) bool {
	n := len(raw)
	if raw[0] == SOH {
		for _, c := range raw[n-4:] {
			if !isUpperHex(c) {
				return false
			}
		}
		return int(CRC(raw[:n-4])) == parseHex(raw[n-4:])
	}
	return CRC(raw[:n-2]) == uint16(raw[n-2])<<8|uint16(raw[n-1])
}
