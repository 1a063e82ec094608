package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// testVersion is what binary sets main.version to, as `make build` does.
const testVersion = "v0.0.0-cli-test"

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
		out, err := exec.Command("go", "build", "-race", "-ldflags=-X main.version="+testVersion, "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestMain removes the built binary after the tests, and fails the run when
// a test leaves a goroutine running: every goroutine has an owner that
// stops it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if binPath != "" {
			os.RemoveAll(filepath.Dir(binPath))
		}
		os.Exit(code)
	}))
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
}

// TestCLIUsage: a word that is no command, or an argument left over after
// the flags, is a usage error (status 2, usage on stderr, nothing started);
// help asked for lists the commands and the flags on stdout with status 0.
func TestCLIUsage(t *testing.T) {
	commands := []string{"\n  run ", "\n  check ", "\n  correct ", "\n  version ", "-config", "-log-level", "-token-file"}
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr []string // each must appear
	}{
		{args: []string{"bogus"}, code: 2, stderr: append([]string{`unknown command "bogus"`}, commands...)},
		{args: []string{"bogus", "-config", "x.yaml"}, code: 2, stderr: []string{`unknown command "bogus"`}},
		{args: []string{"-config", "x.yaml", "extra"}, code: 2, stderr: append([]string{`unexpected argument "extra"`}, commands...)},
		{args: []string{"-config", "x.yaml", "check"}, code: 2, stderr: []string{`unexpected argument "check"`, "rivermon check -config FILE"}},
		{args: []string{"run", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"check", "-config", "x.yaml", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`, "rivermon check"}},
		{args: []string{"version", "extra"}, code: 2, stderr: []string{`unexpected argument "extra"`}},
		{args: []string{"-nosuchflag"}, code: 2, stderr: append([]string{"-nosuchflag"}, commands...)},
		{args: []string{"check", "-log-level", "debug"}, code: 2, stderr: []string{"-log-level"}},
		{args: []string{"help", "bogus"}, code: 2, stderr: []string{`unknown command "bogus"`}},
		{args: []string{"-h"}, code: 0, stdout: commands},
		{args: []string{"-help"}, code: 0, stdout: commands},
		{args: []string{"--help"}, code: 0, stdout: commands},
		{args: []string{"help"}, code: 0, stdout: commands},
		{args: []string{"check", "-h"}, code: 0, stdout: []string{"rivermon check", "-config", "FILE:LINE"}},
		{args: []string{"help", "check"}, code: 0, stdout: []string{"rivermon check", "-config", "FILE:LINE"}},
		{args: []string{"run", "--help"}, code: 0, stdout: []string{"rivermon [run]", "-config", "-log-level", "-cpuprofile"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			check := func(name string, got *bytes.Buffer, want []string) {
				if len(want) == 0 && got.Len() > 0 {
					t.Errorf("%s not empty:\n%s", name, got)
				}
				for _, w := range want {
					if !strings.Contains(got.String(), w) {
						t.Errorf("%s has no %q:\n%s", name, w, got)
					}
				}
			}
			check("stdout", &stdout, tc.stdout)
			check("stderr", &stderr, tc.stderr)
		})
	}
}

// TestFailedStartReturns: a start that fails after the signal handlers
// are set up (here a -cpuprofile that cannot be written) returns its
// status, instead of waiting for a signal that ends its goroutines.
func TestFailedStartReturns(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"-config", filepath.Join("..", "..", "configs", "rivermon.yaml"),
			"-cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir", "cpu.prof")}, &stdout, &stderr)
	}()
	select {
	case c := <-code:
		if c != 1 || !strings.Contains(stderr.String(), "-cpuprofile") {
			t.Errorf("exit %d, want 1 with the -cpuprofile problem; stderr:\n%s", c, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return 30 s after its start failed")
	}
}

// TestVersionNeverDevel: a build without -ldflags and without VCS
// information (a test binary is one) says "dev", not the go command's
// "(devel)".
func TestVersionNeverDevel(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, &stderr)
	}
	if got := stdout.String(); got != "rivermon dev\n" {
		t.Errorf("version printed %q, want %q", got, "rivermon dev\n")
	}
}

// TestVersionFromLdflags: the version `make build` sets with -ldflags -X
// main.version is the one printed.
func TestVersionFromLdflags(t *testing.T) {
	out, err := exec.Command(binary(t), "version").Output()
	if err != nil || string(out) != "rivermon "+testVersion+"\n" {
		t.Errorf("version: %v %q, want %q", err, out, "rivermon "+testVersion+"\n")
	}
}

func TestVersionOf(t *testing.T) {
	vcs := func(version, rev, modified string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/rivermon/rivermon", Version: version}}
		if rev != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs", Value: "git"},
				debug.BuildSetting{Key: "vcs.revision", Value: rev}, debug.BuildSetting{Key: "vcs.modified", Value: modified})
		}
		return bi
	}
	const rev = "87f4d36abcde0123456789abcdef0123456789ab"
	for _, tc := range []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"ldflags win", "v1.4.0-3-g87f4d36-dirty", vcs("v1.3.0", rev, "true"), "v1.4.0-3-g87f4d36-dirty"},
		{"go install @version", "", vcs("v1.3.0", "", ""), "v1.3.0"},
		{"pseudo-version from VCS", "", vcs("v0.0.0-20261203021400-87f4d36abcde+dirty", rev, "true"), "v0.0.0-20261203021400-87f4d36abcde+dirty"},
		{"revision, modified", "", vcs("(devel)", rev, "true"), "87f4d36abcde-dirty"},
		{"revision, clean", "", vcs("(devel)", rev, "false"), "87f4d36abcde"},
		{"nothing known", "", vcs("(devel)", "", ""), "dev"},
		{"empty version", "", vcs("", "", ""), "dev"},
		{"no build info", "", nil, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionOf(tc.ldflags, tc.bi); got != tc.want {
				t.Errorf("versionOf = %q, want %q", got, tc.want)
			}
		})
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
		return testenv.Metric(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), `rivermon_influx_write_errors_total{kind="network",output="default"}`) > 0
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
// reported and the rules in force stay: data that crosses one of them
// afterwards fires it. A good file is taken: a rule only it has fires on the
// next data. The process runs throughout and exits 0 on SIGTERM.
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
	defer logf.Close()
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait is the only way to learn that the process ended: ProcessState
	// stays nil until it returns.
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	logHas := func(s string) bool { b, _ := os.ReadFile(logPath); return strings.Contains(string(b), s) }
	running := func(when string) {
		t.Helper()
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("rivermon exited %s: %v\n%s", when, waitErr, b)
		default:
		}
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return logHas("rivermon running") }, "rivermon did not start")

	// firing is whether /api/v1/alerts lists alertname at station.
	firing := func(alertname, station string) bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/alerts", port))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var as []struct{ Labels map[string]string }
		if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
			t.Fatalf("/api/v1/alerts: %v", err)
		}
		for _, a := range as {
			if a.Labels["alertname"] == alertname && a.Labels["station"] == station {
				return true
			}
		}
		return false
	}
	const st = "nianchu-mouth"
	reg, err := registry.LoadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	critical := reg.Station(st).Limits["level_critical_m"]
	pub := testenv.NewClient(t, mq.URL, "station-hup")
	start := time.Now().UTC().Truncate(time.Minute).Add(-40 * time.Minute)
	// levels publishes level_m samples i in [from, to), five minutes
	// apart, 0.2 m above the critical level.
	levels := func(from, to int) {
		var samples []any
		for i := from; i < to; i++ {
			samples = append(samples, map[string]any{"time": start.Add(time.Duration(i) * 5 * time.Minute).Format(time.RFC3339),
				"values": map[string]any{"level_m": critical + 0.2}})
		}
		payload, _ := json.Marshal(map[string]any{"station": st, "samples": samples})
		pub.Publish("rivermon/v1/stations/"+st+"/readings", payload)
	}

	if err := os.WriteFile(rules, []byte("rules:\n  - name: Broken\n    above: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, 10*time.Second, func() bool { return logHas("rules not reloaded; the previous rules stay in force") }, "a broken file was not reported")
	running("after a broken rules file")
	if firing("WaterLevelCritical", st) {
		t.Fatal("WaterLevelCritical fires before any data")
	}
	// Four samples above the critical level: the first three are evaluated
	// (a value is, once the next has come), and they span the rule's `for`
	// of 10 minutes.
	levels(0, 4)
	testenv.Eventually(t, 20*time.Second, func() bool { return firing("WaterLevelCritical", st) },
		"the rules in force did not fire after a broken file was refused")

	probe := "  - {name: ReloadProbe, param: level_m, above: 0.1, for: 0, severity: info}\n"
	if err := os.WriteFile(rules, append(append([]byte(nil), good...), probe...), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	testenv.Eventually(t, 10*time.Second, func() bool { return logHas("rules reloaded") }, "a good file was not reloaded")
	running("after a good rules file")
	levels(4, 6)
	testenv.Eventually(t, 20*time.Second, func() bool { return firing("ReloadProbe", st) }, "the reloaded file's new rule did not fire")
	if !firing("WaterLevelCritical", st) {
		t.Error("WaterLevelCritical, still in the reloaded rules, stopped firing")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("exit after SIGTERM: %v", waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
}
