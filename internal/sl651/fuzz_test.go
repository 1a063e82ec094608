package sl651

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// seedFrames are the frames of the tests: public samples, the standard's
// examples, M3 packets, ASCII frames and damaged ones.
func seedFrames(t testing.TB) [][]byte {
	var out [][]byte
	for _, h := range []string{yxKeepAlive, yxTest, yxTimed, yxAdded, yxHourly, yxRealtime, yxManualBadCRC, regularReport,
		haikang, shaoyi, wjyBadCRC, toyKeepAlive, toyTestConfirm, toyTimedConfirm, domainHex} {
		out = append(out, unhex(t, h))
	}
	out = append(out, []byte(domainASCII))
	out = append(out, pictureM3(t)[:2]...)
	for _, v := range bodyVectors {
		for _, enc := range []Encoding{HEX, ASCII} {
			body := []byte(v.ascii)
			if enc == HEX {
				body = hexBody(t, v.hex)
			}
			f := Frame{Encoding: enc, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: v.fn, Body: body, End: ETX}
			out = append(out, f.Encode())
			f.Total, f.Seq, f.End = 2, 1, ETB
			out = append(out, f.Encode())
		}
	}
	return out
}

var reasonsKnown = map[string]bool{ReasonBadFrame: true, ReasonBadLength: true, ReasonBadCRC: true, ReasonBadBody: true, ReasonUnsupportedFunction: true}

func FuzzSplit(f *testing.F) {
	frames := seedFrames(f)
	for _, fr := range frames {
		f.Add(fr, uint16(len(fr)/2))
	}
	f.Add(bytes.Join([][]byte{[]byte("junk\x01\x7E"), frames[1], frames[15], []byte("\x7E\x7E"), frames[3]}, nil), uint16(7))
	f.Add(append(bytes.Clone(frames[2][:30]), frames[3]...), uint16(40))
	f.Fuzz(func(t *testing.T, buf []byte, cut uint16) {
		found, rest := Split(buf)
		checkSplit(t, buf, found, rest)

		// The same bytes in two reads find the same frames, unless a frame
		// holds another whole frame inside it: then which one wins depends
		// on what has arrived.
		at := int(cut) % (len(buf) + 1)
		first, rest1 := Split(buf[:at])
		checkSplit(t, buf[:at], first, rest1)
		second, rest2 := Split(append(bytes.Clone(rest1), buf[at:]...))
		if len(rest2) > MaxFrame {
			t.Fatalf("rest of %d bytes", len(rest2))
		}
		nested := false
		var one, two [][]byte
		for _, fd := range found {
			if fd.Frame != nil {
				one = append(one, fd.Raw)
				nested = nested || validWithin(fd.Raw, 1, len(fd.Raw), false) >= 0
			}
		}
		for _, fd := range append(first, second...) {
			if fd.Frame != nil {
				two = append(two, fd.Raw)
				nested = nested || validWithin(fd.Raw, 1, len(fd.Raw), false) >= 0
			}
		}
		if !nested && !bytes.Equal(bytes.Join(one, []byte{0}), bytes.Join(two, []byte{0})) {
			t.Fatalf("one read finds %d frames, two reads cut at %d find %d", len(one), at, len(two))
		}
	})
}

// checkSplit holds for every Split: each byte is in one Found or in rest,
// in order; rest is at most one frame; frames decode and encode back;
// errors carry a known reason.
func checkSplit(t *testing.T, buf []byte, found []Found, rest []byte) {
	t.Helper()
	if !bytes.Equal(joined(found, rest), buf) {
		t.Fatalf("found and rest are not the input")
	}
	if len(rest) > MaxFrame {
		t.Fatalf("rest of %d bytes, more than MaxFrame", len(rest))
	}
	for i, fd := range found {
		switch {
		case len(fd.Raw) == 0:
			t.Fatalf("found %d is empty", i)
		case (fd.Frame == nil) == (fd.Err == nil):
			t.Fatalf("found %d has frame %v and error %v", i, fd.Frame != nil, fd.Err)
		case fd.Err != nil && !reasonsKnown[fd.Err.Reason]:
			t.Fatalf("found %d: reason %q", i, fd.Err.Reason)
		case fd.Frame != nil && !bytes.Equal(fd.Frame.Encode(), fd.Raw):
			t.Fatalf("found %d does not encode back", i)
		}
		if i > 0 && isNoise(fd) && isNoise(found[i-1]) {
			t.Fatalf("founds %d and %d are one run of noise reported twice", i-1, i)
		}
	}
}

func isNoise(fd Found) bool {
	return fd.Err != nil && fd.Err.Reason == ReasonBadFrame && strings.HasSuffix(fd.Err.Detail, "bytes outside a frame")
}

func FuzzDecode(f *testing.F) {
	for _, fr := range seedFrames(f) {
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := Decode(raw)
		if err != nil {
			if fr != nil || !reasonsKnown[err.Reason] || err.Detail == "" {
				t.Fatalf("frame %v, error %+v", fr, err)
			}
			return
		}
		if !bytes.Equal(fr.Raw, raw) || !bytes.Equal(fr.Encode(), raw) {
			t.Fatalf("Encode(Decode(x)) is not x:\n%q\n%q", fr.Encode(), raw)
		}
		if err := fr.Check(); err != nil {
			t.Fatalf("a decoded frame fails Check: %v", err)
		}
		if r, perr := ParseBody(fr); perr != nil && !reasonsKnown[perr.Reason] || perr == nil && r == nil {
			t.Fatalf("ParseBody: %v %v", r, perr)
		}
		if fr.Up {
			c := Confirm(fr, time.Date(2024, 7, 15, 2, 0, 30, 0, time.UTC), true)
			if g, err := Decode(c.Raw); err != nil || g.Up || g.Station != fr.Station || g.Total != fr.Total {
				t.Fatalf("confirmation %q: %v", c.Raw, err)
			}
		}
	})
}

func FuzzParseBody(f *testing.F) {
	for _, v := range bodyVectors {
		f.Add(true, v.fn, hexBody(f, v.hex))
		f.Add(false, v.fn, []byte(v.ascii))
	}
	for _, h := range []string{yxTest, yxHourly, regularReport, shaoyi} {
		fr, _ := Decode(unhex(f, h))
		f.Add(true, fr.Function, fr.Body)
	}
	f.Add(false, uint8(0x31), []byte("0005240715120005ST 0012345678 H TT 2407150900 DRH01 Z PJ 3.420 0.5 3.430 M 3.440 1.0 "))
	f.Fuzz(func(t *testing.T, hex bool, fn uint8, body []byte) {
		enc := ASCII
		if hex {
			enc = HEX
		}
		r, err := ParseBody(&Frame{Encoding: enc, Up: true, Station: "0012345678", Password: "1234", Function: fn, Body: body, End: ETX})
		if err != nil {
			if r != nil || !reasonsKnown[err.Reason] {
				t.Fatalf("report %v, error %+v", r, err)
			}
			return
		}
		n := 0
		for _, st := range r.Stations {
			n += len(st.Values) + len(st.Skipped)
			if !isStationClass(st.Class) || len(st.Address) != 10 {
				t.Fatalf("station %q class %q", st.Address, st.Class)
			}
			for _, v := range st.Values {
				if v.Time.IsZero() || v.Time.Location().String() != "UTC" || elementByName(v.Element) == nil {
					t.Fatalf("value %+v", v)
				}
			}
		}
		if n > len(body) {
			t.Fatalf("%d values and skipped elements from a body of %d bytes", n, len(body))
		}
		// BuildBody of what ParseBody read is a body ParseBody reads; after
		// that one normalisation (rounding, Skipped dropped) the two are
		// inverses.
		b2, berr := BuildBody(enc, fn, r)
		if berr != nil {
			return
		}
		r2, err := ParseBody(&Frame{Encoding: enc, Function: fn, Body: b2})
		if err != nil {
			t.Fatalf("ParseBody(BuildBody(r)): %v\n%q", err, b2)
		}
		b3, berr := BuildBody(enc, fn, r2)
		if berr != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("BuildBody after a round trip: %v\n%q\n%q", berr, b2, b3)
		}
	})
}
