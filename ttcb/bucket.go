package ttcb

// bucket is a token bucket over abstract time (admission control, shared
// by the module and the Model): burst tokens, one more every `every` time
// units. A zero every disables the limit.
type bucket struct {
	tokens uint64
	last   uint64
	init   bool
}

func (b *bucket) take(now, every, burst uint64) bool {
	if every == 0 {
		return true
	}
	if !b.init {
		b.init, b.tokens, b.last = true, burst, now
	}
	if now > b.last {
		add := (now - b.last) / every
		b.tokens = min(burst, b.tokens+add)
		b.last += add * every
	}
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}
