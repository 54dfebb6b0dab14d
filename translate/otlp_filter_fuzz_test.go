package translate

import (
	"bytes"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzFilterOTLP: what FilterOTLP keeps is a request ScanOTLP and pdata
// accept, no larger than the input; filtering it again leaves nothing to
// drop; and a request ScanOTLP already accepts loses no span.
// Seeds live in testdata/fuzz/FuzzFilterOTLP/.
func FuzzFilterOTLP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		before, scanErr := ScanOTLP(data, nil)
		out, rej, err := FilterOTLP(data)
		if err != nil {
			if scanErr == nil {
				t.Fatalf("FilterOTLP refuses a request ScanOTLP accepts: %v", err)
			}
			return
		}
		if len(out) > len(data) {
			t.Fatalf("filtered request grew from %d to %d bytes", len(data), len(out))
		}
		after, err := ScanOTLP(out, nil)
		if err != nil {
			t.Fatalf("ScanOTLP refuses what FilterOTLP kept (%d rejected, %q): %v", rej.Spans, rej.Reason, err)
		}
		if _, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(out); err != nil {
			t.Fatalf("pdata refuses what FilterOTLP kept: %v", err)
		}
		if scanErr == nil && (rej.Spans != 0 || !slices.Equal(before, after)) {
			t.Fatalf("a valid request lost %d spans (%q): counts %v, then %v", rej.Spans, rej.Reason, before, after)
		}
		again, rej2, err := FilterOTLP(out)
		if err != nil || rej2.Spans != 0 || !bytes.Equal(again, out) {
			t.Fatalf("filtering the kept request again: %d rejected, %v, changed=%v", rej2.Spans, err, !bytes.Equal(again, out))
		}
	})
}
