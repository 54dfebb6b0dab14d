package bench

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/internal/grpcraw"
)

// fake is a collector that decodes what it gets, counts spans, and fails
// every failEvery-th request (503 / Unavailable).
type fake struct {
	failEvery int64
	delay     time.Duration
	rejected  int64 // OTLP partial success per accepted request

	requests, spans atomic.Int64 // spans of accepted requests
}

func (f *fake) take(n int) (fail bool) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	i := f.requests.Add(1)
	if f.failEvery > 0 && i%f.failEvery == 0 {
		return true
	}
	f.spans.Add(int64(n))
	return false
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var n int
	switch ct := r.Header.Get("Content-Type"); {
	case r.URL.Path == "/api/v2/spans" && ct == "application/json":
		var spans []zipkinmodel.SpanModel
		err, n = json.Unmarshal(b, &spans), len(spans)
	case r.URL.Path == "/api/v2/spans" && ct == "application/x-protobuf":
		var list zipkinproto.ListOfSpans
		err, n = proto.Unmarshal(b, &list), len(list.Spans)
	case r.URL.Path == "/v1/traces" && ct == "application/x-protobuf":
		var td ptrace.Traces
		td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
		n = td.SpanCount()
	case r.URL.Path == "/v1/traces" && ct == "application/json":
		var td ptrace.Traces
		td, err = (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
		n = td.SpanCount()
	default:
		err = fmt.Errorf("%s %s", r.URL.Path, ct)
	}
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if f.take(n) {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	switch {
	case f.rejected > 0 && r.Header.Get("Content-Type") == "application/json":
		fmt.Fprintf(w, `{"partialSuccess":{"rejectedSpans":"%d"}}`, f.rejected)
	case f.rejected > 0:
		w.Write(partialSuccess(f.rejected))
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

func partialSuccess(rejected int64) []byte {
	var ps []byte
	ps = protowire.AppendTag(ps, 1, protowire.VarintType)
	ps = protowire.AppendVarint(ps, uint64(rejected))
	ps = protowire.AppendTag(ps, 2, protowire.BytesType)
	ps = protowire.AppendString(ps, "too old")
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	return protowire.AppendBytes(b, ps)
}

func (f *fake) grpcServer(t *testing.T) string {
	t.Helper()
	handler := func(decode func(b []byte) (int, error)) grpc.MethodHandler {
		return func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var m grpcraw.Message
			if err := dec(&m); err != nil {
				return nil, err
			}
			defer m.Buf.Free()
			n, err := decode(m.Data)
			if err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			if f.take(n) {
				return nil, status.Error(codes.Unavailable, "busy")
			}
			var reply grpcraw.Message
			if f.rejected > 0 {
				reply.Data = partialSuccess(f.rejected)
			}
			return &reply, nil
		}
	}
	s := grpc.NewServer(grpc.ForceServerCodecV2(grpcraw.Codec{}))
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: handler(func(b []byte) (int, error) {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
			return td.SpanCount(), err
		})}},
	}, f)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "jaeger.api_v2.CollectorService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "PostSpans", Handler: handler(func(b []byte) (int, error) {
			var req api_v2.PostSpansRequest
			err := req.Unmarshal(b)
			return len(req.Batch.Spans), err
		})}},
	}, f)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func (f *fake) httpServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(f) // 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func run(t *testing.T, cfg Config) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run(%+v): %v", cfg, err)
	}
	return res
}

// Every protocol reaches a server that decodes it, and the count is exact,
// the short last request included.
func TestRunSendsEveryProtocol(t *testing.T) {
	for _, proto := range Protocols {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", proto, gz), func(t *testing.T) {
				f := &fake{}
				target := ""
				if proto == OTLPGRPC || proto == JaegerGRPC {
					target = f.grpcServer(t)
				} else {
					target = f.httpServer(t)
				}
				res := run(t, Config{Target: target, Protocol: proto, SpansPerRequest: 10, Count: 1005, Connections: 2, Streams: 2, Variety: 3, Gzip: gz})
				if res.AcceptedSpans != 1005 || f.spans.Load() != 1005 {
					t.Errorf("accepted %d, server got %d, want 1005 (%v)", res.AcceptedSpans, f.spans.Load(), res.Errors)
				}
				if res.Requests != 101 || f.requests.Load() != 101 {
					t.Errorf("%d requests, server got %d, want 101", res.Requests, f.requests.Load())
				}
				if len(res.Errors) != 0 {
					t.Errorf("errors %v: %s", res.Errors, res.FirstError)
				}
			})
		}
	}
}

func TestRunCountsErrorsByStatus(t *testing.T) {
	f := func(proto, wantKey string) {
		t.Helper()
		srv := &fake{failEvery: 4}
		target := srv.httpServer(t)
		if wantKey == "grpc Unavailable" {
			target = srv.grpcServer(t)
		}
		res := run(t, Config{Target: target, Protocol: proto, SpansPerRequest: 10, Count: 400})
		if got := res.Errors[wantKey]; got != 10 || len(res.Errors) != 1 {
			t.Errorf("%s: errors %v, want %d × %q", proto, res.Errors, 10, wantKey)
		}
		if res.AcceptedSpans != 300 || res.SentSpans != 400 || res.Requests != 40 {
			t.Errorf("%s: accepted %d of %d spans in %d requests, want 300 of 400 in 40", proto, res.AcceptedSpans, res.SentSpans, res.Requests)
		}
	}
	f(ZipkinJSON, "http 503")
	f(OTLPHTTP, "http 503")
	f(OTLPGRPC, "grpc Unavailable")
	f(JaegerGRPC, "grpc Unavailable")
}

func TestRunSubtractsOTLPPartialSuccess(t *testing.T) {
	for _, proto := range []string{OTLPGRPC, OTLPHTTP, OTLPHTTPJSON} {
		srv := &fake{rejected: 3}
		target := srv.httpServer(t)
		if proto == OTLPGRPC {
			target = srv.grpcServer(t)
		}
		res := run(t, Config{Target: target, Protocol: proto, SpansPerRequest: 10, Count: 100})
		if res.AcceptedSpans != 70 || res.RejectedSpans != 30 {
			t.Errorf("%s: accepted %d rejected %d, want 70 and 30", proto, res.AcceptedSpans, res.RejectedSpans)
		}
	}
}

func TestRunKeepsTheRate(t *testing.T) {
	// Pacing must never send ahead of the schedule, and must not add much
	// on top of what the same requests cost unpaced. The bound is relative
	// to an unpaced run measured just before, so a busy CI machine (race
	// detector, other packages' tests) slows both sides alike.
	f := func(proto string, connections int) {
		t.Helper()
		var took, unpaced []time.Duration
		for range 3 {
			send := func(rate float64) Result {
				srv := &fake{}
				target := srv.httpServer(t)
				if proto == OTLPGRPC {
					target = srv.grpcServer(t)
				}
				res := run(t, Config{Target: target, Protocol: proto, SpansPerRequest: 10, Count: 2000, Rate: rate, Connections: connections})
				if res.AcceptedSpans != 2000 {
					t.Fatalf("%s: accepted %d, want 2000", proto, res.AcceptedSpans)
				}
				return res
			}
			base := send(0).Elapsed
			res := send(4000)
			// The last of 200 requests is due at 0.4975 s.
			if res.Elapsed < 497*time.Millisecond {
				t.Fatalf("%s over %d connections: 2000 spans at 4000/s took %v, faster than the rate", proto, connections, res.Elapsed)
			}
			if res.Elapsed <= 500*time.Millisecond+base+250*time.Millisecond {
				return
			}
			took, unpaced = append(took, res.Elapsed), append(unpaced, base)
		}
		t.Errorf("%s over %d connections: 2000 spans at 4000/s took %v, want ~0.5 s plus the unpaced cost %v", proto, connections, took, unpaced)
	}
	f(ZipkinJSON, 1)
	f(ZipkinJSON, 4)
	f(OTLPGRPC, 2)
}

func TestRunStopsAtTheDuration(t *testing.T) {
	srv := &fake{}
	res := run(t, Config{Target: srv.httpServer(t), Protocol: ZipkinJSON, SpansPerRequest: 5, Duration: 300 * time.Millisecond})
	// The upper bound only catches a run that ignores the duration (it
	// would never end), so it is wide: a busy machine may slow the last
	// request a lot.
	if res.Elapsed < 300*time.Millisecond || res.Elapsed > 30*time.Second {
		t.Errorf("a 300 ms run took %v", res.Elapsed)
	}
	if res.AcceptedSpans == 0 || res.AcceptedSpans != srv.spans.Load() {
		t.Errorf("accepted %d, server got %d", res.AcceptedSpans, srv.spans.Load())
	}
	// With a rate, no request due after the end is sent.
	srv = &fake{}
	res = run(t, Config{Target: srv.httpServer(t), Protocol: ZipkinJSON, SpansPerRequest: 10, Rate: 1000, Duration: 300 * time.Millisecond})
	if res.AcceptedSpans != 300 {
		t.Errorf("300 ms at 1000 spans/s accepted %d spans, want 300", res.AcceptedSpans)
	}
}

func TestRunLatencyPercentiles(t *testing.T) {
	srv := &fake{delay: 3 * time.Millisecond}
	res := run(t, Config{Target: srv.grpcServer(t), Protocol: OTLPGRPC, SpansPerRequest: 10, Count: 1000, Connections: 2})
	if res.P50 < 3*time.Millisecond || res.P50 > 10*time.Second { // the upper bound only catches nonsense
		t.Errorf("p50 %v for a server that takes 3 ms", res.P50)
	}
	if !(res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max+res.Max/64) {
		t.Errorf("percentiles out of order: p50 %v p99 %v p99.9 %v max %v", res.P50, res.P99, res.P999, res.Max)
	}
}

// A server that stalls while requests are due shows in the tail: latency
// is timed from when a request was due, not from when it could be sent.
func TestRunLatencyIncludesTimeSpentBehindSchedule(t *testing.T) {
	var stall sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		stall.Do(func() { time.Sleep(200 * time.Millisecond) })
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res := run(t, Config{Target: srv.Listener.Addr().String(), Protocol: ZipkinJSON, SpansPerRequest: 1, Count: 400, Rate: 1000})
	// While the first request stalls 200 ms, the ~200 falling due behind it
	// wait up to 200 ms: half the run is late, its tail near 200 ms.
	if res.P99 < 150*time.Millisecond {
		t.Errorf("p99 %v, want the 200 ms stall to show", res.P99)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	srv := &fake{}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{Target: srv.httpServer(t), Protocol: ZipkinJSON, SpansPerRequest: 10})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second { // unbounded if the context were ignored
		t.Errorf("an unbounded run took %v to stop after its context ended", took)
	}
	if len(res.Errors) != 0 || res.AcceptedSpans == 0 {
		t.Errorf("accepted %d, errors %v: want some spans and no errors", res.AcceptedSpans, res.Errors)
	}
}

func TestRunFailsToStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	f := func(cfg Config) {
		t.Helper()
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) started", cfg)
		}
	}
	f(Config{Target: closed, Protocol: ZipkinJSON, Count: 10})
	f(Config{Target: closed, Protocol: OTLPGRPC, Count: 10, Timeout: time.Second})
	f(Config{Target: "nowhere", Protocol: ZipkinJSON})
	f(Config{Target: closed, Protocol: "zipkin-thrift"})
	f(Config{Target: closed, Protocol: ZipkinJSON, Rate: -1})
}

func FuzzRejectedProto(f *testing.F) {
	f.Add(partialSuccess(3))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x08, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := rejectedProto(b)
		if err != nil && n != 0 {
			t.Errorf("error %v with count %d", err, n)
		}
	})
}

func BenchmarkRun(b *testing.B) {
	for _, proto := range []string{ZipkinJSON, OTLPGRPC} {
		b.Run(proto, func(b *testing.B) {
			srv := &fake{}
			var target string
			if proto == OTLPGRPC {
				s := grpc.NewServer(grpc.ForceServerCodecV2(grpcraw.Codec{}))
				s.RegisterService(&grpc.ServiceDesc{
					ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
					HandlerType: (*any)(nil),
					Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
						var b []byte
						return &b, dec(&b)
					}}},
				}, srv)
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				go s.Serve(l)
				defer s.Stop()
				target = l.Addr().String()
			} else {
				hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.WriteHeader(http.StatusAccepted)
				}))
				defer hs.Close()
				target = hs.Listener.Addr().String()
			}
			cfg := Config{Target: target, Protocol: proto, SpansPerRequest: 100, Count: int64(b.N) * 100}
			p, _ := build(cfg.withDefaults(), 100, 1)
			b.SetBytes(p.bodySize)
			b.ReportAllocs()
			b.ResetTimer()
			res, err := Run(context.Background(), cfg)
			if err != nil || res.ErrorCount() > 0 {
				b.Fatal(err, res.Errors)
			}
		})
	}
}
