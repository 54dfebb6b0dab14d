package translate

import (
	"bytes"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/bench"
)

// visitLog writes down what a visitor is shown, to compare two walks.
type visitLog struct{ bytes.Buffer }

func (l *visitLog) OTLPResource(service, namespace []byte) {
	fmt.Fprintf(l, "resource %q %q\n", service, namespace)
}

func (l *visitLog) OTLPSpan(s OTLPSpan) {
	fmt.Fprintf(l, "span %x %x %x %d %d %x\n", s.TraceID, s.SpanID, s.ParentSpanID, s.Kind, len(s.Raw), s.Attributes)
}

// checkVisitsAgree asserts that VisitOTLP (the walk for requests traceport
// encoded itself) shows what the validation walk shows, for a request
// ScanOTLP accepts; it returns the log.
func checkVisitsAgree(t *testing.T, data []byte) string {
	t.Helper()
	var scanned, visited visitLog
	if _, err := ScanOTLPVisit(data, nil, &scanned); err != nil {
		return ""
	}
	if err := VisitOTLP(data, &visited); err != nil {
		t.Fatalf("VisitOTLP refuses what ScanOTLP accepts: %v", err)
	}
	if scanned.String() != visited.String() {
		t.Fatalf("walks disagree on %x:\nScanOTLPVisit:\n%s\nVisitOTLP:\n%s", data, scanned.String(), visited.String())
	}
	return scanned.String()
}

func TestVisitShowsResourcesBeforeTheirSpans(t *testing.T) {
	sdk := bench.SDKOTLP(5, 1)
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(sdk)
	if err != nil {
		t.Fatal(err)
	}
	// pdata writes fields in reverse: the resource after its spans.
	collector, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	envoy, _, _, err := ZipkinV2JSONToOTLP(bench.EnvoyZipkinJSON(6, 1), ZipkinOptions{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"sdk": sdk, "collector": collector, "envoy": envoy} {
		log := checkVisitsAgree(t, data)
		want := td.SpanCount()
		if name == "envoy" {
			want = 6
		}
		if n := bytes.Count([]byte(log), []byte("span ")); n != want {
			t.Fatalf("%s: %d spans shown, want %d:\n%s", name, n, want, log)
		}
		if !bytes.HasPrefix([]byte(log), []byte("resource \"")) || bytes.Contains([]byte(log), []byte("resource \"\"")) {
			t.Fatalf("%s: a span before its resource, or the service missed:\n%s", name, log)
		}
	}
}
