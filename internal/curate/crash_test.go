package curate

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/registry"
)

func ptr(v float64) *float64 { return &v }

// A correction the journal has no room for (all of it, or its last
// records) changes nothing: no point of it is queued, and neither the log
// nor the state has it, so that it can simply be sent again.
func TestCorrectionRefusedWholeWhenTheSpoolIsFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	st := testStation(t)
	seedLevels(t, st, s, 6000) // over one record of 5,000 points
	original := s.snapshot()
	j := &deliveringJournal{stores: []*memStore{s}, max: 5500}
	c := testCurator(t, path, j, "", s)
	id, err := c.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpOffset,
		From: at(0).Format(time.RFC3339), To: at(5999).Format(time.RFC3339), Value: ptr(0.01), Author: "a", Reason: "r"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("correction with the spool full: %q, %v; want 503", id, err)
	}
	if n := len(j.added()); n != 0 {
		t.Errorf("%d points of a refused correction were queued", n)
	}
	if s.snapshot() != original {
		t.Error("a refused correction changed stored points")
	}
	if len(c.corrections) != 0 {
		t.Errorf("the state holds a refused correction: %+v", c.corrections[0])
	}
	c.Close()
	c = testCurator(t, path, &deliveringJournal{}, "", s)
	defer c.Close()
	if len(c.corrections) != 0 {
		t.Errorf("the log holds a refused correction: %+v", c.corrections[0])
	}
	// Room again: the same request goes through.
	j.max = 0
	c2 := c
	c2.o.Journal = j
	if _, err := c2.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpOffset,
		From: at(0).Format(time.RFC3339), To: at(5999).Format(time.RFC3339), Value: ptr(0.01), Author: "a", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
}

// An undo cut short (a crash) is finished once at start, not at every
// start: written again at a later start, the points would overwrite what
// was written to them since (another correction, a QC revision).
func TestUnfinishedRestoreWrittenAgainOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	st := testStation(t)
	seedLevels(t, st, s, 3)
	j := &deliveringJournal{stores: []*memStore{s}}
	c := testCurator(t, path, j, "", s)
	id, err := c.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpSet,
		From: at(0).Format(time.RFC3339), To: at(2).Format(time.RFC3339), Value: ptr(1.2), Author: "a", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	// The undo's restore is logged, then the crash.
	if err := c.log.append(&logRecord{Type: "restore", At: t0, ID: id, Station: "s",
		Lines: []string{"reading,river=r,station=s level_m=1.5,level_m_qc=1i " + itoa(at(1).UnixNano())}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	j2 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j2, "", s)
	if n := len(j2.added()); n != 1 {
		t.Fatalf("first start after the crash wrote %d points again, want 1", n)
	}
	c.Close()
	j3 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j3, "", s)
	defer c.Close()
	if n := len(j3.added()); n != 0 {
		t.Errorf("a second start wrote the unfinished undo's %d points again", n)
	}
	// And the undo can still be finished.
	if err := c.Undo(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// An undo whose rewrite fails after it deleted a day (InfluxDB refuses
// the write) loses no point: tried again, it puts every point back
// exactly as it was before the correction.
func TestUndoFailingAfterTheDeleteLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	st := testStation(t)
	seedLevels(t, st, s, 12)
	original := s.snapshot()
	j := &deliveringJournal{stores: []*memStore{s}}
	c := testCurator(t, path, j, "", s)
	defer c.Close()
	id, err := c.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpOffset,
		From: at(2).Format(time.RFC3339), To: at(8).Format(time.RFC3339), Value: ptr(0.05), Author: "a", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.failWrite = errors.New("influxdb down")
	s.mu.Unlock()
	if err := c.Undo(context.Background(), id); err == nil {
		t.Fatal("undo succeeded with InfluxDB refusing writes")
	}
	s.mu.Lock()
	s.failWrite = nil
	s.mu.Unlock()
	if err := c.Undo(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if got := s.snapshot(); got != original {
		t.Errorf("after the undo tried again:\n%s\nwant\n%s", got, original)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A correction of a graded item rewrites the class of the samples its
// value stands for, past its range: when they are on an approved day, the
// correction is refused without force (409) and reopens the day with it;
// its undo is refused while the day is approved again.
func TestCorrectionOfTheClassOnAnApprovedDay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	// 12:00 to 23:50 UTC: 20:00 on 1 June to 07:50 on 2 June, local.
	start := t0.Add(12 * time.Hour)
	for i := range 72 {
		tt := start.Add(time.Duration(i) * 10 * time.Minute)
		p := map[string]float64{"ph": 7.5, "ph_qc": 1, "wq_class": 1}
		if i%18 == 0 { // NH3-N every 3 h: 12:00, 15:00, 18:00, 21:00
			p["nh3n_mgl"], p["nh3n_mgl_qc"] = 0.1, 1
		}
		s.pts[tt.UnixNano()] = p
	}
	j := &deliveringJournal{stores: []*memStore{s}}
	c := testCurator(t, path, j, "", s)
	defer c.Close()
	if _, err := c.Approve(context.Background(), ApprovalRequest{Station: "s", From: "2026-06-02", To: "2026-06-02",
		Level: Approved, Author: "a", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	// NH3-N at 15:00 UTC (23:00 local, 1 June) stands until 18:00 UTC
	// (02:00 local, 2 June): the class of an hour of 2 June follows it.
	at15 := start.Add(3 * time.Hour).Format(time.RFC3339)
	req := Request{Station: "s", Param: "nh3n_mgl", Op: OpSet, From: at15, To: at15, Value: ptr(1.2), Author: "a", Reason: "r"}
	before := s.snapshot()
	_, err := c.Correct(context.Background(), req)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("correction changing the class on an approved day: %v, want 409", err)
	}
	if s.snapshot() != before {
		t.Error("the refused correction changed stored points")
	}
	req.Force = true
	id, err := c.Correct(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.Level("s", start.Add(5*time.Hour)) != Provisional {
		t.Error("the forced correction left 2 June approved")
	}
	if _, err := c.Approve(context.Background(), ApprovalRequest{Station: "s", From: "2026-06-02", To: "2026-06-02",
		Level: Approved, Author: "a", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Undo(context.Background(), id); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("undo changing the class on an approved day: %v, want 409", err)
	}
}

// gatedStore is a memStore whose queries ending in suffix read the
// points, then wait until release is closed to hand them over.
type gatedStore struct {
	*memStore
	suffix  string // of the statements held
	started chan struct{}
	release chan struct{}
}

func (g *gatedStore) Query(ctx context.Context, stmt string, each func([]influx.Series)) error {
	if strings.HasSuffix(stmt, g.suffix) {
		var read [][]influx.Series
		if err := g.memStore.Query(ctx, stmt, func(s []influx.Series) { read = append(read, s) }); err != nil {
			return err
		}
		select {
		case g.started <- struct{}{}:
		default:
		}
		select {
		case <-g.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, s := range read {
			each(s)
		}
		return nil
	}
	return g.memStore.Query(ctx, stmt, each)
}

// A reprocess reads a day's stages and writes the flows it rates from
// them: a correction of the station's stages made in between would be
// overwritten by flows of the stages before it. Corrections and undos of
// the station are refused (409) while its reprocess runs.
func TestCorrectionRefusedWhileTheStationIsReprocessed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	st := testStation(t)
	seedLevels(t, st, s, 12)
	g := &gatedStore{memStore: s, suffix: "GROUP BY river", started: make(chan struct{}, 1), release: make(chan struct{})}
	j := &deliveringJournal{stores: []*memStore{s}}
	// The shift revised for the past: what a reprocess is for.
	reg, err := registry.Load("stations.yaml", []byte(strings.Replace(testRegistry, "dh: 0.05", "dh: 0.15", 1)))
	if err != nil {
		t.Fatal(err)
	}
	rp := NewRatingReprocessor(RatingReprocessorOptions{Registry: reg, Store: g, Journal: &spoolOf{j}, Logger: testLogger(t)})
	c, err := New(Options{Registry: reg, Journal: j, Outputs: []Output{{Name: "out0", Store: s}}, LogPath: path,
		Token: "tok", Reprocessor: rp, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mux := http.NewServeMux()
	c.Register(mux)
	done := make(chan int)
	go func() {
		req := httptest.NewRequest("POST", "/api/v1/reprocess", strings.NewReader(
			`{"station": "s", "from": "`+at(0).Format(time.RFC3339)+`", "to": "`+at(11).Format(time.RFC3339)+`"}`))
		req.Header.Set("Authorization", "Bearer tok")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		done <- w.Code
	}()
	<-g.started
	req := Request{Station: "s", Param: "level_m", Op: OpSet, From: at(3).Format(time.RFC3339), To: at(3).Format(time.RFC3339),
		Value: ptr(1.5), Author: "a", Reason: "r"}
	_, err = c.Correct(context.Background(), req)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Errorf("correction during the station's reprocess: %v, want 409", err)
	}
	close(g.release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("reprocess answered %d", code)
	}
	consistent := func() {
		t.Helper()
		rst := reg.Station("s")
		for i := range 12 {
			p := s.pts[at(i).UnixNano()]
			if q, _ := ratedFlow(rst, at(i), p["level_m"]); p["flow_rated_m3s"] != q {
				t.Errorf("point %d: stage %v with rated flow %v, want %v", i, p["level_m"], p["flow_rated_m3s"], q)
			}
		}
	}
	consistent()
	if _, err := c.Correct(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	consistent()
}

// spoolOf is a journal as a reprocess uses it.
type spoolOf struct{ *deliveringJournal }

func (spoolOf) Bytes() int64 { return 0 }

// Close waits for a change under way, which is then made whole (log and
// journal), and the changes asked for after it are refused (503), not
// half made on a closed log.
func TestCloseWaitsForTheChangeUnderWay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	seedLevels(t, testStation(t), s, 12)
	g := &gatedStore{memStore: s, suffix: "<= " + itoa(at(11).UnixNano()), started: make(chan struct{}, 1), release: make(chan struct{})}
	j := &deliveringJournal{stores: []*memStore{s}}
	reg, err := registry.Load("stations.yaml", []byte(testRegistry))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Registry: reg, Journal: j, Outputs: []Output{{Name: "out0", Store: g}}, LogPath: path, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Station: "s", Param: "level_m", Op: OpOffset, From: at(0).Format(time.RFC3339), To: at(11).Format(time.RFC3339),
		Value: ptr(0.1), Author: "a", Reason: "r"}
	made := make(chan error)
	go func() {
		_, err := c.Correct(context.Background(), req)
		made <- err
	}()
	<-g.started
	closed := make(chan error)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
		t.Error("Close returned while a correction was under way")
		closed = nil
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	if err := <-made; err != nil {
		t.Errorf("the correction under way at Close: %v", err)
	}
	if closed != nil {
		if err := <-closed; err != nil {
			t.Error(err)
		}
	}
	if _, err := c.Correct(context.Background(), req); err == nil {
		t.Error("a correction after Close was made")
	} else if e := new(Error); !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Errorf("a correction after Close: %v, want 503", err)
	}
	c = testCurator(t, path, &deliveringJournal{}, "", s)
	defer c.Close()
	if len(c.corrections) != 1 || len(j.added()) != 12+1 {
		t.Errorf("%d corrections in the log, %d entries queued; want 1 and 13", len(c.corrections), len(j.added()))
	}
}

// Corrected says where a correction not undone stands, for the stream.
func TestCorrectedWhereACorrectionStands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	seedLevels(t, testStation(t), s, 12)
	c := testCurator(t, path, &deliveringJournal{stores: []*memStore{s}}, "", s)
	id, err := c.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpSet,
		From: at(2).Format(time.RFC3339), To: at(4).Format(time.RFC3339), Value: ptr(1.2), Author: "a", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, want bool) {
		t.Helper()
		for i := range 12 {
			if got := c.Corrected("s", "level_m", at(i)); got != (want && i >= 2 && i <= 4) {
				t.Errorf("%s: sample %d corrected %v", when, i, got)
			}
		}
		if c.Corrected("s", "ph", at(3)) {
			t.Errorf("%s: ph corrected", when)
		}
	}
	check("made", true)
	c.Close()
	c = testCurator(t, path, &deliveringJournal{stores: []*memStore{s}}, "", s)
	defer c.Close()
	check("after a restart", true)
	if err := c.Undo(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	check("undone", false)
}

// A correction logged but not queued (rivermon stopped between the two)
// is queued at start, once; one made whole is not queued again.
func TestLoggedCorrectionQueuedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	seedLevels(t, testStation(t), s, 12)
	j := &deliveringJournal{stores: []*memStore{s}}
	c := testCurator(t, path, j, "", s)
	req := Request{Station: "s", Param: "level_m", Op: OpSet, From: at(2).Format(time.RFC3339), To: at(4).Format(time.RFC3339),
		Value: ptr(1.2), Author: "a", Reason: "r"}
	if _, err := c.Correct(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	c.Close()
	j2 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j2, "", s)
	if n := len(j2.added()); n != 0 {
		t.Errorf("a start queued %d points of a correction made whole", n)
	}
	// The crash: logged, not queued.
	k := &Correction{ID: "c-zzzzzzzz", Station: "s", River: "r", Param: "level_m", Op: OpSet, From: at(6), To: at(6), Value: 1.4,
		Author: "a", Reason: "r", Made: t0, Points: []Point{{T: at(6), Before: map[string]*float64{"level_m": ptr(1.006)},
			After: map[string]float64{"level_m": 1.4, "level_m_qc": 1}}}}
	if err := c.log.append(&logRecord{Type: "correction", At: t0, Correction: k}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	j3 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j3, "", s)
	c.Close()
	if e := j3.added(); len(e) != 2 || s.pts[at(6).UnixNano()]["level_m"] != 1.4 || !strings.HasPrefix(e[1].Line, "correction,") {
		t.Errorf("the logged correction queued at start as %+v", e)
	}
	j4 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j4, "", s)
	defer c.Close()
	if n := len(j4.added()); n != 0 {
		t.Errorf("a second start queued the correction's %d points again", n)
	}
}

// An undo whose `correction` point (undone) the spool had no room for
// gets it queued at the next start.
func TestUndoRecordQueuedAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "curation.log")
	s := newMemStore()
	seedLevels(t, testStation(t), s, 12)
	j := &deliveringJournal{stores: []*memStore{s}}
	c := testCurator(t, path, j, "", s)
	id, err := c.Correct(context.Background(), Request{Station: "s", Param: "level_m", Op: OpOffset,
		From: at(2).Format(time.RFC3339), To: at(4).Format(time.RFC3339), Value: ptr(0.1), Author: "a", Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	// Room for the restored points, not for the undo's record.
	j.max = len(j.added()) + 3
	if err := c.Undo(context.Background(), id); err == nil {
		t.Fatal("undo with no room for its record: no error")
	}
	c.Close()
	j2 := &deliveringJournal{stores: []*memStore{s}}
	c = testCurator(t, path, j2, "", s)
	defer c.Close()
	if e := j2.added(); len(e) != 1 || !strings.Contains(e[0].Line, "undone=true") {
		t.Errorf("queued at start: %+v, want the undone correction's point", e)
	}
}
