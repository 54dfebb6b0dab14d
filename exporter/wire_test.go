package exporter

import (
	"bytes"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzWalkSpans: any bytes either fail the walk or come apart into spans
// that, grouped by trace and written back, decode as OTLP and hold exactly
// the spans pdata reads from the same bytes, each under its resource and
// scope. Nothing panics, nothing is lost or duplicated.
func FuzzWalkSpans(f *testing.F) {
	f.Add(request(f, 3))
	f.Add(append(traceRequest(f, "frontend", 1, 2, 5, 3), traceRequest(f, "cart", 1, 3, 4, 3)...))
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		var w wireSpans
		if err := walkSpans(data, 4, &w); err != nil {
			return
		}
		want, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
		if err != nil {
			return // the walk reads less than pdata (only the fields it needs)
		}
		got := 0
		var out []byte
		for _, trace := range w.byTrace() {
			for _, s := range trace {
				if w.spans[s].traceID != w.spans[trace[0]].traceID {
					t.Fatalf("a trace group mixes trace ids")
				}
			}
			out = w.appendRequest(out[:0], trace)
			if len(out) != w.requestSize(trace) {
				t.Fatalf("requestSize %d, wrote %d", w.requestSize(trace), len(out))
			}
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out)
			if err != nil {
				t.Fatalf("a record written back does not decode: %v", err)
			}
			got += td.SpanCount()
		}
		if got != want.SpanCount() {
			t.Fatalf("%d spans written back, pdata reads %d", got, want.SpanCount())
		}
	})
}

// Pushes taken apart one by one as they come in and added together make
// the same records as the batch walked whole.
func TestWireSpansAdd(t *testing.T) {
	pushes := [][]byte{
		traceRequest(t, "frontend", 1, 3, 12, 5),
		traceRequest(t, "cart", 1, 3, 6, 5),
		traceRequest(t, "frontend", 2, 2, 4, 5), // the first push's resource again
	}
	for i := range 2 * wireLinear { // past the linear lookup, then seen again
		pushes = append(pushes, traceRequest(t, fmt.Sprint("svc-", i%(wireLinear+3)), byte(3+i), 2, 4, 5))
	}
	var whole, added wireSpans
	var batch []byte
	for _, p := range pushes {
		batch = append(batch, p...)
		var w wireSpans
		if err := w.walk(p); err != nil {
			t.Fatal(err)
		}
		added.add(&w)
	}
	if err := walkSpans(batch, 0, &whole); err != nil {
		t.Fatal(err)
	}
	if len(added.resources) != len(whole.resources) || len(added.scopes) != len(whole.scopes) {
		t.Errorf("added: %d resources, %d scopes; walked whole: %d, %d", len(added.resources), len(added.scopes), len(whole.resources), len(whole.scopes))
	}
	a, b := whole.byTrace(), added.byTrace()
	if len(a) != len(b) {
		t.Fatalf("%d traces walked whole, %d added", len(a), len(b))
	}
	for i := range a {
		if !bytes.Equal(whole.appendRequest(nil, a[i]), added.appendRequest(nil, b[i])) {
			t.Errorf("trace %d: records differ", i)
		}
	}
}
