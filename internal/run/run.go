// Package run owns the goroutines of a service: a Group starts its stages
// in order and stops them in reverse order, each once the stages started
// after it have returned, so that a stage never outlives what feeds it and
// never loses what it still has to pass on.
package run

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group runs stages. The zero value is ready to use.
type Group struct {
	mu     sync.Mutex
	stages []*stage
	ended  chan struct{} // closed when the first stage returns
	once   sync.Once
}

type stage struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (g *Group) init() {
	g.once.Do(func() { g.ended = make(chan struct{}) })
}

// Go starts a stage: run must return soon after its context ends. A stage
// that returns on its own, with an error or not, stops the group.
func (g *Group) Go(name string, run func(ctx context.Context) error) {
	g.init()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{name: name, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.stages = append(g.stages, s)
	g.mu.Unlock()
	go func() {
		defer close(s.done)
		err := run(ctx)
		if err != nil {
			s.err = fmt.Errorf("%s: %w", name, err)
		}
		if ctx.Err() == nil {
			// Returned on its own: the group stops.
			g.mu.Lock()
			select {
			case <-g.ended:
			default:
				close(g.ended)
			}
			g.mu.Unlock()
		}
	}()
}

// Wait blocks until ctx ends or a stage returns on its own, then stops the
// stages last first and returns their errors.
func (g *Group) Wait(ctx context.Context) error {
	g.init()
	select {
	case <-ctx.Done():
	case <-g.ended:
	}
	return g.Stop()
}

// Stop stops the stages last first, each after the ones started after it
// have returned, and returns their errors.
func (g *Group) Stop() error {
	g.mu.Lock()
	stages := g.stages
	g.stages = nil
	g.mu.Unlock()
	var errs []error
	for i := len(stages) - 1; i >= 0; i-- {
		s := stages[i]
		s.cancel()
		<-s.done
		if s.err != nil {
			errs = append(errs, s.err)
		}
	}
	return errors.Join(errs...)
}

// Grace returns a context that ends grace after ctx does, or when stop is
// called: work under way at a shutdown may finish, for a bounded time.
func Grace(ctx context.Context, grace time.Duration) (_ context.Context, stop func()) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if out.Err() == nil {
			timer = time.AfterFunc(grace, cancel)
		}
	})
	return out, func() {
		stopAfter()
		cancel()
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}
}

// Backoff is the wait before retry attempt+1: 100 ms doubling to 10 s.
func Backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt, 8), 10*time.Second)
}

// Sleep waits d or until ctx ends, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
