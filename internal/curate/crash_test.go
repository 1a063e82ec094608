package curate

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"
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
