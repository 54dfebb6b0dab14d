package translate

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"
)

// zipkinGolden renders a decode result the way a reviewer reads it.
func zipkinGolden(t *testing.T, td ptrace.Traces, rej Rejected) []byte {
	t.Helper()
	raw, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := json.Marshal(rej)
	var out bytes.Buffer
	out.WriteString(`{"rejected":`)
	out.Write(r)
	out.WriteString(`,"traces":`)
	out.Write(raw)
	out.WriteString("}")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	return pretty.Bytes()
}

// TestZipkinGolden decodes every input in testdata/zipkin, picking the
// decoder by sniffing the body as the receiver does.
func TestZipkinGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/zipkin/*.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range inputs {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		n++
		t.Run(filepath.Base(in), func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			decode := ZipkinV2JSON
			if SniffZipkinJSON(body) {
				decode = ZipkinV1JSON
			}
			if got, want := SniffZipkinJSON(body), strings.Contains(in, "v1"); got != want {
				t.Errorf("SniffZipkinJSON = %v, want %v", got, want)
			}
			td, rej, err := decode(body, ZipkinOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(in, ".json")+".golden.json", zipkinGolden(t, td, rej))
			checkSpanInvariants(t, td)
		})
	}
	if n < 6 {
		t.Fatalf("only %d inputs found", n)
	}
}

// checkSpanInvariants holds for every decoder output: valid ids, no two spans
// sharing an id, and a protobuf round trip that keeps everything.
func checkSpanInvariants(t *testing.T, td ptrace.Traces) {
	t.Helper()
	seen := map[[24]byte]bool{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		if _, ok := rss.At(i).Resource().Attributes().Get("service.name"); !ok {
			t.Errorf("resource %d has no service.name", i)
		}
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
					t.Errorf("span %q has an empty id", sp.Name())
				}
				var key [24]byte
				tid, sid := sp.TraceID(), sp.SpanID()
				copy(key[:], tid[:])
				copy(key[16:], sid[:])
				if seen[key] {
					t.Errorf("span id %s forwarded twice", sp.SpanID())
				}
				seen[key] = true
			}
		}
	}
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	back, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(back)
	if !bytes.Equal(raw, raw2) {
		t.Error("protobuf round trip changed the traces")
	}
}

func decodeFile(t *testing.T, name string) ptrace.Traces {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata/zipkin", name))
	if err != nil {
		t.Fatal(err)
	}
	decode := ZipkinV2JSON
	if SniffZipkinJSON(body) {
		decode = ZipkinV1JSON
	}
	td, _, err := decode(body, ZipkinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return td
}

type flatSpan struct {
	service string
	span    ptrace.Span
}

func flatten(td ptrace.Traces) []flatSpan {
	var out []flatSpan
	for _, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				out = append(out, flatSpan{svc.Str(), sp})
			}
		}
	}
	return out
}

// The README's expectations, asserted directly so a careless -update cannot bless a regression.
func TestZipkinFieldExpectations(t *testing.T) {
	t.Run("istio", func(t *testing.T) {
		spans := flatten(decodeFile(t, "envoy-istio-v2.json"))
		if len(spans) != 2 || spans[0].service != "istio-ingressgateway.istio-system" || spans[1].service != "auth-api.auth" {
			t.Fatalf("services: %+v", spans)
		}
		if spans[1].span.ParentSpanID() != spans[0].span.SpanID() || spans[1].span.Kind() != ptrace.SpanKindServer {
			t.Error("SERVER span is not the CLIENT span's child")
		}
		if got := spans[0].span.EndTimestamp() - spans[0].span.StartTimestamp(); got != 5210_000 {
			t.Errorf("duration %d ns", got)
		}
	})
	t.Run("shared span", func(t *testing.T) {
		spans := flatten(decodeFile(t, "envoy-shared-span.json"))
		client, server := spans[0].span, spans[1].span
		if client.SpanID() == server.SpanID() || server.ParentSpanID() != client.SpanID() {
			t.Errorf("client %s, server %s parent %s", client.SpanID(), server.SpanID(), server.ParentSpanID())
		}
		if server.SpanID() != SharedServerSpanID(server.TraceID(), client.SpanID()) {
			t.Error("server id is not the documented derivation")
		}
		if tid := server.TraceID(); tid != pcommon.TraceID([16]byte{8: 0x4e, 0x44, 0x18, 0x24, 0xec, 0x2b, 0x6a, 0x44}) {
			t.Errorf("64-bit trace id %s not in the low half", tid)
		}
		if v, _ := server.Attributes().Get(AttrZipkinSharedSpanID); v.Str() != "e66dc5d5cb9b8ba7" {
			t.Errorf("%s = %q", AttrZipkinSharedSpanID, v.Str())
		}
	})
	t.Run("shared server without its client half", func(t *testing.T) {
		server := flatten(decodeFile(t, "envoy-shared-server-alone.json"))[0].span
		reported := pcommon.SpanID{0x2a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81}
		if server.ParentSpanID() != (pcommon.SpanID{0xf6, 0x6d, 0xc5, 0xd5, 0xcb, 0x9b, 0x8b, 0xa7}) {
			t.Errorf("parent %s, want the shared id", server.ParentSpanID())
		}
		if server.Links().Len() != 1 || server.Links().At(0).SpanID() != reported || server.Links().At(0).TraceID() != server.TraceID() {
			t.Errorf("links %d: the reported parentId %s is not kept as a link", server.Links().Len(), reported)
		}
	})
	t.Run("error message next to otel.status_code", func(t *testing.T) {
		spans := flatten(decodeFile(t, "node-zipkin-exporter.json"))
		db, srv := spans[0].span, spans[1].span
		if db.Status().Code() != ptrace.StatusCodeError || db.Status().Message() != "connect ECONNREFUSED 10.0.3.4:5432" {
			t.Errorf("status %v %q, want ERROR with the error tag's message", db.Status().Code(), db.Status().Message())
		}
		if _, ok := db.Attributes().Get("error"); ok {
			t.Error("error tag kept as an attribute too, though it is the status message")
		}
		if srv.Status().Message() != "internal error" {
			t.Errorf("status message %q, want otel.status_description's", srv.Status().Message())
		}
		if v, _ := srv.Attributes().Get("error"); v.Str() != "connect ECONNREFUSED 10.0.3.4:5432" {
			t.Errorf("error tag %q lost beside otel.status_description", v.Str())
		}
	})
	t.Run("short ids", func(t *testing.T) {
		sp := flatten(decodeFile(t, "short-ids.json"))[0].span
		if sp.TraceID() != pcommon.TraceID([16]byte{15: 2}) || sp.SpanID() != pcommon.SpanID([8]byte{7: 2}) || sp.StartTimestamp() != 1000 {
			t.Errorf("got %s %s %d", sp.TraceID(), sp.SpanID(), sp.StartTimestamp())
		}
	})
	t.Run("lenient numbers", func(t *testing.T) {
		sp := flatten(decodeFile(t, "lenient-numbers.json"))[0].span
		if sp.StartTimestamp() != 1582662767960310000 || sp.EndTimestamp() != 1582662767961810000 {
			t.Errorf("times %d %d", sp.StartTimestamp(), sp.EndTimestamp())
		}
		if sp.Status().Code() != ptrace.StatusCodeError || sp.Events().Len() != 1 || sp.Events().At(0).Timestamp() != 1582662767960400000 {
			t.Error("status or event lost")
		}
		if v, _ := sp.Attributes().Get("network.local.address"); v.Str() != "2001:db8::c001" {
			t.Errorf("ipv6 = %q", v.Str())
		}
	})
	t.Run("missing service", func(t *testing.T) {
		if s := flatten(decodeFile(t, "missing-service.json"))[0].service; s != "image-api.image" {
			t.Errorf("service %q", s)
		}
	})
	t.Run("v1", func(t *testing.T) {
		spans := flatten(decodeFile(t, "zipkin-v1.json"))
		if len(spans) != 2 || spans[0].service != "frontend" || spans[1].service != "backend" {
			t.Fatalf("spans: %+v", spans)
		}
		c, s := spans[0].span, spans[1].span
		if c.Kind() != ptrace.SpanKindClient || s.Kind() != ptrace.SpanKindServer || s.ParentSpanID() != c.SpanID() || c.Events().Len()+s.Events().Len() != 0 {
			t.Error("core annotations not turned into kind and parentage")
		}
		if s.EndTimestamp()-s.StartTimestamp() != 180_000_000 {
			t.Errorf("server duration %d", s.EndTimestamp()-s.StartTimestamp())
		}
		if _, ok := s.Attributes().Get("http.path"); !ok {
			t.Error("backend's binary annotation not on the server span")
		}
	})
}

func TestZipkinRejectsAndErrors(t *testing.T) {
	f := func(body string, wantSpans, wantRejected int, wantErr string) {
		t.Helper()
		td, rej, err := ZipkinV2JSON([]byte(body), ZipkinOptions{})
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want %q", body, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("%s: %v", body, err)
			return
		}
		if td.SpanCount() != wantSpans || rej.Spans != wantRejected {
			t.Errorf("%s: %d spans, %d rejected (%s); want %d, %d", body, td.SpanCount(), rej.Spans, rej.Reason, wantSpans, wantRejected)
		}
	}
	ok := `{"traceId":"1","id":"1"}`
	f(`[]`, 0, 0, "")
	f(` [ `+ok+` , `+ok+` ] `, 2, 0, "")
	f(`[`+ok+`,{"traceId":"1"}]`, 1, 1, "")
	f(`[{"traceId":"1","id":"1","duration":-1}]`, 0, 1, "")
	f(`[{"traceId":"1","id":"1","timestamp":"soon"}]`, 0, 1, "")
	f(`[{"traceId":"1","id":"1","timestamp":1e300}]`, 0, 1, "")
	f(`[{"traceId":"1","id":"1","tags":[]}]`, 0, 1, "")
	f(`[{"traceId":1,"id":"1"}]`, 0, 1, "")
	f(``, 0, 0, "unexpected end of body")
	f(`{}`, 0, 0, "want '['")
	f(`[`+ok+`]x`, 0, 0, "data after the list of spans at offset 26")
	f(`[`+ok+`,{"traceId":"1","id":"1",}]`, 0, 0, "span 1: ")
	f(`[{"traceId":"1","id":"1","x":"\q"}]`, 0, 0, "invalid escape")
	f(`[{"traceId":"1","id":"1","x":"abc}]`, 0, 0, "unterminated string")
	f(`[{"traceId":"1","id":"1","x":tru}]`, 0, 0, "invalid literal")
	f(`[{"traceId":"1","id":"1","x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}]`, 0, 0, "nested deeper than 64")
	f(`[1]`, 0, 0, "span 0: span is not an object")

	_, rej, _ := ZipkinV2JSON([]byte(`[{"traceId":"463ac35c9f6413az","id":"1"}]`), ZipkinOptions{})
	if want := `zipkin v2 json: span 0: field "traceId": invalid hex digit 'z' at offset 28`; rej.Reason != want {
		t.Errorf("reason %q, want %q", rej.Reason, want)
	}
}

func TestSniffZipkinJSON(t *testing.T) {
	f := func(body string, want bool) {
		t.Helper()
		if got := SniffZipkinJSON([]byte(body)); got != want {
			t.Errorf("SniffZipkinJSON(%s) = %v", body, got)
		}
	}
	f(`[{"traceId":"1","id":"1","kind":"CLIENT"}]`, false)
	f(`[{"traceId":"1","id":"1","binaryAnnotations":[]}]`, true)
	f(`[{"traceId":"1","annotations":[{"timestamp":1,"value":"sr"}]}]`, true)
	f(`[{"traceId":"1","annotations":[{"timestamp":1,"value":"x","endpoint":{}}]}]`, true)
	f(`[{"traceId":"1","name":"\"endpoint\":","tags":{"a":"b"}}]`, false)
	f(`[{"traceId":"1","id":"1"}]`, false)
	f(`garbage`, false)
}

// protoBodyFromJSON re-encodes a v2 JSON body as zipkin proto3 with
// zipkin-go, the reference encoder.
func protoBodyFromJSON(t testing.TB, body []byte, littleEndian bool) []byte {
	t.Helper()
	var spans []*zipkinmodel.SpanModel
	if err := json.Unmarshal(body, &spans); err != nil {
		t.Fatal(err)
	}
	raw, err := zipkin_proto3.SpanSerializer{}.Serialize(spans)
	if err != nil {
		t.Fatal(err)
	}
	if !littleEndian {
		return raw
	}
	var list zipkin_proto3.ListOfSpans
	if err := proto.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Spans {
		for _, id := range [][]byte{s.Id, s.ParentId} {
			for l, r := 0, len(id)-1; l < r; l, r = l+1, r-1 {
				id[l], id[r] = id[r], id[l]
			}
		}
	}
	raw, err = proto.Marshal(&list)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The proto decoder must agree with the JSON decoder on the same spans.
func TestZipkinProtoMatchesJSON(t *testing.T) {
	for _, name := range []string{"envoy-istio-v2.json", "envoy-shared-span.json", "envoy-shared-server-alone.json", "node-zipkin-exporter.json", "short-ids.json", "missing-service.json"} {
		for _, le := range []bool{false, true} {
			body, err := os.ReadFile(filepath.Join("testdata/zipkin", name))
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := ZipkinV2JSON(body, ZipkinOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, rej, err := ZipkinProto(protoBodyFromJSON(t, body, le), ZipkinOptions{ProtoIDsLittleEndian: le})
			if err != nil || rej.Spans != 0 {
				t.Fatalf("%s: %v %+v", name, err, rej)
			}
			sortAttrs(got)
			sortAttrs(want)
			if g, w := zipkinGolden(t, got, rej), zipkinGolden(t, want, Rejected{}); !bytes.Equal(g, w) {
				t.Errorf("%s (little-endian %v): proto decodes to\n%s\nJSON to\n%s", name, le, g, w)
			}
		}
	}
}

// sortAttrs orders span attributes by key: proto maps have no order.
func sortAttrs(td ptrace.Traces) {
	for _, sp := range flatten(td) {
		m := map[string]any{}
		for k, v := range sp.span.Attributes().All() {
			m[k] = v.AsRaw()
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sp.span.Attributes().Clear()
		for _, k := range keys {
			_ = sp.span.Attributes().PutEmpty(k).FromRaw(m[k])
		}
	}
}

func TestZipkinProtoRejectsAndErrors(t *testing.T) {
	span := func(s *zipkin_proto3.Span) []byte {
		raw, err := proto.Marshal(&zipkin_proto3.ListOfSpans{Spans: []*zipkin_proto3.Span{s}})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	good := &zipkin_proto3.Span{TraceId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Id: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Timestamp: 1,
		LocalEndpoint: &zipkin_proto3.Endpoint{ServiceName: "svc~", Ipv4: []byte{10, 0, 0, 1}, Ipv6: []byte{1, 2}}}
	f := func(body []byte, wantSpans, wantRejected int, wantErr string) {
		t.Helper()
		td, rej, err := ZipkinProto(body, ZipkinOptions{})
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("error %v, want %q", err, wantErr)
			}
			return
		}
		if err != nil || td.SpanCount() != wantSpans || rej.Spans != wantRejected {
			t.Errorf("%v: %d spans, %d rejected (%s); want %d, %d", err, td.SpanCount(), rej.Spans, rej.Reason, wantSpans, wantRejected)
		}
		if err == nil {
			checkSpanInvariants(t, td)
		}
	}
	f(nil, 0, 0, "")
	f(span(good), 1, 0, "")
	f(append(span(good), span(&zipkin_proto3.Span{TraceId: []byte{1, 2, 3}, Id: good.Id})...), 1, 1, "")
	f(span(&zipkin_proto3.Span{TraceId: good.TraceId}), 0, 1, "")
	f(span(&zipkin_proto3.Span{TraceId: good.TraceId, Id: []byte{1}}), 0, 1, "")
	f(span(&zipkin_proto3.Span{TraceId: make([]byte, 16), Id: good.Id}), 0, 1, "")
	f([]byte{0x0a, 0x05, 0x01}, 0, 0, "span 0: unexpected EOF")
	f([]byte{0x0a, 0x02, 0x0a, 0x05}, 0, 0, "span 0: unexpected EOF")
	f([]byte{0x0a, 0x02, 0x20, 0xff}, 0, 0, "span 0: unexpected EOF")
	f([]byte{0x0a, 0x02, 0x22, 0x00}, 0, 0, "wrong wire type")

	td, _, _ := ZipkinProto(bytes.Replace(span(good), []byte("svc~"), []byte("svc\xff"), 1), ZipkinOptions{})
	sp := flatten(td)[0]
	if sp.service != "svc\uFFFD" {
		t.Errorf("invalid UTF-8 service name kept as %q", sp.service)
	}
	if v, _ := sp.span.Attributes().Get("network.local.address"); v.Str() != "10.0.0.1" {
		t.Errorf("ipv4 = %q", v.Str())
	}
}

// Decoding twice with the pooled decoder must give the same result.
func TestZipkinDecoderReuse(t *testing.T) {
	body, err := os.ReadFile("testdata/zipkin/own-strings-status.json")
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := ZipkinV2JSON(body, ZipkinOptions{})
	_, _, _ = ZipkinV1JSON([]byte(`[{"traceId":"1","id":"2","name":"other"}]`), ZipkinOptions{})
	b, _, _ := ZipkinV2JSON(body, ZipkinOptions{})
	if !bytes.Equal(zipkinGolden(t, a, Rejected{}), zipkinGolden(t, b, Rejected{})) {
		t.Error("second decode differs")
	}
}

func TestZipkinManyServices(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 40 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"traceId":"1","id":"` + itoa(i+1) + `","localEndpoint":{"serviceName":"svc` + itoa(i%20) + `"}}`)
	}
	b.WriteString("]")
	td, _, err := ZipkinV2JSON([]byte(b.String()), ZipkinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if td.ResourceSpans().Len() != 20 {
		t.Fatalf("%d resources, want 20", td.ResourceSpans().Len())
	}
	for i, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		if svc.Str() != "svc"+itoa(i) || rs.ScopeSpans().At(0).Spans().Len() != 2 {
			t.Errorf("resource %d: %s with %d spans", i, svc.Str(), rs.ScopeSpans().At(0).Spans().Len())
		}
	}
}
