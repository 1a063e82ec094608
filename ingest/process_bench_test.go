package ingest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/registry"
)

// BenchmarkProcess measures the pipeline's own work on a reading message
// of the benchmarks' shape (level, water temperature and flow) at the 23
// shipped stations: decode, validate, QC, rated flow, ecological-flow days,
// line protocol, spool record; not the broker, the spool's disk or
// InfluxDB. Reported per sample.
func BenchmarkProcess(b *testing.B) {
	reg, err := registry.LoadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	for _, perMsg := range []int{1, 100} {
		b.Run(fmt.Sprintf("%dsamples", perMsg), func(b *testing.B) {
			s := NewStream(StreamOptions{Registry: reg, TopicPrefix: "rivermon/v1", Intake: NewIntake(IntakeOptions{})})
			const messages = 2300
			ds := make([]Message, messages)
			// Received now, the samples of every round before it: none in
			// the future.
			received := time.Now()
			base := received.Add(-time.Duration((b.N+1)*messages*perMsg) * time.Second).Truncate(time.Hour)
			// Each round goes on in time from the one before.
			gen := func(round int) {
				for m := range ds {
					st := reg.Stations[m%len(reg.Stations)].ID
					var sb strings.Builder
					fmt.Fprintf(&sb, `{"station":%q,"seq":%d,"samples":[`, st, m)
					for k := range perMsg {
						i := (round*messages+m)*perMsg + k
						if k > 0 {
							sb.WriteByte(',')
						}
						fmt.Fprintf(&sb, `{"time":%d,"values":{"level_m":%g,"water_temp_c":4.5,"flow_m3s":12.25}}`,
							base.Add(time.Duration(i)*time.Second).UnixMilli(), float64(i%5000)/1000)
					}
					sb.WriteString("]}")
					ds[m] = Message{Source: SourceMQTT, From: "rivermon/v1/stations/" + st + "/readings", Payload: []byte(sb.String()), Received: received}
				}
			}
			gen(0)
			b.ReportAllocs()
			b.ResetTimer()
			cur := &batch{}
			for n := 0; n < b.N; n++ {
				for i := range ds {
					s.store(&ds[i], cur)
					if len(cur.rec.Entries) >= 5000 {
						_ = journal.Encode(&cur.rec)
						cur = &batch{}
					}
				}
				b.StopTimer()
				gen(n + 1)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*messages*perMsg), "ns/sample")
		})
	}
}
