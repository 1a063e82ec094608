package mqtt

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

func TestBufferable(t *testing.T) {
	for brokers, want := range map[string]bool{
		"tcp://127.0.0.1:1883":  true,
		"ssl://broker:8883":     true,
		"mqtts://broker:8883":   true,
		"ws://broker:9001/mqtt": false,
		"wss://broker/mqtt":     false,
		"unix:///run/mqtt.sock": false,
	} {
		if got := bufferable([]string{brokers}); got != want {
			t.Errorf("bufferable(%s) = %v", brokers, got)
		}
	}
	if bufferable([]string{"tcp://a:1883", "ws://b:9001"}) || bufferable(nil) {
		t.Error("a websocket broker among others, or none, must keep paho's own connection")
	}
}

// countingConn counts the writes that reach the connection under the
// bufferedConn.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func TestBufferedConnGathersWritesInOrder(t *testing.T) {
	near, far := net.Pipe()
	cc := &countingConn{Conn: near}
	c := newBufferedConn(cc)
	const n = 5000
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(far)
		got <- b
	}()
	var want bytes.Buffer
	for i := range n {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("the far end read %d bytes, not the %d written in order", len(b), want.Len())
	}
	// A pipe takes one write at a time, so writes gather behind each
	// send: far fewer sends than packets.
	if w := cc.writes.Load(); w >= n/2 {
		t.Errorf("%d packets went out in %d writes: not gathered", n, w)
	}
}

func TestBufferedConnCloseSendsWhatIsPending(t *testing.T) {
	near, far := net.Pipe()
	c := newBufferedConn(near)
	got := make(chan []byte)
	go func() {
		time.Sleep(50 * time.Millisecond) // the packet is still pending at Close
		b, _ := io.ReadAll(far)
		got <- b
	}()
	disconnect := []byte{0xe0, 0x00}
	if _, err := c.Write(disconnect); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, disconnect) {
		t.Fatalf("after Close the broker read % x, want the DISCONNECT % x", b, disconnect)
	}
	if _, err := c.Write(disconnect); err == nil {
		t.Error("a Write after Close succeeded")
	}
}

func TestBufferedConnFailedSendClosesAndReports(t *testing.T) {
	near, far := net.Pipe()
	c := newBufferedConn(near)
	far.Close() // the broker is gone
	// The first Write is only gathered; the send fails and closes the
	// connection, so paho's reader sees the link lost ...
	// A Read waiting for room returns too.
	c.waitRoom = func(done <-chan struct{}) { <-done }
	c.Write([]byte{0x40, 0x02, 0, 1})
	read := make(chan error)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("Read succeeded on a connection whose send failed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Read waiting for room was not released when the send failed")
	}
	// ... and every later Write reports it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte{0x40, 0x02, 0, 2}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Writes still succeed after the send failed")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
}

func TestBufferedConnBoundsPending(t *testing.T) {
	near, far := net.Pipe() // nobody reads far yet: sends block
	c := newBufferedConn(near)
	wrote := make(chan int)
	go func() {
		p := make([]byte, 16<<10)
		n := 0
		for range 4 * maxPending / len(p) {
			if _, err := c.Write(p); err != nil {
				break
			}
			n += len(p)
		}
		wrote <- n
	}()
	select {
	case n := <-wrote:
		t.Fatalf("wrote %d bytes to a broker that reads nothing; pending is bounded at %d", n, maxPending)
	case <-time.After(200 * time.Millisecond):
	}
	c.mu.Lock()
	pending := len(c.pending)
	c.mu.Unlock()
	if pending > maxPending+16<<10 {
		t.Errorf("pending grew to %d bytes", pending)
	}
	go io.Copy(io.Discard, far) // the broker reads again
	select {
	case n := <-wrote:
		if n != 4*maxPending {
			t.Errorf("wrote %d bytes, want %d", n, 4*maxPending)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writes stayed blocked after the broker read again")
	}
	c.Close()
}

// TestWaitRoomHoldsTheBroker: while WaitRoom blocks, the connection reads
// nothing more, so a flood waits in Mosquitto (whose in-flight window does
// not hold it back) instead of in rivermon's memory; once there is room,
// every message arrives.
func TestWaitRoomHoldsTheBroker(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Extra: []string{"max_inflight_messages 100"}})
	var mu sync.Mutex
	var acks []func()
	got := 0
	room := make(chan struct{})
	var full atomic.Bool
	c, err := Connect(Options{
		Brokers:  []string{mq.URL},
		ClientID: "room-test",
		Filters:  []string{"flood/#"},
		Handle: func(_ string, _ []byte, _ time.Time, ack func()) {
			mu.Lock()
			got++
			acks = append(acks, ack)
			mu.Unlock()
		},
		WaitRoom: func(done <-chan struct{}, _ time.Duration) {
			if !full.Load() {
				return
			}
			select {
			case <-room:
			case <-done:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(0)
	testenv.Eventually(t, 10*time.Second, c.Connected, "not connected")
	// Acknowledge as rivermon does, in batches, so that Mosquitto keeps
	// sending.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			mu.Lock()
			as := acks
			acks = nil
			mu.Unlock()
			for _, a := range as {
				a()
			}
		}
	}()
	full.Store(true)
	pub := testenv.NewClient(t, mq.URL, "flooder")
	payload := make([]byte, 10<<10)
	const n = 2000
	for range n {
		pub.Client.Publish("flood/x", 1, false, payload)
	}
	time.Sleep(time.Second)
	mu.Lock()
	held := got
	mu.Unlock()
	// What was in the read buffer (64 KiB) and in paho's hands when the
	// room ran out: a handful of 10 KiB messages, not the flood.
	if held > 20 {
		t.Fatalf("%d of %d messages read while there was no room", held, n)
	}
	full.Store(false)
	close(room)
	testenv.Eventually(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return got >= n }, "not every message arrived once there was room")
}

// TestGateOnlyOnceSubscribed: the consumer is asked for room only once the
// session is subscribed, and for a short wait.
func TestGateOnlyOnceSubscribed(t *testing.T) {
	var subscribed atomic.Bool
	var asked []time.Duration
	g := gate(&subscribed, func(_ <-chan struct{}, limit time.Duration) { asked = append(asked, limit) })
	g(nil)
	if len(asked) != 0 {
		t.Fatal("asked for room before the subscription was answered")
	}
	subscribed.Store(true)
	g(nil)
	if len(asked) != 1 || asked[0] > 2*time.Second {
		t.Fatalf("asked %v; want one wait of at most 2 s (paho drops the link after a 10 s ping timeout)", asked)
	}
}

// TestWaitRoomLetsTheSessionWork: with a consumer that never has room, the
// session still connects and subscribes, and its own publishes are answered
// (each wait is short).
func TestWaitRoomLetsTheSessionWork(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	c, err := Connect(Options{
		Brokers:  []string{mq.URL},
		ClientID: "no-room",
		Filters:  []string{"nothing/#"},
		Handle:   func(string, []byte, time.Time, func()) {},
		WaitRoom: func(done <-chan struct{}, limit time.Duration) {
			select {
			case <-done:
			case <-time.After(limit):
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(0)
	testenv.Eventually(t, 10*time.Second, c.Connected, "never connected with a consumer that has no room")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		if err := c.Publish(ctx, "dead/letter", false, []byte{byte(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if !c.Connected() {
		t.Error("the session dropped")
	}
}
