package influx_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/testenv"
)

// TestHistoryStreamsChunks: more rows than one chunk, only the fields,
// stations and times asked for, every station's rows in time order.
func TestHistoryStreamsChunks(t *testing.T) {
	in := testenv.StartInflux(t)
	w := newWriter(t, in.URL, prometheus.NewRegistry())
	base := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	var batch []string
	for i := range 30000 {
		batch = append(batch, fmt.Sprintf("reading,river=r,station=s%d level_m=%d,level_m_qc=1i,ph=7 %d",
			i%3, i, base.Add(time.Duration(i)*time.Second).UnixNano()))
	}
	for from := 0; from < len(batch); from += 5000 {
		if _, err := w.Write(context.Background(), batch[from:from+5000]); err != nil {
			t.Fatal(err)
		}
	}
	chunks := 0
	last := map[string]time.Time{}
	rows := map[string]int{}
	err := w.History(context.Background(), influx.HistoryQuery{
		After: base.Add(999 * time.Second), Through: base.Add(28999 * time.Second),
		Fields: []string{"level_m"}, Stations: []string{"s0", "s2"}}, func(rs []influx.Row) {
		chunks++
		for _, r := range rs {
			if _, ok := r.Values["ph"]; ok || len(r.Values) != 1 {
				t.Fatalf("row %+v: want level_m alone", r)
			}
			if !r.Time.After(last[r.Station]) {
				t.Fatalf("%s: %s after %s", r.Station, r.Time, last[r.Station])
			}
			last[r.Station] = r.Time
			rows[r.Station]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Seconds 1000 … 28999: 28,000 rows, a third of them each station's.
	if chunks < 2 || rows["s1"] != 0 || rows["s0"] != 9333 || rows["s2"] != 9333 {
		t.Fatalf("%d chunks, rows per station %v; want several chunks and 9,333 rows each of s0 and s2", chunks, rows)
	}
}
