package translate

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// Seeds live in testdata/fuzz/<Name>/ (made from testdata/zipkin); run e.g.
// go test ./translate -run '^$' -fuzz FuzzZipkinV2JSON -fuzztime 60s

func FuzzZipkinV2JSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		td, rej, err := ZipkinV2JSON(body, ZipkinOptions{})
		if err != nil {
			return
		}
		checkFuzzOutput(t, td)
		var elems []json.RawMessage
		if json.Unmarshal(body, &elems) == nil && td.SpanCount()+rej.Spans != len(elems) {
			t.Errorf("%d spans in, %d kept + %d rejected", len(elems), td.SpanCount(), rej.Spans)
		}
	})
}

func FuzzZipkinV1JSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		td, rej, err := ZipkinV1JSON(body, ZipkinOptions{})
		if err != nil {
			return
		}
		checkFuzzOutput(t, td)
		// a v1 span holding both sides becomes two spans
		var elems []json.RawMessage
		if json.Unmarshal(body, &elems) == nil {
			if n := td.SpanCount() + rej.Spans; n < len(elems) || n > 2*len(elems) {
				t.Errorf("%d spans in, %d kept + %d rejected", len(elems), td.SpanCount(), rej.Spans)
			}
		}
	})
}

func FuzzZipkinProto(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, le := range []bool{false, true} {
			td, rej, err := ZipkinProto(body, ZipkinOptions{ProtoIDsLittleEndian: le})
			if err != nil {
				return
			}
			checkFuzzOutput(t, td)
			n := 0
			for b := body; len(b) > 0; {
				num, typ, m := protowire.ConsumeTag(b)
				m2 := protowire.ConsumeFieldValue(num, typ, b[m:])
				if num == 1 && typ == protowire.BytesType {
					n++
				}
				b = b[m+m2:]
			}
			if td.SpanCount()+rej.Spans != n {
				t.Errorf("%d spans in, %d kept + %d rejected", n, td.SpanCount(), rej.Spans)
			}
		}
	})
}

func checkFuzzOutput(t *testing.T, td ptrace.Traces) {
	t.Helper()
	for _, rs := range td.ResourceSpans().All() {
		svc, ok := rs.Resource().Attributes().Get("service.name")
		if !ok || svc.Str() == "" || !utf8.ValidString(svc.Str()) {
			t.Errorf("bad service.name %q", svc.Str())
		}
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
					t.Errorf("span %q: empty id", sp.Name())
				}
				if sp.EndTimestamp() < sp.StartTimestamp() {
					t.Errorf("span %q ends before it starts", sp.Name())
				}
				ok := utf8.ValidString(sp.Name())
				for k, v := range sp.Attributes().All() {
					ok = ok && utf8.ValidString(k) && utf8.ValidString(v.AsString())
				}
				for _, ev := range sp.Events().All() {
					ok = ok && utf8.ValidString(ev.Name())
				}
				if !ok {
					t.Errorf("span %q: invalid UTF-8 in output", sp.Name())
				}
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
	if raw2, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(back); !bytes.Equal(raw, raw2) {
		t.Error("protobuf round trip changed the traces")
	}
}
