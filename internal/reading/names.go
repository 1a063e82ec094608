package reading

import "time"

// Derived fields rivermon stores beside a sample's values (CONTRACT §6).
const (
	FieldFlowRated = "flow_rated_m3s"
	FieldWQClass   = "wq_class"
)

// Zone is China Standard Time, UTC+8 all year (no daylight saving since
// 1991): the local time of HJ 212 and SL 651 clocks, of the
// ecological-flow days, and of the simulated stations. It is fixed rather
// than loaded, so that a server without tzdata reads the same times.
var Zone = time.FixedZone("CST", 8*3600)
