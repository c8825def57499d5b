package transport

import "time"

// bucket is a token bucket refilled at rate tokens per second up to burst.
// It is owned by one reader goroutine, so it needs no locking.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func newBucket(rate, burst float64, now time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take removes n tokens and returns how long the caller must wait before
// the bucket is out of debt (0 if it had enough). A request larger than
// the burst is allowed but leaves the bucket in debt.
func (b *bucket) take(n float64, now time.Time) time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= n
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
