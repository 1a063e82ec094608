package sl651

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// BuildBody renders r as the body of an uplink frame of function fn (2F–35)
// in the given encoding, the inverse of ParseBody, for the station simulator
// and tests: serial number, send time (truncated to the second), then per
// station the address group, the class, an observation time group whenever
// the time changes and the elements in their standard formats (Table C.1),
// values rounded to the format's decimals. DRP and DRZ1 values go out as
// 12-slot arrays, so they must come 12 at a time, 5 minutes apart. For 31H a
// station holds one element at a constant step: the first time, the time
// step, the identifier and the values. Manual, when set, goes last. Values
// that do not fit their format, observation times that are not whole
// minutes and elements BuildBody does not know are errors naming them;
// Skipped is ignored.
func BuildBody(enc Encoding, fn uint8, r *Report) ([]byte, error) {
	if fn < 0x2F || fn > 0x35 {
		return nil, fmt.Errorf("function %02X: BuildBody renders 2F–35", fn)
	}
	if enc != HEX && enc != ASCII {
		return nil, fmt.Errorf("encoding %v is neither HEX nor ASCII", enc)
	}
	if fn == 0x2F && (len(r.Stations) > 0 || r.Manual != nil) {
		return nil, fmt.Errorf("a keep-alive (2F) carries serial number and send time only; this report has %d stations and %d bytes of manual data", len(r.Stations), len(r.Manual))
	}
	w := &bodyWriter{enc: enc}
	sent, err := bjDigits(r.Sent.Truncate(time.Second), 12)
	if err != nil {
		return nil, fmt.Errorf("send time: %w", err)
	}
	if enc == HEX {
		w.b = append(w.b, byte(r.Serial>>8), byte(r.Serial))
		w.b = appendBCDDigits(w.b, sent)
	} else {
		w.b = fmt.Appendf(w.b, "%04X%s", r.Serial, sent)
	}
	for _, st := range r.Stations {
		if err := w.station(fn, &st); err != nil {
			return nil, fmt.Errorf("station %s: %w", st.Address, err)
		}
	}
	if r.Manual != nil {
		if enc == HEX {
			w.b = append(w.b, leadManual, leadManual)
		} else {
			w.b = append(w.b, "RGZS "...)
		}
		w.b = append(w.b, r.Manual...)
	}
	return w.b, nil
}

type bodyWriter struct {
	enc Encoding
	b   []byte
	obs time.Time // the observation time group last written
}

func (w *bodyWriter) station(fn uint8, st *StationReport) error {
	if !isHexString(strings.ToUpper(st.Address), 10) {
		return fmt.Errorf("address %q is not 10 hex digits", st.Address)
	}
	if !isStationClass(st.Class) {
		return fmt.Errorf("class %q is none of Table A.1 (%s)", st.Class, stationClasses)
	}
	if w.enc == HEX {
		w.b = append(w.b, leadStation, leadStation)
		w.b = append(w.b, hexField(strings.ToUpper(st.Address), 5)...)
		w.b = append(w.b, st.Class)
	} else {
		w.b = fmt.Appendf(w.b, "ST %s %c ", strings.ToUpper(st.Address), st.Class)
	}
	w.obs = time.Time{}
	if fn == 0x31 {
		return w.series(st.Values)
	}
	vals := st.Values
	for k := 0; k < len(vals); {
		v := &vals[k]
		el := elementByName(v.Element)
		if el == nil {
			return fmt.Errorf("value %d: element %q is not one BuildBody renders", k, v.Element)
		}
		if !el.isArray() {
			if err := w.time(v.Time); err != nil {
				return fmt.Errorf("%s: %w", el.Name, err)
			}
			if err := w.value(el, v, true); err != nil {
				return err
			}
			k++
			continue
		}
		if k+12 > len(vals) {
			return fmt.Errorf("value %d: %s takes 12 consecutive 5-minute values, %d are left", k, el.Name, len(vals)-k)
		}
		for j := 1; j < 12; j++ {
			u := vals[k+j]
			if elementByName(u.Element) != el || !u.Time.Equal(v.Time.Add(time.Duration(j)*fiveMinutes)) {
				return fmt.Errorf("value %d: %s slot %d is %s at %s, want %s at %s", k+j, el.Name, j, u.Element,
					u.Time.Format(time.RFC3339), el.Name, v.Time.Add(time.Duration(j)*fiveMinutes).Format(time.RFC3339))
			}
		}
		if err := w.time(v.Time); err != nil {
			return fmt.Errorf("%s: %w", el.Name, err)
		}
		if err := w.array(el, vals[k:k+12]); err != nil {
			return err
		}
		k += 12
	}
	return nil
}

// time writes an observation time group unless t is the one in force.
func (w *bodyWriter) time(t time.Time) error {
	if !w.obs.IsZero() && t.Equal(w.obs) {
		return nil
	}
	if t.Truncate(time.Minute) != t {
		return fmt.Errorf("observation time %s is not a whole minute", t.Format(time.RFC3339Nano))
	}
	d, err := bjDigits(t, 10)
	if err != nil {
		return fmt.Errorf("observation time: %w", err)
	}
	if w.enc == HEX {
		w.b = append(w.b, leadTime, leadTime)
		w.b = appendBCDDigits(w.b, d)
	} else {
		w.b = fmt.Appendf(w.b, "TT %s ", d)
	}
	w.obs = t
	return nil
}

// value writes one element group, or with ident false only its data (a
// 31H series value).
func (w *bodyWriter) value(el *Element, v *Value, ident bool) error {
	if el.Lead == leadZT {
		if w.enc == HEX {
			if ident {
				w.b = append(w.b, leadZT, 4<<3)
			}
			if v.Missing {
				w.b = append(w.b, 0xFF, 0xFF, 0xFF, 0xFF)
			} else {
				w.b = append(w.b, byte(v.Bits>>24), byte(v.Bits>>16), byte(v.Bits>>8), byte(v.Bits))
			}
			return nil
		}
		if ident {
			w.b = append(w.b, "ZT "...)
		}
		if v.Missing {
			w.b = append(w.b, "M "...)
		} else {
			w.b = fmt.Appendf(w.b, "%08X ", v.Bits)
		}
		return nil
	}
	var digits string
	neg := false
	if !v.Missing {
		scaled := math.Round(v.Value * pow10[el.Decimals])
		if math.IsNaN(scaled) || math.Abs(scaled) >= math.Pow10(el.Digits) {
			return fmt.Errorf("%s %v at %s does not fit N(%d,%d)", el.Name, v.Value, v.Time.Format(time.RFC3339), el.Digits, el.Decimals)
		}
		neg = scaled < 0
		digits = strconv.FormatInt(int64(math.Abs(scaled)), 10)
	}
	if w.enc == ASCII {
		if ident {
			w.b = fmt.Appendf(w.b, "%s ", el.Name)
		}
		switch {
		case v.Missing:
			w.b = append(w.b, 'M')
		case el.Decimals == 0:
			w.b = fmt.Appendf(w.b, "%s%s", sign(neg), digits)
		default:
			digits = strings.Repeat("0", max(0, el.Decimals+1-len(digits))) + digits
			cut := len(digits) - el.Decimals
			w.b = fmt.Appendf(w.b, "%s%s.%s", sign(neg), digits[:cut], digits[cut:])
		}
		w.b = append(w.b, ' ')
		return nil
	}
	// BCD without the point in ceil(D/2) bytes; a negative value gets a
	// leading FF byte, which the data definition counts (§6.6.3.3, Table 26).
	n := el.hexBytes()
	data := make([]byte, 0, n+1)
	if neg {
		data = append(data, 0xFF)
	}
	if v.Missing {
		for range n {
			data = append(data, 0xFF)
		}
	} else {
		data = appendBCDDigits(data, strings.Repeat("0", 2*n-len(digits))+digits)
	}
	if ident {
		w.b = append(w.b, el.Lead, byte(len(data)<<3|el.Decimals))
	}
	w.b = append(w.b, data...)
	return nil
}

func sign(neg bool) string {
	if neg {
		return "-"
	}
	return ""
}

// array writes a DRP or DRZ1 group from 12 slot values (Table C.1 F4H,
// F5H): HEX bytes, one per DRP slot in 0.1 mm, two per DRZ1 slot in cm, all
// F for a missing slot; in ASCII the same bytes as hex characters.
func (w *bodyWriter) array(el *Element, vals []Value) error {
	width, limit := 1, 254
	if el.Lead == leadDRZ1 {
		width, limit = 2, 0xFFFE
	}
	data := make([]byte, 0, width*len(vals))
	for _, v := range vals {
		x := 1<<(8*width) - 1
		if !v.Missing {
			scaled := math.Round(v.Value * pow10[el.Decimals])
			if !(scaled >= 0 && scaled <= float64(limit)) {
				return fmt.Errorf("%s slot %v at %s is outside 0–%.*f", el.Name, v.Value, v.Time.Format(time.RFC3339), el.Decimals, float64(limit)/pow10[el.Decimals])
			}
			x = int(scaled)
		}
		if width == 2 {
			data = append(data, byte(x>>8))
		}
		data = append(data, byte(x))
	}
	if w.enc == HEX {
		w.b = append(w.b, el.Lead, byte(len(data)<<3))
		w.b = append(w.b, data...)
	} else {
		w.b = fmt.Appendf(w.b, "%s %s ", el.Name, upperHex(data))
	}
	return nil
}

// series writes the one element of a 31H station at a constant step.
func (w *bodyWriter) series(vals []Value) error {
	if len(vals) < 2 {
		return fmt.Errorf("an equal-interval report (31) needs 2 or more values to have a step, got %d", len(vals))
	}
	el := elementByName(vals[0].Element)
	if el == nil || el.isArray() || el.Lead == leadZT {
		return fmt.Errorf("element %q cannot make an equal-interval series: it is not a decimal element", vals[0].Element)
	}
	step := vals[1].Time.Sub(vals[0].Time)
	for k, v := range vals {
		if elementByName(v.Element) != el || !v.Time.Equal(vals[0].Time.Add(time.Duration(k)*step)) {
			return fmt.Errorf("value %d: %s at %s is not %s at the step %s", k, v.Element, v.Time.Format(time.RFC3339), el.Name, step)
		}
	}
	var unit byte
	var n int
	switch {
	case step > 0 && step < time.Hour && step%time.Minute == 0:
		unit, n = 'N', int(step/time.Minute)
	case step >= time.Hour && step < 24*time.Hour && step%time.Hour == 0:
		unit, n = 'H', int(step/time.Hour)
	case step >= 24*time.Hour && step <= 31*24*time.Hour && step%(24*time.Hour) == 0:
		unit, n = 'D', int(step/(24*time.Hour))
	default:
		return fmt.Errorf("step %s is not 1–59 minutes, 1–23 hours or 1–31 days (Table C.3)", step)
	}
	if err := w.time(vals[0].Time); err != nil {
		return fmt.Errorf("%s: %w", el.Name, err)
	}
	if w.enc == HEX {
		dhm := map[byte]string{'D': "%02d0000", 'H': "00%02d00", 'N': "0000%02d"}[unit]
		w.b = append(w.b, leadStep, 3<<3)
		w.b = appendBCDDigits(w.b, fmt.Sprintf(dhm, n))
		// The identifier's data definition is that of a positive value; a
		// negative one would need a byte more and every value of the series
		// must have the same length (§6.6.4.4 d).
		for _, v := range vals {
			if !v.Missing && math.Round(v.Value*pow10[el.Decimals]) < 0 {
				return fmt.Errorf("%s %v at %s: a HEX series cannot hold negative values", el.Name, v.Value, v.Time.Format(time.RFC3339))
			}
		}
		w.b = append(w.b, el.Lead, byte(el.hexBytes()<<3|el.Decimals))
	} else {
		w.b = fmt.Appendf(w.b, "DR%c%02d %s ", unit, n, el.Name)
	}
	for k := range vals {
		if err := w.value(el, &vals[k], false); err != nil {
			return err
		}
	}
	return nil
}

// bjDigits is t in Beijing time as YYMMDDhhmm (n 10) or YYMMDDhhmmss (12).
func bjDigits(t time.Time, n int) (string, error) {
	t = t.In(reading.Zone)
	if t.Year() < 2000 || t.Year() > 2099 {
		return "", fmt.Errorf("%s is outside 2000–2099, which YY can carry", t.Format(time.RFC3339))
	}
	return t.Format("060102150405")[:n], nil
}

// appendBCDDigits packs an even number of decimal digits two to a byte.
func appendBCDDigits(b []byte, digits string) []byte {
	for i := 0; i+1 < len(digits); i += 2 {
		b = append(b, (digits[i]-'0')<<4|(digits[i+1]-'0'))
	}
	return b
}
