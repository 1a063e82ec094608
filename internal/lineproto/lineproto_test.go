package lineproto

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkFloat fails unless AppendFloat writes v as a line-protocol float
// that parses back to exactly v (sign of zero included).
func checkFloat(t *testing.T, v float64) {
	t.Helper()
	s := string(AppendFloat(nil, v))
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' && c != '-' && c != '+' && c != 'e' {
			t.Fatalf("AppendFloat(%v) = %q: not a line-protocol float", v, s)
		}
	}
	got, err := strconv.ParseFloat(s, 64)
	if err != nil || math.Float64bits(got) != math.Float64bits(v) {
		t.Fatalf("AppendFloat(%v) = %q, which parses to %v (%v)", v, s, got, err)
	}
}

func TestAppendFloat(t *testing.T) {
	tenth, fifth := 0.1, 0.2 // variables: a constant 0.1 + 0.2 is exactly 0.3
	for _, c := range []struct {
		v    float64
		want string
	}{
		{3.42, "3.42"}, {12.25, "12.25"}, {-18.5, "-18.5"}, {0.001, "0.001"}, {-0.000105, "-0.000105"},
		{58, "58"}, {1e15, "1000000000000000"}, {tenth + fifth, "0.30000000000000004"},
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {1e-7, "1e-07"}, {1 << 53, "9.007199254740992e+15"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {math.SmallestNonzeroFloat64, "5e-324"},
	} {
		if got := string(AppendFloat(nil, c.v)); got != c.want {
			t.Errorf("AppendFloat(%v) = %q, want %q", c.v, got, c.want)
		}
		checkFloat(t, c.v)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		checkFloat(t, math.Float64frombits(r.Uint64()&^(0x7ff<<52)|uint64(r.IntN(0x7ff))<<52)) // any finite
		// Decimals as sensors report them, and values near them.
		d := float64(r.Int64N(2e7)-1e7) / pow10[r.IntN(len(pow10))]
		checkFloat(t, d)
		checkFloat(t, math.Nextafter(d, math.Inf(1)))
	}
}

// FuzzAppendFloat: every finite float is written so that it parses back
// to itself.
func FuzzAppendFloat(f *testing.F) {
	f.Add(3.42)
	f.Add(-0.000105)
	f.Fuzz(func(t *testing.T, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		checkFloat(t, v)
	})
}
