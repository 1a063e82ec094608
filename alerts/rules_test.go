package alerts

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedRules(t *testing.T) {
	rs, err := LoadRulesFile(filepath.Join("..", "configs", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range rs.Rules {
		names[r.Name] = true
	}
	for _, want := range []string{"WaterLevelWarning", "WaterLevelCritical", "WaterLevelRisingFast", "EcologicalFlowBelowTarget",
		"EcologicalFlowBelowWarning", "WaterQualityWorseThanTarget", "StationSilent", "SensorFault", "LowBattery"} {
		if !names[want] {
			t.Errorf("shipped rules lack %s", want)
		}
	}
}

func TestBrokenRulesReportEveryProblem(t *testing.T) {
	yml := `rules:
  - name: Level High
    param: level_m
    above: $Level
    severity: page
  - name: Two
    param: level_m
    above: 3
    below: 1
    severity: warning
  - name: NoParam
    above: 3
    severity: warning
  - name: Rate
    param: level_m
    rate_above: 0.5
    severity: warning
    summary: "{{.Value"
  - name: Weird
    param: salinity
    above: abc
    for: soon
    severity: info
    labels: {station: x}
`
	_, err := LoadRules("rules.yaml", []byte(yml))
	if err == nil {
		t.Fatal("loaded")
	}
	got := err.Error()
	for _, want := range []string{
		`rules.yaml:4: "$Level" is not a $limit_name`,
		`rules.yaml:21: threshold "abc" is neither a number nor $limit_name`,
		`rules.yaml:22: invalid duration "soon"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	// With the type errors mended, the checks of meaning run.
	yml = strings.NewReplacer("$Level", "$level", "above: abc", "above: 1", "for: soon", "for: 5m").Replace(yml)
	_, err = LoadRules("rules.yaml", []byte(yml))
	got = err.Error()
	for _, want := range []string{
		`rules.yaml:2: rule name "Level High": want letters, digits and _`,
		`rules.yaml:5: rule Level High: severity "page": want one of critical, warning, info`,
		`rules.yaml:6: rule Two: needs exactly one of above, below`,
		`rules.yaml:11: rule NoParam: param is required`,
		`rules.yaml:14: rule Rate: rate_above/rate_below and window go together`,
		`rules.yaml:18: rule Rate: summary template:`,
		`rules.yaml:20: rule Weird: unknown param "salinity"`,
		`rules.yaml:24: rule Weird: label "station" is not allowed`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func FuzzLoadRules(f *testing.F) {
	f.Add([]byte("rules:\n  - {name: A, param: level_m, above: $x, severity: warning}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := LoadRules("f.yaml", data)
		if (rs == nil) == (err == nil) {
			t.Fatalf("rules %v and error %v", rs, err)
		}
	})
}
