package quality

import (
	"math"
	"strconv"
	"strings"
)

// Class6 is "worse than Class V" (劣V), the reporting class for a value
// beyond the Class V limit.
const Class6 = 6

// gb3838 holds the Class I–V limits of the basic items that online river
// stations measure, from GB 3838-2002 Table 1 (地表水环境质量标准基本项目
// 标准限值), river values (domain.md §2.2). For "max" items a value equal to
// a limit belongs to that class; dissolved oxygen is a minimum.
// decimals is how many decimals a value keeps for the evaluation (see
// evalDecimals).
var gb3838 = map[string]struct {
	limits   [5]float64
	minimum  bool
	decimals int
}{
	"do_mgl":    {limits: [5]float64{7.5, 6, 5, 3, 2}, minimum: true, decimals: 1},
	"codmn_mgl": {limits: [5]float64{2, 4, 6, 10, 15}, decimals: 1},
	"nh3n_mgl":  {limits: [5]float64{0.15, 0.5, 1.0, 1.5, 2.0}, decimals: 2},
	"tp_mgl":    {limits: [5]float64{0.02, 0.1, 0.2, 0.3, 0.4}, decimals: 3}, // rivers (lakes and reservoirs have lower limits)
}

// phDecimals: pH is evaluated on whole numbers.
const phDecimals = 0

// RoundForEvaluation rounds v as China's surface-water evaluation does
// before a value is graded: to the item's evaluation decimals (pH 0, DO 1,
// CODMn 1, NH3-N 2, TP 3), half to even (四舍六入五成双, GB/T 8170). The
// decimals are those of 《地表水环境质量监测数据统计技术规定（试行）》
// (China National Environmental Monitoring Centre, 2020), as applied by
// surface-water station software (domain.md §2.4). The rounding is done on
// the value's shortest decimal form, so 0.125 is a tie (0.12) although its
// binary double is not. Codes without limits are returned unchanged.
func RoundForEvaluation(code string, v float64) float64 {
	d := phDecimals
	if code != "ph" {
		item, ok := gb3838[code]
		if !ok {
			return v
		}
		d = item.decimals
	}
	return roundHalfEven(v, d)
}

// roundHalfEven rounds the shortest decimal form of v to d decimals, a tie
// going to the even digit.
func roundHalfEven(v float64, d int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', -1, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) <= d {
		return v
	}
	kept, rest := intPart+frac[:d], frac[d:]
	up := rest[0] > '5' || (rest[0] == '5' && (strings.TrimRight(rest[1:], "0") != "" || (kept[len(kept)-1]-'0')%2 == 1))
	n, err := strconv.ParseUint(kept, 10, 64)
	if err != nil {
		return v // more digits than an integer holds: nothing to round at this scale
	}
	if up {
		n++
	}
	r := float64(n) / math.Pow10(d)
	if v < 0 {
		r = -r
	}
	return r
}

// gradedCodes are the items that decide a section's class, in the order
// reports list them: pH (6–9 in every class) and the items of gb3838.
var gradedCodes = []string{"ph", "do_mgl", "codmn_mgl", "nh3n_mgl", "tp_mgl"}

// GradedCodes returns the graded items: pH first, then those with class
// limits (ClassLimit).
func GradedCodes() []string { return append([]string(nil), gradedCodes...) }

// Graded reports whether code is graded by GB 3838 in rivermon. Total
// nitrogen is evaluated for lakes and reservoirs only, and water temperature
// by a rule on man-made change that one sensor cannot judge (domain.md §2.3).
func Graded(code string) bool {
	_, ok := gb3838[code]
	return ok || code == "ph"
}

// ClassLimit returns the limit of class (1–5) for code: the maximum, or for
// dissolved oxygen the minimum. ok is false for items without limits.
func ClassLimit(code string, class int) (limit float64, ok bool) {
	item, found := gb3838[code]
	if !found || class < 1 || class > 5 {
		return 0, false
	}
	return item.limits[class-1], true
}

// Conditions are what the dissolved-oxygen Class I test needs beyond the
// concentration: the water temperature of the sample (NaN when not
// measured) and the station's elevation.
type Conditions struct {
	WaterTempC float64
	ElevationM float64
}

// ItemClass is the class of one value, rounded for the evaluation
// (RoundForEvaluation): the smallest class whose limit it meets, Class6
// beyond Class V. pH meets every class inside 6–9 and is
// Class6 outside it. Dissolved oxygen meets Class I at 7.5 mg/L or at 90 %
// saturation (GB 3838-2002 Table 1: 饱和率 90 % (或 7.5)); saturation is
// computed from the water temperature and the pressure at the station's
// altitude, because at 4,000 m saturated water holds less than 7.5 mg/L
// above about 4 °C (docs/HYDROLOGY.md).
func ItemClass(code string, v float64, c Conditions) (int, bool) {
	v = RoundForEvaluation(code, v)
	if code == "ph" {
		if v < 6 || v > 9 {
			return Class6, true
		}
		return 1, true
	}
	item, ok := gb3838[code]
	if !ok {
		return 0, false
	}
	if item.minimum && !math.IsNaN(c.WaterTempC) && v >= 0.9*DOSaturation(c.WaterTempC, c.ElevationM) {
		return 1, true
	}
	for i, lim := range item.limits {
		if (item.minimum && v >= lim) || (!item.minimum && v <= lim) {
			return i + 1, true
		}
	}
	return Class6, true
}

// DOSaturation is the dissolved-oxygen saturation of fresh water in mg/L at
// temperature c (°C) and altitude h (m), in the form of the USGS tables and
// APHA Standard Methods 4500-O (Benson and Krause, 1984):
//
//	ln C₀ = −139.34411 + 1.575701e5/T − 6.642308e7/T² + 1.243800e10/T³ − 8.621949e11/T⁴
//	C = C₀ · P · (1 − Pwv/P)(1 − θP) / ((1 − Pwv)(1 − θ))
//
// with T in kelvin, C₀ the saturation at 1 atm (14.621, 11.288 and 9.092
// mg/L at 0, 10 and 20 °C), P the pressure in atm, here the ISA pressure
// at the station's altitude (1 − 2.25577e−5·h)^5.25588, Pwv the water
// vapour pressure in atm, ln Pwv = 11.8571 − 3840.70/T − 216961/T², and
// θ = 0.000975 − 1.426e−5·c + 6.436e−8·c². At 4,030 m (Gyantse) it gives
// 8.828, 6.788 and 5.427 mg/L at 0, 10 and 20 °C: the water-vapour term
// lowers the simple pressure ratio's figures by about 0.6 %.
func DOSaturation(c, h float64) float64 {
	t := c + 273.15
	c0 := math.Exp(-139.34411 + 1.575701e5/t - 6.642308e7/(t*t) + 1.243800e10/(t*t*t) - 8.621949e11/(t*t*t*t))
	p := math.Pow(1-2.25577e-5*h, 5.25588)
	pwv := math.Exp(11.8571 - 3840.70/t - 216961/(t*t))
	theta := 0.000975 - 1.426e-5*c + 6.436e-8*c*c
	return c0 * p * (1 - pwv/p) * (1 - theta*p) / ((1 - pwv) * (1 - theta))
}
