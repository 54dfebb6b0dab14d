package receiver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/topology"
)

// BenchmarkIngestObserved is the hot path with trace health on: one
// 100-span request through the HTTP handler (read, validate or decode,
// count, topology, sink), as SDKs (OTLP), Collectors (pdata order) and
// Envoy (Zipkin JSON) send it; 64 requests of different traces in turn.
func BenchmarkIngestObserved(b *testing.B) {
	collector := func(seed uint64) []byte {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bench.SDKOTLP(100, seed))
		if err != nil {
			b.Fatal(err)
		}
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	for _, c := range []struct {
		name, path, contentType string
		body                    func(seed uint64) []byte
	}{
		{"sdk-otlp-100", "/v1/traces", "application/x-protobuf", func(seed uint64) []byte { return bench.SDKOTLP(100, seed) }},
		{"collector-otlp-100", "/v1/traces", "application/x-protobuf", collector},
		{"envoy-zipkin-100", "/api/v2/spans", "application/json", func(seed uint64) []byte { return bench.EnvoyZipkinJSON(100, seed) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			const distinct = 64
			bodies := make([][]byte, distinct)
			for i := range bodies {
				bodies[i] = c.body(uint64(i + 1))
			}
			now := time.Unix(1766022480, 0)
			topo := topology.New(topology.Config{Now: func() time.Time { return now }}, nil)
			reg := prometheus.NewRegistry()
			rc := New(Config{MaxRequestBytes: 20 << 20, MaxServices: 1000, Observer: topo}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			b.SetBytes(int64(len(bodies[0])))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Millisecond)
				req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(bodies[i%distinct]))
				req.Header.Set("Content-Type", c.contentType)
				rec := httptest.NewRecorder()
				rc.ServeHTTP(rec, req)
				if rec.Code >= 300 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
		})
	}
}
