package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds rivermon once for the tests that run it as a process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rivermon-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rivermon")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func TestCheckReportsBrokenFilesWithFileAndLine(t *testing.T) {
	bin := binary(t)
	root, _ := testenv.RepoRoot()

	out, err := exec.Command(bin, "check", "-config", filepath.Join(root, "configs", "rivermon.yaml")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("shipped config: %v\n%s", err, out)
	}

	dir := t.TempDir()
	stations := filepath.Join(root, "internal", "registry", "testdata", "broken.yaml")
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: A\n    above: 1\n    severity: loud\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "rivermon.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("mqtt: {url: tcp://127.0.0.1:1, client_id: x}\ninflux: {url: http://127.0.0.1:1}\nstations: %s\nrules: rules.yaml\n", stations)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "-config", cfg)
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", cmd.ProcessState.ExitCode(), err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, want := range []string{stations + `:23: unknown key "stations[1].colour"`, rules + ":2: rule A: param is required", rules + `:4: rule A: severity "loud"`} {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, want)
		}
		if !found {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, stations+":") && !strings.HasPrefix(l, rules+":") {
			t.Errorf("line not FILE:LINE: %q", l)
		}
	}

	out, err = exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "rivermon ") {
		t.Errorf("version: %v %s", err, out)
	}
}

// TestSIGTERMDrainsAndExitsZero: with a message in flight that cannot be
// written (InfluxDB down), SIGTERM still ends the process with status 0
// within 10 s, and the message, safe in the spool, is delivered by the next
// run.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	bin := binary(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	root, _ := testenv.RepoRoot()
	port := testenv.FreePort(t)
	spoolDir := t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", filepath.Join(root, "configs", "rivermon.yaml"))
		cmd.Env = append(os.Environ(),
			"RIVERMON_MQTT_URL="+mq.URL, "RIVERMON_MQTT_CLIENT_ID=rivermon-sigterm",
			"RIVERMON_INFLUX_URL="+in.URL, "RIVERMON_SPOOL_DIR="+spoolDir,
			fmt.Sprintf("RIVERMON_HTTP_LISTEN=127.0.0.1:%d", port))
		logf, _ := os.Create(filepath.Join(t.TempDir(), "rivermon.log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		testenv.Eventually(t, 20*time.Second, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, "rivermon not ready")
		return cmd
	}
	stopWithin := func(cmd *exec.Cmd, limit time.Duration) {
		t.Helper()
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v", err)
			}
			t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
		case <-time.After(limit):
			t.Fatalf("still running %s after SIGTERM", limit)
		}
	}

	cmd := run()
	in.Stop()
	pub := testenv.NewClient(t, mq.URL, "station-sigterm")
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	payload, _ := json.Marshal(map[string]any{"station": "boqu-nyalam", "samples": []any{
		map[string]any{"time": ts.Format(time.RFC3339), "values": map[string]any{"level_m": 0.9}}}})
	pub.Publish("rivermon/v1/stations/boqu-nyalam/readings", payload)
	testenv.Eventually(t, 10*time.Second, func() bool { // rivermon holds it and fails to write it
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `rivermon_influx_write_errors_total{kind="network"} `) &&
			!strings.Contains(string(b), `rivermon_influx_write_errors_total{kind="network"} 0`+"\n")
	}, "rivermon never tried to write the message")
	stopWithin(cmd, 10*time.Second)

	in.Start()
	cmd = run()
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", fmt.Sprintf("time = %d", ts.UnixNano())) == 1
	}, "the in-flight message was lost")
	stopWithin(cmd, 10*time.Second)
}

// TestSIGHUPReloadsRulesAndKeepsThemWhenBroken: a broken rules file is
// reported and the rules in force stay; a good one is taken.
func TestSIGHUPReloadsRulesAndKeepsThemWhenBroken(t *testing.T) {
	bin := binary(t)
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	root, _ := testenv.RepoRoot()
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join(root, "configs", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, good, 0o644); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cfg := filepath.Join(dir, "rivermon.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`mqtt: {url: %q, client_id: rivermon-hup}
influx: {url: %q}
spool: {dir: spool}
http: {listen: "127.0.0.1:%d"}
stations: %q
rules: rules.yaml
`, mq.URL, in.URL, port, filepath.Join(root, "configs", "stations.yaml"))), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "rivermon.log")
	logf, _ := os.Create(logPath)
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logHas := func(s string) bool { b, _ := os.ReadFile(logPath); return strings.Contains(string(b), s) }
	testenv.Eventually(t, 20*time.Second, func() bool { return logHas("rivermon running") }, "rivermon did not start")

	if err := os.WriteFile(rules, []byte("rules:\n  - name: Broken\n    above: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, 10*time.Second, func() bool { return logHas("rules not reloaded; the previous rules stay in force") }, "a broken file was not reported")
	if err := os.WriteFile(rules, good, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, 10*time.Second, func() bool { return logHas("rules reloaded") }, "a good file was not reloaded")
	if cmd.ProcessState != nil {
		t.Fatal("rivermon exited")
	}
}
