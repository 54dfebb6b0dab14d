// Package bufpool is the byte-buffer pool traceport hands to gRPC, its
// server and its client, and uses for export batches.
//
// gRPC's default pool zeroes every buffer it hands out, over the buffer's
// whole capacity, and has no tier between 32 KiB and 1 MiB: a 43 KB request
// (100 SDK spans) took a 1 MiB buffer and cleared it, ~7% of traceport's CPU
// on OTLP/gRPC. This pool has a tier per power of two and does not zero:
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

// Pool is a mem.BufferPool of power-of-two tiers that hands out buffers
// without zeroing them.
type Pool struct {
	tiers [maxShift + 1]sync.Pool
}

// Shared is the pool of the whole process.
var Shared = &Pool{}

var _ mem.BufferPool = (*Pool)(nil)

// Get returns a buffer of length size whose contents are undefined.
func (p *Pool) Get(size int) *[]byte {
	shift := minShift
	if size > 1<<minShift {
		shift = bits.Len(uint(size - 1))
	}
	if shift > maxShift {
		b := make([]byte, size)
		return &b
	}
	if v, ok := p.tiers[shift].Get().(*[]byte); ok {
		*v = (*v)[:size]
		return v
	}
	b := make([]byte, size, 1<<shift)
	return &b
}

// Put returns a buffer that Get handed out; others are left to the GC.
func (p *Pool) Put(buf *[]byte) {
	c := cap(*buf)
	if c < 1<<minShift || c > 1<<maxShift || c&(c-1) != 0 {
		return
	}
	p.tiers[bits.Len(uint(c))-1].Put(buf)
}
