package password

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrBusy is returned by a Limiter when no slot freed up within its wait: the caller
// should answer "retry shortly" (429 or 503 with Retry-After).
var ErrBusy = errors.New("password: too many password checks at once")

// Limiter bounds how many Argon2id computations run at once. Each one holds its Memory
// (19 MiB with DefaultParams) until it ends, so without a bound a few hundred parallel
// logins exhaust the process's memory; with one, memory stays under size × Memory and the
// excess waits (a goroutine's few KiB) or is refused with ErrBusy. Computations beyond
// the number of CPUs only share them, so a bound near GOMAXPROCS costs no throughput.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	slots chan struct{}
	wait  time.Duration

	running atomic.Int64 // Argon2id computations in progress
	peak    atomic.Int64 // the most that ever ran at once
	runs    atomic.Int64 // computations done (or started)
}

// NewLimiter returns a Limiter that runs at most size computations at once (size < 1:
// runtime.GOMAXPROCS(0)) and lets a caller wait at most wait for a slot.
func NewLimiter(size int, wait time.Duration) *Limiter {
	if size < 1 {
		size = runtime.GOMAXPROCS(0)
	}
	return &Limiter{slots: make(chan struct{}, size), wait: wait}
}

// Size is the number of computations that may run at once.
func (l *Limiter) Size() int { return cap(l.slots) }

// Peak is the largest number of computations that ran at once so far (for metrics and
// tests).
func (l *Limiter) Peak() int { return int(l.peak.Load()) }

// Runs is the number of computations started so far.
func (l *Limiter) Runs() int { return int(l.runs.Load()) }

// Acquire takes a slot, waiting at most the Limiter's wait, and returns the function that
// gives it back. Hash, Verify and VerifyDummy call it; other memory-hungry work may share
// the bound through it. It returns ErrBusy when no slot freed up in time, or ctx's error.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	default:
	}
	if l.wait <= 0 {
		return nil, ErrBusy
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Limiter) release() { <-l.slots }

// run runs fn, an Argon2id computation, in a slot.
func (l *Limiter) run(ctx context.Context, fn func()) error {
	release, err := l.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	l.runs.Add(1)
	n := l.running.Add(1)
	defer l.running.Add(-1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	fn()
	return nil
}

// Hash is the package's Hash in a slot; it returns ErrBusy (or ctx's error) when it got
// none.
func (l *Limiter) Hash(ctx context.Context, pw string) (string, error) {
	var (
		h   string
		err error
	)
	if rerr := l.run(ctx, func() { h, err = Hash(pw) }); rerr != nil {
		return "", rerr
	}
	return h, err
}

// Verify is the package's Verify in a slot; it returns ErrBusy (or ctx's error) when it
// got none.
func (l *Limiter) Verify(ctx context.Context, pw, encoded string) (bool, error) {
	var (
		ok  bool
		err error
	)
	if rerr := l.run(ctx, func() { ok, err = Verify(pw, encoded) }); rerr != nil {
		return false, rerr
	}
	return ok, err
}

// VerifyDummy is the package's VerifyDummy in a slot; it returns ErrBusy (or ctx's
// error) when it got none.
func (l *Limiter) VerifyDummy(ctx context.Context, pw string) error {
	return l.run(ctx, func() { VerifyDummy(pw) })
}
