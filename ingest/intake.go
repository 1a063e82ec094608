package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/tcp"
)

// Sources: where a message came from, which decides how it is read.
const (
	SourceMQTT     = "mqtt"      // Message.From is the MQTT topic
	SourceHJ212TCP = "hj212+tcp" // Message.From is the peer address; the station is found by MN
	SourceSL651TCP = "sl651+tcp" // Message.From is the peer address; the station is found by its address
)

// Handler takes one message from a source: the broker subscription and the
// TCP listeners all hand their messages over through one, and acknowledge
// through ack once the intake has made the message durable. It must not
// block.
type Handler func(from string, payload []byte, received time.Time, ack func())

// Message is one message waiting to be processed.
type Message struct {
	Source   string // SourceMQTT, SourceHJ212TCP, SourceSL651TCP
	From     string // the topic, or the peer address
	Payload  []byte
	Received time.Time
	Ack      func()
	// Reply, set by the TCP listeners instead of Ack, sends the field
	// protocol's answer to the peer. The stream decides the answer (none
	// for a frame the protocol says must not be answered) and it is sent
	// once the message is durable.
	Reply func(answer []byte)
	// Junk, when above 0, says Payload is the start of a run of this many
	// bytes that did not frame as the source's protocol: one dead letter
	// for the run, not one per fragment.
	Junk int
}

// IntakeOptions configure an Intake.
type IntakeOptions struct {
	// Journal is where a batch is made durable before its messages are
	// acknowledged.
	Journal *journal.Journal
	// MaxQueueMessages and MaxQueueBytes bound the queue: beyond either,
	// WaitRoom blocks (the broker connection is then not read) until the
	// stream takes the queue, for at most its limit (defaults 10,000
	// messages and 8 MiB of payload, a fraction of a second of work). The
	// HJ 212 TCP listener does not ask: an analyser waits for each answer.
	MaxQueueMessages int
	MaxQueueBytes    int
	Metrics          *Metrics
	Logger           *slog.Logger
	Now              func() time.Time
}

// Intake is the first stage: sources hand it messages, the stream takes
// them in arrival order, and the intake acknowledges them once the batch
// they went into is in the journal. This is the acknowledgement point: a
// message is acked once every point it produced and every rejection of it
// are durable; until then the broker keeps it in rivermon's persistent
// session, so a crash loses nothing.
type Intake struct {
	o IntakeOptions

	mu     sync.Mutex
	queue  []Message
	bytes  int
	room   chan struct{} // closed when the queue is taken; nil when nobody waits
	closed bool
	notify chan struct{}
	// problem is Journal.Problem (a test may stand in for a full spool).
	problem func() string
}

// NewIntake returns an empty intake.
func NewIntake(o IntakeOptions) *Intake {
	if o.MaxQueueMessages <= 0 {
		o.MaxQueueMessages = 10000
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 8 << 20
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Intake{o: o, notify: make(chan struct{}, 1), problem: o.Journal.Problem}
}

// Source returns the handler of one source.
func (in *Intake) Source(source string) Handler {
	return func(from string, payload []byte, received time.Time, ack func()) {
		in.Handle(Message{Source: source, From: from, Payload: payload, Received: received, Ack: ack})
	}
}

// Peer returns the handler of a TCP listener's source: its frames are
// answered through Reply, and a run of bytes that did not frame becomes one
// message.
func (in *Intake) Peer(source string) func(tcp.Received) {
	return func(r tcp.Received) {
		in.Handle(Message{Source: source, From: r.From, Payload: r.Payload, Received: r.At, Reply: r.Reply, Junk: r.Junk})
	}
}

// Handle queues a message. It never blocks. The broker's in-flight window
// does not bound the queue: Mosquitto 2.0 sends far beyond
// max_inflight_messages to a subscriber that acknowledges (4,400 messages
// of 10 KB were measured waiting with the window at 100), so the
// connection asks WaitRoom before it reads. Once the intake is closed,
// messages are left unacknowledged for the broker to resend.
func (in *Intake) Handle(m Message) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.queue = append(in.queue, m)
	in.bytes += len(m.Payload)
	n := len(in.queue)
	in.mu.Unlock()
	in.o.Metrics.queued.Set(float64(n))
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

// WaitRoom blocks while the queue is over its bounds, until the stream
// takes it, done is closed, or limit has passed. The broker connection
// calls it before reading, so that a flood waits in the broker (and in
// TCP) rather than in memory. It does not block while acknowledging has
// stopped (spool full or not writable): the broker then sends no more by
// itself, and the connection must go on reading the broker's answers (the
// PUBACK of a dead letter that delivery waits for before it can trim the
// spool, PINGRESP).
func (in *Intake) WaitRoom(done <-chan struct{}, limit time.Duration) {
	var timeout <-chan time.Time
	in.mu.Lock()
	for !in.closed && (len(in.queue) >= in.o.MaxQueueMessages || in.bytes >= in.o.MaxQueueBytes) {
		if in.Problem() != "" {
			break
		}
		if in.room == nil {
			in.room = make(chan struct{})
		}
		room := in.room
		in.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(limit)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-done:
			return
		case <-timeout:
			return
		}
		in.mu.Lock()
	}
	in.mu.Unlock()
}

// Problem says why messages are not acknowledged now (spool full, spool
// not writable), or "" when all is well.
func (in *Intake) Problem() string { return in.problem() }

// take returns the queue and whether the intake is closed.
func (in *Intake) take() ([]Message, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	q := in.queue
	in.queue, in.bytes = nil, 0
	if in.room != nil {
		close(in.room)
		in.room = nil
	}
	in.o.Metrics.queued.Set(0)
	return q, in.closed
}

// close stops taking messages.
func (in *Intake) close() {
	in.mu.Lock()
	in.closed = true
	if in.room != nil {
		close(in.room)
		in.room = nil
	}
	in.mu.Unlock()
}

// commit makes rec durable and then acknowledges its messages in arrival
// order.
func (in *Intake) commit(ctx context.Context, rec *journal.Record, acks []func(), received []time.Time) error {
	if err := in.o.Journal.Append(ctx, rec); err != nil {
		return err
	}
	now := in.o.Now()
	for i, ack := range acks {
		if ack != nil {
			ack()
		}
		in.o.Metrics.ackDelay.Observe(now.Sub(received[i]).Seconds())
	}
	return nil
}
