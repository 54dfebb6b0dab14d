package e2e

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // traceport gzips by default
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// fault is how the fake backend answers one export call.
type fault struct {
	code  codes.Code    // codes.OK accepts the spans
	delay time.Duration // RetryInfo (gRPC) or Retry-After (HTTP, whole seconds)
	stall bool          // never answer; the client must time out
}

// fakeBackend is an OTLP receiver, gRPC or HTTP, that misbehaves on demand:
// only for what a real Jaeger will not do when asked.
type fakeBackend struct {
	addr   string
	answer func(call int) fault

	mu       sync.Mutex
	calls    []time.Time // when each export call arrived
	accepted int         // spans in calls answered OK
}

// callsSnapshot returns the arrival times and the accepted span count.
func (b *fakeBackend) snapshot() ([]time.Time, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Time(nil), b.calls...), b.accepted
}

// arrive records a call and returns its index.
func (b *fakeBackend) arrive() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, time.Now())
	return len(b.calls) - 1
}

func (b *fakeBackend) accept(spans int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.accepted += spans
}

// startFakeBackend serves OTLP on a free loopback port over protocol
// ("otlp-grpc" or "otlp-http") until the test ends.
func startFakeBackend(t testing.TB, protocol string, answer func(call int) fault) *fakeBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{addr: l.Addr().String(), answer: answer}
	switch protocol {
	case "otlp-grpc":
		s := grpc.NewServer()
		ptraceotlp.RegisterGRPCServer(s, &fakeGRPC{b: b})
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
	case "otlp-http":
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/traces", b.serveHTTP)
		s := &http.Server{Handler: mux}
		go func() { _ = s.Serve(l) }()
		t.Cleanup(func() { _ = s.Close() })
	default:
		t.Fatalf("fake backend: unknown protocol %q", protocol)
	}
	return b
}

type fakeGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	b *fakeBackend
}

func (g *fakeGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	f := g.b.answer(g.b.arrive())
	switch {
	case f.stall:
		<-ctx.Done()
		return ptraceotlp.NewExportResponse(), status.FromContextError(ctx.Err()).Err()
	case f.code == codes.OK:
		g.b.accept(req.Traces().SpanCount())
		return ptraceotlp.NewExportResponse(), nil
	}
	st := status.New(f.code, "fake backend says "+f.code.String())
	if f.delay > 0 {
		if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(f.delay)}); err == nil {
			st = withInfo
		}
	}
	return ptraceotlp.NewExportResponse(), st.Err()
}

// httpStatus maps a fault's gRPC code to the status an OTLP/HTTP server
// answers with (OTLP spec, "Failures").
var httpStatus = map[codes.Code]int{
	codes.OK:                http.StatusOK,
	codes.ResourceExhausted: http.StatusTooManyRequests,
	codes.Unavailable:       http.StatusServiceUnavailable,
	codes.InvalidArgument:   http.StatusBadRequest,
}

func (b *fakeBackend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f := b.answer(b.arrive())
	if f.stall {
		<-r.Context().Done()
		return
	}
	code, ok := httpStatus[f.code]
	if !ok {
		http.Error(w, "fake backend: no HTTP status for "+f.code.String(), http.StatusInternalServerError)
		return
	}
	if code != http.StatusOK {
		if f.delay > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.delay.Seconds()))))
		}
		http.Error(w, "fake backend says "+f.code.String(), code)
		return
	}
	body := io.Reader(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(data); err != nil {
		http.Error(w, fmt.Sprintf("fake backend: %v (Content-Encoding %q)", err, r.Header.Get("Content-Encoding")), http.StatusBadRequest)
		return
	}
	b.accept(req.Traces().SpanCount())
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}
