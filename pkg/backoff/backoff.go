// Package backoff is the one capped, jittered exponential delay the daemons retry with (store
// watches, store-sync targets).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles from Base up to Max; each delay is drawn between half of the step and the
// whole of it, so that retries of many clients spread out.
type Backoff struct {
	Base, Max time.Duration
	n         int
}

// Next is the delay before the next retry.
func (b *Backoff) Next() time.Duration {
	d := min(b.Base<<min(b.n, 20), b.Max)
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts again from Base, after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d, or less if ctx ends first; it reports whether the whole delay passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
