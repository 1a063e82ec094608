package quality

import (
	"math"
	"testing"
)

// TestItemClassAtEveryBoundary: exactly at a limit, just below and just
// above, for every graded item and class (GB 3838-2002 Table 1; a value
// equal to a limit belongs to that class). Values are graded rounded to
// the item's evaluation decimals: one unit of the last decimal past a
// limit is the next class, less than half a unit rounds back onto it (half a unit: to the even digit).
func TestItemClassAtEveryBoundary(t *testing.T) {
	noTemp := Conditions{WaterTempC: math.NaN()}
	for code, item := range gb3838 {
		for i, lim := range item.limits {
			class := i + 1
			unit := math.Pow10(-item.decimals)
			better, worse, rounded := lim-unit, lim+unit, lim+unit*0.4
			if item.minimum {
				better, worse, rounded = lim+unit, lim-unit, lim-unit*0.4
			}
			if got, _ := ItemClass(code, rounded, noTemp); got != class {
				t.Errorf("%s = %g (rounds onto the Class %d limit): class %d", code, rounded, class, got)
			}
			if got, _ := ItemClass(code, lim, noTemp); got != class {
				t.Errorf("%s = %g (the Class %d limit): class %d", code, lim, class, got)
			}
			if got, _ := ItemClass(code, worse, noTemp); got != class+1 {
				t.Errorf("%s = %g (just past the Class %d limit): class %d, want %d", code, worse, class, got, class+1)
			}
			if got, _ := ItemClass(code, better, noTemp); got > class {
				t.Errorf("%s = %g (just inside the Class %d limit): class %d", code, better, class, got)
			}
		}
	}
	for _, c := range []struct {
		v    float64
		want int
	}{{6, 1}, {9, 1}, {5.5, 1}, {5.49, 6}, {9.5, 6}, {9.49, 1}, {5.4, 6}, {9.6, 6}, {8.3, 1}} {
		if got, _ := ItemClass("ph", c.v, noTemp); got != c.want {
			t.Errorf("pH %g: class %d, want %d", c.v, got, c.want)
		}
	}
	if _, ok := ItemClass("tn_mgl", 0.1, noTemp); ok {
		t.Error("total nitrogen graded for a river")
	}
}

// TestDissolvedOxygenAtAltitude: at 4,000 m and 10 °C saturation is about
// 6.8 mg/L, so fully saturated water is Class I by the 90 % clause although
// it is below 7.5 mg/L; without a water temperature only the mg/L limits
// apply.
func TestDissolvedOxygenAtAltitude(t *testing.T) {
	at := Conditions{WaterTempC: 10, ElevationM: 4000}
	sat := DOSaturation(10, 4000)
	if got, _ := ItemClass("do_mgl", sat, at); got != 1 {
		t.Errorf("saturated water at 4,000 m: class %d, want 1", got)
	}
	if v := math.Ceil(0.9*sat*10) / 10; func() bool { got, _ := ItemClass("do_mgl", v, at); return got != 1 }() {
		t.Errorf("90 %% saturation (%.1f mg/L): not class 1", v)
	}
	if got, _ := ItemClass("do_mgl", 0.89*sat, at); got != 2 {
		t.Errorf("89 %% saturation (%.2f mg/L): class %d, want 2", 0.89*sat, got)
	}
	if got, _ := ItemClass("do_mgl", sat, Conditions{WaterTempC: math.NaN(), ElevationM: 4000}); got != 2 {
		t.Errorf("no temperature: class %d, want 2 (mg/L limits only)", got)
	}
}

// TestDOSaturationUSGSForm holds DOSaturation to the figures its comment
// gives: the USGS/APHA sea-level values and those at Gyantse's altitude.
func TestDOSaturationUSGSForm(t *testing.T) {
	for _, c := range []struct{ temp, elev, want float64 }{
		{0, 0, 14.621}, {10, 0, 11.288}, {20, 0, 9.092},
		{0, 4030, 8.828}, {10, 4030, 6.788}, {20, 4030, 5.427},
	} {
		if got := DOSaturation(c.temp, c.elev); math.Abs(got-c.want) > 0.0006 {
			t.Errorf("DOSaturation(%g °C, %g m) = %.4f, want %.3f", c.temp, c.elev, got, c.want)
		}
	}
}

func TestRoundForEvaluation(t *testing.T) {
	for _, c := range []struct {
		code    string
		v, want float64
	}{
		{"nh3n_mgl", 0.155, 0.16}, // tie, 5 odd: up
		{"nh3n_mgl", 0.145, 0.14}, // tie, 4 even: down
		{"nh3n_mgl", 0.1451, 0.15},
		{"nh3n_mgl", 0.125, 0.12},
		{"tp_mgl", 0.0205, 0.020},
		{"tp_mgl", 0.0215, 0.022},
		{"do_mgl", 7.45, 7.4},
		{"do_mgl", 7.46, 7.5},
		{"codmn_mgl", 2.05, 2.0},
		{"ph", 9.4, 9},
		{"ph", 9.5, 10},
		{"ph", 8.5, 8},
		{"turb_ntu", 12.345, 12.345}, // not graded
	} {
		if got := RoundForEvaluation(c.code, c.v); got != c.want {
			t.Errorf("RoundForEvaluation(%s, %v) = %v, want %v", c.code, c.v, got, c.want)
		}
	}
	// Graded on the rounded value: NH3-N 0.154 is 0.15, Class I; TP 0.0204
	// is 0.020, Class I; pH 9.4 is 9, inside 6–9.
	for _, c := range []struct {
		code  string
		v     float64
		class int
	}{{"nh3n_mgl", 0.154, 1}, {"nh3n_mgl", 0.155, 2}, {"tp_mgl", 0.0204, 1}, {"ph", 9.4, 1}, {"ph", 9.6, Class6}} {
		if got, _ := ItemClass(c.code, c.v, Conditions{WaterTempC: math.NaN()}); got != c.class {
			t.Errorf("ItemClass(%s, %v) = %d, want %d", c.code, c.v, got, c.class)
		}
	}
}
