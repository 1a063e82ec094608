package quality

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/strictyaml"
)

// The series of domain.md §1.3 ("Edge cases observed by running QC-PY"):
// x = [1.0, 1.0, 5.0, 1.0, NaN, 1.0, 1.2, 1.2, 1.2, 1.2], every 900 s. A NaN
// never reaches rivermon (it is rejected as bad_value), so index 4 is simply
// absent here; the expected flags below are worked out by hand from the
// ioos_qc rules, and differ from ioos_qc's output only where its NaN
// handling does (noted per case).
var (
	t0     = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	refIdx = []int{0, 1, 2, 3, 5, 6, 7, 8, 9}
	refX   = []float64{1.0, 1.0, 5.0, 1.0, 1.0, 1.2, 1.2, 1.2, 1.2}
)

const step = 900 * time.Second

func run(cfg registry.QC) []Flags {
	s := NewSeries(cfg, step)
	out := make([]Flags, len(refX))
	for k, x := range refX {
		f, rev := s.Add(t0.Add(time.Duration(refIdx[k])*step), x)
		out[k] = f
		if k > 0 {
			// The previous value's spike flag is known now.
			out[k-1].Spike = s.last[0].Spike
			if rev != nil && rev.Flag != out[k-1].Aggregate() {
				panic(fmt.Sprintf("revision %v disagrees with %v", rev.Flag, out[k-1]))
			}
		}
	}
	return out
}

func pick(fs []Flags, get func(Flags) Flag) []Flag {
	out := make([]Flag, len(fs))
	for i, f := range fs {
		out[i] = get(f)
	}
	return out
}

func TestReferenceCases(t *testing.T) {
	cases := []struct {
		name string
		cfg  registry.QC
		get  func(Flags) Flag
		want []Flag // for the 9 present values
		note string
	}{
		{
			name: "gross range fail (0,4) suspect (1.1,3)",
			cfg:  registry.QC{GrossRange: &registry.GrossRange{Fail: []float64{0, 4}, Suspect: []float64{1.1, 3}}},
			get:  func(f Flags) Flag { return f.Gross },
			want: []Flag{3, 3, 4, 3, 3, 1, 1, 1, 1}, // ioos_qc: 3 3 4 3 9 3 1 1 1 1
		},
		{
			name: "spike average suspect 1 fail 3",
			cfg:  registry.QC{Spike: &registry.Spike{Suspect: 1, Fail: 3}},
			get:  func(f Flags) Flag { return f.Spike },
			want: []Flag{2, 3, 4, 3, 1, 1, 1, 1, 2},
			note: "ioos_qc: 2 3 4 2 9 2 1 1 1 2 — idx3 and idx5 have real neighbours here, not a NaN",
		},
		{
			name: "rate of change 1/900 per s (4 per hour)",
			cfg:  registry.QC{RateOfChange: &registry.RateOfChange{SuspectPerHour: 4}},
			get:  func(f Flags) Flag { return f.ROC },
			want: []Flag{2, 1, 3, 3, 1, 1, 1, 1, 1},
			note: "ioos_qc: 1 1 4 4 9 1 …; no fail level is configured for ROC (QARTOD defines none); the first value has no predecessor: 2",
		},
		{
			name: "flat line 1800 s / 2700 s, tolerance 0.01",
			cfg:  registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(1800 * time.Second), Fail: dur(2700 * time.Second), Tolerance: 0.01}},
			get:  func(f Flags) Flag { return f.Flat },
			want: []Flag{1, 1, 1, 1, 1, 1, 1, 3, 4},
			note: "ioos_qc: 1 1 1 1 9 3 1 1 3 4 — its idx5 is flat only because the NaN is skipped inside the window",
		},
		{
			name: "flat line with the default tolerance 0 never flags",
			cfg:  registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(1800 * time.Second), Fail: dur(2700 * time.Second)}},
			get:  func(f Flags) Flag { return f.Flat },
			want: []Flag{1, 1, 1, 1, 1, 1, 1, 1, 1},
		},
		{
			name: "flat line threshold below the interval does not run",
			cfg:  registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(600 * time.Second), Fail: dur(600 * time.Second), Tolerance: 0.01}},
			get:  func(f Flags) Flag { return f.Flat },
			want: []Flag{1, 1, 1, 1, 1, 1, 1, 1, 1},
			note: "ioos_qc fails every value here (count truncates to 0)",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := pick(run(c.cfg), c.get)
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("flags %v, want %v (%s)", got, c.want, c.note)
			}
		})
	}
}

func dur(d time.Duration) strictyaml.Duration { return strictyaml.Duration(d) }

func TestThresholdsAtTheBoundary(t *testing.T) {
	cfg := registry.QC{
		GrossRange:   &registry.GrossRange{Fail: []float64{0, 10}, Suspect: []float64{1, 5}},
		Spike:        &registry.Spike{Suspect: 0.5, Fail: 1},
		RateOfChange: &registry.RateOfChange{SuspectPerHour: 4}, // 1 per 15 min
	}
	s := NewSeries(cfg, step)
	f, _ := s.Add(t0, 5) // at the suspect bound: passes
	if f.Gross != Pass {
		t.Errorf("value at the suspect bound: %v", f.Gross)
	}
	f, _ = s.Add(t0.Add(step), 4) // exactly 1 per 15 min: not above the threshold
	if f.ROC != Pass {
		t.Errorf("rate exactly at the threshold: %v", f.ROC)
	}
	s.Add(t0.Add(2*step), 4) // spike of the 4: |4 − (5+4)/2| = 0.5, exactly the suspect threshold
	if got := s.last[0].Spike; got != Pass {
		t.Errorf("spike exactly at the threshold: %v", got)
	}
	f, _ = s.Add(t0.Add(3*step), 10.0000001)
	if f.Gross != Fail || f.Aggregate() != Fail {
		t.Errorf("beyond the sensor span: %+v", f)
	}
}

func TestGapResetsTheTests(t *testing.T) {
	cfg := registry.QC{RateOfChange: &registry.RateOfChange{SuspectPerHour: 0.5}, Spike: &registry.Spike{Suspect: 0.1, Fail: 0.3},
		FlatLine: &registry.FlatLine{Suspect: dur(30 * time.Minute), Fail: dur(time.Hour), Tolerance: 0.01}}
	s := NewSeries(cfg, 5*time.Minute)
	for i := range 13 {
		s.Add(t0.Add(time.Duration(i)*5*time.Minute), 2.0)
	}
	// Six hours of silence, then a step of 1 m: ROC cannot compare across
	// the gap, spike of the last value before the gap stays 2, and the flat
	// line starts again.
	f, rev := s.Add(t0.Add(6*time.Hour), 3.0)
	if f.ROC != NotEvaluated || f.Flat != Pass || rev != nil {
		t.Errorf("after a gap: %+v, revision %v", f, rev)
	}
	if got := s.last[0]; got.Spike != NotEvaluated || got.Flat != Fail {
		t.Errorf("value before the gap: %+v (flat for an hour: fail)", got)
	}
}

func TestSpikeRevisesThePreviousValue(t *testing.T) {
	s := NewSeries(registry.QC{Spike: &registry.Spike{Suspect: 0.1, Fail: 0.3}, GrossRange: &registry.GrossRange{Fail: []float64{0, 15}}}, 5*time.Minute)
	s.Add(t0, 1.0)
	f, _ := s.Add(t0.Add(5*time.Minute), 1.8) // the spike itself: not known yet
	if f.Spike != NotEvaluated || f.Aggregate() != Pass {
		t.Fatalf("newest value: %+v", f)
	}
	_, rev := s.Add(t0.Add(10*time.Minute), 1.0)
	if rev == nil || !rev.Time.Equal(t0.Add(5*time.Minute)) || rev.Flag != Fail {
		t.Fatalf("revision %+v, want the spike at +5 min to fail", rev)
	}
	// The average method also flags the value after a spike, as ioos_qc
	// does (its reference is pulled by the spike): |1.0 − (1.8+1.0)/2| = 0.4.
	_, rev = s.Add(t0.Add(15*time.Minute), 1.0)
	if rev == nil || !rev.Time.Equal(t0.Add(10*time.Minute)) || rev.Flag != Fail {
		t.Errorf("revision %+v, want the value after the spike to fail", rev)
	}
	_, rev = s.Add(t0.Add(20*time.Minute), 1.0)
	if rev != nil {
		t.Errorf("unneeded revision %+v", rev)
	}
}

func TestLateValueUsesItsNeighbours(t *testing.T) {
	s := NewSeries(registry.QC{Spike: &registry.Spike{Suspect: 0.1, Fail: 0.3}}, 5*time.Minute)
	s.Add(t0, 1.0)
	s.Add(t0.Add(10*time.Minute), 1.0)
	f, rev := s.Add(t0.Add(5*time.Minute), 2.0) // late, between the two
	if f.Spike != Fail || rev != nil {
		t.Errorf("late spike: %+v, revision %v", f, rev)
	}
	f, _ = s.Add(t0.Add(5*time.Minute), 1.0) // the same time again: later value wins
	if f.Spike != Pass || s.Len() != 3 {
		t.Errorf("duplicate: %+v, %d points", f, s.Len())
	}
}

func TestIceSeasonSettings(t *testing.T) {
	zero := 0.5
	winter := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	stage := func() *Series {
		return NewSeries(registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(6 * time.Hour), Fail: dur(24 * time.Hour), Tolerance: 0.002,
			Winter: &registry.FlatLineWinter{Months: []int{12, 1, 2, 3}, Suspect: dur(24 * time.Hour), Fail: dur(72 * time.Hour)}}}, time.Hour)
	}
	temp := NewSeries(registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(12 * time.Hour), Fail: dur(48 * time.Hour), Tolerance: 0.01, SkipBelow: &zero}}, time.Hour)
	level := stage()
	if level.Keep() < 72*time.Hour {
		t.Errorf("the series keeps %v, less than the winter fail window", level.Keep())
	}
	// Under ice a stuck stage is suspect after 24 h and fails after 72 h;
	// water at 0 °C is never judged flat.
	for i := range 80 {
		ft, _ := temp.Add(winter.Add(time.Duration(i)*time.Hour), 0.02)
		fl, _ := level.Add(winter.Add(time.Duration(i)*time.Hour), 0.61)
		want := Pass
		switch {
		case i >= 72:
			want = Fail
		case i >= 24:
			want = Suspect
		}
		if ft.Flat != None || ft.Aggregate() != NotEvaluated || fl.Flat != want {
			t.Fatalf("hour %d under ice: water %+v, stage %+v (want flat %v)", i, ft, fl, want)
		}
	}
	summer := stage()
	var f Flags
	for i := range 25 {
		f, _ = summer.Add(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Hour), 0.61)
	}
	if f.Flat != Fail {
		t.Errorf("a stage stuck for 24 h in July: %v", f.Flat)
	}
}

func TestAggregate(t *testing.T) {
	for _, c := range []struct {
		f    Flags
		want Flag
	}{
		{Flags{}, NotEvaluated},
		{Flags{Spike: NotEvaluated, ROC: NotEvaluated}, NotEvaluated},
		{Flags{Gross: Pass, Spike: NotEvaluated}, Pass},
		{Flags{Gross: Pass, ROC: Suspect, Spike: NotEvaluated}, Suspect},
		{Flags{Gross: Suspect, Flat: Fail}, Fail},
	} {
		if got := c.f.Aggregate(); got != c.want {
			t.Errorf("%+v → %v, want %v", c.f, got, c.want)
		}
	}
}

func TestDOSaturationMatchesTheAltitudeTable(t *testing.T) {
	// domain.md §7.6 (Benson–Krause with ISA pressure).
	for _, c := range []struct{ temp, elev, want float64 }{
		{0, 0, 14.62}, {10, 0, 11.29}, {20, 0, 9.09}, {0, 4000, 8.86}, {10, 3840, 6.96}, {20, 4300, 5.23},
	} {
		if got := DOSaturation(c.temp, c.elev); math.Abs(got-c.want)/c.want > 0.015 {
			t.Errorf("DOSaturation(%g °C, %g m) = %.2f, want %.2f ±1.5 %%", c.temp, c.elev, got, c.want)
		}
	}
}

// FuzzFlatRunCache: the flat-line run kept from value to value gives the
// flags of walking back every time, whatever the order, gaps, repeats and
// pruning of the values.
func FuzzFlatRunCache(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 1, 2, 200, 1, 1, 1, 1, 1, 1, 1, 130, 1, 1, 1, 1, 90, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		skip := 0.5
		cfg := registry.QC{FlatLine: &registry.FlatLine{Suspect: dur(30 * time.Minute), Fail: dur(time.Hour), Tolerance: 0.05, SkipBelow: &skip},
			Spike: &registry.Spike{Suspect: 1, Fail: 2}}
		fast, slow := NewSeries(cfg, 5*time.Minute), NewSeries(cfg, 5*time.Minute)
		slow.noRunCache = true
		tm := t0
		for k, op := range ops {
			// Low bits: the value (mostly flat); high bits: the time step.
			v := 1 + float64(op&7)/100
			if op&7 == 7 {
				v = 0.2 // below skip_below
			}
			var at time.Time
			switch op >> 5 {
			case 0, 1, 2, 3: // next, in order
				tm = tm.Add(5 * time.Minute)
				at = tm
			case 4: // after a gap
				tm = tm.Add(time.Duration(1+op&3) * 20 * time.Minute)
				at = tm
			case 5: // the newest again
				at = tm
			case 6: // late, between earlier values
				at = tm.Add(-time.Duration(op&31) * 150 * time.Second)
			default: // a little early: a short step
				tm = tm.Add(time.Minute)
				at = tm
			}
			ff, fr := fast.Add(at, v)
			sf, sr := slow.Add(at, v)
			if ff != sf || (fr == nil) != (sr == nil) || (fr != nil && *fr != *sr) {
				t.Fatalf("op %d (%d): kept run gives %+v %v, walking gives %+v %v", k, op, ff, fr, sf, sr)
			}
		}
	})
}

// prunedByWalk is prune as first written, a walk over the stale values: the
// reference for the binary search.
func prunedByWalk(pts []oraclePoint, keep time.Duration) []oraclePoint {
	pts = slices.Clone(pts)
	if len(pts) == 0 {
		return pts
	}
	cut := time.Unix(0, pts[len(pts)-1].ns).Add(-keep)
	n := 0
	for n < len(pts)-2 && time.Unix(0, pts[n].ns).Before(cut) {
		n++
	}
	if n > 0 && n >= len(pts)/4 {
		pts = append(pts[:0], pts[n:]...)
	}
	return pts
}

func TestPruneAsTheWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	for trial := range 20000 {
		n := rng.IntN(40)
		pts := make([]oraclePoint, n)
		at := t0
		for i := range pts {
			at = at.Add(time.Duration(rng.IntN(4)) * time.Minute) // equal times too
			pts[i] = oraclePoint{ns: at.UnixNano(), v: float64(i)}
		}
		keep := time.Duration(rng.IntN(60)) * time.Minute
		s := &Series{keep: keep}
		for _, p := range pts {
			s.ns.Append(p.ns)
			s.v.Append(p.v)
		}
		s.readTail()
		s.prune()
		var got []oraclePoint
		for i := range s.Len() {
			got = append(got, oraclePoint{ns: s.ns.At(i), v: s.v.At(i)})
		}
		if want := prunedByWalk(pts, keep); !slices.Equal(got, want) {
			t.Fatalf("trial %d, keep %v, %d values: pruned to %d values, the walk to %d", trial, keep, n, len(got), len(want))
		}
	}
}

// BenchmarkAdd: every test on a station reporting every 10 s with a 6-hour
// flat-line test, so that the series holds 2,000-odd values; the cost of a
// value must not grow with that.
func BenchmarkAdd(b *testing.B) {
	cfg := registry.QC{
		GrossRange:   &registry.GrossRange{Fail: []float64{0, 10}, Suspect: []float64{1, 5}},
		Spike:        &registry.Spike{Suspect: 0.5, Fail: 1},
		RateOfChange: &registry.RateOfChange{SuspectPerHour: 4},
		FlatLine:     &registry.FlatLine{Suspect: dur(3 * time.Hour), Fail: dur(6 * time.Hour), Tolerance: 0.001},
	}
	s := NewSeries(cfg, 10*time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(t0.Add(time.Duration(i)*10*time.Second), 2+float64(i%7)/100)
	}
}

// TestCenturiesApartAreNotJoined: a value of a clock set to 1700 and the
// values of today are not neighbours (their nanoseconds differ by more than
// an int64 holds).
func TestCenturiesApartAreNotJoined(t *testing.T) {
	s := NewSeries(registry.QC{Spike: &registry.Spike{Suspect: 0.5, Fail: 1}, RateOfChange: &registry.RateOfChange{SuspectPerHour: 1}}, 15*time.Minute)
	s.Add(time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC), 100)
	today := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	f, _ := s.Add(today, 1)
	if f.ROC != NotEvaluated {
		t.Errorf("rate of change against a value of 1700: %v", f.ROC)
	}
	for i := 1; i < 4; i++ {
		if _, rev := s.Add(today.Add(time.Duration(i)*15*time.Minute), 1); rev != nil {
			t.Errorf("value %d revised an earlier one to %v (a spike against the value of 1700)", i, rev.Flag)
		}
		// Today's first value has its next neighbour now, and its final
		// spike flag (the series keeps the flags of its last two values).
		if got := s.last[0].Spike; i == 1 && got != NotEvaluated {
			t.Errorf("spike of today's first value: %v, want not evaluated (no earlier neighbour)", got)
		}
	}
}
