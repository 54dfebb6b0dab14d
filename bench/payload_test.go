package bench

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"google.golang.org/protobuf/encoding/protowire"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update if intended):\n%s", name, path, got)
	}
}

func indentJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(out.Bytes(), '\n')
}

func within(t *testing.T, what string, got, want, tolerance float64) {
	t.Helper()
	if got < want*(1-tolerance) || got > want*(1+tolerance) {
		t.Errorf("%s = %.0f, want %.0f ± %.0f%%", what, got, want, tolerance*100)
	}
}

var istioTags = []string{
	"component", "node_id", "guid:x-request-id", "upstream_cluster", "http.method", "http.url",
	"http.status_code", "response_flags", "istio.canonical_service", "istio.canonical_revision",
	"istio.mesh_id", "istio.namespace", "downstream_cluster", "user_agent", "peer.address",
	"request_size", "response_size", "http.protocol",
}

func TestEnvoyZipkinJSON(t *testing.T) {
	golden(t, "envoy-zipkin-2.json", indentJSON(t, EnvoyZipkinJSON(2, 1)))

	f := func(n int) {
		t.Helper()
		body := EnvoyZipkinJSON(n, 7)
		var spans []zipkinmodel.SpanModel
		if err := json.Unmarshal(body, &spans); err != nil {
			t.Fatalf("%d spans: zipkin-go cannot decode: %v", n, err)
		}
		if len(spans) != n {
			t.Fatalf("decoded %d spans, want %d", len(spans), n)
		}
		if n >= 10 {
			within(t, "bytes per span", float64(len(body))/float64(n), 1060, 0.15)
		}
		for i, s := range spans {
			if s.TraceID.High == 0 || s.TraceID.Low == 0 {
				t.Errorf("span %d: trace id %v is not 128-bit", i, s.TraceID)
			}
			for _, k := range istioTags {
				if _, ok := s.Tags[k]; !ok {
					t.Errorf("span %d: no %q tag", i, k)
				}
			}
			switch {
			case i%2 == 0 && (s.Kind != zipkinmodel.Client || s.LocalEndpoint.ServiceName != "istio-ingressgateway.istio-system" || s.ParentID != nil):
				t.Errorf("span %d: %s %s parent %v, want a root CLIENT of the ingress gateway", i, s.Kind, s.LocalEndpoint.ServiceName, s.ParentID)
			case i%2 == 1 && (s.Kind != zipkinmodel.Server || s.ParentID == nil || *s.ParentID != spans[i-1].ID || s.TraceID != spans[i-1].TraceID):
				t.Errorf("span %d: %s parent %v, want SERVER child of %v", i, s.Kind, s.ParentID, spans[i-1].ID)
			}
		}
	}
	f(1)
	f(2)
	f(10)
	f(100)

	if bytes.Equal(EnvoyZipkinJSON(10, 1), EnvoyZipkinJSON(10, 2)) {
		t.Error("seeds 1 and 2 give the same payload")
	}
	if !bytes.Equal(EnvoyZipkinJSON(10, 1), EnvoyZipkinJSON(10, 1)) {
		t.Error("seed 1 gives two different payloads")
	}
}

func TestEnvoyZipkinProtoCarriesTheJSONSpans(t *testing.T) {
	var fromJSON []zipkinmodel.SpanModel
	if err := json.Unmarshal(EnvoyZipkinJSON(11, 3), &fromJSON); err != nil {
		t.Fatal(err)
	}
	var list zipkinproto.ListOfSpans
	if err := proto.Unmarshal(EnvoyZipkinProto(11, 3), &list); err != nil {
		t.Fatalf("not a ListOfSpans: %v", err)
	}
	if len(list.Spans) != len(fromJSON) {
		t.Fatalf("%d proto spans, want %d", len(list.Spans), len(fromJSON))
	}
	for i, p := range list.Spans {
		j := fromJSON[i]
		if got, want := hex.EncodeToString(p.TraceId), j.TraceID.String(); got != want {
			t.Errorf("span %d: trace id %s, want %s", i, got, want)
		}
		if got, want := hex.EncodeToString(p.Id), j.ID.String(); got != want {
			t.Errorf("span %d: id %s, want %s", i, got, want)
		}
		if p.LocalEndpoint.ServiceName != j.LocalEndpoint.ServiceName || p.Name != j.Name || len(p.Tags) != len(j.Tags) {
			t.Errorf("span %d: proto %s/%s/%d tags, json %s/%s/%d tags", i,
				p.LocalEndpoint.ServiceName, p.Name, len(p.Tags), j.LocalEndpoint.ServiceName, j.Name, len(j.Tags))
		}
	}
}

func TestSDKOTLP(t *testing.T) {
	golden(t, "sdk-otlp-2.json", indentJSON(t, SDKOTLPJSON(2, 1)))

	f := func(n int) {
		t.Helper()
		body := SDKOTLP(n, 5)
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
		if err != nil {
			t.Fatalf("%d spans: ptrace cannot decode: %v", n, err)
		}
		if got := td.SpanCount(); got != n {
			t.Fatalf("decoded %d spans, want %d", got, n)
		}
		rs := td.ResourceSpans().At(0)
		if got := rs.Resource().Attributes().Len(); got != 8 {
			t.Errorf("%d resource attributes, want 8", got)
		}
		spans := rs.ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			if got := spans.At(i).Attributes().Len(); got != 10 {
				t.Errorf("span %d: %d attributes, want 10", i, got)
			}
		}
		if n == 100 {
			within(t, "bytes per span", float64(len(body))/float64(n), 430, 0.15)
		}
		// As an SDK writes it: every message's fields in ascending order
		// (trace_id first in a span), where pdata writes them in reverse.
		if !ascending(body, 0) {
			t.Errorf("%d spans: fields are not in ascending order", n)
		}
		fromJSON, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(SDKOTLPJSON(n, 5))
		if err != nil {
			t.Fatalf("OTLP/JSON: %v", err)
		}
		if fromJSON.SpanCount() != n {
			t.Errorf("OTLP/JSON has %d spans, want %d", fromJSON.SpanCount(), n)
		}
	}
	f(1)
	f(10)
	f(100)
}

func TestJaegerPostSpans(t *testing.T) {
	var req api_v2.PostSpansRequest
	if err := req.Unmarshal(JaegerPostSpans(10, 4)); err != nil {
		t.Fatalf("not a PostSpansRequest: %v", err)
	}
	if got := len(req.Batch.Spans); got != 10 {
		t.Fatalf("%d spans, want 10", got)
	}
	if req.Batch.Process.ServiceName == "" || len(req.Batch.Process.Tags) != 7 {
		t.Errorf("process %q with %d tags, want a service and 7 tags", req.Batch.Process.ServiceName, len(req.Batch.Process.Tags))
	}
	for i, s := range req.Batch.Spans {
		if len(s.Tags) != 11 { // the 10 attributes and span.kind
			t.Errorf("span %d: %d tags, want 11", i, len(s.Tags))
		}
		if i%2 == 1 && (len(s.References) != 1 || s.References[0].SpanID != req.Batch.Spans[i-1].SpanID) {
			t.Errorf("span %d: references %v, want child of %v", i, s.References, req.Batch.Spans[i-1].SpanID)
		}
	}
}

// Distinct payloads must not share ids, or a backend that deduplicates
// would count less than was sent.
func TestVarietyHasDistinctIDs(t *testing.T) {
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		var spans []zipkinmodel.SpanModel
		if err := json.Unmarshal(EnvoyZipkinJSON(100, seed), &spans); err != nil {
			t.Fatal(err)
		}
		for _, s := range spans {
			id := s.TraceID.String() + s.ID.String()
			if seen[id] {
				t.Fatalf("seed %d repeats span %s", seed, id)
			}
			seen[id] = true
		}
	}
	if !slices.Contains(Protocols, ZipkinJSON) {
		t.Error("Protocols lacks zipkin-json")
	}
}

func BenchmarkEnvoyZipkinJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(EnvoyZipkinJSON(100, 1))))
	for i := range b.N {
		EnvoyZipkinJSON(100, uint64(i))
	}
}

// ascending reports whether the fields of an ExportTraceServiceRequest and
// of its ResourceSpans, ScopeSpans and Spans (depth 0 to 3) are written in
// ascending field-number order.
func ascending(b []byte, depth int) bool {
	last := protowire.Number(0)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < last {
			return false
		}
		last = num
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		// resource_spans(1) → scope_spans(2) → spans(2)
		if typ == protowire.BytesType && depth < 3 && ((depth == 0 && num == 1) || (depth > 0 && num == 2)) {
			v, _ := protowire.ConsumeBytes(b)
			if !ascending(v, depth+1) {
				return false
			}
		}
		b = b[m:]
	}
	return true
}
