package hj212

import (
	"bytes"
	"strings"
	"testing"
)

func TestCRCModbus(t *testing.T) {
	if got := CRCModbus([]byte("123456789")); got != 0x4B37 {
		t.Errorf("CRCModbus(123456789) = %04X, want 4B37 (the CRC-16/MODBUS check value)", got)
	}
	// domain.md §3.4: the standard's Appendix A example.
	seg := appA[6 : len(appA)-6]
	if got := CRCModbus([]byte(seg)); got != 0x0759 {
		t.Errorf("CRCModbus(Appendix A) = %04X, want 0759", got)
	}
}

// modbusFramed is raw, an HJ 212-framed packet, with its CRC replaced by
// CRC-16/MODBUS.
func modbusFramed(t *testing.T, raw string) []byte {
	t.Helper()
	p, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return p.EncodeCRC(CRCVariantModbus)
}

func TestDecodeTakesEitherCRCAndRecordsWhich(t *testing.T) {
	for name, raw := range map[string]string{"real-time": rtd, "ack": ack, "hourly": hourly, "appendix A": appA} {
		p, err := Decode([]byte(raw))
		if err != nil || p.CRC != CRCVariantHJ212 {
			t.Fatalf("%s: %v, CRC %q", name, err, p.CRC)
		}
		mb := modbusFramed(t, raw)
		if bytes.Equal(mb, []byte(raw)) {
			t.Fatalf("%s: the MODBUS frame is the HJ 212 frame", name)
		}
		q, err := Decode(mb)
		if err != nil || q.CRC != CRCVariantModbus {
			t.Fatalf("%s with CRC-16/MODBUS: %v, CRC %q", name, err, q.CRC)
		}
		if !bytes.Equal(q.Encode(), mb) {
			t.Errorf("%s: a MODBUS packet encodes back to %q, want %q", name, q.Encode(), mb)
		}
		q.CRC = ""
		if !bytes.Equal(q.Encode(), []byte(raw)) {
			t.Errorf("%s: no CRC variant encodes to %q, want the HJ 212 frame", name, q.Encode())
		}
	}
	// The answer to a MODBUS packet is framed with CRC-16/MODBUS.
	p, _ := Decode(modbusFramed(t, rtd))
	a := p.Ack().Encode()
	if !bytes.Equal(a, modbusFramed(t, ack)) {
		t.Errorf("9014 answer to a MODBUS packet %q, want %q", a, modbusFramed(t, ack))
	}
	frames, rest := Split(append(modbusFramed(t, rtd), rtd...))
	if len(frames) != 2 || len(rest) != 0 || frames[0].Err != nil || frames[1].Err != nil ||
		frames[0].Pkt.CRC != CRCVariantModbus || frames[1].Pkt.CRC != CRCVariantHJ212 {
		t.Errorf("Split of a MODBUS and an HJ 212 frame: %+v, rest %q", frames, rest)
	}
}

func TestDecodeRefusesACRCOfNeitherVariant(t *testing.T) {
	raw := []byte(rtd)
	copy(raw[len(raw)-6:], "0000")
	_, err := Decode(raw)
	if err == nil || err.Reason != ReasonBadCRC {
		t.Fatalf("CRC 0000: %v", err)
	}
	if !strings.Contains(err.Detail, "4E00 (HJ 212)") || !strings.Contains(err.Detail, "(CRC-16/MODBUS)") {
		t.Errorf("detail %q does not name both computed CRCs", err.Detail)
	}
}
