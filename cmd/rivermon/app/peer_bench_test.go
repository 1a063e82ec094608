package app_test

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rivermon/rivermon/internal/testenv"
)

// BenchmarkPeerTelegraf feeds the same messages, through the same real
// Mosquitto and InfluxDB, to Telegraf 1.37 (mqtt_consumer, QoS 1,
// persistent session, json_v2 → influxdb_v2) as installed, to Telegraf with
// max_undelivered_messages raised to 10,000, and to rivermon (the built
// binary, spool on), one after the other so that each has the machine to
// itself, and reports each one's samples/s to InfluxDB (checked by count)
// and peak resident memory. `make bench-peer` builds Telegraf first.
//
// It also runs the bound: a subscriber that only acknowledges and writes
// rivermon's points, to show how close rivermon comes to what this machine
// allows for its schema.
//
// And it measures the lower ceiling of the workload in the same run
// (BenchmarkCeilings).
//
// RIVERMON_BENCH_PEERS (a comma-separated subset of telegraf,
// telegraf-tuned, rivermon, bound, ceiling) runs only those, for working on one of
// them.
func BenchmarkPeerTelegraf(b *testing.B) {
	peers := map[string]bool{"telegraf": true, "telegraf-tuned": true, "rivermon": true, "bound": true, "ceiling": true}
	if s := os.Getenv("RIVERMON_BENCH_PEERS"); s != "" {
		clear(peers)
		for _, p := range strings.Split(s, ",") {
			peers[strings.TrimSpace(p)] = true
		}
	}
	var telegraf string
	if peers["telegraf"] || peers["telegraf-tuned"] {
		telegraf = testenv.FindBinary(b, "telegraf", "RIVERMON_TELEGRAF")
	}
	root, _ := testenv.RepoRoot()
	dir := b.TempDir()
	rivermon := filepath.Join(dir, "rivermon")
	if out, err := exec.Command("go", "build", "-o", rivermon, filepath.Join(root, "cmd", "rivermon")).CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name             string
		perMsg, messages int
	}{{"1perMsg", 1, 150000}, {"100perMsg", 100, 5000}} {
		b.Run(c.name, func(b *testing.B) {
			stations := stationIDs(b)
			payloads := make([][]byte, c.messages)
			base := time.Now().UTC().Truncate(time.Hour).Add(-60 * 24 * time.Hour)
			for m := range payloads {
				var sb strings.Builder
				fmt.Fprintf(&sb, `{"station":%q,"seq":%d,"samples":[`, stations[m%len(stations)], m)
				for k := range c.perMsg {
					i := int64(m*c.perMsg + k)
					if k > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"time":%d,"values":{"level_m":%g,"water_temp_c":4.5,"flow_m3s":12.25}}`,
						base.Add(time.Duration(i)*time.Second).UnixMilli(), float64(i%5000)/1000)
				}
				sb.WriteString("]}")
				payloads[m] = []byte(sb.String())
			}
			want := int64(c.messages * c.perMsg)
			var mq *testenv.Mosquitto
			publish := func() {
				var wg sync.WaitGroup
				for p := range 4 {
					pub := testenv.NewClient(b, mq.URL, fmt.Sprintf("peer-pub-%s-%d", c.name, p))
					wg.Add(1)
					go func() {
						defer wg.Done()
						var toks []paho.Token
						for m := range c.messages {
							if (m%len(stations))%4 != p {
								continue // one connection per station
							}
							toks = append(toks, pub.Client.Publish(readingsTopic(stations[m%len(stations)]), 1, false, payloads[m]))
						}
						for _, t := range toks {
							t.WaitTimeout(time.Minute)
						}
					}()
				}
				wg.Wait()
			}
			// Each peer gets a broker and a database of its own, so that the
			// second does not pay for the first one's compactions.
			measure := func(name string, launch func(mqURL, influxURL string) *exec.Cmd, db, field string) (rate, idleMiB, rssMiB, cpuPerK float64) {
				if !peers[name] {
					return 0, 0, 0, 0
				}
				mq = testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
				in := testenv.StartInflux(b)
				in.Exec(b, "CREATE DATABASE telegraf")
				defer mq.Stop()
				defer in.Stop()
				cmd := launch(mq.URL, in.URL)
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() {
					// SIGTERM, so that a -cpuprofile is written out.
					_ = cmd.Process.Signal(syscall.SIGTERM)
					stopped := make(chan struct{})
					go func() { _ = cmd.Wait(); close(stopped) }()
					select {
					case <-stopped:
					case <-time.After(15 * time.Second):
						_ = cmd.Process.Kill()
						<-stopped
					}
				}()
				// Wait until it takes messages: a warm-up reading.
				warm := fmt.Sprintf(`{"station":"nianchu-mouth","samples":[{"time":%d,"values":{"level_m":1,"water_temp_c":1,"flow_m3s":1}}]}`, base.Add(-time.Hour).UnixMilli())
				pub := testenv.NewClient(b, mq.URL, "peer-warm-"+name+c.name)
				deadline := time.Now().Add(60 * time.Second)
				for countIn(b, in, db, field) < 1 {
					pub.Publish(readingsTopic("nianchu-mouth"), []byte(warm))
					if time.Now().After(deadline) {
						b.Fatalf("%s never stored the warm-up reading", name)
					}
					time.Sleep(500 * time.Millisecond)
				}
				idle := procStatusMiB(cmd.Process.Pid, "VmRSS")
				cpu0 := testenv.ProcessCPU(cmd.Process.Pid)
				start := time.Now()
				publish()
				// The tail: each station's last message.
				tailFrom := base.Add(time.Duration((c.messages-len(stations))*c.perMsg) * time.Second)
				end := awaitStored(b, 5*time.Minute,
					func() bool { return countWhere(b, in, db, field, since(tailFrom)) >= int64(len(stations)*c.perMsg) },
					func() bool { return countIn(b, in, db, field) >= want+1 })
				el := end.Sub(start)
				cpu := testenv.ProcessCPU(cmd.Process.Pid) - cpu0
				if n := countIn(b, in, db, field); n != want+1 {
					b.Errorf("%s stored %d samples, want %d", name, n-1, want)
				}
				// CPU per 1,000 samples, in ms.
				return float64(want) / el.Seconds(), idle, procStatusMiB(cmd.Process.Pid, "VmHWM"), float64(cpu.Milliseconds()) / (float64(want) / 1000)
			}

			// Telegraf as installed, and tuned: mqtt_consumer takes at most
			// max_undelivered_messages (default 1,000) messages ahead of
			// its output, which with a 100 ms flush holds it near 10,000
			// messages/s.
			telegrafWith := func(extra string) func(mqURL, influxURL string) *exec.Cmd {
				return func(mqURL, influxURL string) *exec.Cmd {
					conf := filepath.Join(b.TempDir(), "telegraf.conf")
					os.WriteFile(conf, []byte(fmt.Sprintf(telegrafConf, mqURL, extra, influxURL)), 0o644)
					return exec.Command(telegraf, "--config", conf)
				}
			}
			tgRate, tgIdle, tgRSS, tgCPU := measure("telegraf", telegrafWith(""), "telegraf", "values_level_m")
			ttRate, _, ttRSS, ttCPU := measure("telegraf-tuned", telegrafWith("max_undelivered_messages = 10000"), "telegraf", "values_level_m")
			rmRate, rmIdle, rmRSS, rmCPU := measure("rivermon", func(mqURL, influxURL string) *exec.Cmd {
				cfg := filepath.Join(b.TempDir(), "rivermon.yaml")
				os.WriteFile(cfg, []byte(fmt.Sprintf("mqtt: {url: %q, client_id: rivermon-peer}\ninflux: {url: %q}\nspool: {dir: %q}\nhttp: {listen: \"127.0.0.1:0\"}\nstations: %q\nrules: %q\n",
					mqURL, influxURL, filepath.Join(b.TempDir(), "spool"), filepath.Join(root, "configs", "stations.yaml"), filepath.Join(root, "configs", "rules.yaml"))), 0o644)
				args := []string{"-config", cfg, "-log-level", "warn"}
				if dir := os.Getenv("RIVERMON_BENCH_PROFILES"); dir != "" {
					args = append(args, "-cpuprofile", filepath.Join(dir, "rivermon-"+c.name+".prof"))
				}
				return exec.Command(rivermon, args...)
			}, "rivermon", "level_m")

			// The bound: a subscriber that acknowledges each message and
			// writes rivermon's points for it (rendered in advance), and
			// does nothing else (BenchmarkCeilings' null pipeline). No
			// implementation of rivermon's schema on paho can beat it here.
			bdRate, _, _, bdCPU := measure("bound", func(mqURL, influxURL string) *exec.Cmd {
				return nullPipelineCmd(nullPipeline{MQTT: mqURL, Influx: influxURL, Shape: "rivermon-points",
					Messages: c.messages, PerMessage: c.perMsg, Base: base.UnixNano(), BySeq: true})
			}, "rivermon", "level_m")

			// The lower ceiling, in the same run (this machine's speed
			// drifts by a tenth and more within minutes): with single
			// readings, Mosquitto delivering these messages to a subscriber
			// that only acknowledges; with 100 samples a message, InfluxDB
			// alone taking rivermon's points for them from two writers.
			var clRate float64
			if peers["ceiling"] && c.perMsg == 1 {
				mq = testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
				sub := startNullPipeline(b, nullPipeline{MQTT: mq.URL, Messages: c.messages, PerMessage: 1})
				start := time.Now()
				publish()
				sub.wait(b, 2*time.Minute)
				clRate = float64(c.messages) / time.Since(start).Seconds()
				mq.Stop()
			}
			if peers["ceiling"] && c.perMsg > 1 {
				clRate = influxCeiling(b, rivermonPoint, int(want), 2)
			}

			report := func(v float64, unit string) {
				if v != 0 && !math.IsInf(v, 0) && !math.IsNaN(v) {
					b.ReportMetric(v, unit)
				}
			}
			report(rmRate, "rivermon-samples/s")
			report(tgRate, "telegraf-samples/s")
			report(rmRate/tgRate, "throughput-ratio")
			report(rmIdle, "rivermon-idle-MiB")
			report(tgIdle, "telegraf-idle-MiB")
			report(rmRSS, "rivermon-peak-MiB")
			report(tgRSS, "telegraf-peak-MiB")
			report(rmCPU, "rivermon-cpu-ms/1k")
			report(tgCPU, "telegraf-cpu-ms/1k")
			report(ttRate, "tuned-telegraf-samples/s")
			report(rmRate/ttRate, "tuned-throughput-ratio")
			report(ttRSS, "tuned-telegraf-peak-MiB")
			report(ttCPU, "tuned-telegraf-cpu-ms/1k")
			report(bdRate, "bound-samples/s")
			report(rmRate/bdRate, "share-of-bound")
			report(bdCPU, "bound-cpu-ms/1k")
			report(clRate, "ceiling-samples/s")
			report(rmRate/clRate, "share-of-ceiling")
			b.ReportMetric(0, "ns/op")
		})
	}
}

const telegrafConf = `[agent]
  interval = "10s"
  flush_interval = "100ms"
  metric_batch_size = 5000
  metric_buffer_limit = 1000000
  omit_hostname = true
  quiet = true
[[inputs.mqtt_consumer]]
  servers = [%q]
  topics = ["rivermon/v1/stations/+/readings"]
  qos = 1
  persistent_session = true
  client_id = "telegraf-bench"
  %s
  data_format = "json_v2"
  [[inputs.mqtt_consumer.topic_parsing]]
    topic = "rivermon/v1/stations/+/readings"
    tags = "_/_/_/station/_"
  [[inputs.mqtt_consumer.json_v2]]
    measurement_name = "reading"
    [[inputs.mqtt_consumer.json_v2.object]]
      path = "samples"
      timestamp_key = "time"
      timestamp_format = "unix_ms"
[[outputs.influxdb_v2]]
  urls = [%q]
  bucket = "telegraf/autogen"
  token = ""
  organization = ""
`

func countIn(tb testing.TB, in *testenv.Influx, db, field string) int64 {
	return countWhere(tb, in, db, field, "")
}

// countWhere counts the points of field in `reading` that match where (all
// of them when it is empty).
func countWhere(tb testing.TB, in *testenv.Influx, db, field, where string) int64 {
	q := fmt.Sprintf(`SELECT count(%q) FROM "reading"`, field)
	if where != "" {
		q += " WHERE " + where
	}
	ss, err := in.Query(db, q)
	if err != nil || len(ss) == 0 || len(ss[0].Values) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(fmt.Sprint(ss[0].Values[0][1]), 10, 64)
	return n
}

// since is an InfluxQL condition on sample time.
func since(t time.Time) string { return fmt.Sprintf("time >= '%s'", t.UTC().Format(time.RFC3339Nano)) }

// awaitStored polls until all() reports every sample stored, and returns
// when it saw that. A count over all the points costs influxd tens of
// milliseconds of CPU once there are hundreds of thousands (48 ms for
// 500,000 points of rivermon's on the benchmark machine), and polling it
// every 20 ms took that from the very writes being timed. So it polls
// tail() first, a count of only the newest samples, which every writer
// stores last (each station's samples arrive in order and are stored in
// order), and counts everything once those are in; the time returned is
// when the tail was seen complete in the round whose full count agreed.
// tail may be nil: then it counts everything every round.
func awaitStored(tb testing.TB, limit time.Duration, tail, all func() bool) time.Time {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		if tail == nil || tail() {
			at := time.Now()
			if all() {
				return at
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not every sample stored within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStatusMiB reads a memory line of /proc/<pid>/status in MiB: VmRSS
// (resident now) or VmHWM (peak resident).
func procStatusMiB(pid int, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
