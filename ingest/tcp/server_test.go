package tcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, o Options) (*Server, func() int) {
	t.Helper()
	var mu sync.Mutex
	var got [][]byte
	o.Listen = "127.0.0.1:0"
	o.Handle = func(_ string, frame []byte, _ time.Time, ack func()) {
		mu.Lock()
		got = append(got, frame)
		mu.Unlock()
		if ack != nil {
			ack()
		}
	}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
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

func TestIdleConnectionIsClosed(t *testing.T) {
	s, _ := start(t, Options{IdleTimeout: 100 * time.Millisecond})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedWithin(t, c, 5*time.Second) {
		t.Fatal("an idle connection was kept open")
	}
}

func TestJunkFloodIsClosed(t *testing.T) {
	s, got := start(t, Options{})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = c.Write(bytes.Repeat([]byte("not hj212 "), 10000)) }()
	if !closedWithin(t, c, 5*time.Second) {
		t.Fatal("a connection sending 100 KB of junk was kept open")
	}
	if got() == 0 {
		t.Error("the junk was not handed on to be dead-lettered")
	}
}

func TestConnectionsBeyondTheLimitAreRefused(t *testing.T) {
	s, _ := start(t, Options{MaxConnections: 2, IdleTimeout: time.Minute})
	for range 2 {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// The server takes connections in order; give it the first two.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.slots) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	third, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if !closedWithin(t, third, 5*time.Second) {
		t.Fatal("a connection over max_connections was accepted")
	}
}
