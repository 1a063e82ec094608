package curate

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/lineproto"
	"github.com/rivermon/rivermon/internal/registry"
)

// Approval levels of a station-day (CONTRACT §12): provisional until
// approved.
const (
	Provisional = "provisional"
	Approved    = "approved"
)

// dayLayout is how days are written: local days, YYYY-MM-DD.
const dayLayout = "2006-01-02"

// ApprovalRequest is an approval as asked for: local days from and to,
// inclusive.
type ApprovalRequest struct {
	Station string `json:"station"`
	From    string `json:"from"`
	To      string `json:"to"`
	Level   string `json:"level"`
	Author  string `json:"author"`
	Reason  string `json:"reason"`
}

// Approval is an approval as made: the level of the station-days listed.
type Approval struct {
	Station string   `json:"station"`
	Days    []string `json:"days"`
	Level   string   `json:"level"`
	Author  string   `json:"author"`
	Reason  string   `json:"reason"`
}

// parseDay reads a local day for the key named.
func (c *Curator) parseDay(key, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, badRequest("%s is required (a day, YYYY-MM-DD)", key)
	}
	d, err := time.ParseInLocation(dayLayout, s, c.o.Location)
	if err != nil {
		return time.Time{}, badRequest("%s %q is not a day (YYYY-MM-DD)", key, s)
	}
	return d, nil
}

// Approve sets the level of the station-days asked for and returns them.
func (c *Curator) Approve(ctx context.Context, r ApprovalRequest) ([]string, error) {
	st, err := c.station(r.Station, "")
	if err != nil {
		return nil, err
	}
	from, err := c.parseDay("from", r.From)
	if err != nil {
		return nil, err
	}
	to, err := c.parseDay("to", r.To)
	if err != nil {
		return nil, err
	}
	if from.After(to) {
		return nil, badRequest("from %s is after to %s", r.From, r.To)
	}
	if to.Sub(from) >= MaxRange {
		return nil, badRequest("from %s to %s is over a year (366 days); split it", r.From, r.To)
	}
	switch r.Level {
	case Approved, Provisional:
	case "":
		return nil, badRequest("level is required: approved or provisional")
	default:
		return nil, badRequest("unknown level %q: want approved or provisional", r.Level)
	}
	if strings.TrimSpace(r.Author) == "" {
		return nil, badRequest("author is required")
	}
	if strings.TrimSpace(r.Reason) == "" {
		return nil, badRequest("reason is required")
	}
	var days []string
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(dayLayout))
	}
	a := &Approval{Station: st.ID, Days: days, Level: r.Level, Author: r.Author, Reason: r.Reason}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return nil, err
	}
	mark, err := c.log.offset()
	if err != nil {
		return nil, &Error{Status: 500, Msg: err.Error()}
	}
	if err := c.commit(mark, []*logRecord{{Type: "approval", At: c.o.Now().UTC(), Approval: a}}, c.approvalEntries(st, a)); err != nil {
		return nil, err
	}
	c.setApproval(a)
	c.o.Logger.Info("approval", "station", st.ID, "from", r.From, "to", r.To, "level", r.Level, "author", r.Author)
	return days, nil
}

// setApproval applies an approval to the state, which holds the approved
// days of each station.
func (c *Curator) setApproval(a *Approval) {
	c.amu.Lock()
	defer c.amu.Unlock()
	m := c.approved[a.Station]
	if m == nil {
		m = map[string]bool{}
		c.approved[a.Station] = m
	}
	for _, d := range a.Days {
		if a.Level == Approved {
			m[d] = true
		} else {
			delete(m, d)
		}
	}
}

// approvedDays lists the approved local days of the station that [from,
// to] touches.
func (c *Curator) approvedDays(station string, from, to time.Time) []string {
	c.amu.Lock()
	defer c.amu.Unlock()
	m := c.approved[station]
	if len(m) == 0 {
		return nil
	}
	var out []string
	first := from.In(c.o.Location)
	d := time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, c.o.Location)
	for ; !d.After(to); d = d.AddDate(0, 0, 1) {
		if day := d.Format(dayLayout); m[day] {
			out = append(out, day)
		}
	}
	return out
}

// approvedDaysOf lists the approved local days of the station that [from,
// to] touches or that a point of points is on: a correction of a graded
// item rewrites the class past its range.
func (c *Curator) approvedDaysOf(station string, from, to time.Time, points []Point) []string {
	out := c.approvedDays(station, from, to)
	c.amu.Lock()
	defer c.amu.Unlock()
	m := c.approved[station]
	for _, p := range points {
		if day := p.T.In(c.o.Location).Format(dayLayout); m[day] && !slices.Contains(out, day) {
			out = append(out, day)
		}
	}
	slices.Sort(out)
	return out
}

// Level is the approval level of the station's local day holding t.
func (c *Curator) Level(station string, t time.Time) string {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.approved[station][t.In(c.o.Location).Format(dayLayout)] {
		return Approved
	}
	return Provisional
}

// approvedSet returns a copy of the station's approved days.
func (c *Curator) approvedSet(station string) map[string]bool {
	c.amu.Lock()
	defer c.amu.Unlock()
	out := make(map[string]bool, len(c.approved[station]))
	for d := range c.approved[station] {
		out[d] = true
	}
	return out
}

// approvalEntries are the `approval` points of a (CONTRACT §6), one per
// day, stamped with the start of the local day.
func (c *Curator) approvalEntries(st *registry.Station, a *Approval) []journal.Entry {
	out := make([]journal.Entry, 0, len(a.Days))
	for _, day := range slices.Sorted(slices.Values(a.Days)) {
		t, err := time.ParseInLocation(dayLayout, day, c.o.Location)
		if err != nil {
			continue
		}
		b := lineproto.AppendSeries(nil, "approval", st.ID, st.River)
		b = append(b, "level="...)
		b = append(b, '"')
		b = append(b, a.Level...)
		b = append(b, '"')
		b = lineproto.AppendStringField(b, "author", a.Author)
		b = lineproto.AppendStringField(b, "reason", a.Reason)
		b = lineproto.AppendTime(b, t)
		out = append(out, journal.Entry{Kind: journal.KindApproval, Station: st.ID, Time: t.UTC(), Source: Source, Line: string(b)})
	}
	return out
}
