package simulators

import (
	"testing"
	"time"
)

// TestPublishAtKeepsBehindTheWallClock: a run of the past at high speed
// publishes at once, catches up with the present and goes on in real time;
// at speed 1 it publishes as the readings fall due.
func TestPublishAtKeepsBehindTheWallClock(t *testing.T) {
	wall := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name       string
		start, due time.Time
		speed      float64
		want       time.Time
	}{
		{"the past at high speed", wall.Add(-12 * time.Hour), wall.Add(-2 * time.Hour), 1e6, wall.Add(36 * time.Millisecond)},
		{"the future is not published", wall.Add(-12 * time.Hour), wall.Add(time.Hour), 1e6, wall.Add(time.Hour)},
		{"real time", wall, wall.Add(5 * time.Minute), 1, wall.Add(5 * time.Minute)},
		{"the past at 600×", wall.Add(-48 * time.Hour), wall.Add(-47 * time.Hour), 600, wall.Add(6 * time.Second)},
	} {
		if got := publishAt(c.start, wall, c.speed, c.due); !got.Equal(c.want) {
			t.Errorf("%s: publish at %s, want %s", c.name, got, c.want)
		}
	}
}
