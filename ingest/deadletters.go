package ingest

import (
	"strings"
	"time"
)

// DeadLetterWindow is how far back the live view counts a station's dead
// letters (StationView.DeadLetters), at an hour's resolution.
const DeadLetterWindow = 24 * time.Hour

// maxDeadLetterReasons bounds the reasons one hour of one station keeps
// apart; more (only a change of the reason codes could bring them) are
// counted under "other".
const maxDeadLetterReasons = 64

// deadLetterHours counts one station's dead letters by reason in hourly
// buckets over the last DeadLetterWindow: a fixed ring, so a station
// sending garbage all day costs no more memory than one sending it once.
type deadLetterHours struct {
	buckets [int(DeadLetterWindow / time.Hour)]deadLetterBucket
}

type deadLetterBucket struct {
	hour     int64 // hours since the Unix epoch; 0 for a bucket never used
	byReason map[string]int
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// add counts a dead letter of reason made at at.
func (c *deadLetterHours) add(reason string, at time.Time) {
	h := hourOf(at)
	b := &c.buckets[int(h%int64(len(c.buckets)))]
	switch {
	case b.hour == h:
	case b.hour > h:
		return // a whole window older than what the bucket holds
	default:
		b.hour = h
		clear(b.byReason)
	}
	if b.byReason == nil {
		b.byReason = map[string]int{}
	}
	if _, ok := b.byReason[reason]; !ok && len(b.byReason) >= maxDeadLetterReasons {
		reason = "other"
	}
	b.byReason[reason]++
}

// count adds the dead letters of the window ending at now to out, by reason.
func (c *deadLetterHours) count(now time.Time, out map[string]int) {
	h := hourOf(now)
	for i := range c.buckets {
		b := &c.buckets[i]
		if b.hour > h-int64(len(c.buckets)) && b.hour <= h {
			for r, n := range b.byReason {
				out[r] += n
			}
		}
	}
}

// deadLetterStation is the station a dead letter is about: the last level
// of its topic, {prefix}/deadletter/{station}.
func deadLetterStation(topic string) string {
	return topic[strings.LastIndexByte(topic, '/')+1:]
}
