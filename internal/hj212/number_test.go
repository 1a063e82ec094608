package hj212

import (
	"math"
	"regexp"
	"strconv"
	"testing"
)

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"9.8", 9.8, true},
		{"0.06", 0.06, true},
		{"486", 486, true},
		{"-12.5", -12.5, true},
		{"+3", 3, true},
		{"1.5E-3", 0.0015, true},
		{"1.5e3", 1500, true},
		{"2E+2", 200, true},
		{".5", 0.5, true},
		{"5.", 5, true},
		{"1e-400", 0, true}, // below the smallest float64: 0, still a finite number
		{"", 0, false},
		{"-", 0, false},
		{".", 0, false},
		{"NaN", 0, false},
		{"nan", 0, false},
		{"Inf", 0, false},
		{"+Inf", 0, false},
		{"-Infinity", 0, false},
		{"0x1p-2", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
		{"1e400", 0, false},
		{"-1e400", 0, false},
		{"1e", 0, false},
		{"1e+", 0, false},
		{"e5", 0, false},
		{" 1", 0, false},
		{"1 ", 0, false},
		{"1,5", 0, false},
		{"--1", 0, false},
		{"1.2.3", 0, false},
		{"12a", 0, false},
	} {
		got, ok := ParseNumber(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseNumber(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// decimalRE is the grammar ParseNumber takes, written independently of it.
var decimalRE = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"9.8", "-0.11", "1.5E-3", "NaN", "+Inf", "0x1p-2", "1_0", "1e400", "", ".", "5.", "1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := ParseNumber(s)
		if !ok {
			if decimalRE.MatchString(s) {
				// Only a number too large for a float64 is refused in the grammar.
				if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) {
					t.Fatalf("ParseNumber(%q) refused a finite decimal number %v", s, f)
				}
			}
			return
		}
		if !decimalRE.MatchString(s) {
			t.Fatalf("ParseNumber(%q) = %v: not a decimal number", s, v)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("ParseNumber(%q) = %v: not finite", s, v)
		}
		if want, err := strconv.ParseFloat(s, 64); err != nil || want != v {
			t.Fatalf("ParseNumber(%q) = %v, strconv says %v (%v)", s, v, want, err)
		}
	})
}
