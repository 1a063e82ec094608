package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/ingest/spool"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/run"
)

// Options configure a test pipeline: the stages wired as app wires them.
type Options struct {
	MaxBatchPoints   int
	SpoolMaxBytes    int64
	DrainTimeout     time.Duration
	Now              func() time.Time
	SweepEvery       time.Duration
	Location         *time.Location
	Observer         observer
	MaxQueueMessages int
	MaxQueueBytes    int
	// Outputs, when set, replace the one output newPipeline is given.
	Outputs []Output
}

type observer interface{ Observe([]reading.Observed) }

// pipeline is intake, stream and delivery around a journal, as in app.
type pipeline struct {
	spool    *spool.Log
	journal  *journal.Journal
	intake   *Intake
	stream   *Stream
	delivery *Delivery
	observed chan []reading.Observed
	observer observer
}

func newPipeline(t *testing.T, dir string, w PointWriter, pub Publisher, o Options) *pipeline {
	t.Helper()
	outputs := []Output{{Name: "default", Writer: w}}
	if len(o.Outputs) > 0 {
		outputs = o.Outputs
	}
	var names []string
	for _, out := range outputs {
		names = append(names, out.Name)
	}
	sp, _, err := spool.Open(dir, spool.Options{Readers: journal.Readers(names)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	reg := testRegistry(t)
	m := NewMetrics(nil)
	p := &pipeline{spool: sp, observer: o.Observer}
	p.journal = journal.New(sp, journal.Options{MaxBytes: o.SpoolMaxBytes})
	p.intake = NewIntake(IntakeOptions{Journal: p.journal, MaxQueueMessages: o.MaxQueueMessages, MaxQueueBytes: o.MaxQueueBytes,
		Metrics: m, Now: o.Now})
	so := StreamOptions{Registry: reg, TopicPrefix: "rivermon/v1", Intake: p.intake, Metrics: m,
		MaxBatchPoints: o.MaxBatchPoints, DrainTimeout: o.DrainTimeout, Now: o.Now, Location: o.Location, SweepEvery: o.SweepEvery}
	if o.Observer != nil {
		p.observed = make(chan []reading.Observed, 16)
		so.Observed = p.observed
	}
	p.stream = NewStream(so)
	p.delivery = NewDelivery(DeliveryOptions{Journal: p.journal, Outputs: outputs, DeadLetters: pub, TopicPrefix: "rivermon/v1",
		MaxBatchPoints: o.MaxBatchPoints, DrainTimeout: o.DrainTimeout, Metrics: m, Now: o.Now, Stations: p.stream.Stations()})
	return p
}

// Handle hands a broker message to the intake.
func (p *pipeline) Handle(topic string, payload []byte, received time.Time, ack func()) {
	p.intake.Source(SourceMQTT)(topic, payload, received, ack)
}

func (p *pipeline) WaitRoom(done <-chan struct{}, limit time.Duration) {
	p.intake.WaitRoom(done, limit)
}
func (p *pipeline) Problem() string     { return p.intake.Problem() }
func (p *pipeline) Stations() *Stations { return p.stream.Stations() }

// Run runs the stages as app does: started sinks first, stopped sources
// first.
func (p *pipeline) Run(ctx context.Context) error {
	var g run.Group
	g.Go("delivery", p.delivery.Run)
	if p.observed != nil {
		g.Go("observer", func(ctx context.Context) error {
			// Reads until the stream, stopped first, closes the channel.
			for ss := range p.observed {
				p.observer.Observe(ss)
			}
			<-ctx.Done()
			return nil
		})
	}
	g.Go("stream", p.stream.Run)
	return g.Wait(ctx)
}

func start(t *testing.T, p *pipeline) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}
	t.Cleanup(stop)
	return stop
}
