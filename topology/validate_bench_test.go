package topology

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/translate"
)

// BenchmarkValidateAndObserve is what an OTLP request costs the receiver
// with trace health on: its validation walk and the tracker's tables.
func BenchmarkValidateAndObserve(b *testing.B) {
	for _, c := range []struct {
		name string
		body func(seed uint64) []byte
	}{
		{"sdk-otlp-100", func(seed uint64) []byte { return bench.SDKOTLP(100, seed) }},
		{"collector-otlp-100", func(seed uint64) []byte {
			td, _ := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bench.SDKOTLP(100, seed))
			data, _ := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
			return data
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			const distinct = 64
			bodies := make([][]byte, distinct)
			for i := range bodies {
				bodies[i] = c.body(uint64(i + 1))
			}
			now := time.Unix(1766022480, 0)
			tr := New(Config{Now: func() time.Time { return now }}, nil)
			var counts []translate.ServiceCount
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Millisecond)
				counts = validateAndObserve(b, tr, bodies[i%distinct], counts[:0])
			}
		})
	}
}

func validateAndObserve(b *testing.B, tr *Tracker, data []byte, counts []translate.ServiceCount) []translate.ServiceCount {
	v := tr.Begin("otlp_grpc")
	counts, err := translate.ScanOTLPVisit(data, counts, v)
	if err != nil {
		b.Fatal(err)
	}
	tr.End(v, true)
	return counts
}
