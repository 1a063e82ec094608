package tcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rivermon/rivermon/internal/hj212"
)

type handed struct {
	mu  sync.Mutex
	got []Received
}

func (h *handed) all() []Received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Received(nil), h.got...)
}

// start serves o on a free loopback port; every frame is answered with
// "ok" at once.
func start(t *testing.T, o Options) (*Server, *handed) {
	t.Helper()
	h := &handed{}
	o.Listen = "127.0.0.1:0"
	if o.Protocol.Name == "" {
		o.Protocol = HJ212
	}
	o.Handle = func(r Received) {
		h.mu.Lock()
		h.got = append(h.got, r)
		h.mu.Unlock()
		if r.Reply != nil {
			r.Reply([]byte("ok\n"))
		}
	}
	o.Registerer = prometheus.NewRegistry()
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, h
}

func dial(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reads until the server closes the connection.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	// EOF (io.Copy returns nil) or a reset (the server closed while data
	// was still coming) both mean closed; only the deadline means open.
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for " + what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func packet(qn string) []byte {
	p := hj212.Packet{QN: qn, ST: "21", CN: "2011", PW: "123456", MN: "5402230000000000000000A1", Flag: 5, CP: "DataTime=20240715083000;w01010-Rtd=9.8"}
	return p.Encode()
}

func TestIdleConnectionIsClosed(t *testing.T) {
	s, _ := start(t, Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, s)
	if _, err := c.Write(packet("1")); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(t, c, 5*time.Second) {
		t.Fatal("an idle connection was kept open")
	}
	waitFor(t, "the idle count", func() bool {
		return testutil.ToFloat64(s.conns.WithLabelValues("idle")) == 1
	})
}

// A connection that never sends a valid frame is closed after the
// first-frame timeout, long before the idle timeout.
func TestSilentConnectionIsClosedAtTheFirstFrameTimeout(t *testing.T) {
	s, _ := start(t, Options{IdleTimeout: time.Hour, FirstFrameTimeout: 200 * time.Millisecond})
	c := dial(t, s)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(t, c, 5*time.Second) {
		t.Fatal("a connection that sent no valid frame was kept open")
	}
	waitFor(t, "the unframed count", func() bool {
		return testutil.ToFloat64(s.conns.WithLabelValues("unframed")) == 1
	})
	// One that has spoken stays past it.
	c2 := dial(t, s)
	if _, err := c2.Write(packet("2")); err != nil {
		t.Fatal(err)
	}
	if closedWithin(t, c2, 600*time.Millisecond) {
		t.Fatal("a connection that sent a valid frame was closed at the first-frame timeout")
	}
}

func TestJunkFloodIsClosedAndDeadLetteredOnce(t *testing.T) {
	s, h := start(t, Options{})
	c := dial(t, s)
	go func() { _, _ = c.Write(bytes.Repeat([]byte("##9999"), 20000)) }()
	if !closedWithin(t, c, 5*time.Second) {
		t.Fatal("a connection sending 120 KB of junk was kept open")
	}
	waitFor(t, "the junk", func() bool { return len(h.all()) > 0 })
	got := h.all()
	if len(got) != 1 {
		t.Fatalf("%d messages handed over for one run of junk, want 1", len(got))
	}
	if got[0].Junk < maxJunk || len(got[0].Payload) != junkSample || got[0].Reply != nil {
		t.Errorf("junk run: %d bytes, %d kept, reply %v", got[0].Junk, len(got[0].Payload), got[0].Reply != nil)
	}
}

// Junk between frames is one message per run; the frames around it are
// handed over and answered; coalesced and split writes frame the same.
func TestFramesAroundJunk(t *testing.T) {
	s, h := start(t, Options{})
	c := dial(t, s)
	stream := append(append(append(packet("1"), []byte("garbage ## more garbage")...), packet("2")...), packet("3")...)
	for i := 0; i < len(stream); i += 7 {
		if _, err := c.Write(stream[i:min(i+7, len(stream))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	buf := make([]byte, 9)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok\nok\nok\n" {
		t.Fatalf("answers %q, %v", buf, err)
	}
	got := h.all()
	if len(got) != 4 || got[1].Junk != len("garbage ## more garbage") {
		t.Fatalf("handed over %d messages (junk %d), want frame, junk run, frame, frame", len(got), got[1].Junk)
	}
	for i, want := range [][]byte{packet("1"), nil, packet("2"), packet("3")} {
		if want != nil && !bytes.Equal(got[i].Payload, want) {
			t.Errorf("message %d: %q", i, got[i].Payload)
		}
	}
}

func TestConnectionsBeyondTheLimitAreRefused(t *testing.T) {
	s, _ := start(t, Options{MaxConnections: 2, IdleTimeout: time.Minute})
	dial(t, s)
	dial(t, s)
	// The server takes connections in order; give it the first two.
	waitFor(t, "two connections", func() bool { return len(s.slots) == 2 })
	if !closedWithin(t, dial(t, s), 5*time.Second) {
		t.Fatal("a connection over max_connections was accepted")
	}
}

// One address cannot take every slot: its connections beyond
// MaxPerAddress are refused while another address still gets in.
func TestOneAddressCannotTakeEverySlot(t *testing.T) {
	s, _ := start(t, Options{MaxConnections: 10, MaxPerAddress: 3, IdleTimeout: time.Minute})
	for range 3 {
		dial(t, s)
	}
	waitFor(t, "three connections", func() bool { return len(s.slots) == 3 })
	if !closedWithin(t, dial(t, s), 5*time.Second) {
		t.Fatal("a fourth connection from one address was accepted")
	}
	if got := testutil.ToFloat64(s.conns.WithLabelValues("refused_address")); got != 1 {
		t.Errorf("refused_address = %v, want 1", got)
	}
	// 127.0.0.2 is another address on Linux's loopback.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(packet("1")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("another address got no answer: %v", err)
	}
}

// TestAPeerThatDoesNotReadHoldsNobodyUp: Reply never blocks its caller
// (the intake, acknowledging a batch for every source): a peer that asks
// for answers and does not read them loses answers, not the others'
// time. Each answer here is 64 KiB, so 200 of them are far beyond what
// the sockets hold.
func TestAPeerThatDoesNotReadHoldsNobodyUp(t *testing.T) {
	big := bytes.Repeat([]byte("a"), 64<<10)
	var mu sync.Mutex
	handled := 0
	o := Options{Listen: "127.0.0.1:0", Protocol: HJ212, Handle: func(r Received) {
		if r.Reply != nil {
			r.Reply(big) // as the intake does, on its own goroutine
		}
		mu.Lock()
		handled++
		mu.Unlock()
	}}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	c := dial(t, s)
	var all []byte
	for i := range 200 {
		all = append(all, packet(fmt.Sprint(i))...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "every packet handed over", func() bool { mu.Lock(); defer mu.Unlock(); return handled == 200 })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("200 packets took %s to hand over: answers held the caller up", d)
	}
}
