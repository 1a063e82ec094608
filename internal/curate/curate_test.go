package curate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/registry"
)

const testRegistry = `rivers: [{id: r, name: 河, name_en: R}]
stations:
  - id: s
    name: 站
    name_en: S
    river: r
    county: C
    lat: 29
    lon: 89
    elevation_m: 4000
    params: [level_m, water_temp_c, ph, do_mgl, nh3n_mgl]
    interval: 10m
    rating:
      - valid_from: 2024-01-01T00:00:00+08:00
        segments:
          - {h_min: 0.1, h_max: 2, c: 10, e: 0.1, b: 1.5}
    shifts:
      - {from: 2026-06-01T08:10:00+08:00, dh: 0.05}
`

func testStation(t *testing.T) *registry.Station {
	t.Helper()
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	return reg.Station("s")
}

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func at(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Minute) }

func levels(n int, raw map[int]float64) []row {
	var rows []row
	for i := range n {
		r := row{t: at(i), f: map[string]float64{"level_m": 1 + 0.1*float64(i), "level_m_qc": 3, "flow_rated_m3s": 5, "flow_rated_m3s_qc": 3}}
		if v, ok := raw[i]; ok {
			r.f["level_m_raw"] = v
		}
		rows = append(rows, r)
	}
	return rows
}

// Each op gives the values it should, the first raw value stays, the
// flag is CorrectedFlag (4 for delete), rated flow follows the stage and a
// stage beyond the rating fails the rated flow left from before.
func TestCompute(t *testing.T) {
	st := testStation(t)
	for _, c := range []struct {
		op    string
		value float64
		want  []float64 // level_m of points 1..3
		flag  float64
	}{
		{OpDelete, 0, []float64{1.1, 1.2, 1.3}, 4},
		{OpSet, 1.5, []float64{1.5, 1.5, 1.5}, 1},
		{OpOffset, -0.05, []float64{1.1 - 0.05, 1.2 - 0.05, 1.3 - 0.05}, 1},
		{OpDrift, 0.2, []float64{1.1, 1.2 + 0.1, 1.3 + 0.2}, 1},
	} {
		t.Run(c.op, func(t *testing.T) {
			k := &Correction{Station: "s", Param: "level_m", Op: c.op, From: at(1), To: at(3), Value: c.value}
			ps := compute(st, k, levels(5, map[int]float64{2: 0.9}))
			if len(ps) != 3 {
				t.Fatalf("%d points changed, want 3", len(ps))
			}
			for j, p := range ps {
				i := j + 1
				if !p.T.Equal(at(i)) || p.After["level_m"] != c.want[j] || p.After["level_m_qc"] != c.flag {
					t.Errorf("point %d: %v, want level %v flag %v", i, p.After, c.want[j], c.flag)
				}
				wantRaw := 1 + 0.1*float64(i)
				if i == 2 {
					wantRaw = 0.9 // raw already: the first raw stays
				}
				if p.After["level_m_raw"] != wantRaw {
					t.Errorf("point %d: raw %v, want %v", i, p.After["level_m_raw"], wantRaw)
				}
				// The shift from 08:10 local (point 1) is in force.
				r, _ := hydro.RatingAt(st.Rating, p.T)
				q, _ := hydro.Flow(r, c.want[j]+0.05)
				if p.After["flow_rated_m3s"] != q || p.After["flow_rated_m3s_qc"] != c.flag {
					t.Errorf("point %d: rated flow %v (%v), want %v (%v)", i, p.After["flow_rated_m3s"], p.After["flow_rated_m3s_qc"], q, c.flag)
				}
				if b := p.Before["level_m"]; b == nil || *b != 1+0.1*float64(i) {
					t.Errorf("point %d: before %v", i, b)
				}
				if b, ok := p.Before["level_m_raw"]; !ok || (i == 2) != (b != nil) {
					t.Errorf("point %d: raw before %v (recorded %v)", i, b, ok)
				}
			}
		})
	}
	k := &Correction{Station: "s", Param: "level_m", Op: OpSet, From: at(0), To: at(0), Value: 7}
	ps := compute(st, k, levels(1, nil))
	if _, ok := ps[0].After["flow_rated_m3s"]; ok || ps[0].After["flow_rated_m3s_qc"] != 4 {
		t.Errorf("stage beyond the rating: %v, want the old rated flow failed", ps[0].After)
	}
}

// A graded item's correction changes the class of its own points and of
// the later samples its value stands for (4 h at least), and nothing else.
func TestComputeClass(t *testing.T) {
	st := testStation(t)
	var rows []row
	for i := range 40 { // 6 h 40 min of 10-minute samples
		r := row{t: at(i), f: map[string]float64{"ph": 7.5, "ph_qc": 1, "wq_class": 1}}
		if i%6 == 0 {
			r.f["nh3n_mgl"], r.f["nh3n_mgl_qc"] = 0.1, 1
		}
		rows = append(rows, r)
	}
	k := &Correction{Station: "s", Param: "nh3n_mgl", Op: OpSet, From: at(6), To: at(6), Value: 1.2}
	ps := compute(st, k, rows)
	changed := map[int]float64{}
	for _, p := range ps {
		changed[int(p.T.Sub(t0)/(10*time.Minute))] = p.After["wq_class"]
	}
	// NH3-N 1.2 mg/L is class IV from sample 6 until the next NH3-N value
	// (sample 12), which is class I again.
	for i := range 40 {
		want, ok := 4.0, i >= 6 && i < 12
		if got, has := changed[i]; has != ok || (ok && got != want) {
			t.Errorf("sample %d: class changed %v to %v, want changed %v to %v", i, has, got, ok, want)
		}
	}
}

// The log rebuilds corrections, undos and approvals at start, cuts off a
// last line cut short, and ids stay unique across restarts.
func TestLogReplay(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "curation.log")
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	open := func() *Curator {
		t.Helper()
		c, err := New(Options{Registry: reg, Journal: &fakeJournal{}, Outputs: []Output{{Name: "default"}}, LogPath: path, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	before := 1.0
	k := &Correction{ID: c.newID(now), Station: "s", Param: "ph", Op: OpSet, From: at(0), To: at(1), Value: 7,
		Points: []Point{{T: at(0), Before: map[string]*float64{"ph": &before, "ph_raw": nil}, After: map[string]float64{"ph": 7, "ph_raw": 1}}}}
	for _, rec := range []*logRecord{
		{Type: "correction", At: now, Correction: k},
		{Type: "approval", At: now, Approval: &Approval{Station: "s", Days: []string{"2026-06-01", "2026-06-02"}, Level: Approved}},
		{Type: "approval", At: now, Approval: &Approval{Station: "s", Days: []string{"2026-06-02"}, Level: Provisional}},
		{Type: "undo", At: now, ID: k.ID},
		{Type: "reprocess", At: now, Correction: &Correction{ID: "r-1", Station: "s", Param: "flow_rated_m3s", Op: OpReprocess,
			From: at(0), To: at(1), Value: 3, Made: now}},
	} {
		if err := c.log.append(rec); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"type":"correction","at":"2026-`)
	f.Close()

	c = open()
	defer c.Close()
	if got := c.byID[k.ID]; got == nil || !got.Undone || got.Param != "ph" {
		t.Errorf("correction after replay: %+v", got)
	}
	if c.Level("s", at(0)) != Approved || c.Level("s", at(0).Add(24*time.Hour)) != Provisional {
		t.Errorf("approvals after replay: %v", c.approved)
	}
	if id := c.newID(now); id <= k.ID || len(id) != len(k.ID) {
		t.Errorf("id after restart %q, not after %q", id, k.ID)
	}
	ps, err := c.log.points(k.ID)
	if err != nil || len(ps) != 1 || ps[0].Before["ph"] == nil || *ps[0].Before["ph"] != 1 || ps[0].Before["ph_raw"] != nil {
		t.Errorf("points read back: %v, %v", ps, err)
	}
	b, _ := os.ReadFile(path)
	// The reprocess, last and not marked queued (written by hand), has
	// its point queued and is marked at start.
	if lines := strings.Split(string(b), "\n"); len(lines) != 7 || !strings.HasPrefix(lines[5], `{"type":"queued"`) || lines[6] != "" {
		t.Errorf("the cut line is still in the log, or the reprocess not marked queued:\n%s", b)
	}
}

// fakeJournal keeps what is added.
type fakeJournal struct{ entries []journal.Entry }

func (j *fakeJournal) Add(r *journal.Record) error {
	j.entries = append(j.entries, r.Entries...)
	return nil
}
func (j *fakeJournal) Last() uint64                  { return 0 }
func (j *fakeJournal) Position(reader string) uint64 { return 0 }

// An undo cut short after it logged a day's points (and perhaps deleted
// them) has them written again at start; a finished one does not.
func TestUnfinishedRestoreWrittenAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("reading,river=r,station=s ph=7.5,ph_qc=1i %d", at(1).UnixNano())
	var b strings.Builder
	for _, rec := range []logRecord{
		{Type: "correction", At: t0, Correction: &Correction{ID: "c-1", Station: "s", Param: "ph", Op: OpSet}},
		{Type: "correction", At: t0, Correction: &Correction{ID: "c-2", Station: "s", Param: "ph", Op: OpSet}},
		{Type: "restore", At: t0, ID: "c-1", Station: "s", Lines: []string{"reading,river=r,station=s ph=1 1"}},
		{Type: "undo", At: t0, ID: "c-1"},
		{Type: "restore", At: t0, ID: "c-2", Station: "s", Lines: []string{line}},
	} {
		j, _ := json.Marshal(rec)
		b.Write(j)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jr := &fakeJournal{}
	c, err := New(Options{Registry: reg, Journal: jr, Outputs: []Output{{Name: "default"}}, LogPath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(jr.entries) != 1 || jr.entries[0].Line != line || !jr.entries[0].Time.Equal(at(1)) ||
		jr.entries[0].Kind != journal.KindCorrected || jr.entries[0].Station != "s" {
		t.Errorf("written again: %+v, want the one point of the unfinished undo", jr.entries)
	}
	if c.byID["c-2"].Undone {
		t.Error("an unfinished undo counts as done")
	}
}

// Dissolved oxygen is judged against saturation at the water temperature:
// correcting the temperature changes the class.
func TestComputeClassFollowsWaterTemperature(t *testing.T) {
	st := testStation(t)
	var rows []row
	for i := range 3 {
		// 6.5 mg/L at 10 °C and 4,000 m is over 90 % of saturation: class I.
		rows = append(rows, row{t: at(i), f: map[string]float64{"do_mgl": 6.5, "do_mgl_qc": 1, "water_temp_c": 10, "water_temp_c_qc": 1, "wq_class": 1}})
	}
	k := &Correction{Station: "s", Param: "water_temp_c", Op: OpSet, From: at(1), To: at(1), Value: 0}
	ps := compute(st, k, rows)
	if len(ps) != 1 || ps[0].After["water_temp_c"] != 0 || ps[0].After["wq_class"] != 2 {
		t.Errorf("points %+v, want sample 1 at 0 °C, class II (DO below 90 %% of saturation, 6 mg/L met)", ps)
	}
}

// Whatever the log holds, New either loads it or says why, and never
// panics; what it loads it keeps on a second load.
func FuzzLoadLog(f *testing.F) {
	f.Add([]byte(`{"type":"correction","at":"2026-06-01T00:00:00Z","correction":{"id":"c-1","station":"s","param":"ph","op":"set"}}` + "\n" +
		`{"type":"undo","at":"2026-06-01T00:00:00Z","id":"c-1"}` + "\n"))
	f.Add([]byte(`{"type":"approval","approval":{"station":"s","days":["2026-06-01"],"level":"approved"}}` + "\n{\"type\":"))
	f.Add([]byte(`{"type":"restore","id":"c-9","lines":["x"]}` + "\n"))
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "curation.log")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := New(Options{Registry: reg, Journal: &fakeJournal{}, Outputs: []Output{{Name: "default"}}, LogPath: path})
		if err != nil {
			return
		}
		n, days := len(c.corrections), len(c.approved["s"])
		c.Close()
		c, err = New(Options{Registry: reg, Journal: &fakeJournal{}, Outputs: []Output{{Name: "default"}}, LogPath: path})
		if err != nil {
			t.Fatalf("a log loaded once does not load again: %v", err)
		}
		defer c.Close()
		if len(c.corrections) != n || len(c.approved["s"]) != days {
			t.Errorf("second load: %d corrections, %d days; first %d, %d", len(c.corrections), len(c.approved["s"]), n, days)
		}
	})
}

// Without a Reprocessor, POST /api/v1/reprocess answers 501 once the
// token and the request are right.
func TestReprocessNotBuilt(t *testing.T) {
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Registry: reg, Journal: &fakeJournal{}, Outputs: []Output{{Name: "default"}},
		LogPath: filepath.Join(t.TempDir(), "curation.log"), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mux := http.NewServeMux()
	c.Register(mux)
	req := httptest.NewRequest("POST", "/api/v1/reprocess", strings.NewReader(`{"station": "s", "from": "2026-06-01T00:00:00Z", "to": "2026-06-02T00:00:00Z"}`))
	req.Header.Set("Authorization", "Bearer tok")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "not available") {
		t.Errorf("%d %s, want 501", w.Code, w.Body)
	}
}
