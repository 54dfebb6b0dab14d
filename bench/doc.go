// Package bench is a load generator for trace collectors: it sends
// Envoy/Istio-shaped Zipkin (JSON, proto3), SDK-shaped OTLP (gRPC, HTTP
// protobuf and JSON) and Jaeger gRPC spans at a fixed rate or flat out, and
// reports accepted spans per second, errors by status and request latency
// percentiles.
//
// Every payload is serialized (and for HTTP, framed with its request line and
// headers) before the clock starts, and gRPC requests go through a raw-bytes
// codec, so the generator's own cost per request is a write and a read: what
// it measures is the server, not itself.
package bench
