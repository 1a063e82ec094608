package quality

import "math"

// Class6 is "worse than Class V" (劣V), the reporting class for a value
// beyond the Class V limit.
const Class6 = 6

// gb3838 holds the Class I–V limits of the basic items that online river
// stations measure, from GB 3838-2002 Table 1 (地表水环境质量标准基本项目
// 标准限值), river values (domain.md §2.2). For "max" items a value equal to
// a limit belongs to that class; dissolved oxygen is a minimum.
var gb3838 = map[string]struct {
	limits  [5]float64
	minimum bool
}{
	"do_mgl":    {limits: [5]float64{7.5, 6, 5, 3, 2}, minimum: true},
	"codmn_mgl": {limits: [5]float64{2, 4, 6, 10, 15}},
	"nh3n_mgl":  {limits: [5]float64{0.15, 0.5, 1.0, 1.5, 2.0}},
	"tp_mgl":    {limits: [5]float64{0.02, 0.1, 0.2, 0.3, 0.4}}, // rivers (lakes and reservoirs have lower limits)
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

// ItemClass is the class of one value: the smallest class whose limit it
// meets, Class6 beyond Class V. pH meets every class inside 6–9 and is
// Class6 outside it. Dissolved oxygen meets Class I at 7.5 mg/L or at 90 %
// saturation (GB 3838-2002 Table 1: 饱和率 90 % (或 7.5)); saturation is
// computed from the water temperature and the pressure at the station's
// altitude, because at 4,000 m saturated water holds less than 7.5 mg/L
// above about 4 °C (docs/HYDROLOGY.md).
func ItemClass(code string, v float64, c Conditions) (int, bool) {
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
// temperature c (°C) and altitude h (m): the sea-level curve (APHA; 14.62,
// 11.29 and 9.09 mg/L at 0, 10, 20 °C) scaled by the ISA barometric pressure
// ratio (1 − 2.25577e−5·h)^5.25588. Within about 1 % of the table of
// domain.md §7.6 at Shigatse altitudes.
func DOSaturation(c, h float64) float64 {
	sea := 14.652 - 0.41022*c + 0.0079910*c*c - 0.000077774*c*c*c
	return sea * math.Pow(1-2.25577e-5*h, 5.25588)
}
