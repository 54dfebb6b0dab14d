package topology

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/translate"
)

// BenchmarkObserve is the hot-path cost the receiver pays per request:
// 100-span requests of different traces, as SDKs (OTLP) and Envoy (Zipkin
// JSON converted to OTLP by the receiver) send them. Clock time advances so
// that waits end and tables stay at their steady-state size.
func BenchmarkObserve(b *testing.B) {
	envoy := func(seed uint64) []byte {
		td, _, err := translate.ZipkinV2JSON(bench.EnvoyZipkinJSON(100, seed), translate.ZipkinOptions{})
		if err != nil {
			b.Fatal(err)
		}
		data, _, _ := translate.TracesToOTLP(td, nil, nil)
		return data
	}
	for _, c := range []struct {
		name, protocol string
		body           func(seed uint64) []byte
	}{
		{"sdk-otlp-100", "otlp_grpc", func(seed uint64) []byte { return bench.SDKOTLP(100, seed) }},
		// The same spans as a Collector (pdata) forwards them: fields in
		// reverse order, trace_id last, so no span is skipped early.
		{"collector-otlp-100", "otlp_grpc", func(seed uint64) []byte {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bench.SDKOTLP(100, seed))
			if err != nil {
				b.Fatal(err)
			}
			data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
			if err != nil {
				b.Fatal(err)
			}
			return data
		}},
		{"envoy-zipkin-100", "zipkin", envoy},
	} {
		b.Run(c.name, func(b *testing.B) {
			const distinct = 64 // requests with different ids, reused round-robin
			bodies := make([][]byte, distinct)
			size := 0
			for i := range bodies {
				bodies[i] = c.body(uint64(i + 1))
				size += len(bodies[i])
			}
			now := time.Unix(1766022480, 0)
			tr := New(Config{Now: func() time.Time { return now }}, nil)
			b.SetBytes(int64(size / distinct))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Millisecond)
				tr.Observe(c.protocol, bodies[i%distinct])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
		})
	}
	// The yardstick: the receiver's own validation walk of the same SDK
	// request, which every OTLP request pays before Observe.
	b.Run("reference-translate.ScanOTLP-sdk-100", func(b *testing.B) {
		body := bench.SDKOTLP(100, 1)
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := translate.ScanOTLP(body, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
	})
}
