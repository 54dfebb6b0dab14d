package sink

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/bench"
)

func TestCountSpans(t *testing.T) {
	traces := func(spansPerScope ...int) []byte {
		td := ptrace.NewTraces()
		for _, n := range spansPerScope {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", "a")
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("s")
			for range n {
				ss.Spans().AppendEmpty().SetName("x")
			}
		}
		b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f := func(req []byte, want int, wantErr bool) {
		t.Helper()
		got, err := CountSpans(req)
		if (err != nil) != wantErr || (err == nil && got != want) {
			t.Errorf("CountSpans = %d, %v; want %d, error %v", got, err, want, wantErr)
		}
	}
	f(nil, 0, false)
	f(traces(), 0, false)
	f(traces(0), 0, false)
	f(traces(1), 1, false)
	f(traces(3, 0, 7), 10, false)
	f(bench.SDKOTLP(100, 1), 100, false)
	// Concatenated requests are one merged request.
	f(append(traces(2), traces(5)...), 7, false)
	f(traces(3)[:5], 0, true)            // cut short
	f([]byte{0x08, 0x01}, 0, true)       // resource_spans as a varint
	f([]byte{0x0a, 0x05, 0x01}, 0, true) // length past the end
}

func FuzzCountSpans(f *testing.F) {
	f.Add(bench.SDKOTLP(3, 1))
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := CountSpans(b)
		td, perr := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
		if perr == nil && (err != nil || n != td.SpanCount()) {
			t.Errorf("CountSpans = %d, %v; ptrace decodes %d spans", n, err, td.SpanCount())
		}
	})
}

func start(t *testing.T) (*Sink, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, l.Addr().String()
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// The sink counts what the load generator says was accepted, over gRPC
// and HTTP on the one port, compressed or not.
func TestSinkCountsWhatWasAccepted(t *testing.T) {
	s, addr := start(t)
	var want int64
	for _, cfg := range []bench.Config{
		{Protocol: bench.OTLPGRPC, Count: 1234, SpansPerRequest: 100, Connections: 2, Streams: 2},
		{Protocol: bench.OTLPGRPC, Count: 500, SpansPerRequest: 10, Gzip: true},
		{Protocol: bench.OTLPHTTP, Count: 777, SpansPerRequest: 50, Connections: 3},
		{Protocol: bench.OTLPHTTP, Count: 300, Gzip: true},
	} {
		cfg.Target = addr
		res, err := bench.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.AcceptedSpans != cfg.Count || len(res.Errors) != 0 {
			t.Fatalf("%s: accepted %d of %d, errors %v %s", cfg.Protocol, res.AcceptedSpans, cfg.Count, res.Errors, res.FirstError)
		}
		want += cfg.Count
	}
	if got := get(t, "http://"+addr+"/count"); got != strconv.FormatInt(want, 10) {
		t.Errorf("GET /count = %q, want %d", got, want)
	}
	if got := s.Count().Spans; got != want {
		t.Errorf("Count().Spans = %d, want %d", got, want)
	}
	if got := get(t, "http://"+addr+"/stats"); !strings.Contains(got, `"spans":`+strconv.FormatInt(want, 10)) {
		t.Errorf("GET /stats = %s", got)
	}
	resp, err := http.Post("http://"+addr+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := get(t, "http://"+addr+"/count"); got != "0" {
		t.Errorf("after reset, GET /count = %q", got)
	}
}

type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// Collector exporters may send zstd; malformed requests are refused and
// not counted.
func TestSinkTakesZstdAndRefusesGarbage(t *testing.T) {
	s, addr := start(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	req, reply := bench.SDKOTLP(42, 1), []byte(nil)
	if err := conn.Invoke(context.Background(), method, &req, &reply, grpc.UseCompressor("zstd")); err != nil {
		t.Fatalf("zstd export: %v", err)
	}
	garbage := []byte{0x0a, 0x7f, 0x01}
	if err := conn.Invoke(context.Background(), method, &garbage, &reply); status.Code(err) != codes.InvalidArgument {
		t.Errorf("garbage over gRPC: %v, want InvalidArgument", err)
	}

	zb, _ := zstd.NewWriter(nil)
	body := zb.EncodeAll(bench.SDKOTLP(8, 2), nil)
	post := func(body []byte, ctype, encoding string) int {
		r, _ := http.NewRequest("POST", "http://"+addr+"/v1/traces", bytes.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("Content-Encoding", encoding)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(body, "application/x-protobuf", "zstd"); code != 200 {
		t.Errorf("zstd POST: %d", code)
	}
	if code := post(garbage, "application/x-protobuf", ""); code != 400 {
		t.Errorf("garbage POST: %d, want 400", code)
	}
	if code := post(body, "application/json", ""); code != 415 {
		t.Errorf("JSON POST: %d, want 415", code)
	}
	if c := s.Count(); c.Spans != 50 || c.Requests != 2 || c.Rejected != 2 {
		t.Errorf("counts %+v, want 50 spans in 2 requests, 2 rejected", c)
	}
}

func BenchmarkCountSpans(b *testing.B) {
	req := bench.SDKOTLP(100, 1)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := CountSpans(req); n != 100 || err != nil {
			b.Fatal(n, err)
		}
	}
}
