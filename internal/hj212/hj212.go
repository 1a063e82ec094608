// Package hj212 reads and writes HJ 212-2017 packets, the transmission
// standard of China's online water-quality analysers and data loggers
// (domain.md §3): framing (## length data CRC CRLF), the HJ 212 CRC16, the
// data segment (QN ST CN PW MN Flag [PNUM PNO] CP), and the CP data area with
// its monitoring-factor codes and data flags. It imports the standard
// library only.
package hj212

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/crc16"
	"github.com/rivermon/rivermon/internal/reading"
)

// Frame limits (HJ 212-2017 Table 2).
const (
	MaxDataLen = 1024
	overhead   = 12 // "##" + 4 length digits + 4 CRC hex + "\r\n"
)

// CRC variants: which CRC16 a frame carries (Packet.CRC), and the values of
// a station's hj212_crc in the registry.
const (
	CRCVariantHJ212  = "hj212"  // the standard's own (CRC)
	CRCVariantModbus = "modbus" // CRC-16/MODBUS (CRCModbus)
)

// CRC computes the HJ 212 CRC16 of data (Appendix A): register 0xFFFF, the
// register shifted right by 8 before each byte is mixed in, polynomial
// 0xA001, no final XOR. It is not CRC-16/MODBUS.
func CRC(data []byte) uint16 { return crc16.HJ212(data) }

// CRCModbus computes CRC-16/MODBUS of data: register 0xFFFF, each byte
// XORed into the low byte of the register, polynomial 0xA001 (reflected
// 0x8005), no final XOR. Many data loggers and a public HJ 212 simulator
// frame their packets with it instead of the standard's CRC (domain.md
// §3.4; HJ-LUA ships both, hj212/utils/crc.lua and crc_serial.lua).
func CRCModbus(data []byte) uint16 { return crc16.Modbus(data) }

// checksum is the CRC of data in variant; anything but CRCVariantModbus is
// the standard's.
func checksum(variant string, data []byte) uint16 {
	if variant == CRCVariantModbus {
		return CRCModbus(data)
	}
	return CRC(data)
}

// Packet is one HJ 212 data segment.
type Packet struct {
	QN   string
	ST   string
	CN   string
	PW   string
	MN   string
	Flag int
	PNUM string // only in split packets
	PNO  string
	CP   string // the data area between && and &&
	// CRC is the variant of the frame's CRC, CRCVariantHJ212 or
	// CRCVariantModbus: Decode sets it, Encode uses it ("" is HJ 212), and
	// the answers to p are framed with it.
	CRC string
}

// AckRequested reports Flag bit A: the sender wants a 9014 reply.
func (p *Packet) AckRequested() bool { return p.Flag&1 == 1 }

// Version is Flag bits 7–2: 0 for HJ/T 212-2005, 1 for HJ 212-2017.
func (p *Packet) Version() int { return p.Flag >> 2 }

// Error reasons, the dead-letter reason codes of HJ 212 input.
const (
	ReasonBadFrame   = "hj212_bad_frame"
	ReasonBadLength  = "hj212_bad_length"
	ReasonBadCRC     = "hj212_bad_crc"
	ReasonBadSegment = "hj212_bad_segment"
)

// Error is a packet that cannot be used, with its reason code.
type Error struct {
	Reason string
	Detail string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Detail }

// Frame is one framed packet found in a stream, or the error of a stretch
// that could not be framed.
type Frame struct {
	Raw []byte // the whole frame, "##" to "\r\n"
	Err *Error
	Pkt *Packet
}

// Split finds the frames in buf. It returns the frames found, complete or
// in error, and the bytes to keep for the next read (an incomplete frame
// at the end). On a bad frame it resynchronises at the next "##", as the
// reference parser does (HJ-LUA packet.lua).
func Split(buf []byte) (frames []Frame, rest []byte) {
	for len(buf) > 0 {
		i := bytes.Index(buf, []byte("##"))
		if i < 0 {
			// Keep a trailing "#" that may start the next header.
			if buf[len(buf)-1] == '#' {
				if len(buf) > 1 {
					frames = append(frames, Frame{Raw: buf[:len(buf)-1], Err: &Error{ReasonBadFrame, "bytes outside a frame"}})
				}
				return frames, buf[len(buf)-1:]
			}
			frames = append(frames, Frame{Raw: buf, Err: &Error{ReasonBadFrame, "bytes outside a frame"}})
			return frames, nil
		}
		if i > 0 {
			frames = append(frames, Frame{Raw: buf[:i], Err: &Error{ReasonBadFrame, "bytes outside a frame"}})
			buf = buf[i:]
		}
		if len(buf) < 6 {
			return frames, buf
		}
		n, err := strconv.Atoi(string(buf[2:6]))
		if err != nil || n < 0 || n > MaxDataLen {
			frames = append(frames, Frame{Raw: buf[:2], Err: &Error{ReasonBadLength, fmt.Sprintf("length field %q", buf[2:6])}})
			buf = buf[2:]
			continue
		}
		if len(buf) < n+overhead {
			return frames, buf
		}
		raw := buf[:n+overhead]
		if raw[n+10] != '\r' || raw[n+11] != '\n' {
			frames = append(frames, Frame{Raw: buf[:2], Err: &Error{ReasonBadLength, fmt.Sprintf("length %d does not end at CR LF", n)}})
			buf = buf[2:]
			continue
		}
		pkt, perr := Decode(raw)
		frames = append(frames, Frame{Raw: raw, Pkt: pkt, Err: perr})
		buf = buf[n+overhead:]
	}
	return frames, nil
}

// Decode parses one complete frame.
func Decode(raw []byte) (*Packet, *Error) {
	if len(raw) < overhead || !bytes.HasPrefix(raw, []byte("##")) || !bytes.HasSuffix(raw, []byte("\r\n")) {
		return nil, &Error{ReasonBadFrame, "not ##…\\r\\n"}
	}
	n, err := strconv.Atoi(string(raw[2:6]))
	if err != nil || n != len(raw)-overhead {
		return nil, &Error{ReasonBadLength, fmt.Sprintf("length field %q for a %d-byte data segment", raw[2:6], len(raw)-overhead)}
	}
	data := raw[6 : 6+n]
	want, err := strconv.ParseUint(string(raw[6+n:10+n]), 16, 16)
	if err != nil {
		return nil, &Error{ReasonBadCRC, fmt.Sprintf("CRC field %q is not hex", raw[6+n:10+n])}
	}
	// A frame is taken with either CRC; which one it carries is recorded,
	// for the station's hj212_crc to be checked and the answer framed alike.
	variant := CRCVariantHJ212
	if got := CRC(data); uint16(want) != got {
		mb := CRCModbus(data)
		if uint16(want) != mb {
			return nil, &Error{ReasonBadCRC, fmt.Sprintf("CRC %04X, computed %04X (HJ 212) or %04X (CRC-16/MODBUS)", want, got, mb)}
		}
		variant = CRCVariantModbus
	}
	p, perr := ParseSegment(string(data))
	if perr != nil {
		return nil, perr
	}
	p.CRC = variant
	return p, nil
}

// ParseSegment parses a data segment "QN=…;ST=…;…;CP=&&…&&".
func ParseSegment(seg string) (*Packet, *Error) {
	head, cp, ok := strings.Cut(seg, "CP=&&")
	if !ok || !strings.HasSuffix(cp, "&&") {
		return nil, &Error{ReasonBadSegment, "no CP=&&…&&"}
	}
	p := &Packet{CP: strings.TrimSuffix(cp, "&&")}
	for _, f := range strings.Split(strings.TrimSuffix(head, ";"), ";") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, &Error{ReasonBadSegment, fmt.Sprintf("field %q is not name=value", f)}
		}
		switch k {
		case "QN":
			p.QN = v
		case "ST":
			p.ST = v
		case "CN":
			p.CN = v
		case "PW":
			p.PW = v
		case "MN":
			p.MN = v
		case "Flag":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 255 {
				return nil, &Error{ReasonBadSegment, fmt.Sprintf("Flag %q", v)}
			}
			p.Flag = n
		case "PNUM":
			p.PNUM = v
		case "PNO":
			p.PNO = v
		default:
			return nil, &Error{ReasonBadSegment, fmt.Sprintf("unknown field %q", k)}
		}
	}
	if p.CN == "" || p.MN == "" {
		return nil, &Error{ReasonBadSegment, "CN or MN missing"}
	}
	if err := checkPieces(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Segment renders the data segment in the standard's field order.
func (p *Packet) Segment() string {
	var b strings.Builder
	for _, f := range []struct{ k, v string }{{"QN", p.QN}, {"ST", p.ST}, {"CN", p.CN}, {"PW", p.PW}, {"MN", p.MN}} {
		if f.v != "" {
			b.WriteString(f.k + "=" + f.v + ";")
		}
	}
	b.WriteString("Flag=" + strconv.Itoa(p.Flag) + ";")
	if p.PNUM != "" {
		b.WriteString("PNUM=" + p.PNUM + ";PNO=" + p.PNO + ";")
	}
	b.WriteString("CP=&&" + p.CP + "&&")
	return b.String()
}

// Encode frames the packet: "##" length segment CRC "\r\n", with the CRC
// of p.CRC.
func (p *Packet) Encode() []byte { return p.EncodeCRC(p.CRC) }

// EncodeCRC frames the packet with the CRC of variant (CRCVariantHJ212 or
// CRCVariantModbus; "" is HJ 212).
func (p *Packet) EncodeCRC(variant string) []byte {
	seg := p.Segment()
	return []byte(fmt.Sprintf("##%04d%s%04X\r\n", len(seg), seg, checksum(variant, []byte(seg))))
}

// Ack is the centre's 9014 data acknowledgement of p (domain.md §3.11 b),
// framed with p's CRC variant.
func (p *Packet) Ack() *Packet {
	return &Packet{QN: p.QN, ST: "91", CN: "9014", PW: p.PW, MN: p.MN, Flag: 4, CRC: p.CRC}
}

// Data is the content of a data upload's CP area.
type Data struct {
	Time time.Time
	// Items maps a factor code (w01010) to its fields (Rtd, Avg, Flag …).
	Items map[string]map[string]string
}

// ParseCP reads a data area: "DataTime=…;w01010-Rtd=9.8,w01010-Flag=N;…".
func ParseCP(cp string) (*Data, error) {
	d := &Data{Items: map[string]map[string]string{}}
	hasTime := false
	for _, group := range strings.Split(cp, ";") {
		if group == "" {
			continue // tolerate ";;" and a trailing ";"
		}
		for _, kv := range strings.Split(group, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("CP item %q is not name=value", kv)
			}
			if k == "DataTime" {
				// DataTime carries no zone: the standard gives none, Chinese
				// systems use Beijing time (UTC+8).
				t, err := time.ParseInLocation("20060102150405", v, reading.Zone)
				if err != nil {
					return nil, fmt.Errorf("DataTime %q is not YYYYMMDDhhmmss", v)
				}
				if hasTime && !t.UTC().Equal(d.Time) {
					// One sample has one time; which of the two the
					// items belong to cannot be told.
					return nil, fmt.Errorf("two DataTimes, %s and %q", d.Time.In(reading.Zone).Format("20060102150405"), v)
				}
				d.Time, hasTime = t.UTC(), true
				continue
			}
			code, field, ok := strings.Cut(k, "-")
			if !ok {
				continue // parameters such as RtdInterval are not data
			}
			if d.Items[code] == nil {
				d.Items[code] = map[string]string{}
			}
			d.Items[code][field] = v
		}
	}
	if !hasTime {
		return nil, errors.New("no DataTime")
	}
	return d, nil
}

// Codes maps the water monitoring-factor codes rivermon takes (HJ 212-2017
// Table B.1; w01003 turbidity as used by surface-water station software) to
// the contract's parameter codes.
var Codes = map[string]string{
	"w01001": "ph",
	"w01009": "do_mgl",
	"w01010": "water_temp_c",
	"w01014": "cond_uscm",
	"w01003": "turb_ntu",
	"w01019": "codmn_mgl",
	"w21003": "nh3n_mgl",
	"w21011": "tp_mgl",
	"w21001": "tn_mgl",
}

// FactorOf is the inverse of Codes.
func FactorOf(param string) (string, bool) {
	for k, v := range Codes {
		if v == param {
			return k, true
		}
	}
	return "", false
}

// FlagQC maps an HJ 212 data flag (Table 8) to the QARTOD flag it forces
// on the value; 0 means none (N: instrument normal, QC runs as usual).
// F stopped, D fault, C calibrating, T over range, B communication fault:
// 4, the value is not a measurement of the river. M maintenance: 3. S a
// set value entered by hand: 2.
var FlagQC = map[string]int{"N": 0, "F": 4, "D": 4, "C": 4, "T": 4, "B": 4, "M": 3, "S": 2}

// ValueField is which field of an item holds the value of a command: the
// real-time value for 2011, the interval mean for minute, hourly and daily
// data.
func ValueField(cn string) (string, bool) {
	switch cn {
	case "2011":
		return "Rtd", true
	case "2051", "2061", "2031":
		return "Avg", true
	}
	return "", false
}

// SortedCodes returns the item codes of d in order.
func (d *Data) SortedCodes() []string {
	out := make([]string, 0, len(d.Items))
	for k := range d.Items {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
