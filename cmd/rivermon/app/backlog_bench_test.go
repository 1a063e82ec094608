package app_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// BenchmarkBacklog is the catch-up after a day without a link: all 23
// stations, one sample a minute with each station's own parameters (the
// simulator's models), held back for 24 hours and then sent at once as
// store-and-forward bursts of two hours (120 samples a message) by four
// connections. It reports the time from the first burst to the last value
// stored in InfluxDB (checked by count, value by value) and the rate.
func BenchmarkBacklog(b *testing.B) {
	const burst = 120
	reg := loadRegistry(b)
	end := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	start := end.Add(-24 * time.Hour)
	var topics []string
	var payloads [][]byte
	want := map[string]int64{}
	var values, tailValues int64
	tailFrom := end.Add(-burst * time.Minute) // each station's last burst
	for i := range reg.Stations {
		st := &reg.Stations[i]
		model := simulators.NewStation(st, 1)
		var batch []reading.Sample
		flush := func() {
			m := reading.Message{Station: st.ID, Samples: batch}
			p, err := m.Encode()
			if err != nil {
				b.Fatal(err)
			}
			topics, payloads, batch = append(topics, readingsTopic(st.ID)), append(payloads, p), nil
		}
		for t := start; t.Before(end); t = t.Add(time.Minute) {
			s := model.Next(t)
			for _, v := range s.Values {
				want[v.Code]++
				values++
				if !t.Before(tailFrom) {
					tailValues++
				}
			}
			if batch = append(batch, s); len(batch) == burst {
				flush()
			}
		}
		if len(batch) > 0 {
			flush()
		}
	}
	// Interleave the stations' bursts, as links coming back at about the
	// same time would.
	order := make([]int, 0, len(payloads))
	perStation := len(payloads) / len(reg.Stations)
	for k := range perStation {
		for s := range reg.Stations {
			order = append(order, s*perStation+k)
		}
	}
	stored := func(in *testenv.Influx, where string) int64 {
		var cols []string
		for code := range want {
			cols = append(cols, fmt.Sprintf("count(%q) AS %q", code, code))
		}
		q := "SELECT " + strings.Join(cols, ",") + ` FROM "reading"`
		if where != "" {
			q += " WHERE " + where
		}
		ss, err := in.Query("rivermon", q)
		if err != nil {
			b.Fatal(err)
		}
		if len(ss) == 0 || len(ss[0].Values) == 0 {
			return 0
		}
		var n int64
		for i, c := range ss[0].Columns {
			if _, ok := want[c]; ok {
				f, _ := strconv.ParseFloat(fmt.Sprint(ss[0].Values[0][i]), 64)
				n += int64(f)
			}
		}
		return n
	}
	for iter := 0; iter < b.N; iter++ {
		mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
		in := testenv.StartInflux(b)
		svc := startService(b, mq, in, fmt.Sprintf("rivermon-backlog-%d", iter))
		pubs := make([]*testenv.Client, 4)
		for i := range pubs {
			pubs[i] = testenv.NewClient(b, mq.URL, fmt.Sprintf("backlog-pub-%d-%d", iter, i))
		}
		began := time.Now()
		var wg sync.WaitGroup
		for p, pub := range pubs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var toks []paho.Token
				for k := range order {
					if (k%len(reg.Stations))%len(pubs) != p {
						continue // one connection per station, as in the field
					}
					toks = append(toks, pub.Client.Publish(topics[order[k]], 1, false, payloads[order[k]]))
				}
				for _, tok := range toks {
					if !tok.WaitTimeout(time.Minute) || tok.Error() != nil {
						b.Errorf("publish: %v", tok.Error())
						return
					}
				}
			}()
		}
		wg.Wait()
		took := awaitStored(b, 5*time.Minute,
			func() bool { return stored(in, since(tailFrom)) >= tailValues },
			func() bool { return stored(in, "") >= values }).Sub(began)
		if n := stored(in, ""); n != values {
			b.Fatalf("InfluxDB holds %d values, want %d", n, values)
		}
		for code, n := range want {
			if got := in.Count(b, "reading", code, ""); got != n {
				b.Errorf("%s: %d values stored, want %d", code, got, n)
			}
		}
		b.ReportMetric(took.Seconds(), "catch-up-s")
		b.ReportMetric(float64(values)/took.Seconds(), "values/s")
		b.ReportMetric(float64(values), "values")
		b.ReportMetric(float64(len(payloads)), "messages")
		svc.stop()
		mq.Stop()
		in.Stop()
	}
	b.ReportMetric(0, "ns/op")
}
