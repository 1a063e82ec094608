// Package crc16 is the reflected CRC-16 of polynomial 0xA001 that both
// field protocols use: CRC-16/MODBUS (SL 651-2014, and many HJ 212
// loggers), and the HJ 212-2017 variant of Appendix A, which shifts the
// register right by 8 before each byte is mixed in.
package crc16

// Modbus is CRC-16/MODBUS of data: register 0xFFFF, each byte XORed into
// the low byte of the register, polynomial 0xA001 (reflected 0x8005), no
// final XOR.
func Modbus(data []byte) uint16 {
	reg := uint16(0xFFFF)
	for _, b := range data {
		reg = step(reg ^ uint16(b))
	}
	return reg
}

// HJ212 is the CRC16 of HJ 212-2017 Appendix A: as Modbus, but the
// register is shifted right by 8 before each byte is mixed in.
func HJ212(data []byte) uint16 {
	reg := uint16(0xFFFF)
	for _, b := range data {
		reg = step(reg>>8 ^ uint16(b))
	}
	return reg
}

// step shifts the 8 bits of a byte out of reg.
func step(reg uint16) uint16 {
	for range 8 {
		if reg&1 == 1 {
			reg = reg>>1 ^ 0xA001
		} else {
			reg >>= 1
		}
	}
	return reg
}
