// Package registry loads the station registry (CONTRACT §9): the rivers, the
// monitoring sections on them, what each section reports, its limits for
// alert rules, its QC settings and its stage–discharge rating curves. Loading
// is strict and reports every problem with its file and line at once.
package registry

import (
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

// Registry is the loaded station registry.
type Registry struct {
	Rivers   []River   `yaml:"rivers"`
	Stations []Station `yaml:"stations"`
	// QCBlocks holds named QC settings for YAML anchors; stations refer to
	// them with aliases, rivermon reads them only through the stations.
	QCBlocks map[string]QC `yaml:"qc_blocks"`

	rivers   map[string]*River
	stations map[string]*Station
	byMN     map[string]*Station
	bySL651  map[string]*Station // by upper-case address
}

// River is one river of the registry.
type River struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	NameEN string `yaml:"name_en"`
}

// Station is one monitoring section.
type Station struct {
	ID         string              `yaml:"id"`
	Name       string              `yaml:"name"`
	NameEN     string              `yaml:"name_en"`
	River      string              `yaml:"river"`
	County     string              `yaml:"county"`
	Lat        float64             `yaml:"lat"`
	Lon        float64             `yaml:"lon"`
	ElevationM float64             `yaml:"elevation_m"`
	Params     []string            `yaml:"params"`
	Interval   strictyaml.Duration `yaml:"interval"`
	Limits     map[string]float64  `yaml:"limits"`
	QC         map[string]QC       `yaml:"qc"`
	Rating     []Rating            `yaml:"rating"`
	// Shifts are stage offsets over periods, applied before the rating
	// curve in force (hydro.RatedFlow); they do not overlap.
	Shifts  []Shift `yaml:"shifts"`
	HJ212MN string  `yaml:"hj212_mn"`
	// HJ212CRC is the CRC variant of the station's HJ 212 frames,
	// hj212.CRCVariantHJ212 (when not set) or hj212.CRCVariantModbus.
	HJ212CRC string `yaml:"hj212_crc"`
	// HJ212PW, when set, is the PW every HJ 212 packet of the station must
	// carry.
	HJ212PW string `yaml:"hj212_pw"`
	// SL651Address is the address of the station's SL 651-2014 RTU as it
	// appears in frames: 10 hex digits (5 bytes), upper-case once loaded.
	SL651Address string `yaml:"sl651_address"`
	// SL651Password, when set, is the password every SL 651 frame of the
	// station must carry: 4 hex digits (2 bytes), upper-case once loaded.
	SL651Password string `yaml:"sl651_password"`
	// SL651LevelBase, when set, is the RTU's water-level base (水位基值):
	// the relative levels of its 5-minute arrays (DRZ1) are added to it.
	SL651LevelBase *float64 `yaml:"sl651_level_base_m"`
	Sim            *Sim     `yaml:"sim"`
	params         map[string]bool
}

// QC holds the QARTOD test settings of one parameter at one station. A nil
// test is not run.
type QC struct {
	GrossRange   *GrossRange   `yaml:"gross_range"`
	Spike        *Spike        `yaml:"spike"`
	RateOfChange *RateOfChange `yaml:"rate_of_change"`
	FlatLine     *FlatLine     `yaml:"flat_line"`
}

// GrossRange: outside Fail (the sensor span) fails, outside Suspect (the
// expected span) is suspect. Each is [min, max].
type GrossRange struct {
	Fail    []float64 `yaml:"fail"`
	Suspect []float64 `yaml:"suspect"`
}

// Spike thresholds, in the parameter's unit. SkipMonths (1–12, local
// time) turns the test off, e.g. in the ice season when ice moves the gauge.
type Spike struct {
	Suspect    float64 `yaml:"suspect"`
	Fail       float64 `yaml:"fail"`
	SkipMonths []int   `yaml:"skip_months"`
}

// RateOfChange threshold in the parameter's unit per hour.
type RateOfChange struct {
	SuspectPerHour float64 `yaml:"suspect_per_hour"`
}

// FlatLine: a value unchanged within Tolerance for Suspect (Fail) is suspect
// (fails). SkipBelow turns the test off while the value is below it (ice:
// water at 0 °C is really flat). Winter gives longer windows for the ice
// months, when a stage under ice cover moves little for days: the test is
// never off for a season, so a stuck sensor is found in any month.
type FlatLine struct {
	Suspect   strictyaml.Duration `yaml:"suspect"`
	Fail      strictyaml.Duration `yaml:"fail"`
	Tolerance float64             `yaml:"tolerance"`
	SkipBelow *float64            `yaml:"skip_below"`
	Winter    *FlatLineWinter     `yaml:"winter"`
}

// FlatLineWinter holds the flat-line windows of the ice months (1–12, local
// time).
type FlatLineWinter struct {
	Months  []int               `yaml:"months"`
	Suspect strictyaml.Duration `yaml:"suspect"`
	Fail    strictyaml.Duration `yaml:"fail"`
}

// Windows returns the suspect and fail windows in force in the local month.
func (fl *FlatLine) Windows(month time.Month) (suspect, fail time.Duration) {
	if w := fl.Winter; w != nil && slices.Contains(w.Months, int(month)) {
		return time.Duration(w.Suspect), time.Duration(w.Fail)
	}
	return time.Duration(fl.Suspect), time.Duration(fl.Fail)
}

// Longest is the longest fail window of any month.
func (fl *FlatLine) Longest() time.Duration {
	d := time.Duration(fl.Fail)
	if fl.Winter != nil {
		d = max(d, time.Duration(fl.Winter.Fail))
	}
	return d
}

// Rating is one version of a station's stage–discharge relation, valid from
// ValidFrom until the next version.
type Rating struct {
	ValidFrom time.Time `yaml:"valid_from"`
	Segments  []Segment `yaml:"segments"`
}

// Segment is Q = C·(h − E)^B for HMin ≤ h < HMax.
type Segment struct {
	HMin float64 `yaml:"h_min"`
	HMax float64 `yaml:"h_max"`
	C    float64 `yaml:"c"`
	E    float64 `yaml:"e"`
	B    float64 `yaml:"b"`
}

// Shift is a stage correction over a period (a USGS shift, the corrected-
// stage method 改正水位法 of Chinese practice; domain.md §5.2): for sample
// times From ≤ t < To the rating curve is entered with the effective stage
// h + DH instead of the gauge's h. A zero To leaves the shift open-ended.
type Shift struct {
	From time.Time `yaml:"from"`
	To   time.Time `yaml:"to"`
	DH   float64   `yaml:"dh"`
}

// Covers tells whether the shift is in force at t.
func (sh *Shift) Covers(t time.Time) bool {
	return !t.Before(sh.From) && (sh.To.IsZero() || t.Before(sh.To))
}

// overlaps tells whether two shifts are in force at some common time.
func (sh *Shift) overlaps(o *Shift) bool {
	return (o.To.IsZero() || sh.From.Before(o.To)) && (sh.To.IsZero() || o.From.Before(sh.To))
}

// Sim holds what the simulator needs to make a plausible signal for a
// station; rivermon ignores it.
type Sim struct {
	MeanFlowM3s float64 `yaml:"mean_flow_m3s"`
	GlacierFed  bool    `yaml:"glacier_fed"`
}

// Reports tells whether the station lists code among its params.
func (s *Station) Reports(code string) bool { return s.params[code] }

// Station returns the station with id, or nil.
func (r *Registry) Station(id string) *Station { return r.stations[id] }

// StationByMN returns the station whose HJ 212 MN is mn, or nil.
func (r *Registry) StationByMN(mn string) *Station { return r.byMN[mn] }

// StationBySL651Address returns the station whose SL 651 address is addr,
// in either case, or nil.
func (r *Registry) StationBySL651Address(addr string) *Station {
	return r.bySL651[strings.ToUpper(addr)]
}

// River returns the river with id, or nil.
func (r *Registry) River(id string) *River { return r.rivers[id] }

// LoadFile reads and validates the registry at path.
func LoadFile(path string) (*Registry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read station registry: %w", err)
	}
	return Load(path, data)
}

var limitNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Load parses and validates a registry; file names the source in problems.
// The error, when not nil, is a strictyaml.Problems with every problem found.
func Load(file string, data []byte) (*Registry, error) {
	r := &Registry{}
	root, ps := strictyaml.Decode(file, data, r)
	if root == nil {
		return nil, ps.Err()
	}
	riversNode := strictyaml.Lookup(root, "rivers")
	stationsNode := strictyaml.Lookup(root, "stations")
	node := func(list *yaml.Node, i int) *yaml.Node {
		if list == nil || list.Kind != yaml.SequenceNode || i >= len(list.Content) {
			return root
		}
		return list.Content[i]
	}
	if len(ps) > 0 {
		// Type errors leave fields half-filled; further checks would only
		// add noise.
		return nil, ps.Err()
	}
	if len(r.Rivers) == 0 {
		ps.Add(file, strictyaml.Line(root, "rivers"), "no rivers listed")
	}
	if len(r.Stations) == 0 {
		ps.Add(file, strictyaml.Line(root, "stations"), "no stations listed")
	}
	r.rivers = map[string]*River{}
	for i := range r.Rivers {
		rv, n := &r.Rivers[i], node(riversNode, i)
		switch {
		case !reading.ValidStationID(rv.ID):
			ps.Add(file, strictyaml.Line(n, "id"), "river id %q: use lower-case letters, digits and -", rv.ID)
		case r.rivers[rv.ID] != nil:
			ps.Add(file, strictyaml.Line(n, "id"), "duplicate river id %q", rv.ID)
		}
		if rv.Name == "" {
			ps.Add(file, n.Line, "river %q: name is missing", rv.ID)
		}
		r.rivers[rv.ID] = rv
	}
	r.stations = map[string]*Station{}
	r.byMN = map[string]*Station{}
	r.bySL651 = map[string]*Station{}
	for i := range r.Stations {
		s, n := &r.Stations[i], node(stationsNode, i)
		r.validateStation(file, s, n, &ps)
		if s.ID != "" && r.stations[s.ID] == nil {
			r.stations[s.ID] = s
		}
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) validateStation(file string, s *Station, n *yaml.Node, ps *strictyaml.Problems) {
	at := func(key string) int { return strictyaml.Line(n, key) }
	id := s.ID
	switch {
	case id == "":
		ps.Add(file, n.Line, "station without id")
		id = fmt.Sprintf("(station at line %d)", n.Line)
	case !reading.ValidStationID(id):
		ps.Add(file, at("id"), "station id %q: use lower-case letters, digits and -", id)
	case id == "rivermon" || strings.HasPrefix(id, "rivermon-"):
		// The id is also the station's MQTT user name (and so its client
		// id); rivermon's own users, rivermon-1, rivermon-a, …, have wider
		// rights (configs/mosquitto/acl).
		ps.Add(file, at("id"), "station id %q is reserved for rivermon's MQTT users (rivermon, rivermon-*)", id)
	case r.stations[id] != nil:
		ps.Add(file, at("id"), "duplicate station id %q", id)
	}
	if s.Name == "" {
		ps.Add(file, n.Line, "station %s: name is missing", id)
	}
	if s.NameEN == "" {
		ps.Add(file, n.Line, "station %s: name_en is missing", id)
	}
	if s.River == "" {
		ps.Add(file, n.Line, "station %s: river is missing", id)
	} else if r.rivers[s.River] == nil {
		ps.Add(file, at("river"), "station %s: unknown river %q", id, s.River)
	}
	if strictyaml.Lookup(n, "lat") == nil || strictyaml.Lookup(n, "lon") == nil {
		ps.Add(file, n.Line, "station %s: lat and lon are required", id)
	}
	if s.Lat < -90 || s.Lat > 90 || math.IsNaN(s.Lat) {
		ps.Add(file, at("lat"), "station %s: lat %g is not between -90 and 90", id, s.Lat)
	}
	if s.Lon < -180 || s.Lon > 180 || math.IsNaN(s.Lon) {
		ps.Add(file, at("lon"), "station %s: lon %g is not between -180 and 180", id, s.Lon)
	}
	if s.ElevationM < -500 || s.ElevationM > 9000 {
		ps.Add(file, at("elevation_m"), "station %s: elevation_m %g is not between -500 and 9000", id, s.ElevationM)
	}
	if len(s.Params) == 0 {
		ps.Add(file, at("params"), "station %s: params is empty", id)
	}
	s.params = map[string]bool{}
	for _, p := range s.Params {
		if !reading.IsParam(p) {
			ps.Add(file, at("params"), "station %s: unknown parameter code %q", id, p)
		}
		if s.params[p] {
			ps.Add(file, at("params"), "station %s: parameter %q listed twice", id, p)
		}
		s.params[p] = true
	}
	if s.Interval <= 0 {
		ps.Add(file, at("interval"), "station %s: interval must be a positive duration such as 5m", id)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Limits)) {
		v := s.Limits[k]
		if !limitNameRE.MatchString(k) {
			ps.Add(file, at("limits"), "station %s: limit name %q: use lower-case snake_case", id, k)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			ps.Add(file, at("limits"), "station %s: limit %s is not a finite number", id, k)
		}
	}
	if c, ok := s.Limits["wq_target_class"]; ok && (c != math.Trunc(c) || c < 1 || c > 5) {
		ps.Add(file, at("limits"), "station %s: wq_target_class %g is not a class 1 to 5", id, c)
	}
	if w, ok := s.Limits["level_warning_m"]; ok {
		if c, ok := s.Limits["level_critical_m"]; ok && c <= w {
			ps.Add(file, at("limits"), "station %s: level_critical_m %g is not above level_warning_m %g", id, c, w)
		}
	}
	qcNode := strictyaml.Lookup(n, "qc")
	for _, code := range slices.Sorted(maps.Keys(s.QC)) {
		line := strictyaml.Line(qcNode, code)
		if !reading.IsParam(code) {
			ps.Add(file, line, "station %s: qc for unknown parameter code %q", id, code)
			continue
		}
		validateQC(file, line, id, code, s.QC[code], ps)
	}
	ratingNode := strictyaml.Lookup(n, "rating")
	for i, rt := range s.Rating {
		line := at("rating")
		if ratingNode != nil && i < len(ratingNode.Content) {
			line = ratingNode.Content[i].Line
		}
		if rt.ValidFrom.IsZero() {
			ps.Add(file, line, "station %s: rating %d has no valid_from", id, i)
		}
		if i > 0 && !rt.ValidFrom.After(s.Rating[i-1].ValidFrom) {
			ps.Add(file, line, "station %s: rating %d valid_from is not after the previous version's", id, i)
		}
		if len(rt.Segments) == 0 {
			ps.Add(file, line, "station %s: rating %d has no segments", id, i)
		}
		for j, sg := range rt.Segments {
			switch {
			case !(sg.HMin < sg.HMax):
				ps.Add(file, line, "station %s: rating %d segment %d: h_min %g is not below h_max %g", id, i, j, sg.HMin, sg.HMax)
			case sg.C <= 0 || sg.B <= 0:
				ps.Add(file, line, "station %s: rating %d segment %d: c and b must be positive", id, i, j)
			case sg.E > sg.HMin:
				ps.Add(file, line, "station %s: rating %d segment %d: zero-flow stage e %g is above h_min %g", id, i, j, sg.E, sg.HMin)
			}
			if j > 0 && sg.HMin != rt.Segments[j-1].HMax {
				ps.Add(file, line, "station %s: rating %d segment %d: h_min %g does not continue the previous h_max %g", id, i, j, sg.HMin, rt.Segments[j-1].HMax)
			}
		}
	}
	if len(s.Rating) > 0 && !s.params["level_m"] {
		ps.Add(file, at("rating"), "station %s: has a rating curve but does not report level_m", id)
	}
	validateShifts(file, id, s, strictyaml.Lookup(n, "shifts"), at, ps)
	if s.HJ212MN != "" {
		if other := r.byMN[s.HJ212MN]; other != nil {
			ps.Add(file, at("hj212_mn"), "station %s: hj212_mn %q is already station %s's", id, s.HJ212MN, other.ID)
		} else {
			r.byMN[s.HJ212MN] = s
		}
	}
	r.validateHJ212(file, id, s, at, ps)
	r.validateSL651(file, id, s, at, ps)
}

// validateShifts checks a station's shifts: each with a from, a to (when
// set) after it, a finite dh, none overlapping another, and a rating curve
// for them to shift.
func validateShifts(file, id string, s *Station, list *yaml.Node, at func(string) int, ps *strictyaml.Problems) {
	line := func(i int) int {
		if list != nil && i < len(list.Content) {
			return list.Content[i].Line
		}
		return at("shifts")
	}
	if len(s.Shifts) > 0 && len(s.Rating) == 0 {
		ps.Add(file, at("shifts"), "station %s: has shifts but no rating curve to shift", id)
	}
	for i := range s.Shifts {
		sh := &s.Shifts[i]
		switch {
		case sh.From.IsZero():
			ps.Add(file, line(i), "station %s: shift %d has no from", id, i)
			continue
		case !sh.To.IsZero() && !sh.To.After(sh.From):
			ps.Add(file, line(i), "station %s: shift %d: to %s is not after from %s", id, i, sh.To.Format(time.RFC3339), sh.From.Format(time.RFC3339))
			continue
		}
		if math.IsNaN(sh.DH) || math.IsInf(sh.DH, 0) {
			ps.Add(file, line(i), "station %s: shift %d: dh is not a finite number", id, i)
		}
		for j := range i {
			o := &s.Shifts[j]
			if o.From.IsZero() || (!o.To.IsZero() && !o.To.After(o.From)) {
				continue
			}
			if sh.overlaps(o) {
				ps.Add(file, line(i), "station %s: shift %d overlaps shift %d (line %d): a stage has one shift at a time", id, i, j, line(j))
			}
		}
	}
}

// mnRE is an MN: HJ 212-2017 Table 3 gives 24 hex characters of an EPC-96
// code; letters beyond F are taken, as station numbers such as
// 540200000000000000SGX002 use them.
var mnRE = regexp.MustCompile(`^[0-9A-Za-z]{24}$`)

// validateHJ212 checks the keys of a station's HJ 212 analyser.
func (r *Registry) validateHJ212(file, id string, s *Station, at func(string) int, ps *strictyaml.Problems) {
	if s.HJ212MN != "" && !mnRE.MatchString(s.HJ212MN) {
		ps.Add(file, at("hj212_mn"), "station %s: hj212_mn %q: want 24 letters and digits (HJ 212-2017 Table 3)", id, s.HJ212MN)
	}
	switch s.HJ212CRC {
	case "":
		s.HJ212CRC = hj212.CRCVariantHJ212
	case hj212.CRCVariantHJ212, hj212.CRCVariantModbus:
		if s.HJ212MN == "" {
			ps.Add(file, at("hj212_crc"), "station %s: hj212_crc is set but hj212_mn is not", id)
		}
	default:
		ps.Add(file, at("hj212_crc"), "station %s: hj212_crc %q: want %s (the default) or %s", id, s.HJ212CRC, hj212.CRCVariantHJ212, hj212.CRCVariantModbus)
	}
	if s.HJ212PW != "" {
		// The password is not repeated in the problem: check output ends
		// up in logs.
		switch {
		case !validPW(s.HJ212PW):
			ps.Add(file, at("hj212_pw"), "station %s: hj212_pw must be 1 to 6 printable ASCII characters without space, ';', ',', '=' or '&' (HJ 212-2017 Table 3)", id)
		case s.HJ212MN == "":
			ps.Add(file, at("hj212_pw"), "station %s: hj212_pw is set but hj212_mn is not", id)
		}
	}
}

var (
	sl651AddressRE  = regexp.MustCompile(`^[0-9A-Fa-f]{10}$`)
	sl651PasswordRE = regexp.MustCompile(`^[0-9A-Fa-f]{4}$`)
)

// validateSL651 checks the keys of a station's SL 651 RTU (SL 651-2014
// §6.2.3: a 5-byte address, a 2-byte password) and stores them upper-case.
func (r *Registry) validateSL651(file, id string, s *Station, at func(string) int, ps *strictyaml.Problems) {
	if addr := s.SL651Address; addr != "" {
		s.SL651Address = strings.ToUpper(addr)
		switch other := r.bySL651[s.SL651Address]; {
		case !sl651AddressRE.MatchString(addr):
			ps.Add(file, at("sl651_address"), "station %s: sl651_address %q: want 10 hex digits (5 bytes, SL 651-2014 §6.2.3)", id, addr)
		case other != nil:
			ps.Add(file, at("sl651_address"), "station %s: sl651_address %q is already station %s's", id, s.SL651Address, other.ID)
		default:
			r.bySL651[s.SL651Address] = s
		}
	}
	if s.SL651Password != "" {
		s.SL651Password = strings.ToUpper(s.SL651Password)
		// The password is not repeated in the problem, as hj212_pw.
		switch {
		case !sl651PasswordRE.MatchString(s.SL651Password):
			ps.Add(file, at("sl651_password"), "station %s: sl651_password must be 4 hex digits (2 bytes, SL 651-2014 §6.2.3)", id)
		case s.SL651Address == "":
			ps.Add(file, at("sl651_password"), "station %s: sl651_password is set but sl651_address is not", id)
		}
	}
}

// validPW reports whether pw can stand in a data segment as PW=…; (HJ
// 212-2017 Table 3: 6 characters): printable ASCII, none of the segment's
// separators.
func validPW(pw string) bool {
	if len(pw) < 1 || len(pw) > 6 {
		return false
	}
	for i := 0; i < len(pw); i++ {
		if c := pw[i]; c <= ' ' || c > '~' || strings.IndexByte(";,=&", c) >= 0 {
			return false
		}
	}
	return true
}

func validateQC(file string, line int, id, code string, q QC, ps *strictyaml.Problems) {
	if g := q.GrossRange; g != nil {
		for name, span := range map[string][]float64{"fail": g.Fail, "suspect": g.Suspect} {
			if span != nil && (len(span) != 2 || !(span[0] < span[1])) {
				ps.Add(file, line, "station %s: qc %s gross_range.%s must be [min, max] with min < max", id, code, name)
			}
		}
	}
	if sp := q.Spike; sp != nil && (sp.Suspect <= 0 || sp.Fail < sp.Suspect) {
		ps.Add(file, line, "station %s: qc %s spike needs 0 < suspect <= fail", id, code)
	}
	if rc := q.RateOfChange; rc != nil && rc.SuspectPerHour <= 0 {
		ps.Add(file, line, "station %s: qc %s rate_of_change.suspect_per_hour must be positive", id, code)
	}
	if fl := q.FlatLine; fl != nil && (fl.Suspect <= 0 || fl.Fail < fl.Suspect || fl.Tolerance < 0) {
		ps.Add(file, line, "station %s: qc %s flat_line needs 0 < suspect <= fail and tolerance >= 0", id, code)
	}
	if fl := q.FlatLine; fl != nil && fl.Winter != nil {
		w := fl.Winter
		if w.Suspect <= 0 || w.Fail < w.Suspect || len(w.Months) == 0 {
			ps.Add(file, line, "station %s: qc %s flat_line.winter needs months and 0 < suspect <= fail", id, code)
		}
		for _, m := range w.Months {
			if m < 1 || m > 12 {
				ps.Add(file, line, "station %s: qc %s flat_line.winter.months: %d is not a month 1 to 12", id, code, m)
			}
		}
	}
	if q.Spike != nil {
		for _, m := range q.Spike.SkipMonths {
			if m < 1 || m > 12 {
				ps.Add(file, line, "station %s: qc %s spike.skip_months: %d is not a month 1 to 12", id, code, m)
			}
		}
	}
}
