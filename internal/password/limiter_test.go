package password_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/password"
)

func TestLimiterBusy(t *testing.T) {
	t.Parallel()
	l := password.NewLimiter(2, 0)
	var releases []func()
	for range l.Size() {
		release, err := l.Acquire(context.Background())
		if err != nil {
			t.Fatalf("Acquire with a free slot: %v", err)
		}
		releases = append(releases, release)
	}
	if _, err := l.Hash(context.Background(), "a password"); !errors.Is(err, password.ErrBusy) {
		t.Errorf("Hash with every slot taken: got %v, want ErrBusy", err)
	}
	if _, err := l.Verify(context.Background(), "a password", "$argon2id$…"); !errors.Is(err, password.ErrBusy) {
		t.Errorf("Verify with every slot taken: got %v, want ErrBusy", err)
	}
	if err := l.VerifyDummy(context.Background(), "a password"); !errors.Is(err, password.ErrBusy) {
		t.Errorf("VerifyDummy with every slot taken: got %v, want ErrBusy", err)
	}
	if l.Runs() != 0 {
		t.Errorf("runs: got %d, want 0 (nothing computed while busy)", l.Runs())
	}

	// A waiting caller gives up with its context.
	waiting := password.NewLimiter(1, time.Hour)
	release, _ := waiting.Acquire(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := waiting.Hash(ctx, "a password"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a cancelled context: got %v, want context.Canceled", err)
	}
	release()

	for _, r := range releases {
		r()
	}
	h, err := l.Hash(context.Background(), "a password")
	if err != nil {
		t.Fatalf("Hash after release: %v", err)
	}
	if ok, err := l.Verify(context.Background(), "a password", h); !ok || err != nil {
		t.Errorf("Verify: got %v, %v; want true, nil", ok, err)
	}
}

// TestLimiterBound runs many hashes at once through a limiter of 2: all of them run (the
// callers wait their turn), never more than 2 at a time.
func TestLimiterBound(t *testing.T) {
	t.Parallel()
	l := password.NewLimiter(2, time.Minute)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = l.Hash(context.Background(), "a password")
			} else {
				err = l.VerifyDummy(context.Background(), "a password")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("got %v, want every hash done", err)
		}
	}
	if l.Runs() != n || l.Peak() < 1 || l.Peak() > 2 {
		t.Errorf("got %d runs, at most %d at once; want %d runs, at most 2 at once", l.Runs(), l.Peak(), n)
	}
}

func TestLimiterDefaultSize(t *testing.T) {
	t.Parallel()
	if got := password.NewLimiter(0, 0).Size(); got < 1 {
		t.Errorf("default size: got %d, want GOMAXPROCS", got)
	}
}
