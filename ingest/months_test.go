package ingest

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/reading"
)

// TestMonthAccounts: a calendar month's ecological-flow account counts its
// valid and compliant days (domain.md §6.3: the rate is compliant over
// valid days, and beside it over calendar days); local months, not UTC or
// 30-day windows; the days are kept across a restart, so a late day still
// finds its month's others.
func TestMonthAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eflow-months.json")
	ma, err := loadMonthAccounts(path, reading.Zone)
	if err != nil {
		t.Fatal(err)
	}
	day := func(y int, m time.Month, d int, coverage float64, compliant bool) hydro.Day {
		return hydro.Day{Start: time.Date(y, m, d, 0, 0, 0, 0, reading.Zone), MeanFlow: 5, Target: 4, Coverage: coverage, Compliant: compliant}
	}
	var june monthAccount
	for d := 1; d <= 30; d++ {
		switch {
		case d == 15: // 10 h of data: not valid
			june = ma.put("sagya-sagya", day(2026, 6, d, 10.0/24, false))
		case d == 7 || d == 8:
			june = ma.put("sagya-sagya", day(2026, 6, d, 1, false))
		default:
			june = ma.put("sagya-sagya", day(2026, 6, d, 1, true))
		}
	}
	if june.Days != 30 || june.Valid != 29 || june.Compliant != 27 || !june.hasRate ||
		math.Abs(june.Rate-27.0/29) > 1e-12 || math.Abs(june.RateCalendar-27.0/30) > 1e-12 || !june.MeetsGuarantee {
		t.Errorf("June %+v, want 30 days, 29 valid, 27 compliant: 93.1 %%, meets 90 %%", june)
	}
	if !june.Start.Equal(time.Date(2026, 6, 1, 0, 0, 0, 0, reading.Zone)) {
		t.Errorf("June starts %s", june.Start)
	}
	// The 1st of July in Beijing is still June 30 in UTC: a July day.
	july := ma.put("sagya-sagya", day(2026, 7, 1, 1, false))
	if july.Days != 31 || july.Valid != 1 || july.Compliant != 0 || july.Rate != 0 || july.MeetsGuarantee {
		t.Errorf("July %+v, want one valid day, not compliant", july)
	}
	if err := ma.save(); err != nil {
		t.Fatal(err)
	}
	// After a restart the 15th of June comes again, late and whole.
	again, err := loadMonthAccounts(path, reading.Zone)
	if err != nil {
		t.Fatal(err)
	}
	june = again.put("sagya-sagya", day(2026, 6, 15, 1, true))
	if june.Valid != 30 || june.Compliant != 28 || math.Abs(june.Rate-28.0/30) > 1e-12 {
		t.Errorf("June after the restart %+v, want 30 valid, 28 compliant", june)
	}
	// A month without a valid day has no rate: the point leaves it out.
	none := again.put("sagya-sagya", day(2026, 8, 3, 0.5, false))
	line := string(func() []byte {
		_, b := eflowMonthEntry(nil, testRegistry(t).Station("sagya-sagya"), none, "test")
		return b
	}())
	if none.hasRate || strings.Contains(line, "rate=") || !strings.Contains(line, "days_valid=0i") || !strings.Contains(line, "guaranteed=false") {
		t.Errorf("a month without a valid day: %s", line)
	}
}
