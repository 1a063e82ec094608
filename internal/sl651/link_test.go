package sl651

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

func TestConfirmPublicFrames(t *testing.T) {
	// toymoban.com/news/detail-686475.html gives the centre's confirmations
	// of the test and timed reports: ESC, the uplink's serial number, and a
	// send time equal to the uplink's.
	for _, tc := range []struct {
		up, want string
		now      time.Time
	}{
		{yxTest, toyTestConfirm, time.Date(2059, 10, 11, 15, 49, 47, 0, reading.Zone)},
		{yxTimed, toyTimedConfirm, time.Date(2017, 7, 18, 11, 0, 16, 0, reading.Zone)},
	} {
		up, err := Decode(unhex(t, tc.up))
		if err != nil {
			t.Fatal(err)
		}
		c := Confirm(up, tc.now.UTC(), true)
		if want := unhex(t, tc.want); !bytes.Equal(c.Raw, want) || !bytes.Equal(c.Encode(), want) {
			t.Errorf("confirmation of %02X\n got %X\nwant %X", up.Function, c.Raw, want)
		}
		if c.Up || c.End != ESC || c.Station != up.Station || c.Centre != up.Centre || c.Password != up.Password || c.Function != up.Function {
			t.Errorf("confirmation header %+v", c)
		}
		if c := Confirm(up, tc.now, false); c.End != EOT || c.Raw[len(c.Raw)-3] != EOT {
			t.Errorf("without stayOnline: end %02X", c.End)
		}
	}
}

func TestConfirmASCIIAndM3(t *testing.T) {
	now := time.Date(2024, 7, 15, 2, 0, 30, 0, time.UTC) // 10:00:30 Beijing
	up, err := Decode([]byte(domainASCII))
	if err != nil {
		t.Fatal(err)
	}
	c := Confirm(up, now, false)
	want := "\x010012345678011234328010\x020001240715100030\x04"
	if !strings.HasPrefix(string(c.Raw), want) || len(c.Raw) != len(want)+4 {
		t.Errorf("ASCII confirmation %q, want %q + CRC", c.Raw, want)
	}
	if _, err := Decode(c.Raw); err != nil {
		t.Errorf("ASCII confirmation does not decode: %v", err)
	}

	// M3: the confirmation carries the packet count and, for EOT/ESC, the
	// last packet number (Table 23 note a).
	var packets []*Frame
	for _, raw := range pictureM3(t) {
		f, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, f)
	}
	whole, jerr := Join(packets)
	if jerr != nil {
		t.Fatal(jerr)
	}
	c = Confirm(whole, now, true)
	if c.Total != 13 || c.Seq != 13 || c.Raw[13] != SYN || !bytes.Equal(c.Body[:2], []byte{0x00, 0x05}) {
		t.Errorf("M3 confirmation %d of %d, %X", c.Seq, c.Total, c.Raw)
	}
	if g, err := Decode(c.Raw); err != nil || g.Total != 13 || g.Seq != 13 || g.End != ESC {
		t.Errorf("M3 confirmation decodes to %+v, %v", g, err)
	}
	// A body too short for a serial number gets serial 0.
	if c := Confirm(&Frame{Encoding: HEX, Up: true, Station: "0012345678", Password: "1234", Function: 0x2F, Body: []byte{1}}, now, false); !bytes.Equal(c.Body[:2], []byte{0, 0}) {
		t.Errorf("short body: %X", c.Body)
	}
}

func TestJoinPicturePackets(t *testing.T) {
	raws := pictureM3(t)
	var packets []*Frame
	var want []byte
	for _, raw := range raws {
		f, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, f)
		want = append(want, f.Body...)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	shuffled := append([]*Frame(nil), packets...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	whole, err := Join(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(whole.Body, want) || whole.Total != 13 || whole.Seq != 13 || whole.End != ETX || whole.Raw != nil || whole.Station != "0012345678" {
		t.Errorf("joined %+v", whole)
	}
	// Packet 1 begins the body: serial, send time, station, observation
	// time, then the picture (F3 F3) whose JPEG starts FF D8.
	if head := unhex(t, "0005591011161118F1F1001234567848F0F05910111611F3F3FFD8"); !bytes.HasPrefix(whole.Body, head) {
		t.Errorf("joined body starts %X", whole.Body[:len(head)])
	}

	// Over a stream, coalesced with noise: Split, then Join.
	stream := append([]byte("noise"), bytes.Join(raws, nil)...)
	found, rest := Split(stream)
	if rest != nil || len(found) != 14 {
		t.Fatalf("split: %v, rest %d", reasons(found), len(rest))
	}
	var fromStream []*Frame
	for _, f := range found[1:] {
		fromStream = append(fromStream, f.Frame)
	}
	if again, err := Join(fromStream); err != nil || !bytes.Equal(again.Body, want) {
		t.Errorf("join after split: %v", err)
	}
}

func TestJoinRefuses(t *testing.T) {
	var packets []*Frame
	for _, raw := range pictureM3(t) {
		f, _ := Decode(raw)
		packets = append(packets, f)
	}
	without := func(seqs ...int) []*Frame {
		var out []*Frame
	next:
		for _, p := range packets {
			for _, s := range seqs {
				if p.Seq == s {
					continue next
				}
			}
			out = append(out, p)
		}
		return out
	}
	other := *packets[4]
	other.Station = "0099999999"
	longer := *packets[4]
	longer.Total = 14
	beyond := *packets[4]
	beyond.Seq = 20
	single, _ := Decode(unhex(t, yxTimed))
	many := make([]*Frame, 0, 40)
	for range 40 {
		many = append(many, packets[0])
	}
	for _, tc := range []struct {
		name    string
		packets []*Frame
		want    string
	}{
		{"none", nil, "no packets"},
		{"not M3", []*Frame{single}, "not an M3 packet"},
		{"missing", without(2, 5), "missing 2, 5"},
		{"duplicated", append(without(), packets[2]), "duplicated 3"},
		{"missing and duplicated", append(without(13), packets[0]), "missing 13; duplicated 1"},
		{"other station", append(without(5), &other), "0099999999"},
		{"other count", append(without(5), &longer), "14 packets"},
		{"beyond the count", append(without(5), &beyond), "missing 5; numbered beyond the count 20"},
		{"long lists stop at ten", many, "and 29 more"},
		{"nil packet", append(without(), nil), "nil"},
	} {
		_, err := Join(tc.packets)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
}

func TestJoinASCIIPackets(t *testing.T) {
	// An ASCII report split in three (Table 18: only packet 1 carries the
	// serial number), framed, split out of a stream and joined again.
	body := []byte("0004240715110005ST 0012345678 H TT 2407151005 DRN05 Z 3.420 3.421 3.422 3.423 M 3.425 ")
	cuts := []int{0, 20, 50, len(body)}
	var stream []byte
	for k := range 3 {
		end := byte(ETB)
		if k == 2 {
			end = ETX
		}
		f := &Frame{Encoding: ASCII, Up: true, Centre: 1, Station: "0012345678", Password: "1234", Function: 0x31,
			Total: 3, Seq: k + 1, Body: body[cuts[k]:cuts[k+1]], End: end}
		stream = append(stream, f.Encode()...)
	}
	found, rest := Split(stream)
	if len(found) != 3 || rest != nil {
		t.Fatalf("split: %v", reasons(found))
	}
	packets := []*Frame{found[2].Frame, found[0].Frame, found[1].Frame}
	whole, err := Join(packets)
	if err != nil || !bytes.Equal(whole.Body, body) {
		t.Fatalf("join: %v, %q", err, whole.Body)
	}
	r, perr := ParseBody(whole)
	if perr != nil || len(r.Stations) != 1 || len(r.Stations[0].Values) != 6 || !r.Stations[0].Values[4].Missing {
		t.Errorf("parse of the joined body: %v %+v", perr, r)
	}
}
