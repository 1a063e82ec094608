package hj212

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cut splits packet raw's data area at the given offsets into pieces of a
// split packet (Flag bit D added, the same QN), as a sender that cuts its
// data area anywhere would.
func cut(t *testing.T, raw string, at ...int) []*Packet {
	t.Helper()
	whole, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out []*Packet
	prev := 0
	for i, end := range append(at, len(whole.CP)) {
		p := *whole
		p.Flag |= 2
		p.PNUM, p.PNO = fmt.Sprint(len(at)+1), fmt.Sprint(i+1)
		p.CP = whole.CP[prev:end]
		prev = end
		back, err := Decode(p.Encode())
		if err != nil {
			t.Fatalf("piece %d: %v", i+1, err)
		}
		out = append(out, back)
	}
	return out
}

func piece(t *testing.T, p *Packet, at time.Time) Piece[int] {
	t.Helper()
	pnum, pno, ok := p.Pieces()
	if !ok {
		t.Fatalf("not a piece: %+v", p)
	}
	return Piece[int]{Pkt: p, PNUM: pnum, PNO: pno, Raw: p.Encode(), At: at, Meta: pno}
}

var t0 = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

func roomy() AssemblerLimits {
	return AssemblerLimits{MaxPieces: 64, MaxBytes: 64 << 10, MaxAge: 10 * time.Minute}
}

func TestPieces(t *testing.T) {
	for _, tc := range []struct {
		flag            int
		pnum, pno       string
		wantNum, wantNo int
		split           bool
	}{
		{7, "3", "2", 3, 2, true},
		{6, "2", "2", 2, 2, true},
		{5, "3", "2", 0, 0, false}, // bit D clear
		{7, "", "", 0, 0, false},   // bit D without PNUM: whole
		{7, "1", "1", 0, 0, false}, // one piece: whole
		{7, "3", "4", 0, 0, false},
		{7, "3", "0", 0, 0, false},
		{7, "x", "1", 0, 0, false},
	} {
		p := &Packet{Flag: tc.flag, PNUM: tc.pnum, PNO: tc.pno}
		pnum, pno, split := p.Pieces()
		if pnum != tc.wantNum || pno != tc.wantNo || split != tc.split {
			t.Errorf("Flag %d PNUM %q PNO %q: %d, %d, %v", tc.flag, tc.pnum, tc.pno, pnum, pno, split)
		}
	}
}

func TestParseSegmentChecksPNUMAndPNO(t *testing.T) {
	head := "QN=1;ST=21;CN=2011;PW=1;MN=M;Flag=7;"
	for fields, ok := range map[string]bool{
		"PNUM=3;PNO=1;":     true,
		"PNUM=3;PNO=3;":     true,
		"PNUM=9999;PNO=12;": true,
		"":                  true,
		"PNUM=3;PNO=4;":     false,
		"PNUM=3;PNO=0;":     false,
		"PNUM=3;":           false,
		"PNO=1;":            false,
		"PNUM=-3;PNO=1;":    false,
		"PNUM=10000;PNO=1;": false,
		"PNUM=3;PNO=1.0;":   false,
	} {
		_, err := ParseSegment(head + fields + "CP=&&DataTime=20260701080000&&")
		if (err == nil) != ok {
			t.Errorf("%q: %v", fields, err)
		}
		if err != nil && err.Reason != ReasonBadSegment {
			t.Errorf("%q: reason %s", fields, err.Reason)
		}
	}
}

func TestParseCPRefusesTwoDataTimes(t *testing.T) {
	if _, err := ParseCP("DataTime=20260701080000;w01001-Rtd=8;DataTime=20260701080000;w01009-Rtd=6"); err != nil {
		t.Errorf("the same DataTime twice: %v", err)
	}
	if _, err := ParseCP("DataTime=20260701080000;w01001-Rtd=8;DataTime=20260701090000;w01009-Rtd=6"); err == nil {
		t.Error("two DataTimes taken")
	}
}

// TestAssemblerTakesPiecesInAnyOrder: the last piece to come, whichever it
// is, completes the packet; the pieces come back in PNO order and join to
// the whole data area.
func TestAssemblerTakesPiecesInAnyOrder(t *testing.T) {
	ps := cut(t, rtd, 40, 41, 200) // inside a name, then one character, then inside a value
	whole, _ := Decode([]byte(rtd))
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {1, 3, 0, 2}} {
		a := NewAssembler[int](roomy())
		for i, k := range order {
			done, gaveUp := a.Add(piece(t, ps[k], t0.Add(time.Duration(i)*time.Second)))
			if len(gaveUp) != 0 {
				t.Fatalf("order %v: gave up %v", order, gaveUp)
			}
			if i < len(order)-1 {
				if done != nil {
					t.Fatalf("order %v: complete after %d pieces", order, i+1)
				}
				continue
			}
			for j, p := range done {
				if p.PNO != j+1 || p.Meta != j+1 {
					t.Fatalf("order %v: pieces not in PNO order: %d at %d", order, p.PNO, j)
				}
			}
			if got := Join(done); got != whole.CP {
				t.Errorf("order %v: joined\n%s\nwant\n%s", order, got, whole.CP)
			}
		}
		if n, b := a.Held(); n != 0 || b != 0 {
			t.Errorf("order %v: %d pieces, %d bytes still held", order, n, b)
		}
	}
}

func TestAssemblerGivesUpADuplicateOrAnOddPiece(t *testing.T) {
	ps := cut(t, rtd, 100, 200)
	a := NewAssembler[int](roomy())
	a.Add(piece(t, ps[1], t0))
	_, gaveUp := a.Add(piece(t, ps[1], t0.Add(time.Second)))
	if len(gaveUp) != 1 || len(gaveUp[0].Pieces) != 1 || gaveUp[0].Why != "PNO 2 again; the first is kept" {
		t.Fatalf("a PNO twice: %+v", gaveUp)
	}
	odd := *ps[0]
	odd.PNUM = "4"
	_, gaveUp = a.Add(piece(t, &odd, t0))
	if len(gaveUp) != 1 || gaveUp[0].Why != "PNUM 4; the packet's other pieces say 3" {
		t.Fatalf("another PNUM: %+v", gaveUp)
	}
	a.Add(piece(t, ps[0], t0))
	done, _ := a.Add(piece(t, ps[2], t0))
	if len(done) != 3 || !done[1].At.Equal(t0) {
		t.Errorf("after a duplicate the packet is %v, want complete with the first copy of piece 2", done)
	}
	many := *ps[0]
	many.PNUM, many.QN = "65", "other"
	if _, gaveUp = a.Add(piece(t, &many, t0)); len(gaveUp) != 1 || !strings.Contains(gaveUp[0].Why, "65 pieces") {
		t.Errorf("a packet of more pieces than are held: %+v", gaveUp)
	}
	if n, _ := a.Held(); n != 0 {
		t.Errorf("%d pieces held", n)
	}
}

// TestAssemblerIsBounded: beyond MaxPieces or MaxBytes the packet that
// began longest ago is given up, with every piece of it held.
func TestAssemblerIsBounded(t *testing.T) {
	packet := func(qn string) []*Packet {
		ps := cut(t, rtd, 100, 200)
		for _, p := range ps {
			p.QN = qn
		}
		return ps
	}
	a, b, c := packet("A"), packet("B"), packet("C")
	as := NewAssembler[int](AssemblerLimits{MaxPieces: 4, MaxBytes: 64 << 10, MaxAge: time.Hour})
	as.Add(piece(t, a[0], t0))
	as.Add(piece(t, a[2], t0.Add(3*time.Second)))
	as.Add(piece(t, b[0], t0.Add(time.Second)))
	as.Add(piece(t, c[1], t0.Add(2*time.Second)))
	_, gaveUp := as.Add(piece(t, b[1], t0.Add(4*time.Second)))
	if len(gaveUp) != 1 || gaveUp[0].Key.QN != "A" || len(gaveUp[0].Pieces) != 2 || gaveUp[0].Pieces[0].PNO != 1 || gaveUp[0].Pieces[1].PNO != 3 {
		t.Fatalf("at 5 pieces of 4: gave up %+v, want packet A's pieces 1 and 3", gaveUp)
	}
	if done, _ := as.Add(piece(t, b[2], t0.Add(5*time.Second))); len(done) != 3 {
		t.Errorf("packet B not completed: %v", done)
	}

	size := len(a[0].Encode())
	bs := NewAssembler[int](AssemblerLimits{MaxPieces: 64, MaxBytes: 2*size + 10, MaxAge: time.Hour})
	bs.Add(piece(t, a[0], t0))
	bs.Add(piece(t, b[0], t0.Add(time.Second)))
	_, gaveUp = bs.Add(piece(t, c[0], t0.Add(2*time.Second)))
	if len(gaveUp) != 1 || gaveUp[0].Key.QN != "A" {
		t.Fatalf("beyond MaxBytes: gave up %+v, want packet A", gaveUp)
	}
	if _, by := bs.Held(); by > 2*size+10 {
		t.Errorf("%d bytes held, more than %d", by, 2*size+10)
	}
}

func TestAssemblerExpire(t *testing.T) {
	ps := cut(t, rtd, 100, 200)
	a := NewAssembler[int](roomy())
	a.Add(piece(t, ps[2], t0))
	a.Add(piece(t, ps[0], t0.Add(5*time.Minute)))
	if got := a.Expire(t0.Add(10 * time.Minute)); len(got) != 0 {
		t.Fatalf("given up at MaxAge: %+v", got)
	}
	got := a.Expire(t0.Add(10*time.Minute + time.Nanosecond))
	if len(got) != 1 || len(got[0].Pieces) != 2 || got[0].Pieces[0].PNO != 1 || got[0].Pieces[1].PNO != 3 || got[0].PNUM != 3 {
		t.Fatalf("after MaxAge: %+v, want pieces 1 and 3 of 3", got)
	}
	if n, b := a.Held(); n != 0 || b != 0 {
		t.Errorf("%d pieces, %d bytes still held", n, b)
	}
}

// TestJoin: pieces that each repeat the DataTime (lua-HJ212,
// IceCoffee.HJ212) join to one data area with one DataTime; a cut data
// area joins end to end.
func TestJoin(t *testing.T) {
	mk := func(cps ...string) []Piece[int] {
		var out []Piece[int]
		for i, cp := range cps {
			out = append(out, Piece[int]{Pkt: &Packet{CP: cp}, PNO: i + 1})
		}
		return out
	}
	for _, tc := range []struct {
		pieces []Piece[int]
		want   string
	}{
		{mk("DataTime=20260701080000;w01001-Rtd=8.1", "DataTime=20260701080000;w01009-Rtd=6.6"), "DataTime=20260701080000;w01001-Rtd=8.1;w01009-Rtd=6.6"},
		{mk("DataTime=20260701080000;w01001-Rtd=8.1;", "DataTime=20260701080000;w01009-Rtd=6.6"), "DataTime=20260701080000;w01001-Rtd=8.1;;w01009-Rtd=6.6"},
		{mk("DataTime=20260701080000;w01001-Rtd=8", ".1;w01009-Rtd=6.6"), "DataTime=20260701080000;w01001-Rtd=8.1;w01009-Rtd=6.6"},
		{mk("DataTime=20260701080000;w01001-Rtd=8.1;", "DataTime=20260701090000;w01009-Rtd=6.6"), "DataTime=20260701080000;w01001-Rtd=8.1;DataTime=20260701090000;w01009-Rtd=6.6"},
		{mk("DataTime=2026070108000", "0;w01001-Rtd=8.1"), "DataTime=20260701080000;w01001-Rtd=8.1"},
	} {
		if got := Join(tc.pieces); got != tc.want {
			t.Errorf("Join = %q, want %q", got, tc.want)
		}
	}
}
