package hj212

import (
	"math"
	"strconv"
)

// ParseNumber reads a value of the data area: an optional sign, decimal
// digits with an optional decimal point, and optionally a decimal exponent
// ("-12.5", "0.06", "1.5E-3"). HJ 212-2017 §6.3.3 gives values as decimal
// numbers (type N14.2: digits, sign and point); strconv.ParseFloat alone
// would also take "NaN", "Inf", hex floats ("0x1p-2") and underscores, none
// of which an analyser means as a measurement. ok is false for those, for
// the empty string, and for a number whose value is not finite (1e400).
// A number too small for a float64 (1e-400) is 0.
func ParseNumber(s string) (v float64, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits == 0 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
