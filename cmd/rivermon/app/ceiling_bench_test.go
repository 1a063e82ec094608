package app_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/rivermon/rivermon/ingest/mqtt"
	"github.com/rivermon/rivermon/internal/testenv"
)

// BenchmarkCeilings measures what this machine allows without rivermon:
// Mosquitto delivering QoS 1 messages to one persistent subscriber that does
// nothing but acknowledge; the same subscriber also writing one point per
// message to InfluxDB; and InfluxDB alone taking the points rivermon would
// write (one per sample, batches of 5,000). The subscriber is a process of
// its own, as rivermon is, and uses rivermon's broker client (buffered
// reads, gathered acks: a bare paho client reads a byte per system call).
// rivermon's throughput is compared with these in docs/BENCHMARKS.md.
func BenchmarkCeilings(b *testing.B) {
	const messages = 150000
	// "": acknowledge only (Mosquitto's ceiling). Otherwise the subscriber
	// also writes a point of that shape per message, rendered in advance,
	// in batches of up to 5,000 from two writers, gathering for 50 ms when
	// fewer wait, as rivermon delivers; and it does nothing else: no
	// decoding, spool, QC or alerts. That is what the two cores allow any
	// MQTT-to-InfluxDB pipeline on paho storing such a point per message,
	// with the broker, the database and the load generator on the same
	// machine.
	for _, shape := range []string{"", "rivermon-points", "telegraf-points"} {
		name := "mosquitto-qos1"
		if shape != "" {
			name = "mosquitto-to-influxdb/" + shape
		}
		b.Run(name, func(b *testing.B) {
			mq := testenv.StartMosquitto(b, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
			var in *testenv.Influx
			influxURL := ""
			if shape != "" {
				in = testenv.StartInflux(b)
				influxURL = in.URL
			}
			sub := startNullPipeline(b, nullPipeline{MQTT: mq.URL, Influx: influxURL, Shape: shape, Messages: messages,
				PerMessage: 1, Base: time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Hour).UnixNano()})
			mq0, self0 := mq.CPU(), testenv.ProcessCPU(os.Getpid())
			var in0 time.Duration
			if in != nil {
				in0 = in.CPU()
			}
			start := time.Now()
			publishCeiling(b, mq, messages)
			subCPU := sub.wait(b, 2*time.Minute)
			el := time.Since(start)
			b.ReportMetric(messages/el.Seconds(), "msgs/s")
			b.ReportMetric(100*(mq.CPU()-mq0).Seconds()/el.Seconds(), "mosquitto-cpu-%")
			b.ReportMetric(100*(testenv.ProcessCPU(os.Getpid())-self0).Seconds()/el.Seconds(), "publishers-cpu-%")
			b.ReportMetric(100*subCPU.Seconds()/el.Seconds(), "subscriber-cpu-%")
			if in != nil {
				b.ReportMetric(100*(in.CPU()-in0).Seconds()/el.Seconds(), "influxd-cpu-%")
				field := map[string]string{"rivermon-points": "level_m", "telegraf-points": "values_level_m"}[shape]
				if n := in.Count(b, "reading", field, ""); n != messages {
					b.Errorf("InfluxDB holds %d points, want %d", n, messages)
				}
			}
			b.ReportMetric(0, "ns/op")
		})
	}
	// InfluxDB taking 500,000 points in batches of 5,000: rivermon's points
	// (a value, its QC flag and the rated flow for each of three
	// parameters: 8 fields) and Telegraf's for the same samples (the 3
	// values and a topic tag), from one writer and from two.
	for _, shape := range []struct {
		name string
		line string
	}{
		{"rivermon-points", rivermonPoint},
		{"telegraf-points", telegrafPoint},
	} {
		for _, writers := range []int{1, 2} {
			b.Run(fmt.Sprintf("influxdb-%s/%dwriters", shape.name, writers), func(b *testing.B) {
				rate, cpu := influxCeilingOn(b, testenv.StartInflux(b), shape.line, 500000, writers)
				b.ReportMetric(rate, "points/s")
				b.ReportMetric(100*cpu, "influxd-cpu-%")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// influxCeiling starts an InfluxDB and returns the points/s at which it
// takes points of shape (rivermonPoint or telegrafPoint), in batches of
// 5,000 from writers writers.
func influxCeiling(b *testing.B, shape string, points, writers int) float64 {
	in := testenv.StartInflux(b)
	defer in.Stop()
	rate, _ := influxCeilingOn(b, in, shape, points, writers)
	return rate
}

// influxCeilingOn is influxCeiling on in; it also returns influxd's CPU
// while it wrote, as a share of one core.
func influxCeilingOn(b *testing.B, in *testenv.Influx, shape string, points, writers int) (rate, cpu float64) {
	base := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Hour)
	var batches []string
	var sb strings.Builder
	for i := range points {
		fmt.Fprintf(&sb, shape, i%23, float64(i%5000)/1000, base.Add(time.Duration(i)*time.Second).UnixNano())
		if (i+1)%5000 == 0 || i == points-1 {
			batches = append(batches, sb.String())
			sb.Reset()
		}
	}
	cpu0, start := in.CPU(), time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(batches); k += writers {
				if err := postLines(in.URL, batches[k]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	return float64(points) / el, (in.CPU() - cpu0).Seconds() / el
}

// The points rivermon writes for a sample of the benchmarks (a value, its
// QC flag and the rated flow for each of three parameters: 8 fields) and
// those Telegraf writes for it (the 3 values and a topic tag); formatted
// with a station number, a level and a time in nanoseconds.
const (
	rivermonPoint = "reading,river=nianchu,station=s%02d level_m=%g,level_m_qc=1i,water_temp_c=4.5,water_temp_c_qc=1i,flow_m3s=12.25,flow_m3s_qc=1i,flow_rated_m3s=12.3,flow_rated_m3s_qc=1i %d\n"
	telegrafPoint = "reading,station=s%02d,topic=rivermon/v1/stations/s/readings values_level_m=%g,values_water_temp_c=4.5,values_flow_m3s=12.25 %d\n"
)

// publishCeiling publishes messages single-reading messages at QoS 1 from
// four connections, each station on one of them, and waits for the broker
// to take them all.
func publishCeiling(b *testing.B, mq *testenv.Mosquitto, messages int) {
	stations := stationIDs(b)
	payload := []byte(`{"station":"nianchu-mouth","samples":[{"time":1784095200000,"values":{"level_m":1.5,"water_temp_c":4.5,"flow_m3s":12.25}}]}`)
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
}

// postLines writes line protocol to the test InfluxDB's rivermon database.
func postLines(url, body string) error {
	resp, err := http.Post(url+"/api/v2/write?bucket=rivermon/autogen&precision=ns", "text/plain", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("write: %s", resp.Status)
	}
	return nil
}

// nullPipeline is what the ceilings' subscriber process does (see
// BenchmarkCeilings), passed to it as JSON in RIVERMON_NULL_PIPELINE.
type nullPipeline struct {
	MQTT, Influx string
	Shape        string // "", rivermon-points or telegraf-points
	Messages     int
	PerMessage   int   // points per message (samples per message)
	Base         int64 // time of the first point, Unix ns; the next are a second apart
	// BySeq: a message's points are those of its "seq" (the benchmarks'
	// messages number their samples so), and a message without one is a
	// warm-up, one point an hour before Base; the process stays until it is
	// stopped. Otherwise the n-th message received gets the n-th points and
	// the process ends once all are written.
	BySeq bool
}

// TestMain runs the ceilings' subscriber when the benchmark starts this
// test binary as one, and the tests otherwise, failing the run when a test
// leaves a goroutine running: every goroutine has an owner that stops it.
func TestMain(m *testing.M) {
	if spec := os.Getenv("RIVERMON_NULL_PIPELINE"); spec != "" {
		var np nullPipeline
		if err := json.Unmarshal([]byte(spec), &np); err != nil {
			fmt.Fprintln(os.Stderr, "RIVERMON_NULL_PIPELINE:", err)
			os.Exit(2)
		}
		if err := np.run(); err != nil {
			fmt.Fprintln(os.Stderr, "null pipeline:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// run subscribes, prints "ready" once subscribed, and returns once it has
// received (and, with a shape, written) every message.
func (np nullPipeline) run() error {
	var lines []string
	line := map[string]string{"rivermon-points": rivermonPoint, "telegraf-points": telegrafPoint}[np.Shape]
	if np.Shape != "" {
		lines = make([]string, np.Messages*np.PerMessage)
		for i := range lines {
			lines[i] = fmt.Sprintf(line, i%23, float64(i%5000)/1000, np.Base+int64(i)*int64(time.Second))
		}
	}
	var mu sync.Mutex
	var pending []string
	got := 0
	received := make(chan struct{})
	ready := make(chan struct{}, 1) // lines are pending
	sub, err := mqtt.Connect(mqtt.Options{
		Brokers: []string{np.MQTT}, ClientID: "ceiling-sub",
		Filters: []string{prefix + "/stations/+/readings"},
		Logger:  slog.New(slog.DiscardHandler),
		Handle: func(_ string, payload []byte, _ time.Time, ack func()) {
			ack()
			mu.Lock()
			k, warm := got, false
			if np.BySeq {
				k, warm = seqOf(payload)
			}
			switch {
			case lines == nil:
			case warm:
				pending = append(pending, fmt.Sprintf(line, 0, 1.0, np.Base-int64(time.Hour)))
			case k >= 0 && k < np.Messages:
				pending = append(pending, lines[k*np.PerMessage:(k+1)*np.PerMessage]...)
			}
			if got++; got == np.Messages {
				close(received)
			}
			mu.Unlock()
			select {
			case ready <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	defer sub.Close(100 * time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); !sub.Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("not subscribed within 10 s")
		}
	}
	fmt.Println("ready")
	timeout := time.After(3 * time.Minute)
	if lines == nil {
		select {
		case <-received:
			return nil
		case <-timeout:
			return fmt.Errorf("received %d of %d", got, np.Messages)
		}
	}
	var written atomic.Int64
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for {
				<-ready
				mu.Lock()
				if len(pending) < 5000 {
					// Few are waiting: gather for 50 ms, as rivermon's
					// delivery does, so that InfluxDB gets large writes.
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
					mu.Lock()
				}
				n := min(len(pending), 5000)
				body := strings.Join(pending[:n], "")
				pending = pending[n:]
				mu.Unlock()
				if n == 0 {
					continue
				}
				// The other writer takes what is left, or what gathers
				// while this one writes.
				select {
				case ready <- struct{}{}:
				default:
				}
				if err := postLines(np.Influx, body); err != nil {
					errs <- err
					return
				}
				if written.Add(int64(n)) == int64(len(lines)) {
					errs <- nil
				}
			}
		}()
	}
	if np.BySeq {
		// Written as messages come, until the benchmark stops it.
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
		select {
		case err := <-errs:
			if err != nil {
				return err
			}
			<-stop
			return nil
		case <-stop:
			return nil
		}
	}
	select {
	case err := <-errs:
		return err
	case <-timeout:
		return fmt.Errorf("wrote %d of %d", written.Load(), len(lines))
	}
}

// seqOf reads the "seq" of a benchmark message; warm is true when it has
// none.
func seqOf(payload []byte) (seq int, warm bool) {
	_, rest, ok := bytes.Cut(payload, []byte(`"seq":`))
	if !ok {
		return 0, true
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n, false
}

// nullProcess is a running ceilings' subscriber.
type nullProcess struct {
	cmd *exec.Cmd
}

// nullPipelineCmd is the command that runs np in a process of its own
// (this test binary, which TestMain turns into the subscriber).
func nullPipelineCmd(np nullPipeline) *exec.Cmd {
	spec, _ := json.Marshal(np)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RIVERMON_NULL_PIPELINE="+string(spec))
	cmd.Stderr = os.Stderr
	return cmd
}

// startNullPipeline starts the subscriber and returns once it is subscribed.
func startNullPipeline(b *testing.B, np nullPipeline) *nullProcess {
	cmd := nullPipelineCmd(np)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("the ceilings' subscriber did not start: %q %v", line, err)
	}
	return &nullProcess{cmd: cmd}
}

// wait waits for the subscriber to finish and returns the CPU it used.
func (p *nullProcess) wait(b *testing.B, limit time.Duration) time.Duration {
	t := time.AfterFunc(limit, func() { _ = p.cmd.Process.Kill() })
	defer t.Stop()
	if err := p.cmd.Wait(); err != nil {
		b.Fatalf("the ceilings' subscriber: %v", err)
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}
