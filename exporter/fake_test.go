package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/traceport/traceport/internal/grpcraw"
)

// request builds a serialized ExportTraceServiceRequest of n SDK-shaped
// spans (8 resource attributes, 10 span attributes: ~430 bytes a span).
func request(tb testing.TB, n int) []byte {
	tb.Helper()
	return requestFor(tb, "checkout", n)
}

// requestFor is request for a given service.name.
func requestFor(tb testing.TB, service string, n int) []byte {
	tb.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", service)
	ra.PutStr("service.version", "1.4.2")
	ra.PutStr("service.namespace", "shop")
	ra.PutStr("deployment.environment", "production")
	ra.PutStr("host.name", "checkout-7f9c6d5b8-x2x9q")
	ra.PutStr("k8s.pod.name", "checkout-7f9c6d5b8-x2x9q")
	ra.PutStr("telemetry.sdk.name", "opentelemetry")
	ra.PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	start := time.Unix(1_700_000_000, 0)
	for i := range n {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, byte(i)})
		s.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(i >> 8), byte(i)})
		s.SetParentSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1})
		s.SetName("GET /api/v1/cart/{id}")
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i)*time.Millisecond + 1500*time.Microsecond)))
		a := s.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", "/api/v1/cart/"+strconv.Itoa(1000+i))
		a.PutStr("url.scheme", "http")
		a.PutStr("server.address", "checkout.shop.svc.cluster.local")
		a.PutInt("server.port", 8080)
		a.PutStr("network.protocol.version", "1.1")
		a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("http.route", "/api/v1/cart/{id}")
		a.PutStr("client.address", "10.12.3.4")
	}
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// reply is what a fake backend does with one export call.
type reply struct {
	code       codes.Code    // gRPC: OK accepts
	status     int           // HTTP: 0 accepts (200)
	retryAfter time.Duration // RetryInfo (gRPC) or Retry-After in whole seconds (HTTP)
	stall      bool          // hang until the caller gives up
	rejected   int64         // partial success
}

// backend is a fake Jaeger on 127.0.0.1 speaking OTLP over gRPC (raw codec)
// or HTTP. It counts the spans it accepts by decoding each request.
type backend struct {
	tb       testing.TB
	addr     string
	script   func(call int) reply // nil: accept everything
	maxBytes int                  // refuse larger requests as grpc-go and confighttp do; 0: no limit

	mu      sync.Mutex
	calls   []time.Time
	perCall []int // spans per accepted call
	sizes   []int // uncompressed bytes per accepted call
	spans   int   // accepted, minus partial-success rejections
	headers []http.Header
	encs    []string // grpc-encoding or Content-Encoding per call
}

func (b *backend) handle(ctx context.Context, body []byte, header http.Header, enc string) reply {
	b.mu.Lock()
	call := len(b.calls)
	b.calls = append(b.calls, time.Now())
	b.headers = append(b.headers, header)
	b.encs = append(b.encs, enc)
	b.mu.Unlock()
	var r reply
	if b.script != nil {
		r = b.script(call)
	}
	if r.stall {
		<-ctx.Done()
		return r
	}
	if r.code != codes.OK || r.status != 0 {
		return r
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil {
		b.tb.Errorf("backend: bad request: %v", err)
		return reply{code: codes.InvalidArgument, status: 400}
	}
	b.mu.Lock()
	b.spans += td.SpanCount() - int(r.rejected)
	b.perCall = append(b.perCall, td.SpanCount())
	b.sizes = append(b.sizes, len(body))
	b.mu.Unlock()
	return r
}

func (b *backend) received() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spans
}

func (b *backend) callTimes() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.calls...)
}

func partialSuccess(rejected int64) []byte {
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage("span name too long")
	}
	out, _ := resp.MarshalProto()
	return out
}

// listen picks a free port on 127.0.0.1.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// serveGRPC runs b as an OTLP/gRPC TraceService on ln.
func (b *backend) serveGRPC(ln net.Listener) {
	b.addr = ln.Addr().String()
	opts := []grpc.ServerOption{grpc.ForceServerCodecV2(grpcraw.Codec{}), grpc.StatsHandler(encodingRecorder{})}
	if b.maxBytes > 0 { // grpc-go's own check: RESOURCE_EXHAUSTED "received message larger than max"
		opts = append(opts, grpc.MaxRecvMsgSize(b.maxBytes))
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req grpcraw.Message
				if err := dec(&req); err != nil {
					return nil, err
				}
				md, _ := metadata.FromIncomingContext(ctx)
				h := http.Header{}
				for k, v := range md {
					h[http.CanonicalHeaderKey(k)] = v
				}
				enc := ""
				if p, ok := ctx.Value(encodingKey{}).(*string); ok {
					enc = *p
				}
				r := b.handle(ctx, req.Data, h, enc)
				if r.stall {
					return nil, ctx.Err()
				}
				if r.code != codes.OK {
					st := status.New(r.code, "fake says "+r.code.String())
					if r.retryAfter > 0 {
						st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.retryAfter)})
					}
					return nil, st.Err()
				}
				return &grpcraw.Message{Parts: mem.BufferSlice{mem.SliceBuffer(partialSuccess(r.rejected))}}, nil
			},
		}},
	}, nil)
	go srv.Serve(ln)
	b.tb.Cleanup(srv.Stop)
}

// encodingRecorder makes the request's grpc-encoding visible to the
// handler: grpc strips it from the metadata.
type encodingRecorder struct{}

type encodingKey struct{}

func (encodingRecorder) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, encodingKey{}, new(string))
}

func (encodingRecorder) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if p, ok := ctx.Value(encodingKey{}).(*string); ok {
			*p = h.Compression
		}
	}
}

func (encodingRecorder) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (encodingRecorder) HandleConn(context.Context, stats.ConnStats) {}

func (b *backend) serveHTTP(ln net.Listener) {
	b.addr = ln.Addr().String()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
			http.NotFound(w, req)
			return
		}
		var body io.Reader = req.Body
		enc := req.Header.Get("Content-Encoding")
		switch enc {
		case "gzip":
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		case "zstd":
			zr, err := zstd.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			defer zr.Close()
			body = zr
		}
		if b.maxBytes > 0 { // as the Collector's confighttp: a MaxBytesReader, 413
			body = http.MaxBytesReader(w, io.NopCloser(body), int64(b.maxBytes))
		}
		raw, err := io.ReadAll(body)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			b.mu.Lock()
			b.calls = append(b.calls, time.Now())
			b.mu.Unlock()
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		r := b.handle(req.Context(), raw, req.Header.Clone(), enc)
		if r.stall {
			return
		}
		if r.status != 0 {
			if r.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(r.retryAfter/time.Second)))
			}
			w.WriteHeader(r.status)
			fmt.Fprintf(w, "fake says %d", r.status)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(partialSuccess(r.rejected))
	})}}
	srv.Start()
	b.tb.Cleanup(srv.Close)
}

// newBackend starts a fake OTLP backend for protocol.
func newBackend(tb testing.TB, protocol string, script func(call int) reply) *backend {
	b := &backend{tb: tb, script: script}
	b.start(protocol, listen(tb))
	return b
}

// newLimitedBackend starts a fake OTLP backend that refuses requests over
// maxBytes (uncompressed) the way the real servers do.
func newLimitedBackend(tb testing.TB, protocol string, maxBytes int) *backend {
	b := &backend{tb: tb, maxBytes: maxBytes}
	b.start(protocol, listen(tb))
	return b
}

func (b *backend) start(protocol string, ln net.Listener) {
	switch protocol {
	case ProtocolOTLPGRPC:
		b.serveGRPC(ln)
	case ProtocolOTLPHTTP:
		b.serveHTTP(ln)
	default:
		b.tb.Fatalf("no fake backend for %s", protocol)
	}
}

// testConfig is fast: short batching and retry intervals.
func testConfig(endpoint, protocol string) Config {
	return Config{
		Endpoint:             endpoint,
		Protocol:             protocol,
		BatchTimeout:         5 * time.Millisecond,
		Timeout:              2 * time.Second,
		RetryInitialInterval: 10 * time.Millisecond,
		RetryMaxInterval:     50 * time.Millisecond,
		RetryMaxElapsed:      10 * time.Second,
	}
}

// testLog shows the exporter's logs with -v.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start makes a started Exporter on its own registry, shut down at cleanup.
func start(tb testing.TB, cfg Config) (*Exporter, *prometheus.Registry) {
	tb.Helper()
	e, reg, _ := startPlanning(tb, cfg)
	return e, reg
}

// startPlanning is start, also returning the waits the retry loop planned,
// in order.
func startPlanning(tb testing.TB, cfg Config) (*Exporter, *prometheus.Registry, func() []time.Duration) {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	e, err := New(cfg, reg, testLog())
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	e.retryPlanned = func(d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	}
	planned := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
	reg.MustRegister(e.Accounts())
	e.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Shutdown(ctx)
	})
	return e, reg, planned
}

// scrape gathers reg and returns every sample as "name{label=value,...}" -> value.
func scrape(tb testing.TB, reg prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var key bytes.Buffer
			key.WriteString(mf.GetName())
			if len(m.GetLabel()) > 0 {
				key.WriteByte('{')
				for i, l := range m.GetLabel() {
					if i > 0 {
						key.WriteByte(',')
					}
					fmt.Fprintf(&key, "%s=%s", l.GetName(), l.GetValue())
				}
				key.WriteByte('}')
			}
			switch {
			case m.GetCounter() != nil:
				out[key.String()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key.String()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key.String()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// identity checks pushed + replayed = exported + dropped + queued + inflight in one
// scrape, and returns that scrape.
func scrapeIdentity(tb testing.TB, reg prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	m := scrape(tb, reg)
	var sum float64
	for k, v := range m {
		if hasPrefix(k, "traceport_exported_spans_total{") || hasPrefix(k, "traceport_dropped_spans_total{") {
			sum += v
		}
	}
	sum += m["traceport_queue_spans"] + m["traceport_inflight_spans"]
	if in := m["traceport_exporter_pushed_spans_total"] + m["traceport_queue_replayed_spans_total"]; in != sum {
		tb.Errorf("scrape: pushed+replayed %v != exported+dropped+queued+inflight %v\n%v", in, sum, m)
	}
	return m
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// checkIdentity checks the accounts both ways: Stats and a scrape.
func checkIdentity(tb testing.TB, e *Exporter, reg prometheus.Gatherer) Stats {
	tb.Helper()
	s := e.Stats()
	if u := s.Unaccounted(); u != 0 {
		tb.Errorf("stats: %d spans unaccounted: %+v", u, s)
	}
	scrapeIdentity(tb, reg)
	return s
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled reports whether nothing is queued or in flight.
func settled(e *Exporter) func() bool {
	return func() bool {
		s := e.Stats()
		return s.Queued == 0 && s.Inflight == 0
	}
}
