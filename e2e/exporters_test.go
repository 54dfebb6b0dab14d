package e2e

import (
	"testing"
	"time"
)

// TestExporters sends the same kind of traffic through each of traceport's
// exporters into one real Jaeger, each under its own service name, and
// checks what Jaeger stored: ids, parents, services, names and tags.
func TestExporters(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	f := func(name, protocol, endpoint, compression string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tp := startTraceport(t, "--jaeger", endpoint, "--jaeger-protocol", protocol,
				"--jaeger-compression", compression, "--batch-timeout", "50ms", "--batch-max-spans", "40")
			service := "exporter-" + name
			spans, want := plainSpans(t, service, 100)
			// Four requests: pushes are never split, and 25+25 > 40, so a cap
			// of 40 makes at least three batches.
			for i := 0; i < len(spans); i += 25 {
				tp.postZipkin(zipkinJSON(t, spans[i:i+25]))
			}
			m := tp.settled(t, 20*time.Second, 100)
			requireNoDrops(t, m)
			if got := m.sum("traceport_exported_spans_total"); got != 100 {
				t.Errorf("exported %g spans, want 100 (%v)", got, m.by("traceport_exported_spans_total", "exporter"))
			}
			j.waitSpans(t, 10*time.Second, want)
			if got := m.sum("traceport_export_batch_spans"); got < 3 {
				t.Errorf("%g batches for 100 spans at --batch-max-spans 40, want at least 3", got)
			}
			tp.stop()
		})
	}
	f("otlp-grpc-gzip", "otlp-grpc", j.otlpGRPC(), "gzip")
	f("otlp-grpc-none", "otlp-grpc", j.otlpGRPC(), "none")
	f("otlp-grpc-zstd", "otlp-grpc", j.otlpGRPC(), "zstd")
	f("otlp-http-gzip", "otlp-http", j.otlpHTTP(), "gzip")
	f("otlp-http-zstd", "otlp-http", j.otlpHTTP(), "zstd")
	f("jaeger-grpc-gzip", "jaeger-grpc", j.jaegerGRPC(), "gzip")
	f("jaeger-grpc-none", "jaeger-grpc", j.jaegerGRPC(), "none")
}
