// Package receiver is traceport's one port: it accepts every trace protocol
// on a single listener (HTTP/1.1, h2c and TLS, routed per connection and per
// request), decodes each request with package translate, counts it per
// source, and hands it to a Sink. Every refused request and span is counted
// with a reason.
//
// The data path, top to bottom:
//
//	server.go   listener, TLS, HTTP/2 sniffing: OTLP fast path, native gRPC or net/http
//	h2fast.go   HTTP/2 fast path for gRPC (OTLP Export, Jaeger PostSpans), else a GOAWAY to grpc.Server
//	h2head.go   which requests the gRPC fast path serves
//	h2fallback.go  a native gRPC connection that meets a plain request
//	http1.go    HTTP/1.1 fast path for Envoy's Zipkin posts, else net/http
//	http.go     HTTP routes: Zipkin, OTLP/HTTP, metrics, probes
//	grpc.go     OTLP/gRPC Export and Jaeger PostSpans on a raw-bytes codec
//	body.go     body limits and decompression
//	ingest.go   the one function every protocol ends in: count, then Push
//	sources.go  per-source counters (protocol × encoding × service)
//	errors.go   the one table of refusal reasons → HTTP status / gRPC code
package receiver
