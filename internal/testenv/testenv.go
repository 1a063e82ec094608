// Package testenv starts the real servers rivermon talks to (Mosquitto,
// InfluxDB 1.8, Alertmanager) as child processes on free loopback ports with
// their data in a test's temporary folder, and stops them when the test ends;
// and a headless Chromium for the operations page.
// Nothing is mocked, and nothing depends on servers already running on the
// machine. A missing server binary skips the test locally and fails it under
// CI=true (scripts/deps.sh installs them; `make test` runs it first).
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FindBinary returns the path of a server program: the environment variable
// env if set, then the project's .tools/bin, then PATH, then /usr/sbin and
// /usr/bin (Debian puts daemons in /usr/sbin, outside a user's PATH).
func FindBinary(t testing.TB, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	var candidates []string
	if root, err := RepoRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, ".tools", "bin", name))
	}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/sbin/"+name, "/usr/bin/"+name)
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c
		}
	}
	msg := fmt.Sprintf("%s not found (set %s, or run scripts/deps.sh / make deps)", name, env)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// RepoRoot is the folder holding go.mod, found from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server the test starts. It is taken below the kernel's ephemeral range:
// a port the kernel hands out for port 0 may be given a moment later to an
// outgoing connection (a broker client, an HTTP request) before the server
// binds it, and the server then fails with "address already in use" (seen
// once in 20 runs of cmd/rivermon/app). Ports are not handed out twice by
// one test process; other processes that bind the port in the moment
// before the server does are as rare as their own picks.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := portRange()
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		portsMu.Lock()
		taken := portsGiven[p]
		portsGiven[p] = true
		portsMu.Unlock()
		if taken {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatalf("free port: none free among 1000 tried in %d–%d", lo, hi-1)
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// portRange is [20000, the start of the ephemeral range), or 20000–29999
// when that range cannot be read or starts too low. make run's ports are
// below 20000.
func portRange() (lo, hi int) {
	lo, hi = 20000, 30000
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		if start, err := strconv.Atoi(f[0]); err == nil && start > lo+5000 {
			hi = start
		}
	}
	return lo, hi
}

// Process is a server child process that can be stopped and started again
// with the same arguments, ports and data.
type Process struct {
	t       testing.TB
	name    string
	bin     string
	args    []string
	logPath string
	port    int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t testing.TB, name, bin string, port int, logPath string, args ...string) *Process {
	t.Helper()
	p := newProcess(t, name, bin, port, logPath, args...)
	p.Start()
	return p
}

// newProcess returns a process that is not started yet and is stopped when
// the test ends.
func newProcess(t testing.TB, name, bin string, port int, logPath string, args ...string) *Process {
	p := &Process{t: t, name: name, bin: bin, args: args, logPath: logPath, port: port}
	t.Cleanup(func() {
		p.Kill(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, p.LogTail(40))
		}
	})
	return p
}

// Start starts the process and waits until its port accepts connections.
func (p *Process) Start() {
	p.t.Helper()
	p.launch()
	p.awaitPort()
}

// launch starts the process without waiting for it.
func (p *Process) launch() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("%s already running", p.name)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("%s log: %v", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// awaitPort waits until the launched process accepts connections on its
// port; it fails the test if the process exits first or takes over 60 s.
func (p *Process) awaitPort() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("%s is not running", p.name)
	}
	done := p.done
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			p.cmd = nil
			p.t.Fatalf("%s exited at start:\n%s", p.name, p.LogTail(30))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not listen on port %d within 60 s:\n%s", p.name, p.port, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the process gracefully (SIGTERM) and waits for it.
func (p *Process) Stop() { p.Kill(syscall.SIGTERM) }

// Kill sends sig and waits for the process to exit (SIGKILL after 10 s).
func (p *Process) Kill(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

// Port is the port the process listens on.
func (p *Process) Port() int { return p.port }

// LogTail returns the last n lines of the process's output.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Mosquitto is a running broker.
type Mosquitto struct {
	*Process
	URL string
	Dir string
}

// MosquittoOptions adjust the broker configuration.
type MosquittoOptions struct {
	// Extra lines appended to mosquitto.conf.
	Extra []string
	// Conf, when set, writes the whole configuration instead: dir is the
	// broker's folder and port the plain loopback listener the broker is
	// reached on (URL). Lines for running as root are added after it.
	Conf func(dir string, port int) string
}

// StartMosquitto starts a broker with persistence on, anonymous access and
// room for large queues.
func StartMosquitto(t testing.TB, o MosquittoOptions) *Mosquitto {
	t.Helper()
	bin := FindBinary(t, "mosquitto", "RIVERMON_MOSQUITTO")
	dir := t.TempDir()
	port := FreePort(t)
	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence true",
		"persistence_location " + dir + "/",
		"autosave_interval 1",
		"max_queued_messages 1000000",
		"max_inflight_messages 20",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
	}
	if os.Geteuid() == 0 {
		// Mosquitto run as root drops to user mosquitto, which could not
		// write the temporary folder.
		conf = append(conf, "user root")
	}
	conf = append(conf, o.Extra...)
	if o.Conf != nil {
		conf = []string{o.Conf(dir, port)}
		if os.Geteuid() == 0 {
			conf = append(conf, "user root")
		}
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	writeFile(t, confPath, strings.Join(conf, "\n")+"\n")
	p := startProcess(t, "mosquitto", bin, port, filepath.Join(dir, "mosquitto.log"), "-c", confPath)
	return &Mosquitto{Process: p, URL: fmt.Sprintf("tcp://127.0.0.1:%d", port), Dir: dir}
}

// CPU is the processor time (user and system) the process has used so far,
// from /proc; zero once it has exited.
func (p *Process) CPU() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return ProcessCPU(p.cmd.Process.Pid)
}

// ProcessCPU is the processor time (user and system) process pid has used,
// read from /proc/<pid>/stat; zero if it cannot be read.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields are counted after its ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	// Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after
	// the name, in clock ticks of 1/100 s on Linux.
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
