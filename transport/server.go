package transport

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
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
)

// Config is what the transport needs to know of traceport's configuration.
type Config struct {
	TLS               *tls.Config   // nil: plaintext (HTTP/1.1 and h2c)
	ReadHeaderTimeout time.Duration // slow clients: time to send headers (and, for HTTP/2, the first request)
	ReadTimeout       time.Duration // whole request, body included (slow uploads)
	IdleTimeout       time.Duration // idle keep-alive connections are closed after this
	MaxConnections    int           // open connections per listener; 0: no limit
	MaxStreams        uint32        // concurrent HTTP/2 streams per connection
	MaxRequestBytes   int64         // per message or body, compressed and decompressed
	// FastPaths lets connections take the hand-written paths (--fast-paths=auto);
	// false (--fast-paths=off) sends every connection to net/http or grpc.Server.
	FastPaths bool
	// Budget is the in-flight byte budget the fast paths and the gRPC
	// fallback charge; nil: unlimited.
	Budget *Budget
}

// Handlers are what the transport hands requests to.
type Handlers struct {
	HTTP   http.Handler  // every HTTP request no fast path serves
	GRPC   *grpc.Server  // gRPC connections that need the full server
	Zipkin ZipkinHandler // HTTP/1.1 fast path for Envoy-shaped Zipkin posts; nil: off
	Unary  UnaryHandler  // HTTP/2 fast path for unary gRPC (OTLP Export, Jaeger PostSpans); nil: off
}

// Server serves listeners for every protocol. Create it with New, give it
// listeners with Serve, stop it with Shutdown.
type Server struct {
	cfg  Config
	h    Handlers
	log  *slog.Logger
	http *http.Server

	native *connListener // HTTP/2 connections whose first request is gRPC
	plain  *connListener // everything else, served by net/http
	h1     fastConns     // HTTP/1.1 connections on the fast path (http1.go)
	h2     fastConns     // gRPC connections on the fast path (h2fast.go)

	budget       *Budget
	shuttingDown atomic.Bool

	mu        sync.Mutex
	listeners []net.Listener
	serving   sync.WaitGroup
}

// New builds a server that hands requests to h and counts what its fast
// paths do on reg. It starts serving h.GRPC and h.HTTP at once (on the
// connections Serve routes to them).
func New(cfg Config, h Handlers, reg prometheus.Registerer, log *slog.Logger) *Server {
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
	if cfg.Budget == nil {
		cfg.Budget = NewBudget(0, 0)
	}
	srv := &Server{
		cfg:    cfg,
		h:      h,
		log:    log,
		native: newConnListener(),
		plain:  newConnListener(),
		budget: cfg.Budget,
	}
	srv.h1.off.Store(!cfg.FastPaths || h.Zipkin == nil)
	srv.h2.off.Store(!cfg.FastPaths || h.Unary == nil)
	reg.MustRegister(fastPathRequests{srv})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	srv.http = &http.Server{
		Handler:           h.HTTP,
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
	go h.GRPC.Serve(srv.native)
	go srv.http.Serve(srv.plain)
	return srv
}

// SetFastPaths switches each fast path on or off for connections accepted
// from now on (a path without its handler stays off); tests compare the
// paths on one server.
func (srv *Server) SetFastPaths(http1, grpc bool) {
	srv.h1.off.Store(!http1 || srv.h.Zipkin == nil)
	srv.h2.off.Store(!grpc || srv.h.Unary == nil)
}

// FastPathCounts is what traceport_fastpath_requests_total reports: requests
// each fast path served, and those it handed over with their connection.
func (srv *Server) FastPathCounts() (http1Served, http1HandedOver, grpcServed, grpcHandedOver int64) {
	return srv.h1.served.Load(), srv.h1.handedOff.Load(), srv.h2.served.Load(), srv.h2.handedOff.Load()
}

// FastConns is how many connections the fast paths serve now.
func (srv *Server) FastConns() (http1, grpc int) {
	return srv.h1.count(), srv.h2.count()
}

// Serve accepts connections on ln until ln is closed or Shutdown is called.
// Every listener (--listen and each --also-listen) gets the same routing.
func (srv *Server) Serve(ln net.Listener) error {
	srv.mu.Lock()
	if srv.shuttingDown.Load() {
		srv.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	if srv.cfg.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, srv.cfg.MaxConnections)
	}
	srv.listeners = append(srv.listeners, ln)
	srv.serving.Add(1)
	srv.mu.Unlock()
	defer srv.serving.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if srv.shuttingDown.Load() || errors.Is(err, net.ErrClosed) {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go srv.route(conn)
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
func (srv *Server) route(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(srv.cfg.ReadHeaderTimeout))
	if srv.cfg.TLS != nil {
		tc := tls.Server(conn, srv.cfg.TLS)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			srv.log.Debug("TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
			conn.Close()
			return
		}
		if tc.ConnectionState().NegotiatedProtocol != "h2" {
			tc.SetReadDeadline(time.Time{})
			srv.plain.deliver(tc) // net/http sees the *tls.Conn and speaks HTTP/1.1
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
		srv.serveHTTP1(conn, head)
		return
	}
	srv.routeHTTP2(conn, head)
}

// routeHTTP2 reads frames up to the first request's HEADERS to see whether
// it is gRPC. The server preface (an empty SETTINGS frame) goes out first,
// and the client's SETTINGS are acknowledged as they arrive: gRPC clients,
// and h2spec, wait for both before they send a request. The client's ACK of
// the empty SETTINGS is removed from the stream later, and the real server's
// ACKs of SETTINGS already acknowledged are not sent again.
func (srv *Server) routeHTTP2(conn net.Conn, preface []byte) {
	sn := &h2Sniffer{conn: conn, afterFirstFrame: func() { conn.SetReadDeadline(time.Now().Add(srv.cfg.IdleTimeout)) }}
	if sn.write(emptySettingsFrame) != nil {
		conn.Close()
		return
	}
	// The client's SETTINGS must come as promptly as any request's headers;
	// after that, a client may wait for its first request up to IdleTimeout.
	conn.SetReadDeadline(time.Now().Add(srv.cfg.ReadHeaderTimeout))
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
		srv.log.Debug("HTTP/2 connection closed before its first request", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	frames, settingsAcked := sn.replay()
	if isGRPC && sn.head.kind() != h2Other && !srv.h2.off.Load() {
		srv.serveH2(conn, frames, settingsAcked)
		return
	}
	replay := &ackFilterConn{Conn: conn, pending: append(preface, frames...), acked: sn.acked, dropAck: settingsAcked}
	replay.scanned = len(replay.pending)
	if isGRPC || err != nil { // a client idle since connecting is a gRPC client more often than not
		srv.native.deliver(newGRPCOnlyConn(replay, srv.budget))
		return
	}
	srv.plain.deliver(replay)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Shutdown stops accepting, lets the connections being served finish their
// requests, and waits for them until ctx ends; then it closes those left.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.shuttingDown.Store(true)
	for _, ln := range srv.listeners {
		ln.Close()
	}
	srv.mu.Unlock()
	srv.serving.Wait()
	srv.h1.closeIdle()
	srv.h2.closeIdle()

	done := make(chan struct{})
	go func() { srv.h.GRPC.GracefulStop(); close(done) }()
	err := srv.http.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		srv.h.GRPC.Stop()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	srv.h1.wait(ctx)
	srv.h2.wait(ctx)
	srv.native.Close()
	srv.plain.Close()
	return err
}

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

// ServeHTTP1Conn and ServeGRPCConn serve one connection on a fast path
// directly, without sniffing (conn starts with a request, or with the
// frames after the preface): for tests that drive one path with arbitrary
// input or an unbuffered pipe.
func (srv *Server) ServeHTTP1Conn(conn net.Conn) { srv.serveHTTP1(conn, nil) }

func (srv *Server) ServeGRPCConn(conn net.Conn) { srv.serveH2(conn, nil, false) }
