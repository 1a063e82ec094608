package sl651

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Public sample frames, HEX/BCD. Each CRC was checked with CRC-16/MODBUS
// unless its comment says otherwise.
const (
	// github.com/yu-xiaoyao/sl651-2014-server,
	// netty-client/src/main/java/me/yuxiaoyao/sl651/client/Sl651ClientApplication.java
	// (INNER_HEX, commit aeaae2e), which cites
	// https://blog.csdn.net/weixin_42163707/article/details/127638544; the same
	// frames are quoted at https://toymoban.com/news/detail-686475.html.
	yxKeepAlive = "7E7E01001234567812342F0008020003591011155111036BCA"
	yxTest      = "7E7E010012345678123430002B020003591011154947F1F1001234567848F0F0591011154920190000052619000005392300000127381211150320FA"
	yxTimed     = "7E7E05001122334403E832002B020034170718110016F1F1001122334448F0F01707181100201900004026190000403923000104903812109903A421"
	yxAdded     = "7E7E05001122334403E833002B020026170718102202F1F1001122334448F0F01707181022201900004026190000403923000104903812110203F511"
	yxHourly    = "7E7E05001122334403E8340068020033170718110014F1F1001122334448F0F01707181005F4600500000014FFFFFFFFFF0000F0F017071811002619000040F0F01707181005F5C0000C000C001C00310031FFFFFFFFFFFFFFFFFFFF00310031F0F0170718110039230001049020190000403812109903F502"
	yxRealtime  = "7E7E010012345678123437002B020009591011161403F1F1001234567848F0F0591011161420190000152619000015392300000122381211080338FE"
	// The manual-entry sample of the same file: its CRC 4602 does not match
	// (MODBUS gives D76F), so it serves as a damaged frame.
	yxManualBadCRC = "7E7E0100123456781234350011020004591011155145F2F251312E32333420034602"

	// github.com/64673a/SL651-2014, samples/regular_report.hex (commit
	// a08bfa5); also github.com/handsomestWei/sl651-2014,
	// src/main/java/com/wjy/sl6512014/util/Crc16Util.java (dataStr1, CRC 83 97).
	// PN05 (22H) besides PJ, Z and VT.
	regularReport = "7E7E010010100001A00032002B02000C200724172349F1F1001010000148F0F020072417232019000130221900004039230000055038121268038397"

	// github.com/hanzhongguo2008/SL651-2014_haikang,
	// src/main/java/com/zwb/ServerThread.java line 10 (commit 9de11f4):
	// centre address 00, station class P, Z 9999.999.
	haikang = "7E7E000010000000C95932002B0224F3200314191856F1F1001000000050F0F020031419183923099999992019000000261900000038122400035E89"

	// github.com/shishi1yi/protocol-sl651-boot,
	// src/test/java/cc/shaoyi/sl651/ProtocolSl651BootApplicationTests.java
	// (commit 29a617d): station class Z and leads 76H–78H, which Table C.1
	// leaves unassigned, two of them negative (leading FF).
	shaoyi = "7E7E0040590235C2123432002B020002241111102942F1F140590235C25AF0F02411111029762AFF00000172772AFF0000002178220000015203BB93"

	// github.com/handsomestWei/sl651-2014,
	// src/main/java/com/wjy/sl6512014/client/tcp/handler/TcpNettyClientHandler.java
	// (commit 72442d5): Z with 2 decimals (39 22). The CRC 7B54 as published
	// does not match (MODBUS gives D001; the station address looks
	// anonymised).
	wjyBadCRC = "7E7E010011111112000032002B02002B200321153057F1F1001111111248F0F020032115303922000098362019000000261900000038122400037B54"

	// https://toymoban.com/news/detail-686475.html ("SL651-2014全协议解析"):
	// a keep-alive with centre address 00 and serial number 7E08, and the
	// centre's confirmations (ESC) of yxTest and yxTimed.
	toyKeepAlive    = "7E7E00987654321012342F0008027E0822101110074703C3AE"
	toyTestConfirm  = "7E7E00123456780112343080080200035910111549471B75D4"
	toyTimedConfirm = "7E7E00112233440503E83280080200341707181100161BE5D4"

	// reference/domain.md §4.11: the own HEX example and its ASCII rendering
	// (the ASCII one is illustrative there, not from a device).
	domainHex   = "7E7E010012345678123432002C020001240715100005F1F1001234567848F0F02407151000392303841250272B0000045678031100853812128503015A"
	domainASCII = "\x010100123456781234320051\x020001240715100005ST 0012345678 H TT 2407151000 Z 3841.250 Q 45.678 C 8.5 VT 12.85 \x033E69"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("test vector %.20s…: %v", s, err)
	}
	return b
}

// pictureM3 reads the 13 packets of testdata/m3_picture_36h.hex.
func pictureM3(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/m3_picture_36h.hex")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<16)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, unhex(t, line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withCRC replaces the CRC of a HEX frame with the right one.
func withCRC(b []byte) []byte {
	b = bytes.Clone(b)
	c := CRC(b[:len(b)-2])
	b[len(b)-2], b[len(b)-1] = byte(c>>8), byte(c)
	return b
}

func TestCRC(t *testing.T) {
	if got := CRC([]byte("123456789")); got != 0x4B37 {
		t.Errorf("CRC(123456789) = %04X, want 4B37 (CRC-16/MODBUS check value)", got)
	}
	for _, v := range []string{yxKeepAlive, yxTest, yxTimed, yxHourly, regularReport, haikang, shaoyi, toyKeepAlive, toyTestConfirm, domainHex} {
		b := unhex(t, v)
		if got, want := CRC(b[:len(b)-2]), uint16(b[len(b)-2])<<8|uint16(b[len(b)-1]); got != want {
			t.Errorf("%.24s…: CRC %04X, frame says %04X", v, got, want)
		}
	}
	a := []byte(domainASCII)
	if got := CRC(a[:len(a)-4]); got != 0x3E69 {
		t.Errorf("ASCII example: CRC %04X, want 3E69", got)
	}
}

func TestDecodePublicFrames(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      Frame // header fields only
		bodyLen   int
	}{
		{"yx keep-alive", yxKeepAlive, Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x2F, End: ETX}, 8},
		{"yx test", yxTest, Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x30, End: ETX}, 43},
		{"yx timed", yxTimed, Frame{Encoding: HEX, Up: true, Centre: 5, Station: "0011223344", Password: "03E8", Function: 0x32, End: ETX}, 43},
		{"yx hourly", yxHourly, Frame{Encoding: HEX, Up: true, Centre: 5, Station: "0011223344", Password: "03E8", Function: 0x34, End: ETX}, 104},
		{"yx real-time", yxRealtime, Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x37, End: ETX}, 43},
		{"64673a regular report", regularReport, Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0010100001", Password: "A000", Function: 0x32, End: ETX}, 43},
		{"haikang centre 00", haikang, Frame{Encoding: HEX, Up: true, Centre: 0, Station: "0010000000", Password: "C959", Function: 0x32, End: ETX}, 43},
		{"shaoyi", shaoyi, Frame{Encoding: HEX, Up: true, Centre: 0, Station: "40590235C2", Password: "1234", Function: 0x32, End: ETX}, 43},
		{"toymoban keep-alive", toyKeepAlive, Frame{Encoding: HEX, Up: true, Centre: 0, Station: "9876543210", Password: "1234", Function: 0x2F, End: ETX}, 8},
		{"toymoban confirmation", toyTestConfirm, Frame{Encoding: HEX, Up: false, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x30, End: ESC}, 8},
		{"domain.md HEX", domainHex, Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x32, End: ETX}, 44},
		{"domain.md ASCII", domainASCII, Frame{Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x32, End: ETX}, 81},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if tc.want.Encoding == HEX {
				raw = unhex(t, tc.raw)
			}
			f, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			got := *f
			got.Body, got.Raw = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("header\n got %+v\nwant %+v", got, tc.want)
			}
			if len(f.Body) != tc.bodyLen {
				t.Errorf("body of %d bytes, want %d", len(f.Body), tc.bodyLen)
			}
			if !bytes.Equal(f.Raw, raw) {
				t.Errorf("Raw is not the frame")
			}
			if enc := f.Encode(); !bytes.Equal(enc, raw) {
				t.Errorf("encodes to\n%X\nwant\n%X", enc, raw)
			}
			if err := f.Check(); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestDecodeM3Picture(t *testing.T) {
	for i, raw := range pictureM3(t) {
		f, err := Decode(raw)
		if err != nil {
			t.Fatalf("packet %d: %v", i+1, err)
		}
		wantEnd := byte(ETB)
		if i == 12 {
			wantEnd = ETX
		}
		if f.Total != 13 || f.Seq != i+1 || f.End != wantEnd || f.Function != 0x36 {
			t.Errorf("packet %d: %d of %d, end %02X, function %02X", i+1, f.Seq, f.Total, f.End, f.Function)
		}
		// The length word counts the 3-byte packet word (Table 22).
		if n := int(raw[11]&0x0F)<<8 | int(raw[12]); n != len(f.Body)+3 {
			t.Errorf("packet %d: length word %d, body %d", i+1, n, len(f.Body))
		}
		if !bytes.Equal(f.Encode(), raw) {
			t.Errorf("packet %d does not encode back", i+1)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	body := []byte("0001240715100005")
	for name, f := range map[string]Frame{
		"HEX uplink":          {Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x32, Body: unhex(t, "0001240715100005"), End: ETX},
		"HEX downlink ESC":    {Encoding: HEX, Centre: 255, Station: "ABCDEF0123", Password: "FFFF", Function: 0x32, Body: unhex(t, "0001240715100005"), End: ESC},
		"HEX M3 middle":       {Encoding: HEX, Up: true, Centre: 7, Station: "0012345678", Password: "0000", Function: 0x31, Total: 3, Seq: 2, Body: []byte{0x7E, 0x7E, 0x02}, End: ETB},
		"HEX M3 NAK":          {Encoding: HEX, Centre: 7, Station: "0012345678", Password: "0000", Function: 0x31, Total: 4095, Seq: 4095, Body: []byte{1}, End: NAK},
		"HEX centre 0":        {Encoding: HEX, Up: true, Station: "0000000001", Password: "0001", Function: 0x2F, Body: []byte{0, 1, 0x24, 7, 0x15, 0x10, 0, 0}, End: ETX},
		"HEX longest":         {Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x36, Body: bytes.Repeat([]byte{0x55}, MaxBody), End: ETX},
		"ASCII uplink":        {Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x32, Body: body, End: ETX},
		"ASCII downlink EOT":  {Encoding: ASCII, Centre: 0x1F, Station: "0012345678", Password: "1234", Function: 0x32, Body: body, End: EOT},
		"ASCII M3 first":      {Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x31, Total: 0xABC, Seq: 1, Body: body, End: ETB},
		"ASCII longest":       {Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x31, Total: 2, Seq: 2, Body: bytes.Repeat([]byte{' '}, MaxBody-6), End: ETX},
		"ASCII body with SOH": {Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x35, Body: []byte("0001240715100005\xF2\xF2\x01\x03"), End: ETX},
	} {
		t.Run(name, func(t *testing.T) {
			if err := f.Check(); err != nil {
				t.Fatalf("Check: %v", err)
			}
			raw := f.Encode()
			g, err := Decode(raw)
			if err != nil {
				t.Fatalf("Decode(Encode(f)): %v\n%q", err, raw)
			}
			want := f
			want.Raw = raw
			if g.Encoding != want.Encoding || g.Up != want.Up || g.Centre != want.Centre || g.Station != want.Station ||
				g.Password != want.Password || g.Function != want.Function || g.Total != want.Total || g.Seq != want.Seq ||
				g.End != want.End || !bytes.Equal(g.Body, want.Body) || !bytes.Equal(g.Raw, want.Raw) {
				t.Errorf("Decode(Encode(f))\n got %+v\nwant %+v", g, want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	ok := Frame{Encoding: HEX, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x32, Body: []byte{1}, End: ETX}
	for name, mutate := range map[string]func(*Frame){
		"encoding":        func(f *Frame) { f.Encoding = 0 },
		"station":         func(f *Frame) { f.Station = "001234567" },
		"lower station":   func(f *Frame) { f.Station = "00123456ab" },
		"password":        func(f *Frame) { f.Password = "12G4" },
		"empty body":      func(f *Frame) { f.Body = nil },
		"long body":       func(f *Frame) { f.Body = make([]byte, MaxBody+1) },
		"M3 body":         func(f *Frame) { f.Total, f.Seq, f.Body = 1, 1, make([]byte, MaxBody-2) },
		"seq beyond":      func(f *Frame) { f.Total, f.Seq = 2, 3 },
		"seq 0":           func(f *Frame) { f.Total, f.Seq = 2, 0 },
		"uplink with EOT": func(f *Frame) { f.End = EOT },
		"downlink ETX":    func(f *Frame) { f.Up = false },
	} {
		f := ok
		mutate(&f)
		if f.Check() == nil {
			t.Errorf("%s: Check passes %+v", name, f)
		}
	}
	if err := ok.Check(); err != nil {
		t.Errorf("valid frame: %v", err)
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	timed := unhex(t, yxTimed)
	ascii := []byte(domainASCII)
	set := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	asciiCRC := func(b []byte) []byte {
		b = bytes.Clone(b)
		copy(b[len(b)-4:], []byte(strings.ToUpper(hex.EncodeToString([]byte{byte(CRC(b[:len(b)-4]) >> 8), byte(CRC(b[:len(b)-4]))}))))
		return b
	}
	for _, tc := range []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"empty", nil, ReasonBadFrame},
		{"not a frame", []byte("hello world"), ReasonBadFrame},
		{"one 7E", []byte{0x7E, 0x7E, 0x01}, ReasonBadFrame},
		{"HEX byte 13 not STX", set(timed, 13, 0x03), ReasonBadFrame},
		{"direction bits 3", withCRC(set(timed, 11, 0x30)), ReasonBadLength},
		{"length 0", withCRC(set(set(timed, 11, 0), 12, 0)), ReasonBadLength},
		{"length one short", withCRC(set(timed, 12, 0x2A)), ReasonBadLength},
		{"trailing byte", append(bytes.Clone(timed), 0), ReasonBadLength},
		{"end not an end character", withCRC(set(timed, len(timed)-3, 0x00)), ReasonBadLength},
		{"CRC", set(timed, len(timed)-1, timed[len(timed)-1]^1), ReasonBadCRC},
		{"body bit", set(timed, 30, timed[30]^0x10), ReasonBadCRC},
		{"published CRC of the manual sample", unhex(t, yxManualBadCRC), ReasonBadCRC},
		{"published CRC of wjy", unhex(t, wjyBadCRC), ReasonBadCRC},
		{"uplink ends EOT", withCRC(set(timed, len(timed)-3, EOT)), ReasonBadFrame},
		{"downlink ends ETX", withCRC(set(unhex(t, toyTestConfirm), 22, ETX)), ReasonBadFrame},
		{"M3 seq 0", withCRC(set(pictureM3(t)[0], 16, 0)), ReasonBadFrame},
		{"M3 seq beyond total", withCRC(set(pictureM3(t)[0], 16, 0x0E)), ReasonBadFrame},
		{"ASCII too short", ascii[:20], ReasonBadFrame},
		{"ASCII lower-case station", asciiCRC(set(ascii, 5, 'a')), ReasonBadFrame},
		{"ASCII non-hex length", asciiCRC(set(ascii, 21, 'G')), ReasonBadFrame},
		{"ASCII direction 1", asciiCRC(set(ascii, 19, '1')), ReasonBadLength},
		{"ASCII CRC lower-case", set(ascii, len(ascii)-1, 'e'), ReasonBadCRC},
		{"ASCII CRC", set(ascii, len(ascii)-1, '0'), ReasonBadCRC},
		{"ASCII end", asciiCRC(set(ascii, len(ascii)-5, 'X')), ReasonBadLength},
	} {
		f, err := Decode(tc.raw)
		if err == nil || err.Reason != tc.reason {
			t.Errorf("%s: got %v (%+v), want %s", tc.name, err, f, tc.reason)
		}
	}
}

// joined is the concatenation of the Raw of everything found and rest:
// Split must account for every byte once, in order.
func joined(found []Found, rest []byte) []byte {
	var b []byte
	for _, f := range found {
		b = append(b, f.Raw...)
	}
	return append(b, rest...)
}

func reasons(found []Found) []string {
	var out []string
	for _, f := range found {
		if f.Err != nil {
			out = append(out, f.Err.Reason)
		} else {
			out = append(out, "frame "+f.Frame.Station)
		}
	}
	return out
}

func TestSplitCoalesced(t *testing.T) {
	frames := [][]byte{unhex(t, yxTimed), []byte(domainASCII), unhex(t, toyKeepAlive), unhex(t, yxHourly), unhex(t, toyTestConfirm)}
	stream := bytes.Join(frames, nil)
	found, rest := Split(stream)
	if len(found) != len(frames) || rest != nil {
		t.Fatalf("found %v, rest %q", reasons(found), rest)
	}
	for i, f := range found {
		if f.Err != nil || !bytes.Equal(f.Raw, frames[i]) || !bytes.Equal(f.Frame.Raw, frames[i]) {
			t.Errorf("frame %d: %v", i, f.Err)
		}
	}
}

func TestSplitAtEveryByteBoundary(t *testing.T) {
	frames := [][]byte{unhex(t, yxTest), []byte(domainASCII), unhex(t, toyKeepAlive)}
	stream := bytes.Join(frames, nil)
	// One byte per read.
	var got []Found
	var buf []byte
	for _, c := range stream {
		buf = append(buf, c)
		found, rest := Split(buf)
		got = append(got, found...)
		buf = append([]byte(nil), rest...)
	}
	if len(got) != 3 || len(buf) != 0 {
		t.Fatalf("byte by byte: %v, rest %d bytes", reasons(got), len(buf))
	}
	for i, f := range got {
		if f.Err != nil || !bytes.Equal(f.Raw, frames[i]) {
			t.Errorf("byte by byte, frame %d: %v", i, f.Err)
		}
	}
	// Two reads, cut at every position.
	for cut := range len(stream) + 1 {
		found, rest := Split(stream[:cut])
		more, rest := Split(append(bytes.Clone(rest), stream[cut:]...))
		found = append(found, more...)
		if len(found) != 3 || rest != nil {
			t.Fatalf("cut at %d: %v, rest %q", cut, reasons(found), rest)
		}
		for i, f := range found {
			if f.Err != nil {
				t.Errorf("cut at %d, frame %d: %v", cut, i, f.Err)
			}
		}
	}
}

func TestSplitDamagedFrameBetweenGoodOnes(t *testing.T) {
	good1, good2 := unhex(t, yxTimed), unhex(t, yxTest)
	damagedCRC := bytes.Clone(good1)
	damagedCRC[len(damagedCRC)-2] ^= 0xFF
	damagedBody := bytes.Clone(good1)
	damagedBody[40] ^= 0x01
	// A length word grown so that it ends on good2's ETX: the CRC fails and
	// good2 must not be swallowed.
	grown := withCRC(good1)
	n := len(good1) - hexOverhead + len(good2)
	grown[11], grown[12] = byte(n>>8), byte(n)
	// A length word grown past everything that has arrived: good2 must not
	// wait for 4000 bytes that will never come.
	waiting := withCRC(good1)
	waiting[11], waiting[12] = 0x0F, 0xA0
	// A length word shrunk: the end character is not where it says.
	shrunk := withCRC(good1)
	shrunk[12] -= 5
	asciiDamaged := []byte(domainASCII)
	asciiDamaged = append(asciiDamaged[:len(asciiDamaged)-4:len(asciiDamaged)-4], "0000"...)

	for _, tc := range []struct {
		name    string
		damaged []byte
		reason  string
	}{
		{"CRC byte", damagedCRC, ReasonBadCRC},
		{"body byte", damagedBody, ReasonBadCRC},
		{"length grown onto the next frame's end", grown, ReasonBadCRC},
		{"length grown past the buffer", waiting, ReasonBadLength},
		{"length shrunk", shrunk, ReasonBadLength},
		{"ASCII CRC", asciiDamaged, ReasonBadCRC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := bytes.Join([][]byte{good1, tc.damaged, good2}, nil)
			found, rest := Split(stream)
			if rest != nil {
				t.Fatalf("rest %X", rest)
			}
			if !bytes.Equal(joined(found, rest), stream) {
				t.Errorf("found and rest are not the stream")
			}
			if len(found) != 3 || found[0].Err != nil || found[1].Err == nil || found[1].Err.Reason != tc.reason || found[2].Err != nil {
				t.Fatalf("found %v, want frame, %s, frame", reasons(found), tc.reason)
			}
			if !bytes.Equal(found[2].Raw, good2) {
				t.Errorf("third is %X, want good2", found[2].Raw)
			}
		})
	}
}

func TestSplitJunkRuns(t *testing.T) {
	good := unhex(t, yxTimed)
	// Junk holds lone starts (01, 7E 7E without STX at 13) that must not
	// break a run.
	junk1 := []byte("\x00\x01garbage\x7E\x7E\x01more")
	junk2 := []byte("\x01\x01\x7Ex\xFF")
	stream := bytes.Join([][]byte{junk1, good, junk2, []byte(domainASCII), []byte("tail")}, nil)
	found, rest := Split(stream)
	want := []string{ReasonBadFrame, "frame 0011223344", ReasonBadFrame, "frame 0012345678", ReasonBadFrame}
	if strings.Join(reasons(found), ",") != strings.Join(want, ",") || rest != nil {
		t.Fatalf("found %v rest %q, want %v", reasons(found), rest, want)
	}
	if !bytes.Equal(found[0].Raw, junk1) || !bytes.Equal(found[2].Raw, junk2) || string(found[4].Raw) != "tail" {
		t.Errorf("junk runs %q %q %q", found[0].Raw, found[2].Raw, found[4].Raw)
	}
	if !bytes.Equal(joined(found, rest), stream) {
		t.Errorf("found and rest are not the stream")
	}
}

func TestSplitKeepsAPartialStart(t *testing.T) {
	good := unhex(t, yxTimed)
	for _, tail := range [][]byte{{0x7E}, good[:2], good[:13], good[:14], good[:len(good)-1], []byte(domainASCII)[:1], []byte(domainASCII)[:23], []byte(domainASCII)[:60]} {
		found, rest := Split(append(bytes.Clone(good), tail...))
		if len(found) != 1 || found[0].Err != nil || !bytes.Equal(rest, tail) {
			t.Errorf("tail %q: found %v, rest %q", tail, reasons(found), rest)
		}
	}
	// An ASCII header that turns out not to be one is junk.
	found, rest := Split([]byte("\x010100123456"))
	if rest == nil || len(found) != 0 {
		t.Errorf("partial ASCII header: found %v, rest %q", reasons(found), rest)
	}
	found, rest = Split([]byte("\x0101001234g6"))
	if rest != nil || len(found) != 1 || found[0].Err.Reason != ReasonBadFrame {
		t.Errorf("broken ASCII header: found %v, rest %q", reasons(found), rest)
	}
}

func TestSplitTenMegabytesWithoutAFrameEnd(t *testing.T) {
	const total = 10 << 20
	// A header announcing the longest body, then bytes that never end it.
	header := unhex(t, "7E7E0100123456781234320FFF02")

	t.Run("one call", func(t *testing.T) {
		stream := append(bytes.Clone(header), make([]byte, total)...)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		found, rest := Split(stream)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
			t.Errorf("Split of %d bytes allocated %d bytes", len(stream), n)
		}
		if rest != nil || len(found) == 0 || found[0].Err == nil {
			t.Fatalf("found %v, rest %d bytes", reasons(found), len(rest))
		}
		if got := len(joined(found, rest)); got != len(stream) {
			t.Errorf("accounted for %d bytes of %d", got, len(stream))
		}
	})
	t.Run("reads of 4 KiB", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		chunk := make([]byte, 4096)
		var buf []byte
		fed, accounted := 0, 0
		for fed < total {
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
			// Headers now and then, so that rest has something to hold.
			if rng.IntN(4) == 0 {
				copy(chunk[rng.IntN(len(chunk)-hexHeader):], header)
			}
			buf = append(buf, chunk...)
			fed += len(chunk)
			found, rest := Split(buf)
			for _, f := range found {
				accounted += len(f.Raw)
			}
			if len(rest) > MaxFrame {
				t.Fatalf("after %d bytes rest holds %d bytes, more than MaxFrame %d", fed, len(rest), MaxFrame)
			}
			buf = append(buf[:0:0], rest...)
		}
		if accounted+len(buf) != fed {
			t.Errorf("accounted for %d + %d bytes of %d", accounted, len(buf), fed)
		}
	})
}

func TestSplitFailedFrameOverlappingTheNextStart(t *testing.T) {
	// Found by FuzzSplit: a frame cut short by one CRC byte, so that its
	// CRC field takes the next frame's first byte. Read in one piece the
	// next frame is whole and cuts the damaged one short; read in two, with
	// the next frame's end still to come, the damaged frame must not take
	// the next one's SOH either.
	good := []byte(domainASCII)
	damaged := unhex(t, "7E7E0100123456781234320008020001240715100005")
	damaged = append(damaged, NAK, 0x30)
	stream := append(bytes.Clone(damaged), good...)
	for cut := len(damaged) + 1; cut < len(stream); cut++ {
		first, rest := Split(stream[:cut])
		second, rest := Split(append(bytes.Clone(rest), stream[cut:]...))
		found := append(first, second...)
		if rest != nil || len(found) != 2 || found[0].Err == nil || found[1].Frame == nil || !bytes.Equal(found[1].Raw, good) {
			t.Fatalf("cut at %d: %v, rest %q", cut, reasons(found), rest)
		}
	}
}
