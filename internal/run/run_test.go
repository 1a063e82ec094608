package run

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Stages stop last first, each once the later ones have returned.
func TestGroupStopsInReverseOrder(t *testing.T) {
	var mu sync.Mutex
	var stopped []string
	var g Group
	for _, name := range []string{"delivery", "stream", "intake"} {
		g.Go(name, func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(5 * time.Millisecond) // a drain
			mu.Lock()
			stopped = append(stopped, name)
			mu.Unlock()
			return nil
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"intake", "stream", "delivery"}; !slices.Equal(stopped, want) {
		t.Fatalf("stopped %v, want %v", stopped, want)
	}
}

// A stage that fails stops the group, and Wait names it.
func TestGroupStopsWhenAStageFails(t *testing.T) {
	var g Group
	stopped := make(chan struct{})
	g.Go("delivery", func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	})
	g.Go("http", func(context.Context) error { return errors.New("address in use") })
	err := g.Wait(context.Background())
	if err == nil || err.Error() != "http: address in use" {
		t.Fatalf("Wait = %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other stage was not stopped")
	}
}

func TestGraceEndsAfterItsParent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g, stop := Grace(ctx, 30*time.Millisecond)
	defer stop()
	cancel()
	select {
	case <-g.Done():
		t.Fatal("ended with its parent")
	case <-time.After(10 * time.Millisecond):
	}
	select {
	case <-g.Done():
	case <-time.After(time.Second):
		t.Fatal("did not end after the grace")
	}
}
