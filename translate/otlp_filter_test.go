package translate

import (
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestFilterOTLP: one span with a bad id costs only itself; the rest is
// forwarded and decodes the way the Collector would decode it.
func TestFilterOTLP(t *testing.T) {
	good := func(i byte) *tracepb.Span {
		return &tracepb.Span{TraceId: make16(i), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, i}, Name: "ok"}
	}
	f := func(name string, spans []*tracepb.Span, wantKept, wantRejected int, wantReason string) {
		t.Helper()
		req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "svc"}}}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
		}}}
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		out, rej, err := FilterOTLP(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rej.Spans != wantRejected || !strings.Contains(rej.Reason, wantReason) {
			t.Errorf("%s: rejected %d (%q), want %d naming %q", name, rej.Spans, rej.Reason, wantRejected, wantReason)
		}
		counts, err := ScanOTLP(out, nil)
		if err != nil {
			t.Fatalf("%s: filtered request still refused: %v", name, err)
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out)
		if err != nil {
			t.Fatalf("%s: pdata refuses the filtered request: %v", name, err)
		}
		kept := 0
		for _, c := range counts {
			kept += c.Spans
		}
		if td.SpanCount() != wantKept || kept != wantKept {
			t.Errorf("%s: kept %d spans (counts %v), want %d", name, td.SpanCount(), counts, wantKept)
		}
	}
	bad := good(9)
	bad.SpanId = []byte{1, 2, 3}
	badTrace := good(8)
	badTrace.TraceId = []byte{1}
	badParent := good(7)
	badParent.ParentSpanId = []byte{1, 2}
	f("all good", []*tracepb.Span{good(1), good(2)}, 2, 0, "")
	f("short span id", []*tracepb.Span{good(1), bad, good(2)}, 2, 1, "spans[1]: span_id: length 3, want 8")
	f("three bad", []*tracepb.Span{badTrace, good(1), badParent, bad}, 1, 3, "spans[0]: trace_id")
	f("all bad", []*tracepb.Span{bad}, 0, 1, "span_id")
}

func TestFilterOTLPRefusesBrokenFraming(t *testing.T) {
	for _, data := range [][]byte{{0x0a, 0x05, 0x01}, {0x0a}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, _, err := FilterOTLP(data); err == nil {
			t.Errorf("FilterOTLP(%x) accepted a truncated request", data)
		}
	}
}

func make16(i byte) []byte {
	b := make([]byte, 16)
	b[15] = i
	b[0] = 1
	return b
}
