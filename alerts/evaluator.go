package alerts

import (
	"maps"
	"slices"
	"sync"
	"text/template"
	"time"

	"github.com/rivermon/rivermon/internal/quality"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Alert states (Prometheus rules/alerting.go).
const (
	StateInactive = "inactive"
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// qcFail is the QARTOD fail flag: a failed value does not move a threshold
// alert (SensorFault reports it instead).
const qcFail = int(quality.Fail)

// Value is one observed value and its QC flag.
type Value = reading.ObservedValue

// Sample is what the evaluator sees of one stored sample (the stream's
// output, unconverted). A sample without values is only a sign of life of
// its station.
type Sample = reading.Observed

// numCodes is how many codes codeID numbers.
const numCodes = reading.NumParams + 5

// codeID numbers the codes a sample may carry (the contract's parameters
// in their order, then the derived flow_rated_m3s and wq_class and the
// device-health values), so that an instance finds its value in a sample
// by index rather than by comparing its code with each of the sample's;
// -1 for any other code.
func codeID(code string) int {
	if i := reading.ParamIndex(code); i >= 0 {
		return i
	}
	switch code {
	case reading.FieldFlowRated:
		return reading.NumParams
	case reading.FieldWQClass:
		return reading.NumParams + 1
	case "battery_v":
		return reading.NumParams + 2
	case "signal_dbm":
		return reading.NumParams + 3
	case "enclosure_temp_c":
		return reading.NumParams + 4
	}
	return -1
}

// valueIndex is where a sample holds the value of each code: index + 1,
// 0 when it has none.
type valueIndex [numCodes]uint8

func (x *valueIndex) build(s *Sample) bool {
	*x = valueIndex{}
	if len(s.Values) > 255 {
		return false
	}
	for i, v := range s.Values {
		if id := codeID(v.Code); id >= 0 && x[id] == 0 {
			x[id] = uint8(i + 1)
		}
	}
	return true
}

// valueOf is the sample's value of code.
func valueOf(s *Sample, code string) (Value, bool) {
	for _, v := range s.Values {
		if v.Code == code {
			return v, true
		}
	}
	return Value{}, false
}

// Transition is an alert instance changing state, for the history and the
// notifiers.
type Transition struct {
	Alert  Alert
	State  string // StatePending is not reported; firing or resolved
	Value  float64
	Thresh float64
	// Notify is false when the sample behind the change is older than
	// max_sample_age: history only, nobody is paged.
	Notify bool
	At     time.Time // sample time of the change
}

// instance is the state of one (rule, station, param) alert.
type instance struct {
	rule      *Rule
	station   *registry.Station
	param     string
	State     string    `json:"state"`
	ActiveAt  time.Time `json:"active_at"`  // sample time the condition began (pending)
	StartsAt  time.Time `json:"starts_at"`  // sample time it fired
	EndsAt    time.Time `json:"ends_at"`    // sample or wall time it resolved
	LastEval  time.Time `json:"last_eval"`  // newest sample time evaluated
	LastValue float64   `json:"last_value"` //
	Threshold float64   `json:"threshold"`
	Evidence  time.Time `json:"evidence"`  // wall clock of the newest recent sample that kept it firing
	Resolved  time.Time `json:"resolved"`  // wall clock it resolved
	Announced bool      `json:"announced"` // receivers were told it fires
	// Posted is when Alertmanager was first sent it firing in this
	// episode (wall clock; zero: not yet).
	Posted    time.Time `json:"posted,omitzero"`
	limit     float64   // the rule's threshold at the station (threshold rules)
	code      int       // codeID(param)
	window    []point   // rate rules: recent (t, v)
	failSince time.Time // qc_fail_for: sample time the value began to fail
}

// bind ties the instance to its rule, station and parameter, and works
// out what Observe needs of them for every value: the code's number and the
// station's threshold (limits are fixed with the registry, looked up once).
func (in *instance) bind(r *Rule, st *registry.Station, param string) {
	in.rule, in.station, in.param, in.code = r, st, param, codeID(param)
	in.limit = 0
	for _, th := range []*Threshold{r.Above, r.Below, r.WQClassAbove, r.RateAbove, r.RateBelow} {
		if th != nil {
			in.limit = threshold(th, st)
		}
	}
}

type point struct {
	t time.Time
	v float64
}

// Options configure an Evaluator.
type Options struct {
	Registry *registry.Registry
	// MaxSampleAge: changes caused by older samples are recorded but do not
	// notify (CONTRACT §2 alerting.max_sample_age).
	MaxSampleAge time.Duration
	// ResolvedRetention is how long a resolved alert is still re-sent so
	// that Alertmanager learns of it despite a failure (default 15 min, as
	// Prometheus).
	ResolvedRetention time.Duration
	// PageURL is the operations page (http.external_url): each alert's
	// generatorURL links to its station's view there, PageURL +
	// "#/station/" + station id. Empty: alerts carry no link.
	PageURL string
}

// Evaluator keeps the state of every alert instance. Time comes in as a
// parameter: samples carry their own, Tick takes the wall clock.
type Evaluator struct {
	o  Options
	mu sync.Mutex
	// rules and instances, keyed by rule name + station + param.
	rules     []Rule
	instances map[string]*instance
	ordered   []*instance            // every instance, in key order
	silent    []*instance            // the instances of silent_for rules, in key order
	byStation map[string][]*instance // the instances of each station, in key order
	heard     map[string]time.Time   // station → wall clock of its newest message
	started   time.Time
	templates map[string]*template.Template
}

// NewEvaluator returns an evaluator for rules; started is the wall clock at
// start-up: silence is counted from it for every station, so that no
// station is silent before silent_for has passed since the start.
func NewEvaluator(rules *Rules, o Options, started time.Time) *Evaluator {
	if o.ResolvedRetention <= 0 {
		o.ResolvedRetention = 15 * time.Minute
	}
	e := &Evaluator{o: o, instances: map[string]*instance{}, heard: map[string]time.Time{}, started: started}
	e.SetRules(rules)
	return e
}

// SetRules replaces the rules; instances of rules that are still there keep
// their state.
func (e *Evaluator) SetRules(rules *Rules) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = append([]Rule(nil), rules.Rules...)
	e.templates = map[string]*template.Template{}
	for i := range e.rules {
		r := &e.rules[i]
		for _, f := range []struct{ key, text string }{{"summary", r.Summary}, {"description", r.Description}} {
			if f.text != "" {
				// Validated at load; a parse error here cannot happen.
				e.templates[r.Name+"/"+f.key] = template.Must(template.New(f.key).Option("missingkey=zero").Parse(f.text))
			}
		}
	}
	keep := map[string]*instance{}
	for i := range e.rules {
		r := &e.rules[i]
		for j := range e.o.Registry.Stations {
			st := &e.o.Registry.Stations[j]
			for _, param := range e.paramsOf(r, st) {
				k := key(r.Name, st.ID, param)
				in := e.instances[k]
				if in == nil {
					in = &instance{State: StateInactive}
				}
				in.bind(r, st, param)
				keep[k] = in
			}
		}
	}
	// The set of instances changes only here: sort it once, not on every
	// tick and save (100,000 keys with 10,000 stations).
	e.instances = keep
	e.ordered, e.silent = make([]*instance, 0, len(keep)), nil
	e.byStation = map[string][]*instance{}
	for _, k := range slices.Sorted(maps.Keys(keep)) {
		in := keep[k]
		e.ordered = append(e.ordered, in)
		if in.rule.SilentFor > 0 {
			e.silent = append(e.silent, in)
		}
		e.byStation[in.station.ID] = append(e.byStation[in.station.ID], in)
	}
}

func key(rule, station, param string) string { return rule + "\x00" + station + "\x00" + param }

// paramsOf is what a rule watches at a station: nothing when it does not
// apply there.
func (e *Evaluator) paramsOf(r *Rule, st *registry.Station) []string {
	if len(r.Stations) > 0 && !contains(r.Stations, st.ID) {
		return nil
	}
	if len(r.Rivers) > 0 && !contains(r.Rivers, st.River) {
		return nil
	}
	for _, th := range []*Threshold{r.Above, r.Below, r.RateAbove, r.RateBelow, r.WQClassAbove} {
		if th != nil && th.Limit != "" {
			if _, ok := st.Limits[th.Limit]; !ok {
				return nil
			}
		}
	}
	switch {
	case r.SilentFor > 0:
		return []string{""}
	case r.QCFailFor > 0:
		return st.Params
	case r.WQClassAbove != nil:
		if hasGraded(st) {
			return []string{reading.FieldWQClass}
		}
		return nil
	case r.Param == "flow_m3s" && !st.Reports("flow_m3s") && len(st.Rating) > 0 && st.Reports("level_m"):
		// No flow meter: the rated flow stands in (CONTRACT §10).
		return []string{reading.FieldFlowRated}
	case statusParams[r.Param]:
		return []string{r.Param}
	case r.Param == reading.FieldFlowRated && len(st.Rating) > 0 && st.Reports("level_m"):
		return []string{r.Param}
	case st.Reports(r.Param):
		return []string{r.Param}
	}
	return nil
}

func hasGraded(st *registry.Station) bool {
	for _, c := range quality.GradedCodes() {
		if st.Reports(c) {
			return true
		}
	}
	return false
}

func threshold(th *Threshold, st *registry.Station) float64 {
	if th.Limit != "" {
		return st.Limits[th.Limit]
	}
	return th.Value
}

// Observe evaluates every rule of the sample's station on it. wall is the
// wall clock, for max_sample_age. It returns the transitions.
func (e *Evaluator) Observe(s Sample, wall time.Time) []Transition {
	return e.ObserveAll([]Sample{s}, wall)
}

// ObserveAll is Observe for samples in order, under one lock; a run of
// samples of one station (a backlog) looks its instances up once.
func (e *Evaluator) ObserveAll(ss []Sample, wall time.Time) []Transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Transition
	var station string
	var ins []*instance
	var heard time.Time
	for i := range ss {
		s := &ss[i]
		if i == 0 || s.Station != station {
			if i > 0 {
				e.heard[station] = heard
			}
			station, ins, heard = s.Station, e.byStation[s.Station], e.heard[s.Station]
		}
		if s.Received.After(heard) {
			heard = s.Received
		}
		out = e.observe(out, s, ins, heard, wall)
	}
	if len(ss) > 0 {
		e.heard[station] = heard
	}
	return out
}

// observe moves the instances ins of the sample's station, last heard
// from at heard, and appends the transitions to out.
func (e *Evaluator) observe(out []Transition, s *Sample, ins []*instance, heard, wall time.Time) []Transition {
	notify := e.o.MaxSampleAge <= 0 || wall.Sub(s.Time) <= e.o.MaxSampleAge
	var at valueIndex
	indexed := at.build(s)
	for _, in := range ins {
		r := in.rule
		if r.SilentFor > 0 {
			// A message is a sign of life, however old its samples: the
			// silence ends when it arrived (wall clock, as it began).
			if in.State == StateFiring && wall.Sub(heard) <= time.Duration(r.SilentFor) {
				out = append(out, *e.resolve(in, heard, wall, 0, in.Announced))
			}
			continue
		}
		if len(s.Values) == 0 {
			continue
		}
		var val Value
		var ok bool
		if indexed && in.code >= 0 {
			if k := at[in.code]; k > 0 {
				val, ok = s.Values[k-1], true
			}
		} else {
			val, ok = valueOf(s, in.param)
		}
		if !ok {
			continue
		}
		// Late samples are stored but do not move the state (CONTRACT §10:
		// in order per station).
		if !in.LastEval.IsZero() && !s.Time.After(in.LastEval) {
			continue
		}
		if r.QCFailFor > 0 {
			in.LastEval = s.Time
			if t := e.qcFail(in, s.Time, wall, val, notify); t != nil {
				out = append(out, *t)
			}
			continue
		}
		if val.Flag == qcFail {
			continue
		}
		in.LastEval = s.Time
		if t := e.step(in, s.Time, val.V, wall, notify); t != nil {
			out = append(out, *t)
		}
	}
	return out
}
