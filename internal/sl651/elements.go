package sl651

import (
	"slices"
	"strings"
	"time"
)

// Element is one element rivermon maps (SL 651-2014 Table C.1): its HEX lead
// byte, its ASCII mnemonic, its standard format N(Digits,Decimals) and the
// contract code its values are stored under.
type Element struct {
	Lead     byte
	Name     string
	Digits   int // 0 for the 5-minute arrays and ZT, which are HEX, not BCD
	Decimals int // for the arrays: the decimals of one slot (DRP 0.1 mm, DRZ1 0.01 m)
	Code     string
	Period   time.Duration // rain: the period one value covers (0 for PJ: the current period)
	Relative bool          // DRZ1: levels relative to the station's level base
}

// Lead bytes with a meaning of their own.
const (
	leadTime    = 0xF0 // TT observation time
	leadStation = 0xF1 // ST station address
	leadManual  = 0xF2 // RGZS manual-entry data
	leadPicture = 0xF3 // PIC picture
	leadDRP     = 0xF4 // 12 × 5-minute rainfall
	leadDRZ1    = 0xF5 // 12 × 5-minute relative level 1
	leadDRZ8    = 0xFC
	leadFlow    = 0xFD // DATA flow-velocity batch
	leadStep    = 0x04 // DRxnn time step
	leadZT      = 0x45
	leadExt     = 0xFF // FF xx: user extension
)

// elements is Table C.1 as far as rivermon maps it (reference/sl651.md).
var elements = []Element{
	{Lead: 0x39, Name: "Z", Digits: 7, Decimals: 3, Code: "level_m"},
	{Lead: 0x27, Name: "Q", Digits: 9, Decimals: 3, Code: "flow_m3s"},
	{Lead: 0x03, Name: "C", Digits: 3, Decimals: 1, Code: "water_temp_c"},
	{Lead: 0x20, Name: "PJ", Digits: 5, Decimals: 1, Code: "rain_mm"},
	{Lead: 0x26, Name: "PT", Digits: 6, Decimals: 1, Code: "rain_total_mm"},
	{Lead: 0x1A, Name: "P1", Digits: 5, Decimals: 1, Code: "rain_mm", Period: time.Hour},
	{Lead: 0x1F, Name: "PD", Digits: 5, Decimals: 1, Code: "rain_mm", Period: 24 * time.Hour},
	{Lead: 0x22, Name: "PN05", Digits: 5, Decimals: 1, Code: "rain_mm", Period: 5 * time.Minute},
	{Lead: leadDRP, Name: "DRP", Decimals: 1, Code: "rain_mm", Period: 5 * time.Minute},
	{Lead: leadDRZ1, Name: "DRZ1", Decimals: 2, Code: "level_m", Relative: true},
	{Lead: 0x38, Name: "VT", Digits: 4, Decimals: 2, Code: "battery_v"},
	{Lead: 0x46, Name: "pH", Digits: 4, Decimals: 2, Code: "ph"},
	{Lead: 0x47, Name: "DO", Digits: 4, Decimals: 1, Code: "do_mgl"},
	{Lead: 0x48, Name: "COND", Digits: 5, Code: "cond_uscm"},
	{Lead: 0x49, Name: "TURB", Digits: 3, Code: "turb_ntu"},
	{Lead: 0x4A, Name: "CODMN", Digits: 4, Decimals: 1, Code: "codmn_mgl"},
	{Lead: 0x4C, Name: "NH4N", Digits: 6, Decimals: 2, Code: "nh3n_mgl"},
	{Lead: 0x4D, Name: "TP", Digits: 5, Decimals: 3, Code: "tp_mgl"},
	{Lead: 0x4E, Name: "TN", Digits: 5, Decimals: 2, Code: "tn_mgl"},
	{Lead: leadZT, Name: "ZT"},
}

// Elements lists the mapped elements, for docs and tests.
func Elements() []Element { return slices.Clone(elements) }

func elementByLead(lead byte) *Element {
	for i := range elements {
		if elements[i].Lead == lead {
			return &elements[i]
		}
	}
	return nil
}

// elementByName matches the mnemonic without regard to case: the standard
// writes "pH", devices write "PH" as well.
func elementByName(name string) *Element {
	for i := range elements {
		if strings.EqualFold(elements[i].Name, name) {
			return &elements[i]
		}
	}
	return nil
}

func (e *Element) isArray() bool { return e.Lead == leadDRP || e.Lead == leadDRZ1 }

// hexBytes is the number of BCD bytes of the standard format: D digits in
// ceil(D/2) bytes.
func (e *Element) hexBytes() int { return (e.Digits + 1) / 2 }

// stationClasses are the station class codes of Table A.1 (the HEX code is
// the ASCII letter).
const stationClasses = "PHKZDTMGQIO"

func isStationClass(c byte) bool { return c != 0 && strings.IndexByte(stationClasses, c) >= 0 }
