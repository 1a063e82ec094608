// Command benchload is the load generator of scripts/benchcmp.sh, which
// compares rivermon's CPU per sample between two revisions. It publishes a
// fixed workload of readings to Mosquitto as the stations of a registry
// would, waits until InfluxDB holds every sample, and prints the processor
// time the rivermon process has used.
//
// It imports nothing of rivermon's (paho, yaml and the standard library
// only) and talks to rivermon only through the contract's outside: MQTT
// topics and payloads in, the InfluxDB schema out, /proc for the CPU. So one
// build of it measures any revision in the same way, before and after a
// change of rivermon's internals.
//
//	benchload ports N      print N free loopback TCP ports, one a line
//	benchload run [FLAGS]  publish the workload and measure (benchload run -h)
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchload ports N | benchload run [FLAGS]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "ports":
		err = ports(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (ports or run)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchload:", err)
		os.Exit(1)
	}
}

// ports prints n loopback ports the kernel chose. All n listeners are open
// at once, so the ports differ from each other; they are closed before
// printing, so a server started right after can take them.
func ports(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: benchload ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return fmt.Errorf("ports: %q is not a positive count", args[0])
	}
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, p := range out {
		fmt.Println(p)
	}
	return nil
}

// workload is what run publishes and waits for.
type workload struct {
	stations []string
	samples  int   // in total, a multiple of perMsg
	perMsg   int   // samples per message
	base     int64 // sample i is stamped base + i seconds (epoch ms)
}

func run(args []string) error {
	fs := flag.NewFlagSet("benchload run", flag.ContinueOnError)
	mqttURL := fs.String("mqtt", "", "broker `URL` (tcp://127.0.0.1:PORT)")
	influxURL := fs.String("influx", "", "InfluxDB 1.8 `URL` (http://127.0.0.1:PORT)")
	db := fs.String("db", "rivermon", "InfluxDB `database` rivermon writes to")
	prefix := fs.String("topic-prefix", "rivermon/v1", "MQTT topic `prefix`")
	registry := fs.String("stations", "", "station registry `file` (configs/stations.yaml): every station publishes")
	samples := fs.Int("samples", 50000, "samples to publish")
	perMsg := fs.Int("per-message", 1, "samples per message")
	base := fs.Int64("base", 0, "time of the first sample, epoch `ms` (the others follow a second apart)")
	pid := fs.Int("pid", 0, "rivermon's process `id`, whose CPU time is read")
	conns := fs.Int("conns", 4, "publishing connections (each station always on the same one)")
	timeout := fs.Duration("timeout", 5*time.Minute, "longest wait for InfluxDB to hold every sample")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *mqttURL == "" || *influxURL == "" || *registry == "" || *pid == 0 || *base == 0:
		return errors.New("run needs -mqtt, -influx, -stations, -pid and -base")
	case *perMsg < 1 || *samples < *perMsg || *samples%*perMsg != 0:
		return fmt.Errorf("-samples %d is not a positive multiple of -per-message %d", *samples, *perMsg)
	case *conns < 1:
		return errors.New("-conns must be at least 1")
	}
	ids, err := stationIDs(*registry)
	if err != nil {
		return err
	}
	w := workload{stations: ids, samples: *samples, perMsg: *perMsg, base: *base}
	in := influx{url: *influxURL, db: *db}
	proc := process{pid: *pid}
	if _, err := proc.ticks(); err != nil {
		return err
	}

	topics, payloads := w.messages(*prefix)
	pubs := make([]paho.Client, *conns)
	for i := range pubs {
		if pubs[i], err = connect(*mqttURL, fmt.Sprintf("benchload-%d-%d", os.Getpid(), i)); err != nil {
			return err
		}
		defer pubs[i].Disconnect(100)
	}

	// rivermon takes messages once it has subscribed, which it says nowhere
	// outside: publish one sample, an hour before the workload, until
	// InfluxDB holds it. The same station and time each time, so it is
	// stored once (CONTRACT §5).
	warm := fmt.Sprintf(`{"station":%q,"samples":[{"time":%d,"values":{"level_m":1,"water_temp_c":4.5,"flow_m3s":12.25}}]}`,
		ids[0], *base-time.Hour.Milliseconds())
	deadline := time.Now().Add(60 * time.Second)
	for {
		tok := pubs[0].Publish(readingsTopic(*prefix, ids[0]), 1, false, warm)
		if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			return fmt.Errorf("publish the warm-up reading: %v", tok.Error())
		}
		n, err := in.count("")
		if err != nil {
			return err
		}
		if n >= 1 {
			break
		}
		if err := proc.alive(); err != nil {
			return fmt.Errorf("before the warm-up reading was stored: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("rivermon did not store the warm-up reading within 60 s (is it connected to both servers? see its log)")
		}
		time.Sleep(500 * time.Millisecond)
	}
	startup, err := proc.ticks()
	if err != nil {
		return err
	}

	start := time.Now()
	if err := publish(pubs, topics, payloads, len(ids)); err != nil {
		return err
	}
	published := time.Since(start)
	want := int64(w.samples) + 1 // and the warm-up sample
	tail, tailWant := w.tail()
	if err := in.await(tail, tailWant, want, *timeout, proc); err != nil {
		return err
	}
	wall := time.Since(start)
	cpu, err := proc.ticks()
	if err != nil {
		return err
	}
	fmt.Printf("cpu_ticks=%d startup_ticks=%d samples=%d wall_ms=%d publish_ms=%d\n",
		cpu, startup, w.samples, wall.Milliseconds(), published.Milliseconds())
	return nil
}

// stationIDs reads the ids of a registry's stations, in file order.
func stationIDs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reg struct {
		Stations []struct {
			ID string `yaml:"id"`
		} `yaml:"stations"`
	}
	if err := yaml.Unmarshal(b, &reg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var ids []string
	for _, s := range reg.Stations {
		if s.ID != "" {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s: no stations", path)
	}
	return ids, nil
}

func readingsTopic(prefix, station string) string {
	return prefix + "/stations/" + station + "/readings"
}

// messages renders the workload as in cmd/rivermon/app's benchmarks: the
// stations take turns, message m goes to station m mod len(stations) and
// carries samples m·perMsg … m·perMsg+perMsg−1, sample i stamped base + i s
// (each distinct) with level_m rising by a millimetre a sample over 5 m.
// seq counts each station's messages, without gaps.
func (w workload) messages(prefix string) (topics []string, payloads [][]byte) {
	n := w.samples / w.perMsg
	topics, payloads = make([]string, n), make([][]byte, n)
	var b []byte
	for m := range n {
		st := w.stations[m%len(w.stations)]
		b = fmt.Appendf(b[:0], `{"station":%q,"seq":%d,"samples":[`, st, m/len(w.stations)+1)
		for k := range w.perMsg {
			i := int64(m*w.perMsg + k)
			if k > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `{"time":%d,"values":{"level_m":%g,"water_temp_c":4.5,"flow_m3s":12.25}}`,
				w.base+i*1000, float64(i%5000)/1000)
		}
		b = append(b, "]}"...)
		topics[m], payloads[m] = readingsTopic(prefix, st), bytes.Clone(b)
	}
	return topics, payloads
}

// tail is an InfluxQL condition selecting the samples of each station's
// last message, and how many those are: every writer stores a station's
// samples in the order they came, so these are stored last.
func (w workload) tail() (cond string, n int64) {
	msgs := w.samples / w.perMsg
	last := min(len(w.stations), msgs)
	from := w.base + int64((msgs-last)*w.perMsg)*1000
	return fmt.Sprintf("time >= %dms", from), int64(last * w.perMsg)
}

// publish sends every message at QoS 1, each station's on the same
// connection in order (as in the field), all connections at once, and
// waits for every PUBACK.
func publish(pubs []paho.Client, topics []string, payloads [][]byte, stations int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for p, pub := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var toks []paho.Token
			for m := range payloads {
				if (m%stations)%len(pubs) == p {
					toks = append(toks, pub.Publish(topics[m], 1, false, payloads[m]))
				}
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(2 * time.Minute) {
					errs[p] = errors.New("publish: no PUBACK within 2 minutes")
					return
				}
				if err := tok.Error(); err != nil {
					errs[p] = fmt.Errorf("publish: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// connect opens a clean-session connection. Its reads go through a buffer:
// paho reads each packet's type and length a byte at a time, three system
// calls for every PUBACK, which the publishers' share of the two cores
// would pay (as in internal/testenv).
func connect(brokerURL, id string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
		if err != nil {
			return nil, err
		}
		return &readBuffered{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}, nil
	})
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect to %s: timed out", brokerURL)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", brokerURL, err)
	}
	return c, nil
}

type readBuffered struct {
	net.Conn
	r *bufio.Reader
}

func (c *readBuffered) Read(p []byte) (int, error) { return c.r.Read(p) }

// influx counts rivermon's samples: points of level_m in measurement
// reading (CONTRACT §6).
type influx struct{ url, db string }

func (in influx) count(where string) (int64, error) {
	q := `SELECT count("level_m") FROM "reading"`
	if where != "" {
		q += " WHERE " + where
	}
	resp, err := http.Get(in.url + "/query?" + url.Values{"db": {in.db}, "q": {q}}.Encode())
	if err != nil {
		return 0, fmt.Errorf("influx count: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return 0, fmt.Errorf("influx count: %s: %w", resp.Status, err)
	}
	if out.Error != "" || len(out.Results) != 1 || out.Results[0].Error != "" {
		return 0, fmt.Errorf("influx count %q: %s %+v", q, out.Error, out.Results)
	}
	ss := out.Results[0].Series
	if len(ss) == 0 || len(ss[0].Values) == 0 || len(ss[0].Values[0]) < 2 {
		return 0, nil
	}
	n, ok := ss[0].Values[0][1].(json.Number)
	if !ok {
		return 0, fmt.Errorf("influx count %q: not a number: %v", q, ss[0].Values[0][1])
	}
	return n.Int64()
}

// await polls until InfluxDB holds want samples. A count over every point
// costs influxd tens of milliseconds of CPU once there are hundreds of
// thousands, which the two cores would take from rivermon's writes; so it
// counts only the tail (each station's last message) until that is in,
// and then everything.
func (in influx) await(tail string, tailWant, want int64, limit time.Duration, proc process) error {
	deadline := time.Now().Add(limit)
	var n int64
	for {
		t, err := in.count(tail)
		if err != nil {
			return err
		}
		if t >= tailWant {
			if n, err = in.count(""); err != nil {
				return err
			}
			if n == want {
				return nil
			}
			if n > want {
				return fmt.Errorf("InfluxDB holds %d samples, more than the %d published", n, want)
			}
		}
		if err := proc.alive(); err != nil {
			return fmt.Errorf("before every sample was stored: %w", err)
		}
		if time.Now().After(deadline) {
			if n, err = in.count(""); err != nil {
				return err
			}
			return fmt.Errorf("InfluxDB holds %d of %d samples after %v", n, want, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// process is rivermon, seen through /proc.
type process struct{ pid int }

// stat returns the fields of /proc/PID/stat after the command name (which
// may hold spaces): the process state is the first.
func (p process) stat() ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return nil, fmt.Errorf("rivermon (pid %d) is gone: %w", p.pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", p.pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", p.pid, len(f))
	}
	return f, nil
}

func (p process) alive() error {
	f, err := p.stat()
	if err != nil {
		return err
	}
	if f[0] == "Z" || f[0] == "X" {
		return fmt.Errorf("rivermon (pid %d) has exited", p.pid)
	}
	return nil
}

// ticks is the processor time, user and system, of every thread the
// process has had: fields 14 and 15 of stat (utime, stime), in clock ticks
// (USER_HZ, 1/100 s on Linux).
func (p process) ticks() (int64, error) {
	f, err := p.stat()
	if err != nil {
		return 0, err
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("rivermon (pid %d) has exited", p.pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", p.pid, err)
	}
	return u + s, nil
}
