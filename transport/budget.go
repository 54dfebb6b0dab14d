package transport

import (
	"errors"
	"sync/atomic"
)

// Budget is the process-wide allowance of request bytes held in memory
// between arriving and being queued (or refused). Every path charges it as
// bytes arrive, never by a length the peer declared, so a peer that only
// declares big sizes spends nothing; a peer that really sends them spends its
// share and is refused (429 / RESOURCE_EXHAUSTED / REFUSED_STREAM) once the
// budget is gone, before memory grows further. The receiver's sampling
// memory guard stays as a backstop for what is not a request body.
type Budget struct {
	limit int64 // 0: unlimited (still counted, for the gauge)
	used  atomic.Int64
}

// ErrOverBudget is a request refused because the budget had no room for
// its bytes; retryable, since the bytes of other requests are freed as soon
// as they are queued.
var ErrOverBudget = errors.New("over the in-flight request budget")

// inflightShare of --memory-limit is what requests in flight may hold; the
// rest is the export queue's, the runtime's and the garbage collector's.
const inflightShare = 4 // a quarter

// NewBudget derives the budget from the memory limit. It is never below
// one request of maxRequest bytes, or no request that large could ever pass.
func NewBudget(memoryLimit, maxRequest int64) *Budget {
	if memoryLimit <= 0 {
		return &Budget{}
	}
	return &Budget{limit: max(memoryLimit/inflightShare, maxRequest)}
}

// NewFixedBudget is a budget of exactly limit bytes (0: unlimited).
func NewFixedBudget(limit int64) *Budget { return &Budget{limit: limit} }

// take charges n bytes, or nothing and false when they do not fit.
func (b *Budget) take(n int64) bool {
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
func (b *Budget) give(n int64) { b.used.Add(-n) }

// InUse is what requests in flight hold now (traceport_inflight_request_bytes).
func (b *Budget) InUse() int64 { return b.used.Load() }

// Limit is the budget's size; 0: unlimited.
func (b *Budget) Limit() int64 { return b.limit }

// Spent reports whether the budget is used up: new requests are refused
// at the door then, before a byte of their body is read.
func (b *Budget) Spent() bool { return b.limit > 0 && b.InUse() >= b.limit }

// NoRoomForFrame reports whether the budget has no room left for a frame
// of a new HTTP/2 request; bytes of requests already admitted are not
// affected.
func (b *Budget) NoRoomForFrame() bool {
	return b.limit > 0 && b.InUse() > b.limit-h2MaxFrameSize
}

// Hold is one request's charge on the budget: it grows as the request's
// bytes arrive and is freed, whole, once the request is queued or refused.
// A hold is used by one goroutine at a time; Free is idempotent.
type Hold struct {
	b *Budget
	n int64
}

func (b *Budget) NewHold() Hold { return Hold{b: b} }

// Grow charges n more bytes; false (nothing charged) means the budget is
// spent and the request must be refused (ErrOverBudget).
func (h *Hold) Grow(n int64) bool {
	if !h.b.take(n) {
		return false
	}
	h.n += n
	return true
}

// Free gives back everything this hold charged.
func (h *Hold) Free() {
	if h.n != 0 {
		h.b.give(h.n)
		h.n = 0
	}
}
