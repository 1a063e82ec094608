package sl651

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// Report is a parsed uplink body (Tables 24, 27–38).
type Report struct {
	Serial   uint16
	Sent     time.Time       // send time, UTC (the frame carries Beijing time)
	Stations []StationReport // empty for a keep-alive (2F)
	// Manual is the manual-entry data of a 35H report (the F2 F2 / RGZS
	// group) in its original encoding, usually SL 330 code (§6.6.4.8); nil
	// when the body has none.
	Manual []byte
}

// StationReport is what one station group (F1 F1 / ST) of a body carries.
type StationReport struct {
	Address string   // 10 upper-case hex digits
	Class   byte     // Table A.1: 'P','H','K','Z','D','T','M','G','Q','I','O'
	Values  []Value  // in body order
	Skipped []string // elements not mapped, as "7A" / "FF03" (HEX) or the ASCII mnemonic, one entry per occurrence
}

// Value is one element value of a station.
type Value struct {
	// Time is the observation time, UTC: the observation time group before
	// the element; for 31H the first time plus i steps; for the 5-minute
	// arrays (DRP, DRZ1) the group's time plus i × 5 minutes.
	Time    time.Time
	Element string  // ASCII mnemonic ("Z", "DRP", "pH" …)
	Code    string  // contract code; "battery_v" for VT, "" for ZT
	Value   float64 // the decimal as sent, negative allowed
	// Missing marks a value that is not one: all-F nibbles (HEX), "M"
	// (ASCII), an FF or FFFF slot of DRP or DRZ1.
	Missing  bool
	Period   time.Duration // rain: the period the amount covers (PJ 0: unknown or current)
	Relative bool          // DRZ1: relative to the station's level base
	Bits     uint32        // ZT: the 4 status and alarm bytes (Table 58)
}

const fiveMinutes = 5 * time.Minute

var pow10 = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7}

// ParseBody parses the body of an uplink frame of function 2F, 30, 31, 32,
// 33, 34 or 35; other functions are ReasonUnsupportedFunction. For an M3
// transfer, parse the frame Join returns: a single packet holds part of
// the body only.
//
// In HEX the data definition byte after each lead gives the value's length
// and decimals, so elements rivermon does not map (other Table C.1 leads,
// unassigned leads such as 7A, FF xx user extensions) are skipped and
// listed, never an error. In ASCII every identifier is followed by one
// value (the time step DRxnn by none), which serves the same purpose.
func ParseBody(f *Frame) (*Report, *Error) {
	switch f.Function {
	case 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35:
	default:
		return nil, errorf(ReasonUnsupportedFunction, "function %02X from station %s: rivermon reads 2F–35", f.Function, f.Station)
	}
	p := &bodyParser{b: f.Body}
	if f.Encoding == ASCII {
		return p.ascii()
	}
	return p.hex()
}

type bodyParser struct {
	b   []byte
	r   *Report
	obs time.Time // the observation time in force; zero before the first group
}

func (p *bodyParser) fail(at int, format string, args ...any) *Error {
	return errorf(ReasonBadBody, "body offset %d: %s", at, fmt.Sprintf(format, args...))
}

// station is the station group in force, or an error naming what came
// before any.
func (p *bodyParser) station(at int, what string) (*StationReport, *Error) {
	if len(p.r.Stations) == 0 {
		return nil, p.fail(at, "%s comes before the station address group (F1 F1 / ST)", what)
	}
	return &p.r.Stations[len(p.r.Stations)-1], nil
}

func (p *bodyParser) needTime(at int, what string) *Error {
	if p.obs.IsZero() {
		return p.fail(at, "%s has no observation time group (F0 F0 / TT) before it", what)
	}
	return nil
}

func (p *bodyParser) add(st *StationReport, el *Element, t time.Time) *Value {
	st.Values = append(st.Values, Value{Time: t, Element: el.Name, Code: el.Code, Period: el.Period, Relative: el.Relative})
	return &st.Values[len(st.Values)-1]
}

func (p *bodyParser) hex() (*Report, *Error) {
	b := p.b
	if len(b) < 8 {
		return nil, errorf(ReasonBadBody, "body of %d bytes is shorter than serial number and send time (8 bytes)", len(b))
	}
	sent, ok := bcdTime(b[2:8])
	if !ok {
		return nil, p.fail(2, "send time %X is not a BCD time YYMMDDhhmmss", b[2:8])
	}
	p.r = &Report{Serial: uint16(b[0])<<8 | uint16(b[1]), Sent: sent}
	i := 8
	for i < len(b) {
		if i+2 > len(b) {
			return nil, p.fail(i, "identifier %02X has no data definition byte", b[i])
		}
		lead, def := b[i], b[i+1]
		var err *Error
		switch lead {
		case leadStation:
			if def != leadStation {
				return nil, p.fail(i, "station group F1 %02X: the second byte must be F1", def)
			}
			if i+8 > len(b) {
				return nil, p.fail(i, "station group needs 5 address bytes and a class byte, %d bytes left", len(b)-i-2)
			}
			if c := b[i+7]; !isStationClass(c) {
				return nil, p.fail(i+7, "station class %02X is none of Table A.1 (%s)", c, stationClasses)
			}
			p.r.Stations = append(p.r.Stations, StationReport{Address: upperHex(b[i+2 : i+7]), Class: b[i+7]})
			p.obs = time.Time{}
			i += 8
		case leadTime:
			if def != leadTime {
				return nil, p.fail(i, "observation time group F0 %02X: the second byte must be F0", def)
			}
			if i+7 > len(b) {
				return nil, p.fail(i, "observation time group needs 5 bytes, %d left", len(b)-i-2)
			}
			t, ok := bcdTime(b[i+2 : i+7])
			if !ok {
				return nil, p.fail(i+2, "observation time %X is not a BCD time YYMMDDhhmm", b[i+2:i+7])
			}
			p.obs = t
			i += 7
		case leadManual:
			if def != leadManual {
				return nil, p.fail(i, "manual-entry group F2 %02X: the second byte must be F2", def)
			}
			p.r.Manual = bytes.Clone(b[i+2:])
			i = len(b)
		case leadPicture, leadFlow:
			// Picture and flow-velocity batch data take the rest of the body
			// (Table C.1 notes d, f).
			st, err := p.station(i, fmt.Sprintf("element %02X", lead))
			if err != nil {
				return nil, err
			}
			st.Skipped = append(st.Skipped, fmt.Sprintf("%02X", lead))
			i = len(b)
		case leadStep:
			if def>>3 != 3 {
				return nil, p.fail(i, "time-step group 04 %02X: the data definition must be 18 (3 bytes)", def)
			}
			if i+5 > len(b) {
				return nil, p.fail(i, "time-step group needs 3 bytes, %d left", len(b)-i-2)
			}
			step, ok := bcdStep(b[i+2 : i+5])
			if !ok {
				return nil, p.fail(i+2, "time step %X is not BCD ddhhmm", b[i+2:i+5])
			}
			i += 5
			// A step of 000000 announces the 1-hour 5-minute arrays, which
			// read as ordinary groups (Table C.1 note g).
			if step > 0 {
				i, err = p.hexSeries(i, step)
			}
		default:
			i, err = p.hexElement(i)
		}
		if err != nil {
			return nil, err
		}
	}
	return p.r, nil
}

// hexIdentifier reads the identifier at i: its name for messages (as listed
// in Skipped when not mapped), the mapped element (nil if none), the data
// definition byte and the index of the data.
func (p *bodyParser) hexIdentifier(i int) (name string, el *Element, def byte, data int, err *Error) {
	b := p.b
	if b[i] == leadExt {
		if i+3 > len(b) {
			return "", nil, 0, 0, p.fail(i, "extension identifier FF is cut short")
		}
		return fmt.Sprintf("FF%02X", b[i+1]), nil, b[i+2], i + 3, nil
	}
	if i+2 > len(b) {
		return "", nil, 0, 0, p.fail(i, "identifier %02X has no data definition byte", b[i])
	}
	el = elementByLead(b[i])
	name = fmt.Sprintf("%02X", b[i])
	if el != nil {
		name += " (" + el.Name + ")"
	}
	return name, el, b[i+1], i + 2, nil
}

func (p *bodyParser) hexElement(i int) (int, *Error) {
	name, el, def, start, err := p.hexIdentifier(i)
	if err != nil {
		return 0, err
	}
	end := start + int(def>>3)
	if end > len(p.b) {
		return 0, p.fail(i, "element %s announces %d data bytes, %d left", name, def>>3, len(p.b)-start)
	}
	st, err := p.station(i, "element "+name)
	if err != nil {
		return 0, err
	}
	if el == nil {
		st.Skipped = append(st.Skipped, name)
		return end, nil
	}
	if err := p.needTime(i, "element "+el.Name); err != nil {
		return 0, err
	}
	data := p.b[start:end]
	switch el.Lead {
	case leadDRP:
		// One byte per 5-minute slot in 0.1 mm, FF invalid (Table C.1 F4H).
		for k, c := range data {
			v := p.add(st, el, p.obs.Add(time.Duration(k)*fiveMinutes))
			if c == 0xFF {
				v.Missing = true
			} else {
				v.Value = float64(c) / 10
			}
		}
	case leadDRZ1:
		// Two bytes per 5-minute slot in cm, FFFF invalid (Table C.1 F5H).
		if len(data)%2 != 0 {
			return 0, p.fail(i, "DRZ1 has %d data bytes, not whole 2-byte slots", len(data))
		}
		for k := 0; k < len(data); k += 2 {
			v := p.add(st, el, p.obs.Add(time.Duration(k/2)*fiveMinutes))
			if cm := int(data[k])<<8 | int(data[k+1]); cm == 0xFFFF {
				v.Missing = true
			} else {
				v.Value = float64(cm) / 100
			}
		}
	default:
		if err := p.hexValue(st, el, def, data, p.obs, i); err != nil {
			return 0, err
		}
	}
	return end, nil
}

// hexValue adds one value of a BCD element or of ZT.
func (p *bodyParser) hexValue(st *StationReport, el *Element, def byte, data []byte, t time.Time, at int) *Error {
	if el.Lead == leadZT {
		if len(data) != 4 {
			return p.fail(at, "ZT has %d data bytes, not 4", len(data))
		}
		v := p.add(st, el, t)
		if bits := uint32(data[0])<<24 | uint32(data[1])<<16 | uint32(data[2])<<8 | uint32(data[3]); bits == 0xFFFFFFFF {
			v.Missing = true
		} else {
			v.Bits = bits
		}
		return nil
	}
	if len(data) == 0 {
		return p.fail(at, "element %s has no data bytes", el.Name)
	}
	x, missing, bad := bcdValue(data, int(def&7))
	if bad != "" {
		return p.fail(at, "element %s value %X %s", el.Name, data, bad)
	}
	v := p.add(st, el, t)
	v.Value, v.Missing = x, missing
	return nil
}

// hexSeries reads the element after a time-step group of 31H (Table 30):
// one identifier and its values in time order, each as long as the data
// definition says, up to the end of the body or the next station or time
// group (F1 F1 and F0 F0 cannot start a BCD value).
func (p *bodyParser) hexSeries(i int, step time.Duration) (int, *Error) {
	b := p.b
	if i >= len(b) {
		return 0, p.fail(i, "time-step group is not followed by an element identifier")
	}
	switch lead := b[i]; {
	case lead >= leadDRP && lead <= leadDRZ8:
		return i, nil // a 5-minute array: an ordinary group
	case lead >= leadTime && lead < leadExt || lead == leadStep:
		return 0, p.fail(i, "time-step group is followed by %02X, not an element identifier", lead)
	}
	name, el, def, j, err := p.hexIdentifier(i)
	if err != nil {
		return 0, err
	}
	n := int(def >> 3)
	if n == 0 {
		return 0, p.fail(i, "series element %s has no data bytes", name)
	}
	st, err := p.station(i, "element "+name)
	if err != nil {
		return 0, err
	}
	if el == nil {
		st.Skipped = append(st.Skipped, name)
	} else if err := p.needTime(i, "element "+el.Name); err != nil {
		return 0, err
	}
	for k := 0; j < len(b); k++ {
		if j+1 < len(b) && (b[j] == leadStation && b[j+1] == leadStation || b[j] == leadTime && b[j+1] == leadTime) {
			break
		}
		if j+n > len(b) {
			return 0, p.fail(j, "value %d of the %s series has %d bytes, it takes %d", k+1, name, len(b)-j, n)
		}
		if el != nil {
			if err := p.hexValue(st, el, def, b[j:j+n], p.obs.Add(time.Duration(k)*step), j); err != nil {
				return 0, err
			}
		}
		j += n
	}
	return j, nil
}

// bcdValue reads BCD digits with d decimals (§6.6.3.3): all F nibbles is a
// missing value; a leading FF byte marks a negative number (FF0 for an odd
// digit count, which is FF before the usual zero pad nibble).
func bcdValue(data []byte, d int) (v float64, missing bool, bad string) {
	if bytes.Count(data, []byte{0xFF}) == len(data) {
		return 0, true, ""
	}
	neg := data[0] == 0xFF
	if neg {
		data = data[1:]
	}
	var n uint64
	sig := 0
	for _, c := range data {
		for _, nib := range [2]byte{c >> 4, c & 0x0F} {
			if nib > 9 {
				return 0, false, "is not BCD"
			}
			if sig == 0 && nib == 0 {
				continue
			}
			// 15 digits stay exact in a float64; the longest standard
			// format has 11.
			if sig++; sig > 15 {
				return 0, false, "has more than 15 significant digits"
			}
			n = n*10 + uint64(nib)
		}
	}
	v = float64(n) / pow10[d]
	if neg && n != 0 {
		v = -v
	}
	return v, false, ""
}

// bcdDigits appends the decimal digits of BCD bytes to dst; false if a
// nibble is not a digit.
func bcdDigits(dst []byte, b []byte) ([]byte, bool) {
	for _, c := range b {
		if c>>4 > 9 || c&0x0F > 9 {
			return dst, false
		}
		dst = append(dst, '0'+c>>4, '0'+c&0x0F)
	}
	return dst, true
}

// bcdTime reads 5 (YYMMDDhhmm) or 6 (YYMMDDhhmmss) BCD bytes of Beijing
// time.
func bcdTime(b []byte) (time.Time, bool) {
	var buf [12]byte
	d, ok := bcdDigits(buf[:0], b)
	if !ok {
		return time.Time{}, false
	}
	return digitsTime(d)
}

// digitsTime reads YYMMDDhhmm or YYMMDDhhmmss of Beijing time (YY is 20YY)
// and returns it in UTC.
func digitsTime(d []byte) (time.Time, bool) {
	if len(d) != 10 && len(d) != 12 {
		return time.Time{}, false
	}
	var f [6]int
	for k := 0; k < len(d); k += 2 {
		if d[k] < '0' || d[k] > '9' || d[k+1] < '0' || d[k+1] > '9' {
			return time.Time{}, false
		}
		f[k/2] = int(d[k]-'0')*10 + int(d[k+1]-'0')
	}
	t := time.Date(2000+f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], 0, reading.Zone)
	if t.Month() != time.Month(f[1]) || t.Day() != f[2] || t.Hour() != f[3] || t.Minute() != f[4] || t.Second() != f[5] {
		return time.Time{}, false // 31 April, 24:00 and the like
	}
	return t.UTC(), true
}

// bcdStep reads a time-step code ddhhmm (Table C.3).
func bcdStep(b []byte) (time.Duration, bool) {
	var buf [6]byte
	d, ok := bcdDigits(buf[:0], b)
	if !ok {
		return 0, false
	}
	days := int(d[0]-'0')*10 + int(d[1]-'0')
	hours := int(d[2]-'0')*10 + int(d[3]-'0')
	mins := int(d[4]-'0')*10 + int(d[5]-'0')
	return time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour + time.Duration(mins)*time.Minute, true
}

func (p *bodyParser) ascii() (*Report, *Error) {
	b := p.b
	// §6.6.2.1: the serial number (4 hex characters) and the send time (12
	// digits) come first with no space after either; then groups
	// "identifier space data space", the last space kept.
	if len(b) < 16 {
		return nil, errorf(ReasonBadBody, "body of %d characters is shorter than serial number and send time (16)", len(b))
	}
	serial := parseHex(b[:4])
	if serial < 0 {
		return nil, p.fail(0, "serial number %q is not 4 hex digits", b[:4])
	}
	sent, ok := digitsTime(b[4:16])
	if !ok {
		return nil, p.fail(4, "send time %q is not YYMMDDhhmmss", b[4:16])
	}
	p.r = &Report{Serial: uint16(serial), Sent: sent}
	i := 16
	for {
		i = skipSpaces(b, i)
		if i >= len(b) {
			break
		}
		if i+1 < len(b) && b[i] == leadManual && b[i+1] == leadManual {
			// Manual-entry data travel in their original encoding even in
			// ASCII (§6.4.1), some devices with the HEX identifier.
			p.r.Manual = bytes.Clone(b[i+2:])
			break
		}
		at := i
		tok, next := token(b, i)
		var err *Error
		switch {
		case tok == "ST":
			addr, next2 := token(b, skipSpaces(b, next))
			class, next3 := token(b, skipSpaces(b, next2))
			if len(addr) != 10 || parseHex([]byte(addr)) < 0 {
				return nil, p.fail(at, "station address %q is not 10 hex digits", addr)
			}
			if len(class) != 1 || !isStationClass(class[0]) {
				return nil, p.fail(at, "station class %q is none of Table A.1 (%s)", class, stationClasses)
			}
			p.r.Stations = append(p.r.Stations, StationReport{Address: strings.ToUpper(addr), Class: class[0]})
			p.obs = time.Time{}
			i = next3
		case tok == "TT":
			v, next2 := token(b, skipSpaces(b, next))
			t, ok := digitsTime([]byte(v))
			if len(v) != 10 || !ok {
				return nil, p.fail(at, "observation time %q is not YYMMDDhhmm", v)
			}
			p.obs = t
			i = next2
		case tok == "RGZS":
			if next < len(b) {
				next++ // the one space after the identifier
			}
			p.r.Manual = bytes.Clone(b[next:])
			i = len(b)
		case tok == "PIC":
			st, err := p.station(at, "element PIC")
			if err != nil {
				return nil, err
			}
			st.Skipped = append(st.Skipped, tok)
			i = len(b)
		case isStepToken(tok):
			step := asciiStep(tok)
			i = next
			if step > 0 {
				i, err = p.asciiSeries(i, step)
			}
		default:
			i, err = p.asciiElement(at, tok, next)
		}
		if err != nil {
			return nil, err
		}
	}
	return p.r, nil
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

// token is the text from i to the next space or the end, and where it ends.
func token(b []byte, i int) (string, int) {
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return string(b[i:j]), j
}

// isStepToken matches the ASCII time-step code DRxnn (Table C.2).
func isStepToken(t string) bool {
	return len(t) == 5 && t[0] == 'D' && t[1] == 'R' && (t[2] == 'D' || t[2] == 'H' || t[2] == 'N') &&
		'0' <= t[3] && t[3] <= '9' && '0' <= t[4] && t[4] <= '9'
}

func asciiStep(t string) time.Duration {
	n := time.Duration(t[3]-'0')*10 + time.Duration(t[4]-'0')
	switch t[2] {
	case 'D':
		return n * 24 * time.Hour
	case 'H':
		return n * time.Hour
	}
	return n * time.Minute
}

// isDecimal matches the values of ASCII bodies: an optional sign, digits,
// and optionally a point and more digits (no exponent, no hex, no NaN).
func isDecimal(t string) bool {
	if t != "" && (t[0] == '-' || t[0] == '+') {
		t = t[1:]
	}
	intPart, frac, hasPoint := strings.Cut(t, ".")
	return allDigits(intPart) && (!hasPoint || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isValueToken(t string) bool { return t == "M" || isDecimal(t) }

func (p *bodyParser) asciiElement(at int, id string, next int) (int, *Error) {
	st, err := p.station(at, "element "+id)
	if err != nil {
		return 0, err
	}
	j := skipSpaces(p.b, next)
	if j >= len(p.b) {
		return 0, p.fail(at, "element %s has no value", id)
	}
	val, end := token(p.b, j)
	el := elementByName(id)
	if el == nil {
		st.Skipped = append(st.Skipped, id)
		return end, nil
	}
	if err := p.needTime(at, "element "+el.Name); err != nil {
		return 0, err
	}
	if !el.isArray() {
		return end, p.asciiValue(st, el, val, p.obs, at)
	}
	// The arrays' HEX bytes as hex characters (§6.6.2.2: data that are not
	// characters are converted to ASCII), 2 per DRP slot, 4 per DRZ1 slot.
	width := 2
	if el.Lead == leadDRZ1 {
		width = 4
	}
	if val == "" || len(val)%width != 0 {
		return 0, p.fail(at, "%s value %q is not whole %d-character slots", el.Name, val, width)
	}
	for k := 0; k < len(val); k += width {
		x := parseHex([]byte(val[k : k+width]))
		if x < 0 {
			return 0, p.fail(at, "%s value %q is not hex", el.Name, val)
		}
		v := p.add(st, el, p.obs.Add(time.Duration(k/width)*fiveMinutes))
		switch {
		case width == 2 && x == 0xFF, width == 4 && x == 0xFFFF:
			v.Missing = true
		default:
			v.Value = float64(x) / pow10[el.Decimals]
		}
	}
	return end, nil
}

// asciiValue adds one value of a decimal element or of ZT.
func (p *bodyParser) asciiValue(st *StationReport, el *Element, val string, t time.Time, at int) *Error {
	if val == "M" {
		p.add(st, el, t).Missing = true
		return nil
	}
	if el.Lead == leadZT {
		x, err := strconv.ParseUint(val, 16, 32)
		if len(val) != 8 || err != nil {
			return p.fail(at, "ZT value %q is not 8 hex digits", val)
		}
		p.add(st, el, t).Bits = uint32(x)
		return nil
	}
	if !isDecimal(val) || len(val) > 24 {
		return p.fail(at, "element %s value %q is not a decimal number", el.Name, val)
	}
	x, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return p.fail(at, "element %s value %q: %v", el.Name, val, err)
	}
	p.add(st, el, t).Value = x
	return nil
}

// asciiSeries reads what follows an ASCII time step in 31H (Table 30):
// element identifiers, then rows of one value per identifier in time order
// ("M" for a missing one), up to the next identifier that is not a value.
func (p *bodyParser) asciiSeries(i int, step time.Duration) (int, *Error) {
	b := p.b
	type column struct {
		id string
		el *Element
	}
	var cols []column
	for {
		j := skipSpaces(b, i)
		if j >= len(b) {
			break
		}
		tok, next := token(b, j)
		if isValueToken(tok) || tok == "ST" || tok == "TT" || tok == "RGZS" || tok == "PIC" || isStepToken(tok) {
			break
		}
		el := elementByName(tok)
		if el != nil && el.isArray() && len(cols) == 0 {
			return j, nil // a 5-minute array: an ordinary group
		}
		if el != nil && el.isArray() {
			return 0, p.fail(j, "%s cannot be a column of an equal-interval series", el.Name)
		}
		cols = append(cols, column{tok, el})
		i = next
	}
	if len(cols) == 0 {
		return 0, p.fail(i, "time step is not followed by an element identifier")
	}
	st, err := p.station(i, "element "+cols[0].id)
	if err != nil {
		return 0, err
	}
	for _, c := range cols {
		if c.el == nil {
			st.Skipped = append(st.Skipped, c.id)
		} else if err := p.needTime(i, "element "+c.el.Name); err != nil {
			return 0, err
		}
	}
	k := 0
	for {
		j := skipSpaces(b, i)
		if j >= len(b) {
			break
		}
		tok, next := token(b, j)
		if !isValueToken(tok) {
			break
		}
		if c := cols[k%len(cols)]; c.el != nil {
			if err := p.asciiValue(st, c.el, tok, p.obs.Add(time.Duration(k/len(cols))*step), j); err != nil {
				return 0, err
			}
		}
		k++
		i = next
	}
	if k%len(cols) != 0 {
		return 0, p.fail(i, "%d series values do not fill whole rows of %d elements", k, len(cols))
	}
	return i, nil
}
