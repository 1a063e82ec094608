package curate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest"
	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/run"
	"github.com/rivermon/rivermon/internal/testenv"
)

// reprocessStation reports level_m and water_temp_c; its flow is rated.
const reprocessStation = "yarlung-dazhuka"

func shippedRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.LoadFile(filepath.Join("..", "..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// revisedRegistry is the shipped registry with what a hydrologist adds
// after the fact for reprocessStation: a curve version from start+4 days
// (narrower than the old one: 0.40 to 5.0 m), a shift of +0.08 m from day 2
// to day 6 (across the version change) and an open-ended one of −0.05 m
// from day 8.
func revisedRegistry(t testing.TB, start time.Time) *registry.Registry {
	r := shippedRegistry(t)
	st := r.Station(reprocessStation)
	st.Rating = append(st.Rating, registry.Rating{
		ValidFrom: start.AddDate(0, 0, 4),
		Segments: []registry.Segment{
			{HMin: 0.40, HMax: 3.0, C: 70.2, E: 0.35, B: 1.75},
			{HMin: 3.0, HMax: 5.0, C: 120.4, E: 0.7, B: 1.55},
		},
	})
	st.Shifts = []registry.Shift{
		{From: start.AddDate(0, 0, 2), To: start.AddDate(0, 0, 6), DH: 0.08},
		{From: start.AddDate(0, 0, 8), DH: -0.05},
	}
	return r
}

// stages is the stage series of the test: a daily wave between 0.5 and
// 3.5 m, a flood to 5.6 m on day 5 (above the new curve), low water on
// days 2 and 9 (0.25 m: below the old curve, rated with the shift of day
// 2), and a spike every 500 values (its neighbours' flags are revised when
// the next value comes).
func stages(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		day, frac := i/288, float64(i%288)/288
		h := 2.0 + 1.5*math.Sin(2*math.Pi*frac)
		switch {
		case day == 5:
			h += 2.1 * math.Sin(math.Pi*frac) // up to 5.6 m at noon
		case day == 2 || day == 9:
			h = 0.25 + 0.1*math.Sin(2*math.Pi*frac) // 0.15 to 0.35 m
		}
		if i%500 == 250 {
			h += 0.6
		}
		out[i] = math.Round(h*1000) / 1000
	}
	return out
}

// nopPublisher takes the dead letters.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, bool, []byte) error { return nil }

// rig is rivermon's intake, stream and delivery around a journal, writing
// to one database of a real InfluxDB, as cmd/rivermon/app wires them.
type rig struct {
	journal *journal.Journal
	intake  *ingest.Intake
	store   *influx.Writer
}

func startRig(t testing.TB, in *testenv.Influx, db string, reg *registry.Registry, spoolMax int64) *rig {
	t.Helper()
	sp, _, err := spool.Open(t.TempDir(), spool.Options{Readers: journal.Readers([]string{"default"})})
	if err != nil {
		t.Fatal(err)
	}
	m := ingest.NewMetrics(nil)
	r := &rig{journal: journal.New(sp, journal.Options{MaxBytes: spoolMax})}
	r.intake = ingest.NewIntake(ingest.IntakeOptions{Journal: r.journal, Metrics: m})
	stream := ingest.NewStream(ingest.StreamOptions{Registry: reg, TopicPrefix: "rivermon/v1", Intake: r.intake, Metrics: m})
	r.store = influx.New(influx.Options{URL: in.URL, Bucket: db + "/autogen"})
	delivery := ingest.NewDelivery(ingest.DeliveryOptions{Journal: r.journal, Metrics: m, TopicPrefix: "rivermon/v1",
		Outputs: []ingest.Output{{Name: "default", Writer: r.store}}, DeadLetters: nopPublisher{}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var g run.Group
		g.Go("delivery", delivery.Run)
		g.Go("stream", stream.Run)
		done <- g.Wait(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		r.store.Close()
		sp.Close()
	})
	return r
}

// ingest sends the stages (from start, every 5 minutes) as MQTT messages
// of a day each, and waits until InfluxDB has every point.
func (r *rig) ingest(t testing.TB, start time.Time, hs []float64) {
	t.Helper()
	var acked atomic.Int64
	msgs := 0
	for lo := 0; lo < len(hs); lo += 288 {
		var ss []string
		for i := lo; i < min(lo+288, len(hs)); i++ {
			at := start.Add(time.Duration(i) * 5 * time.Minute)
			ss = append(ss, fmt.Sprintf(`{"time": %q, "values": {"level_m": %v, "water_temp_c": %v}}`,
				at.Format(time.RFC3339), hs[i], 8+float64(i%7)/10))
		}
		payload := `{"station": "` + reprocessStation + `", "samples": [` + strings.Join(ss, ",") + `]}`
		r.intake.Source(ingest.SourceMQTT)("rivermon/v1/stations/"+reprocessStation+"/readings", []byte(payload), time.Now(), func() { acked.Add(1) })
		msgs++
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return acked.Load() == int64(msgs) }, "messages not acknowledged")
	r.drain(t)
}

// drain waits until delivery has written everything the journal holds.
func (r *rig) drain(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.journal.Drained(ctx); err != nil {
		t.Fatalf("journal not delivered: %v", err)
	}
}

// stored reads every stored reading point of the station in db, by time.
func stored(t testing.TB, in *testenv.Influx, db string) map[int64]map[string]any {
	t.Helper()
	ss, err := in.Query(db, `SELECT * FROM reading WHERE station = '`+reprocessStation+`'`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]map[string]any{}
	for _, s := range ss {
		for _, row := range s.Rows() {
			ns, _ := row["time"].(json.Number).Int64()
			for k, v := range row {
				if v == nil {
					delete(row, k)
				}
			}
			out[ns] = row
		}
	}
	return out
}

func number(v any) float64 {
	n, _ := v.(json.Number)
	f, _ := n.Float64()
	return f
}

// TestReprocessGivesWhatIngestingAfreshGives is the reprocess's promise:
// a station's stages stored with the old rating, reprocessed after a
// back-dated curve version and shifts were added, hold value by value
// what rivermon stores when it ingests the same messages with the new
// registry — but for the stages the new registry no longer rates, whose
// old flow stays (InfluxDB cannot take a field out of a point) failed.
func TestReprocessGivesWhatIngestingAfreshGives(t *testing.T) {
	in := testenv.StartInflux(t)
	in.Exec(t, "CREATE DATABASE fresh")
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	hs := stages(10 * 288)
	oldReg, newReg := shippedRegistry(t), revisedRegistry(t, start)

	old := startRig(t, in, "rivermon", oldReg, 0)
	old.ingest(t, start, hs)
	fresh := startRig(t, in, "fresh", newReg, 0)
	fresh.ingest(t, start, hs)
	before := stored(t, in, "rivermon")
	if len(before) != len(hs) {
		t.Fatalf("%d points stored, want %d", len(before), len(hs))
	}

	rp := NewRatingReprocessor(RatingReprocessorOptions{Registry: newReg, Store: old.store, Journal: old.journal, Logger: testLogger(t)})
	var calls, total int
	n, err := rp.Reprocess(t.Context(), reprocessStation, start, start.Add(time.Duration(len(hs)-1)*5*time.Minute),
		func(done, tot int) { calls, total = done, tot })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 10 || total != 10 {
		t.Errorf("progress %d of %d, want 10 of 10 (a batch a day)", calls, total)
	}
	old.drain(t)

	got, want := stored(t, in, "rivermon"), stored(t, in, "fresh")
	if len(got) != len(want) {
		t.Fatalf("%d points reprocessed, %d ingested afresh", len(got), len(want))
	}
	st := newReg.Station(reprocessStation)
	var rated, failed, newlyRated, changed int
	for ns, w := range want {
		g, at := got[ns], time.Unix(0, ns).UTC()
		// The stream applies the new registry, shifts included.
		q, rerr := hydro.RatedFlow(st, at, number(w["level_m"]))
		if _, has := w["flow_rated_m3s"]; has != (rerr == nil) || (has && number(w["flow_rated_m3s"]) != q) {
			t.Errorf("%s: ingested afresh flow_rated_m3s = %v, want %v (%v)", at, w["flow_rated_m3s"], q, rerr)
		}
		if _, had := before[ns]["flow_rated_m3s"]; !had && rerr == nil {
			newlyRated++
		}
		if before[ns]["flow_rated_m3s"] != g["flow_rated_m3s"] {
			changed++
		}
		if _, has := w["flow_rated_m3s"]; !has && g["flow_rated_m3s"] != nil {
			// Rated with the old curve, not with the new: the old value
			// stays, failed.
			failed++
			if g["flow_rated_m3s"] != before[ns]["flow_rated_m3s"] || fmt.Sprint(g["flow_rated_m3s_qc"]) != "4" {
				t.Errorf("%s: stage %v no longer rated: flow %v qc %v, want the old flow %v failed (4)", at, w["level_m"],
					g["flow_rated_m3s"], g["flow_rated_m3s_qc"], before[ns]["flow_rated_m3s"])
			}
			delete(g, "flow_rated_m3s")
			delete(g, "flow_rated_m3s_qc")
			w = maps.Clone(w)
			delete(w, "flow_rated_m3s_qc")
		} else if rerr == nil {
			rated++
		}
		for _, k := range keys(g, w) {
			if fmt.Sprint(g[k]) != fmt.Sprint(w[k]) {
				t.Errorf("%s: %s = %v reprocessed, %v ingested afresh", at, k, g[k], w[k])
			}
		}
	}
	t.Logf("%d points rewritten: %d rated, %d newly rated, %d values changed, %d no longer rated (failed)", n, rated, newlyRated, changed, failed)
	// The series exercises every case.
	if rated < 2000 || newlyRated == 0 || failed == 0 || changed < 1000 || n < changed {
		t.Errorf("the test series misses a case: %d rated, %d newly rated, %d failed, %d changed, %d rewritten", rated, newlyRated, failed, changed, n)
	}
	// Again: nothing left to change.
	if n, err := rp.Reprocess(t.Context(), reprocessStation, start, start.AddDate(0, 0, 10), nil); err != nil || n != 0 {
		t.Errorf("a second reprocess rewrote %d points (%v), want none", n, err)
	}
}

func testLogger(t testing.TB) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// keys is the union of the keys of two rows.
func keys(a, b map[string]any) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// TestRerate: what a reprocess writes of one stored point.
func TestRerate(t *testing.T) {
	reg := shippedRegistry(t)
	st := reg.Station(reprocessStation)
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	q, err := hydro.RatedFlow(st, at, 2)
	if err != nil {
		t.Fatal(err)
	}
	series := "reading,river=yarlung,station=" + reprocessStation + " "
	stamp := fmt.Sprintf(" %d", at.UnixNano())
	qs := strconv.FormatFloat(q, 'g', -1, 64)
	for _, c := range []struct {
		name string
		p    ratedPoint
		want string // "" nothing
	}{
		{"newly rated", ratedPoint{level: 2, levelFlag: 1}, "flow_rated_m3s=" + qs + ",flow_rated_m3s_qc=1i"},
		{"unchanged", ratedPoint{level: 2, levelFlag: 1, flow: q, hasFlow: true, flowFlag: 1, hasFlowFlag: true}, ""},
		{"flag differs", ratedPoint{level: 2, levelFlag: 3, flow: q, hasFlow: true, flowFlag: 1, hasFlowFlag: true}, "flow_rated_m3s=" + qs + ",flow_rated_m3s_qc=3i"},
		{"value differs", ratedPoint{level: 2, levelFlag: 1, flow: q + 1, hasFlow: true, flowFlag: 1, hasFlowFlag: true}, "flow_rated_m3s=" + qs},
		{"a revision's flag without a flow", ratedPoint{level: 2, levelFlag: 4, flowFlag: 4, hasFlowFlag: true}, "flow_rated_m3s=" + qs},
		{"no longer rated", ratedPoint{level: 20, levelFlag: 1, flow: 5, hasFlow: true, flowFlag: 1, hasFlowFlag: true}, "flow_rated_m3s_qc=4i"},
		{"no longer rated, failed already", ratedPoint{level: 20, levelFlag: 1, flow: 5, hasFlow: true, flowFlag: 4, hasFlowFlag: true}, ""},
		{"never rated", ratedPoint{level: 20, levelFlag: 1}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.p.t = at
			e, _ := rerate(nil, st, "yarlung", &c.p)
			want := ""
			if c.want != "" {
				want = series + c.want + stamp
			}
			if e.Line != want {
				t.Errorf("line %q, want %q", e.Line, want)
			}
			if want != "" && (e.Kind != journal.KindCorrected || e.Station != reprocessStation || !e.Time.Equal(at) || e.Source != SourceReprocess) {
				t.Errorf("entry %+v", e)
			}
		})
	}
}

// fakeSpool refuses records as full, first while refusals lasts, then
// any of more than maxEntries entries (with nothing in it, as a record
// larger than the bound).
type fakeSpool struct {
	refusals   int
	maxEntries int
	bytes      int64
	entries    []journal.Entry
	records    int
}

func (f *fakeSpool) Add(rec *journal.Record) error {
	if f.refusals > 0 {
		f.refusals--
		return fmt.Errorf("%w (test)", journal.ErrFull)
	}
	if f.maxEntries > 0 && len(rec.Entries) > f.maxEntries {
		return journal.ErrFull
	}
	f.records++
	f.entries = append(f.entries, rec.Entries...)
	return nil
}

func (f *fakeSpool) Bytes() int64 { return f.bytes }

// TestAddWaitsAndSplitsNeverDrops: a full journal is tried again until it
// takes the record, a record larger than its bound goes in pieces, and a
// cancelled context is the only way out.
func TestAddWaitsAndSplitsNeverDrops(t *testing.T) {
	entries := make([]journal.Entry, 100)
	for i := range entries {
		entries[i].Line = strconv.Itoa(i)
	}
	sp := &fakeSpool{refusals: 3, maxEntries: 30}
	rp := NewRatingReprocessor(RatingReprocessorOptions{Journal: sp, Wait: 10 * time.Millisecond, Logger: testLogger(t)})
	if err := rp.add(t.Context(), entries); err != nil {
		t.Fatal(err)
	}
	if len(sp.entries) != 100 || sp.records < 4 {
		t.Fatalf("%d entries in %d records, want 100 in at least 4", len(sp.entries), sp.records)
	}
	for i, e := range sp.entries {
		if e.Line != strconv.Itoa(i) {
			t.Fatalf("entry %d is %q: out of order", i, e.Line)
		}
	}
	// Over MaxSpoolBytes it waits without trying.
	sp = &fakeSpool{bytes: 1 << 30}
	rp = NewRatingReprocessor(RatingReprocessorOptions{Journal: sp, Wait: 10 * time.Millisecond, Logger: testLogger(t)})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := rp.add(ctx, entries); err != context.DeadlineExceeded || len(sp.entries) != 0 {
		t.Errorf("err %v, %d entries added; want to wait until the context ends", err, len(sp.entries))
	}
}

// discard is a logger that says nothing (benchmarks).
var discard = slog.New(slog.DiscardHandler)

// blockingStore holds every query until release is closed.
type blockingStore struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingStore) Query(ctx context.Context, _ string, _ func([]influx.Series)) error {
	select {
	case b.started <- struct{}{}:
	default:
	}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestReprocessOneAtATimeAfterDelivery: a reprocess waits for delivery
// first (and stops when that fails), refuses a bad request, and a second
// one is refused while the first runs.
func TestReprocessOneAtATimeAfterDelivery(t *testing.T) {
	reg := shippedRegistry(t)
	from := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	bs := &blockingStore{started: make(chan struct{}, 1), release: make(chan struct{})}
	waited := errors.New("output down")
	rp := NewRatingReprocessor(RatingReprocessorOptions{Registry: reg, Store: bs, Journal: &fakeSpool{}, Logger: testLogger(t),
		AwaitDelivered: func(context.Context) error { return waited }})
	if _, err := rp.Reprocess(t.Context(), reprocessStation, from, from.AddDate(0, 0, 1), nil); !errors.Is(err, waited) {
		t.Errorf("err = %v, want the wait's", err)
	}
	waited = nil
	for _, c := range []struct {
		station  string
		from, to time.Time
	}{{"nowhere", from, from}, {reprocessStation, from, from.Add(-time.Second)}, {reprocessStation, time.Time{}, from}, {reprocessStation, time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), from}} {
		if _, err := rp.Reprocess(t.Context(), c.station, c.from, c.to, nil); !errors.Is(err, ErrReprocessRequest) {
			t.Errorf("%s %s–%s: err = %v, want a refused request", c.station, c.from, c.to, err)
		}
	}
	done := make(chan error)
	go func() {
		_, err := rp.Reprocess(t.Context(), reprocessStation, from, from.AddDate(0, 0, 1), nil)
		done <- err
	}()
	<-bs.started
	if _, err := rp.Reprocess(t.Context(), reprocessStation, from, from, nil); !errors.Is(err, ErrReprocessRunning) {
		t.Errorf("second reprocess: err = %v, want ErrReprocessRunning", err)
	}
	close(bs.release)
	if err := <-done; err != nil {
		t.Error(err)
	}
}
