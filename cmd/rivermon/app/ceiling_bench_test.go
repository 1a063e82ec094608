package app_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/ingest/mqtt"
	"github.com/rivermon/rivermon/internal/testenv"
)

// BenchmarkCeilings measures what this machine allows without rivermon:
// Mosquitto delivering QoS 1 messages to one persistent subscriber that does
// nothing but acknowledge (through rivermon's broker client), and InfluxDB taking the points rivermon would
// write (one per sample, batches of 5,000). rivermon's
// throughput is compared with the lower of the two in docs/BENCHMARKS.md.
func BenchmarkCeilings(b *testing.B) {
	const messages = 150000
	b.Run("mosquitto-qos1", func(b *testing.B) {
		mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
		var got atomic.Int64
		done := make(chan struct{})
		// rivermon's own broker client (buffered reads, gathered acks), so
		// that the subscriber costs the machine as little as rivermon's
		// connection does: a bare paho client reads a byte per system call.
		sub, err := mqtt.Connect(mqtt.Options{
			Brokers: []string{mq.URL}, ClientID: "ceiling-sub",
			Filters: []string{prefix + "/stations/+/readings"},
			Logger:  slog.New(slog.DiscardHandler),
			Handle: func(_ string, _ []byte, _ time.Time, ack func()) {
				ack()
				if got.Add(1) == messages {
					close(done)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close(100 * time.Millisecond)
		testenv.Eventually(b, 10*time.Second, sub.Connected, "the ceiling's subscriber did not connect")
		stations := stationIDs(b)
		payload := []byte(`{"station":"nianchu-mouth","samples":[{"time":1784095200000,"values":{"level_m":1.5,"water_temp_c":4.5,"flow_m3s":12.25}}]}`)
		mq0, self0 := mq.CPU(), testenv.ProcessCPU(os.Getpid())
		start := time.Now()
		var wg sync.WaitGroup
		for p := range 4 {
			pub := testenv.NewClient(b, mq.URL, fmt.Sprintf("ceiling-pub-%d", p))
			wg.Add(1)
			go func() {
				defer wg.Done()
				var toks []paho.Token
				for m := p; m < messages; m += 4 {
					toks = append(toks, pub.Client.Publish(readingsTopic(stations[m%len(stations)]), 1, false, payload))
				}
				for _, t := range toks {
					t.WaitTimeout(time.Minute)
				}
			}()
		}
		wg.Wait()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("subscriber got %d of %d", got.Load(), messages)
		}
		el := time.Since(start)
		b.ReportMetric(messages/el.Seconds(), "msgs/s")
		b.ReportMetric(100*(mq.CPU()-mq0).Seconds()/el.Seconds(), "mosquitto-cpu-%")
		b.ReportMetric(100*(testenv.ProcessCPU(os.Getpid())-self0).Seconds()/el.Seconds(), "publishers+subscriber-cpu-%")
		b.ReportMetric(0, "ns/op")
	})
	// InfluxDB taking 500,000 points in batches of 5,000: rivermon's points
	// (a value, its QC flag and the rated flow for each of three
	// parameters: 8 fields) and Telegraf's for the same samples (the 3
	// values and a topic tag), from one writer and from two.
	for _, shape := range []struct {
		name string
		line string
	}{
		{"rivermon-points", "reading,river=nianchu,station=s%02d level_m=%g,level_m_qc=1i,water_temp_c=4.5,water_temp_c_qc=1i,flow_m3s=12.25,flow_m3s_qc=1i,flow_rated_m3s=12.3,flow_rated_m3s_qc=1i %d\n"},
		{"telegraf-points", "reading,station=s%02d,topic=rivermon/v1/stations/s/readings values_level_m=%g,values_water_temp_c=4.5,values_flow_m3s=12.25 %d\n"},
	} {
		for _, writers := range []int{1, 2} {
			b.Run(fmt.Sprintf("influxdb-%s/%dwriters", shape.name, writers), func(b *testing.B) {
				const points = 500000
				in := testenv.StartInflux(b)
				base := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Hour)
				var batches []string
				var sb strings.Builder
				for i := range points {
					fmt.Fprintf(&sb, shape.line, i%23, float64(i%5000)/1000, base.Add(time.Duration(i)*time.Second).UnixNano())
					if (i+1)%5000 == 0 {
						batches = append(batches, sb.String())
						sb.Reset()
					}
				}
				cpu0 := in.CPU()
				start := time.Now()
				var wg sync.WaitGroup
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := w; k < len(batches); k += writers {
							resp, err := http.Post(in.URL+"/api/v2/write?bucket=rivermon/autogen&precision=ns", "text/plain", strings.NewReader(batches[k]))
							if err != nil || resp.StatusCode != http.StatusNoContent {
								b.Errorf("write: %v %v", err, resp)
								return
							}
							resp.Body.Close()
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.ReportMetric(points/el.Seconds(), "points/s")
				b.ReportMetric(100*(in.CPU()-cpu0).Seconds()/el.Seconds(), "influxd-cpu-%")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
