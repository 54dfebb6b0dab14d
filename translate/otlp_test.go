package translate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"
)

// Wire-building helpers: a message is the concatenation of its fields.
func pbMsg(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

func pbLen(num protowire.Number, payload ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, pbMsg(payload...))
}

func pbStr(num protowire.Number, s string) []byte { return pbLen(num, []byte(s)) }

func pbVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func pbFixed64(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func pbFixed32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func pbKV(key string, value ...[]byte) []byte {
	return pbMsg(pbStr(1, key), pbLen(2, value...))
}

// pbRequest wraps spans (already encoded Span messages) of one service.
func pbRequest(service string, spans ...[]byte) []byte {
	var ss [][]byte
	for _, s := range spans {
		ss = append(ss, pbLen(2, s))
	}
	return pbLen(1, // resource_spans
		pbLen(1, pbLen(1, pbKV("service.name", pbStr(1, service)))),
		pbLen(2, ss...))
}

var (
	tid16 = bytes.Repeat([]byte{1}, 16)
	sid8  = bytes.Repeat([]byte{2}, 8)
)

func pbSpan(extra ...[]byte) []byte {
	return pbMsg(append([][]byte{pbLen(1, tid16), pbLen(2, sid8), pbStr(5, "GET /"),
		pbFixed64(7, 1), pbFixed64(8, 2)}, extra...)...)
}

// nested returns an AnyValue with depth array levels around a string.
func nested(depth int) []byte {
	v := pbStr(1, "leaf")
	for range depth {
		v = pbLen(5, pbLen(1, v))
	}
	return v
}

func TestScanOTLPAccepts(t *testing.T) {
	f := func(name string, data []byte, want []ServiceCount) {
		t.Helper()
		got, err := ScanOTLP(data, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: counts %v, want %v", name, got, want)
		}
		checkAgainstPdata(t, data, got, err)
	}
	f("empty request", nil, nil)
	f("one span", pbRequest("frontend", pbSpan()), []ServiceCount{{"frontend", 1}})
	f("same service in two resources is merged",
		pbMsg(pbRequest("a", pbSpan(), pbSpan()), pbRequest("b", pbSpan()), pbRequest("a", pbSpan())),
		[]ServiceCount{{"a", 3}, {"b", 1}})
	f("no service.name", pbLen(1, pbLen(2, pbLen(2, pbSpan()))), []ServiceCount{{FallbackServiceName, 1}})
	f("empty service.name", pbRequest("", pbSpan()), []ServiceCount{{FallbackServiceName, 1}})
	f("service.name not a string",
		pbLen(1, pbLen(1, pbLen(1, pbKV("service.name", pbVarint(3, 7)))), pbLen(2, pbLen(2, pbSpan()))),
		[]ServiceCount{{FallbackServiceName, 1}})
	f("first service.name wins",
		pbLen(1, pbLen(1, pbLen(1, pbKV("service.name", pbStr(1, "x"))), pbLen(1, pbKV("service.name", pbStr(1, "y")))),
			pbLen(2, pbLen(2, pbSpan()))),
		[]ServiceCount{{"x", 1}})
	f("service.name after the spans",
		pbLen(1, pbLen(2, pbLen(2, pbSpan())), pbLen(1, pbLen(1, pbKV("service.name", pbStr(1, "late"))))),
		[]ServiceCount{{"late", 1}})
	f("resource without spans is not counted", pbRequest("idle"), nil)
	f("empty ids are unset, not malformed", pbRequest("s", pbMsg(pbLen(1), pbLen(2), pbLen(4))), []ServiceCount{{"s", 1}})
	f("unknown fields of every wire type are skipped",
		pbRequest("s", pbSpan(pbVarint(99, 1), pbFixed32(100, 1), pbFixed64(101, 1), pbStr(102, "x"))),
		[]ServiceCount{{"s", 1}})
	f("invalid UTF-8 passes as pdata lets it", pbRequest("s\xff", pbSpan(pbStr(5, "\xc3("))), []ServiceCount{{"s\xff", 1}})
	f("legacy instrumentation_library_spans counted",
		pbLen(1, pbLen(1000, pbLen(2, pbSpan()), pbLen(2, pbSpan()))), []ServiceCount{{FallbackServiceName, 2}})
	f("legacy ignored once scope_spans present",
		pbLen(1, pbLen(1000, pbLen(2, pbSpan())), pbLen(2)), nil)
	f("nesting at pdata's limit", pbRequest("s", pbSpan(pbLen(9, pbKV("deep", nested(49))))), []ServiceCount{{"s", 1}})
	f("full span", pbRequest("s", pbSpan(pbStr(3, "a=b"), pbLen(4, sid8), pbFixed32(16, 1), pbVarint(6, 2),
		pbLen(9, pbKV("k", pbLen(6, pbLen(1, pbKV("in", pbFixed64(4, 0)))))), pbVarint(10, 1),
		pbLen(11, pbFixed64(1, 5), pbStr(2, "ev"), pbLen(3, pbKV("e", pbLen(7, []byte{0})))), pbVarint(12, 1),
		pbLen(13, pbLen(1, tid16), pbLen(2, sid8), pbStr(3, "x"), pbLen(4, pbKV("l", pbVarint(2, 1))), pbFixed32(6, 1)),
		pbLen(15, pbStr(2, "boom"), pbVarint(3, 2)))), []ServiceCount{{"s", 1}})
}

func TestScanOTLPRejects(t *testing.T) {
	f := func(name string, data []byte, wantErr string) {
		t.Helper()
		_, err := ScanOTLP(data, nil)
		if err == nil || err.Error() != wantErr {
			t.Errorf("%s: error %v\nwant %s", name, err, wantErr)
			return
		}
		checkAgainstPdata(t, data, nil, err)
	}
	twoSpans := func(bad []byte) []byte { return pbRequest("s", pbSpan(), bad) }
	f("span id of 5 bytes", twoSpans(pbSpan(pbLen(2, []byte("12345")))),
		"otlp: resource_spans[0].scope_spans[0].spans[1].span_id: length 5, want 8 (offset 140)")
	f("trace id of 8 bytes", pbRequest("s", pbSpan(pbLen(1, sid8))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].trace_id: length 8, want 16 (offset 84)")
	f("parent id of 16 bytes", pbRequest("s", pbSpan(pbLen(4, tid16))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].parent_span_id: length 16, want 8 (offset 84)")
	f("link span id", pbRequest("s", pbSpan(pbLen(13, pbLen(2, []byte{1})))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].links[0].span_id: length 1, want 8 (offset 86)")
	f("truncated varint", []byte{0x0a, 0x80},
		"otlp: truncated varint (offset 1)")
	f("length past end", []byte{0x0a, 0x05, 0x00},
		"otlp: length 5 past end of message (1 bytes left) (offset 2)")
	f("wrong wire type for span name", pbRequest("s", pbSpan(pbVarint(5, 1))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].name: wire type 0, want 2 (offset 82)")
	f("wrong wire type for start time", pbRequest("s", pbSpan(pbFixed32(7, 1))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano: wire type 5, want 1 (offset 82)")
	f("field number 0", []byte{0x02, 0x00}, "otlp: invalid field number 0 (offset 0)")
	f("group wire type", pbRequest("s", pbSpan([]byte{0xa3, 0x06, 0xa4, 0x06})),
		"otlp: resource_spans[0].scope_spans[0].spans[0]: group wire type 3 (field 100) (offset 82)")
	f("field number overflowing int32", protowire.AppendVarint(nil, uint64(1<<31)<<3|2),
		"otlp: invalid field number 2147483648 (offset 0)")
	f("wire type 7", []byte{0x0f}, "otlp: invalid wire type 7 (offset 0)")
	f("malformed unknown field", pbRequest("s", pbSpan([]byte{0xa2, 0x06, 0x09})),
		"otlp: resource_spans[0].scope_spans[0].spans[0]: length 9 past end of message (0 bytes left) (offset 85)")
	f("truncated fixed64", pbRequest("s", pbMsg(pbLen(1, tid16), []byte{0x39, 1, 2})),
		"otlp: resource_spans[0].scope_spans[0].spans[0]: truncated fixed64 (offset 48)")
	f("nesting past pdata's limit", pbRequest("s", pbSpan(pbLen(9, pbKV("deep", nested(50))))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].attributes[0].value"+
			strings.Repeat(".array_value.values[0]", 49)+".array_value: nesting deeper than 100 (offset 334)")
	f("bad attribute value wire type", pbRequest("s", pbSpan(pbLen(9, pbKV("k", pbFixed32(3, 1))))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].attributes[0].value.int_value: wire type 5, want 0 (offset 89)")
	f("bad resource attribute", pbLen(1, pbLen(1, pbLen(1, pbKV("k", pbLen(6, pbLen(1, []byte{0x0a, 0x01})))))),
		"otlp: resource_spans[0].resource.attributes[0].value.kvlist_value.values[0]: length 1 past end of message (0 bytes left) (offset 17)")
	f("bad status code", pbRequest("s", pbSpan(pbLen(15, pbStr(3, "x")))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].status.code: wire type 2, want 0 (offset 84)")
	f("bad event time", pbRequest("s", pbSpan(pbLen(11, pbVarint(1, 1)))),
		"otlp: resource_spans[0].scope_spans[0].spans[0].events[0].time_unix_nano: wire type 0, want 1 (offset 84)")
	f("bad scope", pbLen(1, pbLen(2, pbLen(1, pbVarint(1, 1)))),
		"otlp: resource_spans[0].scope_spans[0].scope.name: wire type 0, want 2 (offset 6)")
	f("bad entity ref", pbLen(1, pbLen(1, pbLen(3, pbVarint(2, 1)))),
		"otlp: resource_spans[0].resource.entity_refs[0].type: wire type 0, want 2 (offset 6)")
	f("second resource_spans malformed", pbMsg(pbRequest("s", pbSpan()), pbLen(1, pbVarint(3, 1))),
		"otlp: resource_spans[1].schema_url: wire type 0, want 2 (offset 84)")
}

// checkAgainstPdata asserts ScanOTLP's verdict is the Collector's: pdata's
// ExportRequest unmarshal (the one that migrates legacy fields) accepts iff
// ScanOTLP did, except where ScanOTLP is documented as stricter, and the
// counts computed from the decoded request equal ScanOTLP's.
func checkAgainstPdata(t *testing.T, data []byte, counts []ServiceCount, scanErr error) {
	t.Helper()
	req := ptraceotlp.NewExportRequest()
	pdataErr := req.UnmarshalProto(data)
	switch {
	case scanErr == nil && pdataErr != nil:
		t.Fatalf("ScanOTLP accepted what pdata refuses (%v): %x", pdataErr, data)
	case scanErr != nil && pdataErr == nil:
		var e *otlpError
		if !errors.As(scanErr, &e) || !e.stricter {
			t.Fatalf("ScanOTLP refused what pdata accepts (%v): %x", scanErr, data)
		}
	case scanErr == nil:
		want, _ := CountTraces(req.Traces(), nil)
		if !slices.Equal(counts, want) {
			t.Fatalf("counts %v, pdata says %v: %x", counts, want, data)
		}
	}
}

func TestScanOTLPStricterThanPdata(t *testing.T) {
	f := func(name string, data []byte) {
		t.Helper()
		_, err := ScanOTLP(data, nil)
		var e *otlpError
		if !errors.As(err, &e) || !e.stricter {
			t.Fatalf("%s: error %v, want a stricter-than-pdata refusal", name, err)
		}
		if err := ptraceotlp.NewExportRequest().UnmarshalProto(data); err != nil {
			t.Fatalf("%s: pdata refuses it too (%v): not stricter", name, err)
		}
	}
	// pdata refuses a group that ends its message (io.ErrUnexpectedEOF), so the group goes first.
	f("unknown group", pbRequest("s", pbMsg([]byte{0xa3, 0x06, 0xa4, 0x06}, pbSpan())))
	f("field number above 2^29-1", protowire.AppendVarint(protowire.AppendVarint(nil, uint64(1<<30)<<3), 1))
	f("10-byte varint overflowing", pbRequest("s", pbSpan(append([]byte{0x30}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f))))
}

func TestScanOTLPSDKRequest(t *testing.T) {
	td := sdkTraces(3, 50)
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := ScanOTLP(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []ServiceCount{{"checkout-0", 50}, {"checkout-1", 50}, {"checkout-2", 50}}
	if !slices.Equal(counts, want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	checkAgainstPdata(t, data, counts, nil)

	// A pooled counts slice: the names left past len are reused, nothing allocated.
	pooled := counts[:0]
	if n := testing.AllocsPerRun(20, func() { pooled, _ = ScanOTLP(data, pooled[:0]) }); n != 0 {
		t.Fatalf("ScanOTLP allocates %.0f times per request with a pooled counts slice", n)
	}
	// Earlier entries are neither merged into nor lost, also on error.
	prior := []ServiceCount{{"checkout-0", 7}}
	got, _ := ScanOTLP(data, prior)
	if !slices.Equal(got, append([]ServiceCount{{"checkout-0", 7}}, want...)) {
		t.Fatalf("appending to prior counts: %v", got)
	}
	got, err = ScanOTLP(data[:len(data)-1], prior)
	if err == nil || !slices.Equal(got, prior) {
		t.Fatalf("truncated request: counts %v, error %v", got, err)
	}
}

func TestTracesToOTLPIsAnExportRequest(t *testing.T) {
	td := sdkTraces(2, 3)
	prefix := []byte("keep")
	buf, counts, spans := TracesToOTLP(td, prefix, nil)
	want, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, append([]byte("keep"), want...)) {
		t.Fatal("TracesToOTLP bytes differ from ptraceotlp's ExportRequest encoding")
	}
	if spans != 6 || !slices.Equal(counts, []ServiceCount{{"checkout-0", 3}, {"checkout-1", 3}}) {
		t.Fatalf("spans %d counts %v", spans, counts)
	}
	scanned, err := ScanOTLP(buf[4:], nil)
	if err != nil || !slices.Equal(scanned, counts) {
		t.Fatalf("ScanOTLP of TracesToOTLP: %v, %v", scanned, err)
	}
}

func TestOTLPJSON(t *testing.T) {
	f := func(body string, wantCounts []ServiceCount, wantErr bool) {
		t.Helper()
		proto, counts, spans, err := OTLPJSON([]byte(body), nil)
		if (err != nil) != wantErr {
			t.Fatalf("%s: error %v", body, err)
		}
		if err != nil {
			return
		}
		if !slices.Equal(counts, wantCounts) {
			t.Fatalf("%s: counts %v, want %v", body, counts, wantCounts)
		}
		total := 0
		for _, c := range wantCounts {
			total += c.Spans
		}
		if spans != total {
			t.Fatalf("%s: spans %d, want %d", body, spans, total)
		}
		scanned, err := ScanOTLP(proto, nil)
		if err != nil || !slices.Equal(scanned, counts) {
			t.Fatalf("%s: ScanOTLP of the converted body: %v, %v", body, scanned, err)
		}
	}
	f(`{}`, nil, false)
	f(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
		"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"a"},
		{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060709","name":"b","kind":2,
		"startTimeUnixNano":"1700000000000000000","attributes":[{"key":"n","value":{"intValue":"3"}}]}]}]},
		{"scopeSpans":[{"spans":[{"name":"c"}]}]}]}`,
		[]ServiceCount{{"web", 2}, {FallbackServiceName, 1}}, false)
	// pdata's JSON decoder (unlike its protobuf one) skips the legacy field.
	f(`{"resourceSpans":[{"instrumentationLibrarySpans":[{"spans":[{"name":"legacy"}]}]}]}`, nil, false)
	f(`{"resourceSpans":[`, nil, true)
	f(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102"}]}]}]}`, nil, true)
	f(`[1,2]`, nil, true)
}

func TestOTLPPartialSuccess(t *testing.T) {
	if b := OTLPPartialSuccess(0, ""); len(b) != 0 {
		t.Fatalf("full success body %x, want empty", b)
	}
	if b := OTLPPartialSuccessJSON(0, ""); string(b) != `{"partialSuccess":{}}` {
		t.Fatalf("full success JSON %s, want the Collector's {\"partialSuccess\":{}}", b)
	}
	b := OTLPPartialSuccess(3, "3 spans without trace id")
	resp := ptraceotlp.NewExportResponse()
	if err := resp.UnmarshalProto(b); err != nil {
		t.Fatal(err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedSpans() != 3 || ps.ErrorMessage() != "3 spans without trace id" {
		t.Fatalf("decoded %d %q", ps.RejectedSpans(), ps.ErrorMessage())
	}
	want := `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"3 spans without trace id"}}`
	if got := OTLPPartialSuccessJSON(3, "3 spans without trace id"); string(got) != want {
		t.Fatalf("JSON %s\nwant %s", got, want)
	}
}

// sdkTraces builds what an OpenTelemetry SDK sends: per service 8 resource
// attributes, and spans with 10 attributes (about 430 bytes each).
func sdkTraces(services, spansPer int) ptrace.Traces {
	td := ptrace.NewTraces()
	for s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", fmt.Sprintf("checkout-%d", s))
		ra.PutStr("service.version", "1.4.2")
		ra.PutStr("service.instance.id", "627cc493-f310-47de-96bd-71410b7dec09")
		ra.PutStr("telemetry.sdk.name", "opentelemetry")
		ra.PutStr("telemetry.sdk.language", "go")
		ra.PutStr("telemetry.sdk.version", "1.47.0")
		ra.PutStr("host.name", "checkout-7d9f8b6c5-x2x9q")
		ra.PutStr("k8s.namespace.name", "shop")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
		ss.Scope().SetVersion("0.62.0")
		for i := range spansPer {
			sp := ss.Spans().AppendEmpty()
			var tid [16]byte
			binary.BigEndian.PutUint64(tid[:8], uint64(s+1)*0x9e3779b97f4a7c15)
			binary.BigEndian.PutUint64(tid[8:], uint64(i+1)*0xbf58476d1ce4e5b9)
			sp.SetTraceID(tid)
			sp.SetSpanID([8]byte{byte(s), byte(i), 3, 4, 5, 6, 7, 8})
			sp.SetParentSpanID([8]byte{byte(s), byte(i), 3, 4, 5, 6, 7, 9})
			sp.SetName("HTTP GET /api/cart/items")
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + uint64(i)*1000))
			sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_002_500_000 + uint64(i)*1000))
			sp.SetFlags(1)
			a := sp.Attributes()
			a.PutStr("http.request.method", "GET")
			a.PutStr("url.path", "/api/cart/items")
			a.PutStr("url.scheme", "https")
			a.PutInt("http.response.status_code", 200)
			a.PutStr("server.address", "checkout.shop.svc.cluster.local")
			a.PutInt("server.port", 8080)
			a.PutStr("network.protocol.version", "1.1")
			a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
			a.PutStr("client.address", "10.42.7.19")
			a.PutInt("http.response.body.size", 1832)
			sp.Status().SetCode(ptrace.StatusCodeOk)
		}
	}
	return td
}

func benchRequest(b *testing.B) []byte {
	data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(sdkTraces(1, 100))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkScanOTLP(b *testing.B) {
	data := benchRequest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var counts []ServiceCount
	for b.Loop() {
		var err error
		if counts, err = ScanOTLP(data, counts[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}

// BenchmarkScanOTLPVisit is BenchmarkScanOTLP with a visitor that only
// looks at what it is shown: the receiver's walk with trace health on,
// without the tracker's own cost.
func BenchmarkScanOTLPVisit(b *testing.B) {
	data := benchRequest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var counts []ServiceCount
	var v kindCounter
	for b.Loop() {
		var err error
		if counts, err = ScanOTLPVisit(data, counts[:0], &v); err != nil {
			b.Fatal(err)
		}
	}
	if v.spans != b.N*100 {
		b.Fatalf("visitor shown %d spans, want %d", v.spans, b.N*100)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}

// kindCounter is a visitor that touches each field it is shown.
type kindCounter struct {
	resources, spans, servers, idBytes int
}

func (k *kindCounter) OTLPResource(service, namespace []byte) { k.resources++ }

func (k *kindCounter) OTLPSpan(s OTLPSpan) {
	k.spans++
	if s.Kind == SpanKindServer {
		k.servers++
	}
	k.idBytes += len(s.TraceID) + len(s.SpanID) + len(s.ParentSpanID) + len(s.Attributes)
}

// BenchmarkPdataUnmarshal is the Collector's cost for the same bytes, for the
// ratio to BenchmarkScanOTLP.
func BenchmarkPdataUnmarshal(b *testing.B) {
	data := benchRequest(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}

func BenchmarkOTLPJSON(b *testing.B) {
	body, err := (&ptrace.JSONMarshaler{}).MarshalTraces(sdkTraces(1, 100))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := OTLPJSON(body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
