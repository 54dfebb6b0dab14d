package exporter

import (
	"time"

	"google.golang.org/grpc/mem"
)

// item is one accepted Push: a serialized ExportTraceServiceRequest.
type item struct {
	data  []byte
	buf   mem.Buffer // holds data when it came in a pooled buffer (PushBuffer); nil otherwise
	spans int
	at    time.Time // when it was queued, for BatchTimeout
	ref   walRef    // its record in the persistent queue, if any
	// wire is data taken apart for Kafka records when it came in (and was
	// in the CPU's cache); nil when not, or when replayed from the log.
	wire *wireSpans
}

// memQueue is the in-memory FIFO of pushes, counted in spans. It is the one
// place a persistent (WAL) queue would replace: push, take, ack. It does no
// locking: the Exporter's mutex guards it together with the span accounts,
// so a scrape never sees a span in two states or in none.
type memQueue struct {
	items []item
	head  int // items[:head] are taken
	spans int
	bytes int
}

func (q *memQueue) push(it item) {
	q.items = append(q.items, it)
	q.spans += it.spans
	q.bytes += len(it.data)
}

func (q *memQueue) len() int { return len(q.items) - q.head }

// oldest returns when the oldest queued push arrived; ok is false when the
// queue is empty.
func (q *memQueue) oldest() (at time.Time, ok bool) {
	if q.len() == 0 {
		return time.Time{}, false
	}
	return q.items[q.head].at, true
}

// full reports whether a batch limit is already reached, so a sender need
// not wait for BatchTimeout.
func (q *memQueue) full(maxSpans, maxBytes int) bool {
	return q.len() > 0 && (q.spans >= maxSpans || q.bytes >= maxBytes)
}

// take removes whole pushes from the front, up to maxSpans spans and
// maxBytes bytes; the first push is always taken, however large. It
// appends them to dst.
func (q *memQueue) take(dst []item, maxSpans, maxBytes int) []item {
	spans, bytes, start := 0, 0, len(dst)
	for q.head < len(q.items) {
		it := q.items[q.head]
		if len(dst) > start && (spans+it.spans > maxSpans || bytes+len(it.data) > maxBytes) {
			break
		}
		dst = append(dst, it)
		spans += it.spans
		bytes += len(it.data)
		q.items[q.head] = item{} // let the bytes go
		q.head++
	}
	q.spans -= spans
	q.bytes -= bytes
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return dst
}

// ack tells the queue that taken pushes are settled (exported or counted as
// dropped). A memory queue has nothing to do; the persistent queue's log
// (wal.ack) forgets them, outside the Exporter's lock.
func (q *memQueue) ack([]item) {}

// drain empties the queue and returns how many spans it held.
func (q *memQueue) drain() int {
	n := q.spans
	clear(q.items)
	*q = memQueue{items: q.items[:0]}
	return n
}
