// Package exporter forwards spans to Jaeger: a bounded queue measured in
// spans, batching, concurrent senders for OTLP/gRPC, OTLP/HTTP and Jaeger
// api_v2 gRPC, retries on retryable failures only, and an account of every
// span that does not leave (traceport_dropped_spans_total{reason}).
package exporter
