package exporter

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
)

// scribblingPool hands out fresh buffers and, when one comes back, counts
// it and overwrites it: an exporter that read a buffer after freeing it
// would send garbage, which the backend refuses.
type scribblingPool struct {
	mu       sync.Mutex
	puts     int
	returned map[*[]byte]bool
	double   bool
}

func (p *scribblingPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (p *scribblingPool) Put(b *[]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.returned[b] {
		p.double = true
	}
	p.returned[b] = true
	p.puts++
	for i := range *b {
		(*b)[i] = 0xff
	}
}

// Pushes in pooled buffers (PushBuffer, the OTLP/gRPC receiver's path)
// arrive intact through batching and retries, and every buffer goes back
// to its pool once, after its export.
func TestPushBufferFreesAfterExport(t *testing.T) {
	for _, proto := range []string{ProtocolOTLPGRPC, ProtocolOTLPHTTP} {
		t.Run(proto, func(t *testing.T) {
			be := newBackend(t, proto, func(call int) reply {
				if call < 2 { // two failed attempts: the batch is retried
					return reply{code: codes.Unavailable, status: 503}
				}
				return reply{}
			})
			cfg := testConfig(be.addr, proto)
			cfg.BatchMaxSpans = 100
			cfg.BatchTimeout = 20 * time.Millisecond
			cfg.RetryInitialInterval = 10 * time.Millisecond
			e, reg := start(t, cfg)
			pool := &scribblingPool{returned: map[*[]byte]bool{}}
			data := request(t, 10)
			const pushes = 50
			for range pushes {
				p := pool.Get(len(data))
				copy(*p, data)
				if err := e.PushBuffer(mem.NewBuffer(p, pool), 10, true, nil); err != nil {
					t.Fatalf("push: %v", err)
				}
			}
			eventually(t, 10*time.Second, "all spans exported", func() bool { return be.received() == pushes*10 })
			eventually(t, 5*time.Second, "every buffer back in its pool", func() bool {
				pool.mu.Lock()
				defer pool.mu.Unlock()
				return pool.puts == pushes
			})
			if pool.double {
				t.Errorf("a buffer was put back twice")
			}
			checkIdentity(t, e, reg)
		})
	}
}

// A push the exporter refuses is freed at once (the backend stalls, so the
// one it took is still in flight).
func TestPushBufferRefusedIsFreed(t *testing.T) {
	be := newBackend(t, ProtocolOTLPGRPC, func(int) reply { return reply{stall: true} })
	cfg := testConfig(be.addr, ProtocolOTLPGRPC)
	cfg.QueueSpans, cfg.BatchMaxSpans = 10, 10
	cfg.BatchTimeout = time.Hour
	e, _ := start(t, cfg)
	pool := &scribblingPool{returned: map[*[]byte]bool{}}
	data := request(t, 10)
	var refused int
	for range 3 {
		p := pool.Get(len(data))
		copy(*p, data)
		if err := e.PushBuffer(mem.NewBuffer(p, pool), 10, true, nil); err != nil {
			refused++
		}
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if refused == 0 || pool.puts != refused {
		t.Errorf("%d pushes refused, %d buffers back: want the same, and some refused", refused, pool.puts)
	}
}
