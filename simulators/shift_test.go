package simulators

import (
	"math"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/registry"
)

// TestSimulatedGaugeReadsTheShiftedStage: with a shift in the registry the
// simulated gauge reads what, shifted and rated as rivermon rates it, gives
// the simulated flow back.
func TestSimulatedGaugeReadsTheShiftedStage(t *testing.T) {
	reg := loadRegistry(t)
	st := *reg.Station("yarlung-dazhuka")
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	st.Shifts = []registry.Shift{{From: at.Add(-time.Hour), To: at.Add(time.Hour), DH: 0.2}}
	for _, q := range []float64{20, 250, 900} {
		h := stageAt(&st, 250, at, q)
		plain := stageAt(&st, 250, at.Add(2*time.Hour), q)
		if math.Abs(plain-h-0.2) > 1e-9 {
			t.Errorf("q %g: gauge %g with the shift, %g without: want 0.2 m lower", q, h, plain)
		}
		got, err := hydro.RatedFlow(&st, at, h)
		if err != nil || math.Abs(got-q) > 1e-9*q {
			t.Errorf("q %g: rated %g (%v) from the gauge's %g", q, got, err, h)
		}
		if back := flowAt(&st, 250, at, h); math.Abs(back-q) > 1e-9*q {
			t.Errorf("q %g: flowAt gives %g", q, back)
		}
	}
}
