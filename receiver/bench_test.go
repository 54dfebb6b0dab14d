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

	"github.com/traceport/traceport/bench"
)

// discardSink takes everything: the benchmarks measure the receiver alone.
type discardSink struct{}

func (discardSink) Admit(bool) (bool, time.Duration)          { return true, 0 }
func (discardSink) Push(data []byte, spans int, _ bool) error { return nil }

func benchHandler(b *testing.B, path, contentType string, body []byte, spans int) {
	reg := prometheus.NewRegistry()
	rc := New(Config{MaxRequestBytes: 20 << 20, MaxServices: 1000}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkHandler measures one request through the HTTP handler: body
// read, decode, count, serialization to OTLP (no network, no export).
func BenchmarkHandler(b *testing.B) {
	b.Run("zipkin-json-100", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/json", bench.EnvoyZipkinJSON(100, 1), 100)
	})
	b.Run("zipkin-json-10", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/json", bench.EnvoyZipkinJSON(10, 1), 10)
	})
	b.Run("zipkin-proto-100", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/x-protobuf", bench.EnvoyZipkinProto(100, 1), 100)
	})
	b.Run("otlp-http-100", func(b *testing.B) {
		benchHandler(b, "/v1/traces", "application/x-protobuf", bench.SDKOTLP(100, 1), 100)
	})
}
