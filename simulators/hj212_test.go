package simulators

import (
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hj212"
)

// TestHJ212PacketsTakeTheStationsCRCAndPW: each station's packets carry the
// CRC of its hj212_crc and its hj212_pw (else 123456), unless a CRC is
// forced for all; the rest of the sample stays native.
func TestHJ212PacketsTakeTheStationsCRCAndPW(t *testing.T) {
	reg := loadRegistry(t)
	withPW := *reg.Station("nianchu-gyantse")
	withPW.HJ212PW = "s3cr#t"
	at := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name, station, force string
		wantCRC, wantPW      string
	}{
		{"default CRC", "nianchu-gyantse", "", hj212.CRCVariantHJ212, "123456"},
		{"registry MODBUS", "yadong-yadong", "", hj212.CRCVariantModbus, "123456"},
		{"forced HJ 212 on a MODBUS station", "yadong-yadong", hj212.CRCVariantHJ212, hj212.CRCVariantHJ212, "123456"},
		{"forced MODBUS", "nianchu-gyantse", hj212.CRCVariantModbus, hj212.CRCVariantModbus, "123456"},
		{"hj212_pw", "", "", hj212.CRCVariantHJ212, "s3cr#t"},
	} {
		st := reg.Station(c.station)
		if c.station == "" {
			st = &withPW
		}
		link := newHJLink(st, c.force, "mqtt", "")
		sample := NewStation(st, 1).Next(at)
		rest, raw := link.packet(sample)
		p, err := hj212.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v: %s", c.name, err, raw)
		}
		if p.CRC != c.wantCRC || p.PW != c.wantPW || p.MN != st.HJ212MN || p.CN != "2011" || !p.AckRequested() {
			t.Errorf("%s: CRC %s PW %q MN %s CN %s Flag %d, want CRC %s PW %q MN %s, a 2011 asking for an answer",
				c.name, p.CRC, p.PW, p.MN, p.CN, p.Flag, c.wantCRC, c.wantPW, st.HJ212MN)
		}
		d, perr := hj212.ParseCP(p.CP)
		if perr != nil {
			t.Fatal(perr)
		}
		if len(d.Items)+len(rest.Values) != len(sample.Values) {
			t.Errorf("%s: %d items in the packet and %d values left of %d", c.name, len(d.Items), len(rest.Values), len(sample.Values))
		}
		for _, v := range rest.Values {
			if _, ok := hj212.FactorOf(v.Code); ok {
				t.Errorf("%s: %s stayed native", c.name, v.Code)
			}
		}
	}
}
