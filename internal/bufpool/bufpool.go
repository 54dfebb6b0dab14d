// Package bufpool is the byte-buffer pool traceport hands to gRPC, its
// server and its client, and uses for export batches.
//
// gRPC's default pool zeroes every buffer it hands out, over the buffer's
// whole capacity, and has no tier between 32 KiB and 1 MiB: a 43 KB request
// (100 SDK spans) took a 1 MiB buffer and cleared it, ~7% of traceport's CPU
// on OTLP/gRPC. This pool has four size classes per power of two (so a
// queued request wastes at most a quarter of its size) and does not zero:
// gRPC writes every byte it later reads (it ships such a "dirty" pool
// itself, for internal use only).
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

const (
	minShift = 8  // 256 B: smaller requests share this tier
	maxShift = 24 // 16 MiB: larger buffers are allocated and left to the GC
)

// Pool is a mem.BufferPool of size classes that hands out buffers without
// zeroing them.
type Pool struct {
	classes [(maxShift-minShift)*4 + 1]sync.Pool
}

// Shared is the pool of the whole process.
var Shared = &Pool{}

var _ mem.BufferPool = (*Pool)(nil)

// class returns the smallest size class that holds n bytes: 256, then
// 2^s + k·2^s/4 for k = 1..4 between powers of two.
func class(n int) (index, size int) {
	if n <= 1<<minShift {
		return 0, 1 << minShift
	}
	s := bits.Len(uint(n-1)) - 1 // 2^s < n ≤ 2^(s+1)
	step := 1 << (s - 2)
	k := (n - 1<<s + step - 1) / step
	return (s-minShift)*4 + k, 1<<s + k*step
}

// Get returns a buffer of length size whose contents are undefined.
func (p *Pool) Get(size int) *[]byte {
	if size > 1<<maxShift {
		b := make([]byte, size)
		return &b
	}
	i, c := class(size)
	if v, ok := p.classes[i].Get().(*[]byte); ok {
		*v = (*v)[:size]
		return v
	}
	b := make([]byte, size, c)
	return &b
}

// Put returns a buffer that Get handed out; others are left to the GC.
func (p *Pool) Put(buf *[]byte) {
	c := cap(*buf)
	if c < 1<<minShift || c > 1<<maxShift {
		return
	}
	if i, size := class(c); size == c {
		p.classes[i].Put(buf)
	}
}
