package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/cmd/rivermon/app"
	"github.com/rivermon/rivermon/internal/config"
	"github.com/rivermon/rivermon/internal/testenv"
)

// service is rivermon running in-process against real servers.
type service struct {
	t      testing.TB
	base   string
	hj212  string // addresses of the HJ 212 and SL 651 listeners, when opened
	sl651  string
	cancel context.CancelFunc
	done   chan error
}

func startService(t testing.TB, mq *testenv.Mosquitto, in *testenv.Influx, clientID string) *service {
	t.Helper()
	return startServiceWith(t, mq, in, serviceOptions{clientID: clientID})
}

type serviceOptions struct {
	clientID string
	mqURL    string   // default: the broker's plain URL
	mqURLs   []string // mqtt.urls: the nodes of a clustered broker (mqURL and mq unused)
	username string
	password string
	caFile   string
	spoolDir string // default: a new temporary folder
	maxBytes int64  // spool.max_bytes; default 1 GiB
	sweep    time.Duration
	grace    time.Duration
	alerting string // YAML of the alerting section, e.g. "{alertmanager_urls: [...]}"
	tcp      bool   // open the HJ 212 and SL 651 TCP listeners on free ports
	state    time.Duration
	stations string // registry path; default configs/stations.yaml
	outputs  string // YAML of influx.outputs, e.g. `[{name: b, url: "http://…"}]`
	// adminToken, when set, is written to a file that http.admin_token_file
	// names.
	adminToken string
}

func startServiceWith(t testing.TB, mq *testenv.Mosquitto, in *testenv.Influx, so serviceOptions) *service {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if so.spoolDir == "" {
		so.spoolDir = filepath.Join(dir, "spool")
	}
	if so.maxBytes == 0 {
		so.maxBytes = 1 << 30
	}
	if so.mqURL == "" && len(so.mqURLs) == 0 {
		so.mqURL = mq.URL
	}
	urls, _ := json.Marshal(append([]string{}, so.mqURLs...)) // a YAML flow sequence
	tokenFile := ""
	if so.adminToken != "" {
		tokenFile = filepath.Join(dir, "admin-token")
		if err := os.WriteFile(tokenFile, []byte(so.adminToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yml := fmt.Sprintf(`mqtt: {url: %q, urls: %s, client_id: %q, username: %q, password: %q, tls: {ca_file: %q}}
influx: {url: %q, bucket: rivermon/autogen, outputs: %s}
spool: {dir: %q, max_bytes: %d}
http: {listen: "127.0.0.1:0", admin_token_file: %q}
stations: %q
rules: %q
alerting: %s
`, so.mqURL, urls, so.clientID, so.username, so.password, so.caFile, in.URL, outputsYAML(so.outputs), so.spoolDir, so.maxBytes, tokenFile,
		stationsPath(root, so.stations), filepath.Join(root, "configs", "rules.yaml"), alertingYAML(so.alerting))
	cfg, err := config.Load(filepath.Join(dir, "rivermon.yaml"), []byte(yml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	s := &service{t: t, cancel: cancel, done: make(chan error, 1)}
	if so.tcp {
		yml += "hj212: {listen: \"127.0.0.1:0\", idle_timeout: 2s, first_frame_timeout: 1s}\nsl651: {listen: \"127.0.0.1:0\", idle_timeout: 2s, first_frame_timeout: 1s}\n"
		cfg, err = config.Load(filepath.Join(dir, "rivermon.yaml"), []byte(yml), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
	}
	tcpAddr := make(chan [2]string, 2)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		s.done <- app.Run(ctx, app.Options{Config: cfg, Logger: log, DrainTimeout: time.Second, SweepEvery: so.sweep, EflowGrace: so.grace, AlertTick: 100 * time.Millisecond,
			OnTCP: func(p, a string) { tcpAddr <- [2]string{p, a} }, StateEvery: so.state, PeriodsEvery: 200 * time.Millisecond,
			OnListen: func(a string) { addr <- a }})
	}()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case err := <-s.done:
		t.Fatalf("rivermon exited at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("rivermon did not listen within 30 s")
	}
	for len(tcpAddr) > 0 {
		switch a := <-tcpAddr; a[0] {
		case "hj212":
			s.hj212 = a[1]
		case "sl651":
			s.sl651 = a[1]
		}
	}
	t.Cleanup(func() { s.stop() })
	testenv.Eventually(t, 30*time.Second, func() bool { return s.status("/readyz") == http.StatusOK }, "rivermon not ready")
	return s
}

func stationsPath(root, p string) string {
	if p == "" {
		return filepath.Join(root, "configs", "stations.yaml")
	}
	return p
}

func outputsYAML(s string) string {
	if s == "" {
		return "[]"
	}
	return s
}

func alertingYAML(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}

// stop ends the service and waits for Run to return.
func (s *service) stop() {
	s.t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Error("rivermon did not stop within 10 s")
	}
}

func (s *service) status(path string) int {
	resp, err := http.Get(s.base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// get returns the status and body of a GET.
func (s *service) get(path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *service) getJSON(path string, v any) {
	s.t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
}

// metric returns the value of one series of /metrics, e.g.
// `rivermon_rejected_total{reason="bad_json"}`; a missing series fails the
// test (testenv.Metric).
func (s *service) metric(series string) float64 {
	s.t.Helper()
	return testenv.Metric(s.t, s.base+"/metrics", series)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writeLine writes raw line protocol to the rivermon database.
func writeLine(t *testing.T, in *testenv.Influx, line string) {
	t.Helper()
	resp, err := http.Post(in.URL+"/write?db=rivermon", "text/plain", strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("write %q: %s %s", line, resp.Status, b)
	}
}
