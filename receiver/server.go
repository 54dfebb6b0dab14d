package receiver

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/traceport/traceport/translate"
	"github.com/traceport/traceport/transport"
)

// Config is the receiver's part of traceport's configuration.
type Config struct {
	MaxRequestBytes   int64 // per body, compressed and decompressed
	MaxServices       int   // bound of the service label
	Zipkin            translate.ZipkinOptions
	TLS               *tls.Config   // nil: plaintext (HTTP/1.1 and h2c)
	ReadHeaderTimeout time.Duration // slow clients: time to send headers (and, for HTTP/2, the first request)
	IdleTimeout       time.Duration // idle keep-alive connections are closed after this
	ReadTimeout       time.Duration // whole request, body included (slow uploads)
	MaxConnections    int           // open connections per listener; 0: no limit
	MaxStreams        uint32        // concurrent HTTP/2 streams per connection
	MemoryLimit       int64         // bytes; above 80% new requests are refused; 0: no guard
	// PushWaits says the sink's Push waits (for an fsync of the persistent
	// queue). The OTLP/gRPC fast path pushes a connection's requests one
	// after another, so its connections go to grpc.Server instead, where
	// concurrent streams share their waits.
	PushWaits bool
	// FastPathsOff (--fast-paths=off) sends every connection to net/http or grpc.Server.
	FastPathsOff bool

	// Accounts, if set, is the sink's collector of span accounts (exported,
	// dropped, queued, in flight). The receiver collects it together with
	// traceport_received_spans_total so that every scrape sees both sides
	// of the accounting identity at the same instant.
	Accounts prometheus.Collector
	// Observer, if set, sees every accepted request's spans before they
	// are handed to the sink; it must not keep data.
	Observer Observer
	// Pages, if set, serves GET / and /api/... (dependency preview, sources);
	// nil: those paths are 404.
	Pages http.Handler
}

// Observer watches the spans going through, e.g. for trace health. An
// OTLP request is shown to it during the receiver's validation walk, so
// that it is walked once: Begin returns the visitor for that walk, End
// says whether the request was accepted (before its bytes go to the sink).
// A request the receiver converted itself (Zipkin, Jaeger) is handed over
// whole to Observe, serialized as OTLP.
type Observer interface {
	Observe(protocol string, data []byte)
	Begin(protocol string) translate.OTLPVisitor
	End(v translate.OTLPVisitor, accepted bool)
}

// Receiver is the one port. Create it with New, give it listeners with
// Serve, stop it with Shutdown.
type Receiver struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	sources *sources
	metrics http.Handler

	grpc      *grpc.Server
	transport *transport.Server // the listeners: sniffing, fast paths, net/http

	memory       *memoryGuard
	budget       *transport.Budget // request bytes in flight, charged as they arrive
	ready        atomic.Bool
	shuttingDown atomic.Bool
}

// New builds a receiver that counts on reg, serves gatherer on /metrics and
// hands spans to sink.
func New(cfg Config, sink Sink, reg prometheus.Registerer, gatherer prometheus.Gatherer, log *slog.Logger) *Receiver {
	return newReceiver(cfg, transport.NewBudget(cfg.MemoryLimit, cfg.MaxRequestBytes), sink, reg, gatherer, log)
}

// newReceiver is New with the in-flight budget given (tests set its size
// without a --memory-limit, whose sampling guard would watch the test).
func newReceiver(cfg Config, budget *transport.Budget, sink Sink, reg prometheus.Registerer, gatherer prometheus.Gatherer, log *slog.Logger) *Receiver {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = time.Minute
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = 100
	}
	rc := &Receiver{
		cfg:     cfg,
		sink:    sink,
		log:     log,
		sources: newSources(cfg.MaxServices, cfg.Accounts, reg),
		metrics: promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}),
		memory:  newMemoryGuard(cfg.MemoryLimit),
		budget:  budget,
	}
	rc.registerLimits(reg)
	rc.grpc = rc.newGRPCServer()
	handlers := transport.Handlers{HTTP: rc, GRPC: rc.grpc, Zipkin: zipkinFastPath{rc}, Unary: unaryFastPath{rc}}
	if cfg.PushWaits {
		// The gRPC fast path pushes a connection's requests one after
		// another; grpc.Server's concurrent streams share the fsync waits.
		handlers.Unary = nil
	}
	rc.transport = transport.New(transport.Config{
		TLS:               cfg.TLS,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxConnections:    cfg.MaxConnections,
		MaxStreams:        cfg.MaxStreams,
		MaxRequestBytes:   cfg.MaxRequestBytes,
		FastPaths:         !cfg.FastPathsOff,
		Budget:            rc.budget,
	}, handlers, reg, log)
	rc.ready.Store(true)
	return rc
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// Every listener (--listen and each --also-listen) gets the same routing.
func (rc *Receiver) Serve(ln net.Listener) error { return rc.transport.Serve(ln) }

// Shutdown stops accepting, marks the receiver not ready, and waits for
// in-flight requests until ctx ends.
func (rc *Receiver) Shutdown(ctx context.Context) error {
	rc.ready.Store(false)
	rc.shuttingDown.Store(true)
	err := rc.transport.Shutdown(ctx)
	rc.memory.close()
	return err
}

// SetReady flips /readyz; traceport main turns it off first on SIGTERM.
func (rc *Receiver) SetReady(ready bool) { rc.ready.Store(ready) }

// Sources returns what has been accepted so far from every (protocol,
// encoding, service), sorted.
func (rc *Receiver) Sources() []SourceStat { return rc.sources.snapshot() }
