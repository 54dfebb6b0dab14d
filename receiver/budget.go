package receiver

import (
	"sync/atomic"
	"time"
)

// byteBudget is the process-wide allowance of request bytes held in memory
// between arriving and being queued (or refused). Every path charges it as
// bytes arrive, never by a length the peer declared, so a peer that only
// declares big sizes spends nothing; a peer that really sends them spends its
// share and is refused (429 / RESOURCE_EXHAUSTED / REFUSED_STREAM) once the
// budget is gone, before memory grows further. The sampling memory guard
// (memory.go) stays as a backstop for what is not a request body.
type byteBudget struct {
	limit int64 // 0: unlimited (still counted, for the gauge)
	used  atomic.Int64
}

// inflightShare of --memory-limit is what requests in flight may hold; the
// rest is the export queue's, the runtime's and the garbage collector's.
const inflightShare = 4 // a quarter

// newByteBudget derives the budget from the memory limit. It is never below
// one request of maxRequest bytes, or no request that large could ever pass.
func newByteBudget(memoryLimit, maxRequest int64) *byteBudget {
	if memoryLimit <= 0 {
		return &byteBudget{}
	}
	return &byteBudget{limit: max(memoryLimit/inflightShare, maxRequest)}
}

// take charges n bytes, or nothing and false when they do not fit.
func (b *byteBudget) take(n int64) bool {
	if b.limit == 0 {
		b.used.Add(n)
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// give returns n bytes charged earlier.
func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// inUse is what requests in flight hold now (traceport_inflight_request_bytes).
func (b *byteBudget) inUse() int64 { return b.used.Load() }

// hold is one request's charge on the budget: it grows as the request's
// bytes arrive and is freed, whole, once the request is queued or refused.
// A hold is used by one goroutine at a time; free is idempotent.
type hold struct {
	b *byteBudget
	n int64
}

func (b *byteBudget) newHold() hold { return hold{b: b} }

// grow charges n more bytes; false (nothing charged) means the budget is
// spent and the request must be refused with overBudget().
func (h *hold) grow(n int64) bool {
	if !h.b.take(n) {
		return false
	}
	h.n += n
	return true
}

// free gives back everything this hold charged.
func (h *hold) free() {
	if h.n != 0 {
		h.b.give(h.n)
		h.n = 0
	}
}

// overBudget is the refusal when a charge does not fit: retryable, since the
// bytes of other requests are freed as soon as they are queued.
func (b *byteBudget) overBudget() *refusal {
	return &refusal{
		reason:     reasonMemoryLimit,
		msg:        "traceport holds its in-flight request budget (a quarter of --memory-limit) in requests being read; retry later",
		retryAfter: time.Second,
	}
}
