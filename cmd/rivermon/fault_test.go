package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
)

// The fault tests run rivermon as a process against real Mosquitto and
// InfluxDB, publish a known stream of samples across all 23 stations, break
// something in the middle, and then count InfluxDB to the last sample.

const (
	faultSamples  = 10000 // per test
	samplesPerMsg = 10
	faultClientID = "rivermon-fault"
	readyTimeout  = 20 * time.Second
	settleTimeout = 90 * time.Second
)

// rivermonProc is rivermon running as a child process.
type rivermonProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	port int
	log  string
	done chan error
}

type procEnv struct {
	mqURL, influxURL, spoolDir string
	// outputs, when set, is RIVERMON_INFLUX_OUTPUTS: more InfluxDB servers.
	outputs        string
	maxBytes       int64
	clientID       string // default faultClientID
	alertmanager   string // alerting.alertmanager_urls, when set
	resendInterval string // alerting.resend_interval, when set
	// diskBytes, when set, puts the spool on a file system of its own of
	// that size (testenv.SmallFS).
	diskBytes int64
}

func startRivermon(t *testing.T, e procEnv) *rivermonProc {
	t.Helper()
	root, _ := testenv.RepoRoot()
	p := &rivermonProc{t: t, port: testenv.FreePort(t), log: filepath.Join(t.TempDir(), "rivermon.log"), done: make(chan error, 1)}
	if e.diskBytes > 0 {
		p.cmd = testenv.SmallFS(t, e.spoolDir, e.diskBytes, binary(t), "-config", filepath.Join(root, "configs", "rivermon.yaml"))
	} else {
		p.cmd = exec.Command(binary(t), "-config", filepath.Join(root, "configs", "rivermon.yaml"))
	}
	if e.clientID == "" {
		e.clientID = faultClientID
	}
	p.cmd.Env = append(os.Environ(), "RIVERMON_MQTT_URL="+e.mqURL, "RIVERMON_MQTT_CLIENT_ID="+e.clientID,
		"RIVERMON_INFLUX_URL="+e.influxURL, "RIVERMON_SPOOL_DIR="+e.spoolDir,
		fmt.Sprintf("RIVERMON_HTTP_LISTEN=127.0.0.1:%d", p.port))
	if e.maxBytes > 0 {
		p.cmd.Env = append(p.cmd.Env, fmt.Sprintf("RIVERMON_SPOOL_MAX_BYTES=%d", e.maxBytes))
	}
	if e.alertmanager != "" {
		p.cmd.Env = append(p.cmd.Env, "RIVERMON_ALERTING_ALERTMANAGER_URLS="+e.alertmanager)
	}
	if e.resendInterval != "" {
		p.cmd.Env = append(p.cmd.Env, "RIVERMON_ALERTING_RESEND_INTERVAL="+e.resendInterval)
	}
	if e.outputs != "" {
		p.cmd.Env = append(p.cmd.Env, "RIVERMON_INFLUX_OUTPUTS="+e.outputs)
	}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); f.Close() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("rivermon log:\n%s", tail(string(b), 30))
		}
	})
	testenv.Eventually(t, readyTimeout, func() bool { return p.get("/healthz") == http.StatusOK }, "rivermon did not start")
	return p
}

func (p *rivermonProc) get(path string) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.port, path))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// readyz returns the status and the body of /readyz.
func (p *rivermonProc) readyz() (int, string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lastSeen is the sample time of the newest sample stored of station
// (rivermon_station_last_seen_timestamp_seconds), zero before the first.
func (p *rivermonProc) lastSeen(station string) time.Time {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port))
	if err != nil {
		return time.Time{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf("rivermon_station_last_seen_timestamp_seconds{station=%q} ", station)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return time.Unix(0, int64(f*1e9))
			}
		}
	}
	return time.Time{}
}

// metric returns the value of one series of the process's /metrics; a
// missing series fails the test (testenv.Metric).
func (p *rivermonProc) metric(series string) float64 {
	p.t.Helper()
	return testenv.Metric(p.t, fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port), series)
}

// stacks ends the process with SIGQUIT and logs the goroutines' stacks it
// prints: where a stalled instance waits.
func (p *rivermonProc) stacks() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
	b, _ := os.ReadFile(p.log)
	if i := strings.Index(string(b), "\ngoroutine "); i >= 0 {
		p.t.Logf("rivermon's goroutines:\n%s", head(string(b[i:]), 600))
	}
}

// head is the first n lines of s.
func head(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func (p *rivermonProc) kill9() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // for the cleanup
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sampleStream is the known set of samples a test publishes: sample i
// belongs to station i/samplesPerMsg mod 23 and has level_m = i/1000.
type sampleStream struct {
	t        *testing.T
	pub      *testenv.Client
	stations []string
	base     time.Time
	total    int // samples in the stream (faultSamples unless set)
	// published counts the samples of messages the broker has taken (a
	// PUBACK came back).
	published atomic.Int64
}

func newSampleStream(t *testing.T, mqURL string) *sampleStream {
	root, _ := testenv.RepoRoot()
	reg, err := registry.LoadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := &sampleStream{t: t, pub: testenv.NewClient(t, mqURL, "fault-station"), base: time.Now().UTC().Truncate(time.Hour).Add(-72 * time.Hour), total: faultSamples}
	for _, st := range reg.Stations {
		s.stations = append(s.stations, st.ID)
	}
	return s
}

// publish sends messages [from, to) of the stream, retrying each until the
// broker has it, as a station with store-and-forward does.
func (s *sampleStream) publish(from, to int) {
	s.t.Helper()
	if err := s.send(from, to); err != nil {
		s.t.Fatal(err)
	}
}

// publishAsync publishes in the background; the channel gives the result.
func (s *sampleStream) publishAsync(from, to int) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.send(from, to) }()
	return done
}

func (s *sampleStream) send(from, to int) error {
	for m := from; m < to; m++ {
		station := s.stations[m%len(s.stations)]
		var samples []map[string]any
		for k := range samplesPerMsg {
			i := m*samplesPerMsg + k
			samples = append(samples, map[string]any{"time": s.base.Add(time.Duration(i) * time.Second).UnixMilli(),
				"values": map[string]any{"level_m": float64(i) / 1000}})
		}
		payload, _ := json.Marshal(map[string]any{"station": station, "seq": m, "samples": samples})
		topic := "rivermon/v1/stations/" + station + "/readings"
		deadline := time.Now().Add(60 * time.Second)
		for {
			tok := s.pub.Client.Publish(topic, 1, false, payload)
			if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
				s.published.Add(samplesPerMsg)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("message %d not taken by the broker within 60 s: %v", m, tok.Error())
			}
			time.Sleep(100 * time.Millisecond) // the broker is restarting; try again
		}
	}
	return nil
}

func (s *sampleStream) messages() int { return s.total / samplesPerMsg }

// verify waits until InfluxDB holds every sample and checks each value.
func (s *sampleStream) verify(in *testenv.Influx) {
	s.t.Helper()
	s.verifyFirst(in, s.messages())
}

// verifyFirst waits until InfluxDB holds every sample of the first
// messages, and no other, and checks each value.
func (s *sampleStream) verifyFirst(in *testenv.Influx, messages int) {
	s.t.Helper()
	want := int64(messages * samplesPerMsg)
	var n int64
	// Only the stream's span: a test may store other samples beside it.
	span := fmt.Sprintf("time >= %d AND time < %d", s.base.UnixNano(), s.base.Add(time.Duration(want)*time.Second).UnixNano())
	testenv.Eventually(s.t, settleTimeout, func() bool {
		n = in.Count(s.t, "reading", "level_m", span)
		return n >= want
	}, "InfluxDB %s holds fewer samples than published (want %d)", in.URL, want)
	if n != want {
		s.t.Fatalf("InfluxDB %s holds %d samples, want exactly %d", in.URL, n, want)
	}
	ss, err := in.Query("rivermon", "SELECT level_m FROM reading WHERE "+span+" GROUP BY station")
	if err != nil {
		s.t.Fatal(err)
	}
	var got []int64
	for _, sr := range ss {
		for _, row := range sr.Rows() {
			ns, _ := strconv.ParseInt(string(row["time"].(json.Number)), 10, 64)
			i := (ns - s.base.UnixNano()) / int64(time.Second)
			v, _ := row["level_m"].(json.Number).Float64()
			if v != float64(i)/1000 || sr.Tags["station"] != s.stations[(int(i)/samplesPerMsg)%len(s.stations)] {
				s.t.Fatalf("sample %d: station %s level_m %v", i, sr.Tags["station"], v)
			}
			got = append(got, i)
		}
	}
	sort.Slice(got, func(a, b int) bool { return got[a] < got[b] })
	for i, g := range got {
		if g != int64(i) {
			s.t.Fatalf("InfluxDB %s: sample %d missing", in.URL, i)
		}
	}
}

func TestFaultKill9MidStream(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	env := procEnv{mqURL: mq.URL, influxURL: in.URL, spoolDir: t.TempDir()}
	p := startRivermon(t, env)
	s := newSampleStream(t, mq.URL)
	sent := s.publishAsync(0, s.messages())
	testenv.Eventually(t, 20*time.Second, func() bool {
		return p.metric(`rivermon_messages_total{result="accepted"}`) > float64(s.messages()/3)
	}, "rivermon is not taking messages")
	published := s.published.Load()
	p.kill9() // mid-stream: the publisher goes on, the broker keeps what rivermon did not ack
	// Nothing is stored once rivermon is dead (but for a write InfluxDB
	// already had, which only makes this count larger): if InfluxDB holds
	// fewer samples than the broker had taken before the kill, the kill
	// caught rivermon with samples not yet stored.
	stored := in.Count(t, "reading", "level_m", "")
	t.Logf("at the kill: %d samples published, %d stored", published, stored)
	if stored >= published {
		t.Fatalf("the kill did not land mid-stream: %d samples stored of %d published before it", stored, published)
	}
	startRivermon(t, env)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	s.verify(in)
}

func TestFaultInfluxDownMidStream(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	p := startRivermon(t, procEnv{mqURL: mq.URL, influxURL: in.URL, spoolDir: t.TempDir()})
	s := newSampleStream(t, mq.URL)
	third := s.messages() / 3
	s.publish(0, third)
	in.Stop()
	s.publish(third, 2*third)
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric("rivermon_spool_bytes") > 0 }, "nothing spooled while InfluxDB was down")
	in.Start()
	s.publish(2*third, s.messages())
	s.verify(in)
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric("rivermon_spool_bytes") == 0 }, "spool not emptied")
}

// TestFaultInfluxSlowAndFailing: InfluxDB answers slowly, then 503 with
// Retry-After, then 500, then recovers.
func TestFaultInfluxSlowAndFailing(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	proxy := testenv.NewFaultProxy(t, in.URL)
	p := startRivermon(t, procEnv{mqURL: mq.URL, influxURL: proxy.URL, spoolDir: t.TempDir()})
	s := newSampleStream(t, mq.URL)
	quarter := s.messages() / 4
	proxy.SetFault(func(*http.Request, []byte) testenv.Fault { return testenv.Fault{Delay: 700 * time.Millisecond} })
	s.publish(0, quarter)
	proxy.SetFault(func(*http.Request, []byte) testenv.Fault {
		return testenv.Fault{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"1"}}}
	})
	s.publish(quarter, 2*quarter)
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric(`rivermon_influx_write_errors_total{kind="server",output="default"}`) > 0 }, "no 503 seen")
	proxy.SetFault(func(*http.Request, []byte) testenv.Fault {
		return testenv.Fault{Status: http.StatusInternalServerError}
	})
	s.publish(2*quarter, 3*quarter)
	proxy.SetFault(nil)
	s.publish(3*quarter, s.messages())
	s.verify(in)
}

func TestFaultMosquittoRestartMidStream(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	startRivermon(t, procEnv{mqURL: mq.URL, influxURL: in.URL, spoolDir: t.TempDir()})
	s := newSampleStream(t, mq.URL)
	sent := s.publishAsync(0, s.messages())
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "") > int64(s.total/3)
	}, "samples are not arriving")
	mq.Stop() // mid-stream, with persistence: rivermon's session and queue survive
	mq.Start()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	s.verify(in)
}

// TestFaultTornSpoolTail: rivermon dies in the middle of a spool write; the
// segment ends in half a record. The next start cuts it off, says so, and
// loses nothing (the torn record was never acknowledged).
func TestFaultTornSpoolTail(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	env := procEnv{mqURL: mq.URL, influxURL: in.URL, spoolDir: t.TempDir()}
	p := startRivermon(t, env)
	s := newSampleStream(t, mq.URL)
	half := s.messages() / 2
	in.Stop() // keep the records in the spool
	s.publish(0, half)
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric("rivermon_spool_bytes") > 0 }, "nothing spooled")
	p.kill9()
	segs, _ := filepath.Glob(filepath.Join(env.spoolDir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no spool segment")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A header announcing 4000 bytes followed by only a few of them.
	if _, err := f.Write([]byte{0xa0, 0x0f, 0, 0, 1, 2, 3, 4, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 'r', 'e', 'a'}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	in.Start()
	p2 := startRivermon(t, env)
	s.publish(half, s.messages())
	s.verify(in)
	b, _ := os.ReadFile(p2.log)
	if !strings.Contains(string(b), "damaged tail cut") {
		t.Errorf("the cut was not reported:\n%s", tail(string(b), 20))
	}
}

// TestFaultFullDiskRecovers: the spool's disk (a file system of its own,
// 256 KiB, with max_bytes far above) fills while InfluxDB is down: rivermon
// stops acknowledging and /readyz says the spool is not writable. Once
// InfluxDB is back, delivery empties the spool, its segment (far below the
// 16 MiB roll size) is given back, and rivermon acknowledges again and is
// ready, without a restart; every sample is stored.
func TestFaultFullDiskRecovers(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	p := startRivermon(t, procEnv{mqURL: mq.URL, influxURL: in.URL, spoolDir: t.TempDir(), diskBytes: 256 << 10})
	testenv.Eventually(t, readyTimeout, func() bool { code, _ := p.readyz(); return code == http.StatusOK }, "rivermon not ready")
	in.Stop()
	s := newSampleStream(t, mq.URL)
	sent := s.publishAsync(0, s.messages())
	var body string
	testenv.Eventually(t, 30*time.Second, func() bool {
		var code int
		code, body = p.readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "spool not writable")
	}, "the spool's disk never filled (/readyz: %q)", body)
	t.Logf("disk full: /readyz %q", strings.TrimSpace(body))
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if acked := p.metric("rivermon_ack_delay_seconds_count"); acked >= float64(s.messages()) {
		t.Fatalf("all %v messages acknowledged with the spool's disk full", acked)
	}
	in.Start()
	testenv.Eventually(t, 60*time.Second, func() bool { code, _ := p.readyz(); return code == http.StatusOK }, "not ready again without a restart")
	s.verify(in)
	testenv.Eventually(t, 20*time.Second, func() bool {
		return p.metric("rivermon_ack_delay_seconds_count") == float64(s.messages())
	}, "not every message acknowledged")
	b, _ := os.ReadFile(p.log)
	if !strings.Contains(string(b), "spool writable again") {
		t.Errorf("the recovery was not logged:\n%s", tail(string(b), 20))
	}
}

// TestFaultSecondOutputDownThenBack: two InfluxDB outputs; B is stopped for
// most of a run of 12,000 samples, and rivermon is killed (-9) twice
// meanwhile, once caught up and once mid-stream. A has every value while B
// is down, acknowledgement never stops, the spool keeps what B lacks (and
// only that); each restart resumes both outputs where they were (A writes
// nothing again); once started, B catches up to every value. Both hold
// each value exactly once.
func TestFaultSecondOutputDownThenBack(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	inA := testenv.StartInflux(t)
	inB := testenv.StartInflux(t)
	env := procEnv{mqURL: mq.URL, influxURL: inA.URL, spoolDir: t.TempDir(),
		outputs: fmt.Sprintf(`[{name: b, url: %q}]`, inB.URL)}
	p := startRivermon(t, env)
	s := newSampleStream(t, mq.URL)
	s.total = 12000
	n := s.messages() // 1,200 messages of 10 samples
	acked := func(p *rivermonProc) float64 { return p.metric("rivermon_ack_delay_seconds_count") }
	s.publish(0, n/10)
	inB.Stop()

	// B down: A takes everything, every message is acknowledged, and the
	// spool holds what B lacks.
	s.publish(n/10, n/2)
	s.verifyFirst(inA, n/2)
	testenv.Eventually(t, 10*time.Second, func() bool { return acked(p) == float64(n/2) }, "acknowledgement stalled with output b down")
	if full := p.metric("rivermon_spool_full"); full != 0 {
		t.Errorf("spool full with output b down: %v", full)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric(`rivermon_influx_backlog_bytes{output="default"}`) == 0 }, "output default not caught up")
	spooled, behindB := p.metric("rivermon_spool_bytes"), p.metric(`rivermon_influx_backlog_bytes{output="b"}`)
	if spooled == 0 || spooled != behindB {
		t.Fatalf("the spool holds %v bytes and output b lacks %v: it must keep exactly what b lacks", spooled, behindB)
	}
	code, body := p.readyz()
	if code != http.StatusOK || !strings.Contains(body, "influx output b: unreachable since") {
		t.Errorf("/readyz with output b down: %d %q", code, body)
	}

	// Killed caught up: the restart resumes each output at its own place.
	p.kill9()
	p = startRivermon(t, env)
	testenv.Eventually(t, readyTimeout, func() bool { code, _ := p.readyz(); return code == http.StatusOK }, "not ready after the restart")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return p.metric(`rivermon_influx_backlog_bytes{output="b"}`) >= behindB
	}, "output b's backlog not kept across the restart")
	if got := p.metric(`rivermon_ingest_delay_seconds_count{output="default"}`); got != 0 {
		t.Errorf("output default wrote %v samples again after the restart", got)
	}

	// Killed mid-stream, B still down: nothing lost.
	sent := s.publishAsync(n/2, n*9/10)
	testenv.Eventually(t, 20*time.Second, func() bool { return acked(p) > float64(n/10) }, "rivermon is not taking messages")
	p.kill9()
	p = startRivermon(t, env)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	s.verifyFirst(inA, n*9/10)

	// B back: it catches up to every value, then the spool is empty.
	inB.Start()
	began := time.Now()
	backlog := p.metric(`rivermon_influx_backlog_bytes{output="b"}`)
	s.verifyFirst(inB, n*9/10)
	t.Logf("output b caught up %.0f KiB of spool (%d samples) in %s", backlog/1024, n*9/10*samplesPerMsg-n/10*samplesPerMsg, time.Since(began).Round(time.Millisecond))
	s.publish(n*9/10, n)
	s.verify(inA)
	s.verify(inB)
	testenv.Eventually(t, 10*time.Second, func() bool { return p.metric("rivermon_spool_bytes") == 0 }, "spool not emptied once both outputs have everything")
	if code, body := p.readyz(); code != http.StatusOK || strings.TrimSpace(body) != "ready" {
		t.Errorf("/readyz with both outputs up: %d %q", code, body)
	}
}
