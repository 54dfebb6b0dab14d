// Package exporter forwards spans to Jaeger: a bounded queue measured in
// spans, batching, concurrent senders for OTLP/gRPC, OTLP/HTTP and Jaeger
// api_v2 gRPC, retries on retryable failures only, and an account of every
// span that does not leave (traceport_dropped_spans_total{reason}).
//
// The receiver hands over each request as a serialized OTLP
// ExportTraceServiceRequest. Concatenated requests are one valid merged
// request (field 1 is repeated), so a batch is the pushes' bytes appended:
// the OTLP paths never decode. Only jaeger-grpc converts, once per batch.
//
// Every export fits Config.ExportMaxBytes: batches are filled up to it, and
// a push larger than it is cut at span boundaries by SplitRequest, which
// walks the three message levels above the spans and copies spans as they
// are. A destination that still answers "too large" (gRPC
// RESOURCE_EXHAUSTED "larger than max", HTTP 413) gets the request again
// in halves (parts.go); only a single span it refuses is dropped, as
// too_large.
//
// Every span pushed is at every instant in exactly one state: exported,
// dropped{reason}, queued or in flight. Spans move between states under one
// mutex, which the metrics collector also takes, so
// traceport_exporter_pushed_spans_total + traceport_queue_replayed_spans_total
// = exported + dropped + queue + inflight holds in every scrape.
//
// With Config.QueueDir the queue is persistent (wal.go): each push is in a
// checksummed write-ahead log, fsynced per Config.QueueFsync, before Push
// returns; settled pushes are acked there and segments deleted once all
// their pushes are. On start, pushes not acked are queued again and counted
// as replayed, since this process never received them. Spans left at
// shutdown stay queued on disk instead of being dropped.
//
// The gRPC compressors it asks for ("gzip", "zstd") are the ones main
// registers (internal/grpccompress); importing the package registers
// nothing.
//
// With Config.Kafka's brokers the destination is a Kafka topic instead
// (kafka.go, franz-go): the batch is taken apart on the wire (wire.go),
// grouped by trace, and written as records of one trace each, keyed by the
// trace id, cut to the broker's message limit; the queue, retries and
// accounts are the same. A Kafka attempt that times out leaves its records
// with the client and the next attempt waits for them, so a slow broker
// gets no second copy; only records the client failed are produced again.
//
// Delivery is at least once: an attempt that times out here may have been
// accepted there, and is sent again (for Kafka: across a restart, from
// --queue-dir).
package exporter
