package sl651

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// bj is a Beijing time YYMMDDhhmm[ss] in UTC.
func bj(s string) time.Time {
	t, ok := digitsTime([]byte(s))
	if !ok {
		panic("bad test time " + s)
	}
	return t
}

// val is a value of a mapped element as ParseBody returns it.
func val(name, at string, x float64) Value {
	el := elementByName(name)
	if el == nil {
		panic("unknown test element " + name)
	}
	return Value{Time: bj(at), Element: el.Name, Code: el.Code, Value: x, Period: el.Period, Relative: el.Relative}
}

func missing(name, at string) Value {
	v := val(name, at, 0)
	v.Missing = true
	return v
}

func zt(at string, bits uint32) Value {
	v := val("ZT", at, 0)
	v.Bits = bits
	return v
}

// slots are the 12 values of a 5-minute array starting at first; NaN is a
// missing slot.
func slots(name, first string, xs ...float64) []Value {
	var out []Value
	for k, x := range xs {
		v := val(name, first, x)
		v.Time = v.Time.Add(time.Duration(k) * fiveMinutes)
		if math.IsNaN(x) {
			v.Value, v.Missing = 0, true
		}
		out = append(out, v)
	}
	return out
}

// series are values of one element at a step from first.
func series(name, first string, step time.Duration, xs ...float64) []Value {
	out := slots(name, first, xs...)
	for k := range out {
		out[k].Time = bj(first).Add(time.Duration(k) * step)
	}
	return out
}

func cat(groups ...[]Value) []Value {
	var out []Value
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func hexBody(t testing.TB, s string) []byte { return unhex(t, strings.ReplaceAll(s, " ", "")) }

var nan = math.NaN()

// bodyVectors are bodies written from the standard's tables (§6.6.4,
// Table C.1), each in HEX and ASCII, with the report they carry. exact
// says BuildBody renders the report back to exactly these bytes.
var bodyVectors = []struct {
	name  string
	fn    uint8
	hex   string
	ascii string
	want  Report
	exact bool
}{
	{
		name:  "32H timed report",
		fn:    0x32,
		hex:   "0001 240715100005 F1F1 0012345678 48 F0F0 2407151000 3923 00003420 272B 0000045678 3812 1260",
		ascii: "0001240715100005ST 0012345678 H TT 2407151000 Z 3.420 Q 45.678 VT 12.60 ",
		want: Report{Serial: 1, Sent: bj("240715100005"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("Z", "2407151000", 3.42), val("Q", "2407151000", 45.678), val("VT", "2407151000", 12.6)}}}},
		exact: true,
	},
	{
		name:  "30H test report with a vendor element",
		fn:    0x30,
		hex:   "0002 240715100105 F1F1 0012345678 48 F0F0 2407151000 2019 000025 2619 001234 3923 00003420 FF03 11 0123 3812 1260",
		ascii: "0002240715100105ST 0012345678 H TT 2407151000 PJ 2.5 PT 123.4 Z 3.420 FF03 12.3 VT 12.60 ",
		want: Report{Serial: 2, Sent: bj("240715100105"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("PJ", "2407151000", 2.5), val("PT", "2407151000", 123.4), val("Z", "2407151000", 3.42), val("VT", "2407151000", 12.6)},
			Skipped: []string{"FF03"}}}},
	},
	{
		name:  "2FH keep-alive",
		fn:    0x2F,
		hex:   "0003 240715100200",
		ascii: "0003240715100200",
		want:  Report{Serial: 3, Sent: bj("240715100200")},
		exact: true,
	},
	{
		name: "31H 12 levels at 5 minutes, one missing",
		fn:   0x31,
		hex: "0004 240715110005 F1F1 0012345678 48 F0F0 2407151005 0418 000005 3923" +
			" 00003420 00003421 00003422 00003423 FFFFFFFF 00003425 00003426 00003427 00003428 00003429 00003430 00003431",
		ascii: "0004240715110005ST 0012345678 H TT 2407151005 DRN05 Z 3.420 3.421 3.422 3.423 M 3.425 3.426 3.427 3.428 3.429 3.430 3.431 ",
		want: Report{Serial: 4, Sent: bj("240715110005"), Stations: []StationReport{{Address: "0012345678", Class: 'H',
			Values: series("Z", "2407151005", fiveMinutes, 3.42, 3.421, 3.422, 3.423, nan, 3.425, 3.426, 3.427, 3.428, 3.429, 3.43, 3.431)}}},
		exact: true,
	},
	{
		name:  "33H added report with hourly, daily and 5-minute rain and ZT",
		fn:    0x33,
		hex:   "0006 240715103012 F1F1 0012345678 48 F0F0 2407151030 3923 00005120 1A19 000120 1F19 000356 2219 000015 3812 1255 4520 00000004",
		ascii: "0006240715103012ST 0012345678 H TT 2407151030 Z 5.120 P1 12.0 PD 35.6 PN05 1.5 VT 12.55 ZT 00000004 ",
		want: Report{Serial: 6, Sent: bj("240715103012"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("Z", "2407151030", 5.12), val("P1", "2407151030", 12), val("PD", "2407151030", 35.6), val("PN05", "2407151030", 1.5),
			val("VT", "2407151030", 12.55), zt("2407151030", 4)}}}},
		exact: true,
	},
	{
		name: "34H hourly report with DRP and DRZ1, invalid slots",
		fn:   0x34,
		hex: "0007 240715110010 F1F1 0012345678 48 F0F0 2407151005" +
			" F460 00 05 0A 00 FF 00 00 14 00 00 FE 00" +
			" F5C0 0156 0157 0158 FFFF 015A 015B 015C 015D 015E 015F 0160 0161" +
			" F0F0 2407151100 2619 001240 3923 00003455 3812 1259",
		ascii: "0007240715110010ST 0012345678 H TT 2407151005 DRP 00050A00FF0000140000FE00 " +
			"DRZ1 015601570158FFFF015A015B015C015D015E015F01600161 TT 2407151100 PT 124.0 Z 3.455 VT 12.59 ",
		want: Report{Serial: 7, Sent: bj("240715110010"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: cat(
			slots("DRP", "2407151005", 0, 0.5, 1, 0, nan, 0, 0, 2, 0, 0, 25.4, 0),
			slots("DRZ1", "2407151005", 3.42, 3.43, 3.44, nan, 3.46, 3.47, 3.48, 3.49, 3.5, 3.51, 3.52, 3.53),
			[]Value{val("PT", "2407151100", 124), val("Z", "2407151100", 3.455), val("VT", "2407151100", 12.59)})}}},
		exact: true,
	},
	{
		name:  "35H manual-entry report",
		fn:    0x35,
		hex:   "0008 240715120000 F2F2 " + fmt.Sprintf("%X", "2407151200 Z 3.42 Q 12.5"),
		ascii: "0008240715120000RGZS 2407151200 Z 3.42 Q 12.5",
		want:  Report{Serial: 8, Sent: bj("240715120000"), Manual: []byte("2407151200 Z 3.42 Q 12.5")},
		exact: true,
	},
	{
		name:  "32H negative level",
		fn:    0x32,
		hex:   "0009 240715130000 F1F1 0012345678 48 F0F0 2407151300 392B FF00001250 3812 1260",
		ascii: "0009240715130000ST 0012345678 H TT 2407151300 Z -1.250 VT 12.60 ",
		want: Report{Serial: 9, Sent: bj("240715130000"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("Z", "2407151300", -1.25), val("VT", "2407151300", 12.6)}}}},
		exact: true,
	},
	{
		name: "32H two stations, a time change mid-body, water quality",
		fn:   0x32,
		hex: "000A 240715130005 F1F1 0012345678 48 F0F0 2407151300 3923 00003420 F0F0 2407151255 0311 0085" +
			" F1F1 0012345679 51 F0F0 2407151300 4612 0765 4711 0082 4818 000312 4910 0486 4A11 0016 4C1A 000011 4D1B 000060 4E1A 000082 3812 1250",
		ascii: "000A240715130005ST 0012345678 H TT 2407151300 Z 3.420 TT 2407151255 C 8.5 " +
			"ST 0012345679 Q TT 2407151300 pH 7.65 DO 8.2 COND 312 TURB 486 CODMN 1.6 NH4N 0.11 TP 0.060 TN 0.82 VT 12.50 ",
		want: Report{Serial: 10, Sent: bj("240715130005"), Stations: []StationReport{
			{Address: "0012345678", Class: 'H', Values: []Value{val("Z", "2407151300", 3.42), val("C", "2407151255", 8.5)}},
			{Address: "0012345679", Class: 'Q', Values: []Value{
				val("pH", "2407151300", 7.65), val("DO", "2407151300", 8.2), val("COND", "2407151300", 312), val("TURB", "2407151300", 486),
				val("CODMN", "2407151300", 1.6), val("NH4N", "2407151300", 0.11), val("TP", "2407151300", 0.06), val("TN", "2407151300", 0.82),
				val("VT", "2407151300", 12.5)}},
		}},
		exact: true,
	},
}

func frameOf(t testing.TB, enc Encoding, fn uint8, body []byte) *Frame {
	t.Helper()
	f := &Frame{Encoding: enc, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: fn, Body: body, End: ETX}
	g, err := Decode(f.Encode())
	if err != nil {
		t.Fatalf("framing the body: %v", err)
	}
	return g
}

func TestBodyVectors(t *testing.T) {
	for _, tc := range bodyVectors {
		for _, enc := range []Encoding{HEX, ASCII} {
			t.Run(tc.name+" "+enc.String(), func(t *testing.T) {
				body := []byte(tc.ascii)
				if enc == HEX {
					body = hexBody(t, tc.hex)
				}
				r, err := ParseBody(frameOf(t, enc, tc.fn, body))
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(*r, tc.want) {
					t.Errorf("ParseBody\n got %+v\nwant %+v", *r, tc.want)
				}
				if !tc.exact {
					return
				}
				built, berr := BuildBody(enc, tc.fn, &tc.want)
				if berr != nil {
					t.Fatal(berr)
				}
				if !bytes.Equal(built, body) {
					t.Errorf("BuildBody\n got %q\nwant %q", built, body)
				}
			})
		}
	}
}

func TestASCIISeriesOfTwoElements(t *testing.T) {
	// Table 30: in ASCII one 31H report may list several elements; the data
	// come in rows, one per time, one value per element.
	body := "0005240715120005ST 0012345678 H TT 2407150900 DRH01 Z PJ 3.420 0.5 3.430 M 3.440 1.0 "
	r, err := ParseBody(frameOf(t, ASCII, 0x31, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	want := []Value{val("Z", "2407150900", 3.42), val("PJ", "2407150900", 0.5), val("Z", "2407151000", 3.43),
		missing("PJ", "2407151000"), val("Z", "2407151100", 3.44), val("PJ", "2407151100", 1)}
	if !reflect.DeepEqual(r.Stations[0].Values, want) {
		t.Errorf("got %+v\nwant %+v", r.Stations[0].Values, want)
	}
}

func TestHexSeriesOfAnUnmappedElement(t *testing.T) {
	// 31H of air temperature (02H, not mapped): the values are skipped
	// by the data definition's length and the element listed once; then a
	// second station follows.
	body := hexBody(t, "0005 240715120005 F1F1 0012345678 48 F0F0 2407150900 0418 000100 0211 0123 0125 FFFF 0130"+
		" F1F1 0012345679 48 F0F0 2407151200 3812 1250")
	r, err := ParseBody(frameOf(t, HEX, 0x31, body))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stations) != 2 || !reflect.DeepEqual(r.Stations[0].Skipped, []string{"02"}) || len(r.Stations[0].Values) != 0 ||
		!reflect.DeepEqual(r.Stations[1].Values, []Value{val("VT", "2407151200", 12.5)}) {
		t.Errorf("got %+v", r.Stations)
	}
}

func TestPublicBodies(t *testing.T) {
	fixedWjy := withCRC(unhex(t, wjyBadCRC))
	for _, tc := range []struct {
		name string
		raw  []byte
		want Report
	}{
		{"yx test", unhex(t, yxTest), Report{Serial: 3, Sent: bj("591011154947"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("PJ", "5910111549", 0.5), val("PT", "5910111549", 0.5), val("Z", "5910111549", 0.127), val("VT", "5910111549", 11.15)}}}}},
		{"yx timed", unhex(t, yxTimed), Report{Serial: 0x34, Sent: bj("170718110016"), Stations: []StationReport{{Address: "0011223344", Class: 'H', Values: []Value{
			val("PJ", "1707181100", 4), val("PT", "1707181100", 4), val("Z", "1707181100", 10.49), val("VT", "1707181100", 10.99)}}}}},
		{"yx added", unhex(t, yxAdded), Report{Serial: 0x26, Sent: bj("170718102202"), Stations: []StationReport{{Address: "0011223344", Class: 'H', Values: []Value{
			val("PJ", "1707181022", 4), val("PT", "1707181022", 4), val("Z", "1707181022", 10.49), val("VT", "1707181022", 11.02)}}}}},
		{"yx hourly", unhex(t, yxHourly), Report{Serial: 0x33, Sent: bj("170718110014"), Stations: []StationReport{{Address: "0011223344", Class: 'H', Values: cat(
			slots("DRP", "1707181005", 0.5, 0, 0, 0, 2, nan, nan, nan, nan, nan, 0, 0),
			[]Value{val("PT", "1707181100", 4)},
			slots("DRZ1", "1707181005", 0.12, 0.12, 0.28, 0.49, 0.49, nan, nan, nan, nan, nan, 0.49, 0.49),
			[]Value{val("Z", "1707181100", 10.49), val("PJ", "1707181100", 4), val("VT", "1707181100", 10.99)})}}}},
		{"yx keep-alive", unhex(t, yxKeepAlive), Report{Serial: 3, Sent: bj("591011155111")}},
		{"toymoban keep-alive", unhex(t, toyKeepAlive), Report{Serial: 0x7E08, Sent: bj("221011100747")}},
		{"64673a regular report", unhex(t, regularReport), Report{Serial: 12, Sent: bj("200724172349"), Stations: []StationReport{{Address: "0010100001", Class: 'H', Values: []Value{
			val("PJ", "2007241723", 13), val("PN05", "2007241723", 4), val("Z", "2007241723", 0.55), val("VT", "2007241723", 12.68)}}}}},
		{"haikang", unhex(t, haikang), Report{Serial: 0x24F3, Sent: bj("200314191856"), Stations: []StationReport{{Address: "0010000000", Class: 'P', Values: []Value{
			val("Z", "2003141918", 9999.999), val("PJ", "2003141918", 0), val("PT", "2003141918", 0), val("VT", "2003141918", 24)}}}}},
		{"shaoyi unassigned leads", unhex(t, shaoyi), Report{Serial: 2, Sent: bj("241111102942"), Stations: []StationReport{{Address: "40590235C2", Class: 'Z',
			Skipped: []string{"76", "77", "78"}}}}},
		{"wjy level with 2 decimals", fixedWjy, Report{Serial: 0x2B, Sent: bj("200321153057"), Stations: []StationReport{{Address: "0011111112", Class: 'H', Values: []Value{
			val("Z", "2003211530", 98.36), val("PJ", "2003211530", 0), val("PT", "2003211530", 0), val("VT", "2003211530", 24)}}}}},
		{"domain.md HEX", unhex(t, domainHex), Report{Serial: 1, Sent: bj("240715100005"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("Z", "2407151000", 3841.25), val("Q", "2407151000", 45.678), val("C", "2407151000", 8.5), val("VT", "2407151000", 12.85)}}}}},
		{"domain.md ASCII", []byte(domainASCII), Report{Serial: 1, Sent: bj("240715100005"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: []Value{
			val("Z", "2407151000", 3841.25), val("Q", "2407151000", 45.678), val("C", "2407151000", 8.5), val("VT", "2407151000", 12.85)}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseBody(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*r, tc.want) {
				t.Errorf("\n got %+v\nwant %+v", *r, tc.want)
			}
		})
	}
	// The times: the frame's 2017-07-18 11:00 is Beijing time.
	if got := bj("1707181100"); !got.Equal(time.Date(2017, 7, 18, 3, 0, 0, 0, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("Beijing 11:00 = %v, want 03:00 UTC", got)
	}
}

func TestParseBodyUnsupportedFunction(t *testing.T) {
	for _, raw := range [][]byte{unhex(t, yxRealtime), pictureM3(t)[0]} {
		f, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseBody(f); err == nil || err.Reason != ReasonUnsupportedFunction {
			t.Errorf("function %02X: %v", f.Function, err)
		}
	}
}

func TestParseBodyRefuses(t *testing.T) {
	const head = "0001 240715100005 F1F1 0012345678 48 F0F0 2407151000 "
	for _, tc := range []struct {
		name string
		enc  Encoding
		fn   uint8
		body string
	}{
		{"short", HEX, 0x32, "0001 2407151000"},
		{"send time not BCD", HEX, 0x32, "0001 2407151A0005"},
		{"send time 31 June", HEX, 0x2F, "0001 240631100005"},
		{"element before station", HEX, 0x32, "0001 240715100005 3923 00003420"},
		{"element without time", HEX, 0x32, "0001 240715100005 F1F1 0012345678 48 3923 00003420"},
		{"F1 not F1", HEX, 0x32, "0001 240715100005 F1F0 0012345678 48"},
		{"station cut short", HEX, 0x32, "0001 240715100005 F1F1 00123456"},
		{"class", HEX, 0x32, "0001 240715100005 F1F1 0012345678 58"},
		{"time not BCD", HEX, 0x32, "0001 240715100005 F1F1 0012345678 48 F0F0 24071510FF"},
		{"element cut short", HEX, 0x32, head + "3923 000034"},
		{"lone lead", HEX, 0x32, head + "39"},
		{"value not BCD", HEX, 0x32, head + "3923 0000342A"},
		{"value of no bytes", HEX, 0x32, head + "3903"},
		{"too many digits", HEX, 0x32, head + "3980 " + strings.Repeat("11", 16)},
		{"DRZ1 odd", HEX, 0x34, head + "F5B8 " + strings.Repeat("00", 23)},
		{"ZT of 3 bytes", HEX, 0x32, head + "4518 000004"},
		{"step not 18", HEX, 0x31, head + "0410 0005"},
		{"step not BCD", HEX, 0x31, head + "0418 00000A"},
		{"step then nothing", HEX, 0x31, head + "0418 000005"},
		{"step then station", HEX, 0x31, head + "0418 000005 F1F1"},
		{"series value cut short", HEX, 0x31, head + "0418 000005 3923 00003420 000034"},
		{"step then a lone lead", HEX, 0x31, head + "0418 000005 39"}, // found by FuzzParseBody
		{"extension cut short", HEX, 0x32, head + "FF03"},
		{"ASCII short", ASCII, 0x32, "0001240715"},
		{"ASCII serial", ASCII, 0x32, "00G1240715100005"},
		{"ASCII send time", ASCII, 0x32, "0001240715106005"},
		{"ASCII element before station", ASCII, 0x32, "0001240715100005Z 3.420 "},
		{"ASCII element without time", ASCII, 0x32, "0001240715100005ST 0012345678 H Z 3.420 "},
		{"ASCII address", ASCII, 0x32, "0001240715100005ST 001234567 H "},
		{"ASCII class", ASCII, 0x32, "0001240715100005ST 0012345678 X "},
		{"ASCII time", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 24071510 "},
		{"ASCII value", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 2407151000 Z 3,420 "},
		{"ASCII hex float", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 2407151000 Z 0x1p3 "},
		{"ASCII NaN", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 2407151000 Z NaN "},
		{"ASCII no value", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 2407151000 Z "},
		{"ASCII DRP slot", ASCII, 0x34, "0001240715100005ST 0012345678 H TT 2407151000 DRP 000 "},
		{"ASCII ZT", ASCII, 0x32, "0001240715100005ST 0012345678 H TT 2407151000 ZT 4 "},
		{"ASCII series without element", ASCII, 0x31, "0001240715100005ST 0012345678 H TT 2407151000 DRN05 3.420 "},
		{"ASCII series row short", ASCII, 0x31, "0001240715100005ST 0012345678 H TT 2407151000 DRN05 Z PJ 3.420 0.5 3.430 "},
	} {
		body := []byte(tc.body)
		if tc.enc == HEX {
			body = hexBody(t, tc.body)
		}
		r, err := ParseBody(frameOf(t, tc.enc, tc.fn, body))
		if err == nil || err.Reason != ReasonBadBody {
			t.Errorf("%s: got %v, %+v; want %s", tc.name, err, r, ReasonBadBody)
		}
	}
}

func TestBuildBodyRefuses(t *testing.T) {
	st := func(vs ...Value) *Report {
		return &Report{Serial: 1, Sent: bj("240715100005"), Stations: []StationReport{{Address: "0012345678", Class: 'H', Values: vs}}}
	}
	withSeconds := val("Z", "2407151000", 1)
	withSeconds.Time = withSeconds.Time.Add(time.Second)
	for _, tc := range []struct {
		name string
		fn   uint8
		r    *Report
		want string // a word the error must name
	}{
		{"function", 0x36, st(), "36"},
		{"keep-alive with a station", 0x2F, st(), "keep-alive"},
		{"address", 0x32, &Report{Sent: bj("240715100005"), Stations: []StationReport{{Address: "12345", Class: 'H'}}}, "12345"},
		{"class", 0x32, &Report{Sent: bj("240715100005"), Stations: []StationReport{{Address: "0012345678", Class: 'X'}}}, "class"},
		{"unknown element", 0x32, st(Value{Element: "ZZ", Time: bj("2407151000")}), "ZZ"},
		{"level too high", 0x32, st(val("Z", "2407151000", 12345.678)), "N(7,3)"},
		{"negative too low", 0x32, st(val("Z", "2407151000", -12345.6)), "N(7,3)"},
		{"NaN", 0x32, st(val("VT", "2407151000", math.NaN())), "VT"},
		{"infinite", 0x32, st(val("Q", "2407151000", math.Inf(1))), "Q"},
		{"time with seconds", 0x32, st(withSeconds), "whole minute"},
		{"year 1999", 0x32, st(Value{Element: "Z", Time: time.Date(1999, 1, 1, 0, 0, 0, 0, reading.Zone)}), "2000–2099"},
		{"DRP 11 slots", 0x34, st(slots("DRP", "2407151005", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)...), "12"},
		{"DRP gap", 0x34, st(append(slots("DRP", "2407151005", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), val("DRP", "2407151105", 0))...), "slot 11"},
		{"DRP 25.5 mm", 0x34, st(slots("DRP", "2407151005", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25.5)...), "DRP"},
		{"DRZ1 negative", 0x34, st(slots("DRZ1", "2407151005", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.01)...), "DRZ1"},
		{"31H one value", 0x31, st(val("Z", "2407151000", 1)), "2 or more"},
		{"31H two elements", 0x31, st(val("Z", "2407151000", 1), val("PJ", "2407151005", 1)), "PJ"},
		{"31H uneven step", 0x31, st(val("Z", "2407151000", 1), val("Z", "2407151005", 1), val("Z", "2407151015", 1)), "step"},
		{"31H step of 90 minutes", 0x31, st(val("Z", "2407151000", 1), val("Z", "2407151130", 1)), "Table C.3"},
		{"31H DRP", 0x31, st(slots("DRP", "2407151005", 0, 0)...), "DRP"},
		{"31H ZT", 0x31, st(zt("2407151000", 1), zt("2407151005", 2)), "ZT"},
	} {
		enc := HEX
		if len(tc.name)%2 == 0 {
			enc = ASCII
		}
		_, err := BuildBody(enc, tc.fn, tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s (%v): got %v, want an error naming %q", tc.name, enc, err, tc.want)
		}
	}
	if _, err := BuildBody(HEX, 0x31, st(val("Z", "2407151000", -1), val("Z", "2407151005", 1))); err == nil {
		t.Errorf("a HEX 31H series with a negative value: no error")
	}
}

// randomReport is a report of function fn whose values are exact in their
// formats when exact is set, anything in range otherwise.
func randomReport(rng *rand.Rand, fn uint8, exact bool) *Report {
	base := time.Date(2024, 7, 15, 10, 0, 0, 0, reading.Zone).Add(time.Duration(rng.IntN(500000)) * time.Minute)
	r := &Report{Serial: uint16(rng.IntN(65536)), Sent: base.Add(time.Duration(rng.IntN(3600)) * time.Second).UTC()}
	if fn == 0x2F {
		return r
	}
	number := func(el *Element) float64 {
		units := rng.Int64N(int64(math.Pow10(el.Digits)))
		if rng.IntN(5) == 0 {
			units = -units
		}
		x := float64(units) / pow10[el.Decimals]
		if !exact {
			x += (rng.Float64() - 0.5) / pow10[el.Decimals] * 0.98
			if math.Abs(x) >= (math.Pow10(el.Digits)-0.5)/pow10[el.Decimals] {
				x = 0
			}
		}
		return x
	}
	value := func(el *Element, t time.Time) Value {
		v := Value{Time: t.UTC(), Element: el.Name, Code: el.Code, Period: el.Period, Relative: el.Relative}
		switch {
		case rng.IntN(8) == 0:
			v.Missing = true
		case el.Lead == leadZT:
			v.Bits = rng.Uint32()
			if v.Bits == 0xFFFFFFFF {
				v.Bits = 0
			}
		default:
			v.Value = number(el)
		}
		return v
	}
	scalar := []string{"Z", "Q", "C", "PJ", "PT", "P1", "PD", "PN05", "VT", "pH", "DO", "COND", "TURB", "CODMN", "NH4N", "TP", "TN", "ZT"}
	for s := range 1 + rng.IntN(3) {
		st := StationReport{Address: fmt.Sprintf("00%08d", rng.IntN(1e8)), Class: stationClasses[rng.IntN(len(stationClasses))]}
		t := base.Add(-time.Duration(s) * time.Hour)
		switch fn {
		case 0x31:
			el := elementByName(scalar[rng.IntN(len(scalar)-1)]) // not ZT
			step := []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour}[rng.IntN(3)]
			for k := range 2 + rng.IntN(20) {
				v := value(el, t.Add(time.Duration(k)*step))
				v.Value = math.Abs(v.Value) // a HEX series has no negative values
				st.Values = append(st.Values, v)
			}
		default:
			for range rng.IntN(12) {
				if rng.IntN(4) == 0 {
					t = t.Add(time.Duration(rng.IntN(120)-60) * time.Minute)
				}
				if fn == 0x34 && rng.IntN(3) == 0 {
					el := elementByName([]string{"DRP", "DRZ1"}[rng.IntN(2)])
					limit := map[string]int{"DRP": 255, "DRZ1": 65535}[el.Name]
					for k := range 12 {
						v := Value{Time: t.Add(time.Duration(k) * fiveMinutes).UTC(), Element: el.Name, Code: el.Code, Period: el.Period, Relative: el.Relative}
						if x := rng.IntN(limit + 1); x == limit {
							v.Missing = true
						} else {
							v.Value = float64(x) / pow10[el.Decimals]
						}
						st.Values = append(st.Values, v)
					}
					continue
				}
				st.Values = append(st.Values, value(elementByName(scalar[rng.IntN(len(scalar))]), t))
			}
		}
		r.Stations = append(r.Stations, st)
	}
	if fn == 0x35 && rng.IntN(2) == 0 {
		r.Manual = []byte(fmt.Sprintf("%d manual words", rng.IntN(1000)))
	}
	r.Sent = r.Sent.Truncate(time.Second)
	return r
}

func TestBuildParseRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 2000 {
		fn := []uint8{0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35}[i%7]
		enc := []Encoding{HEX, ASCII}[i/7%2]
		exact := i%3 != 0
		want := randomReport(rng, fn, exact)
		body, err := BuildBody(enc, fn, want)
		if err != nil {
			t.Fatalf("case %d (%v %02X): BuildBody: %v", i, enc, fn, err)
		}
		f := &Frame{Encoding: enc, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: fn, Body: body, End: ETX}
		if len(body) > MaxBody {
			continue // a body for M3; ParseBody does not mind
		}
		g, derr := Decode(f.Encode())
		if derr != nil {
			t.Fatalf("case %d: Decode: %v", i, derr)
		}
		got, perr := ParseBody(g)
		if perr != nil {
			t.Fatalf("case %d (%v %02X): ParseBody: %v\nbody %q", i, enc, fn, perr, body)
		}
		if !exact {
			// Within the format's rounding: put the sent values on the grid.
			for s := range want.Stations {
				for k, v := range want.Stations[s].Values {
					el := elementByName(v.Element)
					gv := got.Stations[s].Values[k].Value
					if math.Abs(gv-v.Value) > 0.5/pow10[el.Decimals]+1e-9 {
						t.Fatalf("case %d: %s %v came back %v, more than half a unit off", i, v.Element, v.Value, gv)
					}
					want.Stations[s].Values[k].Value = gv
				}
			}
		}
		for s := range got.Stations {
			if len(got.Stations[s].Values) == 0 {
				got.Stations[s].Values = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d (%v %02X): ParseBody(BuildBody(r))\n got %+v\nwant %+v\nbody %q", i, enc, fn, got, want, body)
		}
	}
}

func TestElementsTable(t *testing.T) {
	els := Elements()
	if len(els) != 20 {
		t.Errorf("%d elements, want the 20 of reference/sl651.md", len(els))
	}
	for _, el := range els {
		if elementByLead(el.Lead).Name != el.Name || elementByName(el.Name).Lead != el.Lead {
			t.Errorf("%s %02X does not look up both ways", el.Name, el.Lead)
		}
	}
	// Table C.1 data definitions: Z 39 23, Q 27 2B, C 03 11, VT 38 12, PJ 20 19, PT 26 19.
	for name, def := range map[string]byte{"Z": 0x23, "Q": 0x2B, "C": 0x11, "VT": 0x12, "PJ": 0x19, "PT": 0x19, "COND": 0x18, "TURB": 0x10, "TP": 0x1B} {
		el := elementByName(name)
		if got := byte(el.hexBytes()<<3 | el.Decimals); got != def {
			t.Errorf("%s: data definition %02X, want %02X", name, got, def)
		}
	}
	els[0].Name = "changed"
	if Elements()[0].Name == "changed" {
		t.Errorf("Elements returns the table itself")
	}
}
