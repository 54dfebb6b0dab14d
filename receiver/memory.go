package receiver

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memoryGuard refuses new work while the process uses more than a soft share
// of its memory limit, before any body is read: clients get a retryable
// refusal instead of the node's OOM killer getting traceport.
type memoryGuard struct {
	soft uint64 // bytes; 0 disables the guard
	over atomic.Bool
	stop chan struct{}
}

// softMemoryShare of --memory-limit is where the door closes. The rest is
// headroom for requests already admitted and for the garbage collector,
// which GOMEMLIMIT (set to the limit) makes work harder near it.
const softMemoryShare = 0.8

func newMemoryGuard(limit int64) *memoryGuard {
	g := &memoryGuard{stop: make(chan struct{})}
	if limit <= 0 {
		return g
	}
	g.soft = uint64(float64(limit) * softMemoryShare)
	go g.watch(50 * time.Millisecond)
	return g
}

// watch samples the runtime's own view of memory (what GOMEMLIMIT counts:
// all memory mapped by the Go runtime less what was returned to the OS).
func (g *memoryGuard) watch(every time.Duration) {
	samples := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var lastFree time.Time
	for {
		metrics.Read(samples)
		used := samples[0].Value.Uint64() - samples[1].Value.Uint64()
		if used > g.soft && time.Since(lastFree) > time.Second {
			// Freed memory the runtime has not returned to the OS yet
			// counts here for minutes; without this, the door would stay
			// shut long after the flood. At most once a second.
			debug.FreeOSMemory()
			lastFree = time.Now()
			metrics.Read(samples)
			used = samples[0].Value.Uint64() - samples[1].Value.Uint64()
		}
		g.over.Store(used > g.soft)
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
	}
}

func (g *memoryGuard) overLimit() bool { return g.over.Load() }

func (g *memoryGuard) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
}

// registerLimits exposes the in-flight budget.
func (rc *Receiver) registerLimits(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "traceport_inflight_request_bytes",
			Help: "Request bytes read and not yet queued or refused (charged as they arrive).",
		}, func() float64 { return float64(rc.budget.InUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "traceport_inflight_request_limit_bytes",
			Help: "Budget of traceport_inflight_request_bytes (a quarter of --memory-limit, at least --max-request-bytes; 0: none); beyond it requests are refused with reason memory_limit.",
		}, func() float64 { return float64(rc.budget.Limit()) }),
	)
}
