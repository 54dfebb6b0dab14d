package receiver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"

	"github.com/traceport/traceport/translate"
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
	// Observer, if set, sees every accepted request's spans (serialized
	// OTLP) before they are handed to the sink; it must not keep data.
	Observer Observer
	// Pages, if set, serves GET / and /api/... (dependency preview, sources);
	// nil: those paths are 404.
	Pages http.Handler
}

// Observer watches the spans going through, e.g. for trace health.
type Observer interface {
	Observe(protocol string, data []byte)
}

// Receiver is the one port. Create it with New, give it listeners with
// Serve, stop it with Shutdown.
type Receiver struct {
	cfg     Config
	sink    Sink
	log     *slog.Logger
	sources *sources
	metrics http.Handler

	grpc   *grpc.Server
	http   *http.Server
	native *connListener // HTTP/2 connections whose first request is gRPC
	plain  *connListener // everything else, served by net/http
	h1     fastConns     // HTTP/1.1 connections on the fast path (http1.go)
	h2     fastConns     // gRPC connections on the fast path (h2fast.go)

	memory       *memoryGuard
	budget       *byteBudget // request bytes in flight, charged as they arrive (budget.go)
	ready        atomic.Bool
	shuttingDown atomic.Bool

	mu        sync.Mutex
	listeners []net.Listener
	serving   sync.WaitGroup
}

// New builds a receiver that counts on reg, serves gatherer on /metrics and
// hands spans to sink.
func New(cfg Config, sink Sink, reg prometheus.Registerer, gatherer prometheus.Gatherer, log *slog.Logger) *Receiver {
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
		native:  newConnListener(),
		memory:  newMemoryGuard(cfg.MemoryLimit),
		budget:  newByteBudget(cfg.MemoryLimit, cfg.MaxRequestBytes),
		plain:   newConnListener(),
	}
	rc.h1.off, rc.h2.off = cfg.FastPathsOff, cfg.FastPathsOff
	rc.registerLimits(reg)
	rc.grpc = rc.newGRPCServer()
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	rc.http = &http.Server{
		Handler:           rc,
		Protocols:         &protocols,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(cfg.MaxStreams),
			MaxReadFrameSize:     h2MaxFrameSize, // what the sniffer advertised first
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go rc.grpc.Serve(rc.native)
	go rc.http.Serve(rc.plain)
	rc.ready.Store(true)
	return rc
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// Every listener (--listen and each --also-listen) gets the same routing.
func (rc *Receiver) Serve(ln net.Listener) error {
	rc.mu.Lock()
	if rc.shuttingDown.Load() {
		rc.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	if rc.cfg.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, rc.cfg.MaxConnections)
	}
	rc.listeners = append(rc.listeners, ln)
	rc.serving.Add(1)
	rc.mu.Unlock()
	defer rc.serving.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if rc.shuttingDown.Load() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go rc.route(conn)
	}
}

// http2Preface is what every HTTP/2 client sends first (RFC 9113 §3.4).
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// route sends one connection to the server that will handle it: HTTP/1.1 to
// the fast path (http1.go), which hands it to net/http when it must; HTTP/2
// to the gRPC fast path (h2fast.go) when its first request is gRPC of the
// kinds it serves, to the native gRPC server when it is another gRPC request
// (grpc.Server.Serve costs less than half of grpc.Server.ServeHTTP per
// span), otherwise to net/http, which routes every request on its own, gRPC
// included.
func (rc *Receiver) route(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(rc.cfg.ReadHeaderTimeout))
	if rc.cfg.TLS != nil {
		tc := tls.Server(conn, rc.cfg.TLS)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			rc.log.Debug("TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
			conn.Close()
			return
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			tc.SetReadDeadline(time.Time{})
			rc.plain.deliver(tc) // net/http sees the *tls.Conn and speaks HTTP/1.1
			return
		}
		conn = tc
	}
	head := make([]byte, 0, len(http2Preface))
	for len(head) < len(http2Preface) && bytes.HasPrefix(http2Preface, head) {
		n, err := conn.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if err != nil {
			if len(head) == 0 {
				conn.Close()
				return
			}
			break
		}
	}
	if !bytes.Equal(head, http2Preface) {
		rc.serveHTTP1(conn, head)
		return
	}
	rc.routeHTTP2(conn, head)
}

// routeHTTP2 reads frames up to the first request's HEADERS to see whether
// it is gRPC. The server preface (an empty SETTINGS frame) goes out first,
// and the client's SETTINGS are acknowledged as they arrive: gRPC clients,
// and h2spec, wait for both before they send a request. The client's ACK of
// the empty SETTINGS is removed from the stream later, and the real server's
// ACKs of SETTINGS already acknowledged are not sent again.
func (rc *Receiver) routeHTTP2(conn net.Conn, preface []byte) {
	sn := &h2Sniffer{conn: conn, afterFirstFrame: func() { conn.SetReadDeadline(time.Now().Add(rc.cfg.IdleTimeout)) }}
	if sn.write(emptySettingsFrame) != nil {
		conn.Close()
		return
	}
	// The client's SETTINGS must come as promptly as any request's headers;
	// after that, a client may wait for its first request up to IdleTimeout.
	conn.SetReadDeadline(time.Now().Add(rc.cfg.ReadHeaderTimeout))
	isGRPC, err := sn.firstRequestIsGRPC()
	conn.SetReadDeadline(time.Time{})
	var se sniffError
	if errors.As(err, &se) {
		// As net/http's and grpc's servers end such a connection.
		sn.write(goAwayFrame(0, se.code))
		conn.Close()
		return
	}
	if err != nil && (!isTimeout(err) || len(sn.frames) == 0) {
		rc.log.Debug("HTTP/2 connection closed before its first request", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	frames, settingsAcked := sn.replay()
	if isGRPC && sn.head.kind() != h2Other && !rc.h2.off && !rc.cfg.PushWaits {
		rc.serveH2(conn, frames, settingsAcked)
		return
	}
	replay := &ackFilterConn{Conn: conn, pending: append(preface, frames...), acked: sn.acked, dropAck: settingsAcked}
	replay.scanned = len(replay.pending)
	if isGRPC || err != nil { // a client idle since connecting is a gRPC client more often than not
		rc.native.deliver(newGRPCOnlyConn(replay, rc.budget))
		return
	}
	rc.plain.deliver(replay)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Shutdown stops accepting, marks the receiver not ready, and waits for
// in-flight requests until ctx ends.
func (rc *Receiver) Shutdown(ctx context.Context) error {
	rc.ready.Store(false)
	rc.mu.Lock()
	rc.shuttingDown.Store(true)
	for _, ln := range rc.listeners {
		ln.Close()
	}
	rc.mu.Unlock()
	rc.serving.Wait()
	rc.h1.closeIdle()
	rc.h2.closeIdle()

	done := make(chan struct{})
	go func() { rc.grpc.GracefulStop(); close(done) }()
	err := rc.http.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		rc.grpc.Stop()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	rc.h1.wait(ctx)
	rc.h2.wait(ctx)
	rc.native.Close()
	rc.plain.Close()
	rc.memory.close()
	return err
}

// SetReady flips /readyz; traceport main turns it off first on SIGTERM.
func (rc *Receiver) SetReady(ready bool) { rc.ready.Store(ready) }

// connListener is a net.Listener fed by route: how connections reach
// grpc.Server.Serve and http.Server.Serve after sniffing.
type connListener struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// replayConn gives back the bytes read while sniffing before reading on.
type replayConn struct {
	net.Conn
	head []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Sources returns what has been accepted so far from every (protocol,
// encoding, service), sorted.
func (rc *Receiver) Sources() []SourceStat { return rc.sources.snapshot() }
