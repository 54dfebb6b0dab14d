package receiver

import (
	"time"

	"google.golang.org/grpc/mem"
)

// Sink takes decoded spans off the receiver's hands. exporter.Exporter
// implements it; tests use their own.
type Sink interface {
	// Admit reports whether a request may be read at all, before its body is
	// read: the door of backpressure. retrying is true for protocols whose
	// clients retry a refusal (OTLP, Jaeger gRPC); Zipkin's Envoy never does,
	// so it is admitted while any room is left. When ok is false, retryAfter
	// is the delay to suggest to the client.
	Admit(retrying bool) (ok bool, retryAfter time.Duration)
	// Push hands over one request's spans as a serialized OTLP
	// ExportTraceServiceRequest. The sink owns data from then on. An error
	// means the spans were not taken (and the sink has counted them as
	// dropped); the client is told to retry. Push calls accounted exactly
	// once, as soon as the spans are in the sink's accounts and before any
	// wait (a persistent queue's fsync): until then the receiver keeps
	// scrapes from seeing the spans received but not accounted.
	Push(data []byte, spans int, retrying bool, accounted func()) error
}

// BufferSink is a Sink that also takes a request in a pooled,
// reference-counted buffer and frees that reference once it is done with
// the bytes, so the buffer is reused instead of collected. exporter.Exporter
// implements it; the OTLP/gRPC path uses it.
type BufferSink interface {
	PushBuffer(buf mem.Buffer, spans int, retrying bool, accounted func()) error
}
