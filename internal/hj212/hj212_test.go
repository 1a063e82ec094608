package hj212

import (
	"bytes"
	"testing"
	"time"
)

// The three worked packets of domain.md §3.11 and the standard's own
// Appendix A example.
var (
	rtd    = "##0378QN=20240715083000123;ST=21;CN=2011;PW=123456;MN=5402230000000000000000A1;Flag=5;CP=&&DataTime=20240715083000;w01010-Rtd=9.8,w01010-Flag=N;w01001-Rtd=8.21,w01001-Flag=N;w01009-Rtd=6.62,w01009-Flag=N;w01014-Rtd=312.0,w01014-Flag=N;w01003-Rtd=486,w01003-Flag=N;w01019-Rtd=1.6,w01019-Flag=N;w21003-Rtd=0.11,w21003-Flag=N;w21011-Rtd=0.06,w21011-Flag=N;w21001-Rtd=0.82,w21001-Flag=N&&4E00\r\n"
	ack    = "##0087QN=20240715083000123;ST=91;CN=9014;PW=123456;MN=5402230000000000000000A1;Flag=4;CP=&&&&DBC1\r\n"
	hourly = "##0356QN=20240715090000456;ST=21;CN=2061;PW=123456;MN=5402230000000000000000A1;Flag=5;CP=&&DataTime=20240715080000;w01010-Min=9.2,w01010-Avg=9.7,w01010-Max=10.3,w01010-Flag=N;w01001-Min=8.15,w01001-Avg=8.20,w01001-Max=8.26,w01001-Flag=N;w01009-Min=6.51,w01009-Avg=6.60,w01009-Max=6.71,w01009-Flag=N;w21003-Min=0.10,w21003-Avg=0.11,w21003-Max=0.13,w21003-Flag=N&&EF41\r\n"
	appA   = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)

func TestCRC(t *testing.T) {
	if got := CRC([]byte("123456789")); got != 0x2F80 {
		t.Errorf("CRC(123456789) = %04X, want 2F80 (CRC-16/MODBUS would be 4B37)", got)
	}
}

func TestWorkedPacketsDecodeAndEncodeBack(t *testing.T) {
	for name, raw := range map[string]string{"real-time": rtd, "ack": ack, "hourly": hourly, "appendix A": appA} {
		p, err := Decode([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := p.Encode(); !bytes.Equal(got, []byte(raw)) {
			t.Errorf("%s: encodes to\n%q\nwant\n%q", name, got, raw)
		}
	}
	p, _ := Decode([]byte(rtd))
	if p.CN != "2011" || p.ST != "21" || p.MN != "5402230000000000000000A1" || !p.AckRequested() || p.Version() != 1 {
		t.Errorf("header %+v", p)
	}
	if got := p.Ack().Encode(); string(got) != ack {
		t.Errorf("9014 reply %q, want %q", got, ack)
	}
	d, err := ParseCP(p.CP)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Time.Equal(time.Date(2024, 7, 15, 0, 30, 0, 0, time.UTC)) {
		t.Errorf("DataTime 08:30 Beijing = %s, want 00:30 UTC", d.Time)
	}
	if d.Items["w01009"]["Rtd"] != "6.62" || d.Items["w21001"]["Flag"] != "N" || len(d.Items) != 9 {
		t.Errorf("items %v", d.Items)
	}
	h, _ := Decode([]byte(hourly))
	hd, _ := ParseCP(h.CP)
	if f, _ := ValueField(h.CN); hd.Items["w01001"][f] != "8.20" {
		t.Errorf("hourly value field %s: %v", f, hd.Items["w01001"])
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	bad := []byte(rtd)
	bad[40] ^= 1
	if _, err := Decode(bad); err == nil || err.Reason != ReasonBadCRC {
		t.Errorf("flipped bit: %v", err)
	}
	if _, err := Decode([]byte("##0010QN=1;CN=2&&0000\r\n")); err == nil || err.Reason != ReasonBadLength {
		t.Errorf("wrong length: %v", err)
	}
}

func TestSplitStream(t *testing.T) {
	corrupt := []byte(rtd)
	corrupt[100] = 'X'
	stream := []byte("garbage" + hourly + string(corrupt) + rtd + rtd[:50])
	frames, rest := Split(stream)
	var ok, crc, junk int
	for _, f := range frames {
		switch {
		case f.Err == nil:
			ok++
		case f.Err.Reason == ReasonBadCRC:
			crc++
		case f.Err.Reason == ReasonBadFrame:
			junk++
		}
	}
	if ok != 2 || crc != 1 || junk != 1 || string(rest) != rtd[:50] {
		t.Fatalf("%d good, %d bad CRC, %d junk, rest %q", ok, crc, junk, rest)
	}
	// Byte by byte, as a slow link delivers it.
	var buf []byte
	var got int
	for _, b := range []byte(rtd + ack) {
		buf = append(buf, b)
		var fs []Frame
		fs, buf = Split(buf)
		for _, f := range fs {
			if f.Err != nil {
				t.Fatalf("byte-wise: %v", f.Err)
			}
			got++
		}
	}
	if got != 2 || len(buf) != 0 {
		t.Errorf("byte-wise: %d frames, %d bytes left", got, len(buf))
	}
}

func FuzzSplit(f *testing.F) {
	piece2 := Packet{QN: "1", ST: "21", CN: "2011", PW: "1", MN: "M", Flag: 7, PNUM: "2", PNO: "2", CP: ".1;w01009-Rtd=6.6"}
	split := string(piece2.Encode())
	for _, s := range []string{rtd, ack, hourly, appA, rtd + ack, "##9999", "####0000&&", split} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		frames, rest := Split(b)
		total := len(rest)
		lim := AssemblerLimits{MaxPieces: 8, MaxBytes: 4096, MaxAge: time.Minute}
		pieces := NewAssembler[int](lim)
		for _, fr := range frames {
			total += len(fr.Raw)
			if fr.Err == nil {
				if fr.Pkt == nil {
					t.Fatal("frame without packet or error")
				}
				if again := fr.Pkt.Encode(); len(again) == 0 {
					t.Fatal("empty encoding")
				}
				if d, err := ParseCP(fr.Pkt.CP); err == nil {
					for _, item := range d.Items {
						for _, v := range item {
							ParseNumber(v)
						}
					}
				}
				if pnum, pno, split := fr.Pkt.Pieces(); split {
					done, _ := pieces.Add(Piece[int]{Pkt: fr.Pkt, PNUM: pnum, PNO: pno, Raw: fr.Raw})
					for i, p := range done {
						if len(done) != pnum || p.PNO != i+1 {
							t.Fatalf("a packet of %d pieces completed with piece %d at %d of %d", pnum, p.PNO, i, len(done))
						}
					}
					if n, by := pieces.Held(); n > lim.MaxPieces || by > lim.MaxBytes {
						t.Fatalf("%d pieces, %d bytes held beyond %+v", n, by, lim)
					}
				}
			}
		}
		if total != len(b) {
			t.Fatalf("Split lost bytes: %d of %d accounted for", total, len(b))
		}
	})
}
