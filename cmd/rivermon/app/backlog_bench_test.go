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

// backlogSet is a day of all 23 stations, one sample a minute with each
// station's own parameters (the simulator's models), as store-and-forward
// bursts of two hours (120 samples a message), interleaved as links coming
// back at about the same time would send them.
type backlogSet struct {
	topics   []string
	payloads [][]byte
	order    []int
	stations int
	want     map[string]int64 // values by parameter code
	values   int64
	// tailValues are the values of each station's last burst, from tailFrom.
	tailValues int64
	tailFrom   time.Time
}

func newBacklogSet(b *testing.B) *backlogSet {
	const burst = 120
	reg := loadRegistry(b)
	end := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	start := end.Add(-24 * time.Hour)
	bs := &backlogSet{want: map[string]int64{}, tailFrom: end.Add(-burst * time.Minute), stations: len(reg.Stations)}
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
			bs.topics, bs.payloads, batch = append(bs.topics, readingsTopic(st.ID)), append(bs.payloads, p), nil
		}
		for t := start; t.Before(end); t = t.Add(time.Minute) {
			s := model.Next(t)
			for _, v := range s.Values {
				bs.want[v.Code]++
				bs.values++
				if !t.Before(bs.tailFrom) {
					bs.tailValues++
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
	perStation := len(bs.payloads) / len(reg.Stations)
	for k := range perStation {
		for s := range reg.Stations {
			bs.order = append(bs.order, s*perStation+k)
		}
	}
	return bs
}

// publish sends the set through four connections, one per station as in
// the field, and returns once the broker has every message.
func (bs *backlogSet) publish(b *testing.B, mq *testenv.Mosquitto, id string) {
	pubs := make([]*testenv.Client, 4)
	for i := range pubs {
		pubs[i] = testenv.NewClient(b, mq.URL, fmt.Sprintf("%s-pub-%d", id, i))
	}
	var wg sync.WaitGroup
	for p, pub := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var toks []paho.Token
			for k := range bs.order {
				if (k%bs.stations)%len(pubs) != p {
					continue // one connection per station, as in the field
				}
				toks = append(toks, pub.Client.Publish(bs.topics[bs.order[k]], 1, false, bs.payloads[bs.order[k]]))
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
	// Gone before the broker is stopped: a client left to disconnect from
	// a broker no longer there leaves goroutines behind.
	for _, pub := range pubs {
		pub.Disconnect(100)
	}
}

// stored counts the set's values in, from where on (all when empty).
func (bs *backlogSet) stored(b *testing.B, in *testenv.Influx, where string) int64 {
	var cols []string
	for code := range bs.want {
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
		if _, ok := bs.want[c]; ok {
			f, _ := strconv.ParseFloat(fmt.Sprint(ss[0].Values[0][i]), 64)
			n += int64(f)
		}
	}
	return n
}

// await waits until in holds every value of the set and returns when.
func (bs *backlogSet) await(b *testing.B, in *testenv.Influx) time.Time {
	at := awaitStored(b, 5*time.Minute,
		func() bool { return bs.stored(b, in, since(bs.tailFrom)) >= bs.tailValues },
		func() bool { return bs.stored(b, in, "") >= bs.values })
	if n := bs.stored(b, in, ""); n != bs.values {
		b.Fatalf("InfluxDB holds %d values, want %d", n, bs.values)
	}
	for code, n := range bs.want {
		if got := in.Count(b, "reading", code, ""); got != n {
			b.Errorf("%s: %d values stored, want %d", code, got, n)
		}
	}
	return at
}

// BenchmarkBacklog is the catch-up after a day without a link: all 23
// stations, one sample a minute with each station's own parameters (the
// simulator's models), held back for 24 hours and then sent at once as
// store-and-forward bursts of two hours (120 samples a message) by four
// connections. It reports the time from the first burst to the last value
// stored in InfluxDB (checked by count, value by value) and the rate.
func BenchmarkBacklog(b *testing.B) {
	bs := newBacklogSet(b)
	for iter := 0; iter < b.N; iter++ {
		mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
		in := testenv.StartInflux(b)
		svc := startService(b, mq, in, fmt.Sprintf("rivermon-backlog-%d", iter))
		began := time.Now()
		bs.publish(b, mq, fmt.Sprintf("backlog-%d", iter))
		took := bs.await(b, in).Sub(began)
		b.ReportMetric(took.Seconds(), "catch-up-s")
		b.ReportMetric(float64(bs.values)/took.Seconds(), "values/s")
		b.ReportMetric(float64(bs.values), "values")
		b.ReportMetric(float64(len(bs.payloads)), "messages")
		svc.stop()
		mq.Stop()
		in.Stop()
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkOutputCatchUp is a second InfluxDB output coming back after an
// outage: the day of BenchmarkBacklog arrives while output b is down (the
// first output stores it; the spool keeps it for b), then b's InfluxDB is
// started. It reports the time from b's start to its last value stored
// (checked by count, value by value), the rate, and the spool b caught up.
func BenchmarkOutputCatchUp(b *testing.B) {
	bs := newBacklogSet(b)
	for iter := 0; iter < b.N; iter++ {
		mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
		inA, inB := testenv.StartInflux(b), testenv.StartInflux(b)
		svc := startServiceWith(b, mq, inA, serviceOptions{clientID: fmt.Sprintf("rivermon-catchup-%d", iter),
			outputs: fmt.Sprintf("[{name: b, url: %q}]", inB.URL)})
		inB.Stop()
		bs.publish(b, mq, fmt.Sprintf("catchup-%d", iter))
		bs.await(b, inA)
		backlog := svc.metric(`rivermon_influx_backlog_bytes{output="b"}`)
		if spooled := svc.metric("rivermon_spool_bytes"); spooled != backlog || backlog == 0 {
			b.Fatalf("spool %v bytes, output b behind %v", spooled, backlog)
		}
		inB.Start()
		began := time.Now()
		took := bs.await(b, inB).Sub(began)
		b.ReportMetric(took.Seconds(), "catch-up-s")
		b.ReportMetric(float64(bs.values)/took.Seconds(), "values/s")
		b.ReportMetric(backlog/(1<<20), "spool-MiB")
		b.ReportMetric(float64(bs.values), "values")
		svc.stop()
		mq.Stop()
		inA.Stop()
		inB.Stop()
	}
	b.ReportMetric(0, "ns/op")
}
