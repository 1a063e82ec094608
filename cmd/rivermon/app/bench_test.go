package app_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// BenchmarkEndToEnd measures sustained throughput through real Mosquitto,
// rivermon (spool on) and InfluxDB 1.8: samples published at QoS 1 by four
// station connections as fast as the broker takes them, timed until InfluxDB
// holds every one (checked by count); and the same at a fixed rate. It
// reports samples/s and rivermon's acknowledgement delay (message received →
// PUBACK) p50 and p99. Run with -benchtime 1x (make bench); results in
// docs/BENCHMARKS.md.
func BenchmarkEndToEnd(b *testing.B) {
	// The fastest 23stations/1perMsg run, in msgs/s: pacedHalf goes at half.
	var maxRate float64
	for _, c := range []struct {
		name             string
		perMsg, messages int
		rate             int // messages/s in total; 0 = as fast as the broker takes them
		load             int // virtual stations of a generated registry; 0 = the 23 sections
	}{
		{"23stations/1perMsg", 1, 150000, 0, 0},
		{"23stations/100perMsg", 100, 5000, 0, 0},
		{"23stations/1perMsg/paced2000", 1, 10000, 2000, 0},
		// Half the maximum rate, the fastest 23stations/1perMsg run of this
		// process (20,000 msgs/s when that did not run), samples stamped as
		// they are published: the ingest delay (sample time → stored in
		// InfluxDB) is end to end. Five seconds of messages.
		{"23stations/1perMsg/pacedHalf", 1, 0, -1, 0},
		// Every station different: 10,000 series, QC windows, flow days.
		{"10000stations/1perMsg", 1, 150000, 0, 10000},
		{"10000stations/100perMsg", 100, 10000, 0, 10000},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.rate < 0 {
				c.rate = 20000
				if maxRate > 0 {
					c.rate = int(maxRate / 2)
				}
				c.messages = 5 * c.rate
				b.Logf("paced at %d msgs/s", c.rate)
			}
			mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
			in := testenv.StartInflux(b)
			so := serviceOptions{clientID: "rivermon-bench"}
			stations := stationIDs(b)
			if c.load > 0 {
				so.stations = filepath.Join(b.TempDir(), "stations.yaml")
				if err := os.WriteFile(so.stations, []byte(simulators.GenerateRegistry(c.load)), 0o644); err != nil {
					b.Fatal(err)
				}
				stations = stations[:0]
				for i := 1; i <= c.load; i++ {
					stations = append(stations, simulators.LoadStationID(i))
				}
			}
			svc := startServiceWith(b, mq, in, so)
			pubs := make([]*testenv.Client, 4)
			for i := range pubs {
				pubs[i] = testenv.NewClient(b, mq.URL, fmt.Sprintf("bench-pub-%d", i))
			}
			var total int64
			var elapsed, cpuMQ, cpuIn, cpuSelf time.Duration
			base := time.Now().UTC().Truncate(time.Hour).Add(-30 * 24 * time.Hour)
			for iter := 0; iter < b.N; iter++ {
				payloads := make([][]byte, c.messages)
				topics := make([]string, c.messages)
				stampAt := make([]int, c.messages) // paced runs: where the sample time goes
				for m := range payloads {
					st := stations[m%len(stations)]
					var sb strings.Builder
					fmt.Fprintf(&sb, `{"station":%q,"seq":%d,"samples":[`, st, m)
					if c.rate > 0 {
						// Stamped when published, so that its delay to InfluxDB is end
						// to end: nanoseconds, so that no two samples of a station
						// share a time (they would be stored as one).
						sb.WriteString(`{"time":"`)
						stampAt[m] = sb.Len()
						fmt.Fprintf(&sb, `%s","values":{"level_m":%g,"water_temp_c":4.5,"flow_m3s":12.25}}]}`, time.Time{}.Format(stampLayout), float64(m%5000)/1000)
						payloads[m], topics[m] = []byte(sb.String()), readingsTopic(st)
						continue
					}
					for k := range c.perMsg {
						i := int64(iter*c.messages*c.perMsg + m*c.perMsg + k)
						if k > 0 {
							sb.WriteByte(',')
						}
						fmt.Fprintf(&sb, `{"time":%d,"values":{"level_m":%g,"water_temp_c":4.5,"flow_m3s":12.25}}`,
							base.Add(time.Duration(i)*time.Second).UnixMilli(), float64(i%5000)/1000)
					}
					sb.WriteString("]}")
					payloads[m], topics[m] = []byte(sb.String()), readingsTopic(st)
				}
				want := total + int64(c.messages*c.perMsg)
				mq0, in0, self0 := mq.CPU(), in.CPU(), testenv.ProcessCPU(os.Getpid())
				start := time.Now()
				var wg sync.WaitGroup
				for p, pub := range pubs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var toks []paho.Token
						// A paced connection keeps to its share of the rate on
						// average: it sleeps when ahead of the schedule.
						every := time.Duration(0)
						if c.rate > 0 {
							every = time.Second * time.Duration(len(pubs)) / time.Duration(c.rate)
						}
						sent := 0
						// Each station has one connection, as in the field: its
						// messages arrive in the order it sent them.
						for m := range c.messages {
							if (m%len(stations))%len(pubs) != p {
								continue
							}
							payload := payloads[m]
							if c.rate > 0 {
								if ahead := time.Until(start.Add(time.Duration(sent) * every)); ahead > 0 {
									time.Sleep(ahead)
								}
								sent++
								payload = slices.Clone(payload)
								time.Now().UTC().AppendFormat(payload[:stampAt[m]], stampLayout)
							}
							toks = append(toks, pub.Client.Publish(topics[m], 1, false, payload))
						}
						for _, tok := range toks {
							if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
								b.Errorf("publish: %v", tok.Error())
								return
							}
						}
					}()
				}
				wg.Wait()
				// The tail: the last messages, one per station (at most 100
				// of them). Paced runs stamp samples as they go: no tail.
				var tail func() bool
				if c.rate == 0 {
					n := min(len(stations), c.messages, 100)
					from := base.Add(time.Duration(want-int64(n*c.perMsg)) * time.Second)
					tail = func() bool { return in.Count(b, "reading", "level_m", since(from)) >= int64(n*c.perMsg) }
				}
				end := awaitStored(b, 5*time.Minute, tail, func() bool { return in.Count(b, "reading", "level_m", "") >= want })
				elapsed += end.Sub(start)
				cpuMQ += mq.CPU() - mq0
				cpuIn += in.CPU() - in0
				cpuSelf += testenv.ProcessCPU(os.Getpid()) - self0
				total = want
			}
			if n := in.Count(b, "reading", "level_m", ""); n != total {
				b.Fatalf("InfluxDB holds %d samples, want %d", n, total)
			}
			b.ReportMetric(float64(total)/elapsed.Seconds(), "samples/s")
			b.ReportMetric(float64(total)/float64(c.perMsg)/elapsed.Seconds(), "msgs/s")
			if c.name == "23stations/1perMsg" {
				maxRate = max(maxRate, float64(total)/elapsed.Seconds())
			}
			// Where the two cores went while it ran: share of one core.
			b.ReportMetric(100*cpuMQ.Seconds()/elapsed.Seconds(), "mosquitto-cpu-%")
			b.ReportMetric(100*cpuIn.Seconds()/elapsed.Seconds(), "influxd-cpu-%")
			b.ReportMetric(100*cpuSelf.Seconds()/elapsed.Seconds(), "rivermon+publishers-cpu-%")
			p50, p99 := histogramQuantiles(b, svc.base, "rivermon_ack_delay_seconds")
			b.ReportMetric(p50*1000, "ack-p50-ms")
			b.ReportMetric(p99*1000, "ack-p99-ms")
			if c.rate > 0 {
				d50, d99 := histogramQuantiles(b, svc.base, `rivermon_ingest_delay_seconds{output="default"}`)
				b.ReportMetric(d50*1000, "delay-p50-ms")
				b.ReportMetric(d99*1000, "delay-p99-ms")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// stampLayout is RFC 3339 with nanoseconds, always as wide in UTC: a paced
// message's time is written over its placeholder when it is published.
const stampLayout = "2006-01-02T15:04:05.000000000Z07:00"

func stationIDs(tb testing.TB) []string {
	reg := loadRegistry(tb)
	ids := make([]string, len(reg.Stations))
	for i, s := range reg.Stations {
		ids[i] = s.ID
	}
	return ids
}

// histogramQuantiles reads a histogram from /metrics and interpolates its
// 50th and 99th percentiles within buckets. name may pick a series by its
// labels: `rivermon_ingest_delay_seconds{output="default"}`.
func histogramQuantiles(tb testing.TB, base, name string) (p50, p99 float64) {
	prefix := name + `_bucket{le="`
	if metric, labels, ok := strings.Cut(name, "{"); ok {
		prefix = metric + "_bucket{" + strings.TrimSuffix(labels, "}") + `,le="`
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		leText, countText, _ := strings.Cut(rest, `"} `)
		le, _ := strconv.ParseFloat(leText, 64)
		if leText == "+Inf" {
			le = math.Inf(1)
		}
		n, _ := strconv.ParseFloat(countText, 64)
		bs = append(bs, bucket{le, n})
	}
	if len(bs) == 0 {
		tb.Fatalf("no histogram %s in /metrics", name)
	}
	if bs[len(bs)-1].n == 0 {
		return 0, 0
	}
	q := func(p float64) float64 {
		target := p * bs[len(bs)-1].n
		lo, prev := 0.0, 0.0
		for _, bk := range bs {
			if bk.n >= target {
				if math.IsInf(bk.le, 1) {
					return lo
				}
				return lo + (bk.le-lo)*(target-prev)/math.Max(bk.n-prev, 1)
			}
			lo, prev = bk.le, bk.n
		}
		return lo
	}
	return q(0.5), q(0.99)
}

func loadRegistry(tb testing.TB) *registry.Registry {
	tb.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := registry.LoadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// BenchmarkAlertLatency measures, for each of the 23 stations, the time from
// publishing the reading that completes WaterLevelCritical (above the
// critical level for 10 minutes of sample time) to a webhook receiver
// behind a real Alertmanager getting the notification. Alertmanager's
// group_wait is 0 here, so the figure is rivermon plus Alertmanager's own
// dispatch; in production add the group_wait of the route (10 s for
// critical alerts in configs/alertmanager).
func BenchmarkAlertLatency(b *testing.B) {
	var mu sync.Mutex
	got := map[string]time.Time{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body webhookBody
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, a := range body.Alerts {
			if a.Status == "firing" && a.Labels["alertname"] == "WaterLevelCritical" {
				if _, seen := got[a.Labels["station"]]; !seen {
					got[a.Labels["station"]] = time.Now()
				}
			}
		}
		mu.Unlock()
	}))
	defer rcv.Close()
	am := testenv.StartAlertmanager(b, fmt.Sprintf("route: {receiver: hook, group_by: [alertname, station], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\nreceivers:\n  - name: hook\n    webhook_configs: [{url: %q}]\n", rcv.URL))
	mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{})
	in := testenv.StartInflux(b)
	startServiceWith(b, mq, in, serviceOptions{clientID: "rivermon-alert-bench",
		alerting: fmt.Sprintf("{alertmanager_urls: [%q], resend_interval: 1m}", am.URL)})
	pub := testenv.NewClient(b, mq.URL, "bench-alerts")
	reg := loadRegistry(b)
	var lat []time.Duration
	for iter := 0; iter < b.N; iter++ {
		mu.Lock()
		clear(got)
		mu.Unlock()
		base := time.Now().UTC().Truncate(time.Minute).Add(-time.Duration(40+iter*40) * time.Minute)
		for _, st := range reg.Stations {
			crit := st.Limits["level_critical_m"]
			msg := func(i int, v float64) []byte {
				return []byte(fmt.Sprintf(`{"station":%q,"samples":[{"time":%d,"values":{"level_m":%g}}]}`,
					st.ID, base.Add(time.Duration(i)*5*time.Minute).UnixMilli(), v))
			}
			pub.Publish(readingsTopic(st.ID), msg(0, crit+0.3))
			pub.Publish(readingsTopic(st.ID), msg(1, crit+0.3))
			pub.Publish(readingsTopic(st.ID), msg(2, crit+0.3)) // 10 minutes above
			// A stage value reaches the rules once the next one has completed
			// its spike flag: this one lets the one before fire the alert.
			sent := time.Now()
			pub.Publish(readingsTopic(st.ID), msg(3, crit+0.3))
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				at, ok := got[st.ID]
				mu.Unlock()
				if ok {
					lat = append(lat, at.Sub(sent))
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("%s: no notification within 30 s", st.ID)
				}
				time.Sleep(time.Millisecond)
			}
			// Back below (and the next value, which releases it), so that
			// the next iteration fires again.
			pub.Publish(readingsTopic(st.ID), msg(4, crit-1))
			pub.Publish(readingsTopic(st.ID), msg(5, crit-1))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}
