package translate

import (
	"bytes"
	"testing"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzJaegerBatch feeds PostSpans request bodies: the conversion must not
// panic, must account for every span, must leave the request as it was and
// give the same answer twice, and must give a request ScanOTLP (and so the
// Collector) accepts.
func FuzzJaegerBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api_v2.PostSpansRequest
		if err := req.Unmarshal(body); err != nil {
			return
		}
		before, err := req.Marshal()
		if err != nil {
			return
		}
		td, rej := JaegerBatch(&req.Batch)
		if after, _ := req.Marshal(); !bytes.Equal(before, after) {
			t.Fatal("JaegerBatch modified the request")
		}
		in := 0
		for _, s := range req.Batch.Spans {
			if s != nil {
				in++
			}
		}
		if td.SpanCount()+rej.Spans != in {
			t.Fatalf("%d spans in, %d kept + %d rejected", in, td.SpanCount(), rej.Spans)
		}
		if rej.Spans > 0 && rej.Reason == "" {
			t.Fatal("rejected spans without a reason")
		}
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				spans := sss.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					if s := spans.At(k); s.TraceID().IsEmpty() || s.SpanID().IsEmpty() {
						t.Fatalf("span %q kept with an empty id", s.Name())
					}
				}
			}
		}
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := JaegerBatch(&req.Batch)
		if data2, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(again); !bytes.Equal(data, data2) {
			t.Fatal("a second conversion differs")
		}
		counts, err := ScanOTLP(data, nil)
		if err != nil {
			t.Fatalf("ScanOTLP refuses the conversion: %v", err)
		}
		total := 0
		for _, c := range counts {
			total += c.Spans
		}
		if total != td.SpanCount() {
			t.Fatalf("ScanOTLP counts %d spans, pdata %d", total, td.SpanCount())
		}
		JaegerBatches(td) // and back, without panicking
	})
}
