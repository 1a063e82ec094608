package ingest

import (
	"context"
	"log/slog"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/registry"
)

// SnapshotOptions configure Snapshots.
type SnapshotOptions struct {
	Registry *registry.Registry
	Stations *Stations
	Journal  *journal.Journal
	// AlertLevel gives the severity of a station's worst firing alert: 0
	// none, 1 info, 2 warning, 3 critical; nil: always 0.
	AlertLevel func(station string) int
	// Every is how often every station's snapshot is written (default 1 min).
	Every  time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Snapshots writes the `station_state` point of every station for the
// dashboards, from the live view and the alerts, into the journal.
type Snapshots struct{ o SnapshotOptions }

// NewSnapshots returns Snapshots; Run starts them.
func NewSnapshots(o SnapshotOptions) *Snapshots {
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Snapshots{o: o}
}

// Run writes snapshots every Every, the first once Every has passed (the
// view is empty at start), until ctx ends.
func (s *Snapshots) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.write()
		}
	}
}

func (s *Snapshots) write() {
	now := s.o.Now()
	var rec journal.Record
	for _, v := range s.o.Stations.Snapshot(now) {
		level := 0
		if s.o.AlertLevel != nil {
			level = s.o.AlertLevel(v.ID)
		}
		rec.Entries = append(rec.Entries, StateEntry(s.o.Registry.Station(v.ID), &v, level, now))
	}
	// A snapshot that finds no room is not kept: the next one replaces it.
	if err := s.o.Journal.Add(&rec); err != nil {
		s.o.Logger.Warn("station_state not written", "err", err)
	}
}
