package strictyaml

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Every Duration `yaml:"every"`
}

type doc struct {
	Name  string           `yaml:"name"`
	Items []inner          `yaml:"items"`
	ByKey map[string]inner `yaml:"by_key"`
}

func TestDecodeReportsEveryProblemWithItsLine(t *testing.T) {
	var d doc
	_, ps := Decode("d.yaml", []byte("name: x\ncolour: red\nitems:\n  - every: 5m\n  - every: soon\n    extra: 1\nby_key:\n  a: {every: 1h, what: 2}\n"), &d)
	got := ps.Error()
	for _, want := range []string{
		`d.yaml:2: unknown key "colour"`,
		`d.yaml:5: invalid duration "soon"`,
		`d.yaml:6: unknown key "items[1].extra"`,
		`d.yaml:8: unknown key "by_key.a.what"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if time.Duration(d.Items[0].Every) != 5*time.Minute {
		t.Errorf("good values not decoded: %+v", d)
	}
}

func TestDuplicateKey(t *testing.T) {
	var d doc
	_, ps := Decode("d.yaml", []byte("name: x\nname: y\n"), &d)
	if !strings.Contains(ps.Error(), `d.yaml:2: mapping key "name" already defined at line 1`) {
		t.Errorf("got %v", ps)
	}
}

func TestMultiLineMessageStaysOnOneLine(t *testing.T) {
	var d doc
	_, ps := Decode("d.yaml", []byte("name: x\nitems: \"a\n  b\"\n"), &d)
	if len(ps) == 0 {
		t.Fatal("no problem")
	}
	for _, p := range ps {
		s := p.String()
		if strings.Contains(s, "\n") || !strings.HasPrefix(s, "d.yaml:2: ") {
			t.Errorf("problem %q is not one FILE:LINE line", s)
		}
	}
}
