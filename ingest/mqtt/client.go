// Package mqtt connects rivermon to the broker with paho.mqtt.golang: a
// persistent session under a fixed client id, subscriptions made in the
// on-connect handler (so they are renewed after every reconnect), manual
// acknowledgement, and a handler that never blocks paho's router.
package mqtt

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Client.
type Options struct {
	Brokers  []string
	ClientID string
	Username string
	Password string
	CAFile   string
	CertFile string
	KeyFile  string
	// Filters are subscribed at QoS 1 on every connection.
	Filters []string
	// Handle receives every message, in the order the broker sent them, with
	// the time it arrived and the function that acknowledges it. Until ack
	// is called the broker keeps the message in the session and sends it
	// again after a reconnect (MQTT-4.4.0-1). Handle must not block.
	Handle func(topic string, payload []byte, received time.Time, ack func())
	// WaitRoom, when set, is called before the connection reads from the
	// broker once the session is subscribed, and blocks while the consumer
	// has no room: at most limit, and not past done (the connection is
	// closing). The broker and TCP hold what is not read meanwhile. Only
	// tcp:// and ssl:// connections ask it.
	WaitRoom func(done <-chan struct{}, limit time.Duration)
	Logger   *slog.Logger
	// Now is the clock stamped on deliveries; nil means time.Now.
	Now func() time.Time
	// Registerer, when set, gets rivermon_mqtt_connections_total.
	Registerer prometheus.Registerer
}

// Client is a connected broker session.
type Client struct {
	c         paho.Client
	log       *slog.Logger
	connected atomic.Bool
}

// Connect starts the session. It returns once the client runs; the first
// connection is retried in the background when the broker is not up yet.
func Connect(o Options) (*Client, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cl := &Client{log: o.Logger}
	// Each session made, the first and every reconnect: a count that keeps
	// rising says the link flaps, or another client takes over the client
	// id (MQTT-3.1.4-2: the broker disconnects the older connection).
	connections := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rivermon_mqtt_connections_total",
		Help: "Connections to the broker made and subscribed, the first and every reconnect.",
	})
	if o.Registerer != nil {
		o.Registerer.MustRegister(connections)
	}
	po := paho.NewClientOptions()
	for _, b := range o.Brokers {
		po.AddBroker(b)
	}
	po.SetClientID(o.ClientID)
	po.SetUsername(o.Username)
	po.SetPassword(o.Password)
	if o.CAFile != "" || o.CertFile != "" {
		tc, err := tlsConfig(o.CAFile, o.CertFile, o.KeyFile)
		if err != nil {
			return nil, err
		}
		po.SetTLSConfig(tc)
	}
	// A persistent session: the broker keeps our subscriptions and every
	// unacknowledged QoS 1 message while we are away (peers.md §1.4).
	po.SetCleanSession(false)
	po.SetAutoAckDisabled(true)
	// OrderMatters keeps one router goroutine, so Handle sees messages in
	// arrival order and acks can leave in that order (MQTT-4.6.0-2). Handle
	// only enqueues, so the router is never held up.
	po.SetOrderMatters(true)
	po.SetAutoReconnect(true)
	po.SetConnectRetry(true)
	po.SetConnectRetryInterval(time.Second)
	po.SetMaxReconnectInterval(10 * time.Second)
	po.SetKeepAlive(30 * time.Second)
	po.SetResumeSubs(false)
	if bufferable(o.Brokers) {
		po.SetCustomOpenConnectionFn(func(u *url.URL, po paho.ClientOptions) (net.Conn, error) {
			c, err := openBuffered(u, po)
			if err == nil && o.WaitRoom != nil {
				c.waitRoom = gate(&cl.connected, o.WaitRoom)
			}
			return c, err
		})
	}
	handler := func(_ paho.Client, m paho.Message) {
		o.Handle(m.Topic(), m.Payload(), o.Now(), m.Ack)
	}
	// Registered before Connect: the broker may send queued messages right
	// after CONNACK, before SUBSCRIBE is answered.
	po.SetDefaultPublishHandler(handler)
	po.SetOnConnectHandler(func(c paho.Client) {
		filters := make(map[string]byte, len(o.Filters))
		for _, f := range o.Filters {
			filters[f] = 1
		}
		// No handler of its own: paho would then split the topic of every
		// message to match it against each filter; the default handler
		// takes everything the session brings.
		t := c.SubscribeMultiple(filters, nil)
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			cl.log.Error("mqtt subscribe failed; reconnecting", "filters", o.Filters, "err", t.Error())
			// Without the subscription nothing arrives: drop the link so
			// that the reconnect subscribes again.
			go c.Disconnect(0)
			return
		}
		cl.connected.Store(true)
		connections.Inc()
		cl.log.Info("mqtt connected and subscribed", "filters", o.Filters)
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		cl.connected.Store(false)
		cl.log.Warn("mqtt connection lost; reconnecting", "err", err)
	})
	po.SetReconnectingHandler(func(_ paho.Client, _ *paho.ClientOptions) {
		cl.connected.Store(false)
	})
	cl.c = paho.NewClient(po)
	t := cl.c.Connect()
	// With ConnectRetry the token completes only once connected; do not
	// wait for it, readiness reports the state.
	go func() {
		t.Wait()
		if err := t.Error(); err != nil {
			cl.log.Error("mqtt connect failed", "err", err)
		}
	}()
	return cl, nil
}

// Connected reports whether the session is up and subscribed.
func (c *Client) Connected() bool { return c.connected.Load() && c.c.IsConnectionOpen() }

// Publish sends payload at QoS 1 and waits for the broker's PUBACK.
func (c *Client) Publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	if !c.c.IsConnectionOpen() {
		return errors.New("mqtt not connected")
	}
	t := c.c.Publish(topic, 1, retained, payload)
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close disconnects, giving paho up to quiesce to finish sending acks.
func (c *Client) Close(quiesce time.Duration) {
	c.connected.Store(false)
	c.c.Disconnect(uint(quiesce / time.Millisecond))
}

func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt tls ca_file %s: no PEM certificate in it", caFile)
		}
		tc.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// bufferable reports whether every broker URL is plain TCP or TLS, the
// connections openBuffered makes; websockets keep paho's own.
func bufferable(brokers []string) bool {
	for _, b := range brokers {
		u, err := url.Parse(b)
		if err != nil {
			return false
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps", "mqtt+ssl":
		default:
			return false
		}
	}
	return len(brokers) > 0
}

// openBuffered opens the connection as paho does for TCP and TLS, with a
// read buffer in front and writes gathered behind: paho reads each packet's
// type and length a byte at a time, and writes each packet (a PUBACK is 4
// bytes) with a system call of its own. (Unlike paho it does not dial
// through an all_proxy SOCKS proxy.)
func openBuffered(u *url.URL, o paho.ClientOptions) (*bufferedConn, error) {
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second}
	}
	var c net.Conn
	var err error
	switch u.Scheme {
	case "tcp", "mqtt":
		c, err = d.Dial("tcp", u.Host)
	default:
		c, err = tls.DialWithDialer(d, "tcp", u.Host, o.TLSConfig)
	}
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

// gate asks wait for room only once the session is subscribed (CONNACK
// and SUBACK must get through), and never for long: the broker's PINGRESP
// and the PUBACKs of our own publishes are behind the same gate.
func gate(subscribed *atomic.Bool, wait func(done <-chan struct{}, limit time.Duration)) func(done <-chan struct{}) {
	return func(done <-chan struct{}) {
		if subscribed.Load() {
			wait(done, maxRoomWait)
		}
	}
}

// maxRoomWait bounds one wait for room: a broker connection that is not
// read for longer than paho's ping timeout (10 s) is dropped.
const maxRoomWait = time.Second

// maxPending bounds the bytes gathered for the next write; a Write beyond
// it waits for the connection, so a broker that stops reading holds paho
// up instead of growing the buffer.
const maxPending = 256 << 10

// bufferedConn reads through a buffer, once waitRoom lets it, and gathers
// writes. Write appends the packet to what is pending and returns; one
// goroutine sends everything that gathered while its previous send was in
// the kernel, so under load hundreds of acknowledgements leave in one
// system call, and at a trickle each leaves at once. Nothing written is dropped while the connection
// lives: a failed send closes the connection (paho's reader then reports it
// lost, and the broker sends again whatever was not acknowledged), and
// Close sends what is pending first (a DISCONNECT, the last acks).
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond // pending grew or shrank, or the connection closed
	pending []byte
	err     error // the failed send's error; every later Write returns it
	closed  bool
	done    chan struct{} // closed when the sender has returned

	waitRoom func(done <-chan struct{}) // nil: read at once
	closing  chan struct{}              // closed by Close, or when a send fails
	shut     bool                       // closing is closed
}

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), done: make(chan struct{}), closing: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.send()
	return b
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if c.waitRoom != nil && c.r.Buffered() == 0 {
		c.waitRoom(c.closing)
	}
	return c.r.Read(p)
}

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && !c.closed && len(c.pending) >= maxPending {
		c.cond.Wait()
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.closed:
		return 0, net.ErrClosed
	}
	if len(c.pending) == 0 {
		c.cond.Broadcast()
	}
	c.pending = append(c.pending, p...)
	return len(p), nil
}

func (c *bufferedConn) send() {
	defer close(c.done)
	var out []byte
	c.mu.Lock()
	for {
		for len(c.pending) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.pending) == 0 {
			c.mu.Unlock()
			return // closed, and everything sent
		}
		out, c.pending = c.pending, out[:0]
		c.cond.Broadcast() // room for a Write waiting on maxPending
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		if err != nil {
			c.err = err
			c.pending = nil
			c.cond.Broadcast()
			c.shutLocked() // a Read waiting for room returns, and fails
			c.mu.Unlock()
			_ = c.Conn.Close()
			return
		}
	}
}

func (c *bufferedConn) shutLocked() {
	if !c.shut {
		close(c.closing)
		c.shut = true
	}
}

// Close sends what is pending, for up to a second, and closes.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	c.shutLocked()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
	return c.Conn.Close()
}
