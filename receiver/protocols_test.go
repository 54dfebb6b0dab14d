package receiver

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
)

// sendWithSDK emits n spans of service through a real OTel SDK exporter.
func sendWithSDK(t *testing.T, exp sdktrace.SpanExporter, service string, n int) {
	t.Helper()
	res := sdkresource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	tr := tp.Tracer("receiver-test")
	for i := 0; i < n; i++ {
		_, span := tr.Start(context.Background(), "op")
		span.SetAttributes(attribute.Int("i", i))
		span.End()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("SDK exporter: %v", err)
	}
}

// TestOTLPWithRealSDKExporters sends through otlptracegrpc and
// otlptracehttp (plaintext and TLS) to the one port.
func TestOTLPWithRealSDKExporters(t *testing.T) {
	cert, pool := selfSigned(t)
	plain := startReceiver(t, Config{})
	secure := startReceiver(t, Config{TLS: serverTLS(cert)})
	ctx := context.Background()
	tlsConf := &tls.Config{RootCAs: pool}
	cases := []struct {
		name, protocol string
		tr             *testReceiver
		exp            func() (sdktrace.SpanExporter, error)
	}{
		{"grpc", protoOTLPGRPC, plain, func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(plain.addr), otlptracegrpc.WithInsecure())
		}},
		{"grpc-gzip", protoOTLPGRPC, plain, func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(plain.addr), otlptracegrpc.WithInsecure(), otlptracegrpc.WithCompressor("gzip"))
		}},
		{"grpc-tls", protoOTLPGRPC, secure, func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(secure.addr), otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsConf)))
		}},
		{"http", protoOTLPHTTP, plain, func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(plain.addr), otlptracehttp.WithInsecure())
		}},
		{"http-gzip", protoOTLPHTTP, plain, func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(plain.addr), otlptracehttp.WithInsecure(), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
		{"http-tls", protoOTLPHTTP, secure, func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(secure.addr), otlptracehttp.WithTLSClientConfig(tlsConf))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			service := "svc-" + tc.name
			exp, err := tc.exp()
			if err != nil {
				t.Fatal(err)
			}
			tc.tr.sink.reset()
			sendWithSDK(t, exp, service, 7)
			if got := tc.tr.received(t, tc.protocol, encProto, service); got != 7 {
				t.Errorf("received_spans_total{%s,proto,%s} = %v, want 7", tc.protocol, service, got)
			}
			td := tc.tr.sink.traces(t)
			if td.SpanCount() != 7 {
				t.Fatalf("sink got %d spans, want 7", td.SpanCount())
			}
			name, _ := td.ResourceSpans().At(0).Resource().Attributes().Get("service.name")
			if name.Str() != service {
				t.Errorf("forwarded service.name %q, want %q", name.Str(), service)
			}
		})
	}
}

// TestJaegerGRPCWithRealClient posts a batch with Jaeger's generated client.
func TestJaegerGRPCWithRealClient(t *testing.T) {
	tr := startReceiver(t, Config{})
	conn, err := grpc.NewClient(tr.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpcraw.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := api_v2.NewCollectorServiceClient(conn)
	now := time.Now()
	batch := model.Batch{
		Process: &model.Process{ServiceName: "legacy-api", Tags: []model.KeyValue{model.String("hostname", "node-1")}},
		Spans: []*model.Span{
			{TraceID: model.NewTraceID(1, 2), SpanID: 3, OperationName: "GET /", StartTime: now, Duration: time.Millisecond},
			{TraceID: model.NewTraceID(1, 2), SpanID: 4, OperationName: "db", StartTime: now, Duration: time.Microsecond,
				References: []model.SpanRef{model.NewChildOfRef(model.NewTraceID(1, 2), 3)}},
			{TraceID: model.NewTraceID(0, 0), SpanID: 5, OperationName: "bad: zero trace id"},
		},
	}
	if _, err := client.PostSpans(context.Background(), &api_v2.PostSpansRequest{Batch: batch}); err != nil {
		t.Fatalf("PostSpans: %v", err)
	}
	if got := tr.received(t, protoJaegerGRPC, encProto, "legacy-api"); got != 2 {
		t.Errorf("received_spans_total{jaeger_grpc,proto,legacy-api} = %v, want 2", got)
	}
	if got := gatherValue(t, tr.reg, "traceport_rejected_spans_total", map[string]string{"protocol": protoJaegerGRPC, "reason": string(reasonInvalidSpan)}); got != 1 {
		t.Errorf("rejected_spans_total{jaeger_grpc,invalid_span} = %v, want 1 (the zero trace id)", got)
	}
	td := tr.sink.traces(t)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	if spans.Len() != 2 || spans.At(1).ParentSpanID() != spans.At(0).SpanID() {
		t.Errorf("want the db span as child of GET /; got %s", tracesJSON(t, td))
	}
}

// TestRefusals checks every refusal a user can provoke: status, message and
// the counter with its reason.
func TestRefusals(t *testing.T) {
	tr := startReceiver(t, Config{MaxRequestBytes: 64 << 10})
	base := "http://" + tr.addr
	c := h1Client()
	bomb := gzipped(bytes.Repeat([]byte(" "), 10<<20)) // ~10 KB on the wire, 10 MiB inflated
	huge := bytes.Repeat([]byte(" "), 100<<10)
	f := func(method, path, ct string, body []byte, hdr []string, protocol string, wantCode int, wantReason reason, wantMsg string) {
		t.Helper()
		before := tr.rejected(t, protocol, wantReason)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Errorf("%s %s: status %d (%s), want %d", method, path, resp.StatusCode, buf.String(), wantCode)
		}
		if !strings.Contains(buf.String(), wantMsg) {
			t.Errorf("%s %s: body %q does not name the problem (%q)", method, path, buf.String(), wantMsg)
		}
		if got := tr.rejected(t, protocol, wantReason) - before; got != 1 {
			t.Errorf("%s %s: rejected_requests_total{%s,%s} grew by %v, want 1", method, path, protocol, wantReason, got)
		}
	}
	f("GET", "/api/v2/spans", "", nil, nil, protoZipkin, 405, reasonMethod, "use POST")
	f("PUT", "/v1/traces", "application/x-protobuf", nil, nil, protoOTLPHTTP, 405, reasonMethod, "use POST")
	f("POST", "/nope", "application/json", []byte("[]"), nil, protoUnknown, 404, reasonNotFound, "/nope")
	f("POST", "/api/v2/spans", "application/xml", []byte("<x/>"), nil, protoZipkin, 415, reasonUnsupportedMedia, "application/xml")
	f("POST", "/v1/traces", "text/plain", []byte("x"), nil, protoOTLPHTTP, 415, reasonUnsupportedMedia, "text/plain")
	f("POST", "/api/v2/spans", "application/json", []byte(`[{"traceId":"1","name":`), nil, protoZipkin, 400, reasonMalformed, "offset")
	f("POST", "/api/v2/spans", "application/json", []byte(`[{"traceId": 12, "id":"1"}]`), nil, protoZipkin, 400, reasonInvalidSpan, "traceId")
	f("POST", "/api/v2/spans", "application/json", []byte(`[{"traceId":"00000000000000000000000000000001","id":"zz"}]`), nil, protoZipkin, 400, reasonInvalidSpan, "id")
	f("POST", "/v1/traces", "application/x-protobuf", []byte{0x0a, 0x05, 0x01}, nil, protoOTLPHTTP, 400, reasonMalformed, "otlp")
	f("POST", "/v1/traces", "application/json", []byte(`{"resourceSpans": 3}`), nil, protoOTLPHTTP, 400, reasonMalformed, "resourceSpans")
	f("POST", "/api/v2/spans", "application/json", huge, nil, protoZipkin, 413, reasonTooLarge, "max-request-bytes")
	f("POST", "/api/v2/spans", "application/json", bomb, []string{"Content-Encoding", "gzip"}, protoZipkin, 413, reasonTooLarge, "after gzip decompression")
	f("POST", "/api/v2/spans", "application/json", []byte("not gzip"), []string{"Content-Encoding", "gzip"}, protoZipkin, 400, reasonDecompress, "gzip")
	f("POST", "/api/v2/spans", "application/json", []byte("[]"), []string{"Content-Encoding", "br"}, protoZipkin, 415, reasonUnsupportedEncoding, "br")
}

// TestBackpressure: a full queue refuses at the door with what OTLP
// clients retry on: 429 + Retry-After, RESOURCE_EXHAUSTED + RetryInfo.
func TestBackpressure(t *testing.T) {
	tr := startReceiver(t, Config{})
	tr.sink.full = true
	code, _, hdr := post(t, h1Client(), "http://"+tr.addr+"/v1/traces", "application/x-protobuf", nil)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") != "3" {
		t.Errorf("OTLP/HTTP with a full queue: status %d Retry-After %q, want 429 and 3", code, hdr.Get("Retry-After"))
	}
	code, _, _ = post(t, h1Client(), "http://"+tr.addr+"/api/v2/spans", "application/json", []byte("[]"))
	if code != http.StatusTooManyRequests {
		t.Errorf("Zipkin with a full queue: status %d, want 429", code)
	}
	conn, err := grpc.NewClient(tr.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpcraw.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Invoke(context.Background(), grpcraw.OTLPExport, &grpcraw.Message{}, &grpcraw.Message{})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 {
		t.Errorf("OTLP/gRPC with a full queue: %v, want RESOURCE_EXHAUSTED with RetryInfo", err)
	}
	if got := tr.rejected(t, protoOTLPGRPC, reasonQueueFull); got != 1 {
		t.Errorf("rejected_requests_total{otlp_grpc,queue_full} = %v, want 1", got)
	}
}

// TestMixedHTTP2Connection: one h2c connection carrying plain HTTP/2 and
// gRPC requests, as an Istio sidecar's connection pool does.
func TestMixedHTTP2Connection(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := h2cClient()
	body := []byte(`[{"traceId":"1","id":"2","name":"a","localEndpoint":{"serviceName":"mixed"}}]`)
	if code, msg, _ := post(t, c, "http://"+tr.addr+"/api/v2/spans", "application/json", body); code != 202 {
		t.Fatalf("zipkin over h2c: %d %s", code, msg)
	}
	// A gRPC request on the same client connection (net/http's transport
	// reuses it).
	grpcOverHTTP2(t, c, tr.addr)
	if code, msg, _ := post(t, c, "http://"+tr.addr+"/api/v2/spans", "application/json", body); code != 202 {
		t.Fatalf("zipkin after gRPC on the same connection: %d %s", code, msg)
	}
	if got := tr.received(t, protoZipkin, encJSON, "mixed"); got != 2 {
		t.Errorf("received %v zipkin spans, want 2", got)
	}
}

// TestProbesAndMetrics: /healthz, /readyz (false after SetReady(false)), /metrics.
func TestProbesAndMetrics(t *testing.T) {
	tr := startReceiver(t, Config{})
	get := func(path string) (int, string) {
		resp, err := h1Client().Get("http://" + tr.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz %d before shutdown", code)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `traceport_rejected_requests_total{protocol="zipkin",reason="queue_full"} 0`) {
		t.Errorf("/metrics %d: rejection counters must start at 0 so alerts see them", code)
	}
	tr.rc.SetReady(false)
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz %d after SetReady(false), want 503", code)
	}
}

// TestGRPCFirstThenPlainHTTP2: a connection whose first request is gRPC is
// served natively; a plain request later on it must still succeed: the
// client is sent a GOAWAY that leaves the plain request unprocessed, and
// retries it on a new connection (Go's transport does so by itself).
func TestGRPCFirstThenPlainHTTP2(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := h2cClient()
	grpcOverHTTP2(t, c, tr.addr)
	body := []byte(`[{"traceId":"1","id":"2","name":"a","localEndpoint":{"serviceName":"mixed"}}]`)
	for i := 0; i < 3; i++ {
		if code, msg, _ := post(t, c, "http://"+tr.addr+"/api/v2/spans", "application/json", body); code != 202 {
			t.Fatalf("plain request %d after gRPC on the same client: %d %s", i, code, msg)
		}
		grpcOverHTTP2(t, c, tr.addr)
	}
	if got := tr.received(t, protoZipkin, encJSON, "mixed"); got != 3 {
		t.Errorf("received %v zipkin spans, want 3", got)
	}
}

// grpcOverHTTP2 sends one gRPC Export (an empty request, framed by hand)
// with a plain HTTP/2 client, so it shares that client's connection.
func grpcOverHTTP2(t *testing.T, c *http.Client, addr string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+grpcraw.OTLPExport, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("gRPC request on a shared HTTP/2 client: status %d grpc-status %q", resp.StatusCode, resp.Trailer.Get("Grpc-Status"))
	}
}
