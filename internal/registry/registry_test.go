package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

func TestShippedRegistry(t *testing.T) {
	r, err := LoadFile(filepath.Join("..", "..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stations) != 23 || len(r.Rivers) != 12 {
		t.Fatalf("%d stations on %d rivers, want 23 on 12", len(r.Stations), len(r.Rivers))
	}
	used := map[string]bool{}
	for _, s := range r.Stations {
		used[s.River] = true
		if s.Name == "" || s.NameEN == "" || s.County == "" || len(s.Rating) == 0 || time.Duration(s.Interval) != 5*time.Minute {
			t.Errorf("station %s incomplete", s.ID)
		}
		if _, ok := s.Limits["eflow_m3s"]; !ok {
			t.Errorf("station %s has no eflow_m3s", s.ID)
		}
		if s.Reports("ph") && (s.HJ212MN == "" || s.Limits["wq_target_class"] == 0) {
			t.Errorf("water-quality station %s lacks hj212_mn or wq_target_class", s.ID)
		}
		if s.QC["level_m"].GrossRange == nil {
			t.Errorf("station %s: level_m QC not set", s.ID)
		}
	}
	if len(used) != 12 {
		t.Errorf("stations on %d rivers, want all 12", len(used))
	}
	if r.Station("nianchu-gyantse-bainang") == nil || r.StationByMN(r.Station("nianchu-gyantse").HJ212MN) == nil {
		t.Error("lookups fail")
	}
}

// TestBrokenRegistryReportsEveryProblemWithItsLine: all problems at once,
// each at the line where it stands.
func TestBrokenRegistryReportsEveryProblemWithItsLine(t *testing.T) {
	path := filepath.Join("testdata", "broken.yaml")
	_, err := LoadFile(path)
	if err == nil {
		t.Fatal("broken registry loaded")
	}
	got := err.Error()
	// Unknown keys and type errors are reported before semantic checks.
	for _, want := range []string{
		path + `:23: unknown key "stations[1].colour"`,
		path + `:32: invalid duration "soon" (want e.g. 30s, 5m, 1h)`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestSemanticProblemsWithLines(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "broken.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Take out the two structural mistakes so that the checks of meaning run.
	fixed := strings.Replace(strings.Replace(string(data), "    colour: blue\n", "    county: x\n", 1), "interval: soon", "interval: 5m", 1)
	_, err = Load("broken.yaml", []byte(fixed))
	if err == nil {
		t.Fatal("loaded")
	}
	got := err.Error()
	for _, want := range []string{
		`broken.yaml:3: duplicate river id "nianchu"`,
		`broken.yaml:14: duplicate station id "good-one"`,
		`broken.yaml:17: station good-one: unknown river "nowhere"`,
		`broken.yaml:18: station good-one: lat 129 is not between -90 and 90`,
		`broken.yaml:21: station good-one: unknown parameter code "salinity"`,
		`broken.yaml:24: station id "Bad_ID": use lower-case letters, digits and -`,
		`broken.yaml:29: station Bad_ID: lon 289 is not between -180 and 180`,
		`broken.yaml:33: station Bad_ID: wq_target_class 7 is not a class 1 to 5`,
		`broken.yaml:33: station Bad_ID: level_critical_m 2 is not above level_warning_m 3`,
		`broken.yaml:35: station Bad_ID: rating 0 segment 0: h_min 0.2 is not below h_max 0.1`,
		`broken.yaml:34: station Bad_ID: has a rating curve but does not report level_m`,
		`broken.yaml:39: station Bad_ID: qc for unknown parameter code "turbidity"`,
		`broken.yaml:40: station Bad_ID: qc ph spike needs 0 < suspect <= fail`,
		`broken.yaml:41: station Bad_ID: qc level_m flat_line.winter needs months and 0 < suspect <= fail`,
		`broken.yaml:41: station Bad_ID: qc level_m flat_line.winter.months: 13 is not a month 1 to 12`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	var ps strictyaml.Problems
	if ps = strictyaml.AsProblems("broken.yaml", err); len(ps) < 15 {
		t.Errorf("%d problems, want every one of them", len(ps))
	}
}

func TestNotYAML(t *testing.T) {
	_, err := Load("x.yaml", []byte("rivers: [\n  - id: a\nstations: {"))
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:") {
		t.Fatalf("err = %v", err)
	}
	_, err = Load("x.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	for _, p := range []string{filepath.Join("testdata", "broken.yaml"), filepath.Join("..", "..", "configs", "stations.yaml")} {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Load("f.yaml", data)
		if (r == nil) == (err == nil) {
			t.Fatalf("registry %v and error %v", r, err)
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") {
					t.Fatalf("problem without file: %q", line)
				}
			}
		}
	})
}

// TestServiceUserNamesAreNotStationIDs: a station's id is its MQTT user
// name, which the broker makes its client id; rivermon's own users
// (rivermon, rivermon-1, rivermon-a, …) cannot be stations.
func TestServiceUserNamesAreNotStationIDs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "  - id: nianchu-gyantse  #"
	if !strings.Contains(string(data), shipped) {
		t.Fatalf("%q not in the shipped registry", shipped)
	}
	for id, reserved := range map[string]bool{"rivermon": true, "rivermon-1": true, "rivermon-b": true, "rivermonx": false} {
		_, err := Load("stations.yaml", []byte(strings.Replace(string(data), shipped, "  - id: "+id+"  #", 1)))
		want := `station id "` + id + `" is reserved`
		if got := err != nil && strings.Contains(err.Error(), want); got != reserved {
			t.Errorf("id %s: err = %v, want reserved %v", id, err, reserved)
		}
	}
}

// shiftsRegistry is a valid one-station registry with a rating curve, to
// which the shift tests add a shifts: block (from line 16 on, its first shift at line 17).
const shiftsRegistry = `rivers:
  - {id: nianchu, name: 年楚河, name_en: Nianchu}
stations:
  - id: nianchu-mouth
    name: 年楚河口
    name_en: Nianchu mouth
    river: nianchu
    lat: 29.3
    lon: 88.9
    params: [level_m]
    interval: 5m
    rating:
      - valid_from: 2024-01-01T00:00:00+08:00
        segments:
          - {h_min: 0.2, h_max: 6, c: 28.69, e: 0.2, b: 1.8}
`

func TestShifts(t *testing.T) {
	r, err := Load("s.yaml", []byte(shiftsRegistry+`    shifts:
      - {from: 2026-07-01T00:00:00+08:00, to: 2026-08-01T00:00:00+08:00, dh: 0.12}
      - {from: 2026-08-01T00:00:00+08:00, dh: -0.05}
`))
	if err != nil {
		t.Fatal(err)
	}
	sh := r.Station("nianchu-mouth").Shifts
	if len(sh) != 2 || sh[0].DH != 0.12 || !sh[1].To.IsZero() {
		t.Fatalf("shifts = %+v", sh)
	}
	jul := time.Date(2026, 7, 1, 0, 0, 0, 0, reading.Zone)
	for _, c := range []struct {
		t    time.Time
		i    int
		want bool
	}{
		{jul, 0, true}, {jul.Add(-time.Nanosecond), 0, false},
		{jul.AddDate(0, 1, 0).Add(-time.Nanosecond), 0, true}, {jul.AddDate(0, 1, 0), 0, false},
		{jul.AddDate(0, 1, 0), 1, true}, {jul.AddDate(10, 0, 0), 1, true},
	} {
		if got := sh[c.i].Covers(c.t); got != c.want {
			t.Errorf("shift %d covers %s = %v, want %v", c.i, c.t, got, c.want)
		}
	}
}

func TestShiftProblemsWithLines(t *testing.T) {
	for _, c := range []struct {
		name, shifts string
		want         []string
	}{
		{"overlap", `    shifts:
      - {from: 2026-07-01T00:00:00+08:00, to: 2026-08-01T00:00:00+08:00, dh: 0.12}
      - {from: 2026-09-01T00:00:00+08:00, dh: 0.1}
      - {from: 2026-07-31T00:00:00+08:00, to: 2026-08-02T00:00:00+08:00, dh: -0.05}
`, []string{`s.yaml:19: station nianchu-mouth: shift 2 overlaps shift 0 (line 17): a stage has one shift at a time`}},
		{"two open-ended", `    shifts:
      - {from: 2026-09-01T00:00:00+08:00, dh: 0.1}
      - {from: 2025-01-01T00:00:00+08:00, dh: 0.2}
`, []string{`s.yaml:18: station nianchu-mouth: shift 1 overlaps shift 0 (line 17)`}},
		{"bad periods", `    shifts:
      - {to: 2026-08-01T00:00:00+08:00, dh: 0.12}
      - {from: 2026-08-01T00:00:00+08:00, to: 2026-08-01T00:00:00+08:00, dh: 0.1}
      - {from: 2026-09-01T00:00:00+08:00, to: 2026-10-01T00:00:00+08:00, dh: .nan}
`, []string{
			`s.yaml:17: station nianchu-mouth: shift 0 has no from`,
			`s.yaml:18: station nianchu-mouth: shift 1: to 2026-08-01T00:00:00+08:00 is not after from 2026-08-01T00:00:00+08:00`,
			`s.yaml:19: station nianchu-mouth: shift 2: dh is not a finite number`,
		}},
		{"unknown key", `    shifts:
      - {from: 2026-09-01T00:00:00+08:00, until: 2026-10-01T00:00:00+08:00, dh: 0.1}
`, []string{`s.yaml:17: unknown key "stations[0].shifts[0].until"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load("s.yaml", []byte(shiftsRegistry+c.shifts))
			if err == nil {
				t.Fatal("loaded")
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("missing %q in:\n%s", want, err)
				}
			}
		})
	}
	// Shifts without a curve to shift.
	noRating := strings.Replace(shiftsRegistry, "    rating:\n      - valid_from: 2024-01-01T00:00:00+08:00\n        segments:\n          - {h_min: 0.2, h_max: 6, c: 28.69, e: 0.2, b: 1.8}\n", "", 1)
	_, err := Load("s.yaml", []byte(noRating+"    shifts:\n      - {from: 2026-09-01T00:00:00+08:00, dh: 0.1}\n"))
	if want := "s.yaml:12: station nianchu-mouth: has shifts but no rating curve to shift"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestShippedShiftExampleLoads: the commented shifts of the shipped
// registry are valid once uncommented.
func TestShippedShiftExampleLoads(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	on := strings.Replace(string(data), "\n    # shifts:\n", "\n    shifts:\n", 1)
	on = strings.ReplaceAll(on, "\n    #   - {from:", "\n      - {from:")
	if on == string(data) {
		t.Fatal("no commented shifts in the shipped registry")
	}
	r, err := Load("stations.yaml", []byte(on))
	if err != nil {
		t.Fatal(err)
	}
	if sh := r.Station("yarlung-dazhuka").Shifts; len(sh) != 2 || sh[0].DH != 0.06 || !sh[1].To.IsZero() {
		t.Errorf("shifts = %+v", sh)
	}
}
