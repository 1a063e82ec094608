package curate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/registry"
)

// memStore is an InfluxDB output holding the `reading` points of one
// station (river r) in memory, enough of InfluxQL for curation: SHOW
// FIELD KEYS, SELECT of fields or * in a time range, DELETE in a time
// range, and writes of line protocol.
type memStore struct {
	mu  sync.Mutex
	pts map[int64]map[string]float64
	// failWrite, when set, refuses every write.
	failWrite error
}

func newMemStore() *memStore { return &memStore{pts: map[int64]map[string]float64{}} }

var timeRange = regexp.MustCompile(`time >= (-?\d+) AND time <=? (-?\d+)`)

func (m *memStore) span(stmt string) (int64, int64) {
	g := timeRange.FindStringSubmatch(stmt)
	if g == nil {
		panic("memStore: no time range in " + stmt)
	}
	lo, _ := strconv.ParseInt(g[1], 10, 64)
	hi, _ := strconv.ParseInt(g[2], 10, 64)
	if strings.Contains(stmt, "time < "+g[2]) {
		hi--
	}
	return lo, hi
}

func (m *memStore) Query(_ context.Context, stmt string, each func([]influx.Series)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.HasPrefix(stmt, "SHOW FIELD KEYS") {
		sr := influx.Series{Name: "reading", Columns: []string{"fieldKey", "fieldType"}}
		keys := map[string]bool{}
		for _, p := range m.pts {
			for k := range p {
				keys[k] = true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			sr.Values = append(sr.Values, []any{k, fieldType(k)})
		}
		each([]influx.Series{sr})
		return nil
	}
	list := strings.TrimSpace(stmt[len("SELECT "):strings.Index(stmt, " FROM ")])
	var cols []string
	if list == "*" {
		keys := map[string]bool{}
		for _, p := range m.pts {
			for k := range p {
				keys[k] = true
			}
		}
		cols = slices.Sorted(maps.Keys(keys))
	} else {
		for _, q := range strings.Split(list, ", ") {
			c, err := strconv.Unquote(q)
			if err != nil {
				return fmt.Errorf("memStore: field %s: %v", q, err)
			}
			cols = append(cols, c)
		}
	}
	lo, hi := m.span(stmt)
	sr := influx.Series{Name: "reading", Tags: map[string]string{"river": "r"}, Columns: append([]string{"time"}, cols...)}
	for _, t := range slices.Sorted(maps.Keys(m.pts)) {
		if t < lo || t > hi {
			continue
		}
		row := []any{json.Number(strconv.FormatInt(t, 10))}
		any := false
		for _, c := range cols {
			if v, ok := m.pts[t][c]; ok {
				row = append(row, json.Number(strconv.FormatFloat(v, 'g', -1, 64)))
				any = true
			} else {
				row = append(row, nil)
			}
		}
		if any {
			sr.Values = append(sr.Values, row)
		}
	}
	each([]influx.Series{sr})
	return nil
}

func (m *memStore) Exec(_ context.Context, stmt string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !strings.HasPrefix(stmt, "DELETE FROM reading") {
		return fmt.Errorf("memStore: cannot %s", stmt)
	}
	lo, hi := m.span(stmt)
	for t := range m.pts {
		if t >= lo && t <= hi {
			delete(m.pts, t)
		}
	}
	return nil
}

func (m *memStore) Write(_ context.Context, lines []string) ([]influx.Poison, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite != nil {
		return nil, m.failWrite
	}
	for _, l := range lines {
		m.apply(l)
	}
	return nil, nil
}

// apply stores a `reading` line (others are left out).
func (m *memStore) apply(l string) {
	parts := strings.Split(l, " ")
	if !strings.HasPrefix(parts[0], "reading,") {
		return
	}
	t, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		panic(l)
	}
	p := m.pts[t]
	if p == nil {
		p = map[string]float64{}
		m.pts[t] = p
	}
	for _, f := range strings.Split(parts[1], ",") {
		k, v, _ := strings.Cut(f, "=")
		x, err := strconv.ParseFloat(strings.TrimSuffix(v, "i"), 64)
		if err != nil {
			panic(l)
		}
		p[k] = x
	}
}

// snapshot renders every stored point.
func (m *memStore) snapshot() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(m.pts)) {
		fmt.Fprintf(&b, "%d", t)
		for _, k := range slices.Sorted(maps.Keys(m.pts[t])) {
			fmt.Fprintf(&b, " %s=%v", k, m.pts[t][k])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// deliveringJournal delivers each record to the stores at once, unless it
// would hold more than max entries (ErrFull; 0: no bound).
type deliveringJournal struct {
	mu      sync.Mutex
	stores  []*memStore
	max     int
	entries []journal.Entry
}

func (j *deliveringJournal) Add(r *journal.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.max > 0 && len(j.entries)+len(r.Entries) > j.max {
		return fmt.Errorf("%w (test bound)", journal.ErrFull)
	}
	j.entries = append(j.entries, r.Entries...)
	for _, s := range j.stores {
		var lines []string
		for _, e := range r.Entries {
			lines = append(lines, e.Line)
		}
		s.mu.Lock()
		for _, l := range lines {
			s.apply(l)
		}
		s.mu.Unlock()
	}
	return nil
}
func (j *deliveringJournal) Last() uint64             { return 0 }
func (j *deliveringJournal) Position(_ string) uint64 { return 0 }
func (j *deliveringJournal) added() []journal.Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// seedLevels stores n 10-minute points of level_m (and its flag and rated
// flow) of station s from t0.
func seedLevels(t *testing.T, st *registry.Station, s *memStore, n int) {
	t.Helper()
	for i := range n {
		h := 1 + 0.001*float64(i%500)
		q, err := ratedFlow(st, at(i), h)
		if err != nil {
			t.Fatal(err)
		}
		s.pts[at(i).UnixNano()] = map[string]float64{"level_m": h, "level_m_qc": 1, "flow_rated_m3s": q, "flow_rated_m3s_qc": 1}
	}
}

func testCurator(t *testing.T, path string, j Journal, token string, stores ...*memStore) *Curator {
	t.Helper()
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	var outs []Output
	for i, s := range stores {
		outs = append(outs, Output{Name: fmt.Sprint("out", i), Store: s})
	}
	c, err := New(Options{Registry: reg, Journal: j, Outputs: outs, LogPath: path, Token: token,
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
