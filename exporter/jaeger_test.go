package exporter

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
	"github.com/traceport/traceport/translate"
)

// fakeCollector is Jaeger's api_v2 CollectorService on 127.0.0.1.
type fakeCollector struct {
	script func(call int, service string) codes.Code

	mu       sync.Mutex
	calls    int
	services map[string]int // spans accepted per process service name
}

func (f *fakeCollector) PostSpans(_ context.Context, req *api_v2.PostSpansRequest) (*api_v2.PostSpansResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := f.calls
	f.calls++
	service := ""
	if req.Batch.Process != nil {
		service = req.Batch.Process.ServiceName
	}
	if f.script != nil {
		if code := f.script(call, service); code != codes.OK {
			return nil, status.Error(code, "fake says "+code.String())
		}
	}
	f.services[service] += len(req.Batch.Spans)
	return &api_v2.PostSpansResponse{}, nil
}

func (f *fakeCollector) accepted() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.services {
		out[k] = v
	}
	return out
}

func newFakeCollector(tb testing.TB, script func(call int, service string) codes.Code) (*fakeCollector, string) {
	f := &fakeCollector{script: script, services: map[string]int{}}
	ln := listen(tb)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpcraw.Codec{}))
	api_v2.RegisterCollectorServiceServer(srv, f)
	go srv.Serve(ln)
	tb.Cleanup(srv.Stop)
	return f, ln.Addr().String()
}

// newLimitedCollector is a fakeCollector refusing messages over maxBytes
// with grpc-go's own check, as Jaeger's collector does.
func newLimitedCollector(tb testing.TB, maxBytes int) (*fakeCollector, string) {
	f := &fakeCollector{services: map[string]int{}}
	ln := listen(tb)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpcraw.Codec{}), grpc.MaxRecvMsgSize(maxBytes))
	api_v2.RegisterCollectorServiceServer(srv, f)
	go srv.Serve(ln)
	tb.Cleanup(srv.Stop)
	return f, ln.Addr().String()
}

func TestJaegerGRPC(t *testing.T) {
	// Two services in one push: one PostSpans per process.
	data := append(requestFor(t, "cart", 30), requestFor(t, "pay", 20)...)
	cases := []struct {
		name      string
		script    func(call int, service string) codes.Code
		wantCalls int
		want      map[string]int
		exported  int64
		dropped   map[string]int64
	}{
		{"ok", nil, 2, map[string]int{"cart": 30, "pay": 20}, 50, nil},
		// The accepted process is not sent twice when the other is retried.
		{"second process retried alone", func(call int, _ string) codes.Code {
			if call == 1 || call == 2 {
				return codes.Unavailable
			}
			return codes.OK
		}, 4, map[string]int{"cart": 30, "pay": 20}, 50, nil},
		{"one process refused for good", func(_ int, service string) codes.Code {
			if service == "pay" {
				return codes.InvalidArgument
			}
			return codes.OK
		}, 2, map[string]int{"cart": 30}, 30, map[string]int64{ReasonNonRetryable: 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, addr := newFakeCollector(t, tc.script)
			cfg := testConfig(addr, ProtocolJaegerGRPC)
			e, reg := start(t, cfg)
			if err := e.Push(data, 50, true, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "settled", func() bool { return settled(e)() })
			s := checkIdentity(t, e, reg)
			got := fc.accepted()
			if len(got) != len(tc.want) {
				t.Errorf("collector accepted %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("collector accepted %v, want %v", got, tc.want)
				}
			}
			if n := fc.callCount(); n != tc.wantCalls {
				t.Errorf("%d calls, want %d", n, tc.wantCalls)
			}
			if s.Exported != tc.exported {
				t.Errorf("exported %d, want %d", s.Exported, tc.exported)
			}
			for _, r := range reasonNames {
				if s.Dropped[r] != tc.dropped[r] {
					t.Errorf("dropped{%s} = %d, want %d", r, s.Dropped[r], tc.dropped[r])
				}
			}
		})
	}
}

// A push that is not a valid OTLP request cannot be converted for Jaeger:
// it is dropped as non_retryable, not retried.
func TestJaegerGRPCUndecodable(t *testing.T) {
	fc, addr := newFakeCollector(t, nil)
	e, reg := start(t, testConfig(addr, ProtocolJaegerGRPC))
	if err := e.Push([]byte{0x0a, 0xff, 0xff}, 5, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "settled", settled(e))
	if s := checkIdentity(t, e, reg); s.Dropped[ReasonNonRetryable] != 5 || s.Retries != 0 {
		t.Errorf("stats %+v: want 5 dropped non_retryable, no retry", s)
	}
	if n := fc.callCount(); n != 0 {
		t.Errorf("%d calls to the collector", n)
	}
}

func (f *fakeCollector) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Pushes of one service batched together go in one PostSpans.
func TestJaegerGRPCMergesProcesses(t *testing.T) {
	fc, addr := newFakeCollector(t, nil)
	cfg := testConfig(addr, ProtocolJaegerGRPC)
	cfg.BatchTimeout = time.Hour
	e, reg := start(t, cfg)
	for _, p := range []struct {
		service string
		spans   int
	}{{"cart", 10}, {"pay", 5}, {"cart", 10}} {
		if err := e.Push(requestFor(t, p.service, p.spans), p.spans, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil { // flushes the three pushes as one batch
		t.Fatal(err)
	}
	checkIdentity(t, e, reg)
	if got := fc.accepted(); got["cart"] != 20 || got["pay"] != 5 || fc.callCount() != 2 {
		t.Errorf("collector accepted %v in %d calls, want cart 20, pay 5 in 2", got, fc.callCount())
	}
}

func TestSplitLarge(t *testing.T) {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(append(requestFor(t, "cart", 100), requestFor(t, "pay", 10)...))
	if err != nil {
		t.Fatal(err)
	}
	batches := translate.JaegerBatches(td)
	big := batches[0].Size()
	f := func(maxBytes int, want ...int) {
		t.Helper()
		var got []int
		for _, jb := range splitLarge(append([]*model.Batch(nil), batches...), maxBytes) {
			got = append(got, len(jb.Spans))
			if jb.Size() > maxBytes && len(jb.Spans) > 1 {
				t.Errorf("max %d: a batch of %d bytes", maxBytes, jb.Size())
			}
		}
		if !equal(got, want) {
			t.Errorf("splitLarge(max %d) spans per batch %v, want %v", maxBytes, got, want)
		}
	}
	f(big, 100, 10)
	f(big-1, 50, 50, 10)
	f(big/3, 25, 25, 25, 25, 10)
	f(1, append(repeat(1, 100), repeat(1, 10)...)...)
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}
