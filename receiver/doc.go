// Package receiver is what traceport's one port means: the handlers of
// every trace protocol (Zipkin, OTLP/HTTP, OTLP/gRPC, Jaeger gRPC), behind
// the listener package transport serves. It decodes each request with
// package translate, admits it, counts it per source, and hands it to a
// Sink. Every refused request and span is counted with a reason.
//
// The data path, top to bottom:
//
//	server.go   Config, New: the receiver and its transport.Server
//	fastpath.go the handlers as the transport's fast paths call them
//	http.go     HTTP routes: Zipkin, OTLP/HTTP, metrics, probes
//	grpc.go     OTLP/gRPC Export and Jaeger PostSpans on a raw-bytes codec
//	body.go     body limits and decompression
//	ingest.go   the one function every protocol ends in: count, then Push
//	sources.go  per-source counters (protocol × encoding × service)
//	errors.go   the one table of refusal reasons → HTTP status / gRPC code
package receiver
