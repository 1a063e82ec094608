// Package tcp is rivermon's HJ 212-2017 listener: water-quality analysers and
// data loggers connect and push packets, as they do in the field. Each packet
// is handed to the intake like an MQTT message; a packet whose Flag asks
// for an answer gets the 9014 data acknowledgement only once the intake has
// it durably, the same guarantee as the MQTT acknowledgement.
package tcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rivermon/rivermon/internal/hj212"
)

// Options configure a Server.
type Options struct {
	Listen string
	// Handle takes one frame (a packet, or bytes that could not be framed)
	// with the function that answers it once it is durable. It must not
	// block.
	Handle func(source string, frame []byte, received time.Time, ack func())
	// IdleTimeout closes a connection that sends nothing (default 10 min).
	IdleTimeout time.Duration
	// MaxConnections refuses connections beyond it (default 1,000).
	MaxConnections int
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Server accepts HJ 212 connections.
type Server struct {
	o     Options
	ln    net.Listener
	slots chan struct{}
	conns *prometheus.CounterVec
	open  prometheus.Gauge
	wg    sync.WaitGroup
}

// Listen opens the listener.
func Listen(o Options) (*Server, error) {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, ln: ln, slots: make(chan struct{}, o.MaxConnections),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rivermon_hj212_connections_total",
			Help: "HJ 212 TCP connections by how they ended: closed (by the peer), idle (timeout), oversized (a frame past 1,036 bytes), refused (over max_connections), shutdown.",
		}, []string{"result"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rivermon_hj212_connections", Help: "Open HJ 212 TCP connections."}),
	}
	for _, r := range []string{"closed", "idle", "oversized", "refused", "shutdown"} {
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

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until ctx ends, then closes them and returns.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	var mu sync.Mutex
	live := map[net.Conn]bool{}
	defer func() {
		mu.Lock()
		for c := range live {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.o.Logger.Warn("hj212 accept", "err", err)
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.conns.WithLabelValues("refused").Inc()
			c.Close()
			continue
		}
		mu.Lock()
		live[c] = true
		mu.Unlock()
		s.open.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			result := s.serveConn(ctx, c)
			c.Close()
			mu.Lock()
			delete(live, c)
			mu.Unlock()
			s.open.Dec()
			<-s.slots
			s.conns.WithLabelValues(result).Inc()
		}()
	}
}

// maxPending is the most a connection may hold of an unfinished frame:
// one frame of the largest data segment.
const maxPending = hj212.MaxDataLen + 12

// maxJunk is how many bytes a connection may send that do not frame as
// HJ 212 before it is closed: an analyser speaking something else, or a
// flood, is not dead-lettered without end.
const maxJunk = 64 << 10

func (s *Server) serveConn(ctx context.Context, c net.Conn) string {
	source := c.RemoteAddr().String()
	var wmu sync.Mutex
	answer := func(reply []byte) func() {
		return func() {
			// Called from the intake once the packet is durable; a slow
			// or gone peer must not hold it up.
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(reply); err != nil {
				s.o.Logger.Debug("hj212 reply not delivered; the analyser will send again", "peer", source, "err", err)
			}
		}
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	junk := 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		n, err := c.Read(chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
			frames, rest := hj212.Split(buf)
			now := time.Now()
			for _, f := range frames {
				var ack func()
				if f.Err == nil {
					junk = 0
					if f.Pkt.AckRequested() {
						ack = answer(f.Pkt.Ack().Encode())
					}
				} else {
					junk += len(f.Raw)
				}
				s.o.Handle(source, append([]byte(nil), f.Raw...), now, ack)
			}
			buf = append(buf[:0], rest...)
			if len(buf) > maxPending || junk > maxJunk {
				s.o.Logger.Warn("hj212 connection closed: too much that is not HJ 212", "peer", source, "bytes", junk+len(buf))
				return "oversized"
			}
		}
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return "shutdown"
			case errors.As(err, &ne) && ne.Timeout():
				return "idle"
			default:
				return "closed"
			}
		}
	}
}
