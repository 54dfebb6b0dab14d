package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// zipkinSpan is a Zipkin v2 JSON span as Envoy writes it: hex ids, all tag
// values strings, microsecond timestamps.
type zipkinSpan struct {
	TraceID        string            `json:"traceId"`
	ID             string            `json:"id"`
	ParentID       string            `json:"parentId,omitempty"`
	Kind           string            `json:"kind"`
	Name           string            `json:"name"`
	Timestamp      int64             `json:"timestamp"`
	Duration       int64             `json:"duration"`
	LocalEndpoint  zipkinEndpoint    `json:"localEndpoint"`
	RemoteEndpoint *zipkinEndpoint   `json:"remoteEndpoint,omitempty"`
	Tags           map[string]string `json:"tags"`
}

type zipkinEndpoint struct {
	ServiceName string `json:"serviceName,omitempty"`
	IPv4        string `json:"ipv4,omitempty"`
	Port        int    `json:"port,omitempty"`
}

func zipkinJSON(t testing.TB, spans []zipkinSpan) []byte {
	t.Helper()
	b, err := json.Marshal(spans)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stored is what Jaeger must show of s; of the tags, the kind and the ones
// named in keep.
func (s zipkinSpan) stored(keep ...string) storedSpan {
	tags := map[string]string{"span.kind": strings.ToLower(s.Kind)}
	for _, k := range keep {
		tags[k] = s.Tags[k]
	}
	return storedSpan{TraceID: s.TraceID, SpanID: s.ID, Parent: s.ParentID, Service: s.LocalEndpoint.ServiceName, Name: s.Name, Tags: tags}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// meshApp is one workload of the seed's cluster behind the Istio ingress
// gateway; service is what its sidecar reports (Istio's app.namespace).
type meshApp struct {
	service, host, path string
}

var meshApps = []meshApp{
	{"auth-api.auth", "auth-api.auth.svc.cluster.local", "/api/v1/auth/login"},
	{"character-api.character", "character-api.character.svc.cluster.local", "/api/v1/characters"},
	{"chat-api.chat", "chat-api.chat.svc.cluster.local", "/api/v1/chat/rooms"},
	{"scan-api.scan", "scan-api.scan.svc.cluster.local", "/api/v1/scan"},
	{"my-api.my", "my-api.my.svc.cluster.local", "/api/v1/my/profile"},
	{"location-api.location", "location-api.location.svc.cluster.local", "/api/v1/locations"},
	{"image-api.image", "image-api.image.svc.cluster.local", "/api/v1/images"},
}

const gateway = "istio-ingressgateway.istio-system"

// sidecarPair is what two Envoys report for one request through the
// gateway to app: the gateway's CLIENT span and the app sidecar's SERVER span,
// its child (shared_span_context false, as Istio configures Envoy).
func sidecarPair(t testing.TB, app meshApp, traceID string, start time.Time) (client, server zipkinSpan) {
	t.Helper()
	route := app.host + ":8000/*"
	reqID := randomHex(t, 16)
	ts := start.UnixMicro()
	client = zipkinSpan{
		TraceID: traceID, ID: randomHex(t, 8), Kind: "CLIENT", Name: route, Timestamp: ts, Duration: 5210,
		LocalEndpoint: zipkinEndpoint{ServiceName: gateway, IPv4: "10.244.1.12"},
		Tags: map[string]string{
			"component": "proxy", "guid:x-request-id": reqID, "http.method": "POST", "http.protocol": "HTTP/1.1",
			"http.status_code": "200", "http.url": "https://api.example.com" + app.path,
			"istio.canonical_service": "istio-ingressgateway", "istio.namespace": "istio-system",
			"node_id":          "router~10.244.1.12~istio-ingressgateway-7c9d8f6b5-qx2lm.istio-system~istio-system.svc.cluster.local",
			"upstream_cluster": "outbound|8000||" + app.host, "response_flags": "-", "request_size": "128", "response_size": "512",
		},
	}
	server = zipkinSpan{
		TraceID: traceID, ID: randomHex(t, 8), ParentID: client.ID, Kind: "SERVER", Name: route, Timestamp: ts + 700, Duration: 4100,
		LocalEndpoint: zipkinEndpoint{ServiceName: app.service, IPv4: "10.244.2.31"},
		Tags: map[string]string{
			"component": "proxy", "guid:x-request-id": reqID, "http.method": "POST", "http.protocol": "HTTP/1.1",
			"http.status_code": "200", "http.url": "http://" + app.host + ":8000" + app.path,
			"istio.canonical_service": app.service[:len(app.service)-len(ns(app.service))-1], "istio.namespace": ns(app.service),
			"upstream_cluster": "inbound|8000||", "response_flags": "-", "request_size": "128", "response_size": "512",
		},
	}
	return client, server
}

// ns is the namespace part of an Istio service name "app.namespace".
func ns(service string) string {
	for i := len(service) - 1; i >= 0; i-- {
		if service[i] == '.' {
			return service[i+1:]
		}
	}
	return service
}

// sdkSender is an app's OpenTelemetry Go SDK with a real OTLP exporter,
// gRPC or HTTP, pointed at endpoint (host:port, no TLS).
type sdkSender struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

func newSDKSender(t testing.TB, protocol, endpoint, service string) *sdkSender {
	t.Helper()
	ctx := context.Background()
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithCompressor("gzip"))
	case "http":
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(endpoint), otlptracehttp.WithInsecure(),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	default:
		t.Fatalf("unknown SDK protocol %q", protocol)
	}
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("telemetry.sdk.language", "go"),
		attribute.String("k8s.namespace.name", ns(service)),
	)
	// Spans leave only on flush, so a failed export surfaces as an error.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Hour), sdktrace.WithMaxExportBatchSize(4096), sdktrace.WithMaxQueueSize(65536)))
	s := &sdkSender{tp: tp, tracer: tp.Tracer("e2e")}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return s
}

// handle records what an app's SDK makes of one request arriving through
// its sidecar: a SERVER span that is a child of the sidecar's span (remote
// parent) and a CLIENT span to the app's database under it.
func (s *sdkSender) handle(t testing.TB, service, path, traceID, parentID string) []storedSpan {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex(parentID)
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
	name := "POST " + path
	ctx, srv := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("url.path", path)))
	_, db := s.tracer.Start(ctx, "SELECT", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "postgresql")))
	db.End()
	srv.End()
	return []storedSpan{
		{TraceID: traceID, SpanID: srv.SpanContext().SpanID().String(), Parent: parentID, Service: service, Name: name,
			Tags: map[string]string{"span.kind": "server", "url.path": path}},
		{TraceID: traceID, SpanID: db.SpanContext().SpanID().String(), Parent: srv.SpanContext().SpanID().String(), Service: service, Name: "SELECT",
			Tags: map[string]string{"span.kind": "client", "db.system.name": "postgresql"}},
	}
}

func (s *sdkSender) flush(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.tp.ForceFlush(ctx); err != nil {
		t.Fatalf("SDK export: %v", err)
	}
}

// plainSpans is n unrelated Zipkin spans of one service in one trace, a
// root and its children, for tests that only count.
func plainSpans(t testing.TB, service string, n int) ([]zipkinSpan, map[string]storedSpan) {
	t.Helper()
	traceID := randomHex(t, 16)
	now := time.Now().Add(-time.Second).UnixMicro()
	spans := make([]zipkinSpan, n)
	want := map[string]storedSpan{}
	for i := range spans {
		s := zipkinSpan{
			TraceID: traceID, ID: randomHex(t, 8), Kind: "SERVER", Name: fmt.Sprintf("op-%d", i%5),
			Timestamp: now + int64(i), Duration: 100,
			LocalEndpoint: zipkinEndpoint{ServiceName: service, IPv4: "10.0.0.1"},
			Tags:          map[string]string{"http.method": "GET", "seq": fmt.Sprint(i)},
		}
		if i > 0 {
			s.ParentID = spans[0].ID
			s.Kind = "CLIENT"
		}
		spans[i] = s
		want[traceID+"/"+s.ID] = s.stored("http.method", "seq")
	}
	return spans, want
}
