package translate

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

var (
	jStart = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	jTrace = model.NewTraceID(0x0102030405060708, 0x090a0b0c0d0e0f10)
)

func jSpan(id uint64, name string, tags ...model.KeyValue) *model.Span {
	return &model.Span{
		TraceID: jTrace, SpanID: model.NewSpanID(id), OperationName: name,
		StartTime: jStart, Duration: 1500*time.Microsecond + 7, Tags: tags,
	}
}

// jaegerGolden renders a conversion as reviewers read it: pdata's OTLP JSON
// plus what was rejected.
func jaegerGolden(t *testing.T, td ptrace.Traces, rej Rejected) []byte {
	t.Helper()
	otlp, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, otlp, "", "  "); err != nil {
		t.Fatal(err)
	}
	rejJSON, _ := json.MarshalIndent(rej, "", "  ")
	out.WriteString("\n// rejected: ")
	out.Write(rejJSON)
	out.WriteString("\n")
	return out.Bytes()
}

func TestJaegerBatchGolden(t *testing.T) {
	withProc := func(s *model.Span, p *model.Process) *model.Span { s.Process = p; return s }
	procB := &model.Process{ServiceName: "cart", Tags: []model.KeyValue{model.String("ip", "10.0.0.2")}}
	procBCopy := &model.Process{ServiceName: "cart", Tags: []model.KeyValue{model.String("ip", "10.0.0.2")}}

	full := jSpan(0xa1, "GET /checkout",
		model.String("span.kind", "server"),
		model.String("otel.scope.name", "io.opentelemetry.servlet"),
		model.String("otel.scope.version", "2.1"),
		model.Bool("error", true),
		model.String("otel.status_description", "upstream reset"),
		model.String("w3c.tracestate", "vendor=abc"),
		model.Int64("http.status_code", 503),
		model.Float64("sample.ratio", 0.25),
		model.Binary("raw", []byte{0, 1, 2}),
		model.KeyValue{Key: "odd", VType: model.ValueType(9)},
	)
	full.Flags = model.SampledFlag | model.DebugFlag
	full.References = []model.SpanRef{
		model.NewFollowsFromRef(model.NewTraceID(0, 0x77), model.NewSpanID(0x99)),
		model.NewChildOfRef(jTrace, model.NewSpanID(0xa0)),
		model.NewChildOfRef(jTrace, model.NewSpanID(0xa2)),
	}
	full.Logs = []model.Log{
		{Timestamp: jStart.Add(time.Millisecond), Fields: []model.KeyValue{model.String("event", "retry"), model.Int64("attempt", 2)}},
		{Timestamp: jStart.Add(2 * time.Millisecond), Fields: []model.KeyValue{model.String("message", "no event field")}},
		{Timestamp: jStart.Add(3 * time.Millisecond)},
	}

	followsOnly := jSpan(0xb1, "consume")
	followsOnly.References = []model.SpanRef{model.NewFollowsFromRef(jTrace, model.NewSpanID(0xb0))}

	badStart := jSpan(0xc3, "before 1970")
	badStart.StartTime = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)
	badDuration := jSpan(0xc4, "ends before 1970")
	badDuration.Duration = -time.Duration(jStart.UnixNano()) - 1
	zeroTrace := jSpan(0xc1, "zero trace")
	zeroTrace.TraceID = model.TraceID{}

	tests := []struct {
		name  string
		batch *model.Batch
	}{
		{"full_span", &model.Batch{
			Process: &model.Process{ServiceName: "frontend", Tags: []model.KeyValue{
				model.String("hostname", "web-1"), model.String("jaeger.version", "Go-2.30.0"),
				model.Int64("pid", 4242), model.Bool("canary", false),
			}},
			Spans: []*model.Span{full},
		}},
		{"span_process_overrides_batch", &model.Batch{
			Process: &model.Process{ServiceName: "frontend"},
			Spans: []*model.Span{
				jSpan(1, "in batch process"),
				withProc(jSpan(2, "own process"), procB),
				withProc(jSpan(3, "equal process, other pointer"), procBCopy),
				jSpan(4, "batch process again", model.String("otel.scope.name", "lib")),
			},
		}},
		{"status_rules", &model.Batch{
			Process: &model.Process{ServiceName: "api"},
			Spans: []*model.Span{
				jSpan(1, "otel ok", model.String("otel.status_code", "ok"), model.String("otel.status_description", "fine")),
				jSpan(2, "http 500", model.Int64("http.status_code", 500), model.String("http.status_message", "Internal")),
				jSpan(3, "http 404 client", model.String("span.kind", "client"), model.String("http.status_code", "404")),
				jSpan(4, "http 404 server", model.String("span.kind", "server"), model.Int64("http.status_code", 404)),
				jSpan(5, "error false stays a tag", model.Bool("error", false)),
				jSpan(6, "error string stays a tag", model.String("error", "true")),
				jSpan(7, "scope version without name stays a tag", model.String("otel.scope.version", "1")),
			},
		}},
		{"references", &model.Batch{
			Process: &model.Process{ServiceName: "worker"},
			Spans:   []*model.Span{followsOnly},
		}},
		{"rejected_and_no_process", &model.Batch{
			Spans: []*model.Span{
				zeroTrace,
				{TraceID: jTrace, OperationName: "zero span id", StartTime: jStart},
				badStart,
				badDuration,
				nil,
				{TraceID: jTrace, SpanID: 5, OperationName: "no start time"},
				jSpan(6, "kept"),
			},
		}},
		{"nil_batch", nil},
		{"no_service_name_marker", &model.Batch{
			Process: &model.Process{ServiceName: "OTLPResourceNoServiceName", Tags: []model.KeyValue{model.String("dropped", "as the Collector")}},
			Spans:   []*model.Span{jSpan(1, "x")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			td, rej := JaegerBatch(tt.batch)
			got := jaegerGolden(t, td, rej)
			checkGolden(t, filepath.Join("testdata", "jaeger", tt.name+".json"), got)
		})
	}
}

func TestJaegerBatchRejects(t *testing.T) {
	f := func(span *model.Span, wantReason string) {
		t.Helper()
		td, rej := JaegerBatch(&model.Batch{Spans: []*model.Span{jSpan(1, "good"), span}})
		if td.SpanCount() != 1 || rej.Spans != 1 || rej.Reason != wantReason {
			t.Fatalf("kept %d, rejected %+v; want 1 kept and reason %q", td.SpanCount(), rej, wantReason)
		}
	}
	s := jSpan(2, "x")
	s.TraceID = model.TraceID{}
	f(s, "jaeger: span 1: trace id is zero")
	s = jSpan(0, "x")
	f(s, "jaeger: span 1: span id is zero")
	s = jSpan(2, "x")
	s.StartTime = time.Unix(-1, 0)
	f(s, "jaeger: span 1: start time 1969-12-31T23:59:59Z out of range")
	s = jSpan(2, "x")
	s.Duration = time.Duration(1<<63 - 1)
	f(s, "jaeger: span 1: duration 2562047h47m16.854775807s ends out of range")
}

// The translator deletes scope tags from the spans it is given and converts
// times with UnixNano, which wraps around before 1678; JaegerBatch gives it
// copies with safe times, and calls it once per process so that resources
// keep the batch's order.
func TestJaegerBatchLeavesBatchAlone(t *testing.T) {
	scoped := jSpan(1, "scoped", model.String("otel.scope.name", "lib"), model.String("k", "v"))
	scoped.StartTime = time.Time{}
	scoped.Logs = []model.Log{
		{Timestamp: time.Unix(-5, 0), Fields: []model.KeyValue{model.String("event", "before 1970")}},
		{Fields: []model.KeyValue{model.String("event", "no time")}},
	}
	batch := &model.Batch{Process: &model.Process{ServiceName: "svc-0"}, Spans: []*model.Span{scoped}}
	for i := 1; i < 10; i++ {
		s := jSpan(uint64(i+1), "own process", model.String("otel.scope.name", "lib"))
		s.Process = &model.Process{ServiceName: "svc-" + strconv.Itoa(i)}
		batch.Spans = append(batch.Spans, s)
	}
	// Equal processes (0 == -0) whose bytes, and so hashes, differ.
	zero := jSpan(20, "float tag 0")
	zero.Process = &model.Process{ServiceName: "svc-10", Tags: []model.KeyValue{model.Float64("f", 0)}}
	negZero := jSpan(21, "float tag -0")
	negZero.Process = &model.Process{ServiceName: "svc-10", Tags: []model.KeyValue{model.Float64("f", math.Copysign(0, -1))}}
	batch.Spans = append(batch.Spans, zero, negZero)
	wire := func() []byte {
		b, err := (&api_v2.PostSpansRequest{Batch: *batch}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := wire()
	td, _ := JaegerBatch(batch)
	if !bytes.Equal(before, wire()) {
		t.Fatal("JaegerBatch modified the batch it was given")
	}
	again, _ := JaegerBatch(batch)
	first, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	second, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(again)
	if !bytes.Equal(first, second) {
		t.Fatalf("a second conversion differs\nfirst  %s\nsecond %s", first, second)
	}
	if n := td.ResourceSpans().Len(); n != 11 {
		t.Fatalf("%d resources, want one per distinct process (11)", n)
	}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		svc, _ := td.ResourceSpans().At(i).Resource().Attributes().Get("service.name")
		if want := "svc-" + strconv.Itoa(i); svc.Str() != want {
			t.Fatalf("resource %d is %q, want %q (order of first appearance)", i, svc.Str(), want)
		}
	}
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if sp.StartTimestamp() != 0 || sp.EndTimestamp() != pcommon.Timestamp(scoped.Duration) {
		t.Errorf("absent start time: start %d end %d, want 0 and the duration", sp.StartTimestamp(), sp.EndTimestamp())
	}
	for i := 0; i < sp.Events().Len(); i++ {
		if ev := sp.Events().At(i); ev.Timestamp() != 0 {
			t.Errorf("event %q at %d, want 0", ev.Name(), ev.Timestamp())
		}
	}
}

// The translator follows the Collector's default HTTP conventions: the
// deprecated http.status_code is carried as http.response.status_code, both
// ways, and still sets the span status.
func TestJaegerHTTPStatusCodeKey(t *testing.T) {
	td, _ := JaegerBatch(&model.Batch{Spans: []*model.Span{
		jSpan(1, "x", model.String("span.kind", "server"), model.Int64("http.status_code", 503)),
	}})
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	if v, ok := sp.Attributes().Get("http.response.status_code"); !ok || v.Int() != 503 || sp.Status().Code() != ptrace.StatusCodeError {
		t.Fatalf("attributes %v, status %v", sp.Attributes().AsRaw(), sp.Status().Code())
	}
	out := ptrace.NewTraces()
	osp := out.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	osp.SetTraceID(pcommon.TraceID{1})
	osp.SetSpanID(pcommon.SpanID{2})
	osp.Attributes().PutStr("http.status_code", "200")
	tags := JaegerBatches(out)[0].Spans[0].Tags
	if len(tags) != 1 || tags[0].Key != "http.response.status_code" || tags[0].VStr != "200" {
		t.Fatalf("tags %+v", tags)
	}
}

// jaegerRoundTripTraces holds what Jaeger can carry, arranged as JaegerBatch
// arranges it (service.name first, one ScopeSpans per scope).
func jaegerRoundTripTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for r, svc := range []string{"frontend", "cart"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutInt("pid", int64(100+r))
		rs.Resource().Attributes().PutStr("host.name", "node-1")
		for s, scope := range []string{"", "otelhttp"} {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(scope)
			if scope != "" {
				ss.Scope().SetVersion("0.62.0")
			}
			for i := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{0xff, byte(r), 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, byte(i)})
				sp.SetSpanID(pcommon.SpanID{0x80, byte(r), byte(s), byte(i), 1, 2, 3, 4})
				if i > 0 {
					sp.SetParentSpanID(pcommon.SpanID{0x80, byte(r), byte(s), 0, 1, 2, 3, 4})
				}
				sp.SetName("op")
				sp.SetKind(ptrace.SpanKind(i % 6))
				sp.SetFlags(uint32(i % 2))
				sp.SetStartTimestamp(pcommon.Timestamp(1_764_064_800_123_456_789 + i))
				sp.SetEndTimestamp(pcommon.Timestamp(1_764_064_800_123_456_789 + 1_000_001*i))
				sp.TraceState().FromRaw([]string{"", "a=1", "b=2,c=3"}[i])
				a := sp.Attributes()
				a.PutStr("s", "v")
				a.PutInt("i", -7)
				a.PutDouble("d", 2.5)
				a.PutBool("b", true)
				a.PutEmptyBytes("raw").FromRaw([]byte{0, 0xff})
				switch i {
				case 1:
					sp.Status().SetCode(ptrace.StatusCodeError)
					sp.Status().SetMessage("boom")
				case 2:
					sp.Status().SetCode(ptrace.StatusCodeOk)
				}
				ev := sp.Events().AppendEmpty()
				ev.SetName("cache miss")
				ev.SetTimestamp(pcommon.Timestamp(1_764_064_800_123_456_999))
				ev.Attributes().PutStr("key", "k1")
				sp.Events().AppendEmpty().SetTimestamp(pcommon.Timestamp(1_764_064_800_123_457_000))
				for _, ref := range []string{"follows_from", "child_of"} {
					l := sp.Links().AppendEmpty()
					l.SetTraceID(pcommon.TraceID{0xee, byte(i)})
					l.SetSpanID(pcommon.SpanID{0xdd, byte(len(ref))})
					l.Attributes().PutStr("opentracing.ref_type", ref)
				}
			}
		}
	}
	return td
}

func TestJaegerRoundTrip(t *testing.T) {
	td := jaegerRoundTripTraces()
	batches := JaegerBatches(td)
	if len(batches) != 2 {
		t.Fatalf("%d batches, want one per resource", len(batches))
	}
	got := ptrace.NewTraces()
	for _, b := range batches {
		// Through the wire as the jaeger-grpc exporter sends it.
		req := api_v2.PostSpansRequest{Batch: *b}
		wire, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var back api_v2.PostSpansRequest
		if err := back.Unmarshal(wire); err != nil {
			t.Fatal(err)
		}
		part, rej := JaegerBatch(&back.Batch)
		if rej.Spans != 0 {
			t.Fatalf("rejected %+v", rej)
		}
		part.ResourceSpans().MoveAndAppendTo(got.ResourceSpans())
	}
	want, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	have, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(got)
	if !bytes.Equal(want, have) {
		t.Fatalf("round trip differs\nwant %s\ngot  %s", want, have)
	}
}

func TestJaegerBatchesTags(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{2})
	sp.SetParentSpanID(pcommon.SpanID{3})
	sp.Attributes().PutEmptyMap("m").PutStr("k", "v")
	l := sp.Links().AppendEmpty() // the parent again, as a follows_from link
	l.SetTraceID(pcommon.TraceID{1})
	l.SetSpanID(pcommon.SpanID{3})

	b := JaegerBatches(td)
	if len(b) != 1 || b[0].Process.ServiceName != "OTLPResourceNoServiceName" {
		t.Fatalf("process %+v", b[0].Process)
	}
	js := b[0].Spans[0]
	if len(js.References) != 1 || js.References[0].RefType != model.FollowsFrom {
		t.Fatalf("references %+v: want the parent once, typed by its link", js.References)
	}
	if len(js.Tags) != 1 || js.Tags[0].VStr != `{"k":"v"}` {
		t.Fatalf("tags %+v: want the map as JSON", js.Tags)
	}
}

func jaegerBenchBatch() *model.Batch {
	b := &model.Batch{Process: &model.Process{ServiceName: "frontend", Tags: []model.KeyValue{
		model.String("hostname", "web-1"), model.String("ip", "10.0.0.1"), model.String("jaeger.version", "Go-2.30.0"),
	}}}
	for i := range 100 {
		s := jSpan(uint64(i+1), "HTTP GET /api/cart/items",
			model.String("span.kind", "server"), model.String("http.method", "GET"),
			model.String("http.url", "/api/cart/items"), model.Int64("http.status_code", 200),
			model.String("component", "net/http"), model.String("peer.address", "10.42.7.19"),
			model.Bool("sampler.param", true), model.String("sampler.type", "const"),
			model.Int64("response_size", 1832), model.String("guid:x-request-id", "627cc493-f310-47de"))
		s.References = []model.SpanRef{model.NewChildOfRef(jTrace, model.NewSpanID(0xffff))}
		s.Flags = 1
		b.Spans = append(b.Spans, s)
	}
	return b
}

func BenchmarkJaegerBatch(b *testing.B) {
	batch := jaegerBenchBatch()
	req := api_v2.PostSpansRequest{Batch: *batch}
	b.SetBytes(int64(req.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if td, _ := JaegerBatch(batch); td.SpanCount() != 100 {
			b.Fatal(td.SpanCount())
		}
	}
}

func BenchmarkJaegerBatches(b *testing.B) {
	td, _ := JaegerBatch(jaegerBenchBatch())
	req := api_v2.PostSpansRequest{Batch: *jaegerBenchBatch()}
	b.SetBytes(int64(req.Size()))
	b.ReportAllocs()
	for b.Loop() {
		if out := JaegerBatches(td); len(out[0].Spans) != 100 {
			b.Fatal(len(out[0].Spans))
		}
	}
}
