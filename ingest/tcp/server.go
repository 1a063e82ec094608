// Package tcp is rivermon's listener for the field protocols that arrive
// over TCP: HJ 212-2017 water-quality analysers and data loggers, and SL
// 651-2014 hydrological RTUs. They connect and push frames, as they do in
// the field. A Protocol's session frames what a connection sends; each
// frame is handed to the intake like an MQTT message, with a Reply that
// sends the protocol's answer. The stream decides the answer and it goes
// out only once the intake has the frame durably, the same guarantee as
// the MQTT acknowledgement.
//
// One host cannot block a listener: a connection that has not sent a
// valid frame within FirstFrameTimeout is closed, one address holds at
// most MaxPerAddress connections, a connection sending more than 64 KiB
// that does not frame is closed, and a run of such bytes is handed over
// once (its start and its length), not fragment by fragment.
package tcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Received is what the listener hands over: one frame (or an M3
// transfer's packets), or the start of a run of bytes that did not frame.
type Received struct {
	From    string // the peer's address
	Payload []byte
	At      time.Time
	// Junk, when above 0, is the length of the run of bytes that did not
	// frame; Payload holds its first bytes (at most 1 KiB).
	Junk int
	// Reply sends an answer to the peer; it is safe to call from any
	// goroutine, after the connection closed too (the answer is then lost
	// and the peer sends again).
	Reply func(answer []byte)
}

// Unit is what a Session makes of the bytes it was fed.
type Unit struct {
	// Payload is the session's own copy; nil for a unit that only says
	// the peer sent a valid frame (a packet of an unfinished transfer).
	Payload []byte
	// Valid: a frame that passed the protocol's framing checks (CRC): the
	// peer speaks the protocol.
	Valid bool
	// Junk: bytes that do not frame.
	Junk bool
}

// Session frames one connection's bytes.
type Session interface {
	// Feed takes the bytes read and returns the units they complete.
	Feed(data []byte) []Unit
	// Held is how many bytes the session keeps for later frames.
	Held() int
	// Flush returns what is held when the connection ends.
	Flush() []Unit
}

// Protocol is a field protocol a listener speaks.
type Protocol struct {
	Name       string // "hj212", "sl651": metric and log names
	NewSession func() Session
	// MaxHeld is the most a session may hold (an unfinished frame, M3
	// packets waiting for the rest) before the connection is closed.
	MaxHeld int
}

// Options configure a Server.
type Options struct {
	Listen   string
	Protocol Protocol
	// Handle takes what a connection sent. It must not block.
	Handle func(Received)
	// WaitRoom, when set, is asked before each read: it blocks while the
	// intake is over its bounds (at most limit), so that a flood waits in
	// TCP rather than in memory, as the broker connection does.
	WaitRoom func(done <-chan struct{}, limit time.Duration)
	// IdleTimeout closes a connection that sends nothing (default 10 min).
	IdleTimeout time.Duration
	// FirstFrameTimeout closes a connection that has not sent a valid
	// frame this long after it opened (default 30 s).
	FirstFrameTimeout time.Duration
	// MaxConnections refuses connections beyond it (default 1,000).
	MaxConnections int
	// MaxPerAddress refuses a connection from an address that already
	// holds this many (default 100).
	MaxPerAddress int
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Server accepts connections of one protocol.
type Server struct {
	o     Options
	ln    net.Listener
	slots chan struct{}
	conns *prometheus.CounterVec
	open  prometheus.Gauge
	wg    sync.WaitGroup

	mu     sync.Mutex
	live   map[net.Conn]bool
	byHost map[string]int
}

// Connection results, the label of rivermon_<protocol>_connections_total.
var results = []string{"closed", "idle", "unframed", "oversized", "refused", "refused_address", "shutdown"}

// Listen opens the listener.
func Listen(o Options) (*Server, error) {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.FirstFrameTimeout <= 0 {
		o.FirstFrameTimeout = 30 * time.Second
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1000
	}
	if o.MaxPerAddress <= 0 {
		o.MaxPerAddress = 100
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Protocol.NewSession == nil || o.Protocol.Name == "" {
		return nil, errors.New("tcp: no protocol")
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	name := o.Protocol.Name
	s := &Server{o: o, ln: ln, slots: make(chan struct{}, o.MaxConnections),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_" + name + "_connections_total",
			Help: "TCP connections by how they ended: closed (by the peer), idle (idle_timeout), unframed (no valid frame within the first-frame timeout), oversized (too much that does not frame), refused (over max_connections), refused_address (over the connections of one address), shutdown.",
		}, []string{"result"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rivermon_" + name + "_connections", Help: "Open TCP connections."}),
		live: map[net.Conn]bool{}, byHost: map[string]int{},
	}
	for _, r := range results {
		s.conns.WithLabelValues(r)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.conns, s.open)
	}
	return s, nil
}

// Close closes the listener of a server that is not serving (Serve
// closes it when its context ends).
func (s *Server) Close() { _ = s.ln.Close() }

// Name is the protocol's name.
func (s *Server) Name() string { return s.o.Protocol.Name }

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx ends, then closes them and returns.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		for c := range s.live {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.o.Logger.Warn(s.o.Protocol.Name+" accept", "err", err)
			continue
		}
		host := hostOf(c.RemoteAddr())
		if !s.admit(c, host) {
			continue
		}
		s.open.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			result := s.serveConn(ctx, c)
			c.Close()
			s.mu.Lock()
			delete(s.live, c)
			if s.byHost[host]--; s.byHost[host] == 0 {
				delete(s.byHost, host)
			}
			s.mu.Unlock()
			s.open.Dec()
			<-s.slots
			s.conns.WithLabelValues(result).Inc()
		}()
	}
}

// admit takes a slot for c, or refuses it.
func (s *Server) admit(c net.Conn, host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byHost[host] >= s.o.MaxPerAddress {
		s.conns.WithLabelValues("refused_address").Inc()
		c.Close()
		return false
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.conns.WithLabelValues("refused").Inc()
		c.Close()
		return false
	}
	s.byHost[host]++
	s.live[c] = true
	return true
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// maxJunk is how many bytes a connection may send that do not frame
// before it is closed: a device speaking something else, or a flood, is
// not dead-lettered without end.
const maxJunk = 64 << 10

// answerQueue is how many answers a connection holds for a peer slow to
// read them.
const answerQueue = 64

// junkSample is how much of a run of junk is kept in its dead letter.
const junkSample = 1024

// junkRun gathers consecutive bytes that do not frame.
type junkRun struct {
	start []byte
	n     int
}

func (j *junkRun) add(b []byte) {
	if room := junkSample - len(j.start); room > 0 {
		j.start = append(j.start, b[:min(room, len(b))]...)
	}
	j.n += len(b)
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) string {
	peer := c.RemoteAddr().String()
	name := s.o.Protocol.Name
	// Answers go out through a writer of the connection's own: the intake
	// calls Reply while it acknowledges a batch, and a peer that does not
	// read must not hold that up. A full queue drops the answer (the
	// device sends again); a write that times out closes the connection.
	answers := make(chan []byte, answerQueue)
	ended := make(chan struct{})
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		for {
			select {
			case a := <-answers:
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(a); err != nil {
					s.o.Logger.Debug(name+" answer not delivered; the device will send again", "peer", peer, "err", err)
					c.Close()
					return
				}
			case <-ended:
				return
			}
		}
	}()
	defer func() { close(ended); writer.Wait() }()
	reply := func(answer []byte) {
		select {
		case answers <- answer:
		case <-ended:
		default:
			s.o.Logger.Debug(name+" answer dropped: the peer does not read them", "peer", peer)
		}
	}
	sess := s.o.Protocol.NewSession()
	var run junkRun
	unframed := 0 // bytes since the last valid frame that were no valid frame
	spoke := false
	firstBy := time.Now().Add(s.o.FirstFrameTimeout)
	hand := func(units []Unit, now time.Time) {
		for _, u := range units {
			if u.Junk {
				run.add(u.Payload)
				unframed += len(u.Payload)
				continue
			}
			if run.n > 0 {
				s.o.Handle(Received{From: peer, Payload: run.start, At: now, Junk: run.n})
				run = junkRun{}
			}
			if u.Valid {
				spoke, unframed = true, 0
			} else {
				unframed += len(u.Payload)
			}
			if u.Payload == nil {
				continue
			}
			s.o.Handle(Received{From: peer, Payload: u.Payload, At: now, Reply: reply})
		}
	}
	end := func(result string) string {
		now := time.Now()
		hand(sess.Flush(), now)
		if run.n > 0 {
			s.o.Handle(Received{From: peer, Payload: run.start, At: now, Junk: run.n})
		}
		return result
	}
	chunk := make([]byte, 4096)
	for {
		if s.o.WaitRoom != nil {
			s.o.WaitRoom(ctx.Done(), 10*time.Second)
		}
		deadline := time.Now().Add(s.o.IdleTimeout)
		if !spoke && firstBy.Before(deadline) {
			deadline = firstBy
		}
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(chunk)
		if n > 0 {
			hand(sess.Feed(chunk[:n]), time.Now())
			if sess.Held() > s.o.Protocol.MaxHeld || unframed > maxJunk {
				s.o.Logger.Warn(name+" connection closed: too much that does not frame", "peer", peer, "bytes", unframed+sess.Held())
				return end("oversized")
			}
		}
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return end("shutdown")
			case errors.As(err, &ne) && ne.Timeout() && !spoke && !time.Now().Before(firstBy):
				s.o.Logger.Info(name+" connection closed: no valid frame in time", "peer", peer, "after", s.o.FirstFrameTimeout)
				return end("unframed")
			case errors.As(err, &ne) && ne.Timeout():
				return end("idle")
			default:
				return end("closed")
			}
		}
	}
}
