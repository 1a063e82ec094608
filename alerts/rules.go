// Package alerts turns stored samples into alerts for on-call staff: rules
// (CONTRACT §10) loaded strictly from rules.yaml, and, as they are built, the
// per-station evaluator and the delivery to Alertmanager and webhooks.
package alerts

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

// Rules is the content of rules.yaml.
type Rules struct {
	Rules []Rule `yaml:"rules"`
}

// Rule is one alert rule. Exactly one condition is set: Above, Below,
// RateAbove, RateBelow, WQClassAbove, SilentFor or QCFailFor.
type Rule struct {
	Name         string              `yaml:"name"`
	Param        string              `yaml:"param"`
	Above        *Threshold          `yaml:"above"`
	Below        *Threshold          `yaml:"below"`
	RateAbove    *Threshold          `yaml:"rate_above"`
	RateBelow    *Threshold          `yaml:"rate_below"`
	Window       strictyaml.Duration `yaml:"window"`
	WQClassAbove *Threshold          `yaml:"wq_class_above"`
	SilentFor    strictyaml.Duration `yaml:"silent_for"`
	QCFailFor    strictyaml.Duration `yaml:"qc_fail_for"`
	For          strictyaml.Duration `yaml:"for"`
	Clear        float64             `yaml:"clear"`
	Severity     string              `yaml:"severity"`
	Stations     []string            `yaml:"stations"`
	Rivers       []string            `yaml:"rivers"`
	Labels       map[string]string   `yaml:"labels"`
	Summary      string              `yaml:"summary"`
	Description  string              `yaml:"description"`
}

// Threshold is a number, or "$name" of a station limit.
type Threshold struct {
	Value float64
	Limit string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Threshold) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return strictyaml.TypeError(n, "a threshold is a number or $limit_name")
	}
	if name, ok := strings.CutPrefix(n.Value, "$"); ok {
		if !limitRE.MatchString(name) {
			return strictyaml.TypeError(n, "%q is not a $limit_name", n.Value)
		}
		t.Limit = name
		return nil
	}
	if err := n.Decode(&t.Value); err != nil {
		return strictyaml.TypeError(n, "threshold %q is neither a number nor $limit_name", n.Value)
	}
	return nil
}

var (
	limitRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	nameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// derived are the fields rivermon computes that rules may watch.
	derived = map[string]bool{reading.FieldFlowRated: true}
	// statusParams come from the device-health topic of every station.
	statusParams = map[string]bool{"battery_v": true, "signal_dbm": true, "enclosure_temp_c": true}
)

// Severities allowed in rules.
var Severities = []string{"critical", "warning", "info"}

// LoadRulesFile reads and validates rules.yaml.
func LoadRulesFile(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return LoadRules(path, data)
}

// LoadRules parses and validates rules; the error is a strictyaml.Problems.
func LoadRules(file string, data []byte) (*Rules, error) {
	rs := &Rules{}
	root, ps := strictyaml.Decode(file, data, rs)
	if root == nil || len(ps) > 0 {
		return nil, ps.Err()
	}
	list := strictyaml.Lookup(root, "rules")
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		n := root
		if list != nil && i < len(list.Content) {
			n = list.Content[i]
		}
		at := func(key string) int { return strictyaml.Line(n, key) }
		if !nameRE.MatchString(r.Name) {
			ps.Add(file, at("name"), "rule name %q: want letters, digits and _ (it becomes the alertname label)", r.Name)
		}
		key := r.Name + "\x00" + r.Param
		if seen[key] {
			ps.Add(file, at("name"), "rule %s: defined twice for the same param", r.Name)
		}
		seen[key] = true
		conds := 0
		for _, set := range []bool{r.Above != nil, r.Below != nil, r.RateAbove != nil, r.RateBelow != nil,
			r.WQClassAbove != nil, r.SilentFor > 0, r.QCFailFor > 0} {
			if set {
				conds++
			}
		}
		if conds != 1 {
			ps.Add(file, n.Line, "rule %s: needs exactly one of above, below, rate_above, rate_below, wq_class_above, silent_for, qc_fail_for (has %d)", r.Name, conds)
		}
		needsParam := r.Above != nil || r.Below != nil || r.RateAbove != nil || r.RateBelow != nil
		switch {
		case needsParam && r.Param == "":
			ps.Add(file, n.Line, "rule %s: param is required", r.Name)
		case r.Param != "" && !reading.IsParam(r.Param) && !derived[r.Param] && !statusParams[r.Param]:
			ps.Add(file, at("param"), "rule %s: unknown param %q", r.Name, r.Param)
		}
		if (r.RateAbove != nil || r.RateBelow != nil) != (r.Window > 0) {
			ps.Add(file, n.Line, "rule %s: rate_above/rate_below and window go together", r.Name)
		}
		if r.Clear < 0 {
			ps.Add(file, at("clear"), "rule %s: clear must not be negative", r.Name)
		}
		if !contains(Severities, r.Severity) {
			ps.Add(file, at("severity"), "rule %s: severity %q: want one of %s", r.Name, r.Severity, strings.Join(Severities, ", "))
		}
		for k := range r.Labels {
			if !nameRE.MatchString(k) || contains([]string{"alertname", "station", "river", "severity", "param"}, k) {
				ps.Add(file, at("labels"), "rule %s: label %q is not allowed", r.Name, k)
			}
		}
		for _, f := range []struct{ key, text string }{{"summary", r.Summary}, {"description", r.Description}} {
			if _, err := template.New(f.key).Parse(f.text); err != nil {
				ps.Add(file, at(f.key), "rule %s: %s template: %v", r.Name, f.key, err)
			}
		}
	}
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return rs, nil
}

func contains(set []string, s string) bool {
	for _, x := range set {
		if x == s {
			return true
		}
	}
	return false
}
