// Package sink is a counting OTLP trace backend for benchmarks: it takes
// TraceService/Export over gRPC and POST /v1/traces over HTTP on one port,
// counts the spans of every request by scanning the protobuf wire format
// (no decoding), and tells the count over HTTP GET /count. Both systems of a
// side-by-side benchmark forward to it, so it must cost little and lose
// nothing: a benchmark that loses spans is not a result.
package sink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // senders' default compression
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// maxRequestBytes bounds one request, decompressed; export batches of
// thousands of spans are several MB.
const maxRequestBytes = 64 << 20

// Counts is what the sink has taken since it started or was last reset.
type Counts struct {
	Spans    int64 `json:"spans"`
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`    // decompressed request bodies
	Rejected int64 `json:"rejected"` // malformed requests, refused with InvalidArgument / 400
}

// Sink counts spans. Its zero value is not usable; call New.
type Sink struct {
	spans, requests, bytes, rejected atomic.Int64

	grpc *grpc.Server
	http *http.Server

	mu        sync.Mutex
	listeners []net.Listener
}

// New returns a sink ready to Serve.
func New() *Sink {
	s := &Sink{}
	s.grpc = grpc.NewServer(
		grpc.ForceServerCodecV2(countingCodec{}),
		grpc.MaxRecvMsgSize(maxRequestBytes),
	)
	s.grpc.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: s.export}},
		Streams:     []grpc.StreamDesc{},
	}, s)
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Count returns the counts so far.
func (s *Sink) Count() Counts {
	return Counts{Spans: s.spans.Load(), Requests: s.requests.Load(), Bytes: s.bytes.Load(), Rejected: s.rejected.Load()}
}

// Reset sets every count to zero, between two runs.
func (s *Sink) Reset() {
	s.spans.Store(0)
	s.requests.Store(0)
	s.bytes.Store(0)
	s.rejected.Store(0)
}

func (s *Sink) take(spans, size int) {
	s.spans.Add(int64(spans))
	s.requests.Add(1)
	s.bytes.Add(int64(size))
}

// counted is what countingCodec makes of a request: the codec counts while
// the bytes are still gRPC's, so the request is never copied.
type counted struct {
	spans, size int
	err         error
}

type countingCodec struct{}

func (countingCodec) Name() string { return "proto" }

func (countingCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{}, nil // ExportTraceServiceResponse{}: empty, all accepted
}

func (countingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c, ok := v.(*counted)
	if !ok {
		return fmt.Errorf("sink codec: cannot unmarshal into %T", v)
	}
	c.size = data.Len()
	if len(data) == 1 {
		c.spans, c.err = CountSpans(data[0].ReadOnlyData())
		return nil
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	c.spans, c.err = CountSpans(buf.ReadOnlyData())
	return nil
}

func (s *Sink) export(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var c counted
	if err := dec(&c); err != nil {
		return nil, err
	}
	if c.err != nil {
		s.rejected.Add(1)
		return nil, status.Error(codes.InvalidArgument, c.err.Error())
	}
	s.take(c.spans, c.size)
	return &c, nil
}

// Handler serves the HTTP side: GET /count (the span count as a plain
// number, for shell scripts), GET /stats (Counts as JSON), POST /reset, and
// POST /v1/traces (OTLP/HTTP protobuf, counted like gRPC).
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, s.spans.Load())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Count())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/traces", s.postTraces)
	return mux
}

func (s *Sink) postTraces(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+strconv.Quote(ct)+": this sink takes application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	zr, err := decompressed(r.Body, r.Header.Get("Content-Encoding"))
	var body *bytes.Buffer
	if err == nil {
		body, err = readAll(zr)
		if c, ok := zr.(io.Closer); ok {
			c.Close()
		}
	}
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer bufPool.Put(body)
	spans, err := CountSpans(body.Bytes())
	if err != nil {
		s.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.take(spans, body.Len())
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // empty ExportTraceServiceResponse
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func readAll(r io.Reader) (*bytes.Buffer, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(r, maxRequestBytes+1))
	if err == nil && n > maxRequestBytes {
		err = fmt.Errorf("request over %d bytes", maxRequestBytes)
	}
	if err != nil {
		bufPool.Put(buf)
		return nil, err
	}
	return buf, nil
}

// Serve serves gRPC and HTTP/1.1 on l until Shutdown, telling them apart by
// the HTTP/2 connection preface: gRPC keeps its native transport (twice as
// cheap as grpc.Server.ServeHTTP), and one port is all a harness configures.
func (s *Sink) Serve(l net.Listener) error {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	grpcL := newChanListener(l.Addr())
	httpL := newChanListener(l.Addr())
	go s.grpc.Serve(grpcL)
	go s.http.Serve(httpL)
	for {
		c, err := l.Accept()
		if err != nil {
			grpcL.Close()
			httpL.Close()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go route(c, grpcL, httpL)
	}
}

// Shutdown stops both servers, waiting for requests in flight to finish.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	err := s.http.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
	}
	return err
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

func route(c net.Conn, grpcL, httpL *chanListener) {
	br := bufio.NewReaderSize(c, 4096)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head, err := br.Peek(len(h2Preface))
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if err == nil && string(head) == h2Preface {
		grpcL.deliver(pc)
		return
	}
	if len(head) == 0 {
		c.Close()
		return
	}
	httpL.deliver(pc) // HTTP/1.1, or a short request net/http will answer
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener hands routed connections to a server's Serve.
type chanListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
