package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
)

// GuaranteeLevel is the share of valid days that must meet the ecological
// flow for a month to meet it (domain.md §6.3: 90 %, the figure used in
// practice).
const GuaranteeLevel = 0.9

// monthsKept is how many calendar months of day marks a station keeps: a
// year and the month before it, so that a late day of last year's month
// still finds the month's other days.
const monthsKept = 13

// dayMark is what a month's account needs of one day's account.
type dayMark struct {
	Valid     bool    `json:"valid"` // coverage ≥ hydro.ValidCoverage
	Compliant bool    `json:"compliant"`
	Mean      float64 `json:"mean"`
}

// monthAccount is the ecological-flow account of one calendar month.
type monthAccount struct {
	Start                  time.Time // local midnight of the 1st
	Days, Valid, Compliant int       // calendar days; days with 18 h of data; days at or above the target
	Rate, RateCalendar     float64   // Compliant/Valid; Compliant/Days
	MeanFlow, Target       float64   // mean of the valid days' means
	MeetsGuarantee         bool      // Rate ≥ GuaranteeLevel
	hasRate                bool      // a valid day: Rate and MeanFlow hold
}

// monthAccounts keeps, per station, the marks of the days of the months it
// has accounted, so that each time a day's account is written the month's
// is written with it, however late the day. The marks are saved in a file
// beside the spool before the batch with the day is made durable: after a
// crash its messages come again and mark the same day again.
type monthAccounts struct {
	path  string // "" keeps them in memory only
	loc   *time.Location
	days  map[string]map[string]dayMark // station → local date "2006-01-02" → mark
	dirty bool
}

// loadMonthAccounts reads the marks saved at path; a missing file is none.
func loadMonthAccounts(path string, loc *time.Location) (*monthAccounts, error) {
	ma := &monthAccounts{path: path, loc: loc, days: map[string]map[string]dayMark{}}
	if path == "" {
		return ma, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ma, nil
	case err != nil:
		return ma, err
	}
	if err := json.Unmarshal(b, &ma.days); err != nil {
		ma.days = map[string]map[string]dayMark{}
		return ma, fmt.Errorf("%s: %w", path, err)
	}
	return ma, nil
}

// put marks day d of station st and returns the account of its month.
func (ma *monthAccounts) put(st string, d hydro.Day) monthAccount {
	marks := ma.days[st]
	if marks == nil {
		marks = map[string]dayMark{}
		ma.days[st] = marks
	}
	local := d.Start.In(ma.loc)
	marks[local.Format(time.DateOnly)] = dayMark{Valid: d.Coverage >= hydro.ValidCoverage, Compliant: d.Compliant, Mean: d.MeanFlow}
	ma.dirty = true
	month := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, ma.loc)
	ma.forget(marks, month)
	acc := monthAccount{Start: month, Target: d.Target}
	var sum float64
	for day := month; day.Month() == month.Month(); day = day.AddDate(0, 0, 1) {
		acc.Days++
		m, ok := marks[day.Format(time.DateOnly)]
		if !ok || !m.Valid {
			continue
		}
		acc.Valid++
		sum += m.Mean
		if m.Compliant {
			acc.Compliant++
		}
	}
	acc.RateCalendar = float64(acc.Compliant) / float64(acc.Days)
	if acc.Valid > 0 {
		acc.Rate, acc.MeanFlow, acc.hasRate = float64(acc.Compliant)/float64(acc.Valid), sum/float64(acc.Valid), true
		acc.MeetsGuarantee = acc.Rate >= GuaranteeLevel
	}
	return acc
}

// forget drops the marks of months more than monthsKept before month.
func (ma *monthAccounts) forget(marks map[string]dayMark, month time.Time) {
	cutoff := month.AddDate(0, -(monthsKept - 1), 0).Format(time.DateOnly)
	for k := range marks {
		if k < cutoff {
			delete(marks, k)
		}
	}
}

// save writes the marks when they changed: a new file, synced, renamed
// over the old one.
func (ma *monthAccounts) save() error {
	if !ma.dirty || ma.path == "" {
		return nil
	}
	b, err := json.Marshal(ma.days)
	if err != nil {
		return err
	}
	if err := writeFileSynced(ma.path, b); err != nil {
		return err
	}
	ma.dirty = false
	return nil
}
