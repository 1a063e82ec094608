package crc16

import "testing"

// Check values: CRC-16/MODBUS of "123456789" is 4B37 (the CRC catalogue);
// the HJ 212 variant gives 2F80 (domain.md §3.4), and on the data segment
// of the standard's Appendix A example 1C80, as the standard prints it.
func TestCheckValues(t *testing.T) {
	seg := []byte("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&")
	for _, c := range []struct {
		name string
		got  uint16
		want uint16
	}{
		{"Modbus 123456789", Modbus([]byte("123456789")), 0x4B37},
		{"HJ212 123456789", HJ212([]byte("123456789")), 0x2F80},
		{"HJ212 Appendix A", HJ212(seg), 0x1C80},
		{"Modbus Appendix A", Modbus(seg), 0x0759},
	} {
		if c.got != c.want {
			t.Errorf("%s: %04X, want %04X", c.name, c.got, c.want)
		}
	}
}
