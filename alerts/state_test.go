package alerts

import (
	"path/filepath"
	"testing"
	"time"
)

func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alerts.json")
	e := newEval(t, 0)
	at(e, "gauge", 0, "level_m", 3.5)
	at(e, "gauge", 10, "level_m", 3.5)
	if err := e.Save(path); err != nil {
		t.Fatal(err)
	}
	e2 := newEval(t, 0)
	n, err := e2.Load(path)
	if err != nil || n == 0 {
		t.Fatalf("restored %d: %v", n, err)
	}
	as := e2.Active(t0.Add(11*time.Minute), 4*time.Minute)
	if len(as) != 1 || !as[0].StartsAt.Equal(t0.Add(10*time.Minute)) || as[0].Status != StateFiring {
		t.Fatalf("after restart: %+v", as)
	}
	// Still above: no new firing transition (not announced as new).
	if tr := only(t, at(e2, "gauge", 15, "level_m", 3.5), "LevelCritical"); len(tr) != 0 {
		t.Fatalf("announced again: %+v", tr)
	}
	// And the restored instance still knows its threshold: back below, it resolves.
	if tr := only(t, at(e2, "gauge", 20, "level_m", 1.0), "LevelCritical"); len(tr) != 1 || tr[0].State != StateResolved || tr[0].Thresh != 3 {
		t.Fatalf("a value below the threshold after restart: %+v", tr)
	}
}
