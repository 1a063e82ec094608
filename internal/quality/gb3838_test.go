package quality

import (
	"math"
	"testing"
)

// TestItemClassAtEveryBoundary: exactly at a limit, just below and just
// above, for every graded item and class (GB 3838-2002 Table 1; a value
// equal to a limit belongs to that class).
func TestItemClassAtEveryBoundary(t *testing.T) {
	noTemp := Conditions{WaterTempC: math.NaN()}
	for code, item := range gb3838 {
		for i, lim := range item.limits {
			class := i + 1
			eps := lim * 1e-6
			better, worse := lim-eps, lim+eps
			if item.minimum {
				better, worse = lim+eps, lim-eps
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
	}{{6, 1}, {9, 1}, {5.99, 6}, {9.01, 6}, {8.3, 1}} {
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
	if got, _ := ItemClass("do_mgl", 0.9*sat, at); got != 1 {
		t.Errorf("90 %% saturation: class %d, want 1", got)
	}
	if got, _ := ItemClass("do_mgl", 0.89*sat, at); got != 2 {
		t.Errorf("89 %% saturation (%.2f mg/L): class %d, want 2", 0.89*sat, got)
	}
	if got, _ := ItemClass("do_mgl", sat, Conditions{WaterTempC: math.NaN(), ElevationM: 4000}); got != 2 {
		t.Errorf("no temperature: class %d, want 2 (mg/L limits only)", got)
	}
}
