package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Client is a plain MQTT client for tests: it publishes as a station would
// and records what arrives on the topics it subscribes to.
type Client struct {
	paho.Client
	t  testing.TB
	mu sync.Mutex
	// Got holds every received message by topic filter, in arrival order.
	got map[string][]Message
}

// Message is a received message.
type Message struct {
	Topic   string
	Payload []byte
}

// NewClient connects a clean-session client to brokerURL.
func NewClient(t testing.TB, brokerURL, clientID string) *Client {
	t.Helper()
	c, err := Dial(t, ClientOptions{URL: brokerURL, ID: clientID, Retry: true})
	if err != nil {
		t.Fatalf("mqtt connect %s: %v", brokerURL, err)
	}
	return c
}

// ClientOptions describe a test client's connection.
type ClientOptions struct {
	URL, ID, Username, Password string
	CAFile                      string // for ssl:// URLs
	Retry                       bool   // keep trying to connect (else fail at once)
}

// Dial connects a clean-session client and returns the broker's refusal, if
// any, as an error.
func Dial(t testing.TB, co ClientOptions) (*Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(co.URL).SetClientID(co.ID).SetCleanSession(true).
		SetUsername(co.Username).SetPassword(co.Password).
		SetAutoReconnect(co.Retry).SetConnectRetry(co.Retry).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(time.Second)
	if u, err := url.Parse(co.URL); err == nil && u.Scheme == "tcp" {
		// Reads through a buffer: paho reads each packet's type and length
		// a byte at a time, three system calls for every PUBACK, which made
		// the benchmarks' publishers cost the machine more than the broker.
		o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
			if err != nil {
				return nil, err
			}
			return &readBuffered{Conn: c, r: bufio.NewReaderSize(c, 32<<10)}, nil
		})
	}
	if co.CAFile != "" {
		pem, err := os.ReadFile(co.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	c := &Client{Client: paho.NewClient(o), t: t, got: map[string][]Message{}}
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// Publish sends payload at QoS 1 and waits for the PUBACK.
func (c *Client) Publish(topic string, payload []byte) {
	c.t.Helper()
	tok := c.Client.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// Subscribe records messages on filter at QoS 1.
func (c *Client) Subscribe(filter string) {
	c.t.Helper()
	tok := c.Client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		c.mu.Lock()
		c.got[filter] = append(c.got[filter], Message{Topic: m.Topic(), Payload: append([]byte(nil), m.Payload()...)})
		c.mu.Unlock()
	})
	if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		c.t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
}

// Received returns a copy of what arrived on filter so far.
func (c *Client) Received(filter string) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.got[filter]...)
}

// readBuffered is a connection read through a buffer.
type readBuffered struct {
	net.Conn
	r *bufio.Reader
}

func (c *readBuffered) Read(p []byte) (int, error) { return c.r.Read(p) }
